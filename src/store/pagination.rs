//! Keyset pagination shared by every list: rows are ordered by a sort key and the id, and a
//! cursor names the last row seen, so pages stay stable while rows are added.

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::Any;

use super::{Store, StoreResult};

/// Position after which the next page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub key: SortKey,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortKey {
    Int(i64),
    Text(String),
}

#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// A value bound to a dynamically built query.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// Builds a WHERE clause with `$n` placeholders alongside its bound values.
#[derive(Default)]
pub(crate) struct Conditions {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Conditions {
    /// Adds a clause whose `?` marks become the next `$n` placeholders, in order.
    pub fn push(&mut self, clause: &str, values: impl IntoIterator<Item = Bind>) {
        let mut next = self.binds.len() + 1;
        let mut sql = String::with_capacity(clause.len() + 8);
        for ch in clause.chars() {
            if ch == '?' {
                sql.push_str(&format!("${next}"));
                next += 1;
            } else {
                sql.push(ch);
            }
        }
        self.binds.extend(values);
        debug_assert_eq!(self.binds.len() + 1, next, "clause marks and values differ");
        self.clauses.push(sql);
    }

    /// `col IN ($a, $b, …)` for a non-empty list.
    pub fn push_in(&mut self, column: &str, values: &[String]) {
        let start = self.binds.len();
        let marks: Vec<String> = (0..values.len())
            .map(|i| format!("${}", start + i + 1))
            .collect();
        self.clauses
            .push(format!("{column} IN ({})", marks.join(", ")));
        self.binds.extend(values.iter().cloned().map(Bind::Text));
    }

    pub fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn bind_all<'q>(
        &self,
        mut query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        for bind in &self.binds {
            query = match bind {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }
}

impl Store {
    /// One page of a newest-first list (`ORDER BY created_at DESC, id DESC`): `select` is the
    /// `SELECT … FROM table` part, `conditions` its filters, `key` a row's `created_at` and id;
    /// the cursor's condition, the order and the limit are added here.
    pub(crate) async fn newest_first_page<T>(
        &self,
        select: &str,
        mut conditions: Conditions,
        after: Option<&Cursor>,
        limit: usize,
        from_row: impl Fn(&AnyRow) -> StoreResult<T>,
        key: impl Fn(&T) -> (i64, String),
    ) -> StoreResult<Page<T>> {
        if let Some(cursor) = after {
            // A cursor these lists never issue (its key is not a time): nothing follows it.
            let SortKey::Int(created_at) = cursor.key else {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            };
            conditions.push(
                "(created_at < ? OR (created_at = ? AND id < ?))",
                [
                    Bind::Int(created_at),
                    Bind::Int(created_at),
                    Bind::Text(cursor.id.clone()),
                ],
            );
        }
        let sql = self.sql(&format!(
            "{select} {} ORDER BY created_at DESC, id DESC LIMIT {}",
            conditions.where_sql(),
            limit + 1
        ));
        let rows = conditions
            .bind_all(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| {
                let (created_at, id) = key(last);
                Cursor {
                    key: SortKey::Int(created_at),
                    id,
                }
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }
}
