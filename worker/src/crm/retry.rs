//! Retrying CRM calls, shared by every client: how many attempts, the jittered
//! exponential backoff, and the loop that separates rate limits (wait as long as
//! the CRM asks) from unavailability (back off, then try again).

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::CrmError;

/// How hard a client tries before giving up on a call.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts for 5xx, timeouts and dropped connections.
    pub attempts: u32,
    /// Attempts for 429s (each waits as long as the CRM asks).
    pub rate_limit_attempts: u32,
    /// First backoff delay; doubled per attempt, with jitter.
    pub base_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// How long one call may take.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            rate_limit_attempts: 12,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        // Full jitter between half and all of the delay: retries of several
        // workers spread out instead of arriving together.
        let ms = exp.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
    }

    /// How long to wait after the `attempt`-th 429: what the CRM asked, else a backoff.
    pub(crate) fn rate_limit_wait(&self, retry_after: Option<Duration>, attempt: u32) -> Duration {
        retry_after.unwrap_or_else(|| self.backoff(attempt + 2))
    }

    /// Runs `send` until it succeeds, fails permanently, or the attempts run out.
    /// After a 429, `wait` is called with the delay (a client may pause all its
    /// calls, not only this one); after a 5xx or transport failure, it backs off.
    pub(crate) async fn run<T, Send, SendFut, Wait, WaitFut>(
        &self,
        crm: &str,
        path: &str,
        mut send: Send,
        wait: Wait,
    ) -> Result<T, CrmError>
    where
        Send: FnMut() -> SendFut,
        SendFut: Future<Output = Result<T, CrmError>>,
        Wait: Fn(Duration) -> WaitFut,
        WaitFut: Future<Output = ()>,
    {
        let mut failures = 0;
        let mut limited = 0;
        loop {
            match send().await {
                Err(CrmError::RateLimited { retry_after }) => {
                    limited += 1;
                    if limited >= self.rate_limit_attempts {
                        return Err(CrmError::RateLimited { retry_after });
                    }
                    let delay = self.rate_limit_wait(retry_after, limited);
                    tracing::debug!(crm, path, ?delay, "rate limited: waiting");
                    wait(delay).await;
                }
                Err(CrmError::Unavailable(message)) => {
                    failures += 1;
                    if failures >= self.attempts {
                        return Err(CrmError::Unavailable(message));
                    }
                    tracing::debug!(crm, path, failures, %message, "retrying");
                    tokio::time::sleep(self.backoff(failures)).await;
                }
                other => return other,
            }
        }
    }
}

/// Timeouts, refused and dropped connections: worth a retry.
/// A call the outbound rule refused at resolution is not one of them.
pub(crate) fn transport_error(crm: &str, e: reqwest::Error) -> CrmError {
    if let Some(refused) = crate::egress::refusal(&e) {
        return refused.clone().into();
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection lost"
    };
    CrmError::Unavailable(format!("{crm} {what}: {e}"))
}
