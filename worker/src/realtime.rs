//! Real time from the CRM: each connector's subscription to its CRM's change
//! notifications, kept in step with what the connector wants, and the
//! notifications it brings turned into CRM_EVENT runs.
//!
//! - **Lifecycle.** A connector wants a subscription while it is enabled,
//!   can sync (not waiting for new credentials), has `realtime` on and its
//!   kit supports notifications. [`Realtime::tick`] compares every connector
//!   with its subscription row: it subscribes, renews before expiry (or
//!   checks that the CRM still holds a subscription that does not expire),
//!   unsubscribes, and marks DEGRADED, with words a person can act on, a
//!   subscription the CRM refused, deleted or left silent; a DEGRADED one is
//!   subscribed again at its next check. One process ticks at a time (the
//!   `realtime` process lease, as the scheduler's).
//! - **Inbound.** [`Realtime::receive`] takes a call to a connector's URL
//!   (`{public_url}/crm-events/{token}`), finds the subscription by its
//!   token, has the kit verify the call against the sealed secret, stores
//!   the records it names (`crm_notices`) and starts or joins a CRM_EVENT
//!   run ([`crate::runs::notify_records`]).
//!
//! - **Looking for changes.** A kit whose CRM pushes nothing our kind of
//!   app can use may look for changes instead (its `change_poll`): the
//!   tick lists each imported module every `every` from where the last look
//!   ended ([`poll`]), and the records changed since become notices, as a
//!   notification's would. Such a connector is ACTIVE while its looks work.
//!
//! **Invariant:** a notification is only a hint. It names records; the run
//! reads them from the CRM's API and decides as any run does, and never
//! moves a polling checkpoint. A forged, replayed, lost, late or duplicated
//! notification can at most make crmsync read records again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::{ConnectorKind, ConnectorStatus, MappingDirection, RealtimeState};
use crmsync_entity::models::{connector, crm_record, field_mapping, realtime_subscription};
use crmsync_entity::{TenantId, TenantScoped};
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};
use secrecy::{ExposeSecret, SecretString};

use crate::credentials::CredentialsKey;
use crate::crm::realtime::{
    ChangePoll, Inbound, Notice, WATCH_GONE, WATCH_UNAVAILABLE, Watch, WatchRequest,
};
use crate::crm::{CrmClient, CrmError};
use crate::egress::HttpClient;
use crate::events::EventBus;
use crate::jobs::JobQueue;
use crate::metrics::Metrics;
use crate::settings::ConnectorSettings;

pub mod poll;

/// The path under which connectors' inbound URLs live (`{path}/{token}`).
pub const INBOUND_PATH: &str = "/crm-events";
/// How often the process holding the lease compares connectors with their
/// subscriptions.
pub const TICK: Duration = Duration::from_secs(10);
/// The process lease of the real-time task.
const LEASE: &str = "realtime";
/// How often a subscription that does not expire is checked (the CRM may
/// have deleted it) and the silence of an active one is looked at.
pub const CHECK_EVERY: chrono::Duration = chrono::Duration::minutes(15);
/// How long before its expiry a subscription is renewed.
pub const RENEW_BEFORE: chrono::Duration = chrono::Duration::hours(1);
/// How soon a DEGRADED subscription is tried again.
pub const RETRY_AFTER: chrono::Duration = chrono::Duration::minutes(1);
/// A record polling found changed this long after the last notification
/// (and this long ago) without one for it means the CRM stopped notifying.
pub const SILENCE_GRACE: chrono::Duration = chrono::Duration::minutes(10);
/// Most records one inbound call may name; more are left to polling.
pub const MAX_RECORDS_PER_CALL: usize = 1_000;

/// True when the kind has real time: its kit verifies inbound
/// notifications (its CRM offers change notifications crmsync uses), or
/// looks for changes ([`change_poll`]).
pub fn supported(kind: ConnectorKind) -> bool {
    crate::crm::registry::kit(kind)
        .is_some_and(|kit| kit.notifications().is_some() || kit.change_poll().is_some())
}

/// How the kind looks for changes, where its CRM pushes none crmsync can
/// use (`None`: it is notified, or has no real time).
pub fn change_poll(kind: ConnectorKind) -> Option<ChangePoll> {
    let kit = crate::crm::registry::kit(kind)?;
    match kit.notifications() {
        Some(_) => None,
        None => kit.change_poll(),
    }
}

/// True when the connector should be subscribed now.
pub fn wanted(connector: &connector::Model) -> bool {
    let Some(kit) = crate::crm::registry::kit(connector.kind) else {
        return false;
    };
    connector.enabled
        && matches!(
            connector.status,
            ConnectorStatus::Connected | ConnectorStatus::Error
        )
        && serde_json::from_value::<ConnectorSettings>(connector.settings.clone())
            .is_ok_and(|s| s.wants_realtime(kit.describe()))
}

/// A connector's real-time health, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// ACTIVE, DEGRADED, OFF or UNSUPPORTED.
    pub state: RealtimeState,
    /// When the subscription ends unless renewed (crmsync renews it first).
    pub subscribed_until: Option<DateTime<Utc>>,
    /// When the last verified notification came.
    pub last_event_at: Option<DateTime<Utc>>,
    /// What a person should know, in words.
    pub message: Option<String>,
}

/// The connector's real-time health.
pub async fn health(
    db: &impl sea_orm::ConnectionTrait,
    connector: &connector::Model,
) -> Result<Health, DbErr> {
    let tenant = TenantId::new(connector.tenant_id.clone());
    let row = realtime_subscription::Entity::for_tenant(&tenant)
        .filter(realtime_subscription::Column::ConnectorId.eq(&connector.id))
        .one(db)
        .await?;
    let last_event_at = row.as_ref().and_then(|r| r.last_event_at);
    if !supported(connector.kind) {
        return Ok(Health {
            state: RealtimeState::Unsupported,
            subscribed_until: None,
            last_event_at: None,
            message: Some(format!(
                "{} offers no change notifications crmsync can use: it is polled on the connector's schedule",
                connector.kind
            )),
        });
    }
    if !wanted(connector) {
        return Ok(Health {
            state: RealtimeState::Off,
            subscribed_until: None,
            last_event_at,
            message: None,
        });
    }
    Ok(match row {
        None => Health {
            state: RealtimeState::Degraded,
            subscribed_until: None,
            last_event_at: None,
            message: Some(match change_poll(connector.kind) {
                Some(_) => "not looking for changes yet: crmsync starts within seconds; the schedule syncs meanwhile".into(),
                None => "not subscribed yet: crmsync subscribes within a minute; the schedule syncs meanwhile".into(),
            }),
        },
        Some(r) => Health {
            state: r.state,
            subscribed_until: r.expires_at,
            last_event_at: r.last_event_at,
            message: r.message,
        },
    })
}

/// Why an inbound call was not taken.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// No subscription has this token (or its connector is gone).
    #[error("no subscription for this URL")]
    NotFound,
    /// The kit refused the call (bad signature, token or password).
    #[error("refused: {0}")]
    Refused(String),
    /// The database, the queue or the stored secret failed.
    #[error("{0}")]
    Internal(String),
}

impl From<DbErr> for InboundError {
    fn from(e: DbErr) -> Self {
        Self::Internal(e.to_string())
    }
}

/// What an accepted inbound call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Its records wait for this CRM_EVENT run (new or joined).
    Queued {
        /// The run.
        run_id: String,
        /// Records named.
        records: usize,
    },
    /// Verified, but nothing to read: no record of an imported module, or
    /// the connector no longer wants notifications (answered all the same,
    /// so the CRM does not retry).
    Ignored,
}

/// What one tick did, by connector id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Subscribed (first time, or again after DEGRADED).
    pub subscribed: Vec<String>,
    /// Renewed or found still held.
    pub renewed: Vec<String>,
    /// Unsubscribed (turned off, disabled).
    pub unsubscribed: Vec<String>,
    /// Marked DEGRADED.
    pub degraded: Vec<String>,
    /// Looked for changes and found some (a CRM_EVENT run reads them).
    pub changed: Vec<String>,
}

/// Everything the real-time side needs: the API process takes inbound
/// calls with it, the worker processes tick it.
#[derive(Clone)]
pub struct Realtime {
    /// The database.
    pub db: DatabaseConnection,
    /// Where CRM_EVENT runs' jobs go.
    pub queue: JobQueue,
    /// Where run events go.
    pub bus: Arc<dyn EventBus>,
    /// Opens connector credentials and subscription secrets.
    pub credentials_key: Arc<CredentialsKey>,
    /// The CRM calls' client, under the outbound rule.
    pub http: HttpClient,
    /// Where CRM calls are counted.
    pub metrics: Metrics,
    /// The address CRMs reach the API at (`CRMSYNC_PUBLIC_URL`).
    pub public_url: String,
    /// The clients of connectors that look for changes, kept across looks.
    pub clients: LookClients,
}

/// The clients of connectors that look for changes, kept from one look to
/// the next, so that a look every minute does not sign in, fetch a CSRF
/// token or read field definitions each time. A connector's client is made
/// again when its credentials, address or settings change.
#[derive(Clone, Default)]
pub struct LookClients(Arc<std::sync::Mutex<KeptClients>>);

/// By connector id: what its client was made from, and the client.
type KeptClients = HashMap<String, (u64, Arc<dyn CrmClient>)>;

impl LookClients {
    fn lock(&self) -> std::sync::MutexGuard<'_, KeptClients> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a connector's client is made from.
fn client_fingerprint(c: &connector::Model) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    c.credentials.hash(&mut hasher);
    c.base_url.hash(&mut hasher);
    c.settings.to_string().hash(&mut hasher);
    hasher.finish()
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Realtime {
    /// The URL a connector's CRM calls.
    pub fn notify_url(&self, token: &str) -> String {
        format!(
            "{}{INBOUND_PATH}/{token}",
            self.public_url.trim_end_matches('/')
        )
    }

    /// Ticks every [`TICK`] while this process holds the `realtime` lease,
    /// until `shutdown` completes; then gives the lease up.
    pub async fn run(
        self,
        holder: String,
        lease: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = false;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = &mut shutdown => break,
            }
            match crate::scheduler::hold(&self.db, LEASE, &holder, lease).await {
                Ok(held) => leading = held,
                Err(e) => {
                    tracing::warn!(error = %e, "realtime: cannot renew the realtime lease");
                    continue;
                }
            }
            if leading && let Err(e) = self.tick(Utc::now()).await {
                tracing::warn!(error = %e, "realtime: tick failed");
            }
        }
        if leading && let Err(e) = crate::scheduler::release(&self.db, LEASE, &holder).await {
            tracing::warn!(error = %e, "realtime: cannot release the realtime lease");
        }
    }

    /// One pass at `now`: every connector's subscription brought in line
    /// with what it wants. Call only while holding the lease ([`Self::run`]),
    /// or from tests.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Tick, DbErr> {
        let mut done = Tick::default();
        let mut rows: HashMap<String, realtime_subscription::Model> =
            realtime_subscription::Entity::all_subscriptions()
                .all(&self.db)
                .await?
                .into_iter()
                .map(|r| (r.connector_id.clone(), r))
                .collect();
        let connectors = connector::Entity::realtime_scan()
            .order_by_asc(connector::Column::Id)
            .all(&self.db)
            .await?;
        for c in connectors {
            let row = rows.remove(&c.id);
            let poll = change_poll(c.kind);
            match (wanted(&c), row) {
                (true, None) => {
                    let row = self.create_row(&c, poll, now).await?;
                    match poll {
                        Some(_) => done.subscribed.push(c.id.clone()),
                        None => self.subscribe(&c, row, now, &mut done).await?,
                    }
                }
                (true, Some(row)) if row.next_check_at <= now => match poll {
                    Some(poll) => self.look(&c, row, poll, now, &mut done).await?,
                    None => self.check(&c, row, now, &mut done).await?,
                },
                (false, Some(row)) => {
                    self.unsubscribe(&c, &row).await?;
                    done.unsubscribed.push(c.id.clone());
                }
                _ => {}
            }
        }
        Ok(done)
    }

    /// Unsubscribes a connector about to be deleted (its row goes with it).
    /// The CRM refusing or failing is logged, not an error: the connector
    /// goes all the same, and calls to its URL find nothing.
    pub async fn forget(&self, connector: &connector::Model) -> Result<(), DbErr> {
        let tenant = TenantId::new(connector.tenant_id.clone());
        let row = realtime_subscription::Entity::for_tenant(&tenant)
            .filter(realtime_subscription::Column::ConnectorId.eq(&connector.id))
            .one(&self.db)
            .await?;
        if let Some(row) = row {
            self.unsubscribe(connector, &row).await?;
        }
        Ok(())
    }

    /// A new row with a fresh token and secret: DEGRADED until the CRM
    /// accepts the subscription, or ACTIVE for a kind that looks for changes
    /// (its first look comes after `poll.every`, from a minute before now).
    async fn create_row(
        &self,
        c: &connector::Model,
        poll: Option<ChangePoll>,
        now: DateTime<Utc>,
    ) -> Result<realtime_subscription::Model, DbErr> {
        let id = crmsync_entity::new_id();
        // 48 hex digits (192 bits): short enough for the shortest secret a
        // CRM takes (50 characters, see the kits' notifications).
        let secret = SecretString::from(random_hex(24));
        let sealed = self
            .credentials_key
            .seal_realtime_secret(&c.tenant_id, &id, &secret);
        realtime_subscription::ActiveModel::from(realtime_subscription::Model {
            id,
            tenant_id: c.tenant_id.clone(),
            connector_id: c.id.clone(),
            token: random_hex(32),
            secret: sealed,
            watch_id: None,
            expires_at: None,
            state: match poll {
                Some(_) => RealtimeState::Active,
                None => RealtimeState::Degraded,
            },
            message: Some(match poll {
                Some(poll) => looking_words(poll),
                None => "subscribing to the CRM's change notifications".into(),
            }),
            subscribed_at: poll.map(|_| now),
            last_event_at: None,
            polled_to: None,
            next_check_at: now + poll.map_or(RETRY_AFTER, |p| duration(p.every)),
            created_at: now,
        })
        .insert(&self.db)
        .await
    }

    /// Asks the connector's CRM to subscribe (`renew`: `None`) or to renew
    /// `renew`, with the connector's URL, secret, modules and fields: the
    /// subscription as the CRM holds it and the secret it signs with, if it
    /// chooses one.
    async fn ask(
        &self,
        c: &connector::Model,
        row: &realtime_subscription::Model,
        renew: Option<&Watch>,
    ) -> Result<Result<(Watch, Option<SecretString>), CrmError>, DbErr> {
        let fields = self.read_fields(c).await?;
        let (client, secret, modules) = match self.prepared(c, row) {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Err(e)),
        };
        let Some(subs) = client.subscriptions() else {
            return Ok(Err(CrmError::Protocol(
                "the client has no subscriptions".into(),
            )));
        };
        let url = self.notify_url(&row.token);
        let request = WatchRequest {
            channel_id: &row.id,
            notify_url: &url,
            secret: secret.expose_secret(),
            modules: &modules,
            fields: &fields,
        };
        let held = match renew {
            None => subs.watch(&request).await,
            Some(watch) => subs.renew(watch, &request).await,
        };
        Ok(held.map(|watch| (watch, subs.signing_secret())))
    }

    /// Asks the CRM for a subscription; ACTIVE, or DEGRADED with why.
    async fn subscribe(
        &self,
        c: &connector::Model,
        row: realtime_subscription::Model,
        now: DateTime<Utc>,
        done: &mut Tick,
    ) -> Result<(), DbErr> {
        let outcome = self.ask(c, &row, None).await?;
        match outcome {
            Ok((watch, signing)) => {
                self.store_active(&row, &watch, signing, now, true).await?;
                done.subscribed.push(c.id.clone());
            }
            Err(e) => {
                tracing::info!(connector = %c.id, error = %e, "realtime: subscription refused");
                self.store_degraded(&row, None, refused_words(&e), now)
                    .await?;
                done.degraded.push(c.id.clone());
            }
        }
        Ok(())
    }

    /// A due check: subscribe again (DEGRADED without a watch), renew, or
    /// find it gone or silent.
    async fn check(
        &self,
        c: &connector::Model,
        row: realtime_subscription::Model,
        now: DateTime<Utc>,
        done: &mut Tick,
    ) -> Result<(), DbErr> {
        let Some(watch_id) = row.watch_id.clone() else {
            return self.subscribe(c, row, now, done).await;
        };
        let watch = Watch {
            id: watch_id,
            expires_at: row.expires_at,
        };
        if row.state == RealtimeState::Active
            && let Some(changed) = self.silent_since(&row, now).await?
        {
            let (client, ..) = match self.prepared(c, &row) {
                Ok(p) => p,
                Err(e) => {
                    self.store_degraded(&row, Some(&watch.id), refused_words(&e), now)
                        .await?;
                    done.degraded.push(c.id.clone());
                    return Ok(());
                }
            };
            if let Some(subs) = client.subscriptions()
                && let Err(e) = subs.unwatch(&watch).await
            {
                tracing::info!(connector = %c.id, error = %e, "realtime: could not end a silent subscription");
            }
            let message = format!(
                "the CRM sent no change notification for a record changed at {changed} that polling found: crmsync subscribes again; if this comes back, check the webhooks or notification settings in the CRM (the schedule syncs meanwhile)"
            );
            self.store_degraded(&row, None, message, now).await?;
            done.degraded.push(c.id.clone());
            return Ok(());
        }
        let renewed = self.ask(c, &row, Some(&watch)).await?;
        match renewed {
            Ok((watch, signing)) => {
                let again = row.state != RealtimeState::Active;
                self.store_active(&row, &watch, signing, now, again).await?;
                done.renewed.push(c.id.clone());
            }
            Err(CrmError::Rejected { code, message, .. }) if code == WATCH_GONE => {
                let message = format!(
                    "the CRM no longer holds the subscription ({message}): it was deleted or expired in the CRM; crmsync subscribes again at its next check (the schedule syncs meanwhile)"
                );
                self.store_degraded(&row, None, message, now).await?;
                done.degraded.push(c.id.clone());
            }
            Err(e) if e.is_retryable() => {
                // The CRM is unreachable for now: the subscription may well be
                // fine; look again soon without calling it degraded.
                tracing::info!(connector = %c.id, error = %e, "realtime: renewal postponed");
                realtime_subscription::Entity::update_many()
                    .col_expr(
                        realtime_subscription::Column::NextCheckAt,
                        Expr::value(now + RETRY_AFTER),
                    )
                    .filter(realtime_subscription::Column::TenantId.eq(&row.tenant_id))
                    .filter(realtime_subscription::Column::Id.eq(&row.id))
                    .exec(&self.db)
                    .await?;
            }
            Err(e) => {
                self.store_degraded(&row, Some(&watch.id), refused_words(&e), now)
                    .await?;
                done.degraded.push(c.id.clone());
            }
        }
        Ok(())
    }

    /// A due look for changes: the records changed since the last look
    /// become notices (a CRM_EVENT run), and the marks move on only once
    /// they are stored. A CRM that refuses the look makes it DEGRADED with
    /// why; one that is unreachable for now is looked at again next time.
    async fn look(
        &self,
        c: &connector::Model,
        row: realtime_subscription::Model,
        poll: ChangePoll,
        now: DateTime<Utc>,
        done: &mut Tick,
    ) -> Result<(), DbErr> {
        let mut am = realtime_subscription::ActiveModel::from(row.clone());
        am.next_check_at = Set(now + duration(poll.every));
        let marks = poll::Marks::from_stored(row.polled_to.as_ref());
        let start = row.created_at - chrono::Duration::minutes(1);
        let looked = match self.look_client(c, &row) {
            Ok((client, modules)) => poll::look(client.as_ref(), &modules, &marks, start).await,
            Err(e) => Err(e),
        };
        match looked {
            Ok((changed, marks)) => {
                if !changed.is_empty() {
                    let tenant = TenantId::new(c.tenant_id.clone());
                    let notice = Notice {
                        changed,
                        deleted: Vec::new(),
                    };
                    if let Err(e) = crate::runs::notify_records(
                        &self.db,
                        &self.queue,
                        self.bus.as_ref(),
                        &tenant,
                        &c.id,
                        &notice,
                    )
                    .await
                    {
                        // The marks stay: the next look names them again.
                        tracing::warn!(connector = %c.id, error = %e, "realtime: cannot start a run for the changes found");
                        am.update(&self.db).await?;
                        return Ok(());
                    }
                    am.last_event_at = Set(Some(now));
                    done.changed.push(c.id.clone());
                }
                am.polled_to = Set(Some(marks.to_stored()));
                am.state = Set(RealtimeState::Active);
                am.message = Set(Some(looking_words(poll)));
            }
            Err(e) if e.is_retryable() => {
                tracing::info!(connector = %c.id, error = %e, "realtime: look for changes postponed");
            }
            Err(e) => {
                tracing::info!(connector = %c.id, error = %e, "realtime: look for changes refused");
                am.state = Set(RealtimeState::Degraded);
                am.message = Set(Some(format!(
                    "the CRM refused crmsync's look for changes ({e}); crmsync looks again in {} (the schedule syncs meanwhile)",
                    every_words(poll.every)
                )));
                done.degraded.push(c.id.clone());
            }
        }
        am.update(&self.db).await?;
        Ok(())
    }

    /// The connector's client for looks (kept across them) and the modules
    /// it imports.
    fn look_client(
        &self,
        c: &connector::Model,
        row: &realtime_subscription::Model,
    ) -> Result<(Arc<dyn CrmClient>, Vec<crmsync_entity::enums::CrmModule>), CrmError> {
        let fingerprint = client_fingerprint(c);
        let modules = || {
            serde_json::from_value::<ConnectorSettings>(c.settings.clone())
                .map(|s| s.import_modules)
                .unwrap_or_default()
        };
        if let Some((kept, client)) = self.clients.lock().get(&c.id)
            && *kept == fingerprint
        {
            return Ok((client.clone(), modules()));
        }
        let (client, _, modules) = self.prepared(c, row)?;
        self.clients
            .lock()
            .insert(c.id.clone(), (fingerprint, client.clone()));
        Ok((client, modules))
    }

    /// The CRM's modification time of a record polling found changed well
    /// after the last notification (or the subscription), long enough ago
    /// that its notification should have come.
    async fn silent_since(
        &self,
        row: &realtime_subscription::Model,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DbErr> {
        let Some(heard) = row.last_event_at.into_iter().chain(row.subscribed_at).max() else {
            return Ok(None);
        };
        let tenant = TenantId::new(row.tenant_id.clone());
        let changed = crm_record::Entity::for_tenant(&tenant)
            .filter(crm_record::Column::ConnectorId.eq(&row.connector_id))
            .filter(crm_record::Column::ModifiedAt.gt(heard + SILENCE_GRACE))
            .filter(crm_record::Column::ModifiedAt.lt(now - SILENCE_GRACE))
            .order_by_asc(crm_record::Column::ModifiedAt)
            .one(&self.db)
            .await?;
        Ok(changed.map(|r| r.modified_at))
    }

    /// Ends the subscription in the CRM (best effort) and removes its row.
    async fn unsubscribe(
        &self,
        c: &connector::Model,
        row: &realtime_subscription::Model,
    ) -> Result<(), DbErr> {
        if let Some(id) = &row.watch_id {
            let watch = Watch {
                id: id.clone(),
                expires_at: row.expires_at,
            };
            match self.prepared(c, row) {
                Ok((client, ..)) => {
                    if let Some(subs) = client.subscriptions()
                        && let Err(e) = subs.unwatch(&watch).await
                    {
                        tracing::warn!(connector = %c.id, error = %e, "realtime: the CRM did not end the subscription; calls to its URL are refused from now on");
                    }
                }
                Err(e) => {
                    tracing::warn!(connector = %c.id, error = %e, "realtime: cannot reach the CRM to end the subscription; calls to its URL are refused from now on");
                }
            }
        }
        self.clients.lock().remove(&c.id);
        realtime_subscription::Entity::delete_many()
            .filter(realtime_subscription::Column::TenantId.eq(&row.tenant_id))
            .filter(realtime_subscription::Column::Id.eq(&row.id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The CRM fields the connector reads: the CRM side of its enabled
    /// mappings that flow from the CRM.
    async fn read_fields(&self, c: &connector::Model) -> Result<Vec<String>, DbErr> {
        let tenant = TenantId::new(c.tenant_id.clone());
        Ok(field_mapping::Entity::for_tenant(&tenant)
            .filter(field_mapping::Column::ConnectorId.eq(&c.id))
            .filter(field_mapping::Column::Enabled.eq(true))
            .filter(field_mapping::Column::Direction.ne(MappingDirection::ToCrm))
            .order_by_asc(field_mapping::Column::Position)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.crm_field)
            .collect())
    }

    /// The connector's client, the subscription's secret and the modules it
    /// imports.
    fn prepared(
        &self,
        c: &connector::Model,
        row: &realtime_subscription::Model,
    ) -> Result<Prepared, CrmError> {
        let fail = |m: String| CrmError::Protocol(m);
        let kit = crate::crm::registry::kit(c.kind)
            .ok_or_else(|| fail(crate::crm::registry::unavailable(c.kind)))?;
        let settings: ConnectorSettings = serde_json::from_value(c.settings.clone())
            .map_err(|e| fail(format!("the connector's settings are unreadable: {e}")))?;
        let sealed = c
            .credentials
            .as_deref()
            .ok_or_else(|| fail("the connector has no credentials: set them first".into()))?;
        let credentials = self
            .credentials_key
            .open(&c.tenant_id, &c.id, sealed)
            .map_err(|e| fail(format!("{e}: enter the credentials again")))?;
        let secret = self
            .credentials_key
            .open_realtime_secret(&row.tenant_id, &row.id, &row.secret)
            .map_err(|e| fail(format!("the subscription's secret: {e}")))?;
        let client = kit.client(
            &credentials,
            c.base_url.as_deref(),
            self.http.clone(),
            &settings.client_options(kit.describe()),
            &self.metrics,
        )?;
        Ok((client, secret, settings.import_modules))
    }

    async fn store_active(
        &self,
        row: &realtime_subscription::Model,
        watch: &Watch,
        signing: Option<SecretString>,
        now: DateTime<Utc>,
        subscribed: bool,
    ) -> Result<(), DbErr> {
        let mut am = realtime_subscription::ActiveModel::from(row.clone());
        if let Some(secret) = signing {
            // The CRM signs with a secret of its own (re-read at every
            // renewal, so a rotated one is taken up at the next check).
            am.secret =
                Set(self
                    .credentials_key
                    .seal_realtime_secret(&row.tenant_id, &row.id, &secret));
        }
        am.watch_id = Set(Some(watch.id.clone()));
        am.expires_at = Set(watch.expires_at);
        am.state = Set(RealtimeState::Active);
        am.message = Set(None);
        if subscribed {
            am.subscribed_at = Set(Some(now));
        }
        am.next_check_at = Set(next_check(watch, now));
        am.update(&self.db).await?;
        Ok(())
    }

    async fn store_degraded(
        &self,
        row: &realtime_subscription::Model,
        watch_id: Option<&str>,
        message: String,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let mut am = realtime_subscription::ActiveModel::from(row.clone());
        am.watch_id = Set(watch_id.map(str::to_owned));
        if watch_id.is_none() {
            am.expires_at = Set(None);
        }
        am.state = Set(RealtimeState::Degraded);
        am.message = Set(Some(message));
        am.next_check_at = Set(now + RETRY_AFTER);
        am.update(&self.db).await?;
        Ok(())
    }

    /// Takes an inbound call to `{INBOUND_PATH}/{token}`: verified by the
    /// connector's kit, its records stored and a CRM_EVENT run started or
    /// joined.
    pub async fn receive(
        &self,
        token: &str,
        inbound: &Inbound<'_>,
        now: DateTime<Utc>,
    ) -> Result<Received, InboundError> {
        // Tokens are 64 hex digits: anything else is not looked up.
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InboundError::NotFound);
        }
        let row = realtime_subscription::Entity::by_token(token)
            .one(&self.db)
            .await?
            .ok_or(InboundError::NotFound)?;
        let tenant = TenantId::new(row.tenant_id.clone());
        let connector = connector::Entity::find_for_tenant(&tenant, &row.connector_id)
            .one(&self.db)
            .await?
            .ok_or(InboundError::NotFound)?;
        let notifications = crate::crm::registry::kit(connector.kind)
            .and_then(|kit| kit.notifications())
            .ok_or(InboundError::NotFound)?;
        let secret = self
            .credentials_key
            .open_realtime_secret(&row.tenant_id, &row.id, &row.secret)
            .map_err(|e| InboundError::Internal(format!("subscription secret: {e}")))?;
        let notice = notifications
            .verify(inbound, secret.expose_secret(), now)
            .map_err(|r| InboundError::Refused(r.0))?;
        realtime_subscription::Entity::update_many()
            .col_expr(realtime_subscription::Column::LastEventAt, Expr::value(now))
            .filter(realtime_subscription::Column::TenantId.eq(tenant.as_str()))
            .filter(realtime_subscription::Column::Id.eq(&row.id))
            .exec(&self.db)
            .await?;
        let notice = self.imported_only(&connector, notice);
        if notice.is_empty() || !wanted(&connector) {
            return Ok(Received::Ignored);
        }
        let records = notice.changed.len() + notice.deleted.len();
        match crate::runs::notify_records(
            &self.db,
            &self.queue,
            self.bus.as_ref(),
            &tenant,
            &connector.id,
            &notice,
        )
        .await
        {
            Ok(Some(run)) => Ok(Received::Queued {
                run_id: run.id,
                records,
            }),
            Ok(None) => Ok(Received::Ignored),
            Err(e) => Err(InboundError::Internal(e.to_string())),
        }
    }

    /// The notice's records of the modules the connector imports, at most
    /// [`MAX_RECORDS_PER_CALL`] (polling finds any others).
    fn imported_only(&self, connector: &connector::Model, notice: Notice) -> Notice {
        let modules = serde_json::from_value::<ConnectorSettings>(connector.settings.clone())
            .map(|s| s.import_modules)
            .unwrap_or_default();
        let keep = |records: Vec<(crmsync_entity::enums::CrmModule, String)>| {
            records
                .into_iter()
                .filter(|(m, id)| modules.contains(m) && !id.is_empty() && id.len() <= 64)
                .take(MAX_RECORDS_PER_CALL)
                .collect::<Vec<_>>()
        };
        let changed = keep(notice.changed);
        let room = MAX_RECORDS_PER_CALL - changed.len();
        let mut deleted = keep(notice.deleted);
        deleted.truncate(room);
        Notice { changed, deleted }
    }
}

/// A connector's client, its subscription's secret and its imported modules.
type Prepared = (
    Arc<dyn CrmClient>,
    SecretString,
    Vec<crmsync_entity::enums::CrmModule>,
);

/// When a subscription is next looked at: before it expires, and at least
/// every [`CHECK_EVERY`].
fn next_check(watch: &Watch, now: DateTime<Utc>) -> DateTime<Utc> {
    let regular = now + CHECK_EVERY;
    match watch.expires_at {
        Some(expires) => (expires - RENEW_BEFORE).max(now + RETRY_AFTER).min(regular),
        None => regular,
    }
}

/// What a person reads while a kind without notifications looks for changes.
fn looking_words(poll: ChangePoll) -> String {
    format!(
        "{}; a change reaches the platform within {} or so, and the schedule syncs as before",
        poll.why,
        every_words(poll.every)
    )
}

/// "a minute", "30 seconds", "5 minutes".
fn every_words(every: Duration) -> String {
    match every.as_secs() {
        60 => "a minute".into(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// A std duration as chrono's (saturating; looks are minutes apart).
fn duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What a person reads when the CRM refused a subscription.
fn refused_words(e: &CrmError) -> String {
    match e {
        CrmError::Unauthorized(m) => format!(
            "the CRM refused the connector's credentials for change notifications ({m}): update the credentials; the schedule syncs meanwhile"
        ),
        CrmError::Rejected { code, message, .. } if code == WATCH_UNAVAILABLE => {
            format!("{message} (the schedule syncs meanwhile)")
        }
        CrmError::Rejected { message, .. } => format!(
            "the CRM refused the subscription to its change notifications: {message}; crmsync tries again within minutes (the schedule syncs meanwhile)"
        ),
        CrmError::DailyLimit(m) => format!(
            "the CRM's daily API limit is reached ({m}): crmsync subscribes again once it resets; the schedule syncs meanwhile"
        ),
        other => format!(
            "could not subscribe to the CRM's change notifications ({other}); crmsync tries again within minutes (the schedule syncs meanwhile)"
        ),
    }
}

/// `n` random bytes as lower-case hex digits.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
