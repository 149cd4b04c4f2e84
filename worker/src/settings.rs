//! Connector settings (C5), stored as JSON on the connector, validated as a whole.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crmsync_entity::Email;
use crmsync_entity::enums::CrmModule;
use serde::{Deserialize, Serialize};

use crate::crm::{ClientOptions, Description};

/// A validation failure: `field` is the path inside the settings (`minScoreToExport`,
/// `notifyEmails[1]`), in the GraphQL input's spelling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Where, relative to the object validated.
    pub field: String,
    /// Why, in words a person can act on.
    pub message: String,
}

impl FieldError {
    /// A failure at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A connector's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorSettings {
    /// CRM modules imported (by default those the CRM's kit names; a module
    /// that does not flow to the CRM is read into the platform only).
    pub import_modules: Vec<CrmModule>,
    /// The CRM field a record must carry to be imported (e.g. `sync_to_plezi`).
    pub filter_field: Option<String>,
    /// The value it must hold (e.g. `yes`).
    pub filter_value: Option<String>,
    /// Contacts with a behaviour score below this are not exported.
    pub min_score_to_export: i32,
    /// Who is told after each run.
    pub notify_emails: Vec<String>,
    /// "every 2h", "every 30m", or a cron expression.
    pub schedule: String,
    /// Owner of records whose owner e-mail matches no CRM user.
    pub default_owner_email: Option<String>,
    /// The CRM account's edition (one of the kit's `Limits::editions`), which
    /// sets how many calls may run at once.
    #[serde(default)]
    pub crm_edition: Option<String>,
    /// Calls in flight at once against the CRM; overrides the edition's limit.
    #[serde(default)]
    pub max_concurrent_calls: Option<u32>,
    /// Requests per second the CRM account allows, where its vendor raised
    /// the documented limit (for CRMs the client paces per second,
    /// `Limits::per_second`); `None`: the documented limit.
    #[serde(default)]
    pub max_requests_per_second: Option<u32>,
    /// Let the CRM run its workflow rules on the records we write (where the
    /// kit's `Limits::workflows` says it can).
    #[serde(default)]
    pub run_workflows: bool,
    /// The company a record created in the CRM gets when the contact has
    /// none, for CRMs that require one (a lead's company).
    #[serde(default)]
    pub default_company: Option<String>,
    /// A CRM record found deleted archives its platform contact too (S12);
    /// off, only the link goes.
    #[serde(default)]
    pub sync_deletions: bool,
    /// A contact whose CRM record was deleted, changed afterwards, creates
    /// the record again (S12); off, the export rejects it (DELETED_IN_CRM).
    #[serde(default)]
    pub recreate_deleted: bool,
    /// Subscribe to the CRM's change notifications (real time), where its
    /// kit supports them; polling on the schedule goes on either way.
    /// Settings stored before the setting existed read as on (false is kept
    /// for kinds without notifications by [`ConnectorSettings::validate_with`]).
    #[serde(default = "on")]
    pub realtime: bool,
}

fn on() -> bool {
    true
}

/// The longest default company (CRMs' company fields hold 255 characters).
pub const MAX_COMPANY: usize = 255;

/// The most calls in flight a connector may ask for.
pub const MAX_CONCURRENT_CALLS: u32 = 50;

/// The most requests per second a connector may say its account allows.
pub const MAX_REQUESTS_PER_SECOND: u32 = 1_000;

impl ConnectorSettings {
    /// The defaults for a kind of CRM.
    pub fn defaults_for(kit: &Description) -> Self {
        Self {
            import_modules: kit.default_import_modules(),
            filter_field: None,
            filter_value: None,
            min_score_to_export: 0,
            notify_emails: Vec::new(),
            schedule: "every 2h".to_owned(),
            default_owner_email: None,
            crm_edition: None,
            max_concurrent_calls: None,
            max_requests_per_second: None,
            run_workflows: false,
            default_company: None,
            sync_deletions: false,
            recreate_deleted: false,
            realtime: crate::realtime::supported(kit.kind),
        }
    }

    /// True when the connector's CRM should notify its changes: the setting
    /// is on and the kind supports notifications.
    pub fn wants_realtime(&self, kit: &Description) -> bool {
        self.realtime && crate::realtime::supported(kit.kind)
    }

    /// How the connector's CRM client treats the account.
    pub fn client_options(&self, kit: &Description) -> ClientOptions {
        let by_edition = self.crm_edition.as_deref().and_then(|e| {
            kit.limits
                .editions
                .iter()
                .find(|(name, _)| *name == e)
                .map(|(_, limit)| *limit)
        });
        ClientOptions {
            max_concurrent_calls: self.max_concurrent_calls.or(by_edition),
            run_workflows: self.run_workflows,
            default_company: self.default_company.clone(),
            requests_per_second: self.max_requests_per_second,
        }
    }

    /// Checks every setting for a connector of the kit's kind, with schedules
    /// at least [`DEFAULT_MIN_INTERVAL`] apart; e-mails come back normalised.
    pub fn validate(self, kit: &Description) -> Result<Self, FieldError> {
        self.validate_with(kit, DEFAULT_MIN_INTERVAL)
    }

    /// Checks every setting for a connector of the kit's kind, with schedules
    /// at least `min_interval` apart (`CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS`).
    pub fn validate_with(
        mut self,
        kit: &Description,
        min_interval: Duration,
    ) -> Result<Self, FieldError> {
        let kind = kit.kind;
        // Real time is only ever on where the kind supports it (a request
        // to turn it on elsewhere is refused by the caller, by name).
        self.realtime &= crate::realtime::supported(kind);
        if self.import_modules.is_empty() {
            return Err(FieldError::new(
                "importModules",
                "choose at least one module",
            ));
        }
        for (i, module) in self.import_modules.iter().enumerate() {
            if !kit.has_module(*module) {
                return Err(FieldError::new(
                    format!("importModules[{i}]"),
                    format!(
                        "{module} is not a module of {kind}; it has {}",
                        kit.module_names()
                    ),
                ));
            }
        }
        let mut seen = Vec::new();
        self.import_modules.retain(|m| {
            if seen.contains(m) {
                false
            } else {
                seen.push(*m);
                true
            }
        });
        match (&self.filter_field, &self.filter_value) {
            (Some(f), _) if f.trim().is_empty() => {
                return Err(FieldError::new(
                    "filterField",
                    "must not be blank; leave it out for no filter",
                ));
            }
            (Some(_), None) => {
                return Err(FieldError::new(
                    "filterValue",
                    "a filter field needs the value records must hold",
                ));
            }
            (None, Some(_)) => {
                return Err(FieldError::new(
                    "filterField",
                    "a filter value needs the field that holds it",
                ));
            }
            _ => {}
        }
        if self.min_score_to_export < 0 {
            return Err(FieldError::new("minScoreToExport", "must not be negative"));
        }
        for (i, email) in self.notify_emails.iter_mut().enumerate() {
            *email = Email::parse(email)
                .map_err(|e| FieldError::new(format!("notifyEmails[{i}]"), format!("{e}")))?
                .into_string();
        }
        let schedule =
            Schedule::parse(&self.schedule).map_err(|m| FieldError::new("schedule", m))?;
        if schedule.shortest_gap() < min_interval {
            return Err(FieldError::new(
                "schedule",
                format!(
                    "\"{}\" runs more often than the shortest interval allowed ({})",
                    self.schedule.trim(),
                    human(min_interval)
                ),
            ));
        }
        self.schedule = self.schedule.trim().to_owned();
        if let Some(edition) = &mut self.crm_edition {
            let wanted = edition.trim().to_uppercase();
            let names: Vec<&str> = kit.limits.editions.iter().map(|(n, _)| *n).collect();
            if names.is_empty() {
                return Err(FieldError::new(
                    "crmEdition",
                    format!("{kind} connectors have no edition setting; leave it out"),
                ));
            }
            if !names.contains(&wanted.as_str()) {
                return Err(FieldError::new(
                    "crmEdition",
                    format!("must be one of {}", names.join(", ")),
                ));
            }
            *edition = wanted;
        }
        if let Some(n) = self.max_concurrent_calls
            && !(1..=MAX_CONCURRENT_CALLS).contains(&n)
        {
            return Err(FieldError::new(
                "maxConcurrentCalls",
                format!("must be 1 to {MAX_CONCURRENT_CALLS}"),
            ));
        }
        if let Some(n) = self.max_requests_per_second {
            if kit.limits.per_second.is_none() {
                return Err(FieldError::new(
                    "maxRequestsPerSecond",
                    format!("{kind} is not paced per second; leave it out"),
                ));
            }
            if !(1..=MAX_REQUESTS_PER_SECOND).contains(&n) {
                return Err(FieldError::new(
                    "maxRequestsPerSecond",
                    format!("must be 1 to {MAX_REQUESTS_PER_SECOND}"),
                ));
            }
        }
        if self.run_workflows && !kit.limits.workflows {
            return Err(FieldError::new(
                "runWorkflows",
                format!("{kind} has no workflow rules to run on our writes"),
            ));
        }
        if let Some(company) = &mut self.default_company {
            *company = company.trim().to_owned();
            if company.is_empty() {
                return Err(FieldError::new(
                    "defaultCompany",
                    "must not be blank: leave it out (null) for none",
                ));
            }
            if company.chars().count() > MAX_COMPANY {
                return Err(FieldError::new(
                    "defaultCompany",
                    format!("must be at most {MAX_COMPANY} characters"),
                ));
            }
        }
        if let Some(owner) = &mut self.default_owner_email {
            *owner = Email::parse(owner)
                .map_err(|e| FieldError::new("defaultOwnerEmail", format!("{e}")))?
                .into_string();
        }
        Ok(self)
    }
}

/// The shortest schedule interval allowed by default (one minute); tests and
/// demos lower it with `CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS`.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// A number for `key` that every process and version computes alike
/// (64-bit FNV-1a).
fn spread(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A duration in the words of a schedule ("1 minute", "30 s").
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 3600 == 0 && s > 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// When a connector syncs by itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// A fixed interval.
    Every(Duration),
    /// A cron expression (with seconds: 5-field expressions get `0` prepended).
    Cron(Box<cron::Schedule>),
}

impl Schedule {
    /// Parses "every 30m", "every 2h", "every 1d", "every 90s", or a cron
    /// expression ("0 */2 * * *", 5 fields, or 6 with seconds first), in UTC.
    /// How short an interval may be is the caller's rule
    /// ([`ConnectorSettings::validate_with`]).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("every ") {
            let rest = rest.trim();
            let split = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (n, unit) = rest.split_at(split);
            let n: u64 = n.parse().map_err(|_| {
                format!("\"{s}\": expected a number, e.g. \"every 30m\" or \"every 2h\"")
            })?;
            let secs = match unit.trim() {
                "s" | "sec" | "secs" | "second" | "seconds" => n,
                "m" | "min" | "mins" | "minute" | "minutes" => n * 60,
                "h" | "hour" | "hours" => n * 3600,
                "d" | "day" | "days" => n * 86_400,
                other => {
                    return Err(format!(
                        "\"{s}\": unknown unit \"{other}\" (use s, m, h or d)"
                    ));
                }
            };
            if secs == 0 {
                return Err(format!("\"{s}\": the interval must be longer than zero"));
            }
            return Ok(Self::Every(Duration::from_secs(secs)));
        }
        let fields = s.split_whitespace().count();
        let expr = match fields {
            5 => format!("0 {s}"),
            6 | 7 => s.to_owned(),
            _ => {
                return Err(format!(
                    "\"{s}\": expected \"every 30m\", \"every 2h\" or a cron expression of 5 fields"
                ));
            }
        };
        let cron = expr
            .parse::<cron::Schedule>()
            .map_err(|e| format!("\"{s}\": not a valid cron expression ({e})"))?;
        if cron.upcoming(chrono::Utc).next().is_none() {
            return Err(format!("\"{s}\": this cron expression never fires again"));
        }
        Ok(Self::Cron(Box::new(cron)))
    }

    /// The first time after `t` the schedule fires. Ticks missed before `t`
    /// are not made up one by one: the caller fires once, then asks for the
    /// next time after now.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| t + d),
            Self::Cron(c) => c.after(&t).next(),
        }
    }

    /// The first time a connector's schedule fires after `t`, when it is
    /// first planned (a new connector, or a new schedule). An interval
    /// starts at a point of its first interval set by the connector (`key`),
    /// so connectors set up together (a partner's script, a bench) spread
    /// over the interval instead of all firing at once, and stay spread: each
    /// later fire is an interval after the one before. A cron expression
    /// fires at its own times.
    pub fn first_after(&self, t: DateTime<Utc>, key: &str) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(d) => {
                let secs = d.as_secs().max(1);
                let phase = spread(key) % secs + 1;
                Some(t + chrono::Duration::seconds(i64::try_from(phase).ok()?))
            }
            Self::Cron(_) => self.next_after(t),
        }
    }

    /// The shortest time between two fires (a cron expression's, over its
    /// next hundred fires).
    pub fn shortest_gap(&self) -> Duration {
        match self {
            Self::Every(d) => *d,
            Self::Cron(c) => {
                let fires: Vec<DateTime<Utc>> = c.upcoming(Utc).take(100).collect();
                fires
                    .windows(2)
                    .filter_map(|w| (w[1] - w[0]).to_std().ok())
                    .min()
                    .unwrap_or(Duration::MAX)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::kit::{Deletions, Limits, ModuleFlow, any_kind};

    /// A CRM with one module and no settings of its own.
    fn plain() -> Description {
        Description {
            kind: any_kind(),
            display_name: "Plain CRM",
            tag: "plain",
            credentials_input: "plain",
            credential_fields: &[],
            credentials_needed: "",
            modules: &[ModuleFlow {
                module: CrmModule::Persons,
                to_crm: true,
                imported_by_default: true,
            }],
            joined_name: false,
            default_mappings: &[],
            limits: Limits {
                editions: &[],
                workflows: false,
                pacing: "",
                per_second: None,
            },
            converts_leads: false,
            deletions: Deletions::Reconcile,
            fields_settings: "",
        }
    }

    /// A CRM with editions.
    fn editions() -> Description {
        Description {
            tag: "editions",
            modules: &[ModuleFlow {
                module: CrmModule::Leads,
                to_crm: true,
                imported_by_default: true,
            }],
            limits: Limits {
                editions: &[("BASIC", 5), ("ENTERPRISE", 20), ("PROFESSIONAL", 15)],
                workflows: true,
                pacing: "",
                per_second: Some(10),
            },
            ..plain()
        }
    }

    #[test]
    fn schedules_parse_intervals_and_cron() {
        assert_eq!(
            Schedule::parse("every 2h").unwrap(),
            Schedule::Every(Duration::from_secs(7200))
        );
        assert_eq!(
            Schedule::parse("every 30m").unwrap(),
            Schedule::Every(Duration::from_secs(1800))
        );
        assert!(matches!(
            Schedule::parse("0 */2 * * *").unwrap(),
            Schedule::Cron(_)
        ));
        for bad in [
            "every",
            "every 0m",
            "every 0s",
            "every 2 weeks",
            "sometimes",
            "61 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_below_the_minimum_are_refused_with_the_minimum_named() {
        let with = |schedule: &str, min: u64| {
            ConnectorSettings {
                schedule: schedule.into(),
                ..ConnectorSettings::defaults_for(&plain())
            }
            .validate_with(&plain(), Duration::from_secs(min))
        };
        let e = with("every 30s", 60).unwrap_err();
        assert_eq!(e.field, "schedule");
        assert!(e.message.contains("1 min"), "{}", e.message);
        // Cron with seconds: every tenth second.
        assert!(with("*/10 * * * * *", 60).is_err());
        assert!(with("every 1m", 60).is_ok());
        assert!(with("0 */2 * * *", 60).is_ok());
        // Where the operator allows it (tests), every second.
        assert!(with("every 1s", 1).is_ok());
        assert!(with("* * * * * *", 1).is_ok());
        assert_eq!(with(" every 2h ", 60).unwrap().schedule, "every 2h");
    }

    #[test]
    fn the_next_time_comes_after_the_given_one() {
        let t: DateTime<Utc> = "2026-11-21T10:17:30Z".parse().unwrap();
        let every = Schedule::parse("every 30m").unwrap();
        assert_eq!(
            every.next_after(t),
            Some("2026-11-21T10:47:30Z".parse().unwrap())
        );
        let cron = Schedule::parse("0 */2 * * *").unwrap();
        assert_eq!(
            cron.next_after(t),
            Some("2026-11-21T12:00:00Z".parse().unwrap())
        );
        assert_eq!(cron.shortest_gap(), Duration::from_secs(7200));
        assert!(Schedule::parse("0 0 0 1 1 * 2020").is_err(), "never again");
    }

    #[test]
    fn connectors_set_up_together_spread_their_first_fires_over_the_interval() {
        let t: DateTime<Utc> = "2026-11-21T10:17:30Z".parse().unwrap();
        let every = Schedule::parse("every 1m").unwrap();
        let firsts: Vec<i64> = (0..50)
            .map(|i| {
                let first = every.first_after(t, &format!("connector{i}")).unwrap();
                (first - t).num_seconds()
            })
            .collect();
        assert!(
            firsts.iter().all(|s| (1..=60).contains(s)),
            "within the first interval: {firsts:?}"
        );
        let mut distinct = firsts.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 25, "spread, not bunched: {firsts:?}");
        assert_eq!(
            every.first_after(t, "connector7"),
            every.first_after(t, "connector7"),
            "the same connector, the same point"
        );
        // A cron expression keeps its own times.
        let cron = Schedule::parse("0 */2 * * *").unwrap();
        assert_eq!(cron.first_after(t, "connector7"), cron.next_after(t));
    }

    #[test]
    fn the_edition_sets_the_concurrency_unless_the_connector_says() {
        let base = ConnectorSettings::defaults_for(&editions());
        assert_eq!(base.client_options(&editions()).max_concurrent_calls, None);
        let enterprise = ConnectorSettings {
            crm_edition: Some(" enterprise ".into()),
            ..base.clone()
        }
        .validate(&editions())
        .unwrap();
        assert_eq!(enterprise.crm_edition.as_deref(), Some("ENTERPRISE"));
        assert_eq!(
            enterprise.client_options(&editions()).max_concurrent_calls,
            Some(20)
        );
        let capped = ConnectorSettings {
            max_concurrent_calls: Some(3),
            ..enterprise
        };
        assert_eq!(
            capped.client_options(&editions()).max_concurrent_calls,
            Some(3)
        );
        let unknown = ConnectorSettings {
            crm_edition: Some("GOLD".into()),
            ..base
        };
        let error = unknown.validate(&editions()).unwrap_err();
        assert_eq!(error.field, "crmEdition");
        assert!(error.message.contains("PROFESSIONAL"), "{error}");
    }

    #[test]
    fn validation_names_the_setting() {
        let base = ConnectorSettings::defaults_for(&plain());
        let negative = ConnectorSettings {
            min_score_to_export: -1,
            ..base.clone()
        };
        assert_eq!(
            negative.validate(&plain()).unwrap_err().field,
            "minScoreToExport"
        );
        let bad_email = ConnectorSettings {
            notify_emails: vec!["ok@x.com".into(), "nope".into()],
            ..base.clone()
        };
        assert_eq!(
            bad_email.validate(&plain()).unwrap_err().field,
            "notifyEmails[1]"
        );
        let leads = ConnectorSettings {
            import_modules: vec![CrmModule::Leads],
            ..base.clone()
        };
        let error = leads.clone().validate(&plain()).unwrap_err();
        assert!(error.message.contains("it has PERSONS"), "{error}");
        let edition = ConnectorSettings {
            crm_edition: Some("ENTERPRISE".into()),
            ..base.clone()
        };
        assert_eq!(edition.validate(&plain()).unwrap_err().field, "crmEdition");
        let per_second = ConnectorSettings {
            max_requests_per_second: Some(200),
            ..base.clone()
        };
        assert_eq!(
            per_second.clone().validate(&plain()).unwrap_err().field,
            "maxRequestsPerSecond",
            "a CRM not paced per second"
        );
        let paced = ConnectorSettings {
            import_modules: vec![CrmModule::Leads],
            ..per_second
        };
        assert_eq!(
            paced
                .clone()
                .validate(&editions())
                .unwrap()
                .client_options(&editions())
                .requests_per_second,
            Some(200)
        );
        let zero = ConnectorSettings {
            max_requests_per_second: Some(0),
            ..paced
        };
        assert_eq!(
            zero.validate(&editions()).unwrap_err().field,
            "maxRequestsPerSecond"
        );
        let workflows = ConnectorSettings {
            run_workflows: true,
            ..base.clone()
        };
        assert_eq!(
            workflows.validate(&plain()).unwrap_err().field,
            "runWorkflows"
        );
        assert_eq!(
            leads.validate(&plain()).unwrap_err().field,
            "importModules[0]"
        );
        let half_filter = ConnectorSettings {
            filter_field: Some("sync_to_plezi".into()),
            ..base
        };
        assert_eq!(
            half_filter.validate(&plain()).unwrap_err().field,
            "filterValue"
        );
    }
}
