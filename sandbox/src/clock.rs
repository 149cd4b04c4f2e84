//! The sandbox clock: real time plus an offset that the admin API can set or advance.
//!
//! Everything time-based in the sandbox (record times, token and grant-code expiry,
//! rate-limit windows, daily budgets) reads this clock, so tests move time forward
//! instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// Real time shifted by an adjustable offset.
#[derive(Debug, Default)]
pub struct Clock {
    /// Nanoseconds, so `set` followed by `now` never reads earlier than what was set.
    offset_ns: AtomicI64,
}

impl Clock {
    /// The sandbox's current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::nanoseconds(self.offset_ns.load(Ordering::Relaxed))
    }

    /// Makes `now()` return `at` from this instant on (time keeps running from there).
    pub fn set(&self, at: DateTime<Utc>) {
        let offset = at
            .signed_duration_since(Utc::now())
            .num_nanoseconds()
            .unwrap_or(i64::MAX);
        self.offset_ns.store(offset, Ordering::Relaxed);
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        self.offset_ns
            .fetch_add(by.num_nanoseconds().unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// The current offset from real time, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ns.load(Ordering::Relaxed) / 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_forward_by_the_given_duration() {
        let clock = Clock::default();
        let before = clock.now();
        clock.advance(Duration::hours(2));
        let delta = clock.now() - before;
        assert!(delta >= Duration::hours(2) && delta < Duration::hours(2) + Duration::seconds(5));
    }

    #[test]
    fn set_pins_now_to_the_given_instant() {
        let clock = Clock::default();
        let at: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        clock.set(at);
        let delta = clock.now() - at;
        assert!(delta >= Duration::zero() && delta < Duration::seconds(5));
    }
}
