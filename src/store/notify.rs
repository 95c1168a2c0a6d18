//! Waking idle workers when tasks are queued. In one process a [`tokio::sync::Notify`] does it;
//! with PostgreSQL every replica's listener also turns `NOTIFY`s into local wake-ups, so a job
//! created on one replica starts at once on whichever has a free worker. Polling stays as the
//! fallback for lost notifications.
//!
//! A new job is announced after its commit, and announcements are coalesced: one `NOTIFY` carries
//! every job committed while the previous one was being sent. A `NOTIFY` inside the creating
//! transaction took PostgreSQL's notification-queue lock at commit, which serialises committing
//! transactions and their WAL flushes: creates ran at ~400/s where the same inserts without it
//! ran at ~3 600/s (BENCHMARKS.md, load). Tasks released at shutdown are still announced inside
//! their transaction: they are few, and the announcer may already have stopped.

use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::{Engine, Store, StoreResult};

const CHANNEL: &str = "classifyd_tasks_queued";

impl Store {
    /// Announces `count` tasks given back to the queue, inside the transaction that releases
    /// them (PostgreSQL delivers the notification only if it commits). SQLite has no other
    /// process to tell.
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

    /// After the commit of `count` new tasks: wakes this process's workers and has the
    /// announcer tell the other replicas (PostgreSQL).
    pub(super) fn tasks_committed(&self, count: usize) {
        self.wake_workers(count);
        if self.engine == Engine::Postgres && count > 0 {
            self.unannounced.fetch_add(count, Ordering::Relaxed);
            self.announce.notify_one();
        }
    }

    /// Wakes this process's idle workers for `count` tasks.
    pub(super) fn wake_workers(&self, count: usize) {
        for _ in 0..count {
            self.task_queued.notify_one();
        }
    }

    /// Listens for other replicas' announcements and sends this process's, until `stop`
    /// becomes true (PostgreSQL only; returns at once on SQLite).
    pub async fn listen_for_tasks(&self, stop: watch::Receiver<bool>) {
        let Some(url) = self.postgres_url.clone() else {
            return;
        };
        tokio::join!(self.announce(stop.clone()), self.listen(&url, stop));
    }

    /// Sends one `NOTIFY` for all tasks committed since the last one; a last one at `stop`.
    async fn announce(&self, mut stop: watch::Receiver<bool>) {
        loop {
            let stopping = tokio::select! {
                () = self.announce.notified() => false,
                () = stopped(&mut stop) => true,
            };
            let count = self.unannounced.swap(0, Ordering::Relaxed);
            if count > 0 {
                // pg_notify returns `void`, a type the Any driver cannot describe: select a constant.
                let sent = sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, $2)) AS notified")
                    .bind(CHANNEL)
                    .bind(count.to_string())
                    .execute(&self.writer)
                    .await;
                if let Err(error) = sent {
                    tracing::warn!(%error, "cannot NOTIFY other replicas of queued tasks; they poll meanwhile");
                }
            }
            if stopping {
                return;
            }
        }
    }

    async fn listen(&self, url: &str, mut stop: watch::Receiver<bool>) {
        let mut listener = loop {
            let attempt = async {
                let mut listener = PgListener::connect(url).await?;
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
