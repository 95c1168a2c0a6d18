//! Waking idle workers when tasks are queued. In one process a [`tokio::sync::Notify`] does it;
//! with PostgreSQL the create also sends `NOTIFY` (delivered on commit), and every replica's
//! listener turns it into local wake-ups, so a job created on one replica starts at once on
//! whichever has a free worker. Polling stays as the fallback for lost notifications.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::{Engine, Store, StoreResult};

pub(super) const CHANNEL: &str = "classifyd_tasks_queued";

impl Store {
    /// Announces `count` new runnable tasks, inside the transaction that queues them (PostgreSQL
    /// delivers the notification only if it commits). SQLite has no other process to tell.
    pub(super) async fn announce_tasks(
        &self,
        conn: &mut sqlx::AnyConnection,
        count: usize,
    ) -> StoreResult<()> {
        if self.engine == Engine::Postgres && count > 0 {
            // pg_notify returns `void`, a type the Any driver cannot describe: select a constant.
            sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, $2)) AS notified")
                .bind(CHANNEL)
                .bind(count.to_string())
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Wakes this process's idle workers for `count` tasks.
    pub(super) fn wake_workers(&self, count: usize) {
        for _ in 0..count {
            self.task_queued.notify_one();
        }
    }

    /// Listens for other replicas' announcements until `stop` becomes true (PostgreSQL only;
    /// returns at once on SQLite).
    pub async fn listen_for_tasks(&self, mut stop: watch::Receiver<bool>) {
        let Some(url) = self.postgres_url.clone() else {
            return;
        };
        let mut listener = loop {
            let attempt = async {
                let mut listener = PgListener::connect(&url).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            tokio::select! {
                result = attempt => match result {
                    Ok(listener) => break listener,
                    Err(error) => tracing::warn!(%error, "cannot LISTEN for queued tasks; workers poll meanwhile"),
                },
                () = stopped(&mut stop) => return,
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                () = stopped(&mut stop) => return,
            }
        };
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        let count = notification.payload().parse::<usize>().unwrap_or(1);
                        // More wake-ups than workers would only make extra empty claims.
                        self.wake_workers(count.min(64));
                    }
                    // The connection dropped and came back: notifications may have been lost
                    // meanwhile, so let every idle worker look.
                    Ok(None) => self.task_queued.notify_waiters(),
                    Err(error) => {
                        tracing::warn!(%error, "LISTEN connection failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                () = stopped(&mut stop) => return,
            }
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone), holding no borrow across the await.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ());
}
