//! HubSpot's API limits: a rolling 10-second limit per app and portal, a daily
//! limit per portal that resets at midnight (UTC on the sandbox clock), and the
//! search endpoints' own limit of a few requests per second per portal. All
//! windows run on the sandbox clock.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// The rolling window of the per-app limit.
pub const INTERVAL_MS: i64 = 10_000;
/// The search limit's window.
pub const SEARCH_WINDOW_MS: i64 = 1_000;

/// A portal's limits, set at creation and through `PATCH /admin/hubspot/portals/{id}/limits`.
/// Defaults are HubSpot's published figures for a Professional account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitConfig {
    /// Requests per private app in a rolling 10 seconds (Professional: 190).
    pub ten_secondly: u32,
    /// Requests per OAuth (public) app in a rolling 10 seconds (110).
    pub oauth_ten_secondly: u32,
    /// Requests per portal per day (Professional: 625,000).
    pub daily: u64,
    /// Search requests per portal per second (5).
    pub search_per_second: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            ten_secondly: 190,
            oauth_ten_secondly: 110,
            daily: 625_000,
            search_per_second: 5,
        }
    }
}

impl LimitConfig {
    /// Limits no test reaches unless it sets them (the conformance kit's accounts).
    pub fn generous() -> Self {
        Self {
            ten_secondly: 1_000_000,
            oauth_ten_secondly: 1_000_000,
            daily: 1_000_000_000,
            search_per_second: 1_000_000,
        }
    }

    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.ten_secondly == 0 {
            return Err("ten_secondly: must be at least 1".into());
        }
        if self.oauth_ten_secondly == 0 {
            return Err("oauth_ten_secondly: must be at least 1".into());
        }
        if self.search_per_second == 0 {
            return Err("search_per_second: must be at least 1".into());
        }
        Ok(())
    }
}

/// What a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Any CRM call but search: the 10-second and daily limits.
    Normal,
    /// `POST .../search`: the search limit and the daily limit.
    Search,
}

/// The numbers the `X-HubSpot-RateLimit-*` headers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// The 10-second limit of the caller's app.
    pub max: u32,
    /// What is left of it.
    pub remaining: u32,
    /// The daily limit.
    pub daily: u64,
    /// What is left of it.
    pub daily_remaining: u64,
    /// The search limit and what is left of it, on search replies.
    pub secondly: Option<(u32, u32)>,
}

/// Whether a request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed(RateHeaders),
    /// The 10-second limit is spent (policy TEN_SECONDLY_ROLLING).
    TenSecondly(RateHeaders),
    /// The search limit is spent (policy SECONDLY).
    Secondly(RateHeaders),
    /// The daily limit is spent (policy DAILY).
    Daily(RateHeaders),
}

/// Limits and the windows that count against them.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// The configured limits.
    pub config: LimitConfig,
    windows: HashMap<String, VecDeque<i64>>,
    search: VecDeque<i64>,
    day: i64,
    /// Requests counted today.
    pub daily_used: u64,
}

impl Usage {
    /// Usage under these limits, nothing spent.
    pub fn new(config: LimitConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    fn roll_day(&mut self, now_ms: i64) {
        let day = now_ms.div_euclid(86_400_000);
        if day != self.day {
            self.day = day;
            self.daily_used = 0;
        }
    }

    /// Counts a request by `app` (`private` or an OAuth client id) if the limits allow it.
    pub fn admit(&mut self, app: &str, oauth: bool, op: Op, now_ms: i64) -> Verdict {
        self.roll_day(now_ms);
        let max = if oauth {
            self.config.oauth_ten_secondly
        } else {
            self.config.ten_secondly
        };
        let window = self.windows.entry(app.to_owned()).or_default();
        while window.front().is_some_and(|t| *t <= now_ms - INTERVAL_MS) {
            window.pop_front();
        }
        while self
            .search
            .front()
            .is_some_and(|t| *t <= now_ms - SEARCH_WINDOW_MS)
        {
            self.search.pop_front();
        }
        let used = window.len() as u32;
        let search_max = self.config.search_per_second;
        let search_used = self.search.len() as u32;
        let mut headers = RateHeaders {
            max,
            remaining: max.saturating_sub(used),
            daily: self.config.daily,
            daily_remaining: self.config.daily.saturating_sub(self.daily_used),
            secondly: (op == Op::Search)
                .then_some((search_max, search_max.saturating_sub(search_used))),
        };
        if self.daily_used >= self.config.daily {
            return Verdict::Daily(headers);
        }
        match op {
            Op::Normal => {
                if used >= max {
                    return Verdict::TenSecondly(headers);
                }
                window.push_back(now_ms);
                headers.remaining = max - used - 1;
            }
            Op::Search => {
                if search_used >= search_max {
                    return Verdict::Secondly(headers);
                }
                self.search.push_back(now_ms);
                headers.secondly = Some((search_max, search_max - search_used - 1));
            }
        }
        self.daily_used += 1;
        headers.daily_remaining = self.config.daily - self.daily_used;
        Verdict::Allowed(headers)
    }

    /// Spends what is left of today's limit.
    pub fn exhaust_daily(&mut self, now_ms: i64) {
        self.roll_day(now_ms);
        self.daily_used = self.daily_used.max(self.config.daily);
    }

    /// Requests counted today, as of `now_ms`.
    pub fn daily_used_at(&mut self, now_ms: i64) -> u64 {
        self.roll_day(now_ms);
        self.daily_used
    }

    /// Requests in the current 10-second window, by app.
    pub fn window_used(&mut self, now_ms: i64) -> HashMap<String, usize> {
        self.windows
            .iter_mut()
            .map(|(app, w)| {
                while w.front().is_some_and(|t| *t <= now_ms - INTERVAL_MS) {
                    w.pop_front();
                }
                (app.clone(), w.len())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ten_second_window_rolls() {
        let mut usage = Usage::new(LimitConfig {
            ten_secondly: 2,
            ..LimitConfig::default()
        });
        assert!(
            matches!(usage.admit("private", false, Op::Normal, 0), Verdict::Allowed(h) if h.remaining == 1)
        );
        assert!(
            matches!(usage.admit("private", false, Op::Normal, 1), Verdict::Allowed(h) if h.remaining == 0)
        );
        assert!(matches!(
            usage.admit("private", false, Op::Normal, 2),
            Verdict::TenSecondly(_)
        ));
        assert!(matches!(
            usage.admit("other", true, Op::Normal, 2),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            usage.admit("private", false, Op::Normal, 10_001),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn the_daily_limit_resets_at_midnight() {
        let mut usage = Usage::new(LimitConfig {
            daily: 1,
            ..LimitConfig::default()
        });
        let day = 86_400_000;
        assert!(
            matches!(usage.admit("a", false, Op::Normal, day + 5), Verdict::Allowed(h) if h.daily_remaining == 0)
        );
        assert!(matches!(
            usage.admit("a", false, Op::Search, day + 6),
            Verdict::Daily(_)
        ));
        assert!(matches!(
            usage.admit("a", false, Op::Normal, 2 * day),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn search_has_its_own_per_second_limit() {
        let mut usage = Usage::new(LimitConfig {
            search_per_second: 1,
            ..LimitConfig::default()
        });
        assert!(
            matches!(usage.admit("a", false, Op::Search, 0), Verdict::Allowed(h) if h.secondly == Some((1, 0)))
        );
        assert!(matches!(
            usage.admit("a", false, Op::Search, 500),
            Verdict::Secondly(_)
        ));
        assert!(matches!(
            usage.admit("a", false, Op::Normal, 500),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            usage.admit("a", false, Op::Search, 1_000),
            Verdict::Allowed(_)
        ));
    }
}
