use std::borrow::Cow;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::pagination::{Bind, Conditions, SortKey};
use super::{Cursor, Page, Store, StoreResult};

#[derive(Debug, Clone)]
pub struct FileRecord {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub file_type: Option<String>,
    pub purpose: Option<String>,
    pub external_file_id: Option<String>,
    pub size_bytes: i64,
    pub sha256: String,
    pub blob_key: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewFile {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub file_type: Option<String>,
    pub purpose: Option<String>,
    pub external_file_id: Option<String>,
    pub size_bytes: i64,
    pub sha256: String,
    pub blob_key: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileOrder {
    #[default]
    CreatedAtDesc,
    NameAsc,
    IdAsc,
}

#[derive(Debug, Default)]
pub struct FileFilter {
    pub file_name: Option<String>,
    pub file_ids: Vec<String>,
    pub external_file_id: Option<String>,
    pub order: FileOrder,
}

const COLUMNS: &str = "id, project_id, name, file_type, purpose, external_file_id, size_bytes, \
                       sha256, blob_key, created_at, updated_at";

fn from_row(row: &AnyRow) -> sqlx::Result<FileRecord> {
    from_prefixed_row(row, "")
}

/// `COLUMNS` of the table aliased `table`, each named `prefix` + column, for reading with
/// [`from_prefixed_row`] beside another table's columns.
pub(super) fn prefixed_columns(table: &str, prefix: &str) -> String {
    COLUMNS
        .split(',')
        .map(|column| format!("{table}.{0} AS {prefix}{0}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn from_prefixed_row(row: &AnyRow, prefix: &str) -> sqlx::Result<FileRecord> {
    // Every file read comes through here: the plain names are not copied.
    let column = |name: &'static str| -> Cow<'static, str> {
        match prefix {
            "" => Cow::Borrowed(name),
            _ => Cow::Owned(format!("{prefix}{name}")),
        }
    };
    Ok(FileRecord {
        id: row.try_get(&*column("id"))?,
        project_id: row.try_get(&*column("project_id"))?,
        name: row.try_get(&*column("name"))?,
        file_type: row.try_get(&*column("file_type"))?,
        purpose: row.try_get(&*column("purpose"))?,
        external_file_id: row.try_get(&*column("external_file_id"))?,
        size_bytes: row.try_get(&*column("size_bytes"))?,
        sha256: row.try_get(&*column("sha256"))?,
        blob_key: row.try_get(&*column("blob_key"))?,
        created_at: row.try_get(&*column("created_at"))?,
        updated_at: row.try_get(&*column("updated_at"))?,
    })
}

impl Store {
    pub async fn insert_file(&self, file: NewFile) -> StoreResult<FileRecord> {
        let now = super::now_micros();
        let sql = self.sql(
            "INSERT INTO files (id, project_id, name, file_type, purpose, external_file_id, \
             size_bytes, sha256, blob_key, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        );
        sqlx::query(&sql)
            .bind(&file.id)
            .bind(&file.project_id)
            .bind(&file.name)
            .bind(&file.file_type)
            .bind(&file.purpose)
            .bind(&file.external_file_id)
            .bind(file.size_bytes)
            .bind(&file.sha256)
            .bind(&file.blob_key)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(FileRecord {
            id: file.id,
            project_id: file.project_id,
            name: file.name,
            file_type: file.file_type,
            purpose: file.purpose,
            external_file_id: file.external_file_id,
            size_bytes: file.size_bytes,
            sha256: file.sha256,
            blob_key: file.blob_key,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn get_file(&self, project_id: &str, id: &str) -> StoreResult<Option<FileRecord>> {
        let sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM files WHERE id = $1 AND project_id = $2"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Looks a file up by id alone: for workers and signed download links, which carry no caller.
    pub async fn get_file_by_id(&self, id: &str) -> StoreResult<Option<FileRecord>> {
        let sql = self.sql(&format!("SELECT {COLUMNS} FROM files WHERE id = $1"));
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Deletes the row and returns it, so the caller can remove the blob.
    pub async fn delete_file(&self, project_id: &str, id: &str) -> StoreResult<Option<FileRecord>> {
        let sql = self.sql(&format!(
            "DELETE FROM files WHERE id = $1 AND project_id = $2 RETURNING {COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn list_files(
        &self,
        project_id: &str,
        filter: &FileFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Page<FileRecord>> {
        let mut conditions = Conditions::default();
        conditions.push("project_id = ?", [Bind::Text(project_id.to_string())]);
        if let Some(name) = &filter.file_name {
            conditions.push("name = ?", [Bind::Text(name.clone())]);
        }
        if let Some(external) = &filter.external_file_id {
            conditions.push("external_file_id = ?", [Bind::Text(external.clone())]);
        }
        if !filter.file_ids.is_empty() {
            conditions.push_in("id", &filter.file_ids);
        }
        let (order_sql, key_column, ascending) = match filter.order {
            FileOrder::CreatedAtDesc => ("created_at DESC, id DESC", "created_at", false),
            FileOrder::NameAsc => ("name ASC, id ASC", "name", true),
            FileOrder::IdAsc => ("id ASC", "id", true),
        };
        if let Some(cursor) = after {
            let key = match &cursor.key {
                SortKey::Int(v) => Bind::Int(*v),
                SortKey::Text(v) => Bind::Text(v.clone()),
            };
            let op = if ascending { ">" } else { "<" };
            if filter.order == FileOrder::IdAsc {
                conditions.push(&format!("id {op} ?"), [Bind::Text(cursor.id.clone())]);
            } else {
                conditions.push(
                    &format!("({key_column} {op} ? OR ({key_column} = ? AND id {op} ?))"),
                    [key.clone(), key, Bind::Text(cursor.id.clone())],
                );
            }
        }
        let sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM files {} ORDER BY {order_sql} LIMIT {}",
            conditions.where_sql(),
            limit + 1
        ));
        let rows = conditions
            .bind_all(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows
            .iter()
            .map(from_row)
            .collect::<sqlx::Result<Vec<_>>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| Cursor {
                key: match filter.order {
                    FileOrder::CreatedAtDesc => SortKey::Int(last.created_at),
                    FileOrder::NameAsc => SortKey::Text(last.name.clone()),
                    FileOrder::IdAsc => SortKey::Text(last.id.clone()),
                },
                id: last.id.clone(),
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }
}
