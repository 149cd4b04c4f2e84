//! How a run ends: the one place that turns how a run stopped (its legs went
//! through, a cancel, a shutdown, the end of its slice, a CRM error, a
//! database failure, a worker that vanished) into what happens to it: its
//! final status and message, or no end at all (back to the queue, or left to
//! the worker that holds it).
//!
//! [`verdict`] reads how the legs stopped; [`ending`] decides the status and
//! message of every run that ends, wherever it ends (here, or in
//! [`crate::runs`] for a queued or abandoned run).

use crmsync_entity::enums::SyncRunStatus;

use super::Stop;
use crate::crm::CrmError;

/// How a run came to its end.
#[derive(Debug, Clone, Copy)]
pub(crate) enum End<'a> {
    /// Both legs went through; `rejected` contacts were refused on the way.
    Completed {
        /// Contacts rejected by either side.
        rejected: i64,
    },
    /// A person cancelled it: while queued, before it started, or between pages.
    Cancelled,
    /// The CRM's daily limit was reached (its words).
    DailyLimit(&'a str),
    /// Another CRM error ended it.
    Crm(&'a CrmError),
    /// The database failed while the run's pages were being saved.
    Db,
    /// Its worker stopped and no worker took it over.
    Abandoned,
    /// Its job could not be put on the queue.
    NotQueued,
}

/// A run's final status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ending {
    /// The final status.
    pub status: SyncRunStatus,
    /// What a person reads on the run (`error` in the API).
    pub message: Option<String>,
    /// True when the CRM refused the credentials: the connector needs new
    /// ones (NEEDS_REAUTH), for the reason in `message`.
    pub needs_reauth: bool,
}

/// What happens to a run whose legs stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The run ends.
    End(Ending),
    /// The process is shutting down: the run's lease is released and its job
    /// goes back to the queue for another worker (SIGTERM hand-back).
    HandBack,
    /// Its slice is over and other runs wait for a slot: it goes back to the
    /// queue (QUEUED) behind them, and on from its checkpoints later.
    Yield,
    /// Another worker holds the run (or ended it): it is left as stored.
    LeaveAsStored,
    /// The database failed before any page: the job fails and the queue
    /// delivers it again; the run is left as it is.
    Retry,
}

/// The status and message of a run that ends `how`.
pub(crate) fn ending(how: End<'_>) -> Ending {
    let end = |status, message: Option<String>| Ending {
        status,
        message,
        needs_reauth: false,
    };
    match how {
        End::Completed { rejected: 0 } => end(SyncRunStatus::Succeeded, None),
        End::Completed { rejected } => end(
            SyncRunStatus::Partial,
            Some(format!("{rejected} contacts rejected: see the run's items")),
        ),
        End::Cancelled => end(SyncRunStatus::Cancelled, None),
        End::DailyLimit(limit) => daily_limit(limit),
        End::Crm(CrmError::DailyLimit(limit)) => daily_limit(limit),
        End::Crm(CrmError::Unauthorized(reason)) => Ending {
            status: SyncRunStatus::Failed,
            message: Some(reason.clone()),
            needs_reauth: true,
        },
        End::Crm(other) => end(SyncRunStatus::Failed, Some(other.to_string())),
        End::Db => end(
            SyncRunStatus::Failed,
            Some("internal error while saving the run's results; start the sync again".into()),
        ),
        End::Abandoned => end(
            SyncRunStatus::Failed,
            Some(
                "its worker stopped and no worker took it over; a new run goes on from the last saved page"
                    .into(),
            ),
        ),
        End::NotQueued => end(
            SyncRunStatus::Failed,
            Some("the run could not be queued; start it again".into()),
        ),
    }
}

/// A run the CRM's daily limit stopped: PARTIAL, and the next run resumes.
fn daily_limit(limit: &str) -> Ending {
    Ending {
        status: SyncRunStatus::Partial,
        message: Some(format!(
            "stopped: {limit}; the next run resumes from the last checkpoint"
        )),
        needs_reauth: false,
    }
}

/// What happens to a run whose legs stopped with `outcome` (`Ok` with the
/// contacts rejected on the way when they went through); `pages_started` is
/// false while the run is still being prepared (connector, fields, mappings).
pub(crate) fn verdict(outcome: &Result<i64, Stop>, pages_started: bool) -> Verdict {
    let how = match outcome {
        Ok(rejected) => End::Completed {
            rejected: *rejected,
        },
        Err(Stop::Cancelled) => End::Cancelled,
        Err(Stop::DailyLimit(limit)) => End::DailyLimit(limit),
        Err(Stop::Crm(e)) => End::Crm(e),
        Err(Stop::Db(_)) if pages_started => End::Db,
        Err(Stop::Db(_)) => return Verdict::Retry,
        Err(Stop::HandBack) => return Verdict::HandBack,
        Err(Stop::Yield) => return Verdict::Yield,
        Err(Stop::LeaseLost) => return Verdict::LeaveAsStored,
    };
    Verdict::End(ending(how))
}

#[cfg(test)]
mod tests {
    use sea_orm::DbErr;

    use super::*;

    fn ended(status: SyncRunStatus, message: Option<&str>) -> Verdict {
        Verdict::End(Ending {
            status,
            message: message.map(str::to_owned),
            needs_reauth: false,
        })
    }

    #[test]
    fn each_way_a_run_stops_has_one_status_and_message() {
        use SyncRunStatus::*;
        let unauthorized = Verdict::End(Ending {
            status: Failed,
            message: Some("invalid oauth token".into()),
            needs_reauth: true,
        });
        let daily = Some("stopped: 0 credits left; the next run resumes from the last checkpoint");
        let daily_crm = Some(
            "stopped: the CRM's daily API limit is reached: x; the next run resumes from the last checkpoint",
        );
        let db = Some("internal error while saving the run's results; start the sync again");
        let table: Vec<(Result<i64, Stop>, bool, Verdict)> = vec![
            (Ok(0), true, ended(Succeeded, None)),
            (
                Ok(3),
                true,
                ended(Partial, Some("3 contacts rejected: see the run's items")),
            ),
            (Err(Stop::Cancelled), true, ended(Cancelled, None)),
            (Err(Stop::Cancelled), false, ended(Cancelled, None)),
            (
                Err(Stop::DailyLimit("0 credits left".into())),
                true,
                ended(Partial, daily),
            ),
            (
                Err(Stop::DailyLimit("0 credits left".into())),
                false,
                ended(Partial, daily),
            ),
            (
                Err(Stop::Crm(CrmError::DailyLimit(
                    "the CRM's daily API limit is reached: x".into(),
                ))),
                true,
                ended(Partial, daily_crm),
            ),
            (
                Err(Stop::Crm(CrmError::Unauthorized(
                    "invalid oauth token".into(),
                ))),
                true,
                unauthorized.clone(),
            ),
            (
                Err(Stop::Crm(CrmError::Unauthorized(
                    "invalid oauth token".into(),
                ))),
                false,
                unauthorized,
            ),
            (
                Err(Stop::Crm(CrmError::Unavailable("502".into()))),
                true,
                ended(Failed, Some("the CRM is unavailable: 502")),
            ),
            (
                Err(Stop::Crm(CrmError::Protocol("no data".into()))),
                false,
                ended(Failed, Some("unexpected reply from the CRM: no data")),
            ),
            (
                Err(Stop::Db(DbErr::Custom("x".into()))),
                true,
                ended(Failed, db),
            ),
            (
                Err(Stop::Db(DbErr::Custom("x".into()))),
                false,
                Verdict::Retry,
            ),
            (Err(Stop::HandBack), true, Verdict::HandBack),
            (Err(Stop::HandBack), false, Verdict::HandBack),
            (Err(Stop::Yield), true, Verdict::Yield),
            (Err(Stop::LeaseLost), true, Verdict::LeaveAsStored),
            (Err(Stop::LeaseLost), false, Verdict::LeaveAsStored),
        ];
        for (outcome, pages_started, expected) in table {
            assert_eq!(
                verdict(&outcome, pages_started),
                expected,
                "{outcome:?}, pages started: {pages_started}"
            );
        }
    }

    #[test]
    fn runs_ended_outside_a_worker_use_the_same_policy() {
        use SyncRunStatus::*;
        let table = [
            (End::Cancelled, Cancelled, None),
            (
                End::Abandoned,
                Failed,
                Some(
                    "its worker stopped and no worker took it over; a new run goes on from the last saved page",
                ),
            ),
            (
                End::NotQueued,
                Failed,
                Some("the run could not be queued; start it again"),
            ),
        ];
        for (how, status, message) in table {
            assert_eq!(
                ending(how),
                Ending {
                    status,
                    message: message.map(str::to_owned),
                    needs_reauth: false,
                },
                "{how:?}"
            );
        }
    }
}
