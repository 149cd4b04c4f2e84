//! The one typed configuration: defaults, then an optional TOML file, then
//! `CRMSYNC_*` variables. Validated at start; every error names the variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A configuration error, naming the variable (and the file key) at fault.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    /// `CRMSYNC_BIND`, ...
    pub variable: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

/// Raw settings as given; every field optional. The file uses the variable names
/// without the `CRMSYNC_` prefix, in lower case (`bind = "0.0.0.0:8080"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    bind: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    jwt_secret: Option<String>,
    jwt_public_key: Option<String>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    credentials_key: Option<String>,
    public_url: Option<String>,
    queue_url: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    queue_heartbeat_secs: Option<String>,
    queue_name: Option<String>,
    worker_bind: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    worker_slice_ms: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    worker_tenant_slots: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    worker_form_slots: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    schedule_min_interval_secs: Option<String>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    delivery_retry_base_ms: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    delivery_max_attempts: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    ws_max_subscriptions: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    allow_local_targets: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    rate_limit_tenant_per_sec: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    rate_limit_auth_failures_per_min: Option<String>,
    introspection: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    prune_batch: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    prune_interval_secs: Option<String>,
}

/// The rate limits: each pace a whole number, 0 for no limit.
fn rate_limits(
    tenant_per_sec: Option<&str>,
    auth_failures_per_min: Option<&str>,
) -> Result<crmsync_api::rate_limit::RateLimitSettings, ConfigError> {
    use crmsync_api::rate_limit::RateLimitSettings;
    let pace = |value: Option<&str>, variable: &'static str, default: u32, max: u32| match value
        .map(str::trim)
    {
        None => Ok(default),
        Some(n) => match n.parse::<u32>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(err(
                variable,
                format!("expected a whole number between 0 (no limit) and {max}"),
            )),
        },
    };
    Ok(RateLimitSettings::new(
        pace(
            tenant_per_sec,
            "CRMSYNC_RATE_LIMIT_TENANT_PER_SEC",
            RateLimitSettings::DEFAULT_TENANT_PER_SEC,
            1_000_000,
        )?,
        pace(
            auth_failures_per_min,
            "CRMSYNC_RATE_LIMIT_AUTH_FAILURES_PER_MIN",
            RateLimitSettings::DEFAULT_AUTH_FAILURES_PER_MIN,
            1_000_000,
        )?,
    ))
}

/// The pruner's batch (rows per delete statement) and interval.
fn prune_settings(
    batch: Option<&str>,
    interval_secs: Option<&str>,
) -> Result<crmsync_worker::retention::PruneSettings, ConfigError> {
    use crmsync_worker::retention::PruneSettings;
    let batch = match batch.map(str::trim) {
        None => PruneSettings::DEFAULT_BATCH,
        Some(n) => match n.parse::<u64>() {
            Ok(n @ 1..=100_000) => n,
            _ => {
                return Err(err(
                    "CRMSYNC_PRUNE_BATCH",
                    "expected a whole number of rows between 1 and 100000",
                ));
            }
        },
    };
    let interval = match interval_secs.map(str::trim) {
        None => PruneSettings::DEFAULT_INTERVAL,
        Some(n) => match n.parse::<u64>() {
            Ok(n @ 1..=86_400) => Duration::from_secs(n),
            _ => {
                return Err(err(
                    "CRMSYNC_PRUNE_INTERVAL_SECS",
                    "expected whole seconds between 1 and 86400",
                ));
            }
        },
    };
    Ok(PruneSettings { batch, interval })
}

/// The slot settings: whole numbers, each within its bounds.
fn slot_settings(
    slice_ms: Option<&str>,
    tenant_slots: Option<&str>,
    form_slots: Option<&str>,
) -> Result<crmsync_worker::slots::SlotSettings, ConfigError> {
    use crmsync_worker::slots::{DEFAULT_FORM_SLOTS, DEFAULT_SLICE, SlotSettings};
    let number = |value: Option<&str>, variable: &'static str, min: u64, max: u64| match value
        .map(str::trim)
    {
        None => Ok(None),
        Some(n) => match n.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(err(
                variable,
                format!("expected a whole number between {min} and {max}"),
            )),
        },
    };
    let slice = match number(slice_ms, "CRMSYNC_WORKER_SLICE_MS", 0, 86_400_000)? {
        None => Some(DEFAULT_SLICE),
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
    };
    let tenant_cap =
        number(tenant_slots, "CRMSYNC_WORKER_TENANT_SLOTS", 1, 10_000)?.map(|n| n as usize);
    let form_slots = number(form_slots, "CRMSYNC_WORKER_FORM_SLOTS", 1, 1_000)?
        .map_or(DEFAULT_FORM_SLOTS, |n| n as usize);
    Ok(SlotSettings {
        slice,
        tenant_cap,
        form_slots,
    })
}

/// A switch may be written as a boolean in the file (`allow_local_targets = true`).
fn bool_or_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        String(String),
    }
    Ok(
        Option::<BoolOrString>::deserialize(deserializer)?.map(|v| match v {
            BoolOrString::Bool(b) => b.to_string(),
            BoolOrString::String(s) => s,
        }),
    )
}

/// A number may be written as one in the file (`queue_heartbeat_secs = 2`); the
/// variables are strings anyway.
fn number_or_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(u64),
        String(String),
    }
    Ok(
        Option::<NumberOrString>::deserialize(deserializer)?.map(|v| match v {
            NumberOrString::Number(n) => n.to_string(),
            NumberOrString::String(s) => s,
        }),
    )
}

/// crmsync's configuration.
#[derive(Debug)]
pub struct Config {
    /// Address the API listens on (`CRMSYNC_BIND`, default `127.0.0.1:8080`).
    pub bind: SocketAddr,
    /// Directory for the embedded database and generated keys (`CRMSYNC_DATA_DIR`,
    /// default `./data`).
    pub data_dir: PathBuf,
    /// Database URL (`CRMSYNC_DATABASE_URL`, default SQLite in the data directory).
    pub database_url: String,
    /// HS256 secret for JWTs (`CRMSYNC_JWT_SECRET`); exclusive with the public key.
    pub jwt_secret: Option<SecretString>,
    /// RS256 public key, PEM (`CRMSYNC_JWT_PUBLIC_KEY`).
    pub jwt_public_key: Option<String>,
    /// Required `iss` of tokens (`CRMSYNC_JWT_ISSUER`, default `crmsync`).
    pub jwt_issuer: String,
    /// Required `aud` of tokens (`CRMSYNC_JWT_AUDIENCE`, default `crmsync`).
    pub jwt_audience: String,
    /// AES-256-GCM key for CRM credentials, 32 bytes base64 (`CRMSYNC_CREDENTIALS_KEY`).
    pub credentials_key: Option<SecretString>,
    /// Base URL of the platform, for links written to CRMs (`CRMSYNC_PUBLIC_URL`,
    /// default `http://{bind}`).
    pub public_url: String,
    /// Redis for the job queue and the progress events (`CRMSYNC_QUEUE_URL`,
    /// `redis://…` or `rediss://…`). Unset: both stay in the database
    /// (PostgreSQL: its queue tables and LISTEN/NOTIFY; SQLite: in-process events).
    pub queue_url: Option<SecretString>,
    /// Interval of worker heartbeats (`CRMSYNC_QUEUE_HEARTBEAT_SECS`, default 20);
    /// a worker silent for three is dead and its jobs run again elsewhere.
    pub queue_heartbeat: Duration,
    /// The queue's name (`CRMSYNC_QUEUE_NAME`, default `crmsync-sync`): two
    /// deployments sharing one Redis or database keep apart by it.
    pub queue_name: String,
    /// Where `crmsync worker` serves `/healthz`, `/readyz` and `/metrics`
    /// (`CRMSYNC_WORKER_BIND`, default `127.0.0.1:9464`; port 0 picks a free one).
    pub worker_bind: SocketAddr,
    /// How runs share a worker's slots (issue 26): a run that has worked for
    /// a slice while other runs wait gives its slot back at its next page
    /// (`CRMSYNC_WORKER_SLICE_MS`, default 30000; 0: never); one tenant's
    /// runs hold at most so many slots at once across the workers
    /// (`CRMSYNC_WORKER_TENANT_SLOTS`, default half a worker's `--concurrency`,
    /// at least 1); FORM runs have slots of their own in every worker
    /// (`CRMSYNC_WORKER_FORM_SLOTS`, default 2).
    pub slots: crmsync_worker::slots::SlotSettings,
    /// The shortest schedule a connector may ask for
    /// (`CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS`, default 60).
    pub schedule_min_interval: Duration,
    /// The SMTP server for run summaries (`CRMSYNC_SMTP_URL`:
    /// `smtp://user:pass@host:587?tls=required`, `smtps://…`, `smtp://host:25`).
    /// Unset: summaries are logged instead of e-mailed.
    pub smtp_url: Option<SecretString>,
    /// The summaries' sender (`CRMSYNC_SMTP_FROM`, default `crmsync <crmsync@localhost>`).
    pub smtp_from: String,
    /// The wait before a failed delivery's first retry; it doubles with each
    /// further one, up to an hour (`CRMSYNC_DELIVERY_RETRY_BASE_MS`, default 10000).
    pub delivery_retry_base: Duration,
    /// Attempts before a delivery is given up (`CRMSYNC_DELIVERY_MAX_ATTEMPTS`,
    /// default 10).
    pub delivery_max_attempts: u32,
    /// Subscriptions one WebSocket may hold at once; the next `subscribe` is
    /// refused with an error (`CRMSYNC_WS_MAX_SUBSCRIPTIONS`, default 100).
    pub ws_max_subscriptions: usize,
    /// Let webhooks and connector base URLs reach loopback, private and other
    /// local addresses (`CRMSYNC_ALLOW_LOCAL_TARGETS`, default false; `serve
    /// --demo` turns it on for its sandbox CRMs).
    pub allow_local_targets: bool,
    /// Requests per second per tenant and failed authentications per minute
    /// per client address (`CRMSYNC_RATE_LIMIT_TENANT_PER_SEC`, default 100,
    /// and `CRMSYNC_RATE_LIMIT_AUTH_FAILURES_PER_MIN`, default 10; 0 turns
    /// either off).
    pub rate_limits: crmsync_api::rate_limit::RateLimitSettings,
    /// Who may introspect the schema (`CRMSYNC_INTROSPECTION`: `always` or
    /// `authenticated`, the default; `serve --demo` sets `always`).
    pub introspection: crmsync_api::Introspection,
    /// The history pruner (issue 26): rows one delete statement removes at
    /// most (`CRMSYNC_PRUNE_BATCH`, default 500) and how often the process
    /// holding the pruner lease prunes (`CRMSYNC_PRUNE_INTERVAL_SECS`, default
    /// 300). What is kept is each tenant's retention, set through the API.
    pub prune: crmsync_worker::retention::PruneSettings,
}

impl Config {
    /// Loads from the process environment and the file named by `CRMSYNC_CONFIG`, if any.
    pub fn load() -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CRMSYNC_"))
            .collect();
        Self::from_sources(&env)
    }

    /// Loads from the given variables (tests pass their own map).
    pub fn from_sources(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut raw = match env.get("CRMSYNC_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err("CRMSYNC_CONFIG", format!("cannot read {path}: {e}")))?;
                toml::from_str::<Raw>(&text)
                    .map_err(|e| err("CRMSYNC_CONFIG", format!("{path}: {e}")))?
            }
            None => Raw::default(),
        };
        let var = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();
        macro_rules! overlay {
            ($field:ident, $name:literal) => {
                if let Some(v) = var($name) {
                    raw.$field = Some(v);
                }
            };
        }
        overlay!(bind, "CRMSYNC_BIND");
        overlay!(data_dir, "CRMSYNC_DATA_DIR");
        overlay!(database_url, "CRMSYNC_DATABASE_URL");
        overlay!(jwt_secret, "CRMSYNC_JWT_SECRET");
        overlay!(jwt_public_key, "CRMSYNC_JWT_PUBLIC_KEY");
        overlay!(jwt_issuer, "CRMSYNC_JWT_ISSUER");
        overlay!(jwt_audience, "CRMSYNC_JWT_AUDIENCE");
        overlay!(credentials_key, "CRMSYNC_CREDENTIALS_KEY");
        overlay!(public_url, "CRMSYNC_PUBLIC_URL");
        overlay!(queue_url, "CRMSYNC_QUEUE_URL");
        overlay!(queue_heartbeat_secs, "CRMSYNC_QUEUE_HEARTBEAT_SECS");
        overlay!(queue_name, "CRMSYNC_QUEUE_NAME");
        overlay!(worker_bind, "CRMSYNC_WORKER_BIND");
        overlay!(worker_slice_ms, "CRMSYNC_WORKER_SLICE_MS");
        overlay!(worker_tenant_slots, "CRMSYNC_WORKER_TENANT_SLOTS");
        overlay!(worker_form_slots, "CRMSYNC_WORKER_FORM_SLOTS");
        overlay!(
            schedule_min_interval_secs,
            "CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS"
        );
        overlay!(smtp_url, "CRMSYNC_SMTP_URL");
        overlay!(smtp_from, "CRMSYNC_SMTP_FROM");
        overlay!(delivery_retry_base_ms, "CRMSYNC_DELIVERY_RETRY_BASE_MS");
        overlay!(delivery_max_attempts, "CRMSYNC_DELIVERY_MAX_ATTEMPTS");
        overlay!(ws_max_subscriptions, "CRMSYNC_WS_MAX_SUBSCRIPTIONS");
        overlay!(allow_local_targets, "CRMSYNC_ALLOW_LOCAL_TARGETS");
        overlay!(prune_batch, "CRMSYNC_PRUNE_BATCH");
        overlay!(prune_interval_secs, "CRMSYNC_PRUNE_INTERVAL_SECS");
        overlay!(
            rate_limit_tenant_per_sec,
            "CRMSYNC_RATE_LIMIT_TENANT_PER_SEC"
        );
        overlay!(
            rate_limit_auth_failures_per_min,
            "CRMSYNC_RATE_LIMIT_AUTH_FAILURES_PER_MIN"
        );
        overlay!(introspection, "CRMSYNC_INTROSPECTION");

        let bind: SocketAddr = raw
            .bind
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|_| {
                err(
                    "CRMSYNC_BIND",
                    "expected an address and port, e.g. 127.0.0.1:8080",
                )
            })?;
        let worker_bind: SocketAddr = raw
            .worker_bind
            .as_deref()
            .unwrap_or("127.0.0.1:9464")
            .parse()
            .map_err(|_| {
                err(
                    "CRMSYNC_WORKER_BIND",
                    "expected an address and port, e.g. 127.0.0.1:9464",
                )
            })?;
        let data_dir = PathBuf::from(raw.data_dir.as_deref().unwrap_or("./data"));
        let database_url = match raw.database_url {
            Some(url)
                if url.starts_with("sqlite:")
                    || url.starts_with("postgres:")
                    || url.starts_with("postgresql:") =>
            {
                url
            }
            Some(_) => {
                return Err(err(
                    "CRMSYNC_DATABASE_URL",
                    "expected sqlite://… or postgres://…",
                ));
            }
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("crmsync.db").display()
            ),
        };
        if raw.jwt_secret.is_some() && raw.jwt_public_key.is_some() {
            return Err(err(
                "CRMSYNC_JWT_SECRET",
                "set either CRMSYNC_JWT_SECRET (HS256) or CRMSYNC_JWT_PUBLIC_KEY (RS256), not both",
            ));
        }
        if let Some(secret) = &raw.jwt_secret
            && secret.len() < 32
        {
            return Err(err("CRMSYNC_JWT_SECRET", "must be at least 32 characters"));
        }
        if let Some(pem) = &raw.jwt_public_key
            && !pem.contains("BEGIN PUBLIC KEY")
        {
            return Err(err(
                "CRMSYNC_JWT_PUBLIC_KEY",
                "expected a PEM public key (-----BEGIN PUBLIC KEY-----)",
            ));
        }
        if let Some(key) = &raw.credentials_key {
            crmsync_worker::credentials::CredentialsKey::from_base64(key)
                .map_err(|e| err("CRMSYNC_CREDENTIALS_KEY", e.to_string()))?;
        }
        let public_url = raw.public_url.unwrap_or_else(|| format!("http://{bind}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(err(
                "CRMSYNC_PUBLIC_URL",
                "expected an http:// or https:// URL",
            ));
        }
        if let Some(url) = &raw.queue_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(err(
                "CRMSYNC_QUEUE_URL",
                "expected redis://… or rediss://… (unset, the queue stays in the database)",
            ));
        }
        let queue_heartbeat = match raw.queue_heartbeat_secs.as_deref().map(str::trim) {
            None => crmsync_worker::jobs::DEFAULT_HEARTBEAT,
            Some(secs) => match secs.parse::<u64>() {
                Ok(secs @ 1..=3600) => Duration::from_secs(secs),
                _ => {
                    return Err(err(
                        "CRMSYNC_QUEUE_HEARTBEAT_SECS",
                        "expected whole seconds between 1 and 3600",
                    ));
                }
            },
        };
        let queue_name = match raw.queue_name.as_deref().map(str::trim) {
            None => crmsync_worker::jobs::QUEUE.to_owned(),
            Some(name)
                if (1..=64).contains(&name.len())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
            {
                name.to_owned()
            }
            Some(_) => {
                return Err(err(
                    "CRMSYNC_QUEUE_NAME",
                    "expected 1 to 64 letters, digits, '-', '_' or '.'",
                ));
            }
        };
        let slots = slot_settings(
            raw.worker_slice_ms.as_deref(),
            raw.worker_tenant_slots.as_deref(),
            raw.worker_form_slots.as_deref(),
        )?;
        let schedule_min_interval = match raw.schedule_min_interval_secs.as_deref().map(str::trim) {
            None => crmsync_worker::settings::DEFAULT_MIN_INTERVAL,
            Some(secs) => match secs.parse::<u64>() {
                Ok(secs @ 1..=86_400) => Duration::from_secs(secs),
                _ => {
                    return Err(err(
                        "CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS",
                        "expected whole seconds between 1 and 86400",
                    ));
                }
            },
        };
        let smtp_from = raw
            .smtp_from
            .as_deref()
            .map(str::trim)
            .unwrap_or(crmsync_worker::notify::DEFAULT_FROM)
            .to_owned();
        crmsync_worker::notify::parse_mailbox(&smtp_from)
            .map_err(|e| err("CRMSYNC_SMTP_FROM", e))?;
        if let Some(url) = &raw.smtp_url {
            crmsync_worker::notify::SmtpSettings::new(
                url.trim(),
                &smtp_from,
                crmsync_worker::notify::ATTEMPT_TIMEOUT,
            )
            .map_err(|e| err("CRMSYNC_SMTP_URL", e))?;
        }
        let delivery_retry_base = match raw.delivery_retry_base_ms.as_deref().map(str::trim) {
            None => crmsync_worker::notify::DEFAULT_RETRY_BASE,
            Some(ms) => match ms.parse::<u64>() {
                Ok(ms @ 1..=3_600_000) => Duration::from_millis(ms),
                _ => {
                    return Err(err(
                        "CRMSYNC_DELIVERY_RETRY_BASE_MS",
                        "expected whole milliseconds between 1 and 3600000",
                    ));
                }
            },
        };
        let delivery_max_attempts = match raw.delivery_max_attempts.as_deref().map(str::trim) {
            None => crmsync_worker::notify::DEFAULT_MAX_ATTEMPTS,
            Some(n) => match n.parse::<u32>() {
                Ok(n @ 1..=100) => n,
                _ => {
                    return Err(err(
                        "CRMSYNC_DELIVERY_MAX_ATTEMPTS",
                        "expected a whole number of attempts between 1 and 100",
                    ));
                }
            },
        };
        let ws_max_subscriptions = match raw.ws_max_subscriptions.as_deref().map(str::trim) {
            None => crmsync_api::DEFAULT_WS_MAX_SUBSCRIPTIONS,
            Some(n) => match n.parse::<usize>() {
                Ok(n @ 1..=10_000) => n,
                _ => {
                    return Err(err(
                        "CRMSYNC_WS_MAX_SUBSCRIPTIONS",
                        "expected a whole number of subscriptions between 1 and 10000",
                    ));
                }
            },
        };
        let allow_local_targets = match raw.allow_local_targets.as_deref().map(str::trim) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(err("CRMSYNC_ALLOW_LOCAL_TARGETS", "expected true or false")),
        };
        let prune = prune_settings(
            raw.prune_batch.as_deref(),
            raw.prune_interval_secs.as_deref(),
        )?;
        let rate_limits = rate_limits(
            raw.rate_limit_tenant_per_sec.as_deref(),
            raw.rate_limit_auth_failures_per_min.as_deref(),
        )?;
        let introspection = match raw.introspection.as_deref() {
            None => crmsync_api::Introspection::default(),
            Some(value) => crmsync_api::Introspection::parse(value).ok_or_else(|| {
                err(
                    "CRMSYNC_INTROSPECTION",
                    format!(
                        "expected one of {}",
                        crmsync_api::Introspection::VALUES.join(", ")
                    ),
                )
            })?,
        };
        Ok(Self {
            bind,
            data_dir,
            database_url,
            jwt_secret: raw.jwt_secret.map(SecretString::from),
            jwt_public_key: raw.jwt_public_key,
            jwt_issuer: raw.jwt_issuer.unwrap_or_else(|| "crmsync".into()),
            jwt_audience: raw.jwt_audience.unwrap_or_else(|| "crmsync".into()),
            credentials_key: raw.credentials_key.map(SecretString::from),
            public_url: public_url.trim_end_matches('/').to_owned(),
            queue_url: raw.queue_url.map(SecretString::from),
            queue_heartbeat,
            queue_name,
            worker_bind,
            slots,
            schedule_min_interval,
            smtp_url: raw
                .smtp_url
                .map(|u| SecretString::from(u.trim().to_owned())),
            smtp_from,
            delivery_retry_base,
            delivery_max_attempts,
            ws_max_subscriptions,
            allow_local_targets,
            rate_limits,
            introspection,
            prune,
        })
    }

    /// The outbound rule for webhooks and CRM calls.
    pub fn egress(&self) -> crmsync_worker::egress::Egress {
        crmsync_worker::egress::Egress::new(self.allow_local_targets)
    }

    /// How notifications are sent (R5): SMTP when `CRMSYNC_SMTP_URL` is set,
    /// links under the public URL, the retry settings.
    pub fn delivery_settings(
        &self,
    ) -> Result<crmsync_worker::notify::DeliverySettings, ConfigError> {
        let mut settings = crmsync_worker::notify::DeliverySettings::new(self.public_url.clone());
        settings.retry_base = self.delivery_retry_base;
        settings.max_attempts = self.delivery_max_attempts;
        settings.egress = self.egress();
        if let Some(url) = &self.smtp_url {
            settings.smtp = Some(
                crmsync_worker::notify::SmtpSettings::new(
                    url.expose_secret(),
                    &self.smtp_from,
                    settings.timeout,
                )
                .map_err(|e| err("CRMSYNC_SMTP_URL", e))?,
            );
        }
        Ok(settings)
    }

    /// Where the job queue lives and how often its workers beat.
    pub fn queue_settings(&self) -> crmsync_worker::jobs::QueueSettings {
        crmsync_worker::jobs::QueueSettings {
            redis_url: self.queue_url.clone(),
            heartbeat: self.queue_heartbeat,
            queue: self.queue_name.clone(),
        }
    }

    /// How long a run's lease lasts: as long as the queue takes to notice a
    /// dead worker, so a run comes back to the queue and its lease lapses
    /// together.
    pub fn run_lease(&self) -> Duration {
        self.queue_heartbeat * crmsync_worker::jobs::MISSED_HEARTBEATS as u32
    }

    /// True for the embedded default (SQLite).
    pub fn is_embedded(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// Fills in missing keys: in the embedded default, generated once into the data
    /// directory (mode 0600) and reused; with PostgreSQL, a missing key is an error
    /// (several processes must share the same keys).
    pub fn ensure_keys(&mut self) -> Result<(), ConfigError> {
        if self.jwt_secret.is_none() && self.jwt_public_key.is_none() {
            if !self.is_embedded() {
                return Err(err(
                    "CRMSYNC_JWT_SECRET",
                    "required with PostgreSQL (or CRMSYNC_JWT_PUBLIC_KEY): every process must share it",
                ));
            }
            let secret =
                load_or_generate(&self.data_dir, "jwt_secret", "CRMSYNC_JWT_SECRET", || {
                    random_base64(48)
                })?;
            self.jwt_secret = Some(secret);
        }
        if self.credentials_key.is_none() {
            if !self.is_embedded() {
                return Err(err(
                    "CRMSYNC_CREDENTIALS_KEY",
                    "required with PostgreSQL: 32 bytes, base64 (e.g. `openssl rand -base64 32`)",
                ));
            }
            let key = load_or_generate(
                &self.data_dir,
                "credentials_key",
                "CRMSYNC_CREDENTIALS_KEY",
                || random_base64(32),
            )?;
            crmsync_worker::credentials::CredentialsKey::from_base64(key.expose_secret()).map_err(
                |e| {
                    err(
                        "CRMSYNC_CREDENTIALS_KEY",
                        format!("{}: {e}", self.data_dir.join("credentials_key").display()),
                    )
                },
            )?;
            self.credentials_key = Some(key);
        }
        Ok(())
    }

    /// The HS256 secret `crmsync token` signs with, and where it came from (for the
    /// message on stderr). Unlike [`Config::ensure_keys`] it never creates one: a
    /// secret made up while minting would sign tokens that no server accepts.
    pub fn existing_jwt_secret(&self) -> Result<(SecretString, String), ConfigError> {
        if let Some(secret) = &self.jwt_secret {
            return Ok((secret.clone(), "CRMSYNC_JWT_SECRET".to_owned()));
        }
        if self.jwt_public_key.is_some() {
            return Err(err(
                "CRMSYNC_JWT_SECRET",
                "`crmsync token` signs with the HS256 secret; with CRMSYNC_JWT_PUBLIC_KEY (RS256) tokens come from your identity provider",
            ));
        }
        let path = self.data_dir.join("jwt_secret");
        let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        match std::fs::read_to_string(&path) {
            Ok(existing) => Ok((
                SecretString::from(existing.trim().to_owned()),
                shown.display().to_string(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(err(
                "CRMSYNC_JWT_SECRET",
                format!(
                    "not set, and {} does not exist: `crmsync serve` generates it at its first start in its data directory (CRMSYNC_DATA_DIR, default ./data under the directory it runs in); run `crmsync token` with the same CRMSYNC_DATA_DIR or from the same directory",
                    shown.display()
                ),
            )),
            Err(e) => Err(err(
                "CRMSYNC_JWT_SECRET",
                format!("cannot read {}: {e}", shown.display()),
            )),
        }
    }
}

/// Creates the data directory if missing, readable by its owner only (0700):
/// it holds the keys and the embedded database. An existing one is left as is.
pub fn create_data_dir(dir: &Path) -> Result<(), ConfigError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        err(
            "CRMSYNC_DATA_DIR",
            format!("cannot create {}: {e}", dir.display()),
        )
    })
}

fn random_base64(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Reads `dir/name`, or writes a fresh value there with mode 0600 and logs that.
fn load_or_generate(
    dir: &Path,
    name: &str,
    variable: &'static str,
    make: impl FnOnce() -> String,
) -> Result<SecretString, ConfigError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(existing) => return Ok(SecretString::from(existing.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(err(
                variable,
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    }
    create_data_dir(dir)?;
    let value = make();
    write_private(&path, &value)
        .map_err(|e| err(variable, format!("cannot write {}: {e}", path.display())))?;
    tracing::warn!(path = %path.display(), variable, "generated a key for the embedded default and stored it with mode 0600; set {variable} to use your own");
    Ok(SecretString::from(value))
}

#[cfg(unix)]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let config = Config::from_sources(&env(&[])).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert!(config.is_embedded());
        assert!(config.database_url.contains("data/crmsync.db"));
        assert_eq!(config.public_url, "http://127.0.0.1:8080");
        assert!(config.queue_url.is_none());
        assert_eq!(config.queue_heartbeat, Duration::from_secs(20));
        assert_eq!(config.worker_bind.to_string(), "127.0.0.1:9464");
        assert_eq!(config.schedule_min_interval, Duration::from_secs(60));
        assert!(!config.allow_local_targets);
    }

    #[test]
    fn local_targets_are_allowed_by_the_variable_or_the_file() {
        let on = Config::from_sources(&env(&[("CRMSYNC_ALLOW_LOCAL_TARGETS", "TRUE")])).unwrap();
        assert!(on.allow_local_targets);
        assert!(on.egress().allows_local());
        assert!(on.delivery_settings().unwrap().egress.allows_local());
        let dir = std::env::temp_dir().join(format!("crmsync-egress-{}", crmsync_entity::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("crmsync.toml");
        std::fs::write(&file, "allow_local_targets = true\n").unwrap();
        let from_file =
            Config::from_sources(&env(&[("CRMSYNC_CONFIG", file.to_str().unwrap())])).unwrap();
        assert!(from_file.allow_local_targets);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_pruner_batch_and_interval_are_configurable_within_bounds() {
        let config = Config::from_sources(&env(&[])).unwrap();
        assert_eq!(config.prune.batch, 500);
        assert_eq!(config.prune.interval, Duration::from_secs(300));
        let config = Config::from_sources(&env(&[
            ("CRMSYNC_PRUNE_BATCH", "20"),
            ("CRMSYNC_PRUNE_INTERVAL_SECS", "60"),
        ]))
        .unwrap();
        assert_eq!(config.prune.batch, 20);
        assert_eq!(config.prune.interval, Duration::from_secs(60));
        for (variable, bad) in [
            ("CRMSYNC_PRUNE_BATCH", "0"),
            ("CRMSYNC_PRUNE_BATCH", "many"),
            ("CRMSYNC_PRUNE_INTERVAL_SECS", "0"),
            ("CRMSYNC_PRUNE_INTERVAL_SECS", "86401"),
        ] {
            let e = Config::from_sources(&env(&[(variable, bad)])).unwrap_err();
            assert_eq!(e.variable, variable, "{bad}");
        }
    }

    #[test]
    fn the_subscription_cap_per_socket_is_configurable_within_bounds() {
        let config = Config::from_sources(&env(&[])).unwrap();
        assert_eq!(config.ws_max_subscriptions, 100);
        let config = Config::from_sources(&env(&[("CRMSYNC_WS_MAX_SUBSCRIPTIONS", "3")])).unwrap();
        assert_eq!(config.ws_max_subscriptions, 3);
        for bad in ["0", "many", "10001"] {
            let e =
                Config::from_sources(&env(&[("CRMSYNC_WS_MAX_SUBSCRIPTIONS", bad)])).unwrap_err();
            assert_eq!(e.variable, "CRMSYNC_WS_MAX_SUBSCRIPTIONS", "{bad}");
        }
    }

    #[test]
    fn the_shortest_schedule_is_configurable_within_bounds() {
        let config =
            Config::from_sources(&env(&[("CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS", "1")])).unwrap();
        assert_eq!(config.schedule_min_interval, Duration::from_secs(1));
        for bad in ["0", "soon", "100000"] {
            let e = Config::from_sources(&env(&[("CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS", bad)]))
                .unwrap_err();
            assert_eq!(e.variable, "CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS", "{bad}");
        }
    }

    #[test]
    fn a_redis_queue_url_and_heartbeat_reach_the_queue_settings() {
        let config = Config::from_sources(&env(&[
            ("CRMSYNC_QUEUE_URL", "rediss://:pw@redis.internal:6380/2"),
            ("CRMSYNC_QUEUE_HEARTBEAT_SECS", "2"),
        ]))
        .unwrap();
        let settings = config.queue_settings();
        assert_eq!(
            settings.redis_url.unwrap().expose_secret(),
            "rediss://:pw@redis.internal:6380/2"
        );
        assert_eq!(settings.heartbeat, Duration::from_secs(2));
        assert_eq!(settings.queue, crmsync_worker::jobs::QUEUE);
        assert!(
            !format!("{config:?}").contains(":pw@"),
            "the URL's password is not printed"
        );
    }

    #[test]
    fn the_slot_settings_follow_their_variables_and_bad_ones_are_named() {
        let defaults = Config::from_sources(&env(&[])).unwrap().slots;
        assert_eq!(defaults.slice, Some(Duration::from_secs(30)));
        assert_eq!(defaults.cap_for(4), 2, "half the slots");
        assert_eq!(defaults.cap_for(1), 1, "at least one");
        assert_eq!(defaults.form_slots, 2);
        let set = Config::from_sources(&env(&[
            ("CRMSYNC_WORKER_SLICE_MS", "250"),
            ("CRMSYNC_WORKER_TENANT_SLOTS", "3"),
            ("CRMSYNC_WORKER_FORM_SLOTS", "1"),
        ]))
        .unwrap()
        .slots;
        assert_eq!(set.slice, Some(Duration::from_millis(250)));
        assert_eq!(set.cap_for(4), 3);
        assert_eq!(set.form_slots, 1);
        let off = Config::from_sources(&env(&[("CRMSYNC_WORKER_SLICE_MS", "0")])).unwrap();
        assert_eq!(off.slots.slice, None, "0 turns slices off");
        for (variable, bad) in [
            ("CRMSYNC_WORKER_SLICE_MS", "soon"),
            ("CRMSYNC_WORKER_TENANT_SLOTS", "0"),
            ("CRMSYNC_WORKER_FORM_SLOTS", "-1"),
        ] {
            let e = Config::from_sources(&env(&[(variable, bad)])).unwrap_err();
            assert_eq!(e.variable, variable, "{bad}");
        }
    }

    #[test]
    fn the_queue_name_and_run_lease_follow_the_settings() {
        let config = Config::from_sources(&env(&[
            ("CRMSYNC_QUEUE_NAME", "staging-eu"),
            ("CRMSYNC_QUEUE_HEARTBEAT_SECS", "2"),
        ]))
        .unwrap();
        assert_eq!(config.queue_settings().queue, "staging-eu");
        assert_eq!(config.run_lease(), Duration::from_secs(6));
        let bad = Config::from_sources(&env(&[("CRMSYNC_QUEUE_NAME", "a b")])).unwrap_err();
        assert_eq!(bad.variable, "CRMSYNC_QUEUE_NAME");
    }

    #[test]
    fn without_smtp_summaries_are_logged_and_deliveries_retry_by_default() {
        let config = Config::from_sources(&env(&[])).unwrap();
        assert!(config.smtp_url.is_none());
        assert_eq!(config.smtp_from, "crmsync <crmsync@localhost>");
        let settings = config.delivery_settings().unwrap();
        assert!(settings.smtp.is_none());
        assert_eq!(settings.public_url, "http://127.0.0.1:8080");
        assert_eq!(settings.retry_base, Duration::from_secs(10));
        assert_eq!(settings.max_attempts, 10);
    }

    #[test]
    fn smtp_and_delivery_settings_reach_the_dispatcher_without_printing_the_password() {
        let config = Config::from_sources(&env(&[
            (
                "CRMSYNC_SMTP_URL",
                "smtp://mailer:s3cret-pw@mail.example:587?tls=required",
            ),
            ("CRMSYNC_SMTP_FROM", "Sync <sync@acme.example>"),
            ("CRMSYNC_DELIVERY_RETRY_BASE_MS", "250"),
            ("CRMSYNC_DELIVERY_MAX_ATTEMPTS", "3"),
            ("CRMSYNC_PUBLIC_URL", "https://app.acme.example/"),
        ]))
        .unwrap();
        let settings = config.delivery_settings().unwrap();
        assert!(settings.smtp.is_some());
        assert_eq!(settings.public_url, "https://app.acme.example");
        assert_eq!(settings.retry_base, Duration::from_millis(250));
        assert_eq!(settings.max_attempts, 3);
        assert!(!format!("{config:?}").contains("s3cret-pw"));
        assert!(!format!("{settings:?}").contains("s3cret-pw"));
        let smtps = Config::from_sources(&env(&[("CRMSYNC_SMTP_URL", "smtps://mail.example")]));
        assert!(smtps.unwrap().delivery_settings().unwrap().smtp.is_some());
        let bad = Config::from_sources(&env(&[(
            "CRMSYNC_SMTP_URL",
            "imap://mailer:s3cret-pw@mail.example",
        )]))
        .unwrap_err();
        assert_eq!(bad.variable, "CRMSYNC_SMTP_URL");
        assert!(!bad.to_string().contains("s3cret-pw"), "{bad}");
    }

    #[test]
    fn rate_limits_default_to_100_per_second_and_10_failures_per_minute() {
        let config = Config::from_sources(&env(&[])).unwrap();
        assert_eq!(config.rate_limits.tenant_per_sec, 100);
        assert_eq!(config.rate_limits.auth_failures_per_min, 10);
        assert_eq!(config.rate_limits.auth_failures_burst, 20);
        assert_eq!(
            config.introspection,
            crmsync_api::Introspection::Authenticated
        );
    }

    #[test]
    fn rate_limits_and_introspection_follow_their_variables_and_zero_turns_a_limit_off() {
        let config = Config::from_sources(&env(&[
            ("CRMSYNC_RATE_LIMIT_TENANT_PER_SEC", "0"),
            ("CRMSYNC_RATE_LIMIT_AUTH_FAILURES_PER_MIN", "30"),
            ("CRMSYNC_INTROSPECTION", "always"),
        ]))
        .unwrap();
        assert_eq!(config.rate_limits.tenant_per_sec, 0);
        assert_eq!(config.rate_limits.auth_failures_per_min, 30);
        assert_eq!(config.introspection, crmsync_api::Introspection::Always);
    }

    #[test]
    fn errors_name_the_variable() {
        let cases = [
            ("CRMSYNC_BIND", "nowhere"),
            ("CRMSYNC_DATABASE_URL", "mysql://x"),
            ("CRMSYNC_JWT_SECRET", "short"),
            ("CRMSYNC_JWT_PUBLIC_KEY", "not a pem"),
            ("CRMSYNC_CREDENTIALS_KEY", "c2hvcnQ="),
            ("CRMSYNC_PUBLIC_URL", "ftp://x"),
            ("CRMSYNC_QUEUE_URL", "amqp://localhost"),
            ("CRMSYNC_QUEUE_URL", "127.0.0.1:6379"),
            ("CRMSYNC_QUEUE_HEARTBEAT_SECS", "0"),
            ("CRMSYNC_QUEUE_HEARTBEAT_SECS", "1.5"),
            ("CRMSYNC_WORKER_BIND", "9464"),
            ("CRMSYNC_SMTP_URL", "http://mail.example"),
            ("CRMSYNC_SMTP_URL", "smtp://mail.example?tls=sometimes"),
            ("CRMSYNC_SMTP_FROM", "not an address"),
            ("CRMSYNC_DELIVERY_RETRY_BASE_MS", "0"),
            ("CRMSYNC_DELIVERY_RETRY_BASE_MS", "1s"),
            ("CRMSYNC_DELIVERY_MAX_ATTEMPTS", "0"),
            ("CRMSYNC_DELIVERY_MAX_ATTEMPTS", "many"),
            ("CRMSYNC_ALLOW_LOCAL_TARGETS", "yes"),
            ("CRMSYNC_RATE_LIMIT_TENANT_PER_SEC", "-1"),
            ("CRMSYNC_RATE_LIMIT_TENANT_PER_SEC", "fast"),
            ("CRMSYNC_RATE_LIMIT_AUTH_FAILURES_PER_MIN", "1.5"),
            ("CRMSYNC_INTROSPECTION", "sometimes"),
        ];
        for (variable, value) in cases {
            let error = Config::from_sources(&env(&[(variable, value)])).unwrap_err();
            assert_eq!(error.variable, variable, "{error}");
        }
    }

    #[test]
    fn the_file_is_read_and_variables_win_over_it() {
        let dir = std::env::temp_dir().join(format!("crmsync-config-{}", crmsync_entity::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("crmsync.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9000\"\njwt_issuer = \"from-file\"\nqueue_heartbeat_secs = 5\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let config = Config::from_sources(&env(&[
            ("CRMSYNC_CONFIG", path),
            ("CRMSYNC_JWT_ISSUER", "from-env"),
        ]))
        .unwrap();
        assert_eq!(config.bind.port(), 9000);
        assert_eq!(config.jwt_issuer, "from-env");
        assert_eq!(config.queue_heartbeat, Duration::from_secs(5));
        std::fs::write(&file, "bnid = \"x\"\n").unwrap();
        assert_eq!(
            Config::from_sources(&env(&[("CRMSYNC_CONFIG", path)]))
                .unwrap_err()
                .variable,
            "CRMSYNC_CONFIG"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn embedded_keys_are_generated_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("crmsync-keys-{}", crmsync_entity::new_id()));
        let data_dir = dir.to_str().unwrap();
        let mut first = Config::from_sources(&env(&[("CRMSYNC_DATA_DIR", data_dir)])).unwrap();
        first.ensure_keys().unwrap();
        let mut second = Config::from_sources(&env(&[("CRMSYNC_DATA_DIR", data_dir)])).unwrap();
        second.ensure_keys().unwrap();
        assert_eq!(
            first.jwt_secret.unwrap().expose_secret(),
            second.jwt_secret.unwrap().expose_secret()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("credentials_key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    #[cfg(unix)]
    fn a_data_dir_crmsync_creates_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let parent = std::env::temp_dir().join(format!("crmsync-dir-{}", crmsync_entity::new_id()));
        let dir = parent.join("data");
        let mut config =
            Config::from_sources(&env(&[("CRMSYNC_DATA_DIR", dir.to_str().unwrap())])).unwrap();
        config.ensure_keys().unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::remove_dir_all(parent).unwrap();
    }

    #[test]
    fn postgres_refuses_to_start_without_explicit_keys() {
        let mut config =
            Config::from_sources(&env(&[("CRMSYNC_DATABASE_URL", "postgres://localhost/x")]))
                .unwrap();
        assert_eq!(
            config.ensure_keys().unwrap_err().variable,
            "CRMSYNC_JWT_SECRET"
        );
        let mut config = Config::from_sources(&env(&[
            ("CRMSYNC_DATABASE_URL", "postgres://localhost/x"),
            ("CRMSYNC_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ]))
        .unwrap();
        assert_eq!(
            config.ensure_keys().unwrap_err().variable,
            "CRMSYNC_CREDENTIALS_KEY"
        );
    }
}
