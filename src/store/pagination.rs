//! Keyset pagination shared by every list: rows are ordered by a sort key and the id, and a
//! cursor names the last row seen, so pages stay stable while rows are added.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

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
