//! Rate limits (issue 20): failed authentications per client address, which
//! makes guessing tokens and API keys slow, and requests per tenant, which
//! keeps one tenant's script from starving the others. Both are GCRA
//! limiters keyed by address or tenant (`governor`); keys whose allowance is
//! back to full are forgotten from time to time, so the maps stay as small
//! as the set of recent clients.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;

/// The limits, as configured (`CRMSYNC_RATE_LIMIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Requests per second one tenant may send, on average; 0 turns the
    /// limit off.
    pub tenant_per_sec: u32,
    /// Requests a tenant may send at once before the pace applies.
    pub tenant_burst: u32,
    /// Failed authentications per minute from one client address, on
    /// average; 0 turns the limit off.
    pub auth_failures_per_min: u32,
    /// Failed authentications an address may have at once before the pace
    /// applies.
    pub auth_failures_burst: u32,
}

impl RateLimitSettings {
    /// Requests per second per tenant by default: far above what a busy
    /// dashboard or a partner's setup script sends.
    pub const DEFAULT_TENANT_PER_SEC: u32 = 100;
    /// Failed authentications per minute per address by default: a person
    /// mistyping a token never meets it, a guesser meets it at once.
    pub const DEFAULT_AUTH_FAILURES_PER_MIN: u32 = 10;

    /// Limits at these paces, with bursts of three seconds of a tenant's
    /// pace (a script creating a few hundred contacts in a loop fits) and two
    /// minutes of failures.
    pub fn new(tenant_per_sec: u32, auth_failures_per_min: u32) -> Self {
        Self {
            tenant_per_sec,
            tenant_burst: tenant_per_sec.saturating_mul(3),
            auth_failures_per_min,
            auth_failures_burst: auth_failures_per_min.saturating_mul(2),
        }
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self::new(
            Self::DEFAULT_TENANT_PER_SEC,
            Self::DEFAULT_AUTH_FAILURES_PER_MIN,
        )
    }
}

/// The process's limiters.
pub struct RateLimits {
    settings: RateLimitSettings,
    tenants: Option<DefaultKeyedRateLimiter<String>>,
    auth_failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses over their failure limit, and until when: they are refused
    /// before their credentials are even checked, so that a guess that
    /// happens to be right is no answer while the limit holds.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// Checks made, to forget stale keys every [`SWEEP_EVERY`] checks.
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Stale keys are forgotten once every this many checks.
const SWEEP_EVERY: u64 = 1024;

impl RateLimits {
    /// Limiters for these settings (a 0 pace is no limiter).
    pub fn new(settings: RateLimitSettings) -> Self {
        let quota = |pace: u32, burst: u32, per: fn(NonZeroU32) -> Quota| {
            let pace = NonZeroU32::new(pace)?;
            let burst = NonZeroU32::new(burst).unwrap_or(pace);
            Some(per(pace).allow_burst(burst))
        };
        Self {
            settings,
            tenants: quota(
                settings.tenant_per_sec,
                settings.tenant_burst,
                Quota::per_second,
            )
            .map(DefaultKeyedRateLimiter::keyed),
            auth_failures: quota(
                settings.auth_failures_per_min,
                settings.auth_failures_burst,
                Quota::per_minute,
            )
            .map(DefaultKeyedRateLimiter::keyed),
            blocked: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }

    /// The settings these limits follow.
    pub fn settings(&self) -> RateLimitSettings {
        self.settings
    }

    /// Refused (RATE_LIMITED, with the wait) while `client` is over its limit
    /// of failed authentications. `None` (an unknown address) is not limited.
    pub(crate) fn before_authentication(
        &self,
        client: Option<IpAddr>,
    ) -> Result<(), (ApiError, Duration)> {
        let (Some(_), Some(client)) = (&self.auth_failures, client) else {
            return Ok(());
        };
        let key = address_key(client);
        let mut blocked = self.blocked.lock().expect("not poisoned");
        match blocked.get(&key).copied() {
            Some(until) if until > Instant::now() => Err(too_many_failures(until - Instant::now())),
            Some(_) => {
                blocked.remove(&key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed authentication from `client`; refused when this one
    /// is over the limit (the address is then refused until it may try again).
    pub(crate) fn authentication_failed(
        &self,
        client: Option<IpAddr>,
    ) -> Result<(), (ApiError, Duration)> {
        let (Some(limiter), Some(client)) = (&self.auth_failures, client) else {
            return Ok(());
        };
        self.sweep();
        let key = address_key(client);
        let Err(not_until) = limiter.check_key(&key) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(limiter.clock().now());
        self.blocked
            .lock()
            .expect("not poisoned")
            .insert(key, Instant::now() + wait);
        Err(too_many_failures(wait))
    }

    /// Counts one request of `tenant`; refused when over the tenant's pace.
    pub(crate) fn tenant_request(&self, tenant: &str) -> Result<(), (ApiError, Duration)> {
        let Some(limiter) = &self.tenants else {
            return Ok(());
        };
        self.sweep();
        let Err(not_until) = limiter.check_key(&tenant.to_owned()) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(limiter.clock().now());
        let message = format!(
            "this tenant sent more than {} requests per second (CRMSYNC_RATE_LIMIT_TENANT_PER_SEC): try again in {} s",
            self.settings.tenant_per_sec,
            retry_after_secs(wait)
        );
        Err((ApiError::RateLimited(message), wait))
    }

    /// Forgets keys whose allowance is full again (and lapsed blocks), once
    /// every [`SWEEP_EVERY`] checks: the cost is spread over the requests.
    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        if let Some(limiter) = &self.auth_failures {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.tenants {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        let mut blocked = self.blocked.lock().expect("not poisoned");
        blocked.retain(|_, until| *until > now);
        blocked.shrink_to_fit();
    }

    /// Keys held, for tests of the bound: (tenants, addresses, blocked).
    #[cfg(test)]
    fn keys_held(&self) -> (usize, usize, usize) {
        (
            self.tenants.as_ref().map_or(0, |l| l.len()),
            self.auth_failures.as_ref().map_or(0, |l| l.len()),
            self.blocked.lock().expect("not poisoned").len(),
        )
    }
}

fn too_many_failures(wait: Duration) -> (ApiError, Duration) {
    let message = format!(
        "too many failed authentications from this address (CRMSYNC_RATE_LIMIT_AUTH_FAILURES_PER_MIN): try again in {} s",
        retry_after_secs(wait)
    );
    (ApiError::RateLimited(message), wait)
}

/// A wait in whole seconds, rounded up, at least 1: `Retry-After` has no
/// fractions, and 0 would invite an immediate retry that is refused again.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The key of a client address: IPv4 as is (IPv4-mapped IPv6 too); IPv6 by
/// its /64, since one host commonly holds a whole /64 and could otherwise
/// use a fresh address for every guess.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn stale_keys_are_forgotten_so_the_maps_stay_bounded() {
        let limits = RateLimits::new(RateLimitSettings {
            tenant_per_sec: 1000,
            tenant_burst: 1,
            auth_failures_per_min: 10,
            auth_failures_burst: 20,
        });
        // Each tenant's one request is replenished within a millisecond;
        // the sweep (every SWEEP_EVERY checks) drops them.
        for i in 0..(3 * SWEEP_EVERY) {
            let _ = limits.tenant_request(&format!("tenant-{i}"));
            if i % 256 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let (tenants, _, _) = limits.keys_held();
        assert!(tenants < SWEEP_EVERY as usize, "{tenants} keys held");
    }

    #[test]
    fn a_zero_pace_turns_a_limit_off() {
        let limits = RateLimits::new(RateLimitSettings::new(0, 0));
        let client = Some("192.0.2.1".parse().unwrap());
        for _ in 0..1000 {
            assert!(limits.tenant_request("t").is_ok());
            assert!(limits.authentication_failed(client).is_ok());
            assert!(limits.before_authentication(client).is_ok());
        }
    }
}
