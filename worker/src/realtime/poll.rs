//! Real time by looking for changes, for CRMs that push no change
//! notifications our kind of app can use (the kit's `change_poll`): every
//! `every`, the real-time task lists each imported module from where its last
//! look ended, and the records changed since become notices, exactly as a
//! notification's would. What a look finds is still only a hint: the
//! CRM_EVENT run reads those records again and decides as any run does, and
//! no polling checkpoint moves.
//!
//! [`Marks`] keep, per module, the newest modification time a look has seen
//! and every version (id and modification time) seen within
//! [`crate::sync::OVERLAP`] of it. A look lists from that much before the
//! newest time, as a run reads before its checkpoint, and names only the
//! versions it has not seen: a record committed late with an earlier time,
//! or changed within the same second as the last one seen, is named once,
//! and an unchanged record never again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::CrmModule;
use serde::{Deserialize, Serialize};

use crate::crm::{CrmClient, CrmError, ListQuery};
use crate::sync::{OVERLAP, PAGE_SIZE};

/// Most records one look names; a larger change is named over the next
/// looks, and the schedule's poll reads it all the same.
pub const MOST_PER_LOOK: usize = 10_000;

/// Most versions a module's mark keeps (a bulk change within the overlap
/// keeps its newest ones; an older one forgotten may be named again, which
/// costs a read and writes nothing).
const MOST_SEEN: usize = 20_000;

/// How far the looks have read, by module (`CrmModule::as_str`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks(BTreeMap<String, Mark>);

/// How far one module was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The newest modification time seen (the CRM's clock).
    pub at: DateTime<Utc>,
    /// Where the first look started: nothing older is named.
    pub floor: DateTime<Utc>,
    /// The versions seen within the overlap before `at`: id, modification time.
    pub seen: BTreeMap<String, DateTime<Utc>>,
}

impl Marks {
    /// The marks stored in a subscription row (none when unreadable: the
    /// next look starts from `start` again, which at most names records twice).
    pub fn from_stored(stored: Option<&serde_json::Value>) -> Self {
        stored
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// The marks as stored.
    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("marks serialise")
    }

    /// The mark of `module`, if it was looked at.
    pub fn get(&self, module: CrmModule) -> Option<&Mark> {
        self.0.get(module.as_str())
    }
}

impl Mark {
    /// Forgets the versions older than the overlap before `at`, and the
    /// oldest ones past [`MOST_SEEN`].
    fn prune(&mut self) {
        let horizon = self.at - OVERLAP;
        self.seen.retain(|_, modified| *modified >= horizon);
        if self.seen.len() > MOST_SEEN {
            let mut times: Vec<DateTime<Utc>> = self.seen.values().copied().collect();
            times.sort_unstable();
            let keep_from = times[times.len() - MOST_SEEN];
            self.seen.retain(|_, modified| *modified >= keep_from);
        }
    }
}

/// One look: the records of `modules` changed since `marks` (or since
/// `start` for a module not looked at yet), and the marks after it. An
/// error is returned as is: the caller keeps its old marks.
pub async fn look(
    client: &dyn CrmClient,
    modules: &[CrmModule],
    marks: &Marks,
    start: DateTime<Utc>,
) -> Result<(Vec<(CrmModule, String)>, Marks), CrmError> {
    let mut changed = Vec::new();
    let mut after = marks.clone();
    for &module in modules {
        let mut mark = marks.get(module).cloned().unwrap_or_else(|| Mark {
            at: start,
            floor: start,
            seen: BTreeMap::new(),
        });
        let since = (mark.at - OVERLAP).max(mark.floor);
        let mut cursor = None;
        loop {
            let page = client
                .list(&ListQuery {
                    module,
                    since: Some(since),
                    cursor: cursor.take(),
                    page_size: client.records_per_read().max(PAGE_SIZE),
                })
                .await?;
            for record in page.records {
                if record.modified_at < since
                    || mark.seen.get(&record.id) == Some(&record.modified_at)
                {
                    continue;
                }
                mark.at = mark.at.max(record.modified_at);
                mark.seen.insert(record.id.clone(), record.modified_at);
                changed.push((module, record.id));
            }
            cursor = page.next_cursor;
            if cursor.is_none() || changed.len() >= MOST_PER_LOOK {
                break;
            }
        }
        mark.prune();
        after.0.insert(module.as_str().to_owned(), mark);
    }
    changed.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    changed.dedup();
    Ok((changed, after))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::crm::memory::{MemoryCrm, Operation};

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    /// `id` changed by a person at `when` (the CRM's clock).
    fn change(crm: &MemoryCrm, id: &str, when: DateTime<Utc>) {
        crm.set_clock(when);
        crm.put(CrmModule::Leads, Some(id), BTreeMap::new());
    }

    fn leads(ids: &[&str]) -> Vec<(CrmModule, String)> {
        ids.iter()
            .map(|id| (CrmModule::Leads, (*id).to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn a_look_names_each_change_once_even_in_the_same_instant_or_committed_late() {
        let crm = MemoryCrm::new(crate::crm::kit::any_kind());
        change(&crm, "1", at(10));
        change(&crm, "2", at(20));
        let modules = [CrmModule::Leads];

        let (changed, marks) = look(&crm, &modules, &Marks::default(), at(15))
            .await
            .unwrap();
        assert_eq!(changed, leads(&["2"]));
        assert_eq!(marks.get(CrmModule::Leads).unwrap().at, at(20));

        // Nothing changed: nothing named, the marks stay.
        let (changed, again) = look(&crm, &modules, &marks, at(15)).await.unwrap();
        assert!(changed.is_empty(), "{changed:?}");
        assert_eq!(again, marks);

        // A record changed at the very time of the last one seen, and a
        // later change of one seen before.
        change(&crm, "3", at(20));
        change(&crm, "1", at(30));
        let (changed, marks) = look(&crm, &modules, &again, at(15)).await.unwrap();
        assert_eq!(changed, leads(&["1", "3"]));
        assert_eq!(marks.get(CrmModule::Leads).unwrap().at, at(30));

        // A record committed late, with a time before the newest one seen
        // but within the overlap, is named once.
        change(&crm, "4", at(25));
        let (changed, marks) = look(&crm, &modules, &marks, at(15)).await.unwrap();
        assert_eq!(changed, leads(&["4"]));
        let (changed, _) = look(&crm, &modules, &marks, at(15)).await.unwrap();
        assert!(changed.is_empty(), "{changed:?}");
        assert_eq!(Marks::from_stored(Some(&marks.to_stored())), marks);
    }

    #[tokio::test]
    async fn a_look_reads_every_page_of_a_bulk_change() {
        let crm = MemoryCrm::new(crate::crm::kit::any_kind()).with_max_page_size(2);
        for i in 1..=5 {
            change(&crm, &i.to_string(), at(10 + i));
        }
        let (changed, _) = look(&crm, &[CrmModule::Leads], &Marks::default(), at(0))
            .await
            .unwrap();
        assert_eq!(changed, leads(&["1", "2", "3", "4", "5"]));
        assert_eq!(crm.calls(Operation::List), 3);
    }

    #[tokio::test]
    async fn a_failed_look_is_an_error_not_an_empty_one() {
        let crm = MemoryCrm::new(crate::crm::kit::any_kind());
        crm.fail(Operation::List, 0, 10, CrmError::Unavailable("down".into()));
        let err = look(&crm, &[CrmModule::Leads], &Marks::default(), at(0))
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }
}
