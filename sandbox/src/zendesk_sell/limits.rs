//! Sell's rate limit: 36,000 requests per hour per access token, at most 10
//! per second, over rolling windows on the sandbox clock. A refused request
//! answers 429 and is not counted. Zendesk documents no rate-limit headers for
//! Sell, so none are sent (and no `Retry-After`).

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

const SECOND_MS: i64 = 1_000;
const HOUR_MS: i64 = 3_600_000;

/// An account's limits, per access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitConfig {
    /// Requests per token in a rolling hour (Sell: 36,000).
    pub hourly: u64,
    /// Requests per token in a rolling second (Sell: 10).
    pub per_second: u64,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            hourly: 36_000,
            per_second: 10,
        }
    }
}

impl LimitConfig {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.hourly == 0 {
            return Err("hourly: must be at least 1".into());
        }
        if self.per_second == 0 {
            return Err("per_second: must be at least 1".into());
        }
        Ok(())
    }
}

/// The counts of an account's tokens.
#[derive(Debug, Default)]
pub struct Limits {
    /// The limits in force.
    pub config: LimitConfig,
    /// Admitted request times (ms) per token over the last hour, oldest first.
    calls: HashMap<String, VecDeque<i64>>,
}

impl Limits {
    /// Counts with these limits.
    pub fn new(config: LimitConfig) -> Self {
        Limits {
            config,
            calls: HashMap::new(),
        }
    }

    /// Admits one request of `token` at `now_ms`, or refuses it (false).
    pub fn admit(&mut self, token: &str, now_ms: i64) -> bool {
        let calls = self.calls.entry(token.to_owned()).or_default();
        while calls.front().is_some_and(|t| *t <= now_ms - HOUR_MS) {
            calls.pop_front();
        }
        let last_second = calls
            .iter()
            .rev()
            .take_while(|t| **t > now_ms - SECOND_MS)
            .count() as u64;
        if calls.len() as u64 >= self.config.hourly || last_second >= self.config.per_second {
            return false;
        }
        calls.push_back(now_ms);
        true
    }

    /// Requests counted in the last hour, all tokens together.
    pub fn used(&mut self, now_ms: i64) -> u64 {
        self.calls
            .values_mut()
            .map(|calls| {
                while calls.front().is_some_and(|t| *t <= now_ms - HOUR_MS) {
                    calls.pop_front();
                }
                calls.len() as u64
            })
            .sum()
    }

    /// Forgets every counted request.
    pub fn reset(&mut self) {
        self.calls.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_request_in_a_second_is_refused_and_the_next_second_admits() {
        let mut limits = Limits::new(LimitConfig::default());
        for i in 0..10 {
            assert!(limits.admit("t", 1_000 + i));
        }
        assert!(!limits.admit("t", 1_500));
        assert!(limits.admit("other", 1_500), "limits are per token");
        assert!(limits.admit("t", 2_000));
    }

    #[test]
    fn the_hourly_allowance_rolls_off_after_an_hour() {
        let mut limits = Limits::new(LimitConfig {
            hourly: 2,
            per_second: 10,
        });
        assert!(limits.admit("t", 0));
        assert!(limits.admit("t", 5_000));
        assert!(!limits.admit("t", 10_000));
        assert!(limits.admit("t", HOUR_MS + 1));
        assert_eq!(limits.used(HOUR_MS + 1), 2);
    }
}
