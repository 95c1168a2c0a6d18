//! Saved configurations: named parameter sets of one product type, upserted by name.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::pagination::{Bind, Conditions};
use super::{Cursor, Page, Store, StoreResult};

#[derive(Debug, Clone)]
pub struct ConfigurationRecord {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub product_type: String,
    /// The parameters as JSON, `product_type` included.
    pub parameters: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Default)]
pub struct ConfigurationFilter {
    pub name: Option<String>,
    pub product_types: Vec<String>,
}

const COLUMNS: &str = "id, project_id, name, product_type, parameters, created_at, updated_at";

fn from_row(row: &AnyRow) -> sqlx::Result<ConfigurationRecord> {
    Ok(ConfigurationRecord {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        product_type: row.try_get("product_type")?,
        parameters: row.try_get("parameters")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates the configuration, or replaces the parameters of the project's configuration
    /// with the same name and product type (one statement, so racing upserts agree).
    pub async fn upsert_configuration(
        &self,
        project_id: &str,
        name: &str,
        product_type: &str,
        parameters: &str,
    ) -> StoreResult<ConfigurationRecord> {
        let now = super::now_micros();
        let sql = self.sql(&format!(
            "INSERT INTO configurations (id, project_id, name, product_type, parameters, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (project_id, product_type, name) \
             DO UPDATE SET parameters = excluded.parameters, updated_at = excluded.updated_at \
             RETURNING {COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(format!("cfg-{}", uuid::Uuid::new_v4()))
            .bind(project_id)
            .bind(name)
            .bind(product_type)
            .bind(parameters)
            .bind(now)
            .fetch_one(&self.writer)
            .await?;
        Ok(from_row(&row)?)
    }

    pub async fn get_configuration(
        &self,
        project_id: &str,
        id: &str,
    ) -> StoreResult<Option<ConfigurationRecord>> {
        let sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM configurations WHERE id = $1 AND project_id = $2"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Changes the name and/or parameters. `Ok(None)`: no such configuration. A rename onto
    /// another configuration's name is a unique violation, reported as `Err(Conflict)`.
    pub async fn update_configuration(
        &self,
        project_id: &str,
        id: &str,
        name: Option<&str>,
        parameters: Option<(&str, &str)>,
    ) -> StoreResult<Option<ConfigurationRecord>> {
        let now = super::now_micros();
        let (product_type, parameters) = parameters.unzip();
        let sql = self.sql(&format!(
            "UPDATE configurations SET name = COALESCE($3, name), \
             product_type = COALESCE($4, product_type), parameters = COALESCE($5, parameters), \
             updated_at = $6 WHERE id = $1 AND project_id = $2 RETURNING {COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .bind(name)
            .bind(product_type)
            .bind(parameters)
            .bind(now)
            .fetch_optional(&self.writer)
            .await
            .map_err(|error| match error.as_database_error() {
                Some(db) if db.is_unique_violation() => super::StoreError::Conflict(
                    "Another configuration of this product type already has that name".into(),
                ),
                _ => error.into(),
            })?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn delete_configuration(&self, project_id: &str, id: &str) -> StoreResult<bool> {
        let sql = self.sql("DELETE FROM configurations WHERE id = $1 AND project_id = $2");
        let done = sqlx::query(&sql)
            .bind(id)
            .bind(project_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Newest first. Configurations are not versioned here, so every row is its name's latest.
    pub async fn list_configurations(
        &self,
        project_id: &str,
        filter: &ConfigurationFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Page<ConfigurationRecord>> {
        let mut conditions = Conditions::default();
        conditions.push("project_id = ?", [Bind::Text(project_id.to_string())]);
        if let Some(name) = &filter.name {
            conditions.push("name = ?", [Bind::Text(name.clone())]);
        }
        if !filter.product_types.is_empty() {
            conditions.push_in("product_type", &filter.product_types);
        }
        self.newest_first_page(
            &format!("SELECT {COLUMNS} FROM configurations"),
            conditions,
            after,
            limit,
            |row| Ok(from_row(row)?),
            |record| (record.created_at, record.id.clone()),
        )
        .await
    }
}
