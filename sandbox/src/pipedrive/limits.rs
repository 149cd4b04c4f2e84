//! Pipedrive's limits: a burst limit per API token over a rolling 2-second window,
//! a daily token budget per company over a rolling 24 hours with per-call costs,
//! the search limit (10 calls per rolling 2 s per token), and the 403 HTML pages a
//! token gets after ignoring too many 429s. All windows run on the sandbox clock.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// The burst window: rolling 2 seconds.
pub const BURST_WINDOW_MS: i64 = 2_000;
/// The daily budget window: rolling 24 hours.
pub const DAILY_WINDOW_SECS: i64 = 86_400;
/// The window in which 429s are counted towards a block.
pub const ABUSE_WINDOW_MS: i64 = 10_000;

/// A company's limits, set at creation and through `PATCH /admin/pipedrive/companies/{domain}/limits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitConfig {
    /// Calls per API token in a rolling 2-second window (Pipedrive: 20 to 120 by plan).
    pub burst_limit: u32,
    /// Tokens the company may spend in a rolling 24 hours (30,000 x plan multiplier x seats).
    pub daily_budget: u64,
    /// Search calls per API token in a rolling 2-second window.
    pub search_limit: u32,
    /// More than this many 429s for one token within 10 s blocks the token; 0 disables.
    pub abuse_threshold: u32,
    /// How long a blocked token gets 403 HTML pages, in seconds.
    pub abuse_block_secs: u64,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            burst_limit: 80,
            daily_budget: 30_000 * 4 * 5,
            search_limit: 10,
            abuse_threshold: 40,
            abuse_block_secs: 10,
        }
    }
}

impl LimitConfig {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.burst_limit == 0 {
            return Err("burst_limit: must be at least 1".into());
        }
        if self.search_limit == 0 {
            return Err("search_limit: must be at least 1".into());
        }
        Ok(())
    }
}

/// What a call costs against the daily budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /api/v2/persons`.
    List,
    /// `GET /api/v2/persons/{id}`.
    Get,
    /// `POST /api/v2/persons` and `PATCH /api/v2/persons/{id}`.
    Write,
    /// `DELETE /api/v2/persons/{id}`.
    Delete,
    /// `GET /api/v2/persons/search`.
    Search,
    /// `GET /api/v1/personFields`, `/api/v1/users`, `/api/v1/users/me`, `/api/v1/recents`.
    V1,
}

impl Op {
    /// Tokens this call takes from the daily budget.
    pub fn cost(self) -> u64 {
        match self {
            Op::List => 10,
            Op::Get => 1,
            Op::Write => 5,
            Op::Delete => 3,
            Op::Search => 20,
            Op::V1 => 20,
        }
    }
}

/// The values of the rate-limit headers on a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// `x-ratelimit-limit`.
    pub limit: u32,
    /// `x-ratelimit-remaining`.
    pub remaining: u32,
    /// `x-ratelimit-reset`: whole seconds until the oldest call leaves the burst window.
    pub reset: i64,
    /// `x-daily-requests-left`: budget tokens left.
    pub daily_left: u64,
}

/// Whether a call may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run it.
    Allowed(RateHeaders),
    /// Over the burst limit.
    Burst(RateHeaders),
    /// Over the daily budget.
    Daily(RateHeaders),
    /// Over the search limit.
    Search(RateHeaders),
    /// The token is blocked for ignoring 429s.
    Blocked,
}

/// Counters of one token.
#[derive(Debug, Default)]
struct TokenUsage {
    burst: VecDeque<i64>,
    search: VecDeque<i64>,
    rejections: VecDeque<i64>,
    blocked_until_ms: Option<i64>,
}

/// A company's limits and what has been used of them.
#[derive(Debug, Default)]
pub struct Usage {
    /// The configured limits.
    pub config: LimitConfig,
    /// Spent tokens by second, oldest first, within the last 24 h.
    daily: VecDeque<(i64, u64)>,
    daily_used: u64,
    tokens: HashMap<String, TokenUsage>,
}

/// One token's counters, as the admin API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct TokenReport {
    /// The API token.
    pub token: String,
    /// Calls in the current 2-second burst window.
    pub burst_window_count: usize,
    /// Search calls in the current 2-second window.
    pub search_window_count: usize,
    /// 429s in the last 10 seconds.
    pub recent_429s: usize,
    /// Milliseconds the token stays blocked, when it is.
    pub blocked_for_ms: Option<i64>,
}

fn prune(window: &mut VecDeque<i64>, now_ms: i64, width_ms: i64) {
    while window.front().is_some_and(|&t| t <= now_ms - width_ms) {
        window.pop_front();
    }
}

impl Usage {
    /// Fresh counters under `config`.
    pub fn new(config: LimitConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    fn prune_daily(&mut self, now_ms: i64) {
        let now = now_ms.div_euclid(1000);
        while let Some(&(at, cost)) = self.daily.front() {
            if at > now - DAILY_WINDOW_SECS {
                break;
            }
            self.daily_used -= cost;
            self.daily.pop_front();
        }
    }

    fn spend(&mut self, now_ms: i64, cost: u64) {
        let now = now_ms.div_euclid(1000);
        match self.daily.back_mut() {
            Some((at, spent)) if *at == now => *spent += cost,
            _ => self.daily.push_back((now, cost)),
        }
        self.daily_used += cost;
    }

    /// Tokens spent in the last 24 hours.
    pub fn daily_used(&mut self, now_ms: i64) -> u64 {
        self.prune_daily(now_ms);
        self.daily_used
    }

    /// Spends whatever is left of the daily budget now.
    pub fn exhaust_daily(&mut self, now_ms: i64) {
        self.prune_daily(now_ms);
        let left = self.config.daily_budget.saturating_sub(self.daily_used);
        if left > 0 {
            self.spend(now_ms, left);
        }
    }

    /// Decides whether one call of `op` with `token` may run, and counts it.
    pub fn admit(&mut self, token: &str, op: Op, now_ms: i64) -> Verdict {
        self.prune_daily(now_ms);
        let config = self.config.clone();
        let daily_left_before = config.daily_budget.saturating_sub(self.daily_used);
        let usage = self.tokens.entry(token.to_owned()).or_default();
        prune(&mut usage.burst, now_ms, BURST_WINDOW_MS);
        prune(&mut usage.search, now_ms, BURST_WINDOW_MS);
        prune(&mut usage.rejections, now_ms, ABUSE_WINDOW_MS);
        if let Some(until) = usage.blocked_until_ms {
            if until > now_ms {
                return Verdict::Blocked;
            }
            usage.blocked_until_ms = None;
        }
        let headers = |usage: &TokenUsage, daily_left: u64| RateHeaders {
            limit: config.burst_limit,
            remaining: config.burst_limit.saturating_sub(usage.burst.len() as u32),
            reset: usage.burst.front().map_or(0, |&oldest| {
                (oldest + BURST_WINDOW_MS - now_ms + 999).div_euclid(1000)
            }),
            daily_left,
        };
        let rejected = if usage.burst.len() >= config.burst_limit as usize {
            Some(Verdict::Burst(headers(usage, daily_left_before)))
        } else if op.cost() > daily_left_before {
            Some(Verdict::Daily(headers(usage, daily_left_before)))
        } else if op == Op::Search && usage.search.len() >= config.search_limit as usize {
            Some(Verdict::Search(headers(usage, daily_left_before)))
        } else {
            None
        };
        if let Some(verdict) = rejected {
            usage.rejections.push_back(now_ms);
            if config.abuse_threshold > 0
                && usage.rejections.len() > config.abuse_threshold as usize
            {
                usage.blocked_until_ms = Some(now_ms + config.abuse_block_secs as i64 * 1000);
                usage.rejections.clear();
            }
            return verdict;
        }
        usage.burst.push_back(now_ms);
        if op == Op::Search {
            usage.search.push_back(now_ms);
        }
        let verdict = Verdict::Allowed(headers(usage, daily_left_before - op.cost()));
        self.spend(now_ms, op.cost());
        verdict
    }

    /// Every token's counters, for the admin API.
    pub fn report(&mut self, now_ms: i64) -> Vec<TokenReport> {
        let mut rows: Vec<TokenReport> = self
            .tokens
            .iter_mut()
            .map(|(token, usage)| {
                prune(&mut usage.burst, now_ms, BURST_WINDOW_MS);
                prune(&mut usage.search, now_ms, BURST_WINDOW_MS);
                prune(&mut usage.rejections, now_ms, ABUSE_WINDOW_MS);
                TokenReport {
                    token: token.clone(),
                    burst_window_count: usage.burst.len(),
                    search_window_count: usage.search.len(),
                    recent_429s: usage.rejections.len(),
                    blocked_for_ms: usage
                        .blocked_until_ms
                        .filter(|&u| u > now_ms)
                        .map(|u| u - now_ms),
                }
            })
            .collect();
        rows.sort_by(|a, b| a.token.cmp(&b.token));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_window_frees_slots_after_two_seconds() {
        let mut usage = Usage::new(LimitConfig {
            burst_limit: 2,
            ..LimitConfig::default()
        });
        assert!(matches!(usage.admit("t", Op::Get, 0), Verdict::Allowed(_)));
        assert!(matches!(
            usage.admit("t", Op::Get, 500),
            Verdict::Allowed(_)
        ));
        let Verdict::Burst(h) = usage.admit("t", Op::Get, 1_000) else {
            panic!("expected burst")
        };
        assert_eq!((h.remaining, h.reset), (0, 1));
        assert!(matches!(
            usage.admit("t", Op::Get, 2_000),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            usage.admit("other", Op::Get, 2_000),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn the_daily_budget_rolls_over_24_hours() {
        let mut usage = Usage::new(LimitConfig {
            daily_budget: 20,
            ..LimitConfig::default()
        });
        assert!(matches!(usage.admit("t", Op::List, 0), Verdict::Allowed(_)));
        assert!(matches!(
            usage.admit("t", Op::List, 10_000),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            usage.admit("t", Op::Get, 20_000),
            Verdict::Daily(_)
        ));
        assert!(matches!(
            usage.admit("t", Op::Get, 86_400_000),
            Verdict::Allowed(_)
        ));
        assert_eq!(usage.daily_used(86_400_000), 11);
    }

    #[test]
    fn more_429s_than_the_threshold_block_the_token() {
        let mut usage = Usage::new(LimitConfig {
            burst_limit: 1,
            abuse_threshold: 2,
            abuse_block_secs: 10,
            ..LimitConfig::default()
        });
        usage.admit("t", Op::Get, 0);
        for _ in 0..3 {
            assert!(matches!(usage.admit("t", Op::Get, 10), Verdict::Burst(_)));
        }
        assert_eq!(usage.admit("t", Op::Get, 5_000), Verdict::Blocked);
        assert!(matches!(
            usage.admit("t", Op::Get, 10_010),
            Verdict::Allowed(_)
        ));
    }
}
