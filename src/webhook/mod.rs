//! Webhook delivery: loops that drain the outbox (`webhook_deliveries`) the store fills in the
//! same transaction as each job status change.
//!
//! Each delivery is a `POST` of a JSON envelope to the target URL through the SSRF guard
//! ([`crate::outbound`]), with the target's custom headers, `LC-Event-Id` / `LC-Event-Type`
//! headers and, when the target has a signing secret, `LC-Signature: sha256=<hex HMAC-SHA256
//! of the raw body>`. Any 2xx answer settles it; anything else is retried with exponential
//! backoff (`CLASSIFYD_WEBHOOK_RETRY_BASE_MS` doubling per attempt, at most an hour apart)
//! until `CLASSIFYD_WEBHOOK_MAX_ATTEMPTS`. A URL the guard refuses fails at once. The body of
//! a retry is byte-for-byte the first one, so its event id lets a receiver drop duplicates
//! (a sender that dies mid-request leaves a lease that expires, and the event is sent again).
//! Settled deliveries are deleted `CLASSIFYD_WEBHOOK_RETENTION_SECONDS` after their last attempt.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::watch;
use tracing::Instrument;

use crate::outbound::{Outbound, OutboundError};
use crate::settings::WebhookSettings;
use crate::store::{micros_to_rfc3339, Delivery, DeliveryOutcome, Store};

/// Concurrent senders per process; deliveries are short HTTP requests.
const SENDERS: usize = 2;
const MAX_BACKOFF_MS: u64 = 3_600_000;

#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    outbound: Outbound,
    settings: WebhookSettings,
    poll: Duration,
}

impl Deliverer {
    pub fn new(
        store: Store,
        outbound: Outbound,
        settings: WebhookSettings,
        poll: Duration,
    ) -> Self {
        Self {
            store,
            outbound,
            settings,
            poll: poll.max(Duration::from_millis(10)),
        }
    }

    /// Starts the sender loops and the outbox pruner; they stop when `shutdown` becomes true
    /// (a sender after finishing the request in flight, which the outbound timeout bounds).
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<_> = (0..SENDERS)
            .map(|n| {
                let sender = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(
                    async move { sender.run(shutdown).await }
                        .instrument(tracing::info_span!("webhook_sender", n)),
                )
            })
            .collect();
        if self.settings.webhook_retention_seconds > 0 {
            tasks.push(tokio::spawn(
                async move { self.prune(shutdown).await }
                    .instrument(tracing::info_span!("webhook_pruner")),
            ));
        }
        tasks
    }

    /// Deletes settled deliveries older than the retention period, a tenth of that period
    /// apart (between 1 s and 10 min). Every replica prunes; the deletes do not conflict.
    async fn prune(&self, mut shutdown: watch::Receiver<bool>) {
        let retention = Duration::from_secs(self.settings.webhook_retention_seconds);
        let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
        while !*shutdown.borrow() {
            let before = crate::store::now_micros() - retention.as_micros() as i64;
            match self.store.prune_deliveries(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "settled webhook deliveries deleted"),
                Err(error) => tracing::warn!(%error, "could not prune webhook deliveries"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.store.claim_delivery(self.lease_micros()).await {
                Ok(Some(delivery)) => {
                    self.deliver(delivery).await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not claim a webhook delivery"),
            }
            tokio::select! {
                _ = self.store.webhook_queued.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Long enough for one request; a sender that vanished gives the delivery back after it.
    fn lease_micros(&self) -> i64 {
        (self.outbound.timeout + Duration::from_secs(10)).as_micros() as i64
    }

    async fn deliver(&self, delivery: Delivery) {
        let span = tracing::info_span!(
            "webhook",
            event = %delivery.event_id,
            event_type = %delivery.event_type,
            job = %delivery.job.id,
            attempt = delivery.attempts
        );
        async {
            let body = body(&delivery);
            let headers = headers(&delivery, &body);
            let sent = self
                .outbound
                .send(Method::POST, &delivery.webhook_url, headers, Some(body))
                .await;
            let outcome = match sent {
                Ok(response) if response.status().is_success() => DeliveryOutcome::Delivered,
                Ok(response) => self.retry(
                    &delivery,
                    format!("the receiver answered HTTP {}", response.status().as_u16()),
                ),
                Err(error @ (OutboundError::InvalidUrl(_) | OutboundError::PrivateAddress(_))) => {
                    DeliveryOutcome::Failed {
                        error: error.to_string(),
                    }
                }
                Err(error) => self.retry(&delivery, error.to_string()),
            };
            match &outcome {
                DeliveryOutcome::Delivered => tracing::info!("webhook delivered"),
                DeliveryOutcome::Retry { error, .. } => {
                    tracing::info!(%error, "webhook delivery failed; will retry")
                }
                DeliveryOutcome::Failed { error } => {
                    tracing::warn!(%error, "webhook delivery failed; giving up")
                }
            }
            match self.store.finish_delivery(&delivery, &outcome).await {
                Ok(true) => {}
                Ok(false) => tracing::info!("delivery outcome discarded: the lease was lost"),
                Err(error) => tracing::warn!(%error, "could not record the delivery outcome"),
            }
        }
        .instrument(span)
        .await
    }

    fn retry(&self, delivery: &Delivery, error: String) -> DeliveryOutcome {
        if delivery.attempts >= i64::from(self.settings.webhook_max_attempts) {
            return DeliveryOutcome::Failed {
                error: format!("{error} (after {} attempts)", delivery.attempts),
            };
        }
        let delay = backoff_ms(self.settings.webhook_retry_base_ms, delivery.attempts);
        DeliveryOutcome::Retry {
            error,
            run_after: crate::store::now_micros() + (delay as i64) * 1000,
        }
    }
}

/// Delay after the `attempts`-th failed attempt: base, 2×base, 4×base, … capped at an hour.
fn backoff_ms(base_ms: u64, attempts: i64) -> u64 {
    let exponent = (attempts.max(1) - 1).min(30) as u32;
    base_ms.saturating_mul(1u64 << exponent).min(MAX_BACKOFF_MS)
}

/// The envelope: the event, its id and time, and the job as `GET` returned it at the event —
/// as an object with `webhook_output_format: "json"`, else JSON-encoded in a string.
fn body(delivery: &Delivery) -> Vec<u8> {
    let job = crate::api::job_event_data(&delivery.job);
    let data = match delivery.webhook_output_format.as_deref() {
        Some("json") => job,
        _ => Value::String(job.to_string()),
    };
    let envelope = json!({
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "created_at": micros_to_rfc3339(delivery.created_at),
        "project_id": delivery.job.project_id,
        "job_id": delivery.job.id,
        "status": delivery.job.status,
        "data": data,
    });
    serde_json::to_vec(&envelope).unwrap_or_default()
}

fn headers(delivery: &Delivery, body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in delivery.webhook_headers.iter().flatten() {
        // Checked when the job was created; a header that still does not parse is left out.
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static("classifyd-webhooks"));
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    };
    set("lc-event-id", &delivery.event_id);
    set("lc-event-type", &delivery.event_type);
    if let Some(secret) = delivery.signing_secret.as_deref().filter(|s| !s.is_empty()) {
        set("lc-signature", &format!("sha256={}", sign(secret, body)));
    }
    headers
}

/// Lower-case hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_ms(500, 1), 500);
        assert_eq!(backoff_ms(500, 2), 1000);
        assert_eq!(backoff_ms(500, 4), 4000);
        assert_eq!(backoff_ms(500, 60), MAX_BACKOFF_MS);
    }
}
