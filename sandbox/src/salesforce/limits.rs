//! Salesforce's daily API request limit: a count of REST calls over a rolling
//! 24 hours (kept in hourly buckets on the sandbox clock), reported in every
//! reply's `Sforce-Limit-Info: api-usage=n/max` and by `/limits`; once spent,
//! calls answer 403 REQUEST_LIMIT_EXCEEDED until old hours roll off.

use std::collections::VecDeque;

const HOUR_MS: i64 = 3_600_000;
const WINDOW_HOURS: i64 = 24;

/// A new org's daily API request allowance (an Enterprise org with a few licences).
pub const DEFAULT_DAILY_API_REQUESTS: u64 = 100_000;

/// An org's API request count.
#[derive(Debug, Clone)]
pub struct Usage {
    /// Requests allowed in a rolling 24 hours.
    pub max: u64,
    /// (hour number, requests) for the last 24 hours, oldest first.
    buckets: VecDeque<(i64, u64)>,
}

impl Usage {
    /// A fresh count with this allowance.
    pub fn new(max: u64) -> Self {
        Usage {
            max,
            buckets: VecDeque::new(),
        }
    }

    fn roll(&mut self, now_ms: i64) {
        let hour = now_ms.div_euclid(HOUR_MS);
        while self
            .buckets
            .front()
            .is_some_and(|(h, _)| *h <= hour - WINDOW_HOURS)
        {
            self.buckets.pop_front();
        }
    }

    /// Requests counted in the last 24 hours.
    pub fn used(&mut self, now_ms: i64) -> u64 {
        self.roll(now_ms);
        self.buckets.iter().map(|(_, n)| n).sum()
    }

    /// Counts one request, or refuses it when the allowance is spent. Returns
    /// the count after this request.
    pub fn admit(&mut self, now_ms: i64) -> Result<u64, u64> {
        let used = self.used(now_ms);
        if used >= self.max {
            return Err(used);
        }
        let hour = now_ms.div_euclid(HOUR_MS);
        match self.buckets.back_mut() {
            Some((h, n)) if *h == hour => *n += 1,
            _ => self.buckets.push_back((hour, 1)),
        }
        Ok(used + 1)
    }

    /// Spends what is left of the allowance (tests of a spent limit).
    pub fn exhaust(&mut self, now_ms: i64) {
        let used = self.used(now_ms);
        let hour = now_ms.div_euclid(HOUR_MS);
        let rest = self.max.saturating_sub(used);
        match self.buckets.back_mut() {
            Some((h, n)) if *h == hour => *n += rest,
            _ => self.buckets.push_back((hour, rest)),
        }
    }

    /// Forgets every counted request.
    pub fn reset(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_refuses_the_request_past_it_and_rolls_off_after_a_day() {
        let mut usage = Usage::new(2);
        assert_eq!(usage.admit(0), Ok(1));
        assert_eq!(usage.admit(1), Ok(2));
        assert_eq!(usage.admit(2), Err(2));
        assert_eq!(usage.admit(24 * HOUR_MS), Ok(1));
    }
}
