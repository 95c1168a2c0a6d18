//! The database a benchmark runs against: a fresh SQLite file, or a fresh PostgreSQL database
//! (`classifyd_bench_*`) made from an admin URL and dropped afterwards.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyPool, Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct BenchDatabase {
    pub engine: Engine,
    pub url: String,
    admin_url: Option<String>,
    name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDatabase {
    pub async fn create(engine: Engine, pg_admin_url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("classifyd-bench-db-")
                    .tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("classifyd.db").display()
                );
                Ok(Self {
                    engine,
                    url,
                    admin_url: None,
                    name: None,
                    _dir: Some(dir),
                })
            }
            Engine::Postgres => {
                let name = format!("classifyd_bench_{}", uuid::Uuid::new_v4().simple());
                let admin = AnyPool::connect(pg_admin_url)
                    .await
                    .with_context(|| format!("cannot reach PostgreSQL at {pg_admin_url}"))?;
                admin
                    .execute(format!("CREATE DATABASE \"{name}\"").as_str())
                    .await?;
                admin.close().await;
                let url = with_database(pg_admin_url, &name);
                Ok(Self {
                    engine,
                    url,
                    admin_url: Some(pg_admin_url.to_string()),
                    name: Some(name),
                    _dir: None,
                })
            }
        }
    }

    /// A pool configured like the server's (`classifyd::store::pool_options`).
    pub async fn pool(&self, max_connections: u32) -> anyhow::Result<AnyPool> {
        let options = AnyConnectOptions::from_str(&self.url)?;
        let engine = match self.engine {
            Engine::Sqlite => classifyd::store::Engine::Sqlite,
            Engine::Postgres => classifyd::store::Engine::Postgres,
        };
        Ok(classifyd::store::pool_options(engine, max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?)
    }

    /// Drops the PostgreSQL database this benchmark created (the SQLite directory goes with
    /// the value).
    pub async fn drop_database(self) -> anyhow::Result<()> {
        if let (Some(admin_url), Some(name)) = (&self.admin_url, &self.name) {
            let admin = AnyPool::connect(admin_url).await?;
            admin
                .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                .await?;
            admin.close().await;
        }
        Ok(())
    }
}

/// `postgres://u@h:p/db?x` with `db` replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}
