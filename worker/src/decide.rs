//! The pure sync decision for one contact/record pair: what to create or update
//! on each side, what to reject and why, and which fields were in conflict.
//!
//! No I/O: the engine loads both sides, the last-synced snapshot and the rules,
//! calls [`decide`], applies the writes, and saves [`Decision::snapshot`] for the
//! writes that succeeded.
//!
//! Change detection compares each side with its own form of the last agreed
//! value (the snapshot keeps both forms), so lossy translations between the
//! sides (a name split differently by the CRM, an e-mail's case, `42` read back
//! as `42.0`) never look like changes: no echo (S7).
//!
//! A decision also describes itself field by field ([`Decision::changes`]):
//! which value each write replaces on its target side, and whether the field
//! was in conflict. Real runs and dry runs record the same description.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crmsync_entity::enums::{CrmModule, SyncDirection};
pub use crmsync_entity::models::sync_item::{FieldChange, FieldChangeRef};

use crate::crm::{CrmField, FieldType};
use crate::platform::{Mapping, platform_field};

/// Field values: platform fields by name, or CRM fields by api name.
pub type Values = BTreeMap<String, Value>;

/// The side whose record was modified last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The platform contact.
    Platform,
    /// The CRM record.
    Crm,
}

/// One field's last agreed value, in each side's form.
///
/// Stored as `{"p": .., "c": ..}`, with `c` left out when both forms are the
/// same (most fields): a link's snapshot is written at every sync of every
/// contact, and this keeps it about half as long. A stored `c` is always read,
/// `null` included.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreed {
    /// The platform's form.
    pub p: Value,
    /// The CRM's form (as the client reads it back).
    pub c: Value,
}

impl Serialize for Agreed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let same = self.p == self.c;
        let mut out = serializer.serialize_struct("Agreed", if same { 1 } else { 2 })?;
        out.serialize_field("p", &self.p)?;
        if !same {
            out.serialize_field("c", &self.c)?;
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for Agreed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The stored form: `c` absent means the same as `p`; `c: null` is null.
        #[derive(Deserialize)]
        struct Stored {
            p: Value,
            #[serde(default, deserialize_with = "present")]
            c: Option<Value>,
        }
        fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
            Value::deserialize(d).map(Some)
        }
        let Stored { p, c } = Stored::deserialize(deserializer)?;
        let c = c.unwrap_or_else(|| p.clone());
        Ok(Agreed { p, c })
    }
}

/// The last-synced values of a pair, by platform field (stored on the link).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Snapshot(pub BTreeMap<String, Agreed>);

impl Snapshot {
    /// Reads a stored snapshot; anything unreadable is no snapshot.
    pub fn from_json(value: &Value) -> Option<Self> {
        // Read from the stored value in place, not from a copy of it.
        Snapshot::deserialize(value)
            .ok()
            .filter(|s: &Snapshot| !s.0.is_empty())
    }
}

/// A snapshot's stored form (JSON text) from layers of agreed values, a later
/// layer's field over an earlier one's; the same text as the [`Snapshot`]
/// they make would serialise to.
fn stored(layers: &[Option<&BTreeMap<String, Agreed>>]) -> String {
    /// The layers merged as they serialise: each is in key order, so the
    /// merge takes the least key of their heads, from the last layer holding
    /// it, and moves every head holding it on (no merged map is built).
    struct Merged<'a>(&'a [Option<&'a BTreeMap<String, Agreed>>]);
    impl Serialize for Merged<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut heads: Vec<_> = self
                .0
                .iter()
                .flatten()
                .map(|layer| layer.iter().peekable())
                .collect();
            let mut out = serializer.serialize_map(None)?;
            while let Some(least) = heads
                .iter_mut()
                .filter_map(|h| h.peek().map(|(k, _)| k.as_str()))
                .min()
            {
                let mut value = None;
                for head in &mut heads {
                    if let Some((_, agreed)) = head.next_if(|(k, _)| k.as_str() == least) {
                        value = Some(agreed);
                    }
                }
                out.serialize_entry(least, value.expect("a head holds the least key"))?;
            }
            out.end()
        }
    }
    serde_json::to_string(&Merged(layers)).expect("snapshots serialise")
}

/// Why a pair was refused, in words a person can act on (R2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// MISSING_EMAIL, MISSING_NAME, INVALID_PICKLIST_VALUE, CONVERTED_LEAD, ...
    pub code: String,
    /// The field at fault.
    pub field: Option<String>,
    /// What to do about it.
    pub message: String,
}

impl Rejection {
    fn new(code: &str, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// What to do to one side.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create the record with these values (keyed in the target side's names).
    Create(Values),
    /// Update these fields only.
    Update(Values),
    /// Nothing to write.
    Unchanged,
    /// Refused: nothing is written to this side.
    Reject(Rejection),
}

/// The decision for one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Writes to the platform (the FROM_CRM direction), keyed by platform field.
    pub to_platform: Write,
    /// Writes to the CRM (the TO_CRM direction), keyed by CRM field.
    pub to_crm: Write,
    /// Fields in conflict whose winner flows to the platform (S6).
    pub platform_conflicts: Vec<String>,
    /// Fields in conflict whose winner flows to the CRM (S6).
    pub crm_conflicts: Vec<String>,
    base: Snapshot,
    via_platform: BTreeMap<String, Agreed>,
    via_crm: BTreeMap<String, Agreed>,
    /// The values both sides held, for the fields in `via_platform`.
    found: BTreeMap<String, Agreed>,
    /// Where each value written to the platform comes from, by platform field.
    platform_origins: BTreeMap<String, Origin>,
    /// Where each value written to the CRM comes from, by CRM field.
    crm_origins: BTreeMap<String, Origin>,
    /// A CRM with one name field (F5) receives the name parts as one value.
    joined_name: Option<JoinedName>,
}

/// The mapping a written value follows, and the value the target side held.
/// Kept by the target side's field, so only the other side's is stored: the
/// platform field of a CRM write, the CRM field (none for a field that
/// follows no mapping) of a platform write.
#[derive(Debug, Clone, PartialEq)]
struct Origin {
    other: Option<String>,
    from: Value,
}

/// The change of a CRM's one name field: the name parts' platform fields
/// joined with ` + `, and the joined name written.
struct NameChange {
    platform_field: String,
    to: Value,
}

/// The null value, for borrowed lookups that find nothing.
static NULL: Value = Value::Null;

/// The name a CRM with one name field held, and the platform fields whose
/// values make the new one.
#[derive(Debug, Clone, PartialEq)]
struct JoinedName {
    parts: Vec<String>,
    from: Value,
}

impl Decision {
    /// The snapshot to save once the writes are applied: a side whose write
    /// failed or was refused keeps its fields' previous agreed values, so the
    /// next run tries again.
    pub fn snapshot(&self, platform_applied: bool, crm_applied: bool) -> Snapshot {
        let mut out = self.base.clone();
        if platform_applied {
            out.0.extend(self.via_platform.clone());
        }
        if crm_applied {
            out.0.extend(self.via_crm.clone());
        }
        out
    }

    /// [`Decision::snapshot`] in its stored form (JSON text), serialised from
    /// the decision's own maps rather than a copy of them.
    pub fn stored_snapshot(&self, platform_applied: bool, crm_applied: bool) -> String {
        stored(&[
            Some(&self.base.0),
            platform_applied.then_some(&self.via_platform),
            crm_applied.then_some(&self.via_crm),
        ])
    }

    /// The snapshot to save when the platform side is not written at all (the
    /// export leg matching a CRM record the import leg does not take), in its
    /// stored form: fields that would have flowed to the platform are agreed
    /// as both sides hold them now, so the next run sees no change that did
    /// not happen.
    pub fn stored_snapshot_as_found(&self, crm_applied: bool) -> String {
        stored(&[
            Some(&self.base.0),
            Some(&self.found),
            crm_applied.then_some(&self.via_crm),
        ])
    }

    /// This decision's platform side with `then`'s CRM side: for a contact
    /// created from the CRM, `then` is decided against the new contact with
    /// this decision's snapshot, and its snapshot includes this one's.
    pub fn with_crm_side_of(self, then: Decision) -> Decision {
        let mut base = then.base;
        base.0.extend(then.via_platform);
        Decision {
            to_platform: self.to_platform,
            to_crm: then.to_crm,
            platform_conflicts: self.platform_conflicts,
            crm_conflicts: then.crm_conflicts,
            base,
            via_platform: self.via_platform,
            via_crm: then.via_crm,
            found: self.found,
            platform_origins: self.platform_origins,
            crm_origins: then.crm_origins,
            joined_name: then.joined_name,
        }
    }

    /// Writes a platform field that follows no mapping (S10: the lifecycle
    /// follows the CRM record's module) on top of the mapped writes. `current`
    /// is the contact's value, `None` when there is no contact yet; a side
    /// refused, or a contact neither created nor there, is left alone.
    pub fn set_platform_field(&mut self, field: &str, current: Option<Value>, value: Value) {
        match &mut self.to_platform {
            Write::Create(values) | Write::Update(values) => {
                values.insert(field.to_owned(), value);
            }
            Write::Unchanged if current.is_some() => {
                self.to_platform = Write::Update(Values::from([(field.to_owned(), value)]));
            }
            _ => return,
        }
        self.platform_origins
            .entry(field.to_owned())
            .or_insert_with(|| Origin {
                other: None,
                from: current.unwrap_or(Value::Null),
            });
    }

    /// Writes a CRM field that follows no mapping (a sync rule's field, S13)
    /// on top of a CRM write the decision makes; `current` is what the
    /// record is known to hold. A side refused or left unchanged is left alone.
    pub fn set_crm_field(&mut self, field: &str, current: Option<Value>, value: Value) {
        let (Write::Create(values) | Write::Update(values)) = &mut self.to_crm else {
            return;
        };
        values.insert(field.to_owned(), value);
        self.crm_origins
            .entry(field.to_owned())
            .or_insert_with(|| Origin {
                other: None,
                from: current.unwrap_or(Value::Null),
            });
    }

    /// What the writes change, field by field, on their target side: the
    /// value the side held (null for a creation) and the value it gets, and
    /// whether the field changed on both sides (S6). A refused or empty
    /// write changes nothing; a value written unchanged (a name part sent
    /// along with the other, F5) is no change. A CRM with one name field
    /// gets the name parts as one change of its `name`.
    pub fn changes(&self) -> Vec<FieldChange> {
        let mut out = self.changes_to(SyncDirection::FromCrm);
        out.extend(self.changes_to(SyncDirection::ToCrm));
        out
    }

    /// [`Decision::changes`] of one side: FROM_CRM, the platform's; TO_CRM, the CRM's.
    pub fn changes_to(&self, direction: SyncDirection) -> Vec<FieldChange> {
        let name = self.name_change(direction);
        self.change_refs(direction, name.as_ref())
            .iter()
            .map(|c| c.to_owned(direction))
            .collect()
    }

    /// The stored form of one side's changes ([`FieldChange::to_text`]),
    /// followed by `then` (a lead's conversion), serialised from the
    /// decision without a copy of its values; `None` for none.
    pub fn changes_text(&self, direction: SyncDirection, then: &[FieldChange]) -> Option<String> {
        let name = self.name_change(direction);
        let changes = self.change_refs(direction, name.as_ref());
        FieldChangeRef::to_text(
            changes
                .into_iter()
                .chain(then.iter().map(FieldChange::as_ref)),
        )
    }

    /// The one change of a CRM's single name field (F5) when the CRM write
    /// carries a name part: the parts' platform fields and the joined name.
    fn name_change(&self, direction: SyncDirection) -> Option<NameChange> {
        if direction != SyncDirection::ToCrm {
            return None;
        }
        let name = self.joined_name.as_ref()?;
        let (Write::Create(values) | Write::Update(values)) = &self.to_crm else {
            return None;
        };
        if !values.keys().any(|k| is_name(k)) {
            return None;
        }
        let joined = join_pair(&(
            clean(values.get("first_name")),
            clean(values.get("last_name")),
        ));
        Some(NameChange {
            platform_field: name.parts.join(" + "),
            to: if joined.is_empty() {
                Value::Null
            } else {
                Value::String(joined)
            },
        })
    }

    /// One side's changes, borrowed from the decision (and from `name`, the
    /// side's [`Decision::name_change`]).
    fn change_refs<'a>(
        &'a self,
        direction: SyncDirection,
        name: Option<&'a NameChange>,
    ) -> Vec<FieldChangeRef<'a>> {
        let write = match direction {
            SyncDirection::FromCrm => &self.to_platform,
            SyncDirection::ToCrm => &self.to_crm,
        };
        let (Write::Create(values) | Write::Update(values)) = write else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(values.len());
        let mut name_done = false;
        for (key, to) in values {
            let change = match direction {
                // Keyed by platform field.
                SyncDirection::FromCrm => {
                    let origin = self.platform_origins.get(key);
                    FieldChangeRef {
                        platform_field: key,
                        crm_field: origin.and_then(|o| o.other.as_deref()),
                        from: origin.map_or(&NULL, |o| &o.from),
                        to,
                        conflict: self.platform_conflicts.contains(key),
                    }
                }
                // Keyed by CRM field; one name field takes both parts at once.
                SyncDirection::ToCrm => match self.joined_name.as_ref().filter(|_| is_name(key)) {
                    Some(_) if name_done => continue,
                    Some(joined) => {
                        name_done = true;
                        let name = name.expect("made for a write with a name part");
                        FieldChangeRef {
                            platform_field: &name.platform_field,
                            crm_field: Some("name"),
                            from: &joined.from,
                            to: &name.to,
                            conflict: joined.parts.iter().any(|p| self.crm_conflicts.contains(p)),
                        }
                    }
                    None => {
                        let origin = self.crm_origins.get(key);
                        let platform_field = origin
                            .and_then(|o| o.other.as_deref())
                            .unwrap_or(key.as_str());
                        FieldChangeRef {
                            platform_field,
                            crm_field: Some(key),
                            from: origin.map_or(&NULL, |o| &o.from),
                            to,
                            conflict: self.crm_conflicts.iter().any(|c| c == platform_field),
                        }
                    }
                },
            };
            // A value sent unchanged (a name part going along) is no change.
            if change.from != change.to {
                out.push(change);
            }
        }
        out
    }

    /// True when nothing is written to either side.
    pub fn writes_nothing(&self) -> bool {
        !matches!(self.to_platform, Write::Create(_) | Write::Update(_))
            && !matches!(self.to_crm, Write::Create(_) | Write::Update(_))
    }
}

/// What the pair's sides hold.
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    /// The platform contact's values by platform field; `None` when there is none yet.
    pub platform: Option<&'a Values>,
    /// The CRM record's values by CRM field; `None` when there is none yet.
    pub crm: Option<&'a Values>,
    /// The CRM record is a converted lead (S4): never overwritten.
    pub crm_converted: bool,
    /// The last agreed values; `None` for a pair never synced.
    pub snapshot: Option<&'a Snapshot>,
    /// Which side was modified last (decides conflicts).
    pub newer: Side,
}

/// The connector's rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Mapping rows (disabled ones are skipped).
    pub mappings: &'a [Mapping],
    /// The CRM's fields by api name.
    pub fields: &'a HashMap<String, CrmField>,
    /// The CRM keeps one name field: first and last names are
    /// joined on the way out and compared joined (F5).
    pub joined_name: bool,
    /// E-mails of CRM users who may own records (S9).
    pub owners: &'a HashSet<String>,
    /// The owner when the contact's owner is no CRM user.
    pub default_owner: Option<&'a str>,
}

/// The platform field of a contact's opt-out (S9).
pub const OPTED_OUT: &str = "opted_out";

/// What both sides say of a contact's opt-out, for [`consent_flow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    /// The platform contact is opted out.
    pub platform_out: bool,
    /// The CRM record is opted out.
    pub crm_out: bool,
    /// Whether each side (platform, CRM) changed since the last agreed
    /// state; `None` for a pair with no agreed opt-out state yet.
    pub changed: Option<(bool, bool)>,
}

/// S9, the one place deciding where an opt-out state flows: opt-out wins.
/// When the sides disagree, an opt-in reaches the opted-out side only when
/// it is known to be newer than that opt-out: the opt-in changed since the
/// state both sides last agreed on (which held the opt-out) and the opt-out
/// did not. Otherwise (a conflict: both changed, or a pair with no agreed
/// state, whose record times say nothing of when its opt-out field
/// changed) the opt-out goes to the opted-in side, if the mapping lets it,
/// whichever record is newer. `flow` is the field's flow by the general
/// rules; `None` stays `None`.
pub fn consent_flow(
    c: &Consent,
    can_to_crm: bool,
    can_to_platform: bool,
    flow: Option<Side>,
) -> Option<Side> {
    flow?;
    let out_side = match (c.platform_out, c.crm_out) {
        (true, false) => Side::Platform,
        (false, true) => Side::Crm,
        _ => return flow,
    };
    let in_side = opposite(out_side);
    let opt_in_is_newer = match c.changed {
        Some((p_changed, c_changed)) => {
            let (in_changed, out_changed) = match in_side {
                Side::Platform => (p_changed, c_changed),
                Side::Crm => (c_changed, p_changed),
            };
            in_changed && !out_changed
        }
        None => false,
    };
    if opt_in_is_newer {
        // The opt-in flows to the opted-out side, as the general rules say.
        return flow;
    }
    let can = match in_side {
        Side::Crm => can_to_crm,
        Side::Platform => can_to_platform,
    };
    // The opt-out flows to the opted-in side; else nothing moves.
    can.then_some(in_side)
}

/// Decides what to do with one pair.
pub fn decide(pair: &Pair<'_>, rules: &Rules<'_>) -> Decision {
    let empty = Values::new();
    let platform = pair.platform.unwrap_or(&empty);
    let crm = pair.crm.unwrap_or(&empty);
    let mut d = Decision {
        to_platform: Write::Unchanged,
        to_crm: Write::Unchanged,
        platform_conflicts: Vec::new(),
        crm_conflicts: Vec::new(),
        base: pair.snapshot.cloned().unwrap_or_default(),
        via_platform: BTreeMap::new(),
        via_crm: BTreeMap::new(),
        found: BTreeMap::new(),
        platform_origins: BTreeMap::new(),
        crm_origins: BTreeMap::new(),
        joined_name: None,
    };
    let mut to_platform = Values::new();
    let mut to_crm = Values::new();
    let mut platform_rejection = None;
    let mut crm_rejection = None;

    if pair.crm.is_some() && crm_email(crm, rules).is_none() {
        platform_rejection = Some(Rejection::new(
            "MISSING_EMAIL",
            email_mapping(rules).map(|m| m.crm_field.as_str()),
            "the CRM record has no valid e-mail address; add one in the CRM to sync it",
        ));
    }

    let crm_name = crm_names(crm, rules);
    let name_flow = if rules.joined_name {
        name_flow(pair, platform, &crm_name, rules, &mut d)
    } else {
        None
    };
    for m in rules.mappings.iter().filter(|m| m.enabled) {
        let Some(pfield) = platform_field(&m.platform_field) else {
            continue;
        };
        let crm_field = rules.fields.get(&m.crm_field);
        let ftype = crm_field.map_or(FieldType::Text, |f| f.field_type);
        let pv = cleaned(platform.get(&m.platform_field));
        let cv = match (rules.joined_name, m.crm_field.as_str()) {
            (true, "first_name") => cleaned(Some(&crm_name.0)),
            (true, "last_name") => cleaned(Some(&crm_name.1)),
            _ => cleaned(crm.get(&m.crm_field)),
        };
        let kind = compare_kind(pfield.field_type, ftype);
        let name_part = rules.joined_name && is_name(&m.crm_field);
        let agreed = pair.snapshot.and_then(|s| s.0.get(&m.platform_field));
        // The comparisons below are made only where the flow needs them: a
        // pair missing a side (a creation) needs none.
        // Values already equal across sides need nothing (names compared joined).
        let equal_now = || {
            if name_part {
                same_text(&joined(platform, rules), &join_pair(&crm_name))
            } else {
                same_across(pv, cv, kind)
            }
        };
        let can_to_crm = m.to_crm();
        let can_to_platform = m.from_crm() && !pfield.computed;
        // The two name parts move together: compared joined on both sides (F5).
        let p_changed = || match (agreed, pair.snapshot) {
            (None, _) | (_, None) => true,
            (Some(_), Some(snap)) if name_part => {
                let before = (
                    snap_side(snap, rules, "first_name", Side::Platform),
                    snap_side(snap, rules, "last_name", Side::Platform),
                );
                !same_text(&joined(platform, rules), &join_pair(&before))
            }
            (Some(a), Some(_)) => !same(pv, &a.p, kind),
        };
        let c_changed = || match agreed {
            None => true,
            Some(_) if name_part => {
                let snap = pair.snapshot.expect("agreed comes from it");
                let before = (
                    snap_side(snap, rules, "first_name", Side::Crm),
                    snap_side(snap, rules, "last_name", Side::Crm),
                );
                !same_text(&join_pair(&crm_name), &join_pair(&before))
            }
            // An owner we never sent (none, or no CRM user) is the CRM's
            // default: agreed, not a change.
            Some(a) if ftype == FieldType::User && a.c.is_null() => false,
            Some(a) => !same(cv, &a.c, kind),
        };
        let now = || Agreed {
            p: pv.clone(),
            c: cv.clone(),
        };

        // Which way the field flows, if at all.
        let flow = if name_part {
            name_flow.filter(|side| match side {
                Side::Crm => m.to_crm(),
                Side::Platform => can_to_platform,
            })
        } else if pair.crm.is_none() {
            // Nothing in the CRM yet: everything mapped TO_CRM goes.
            (m.to_crm() && !pv.is_null()).then_some(Side::Crm)
        } else if pair.platform.is_none() {
            (can_to_platform && !cv.is_null()).then_some(Side::Platform)
        } else if equal_now() {
            None
        } else {
            match (can_to_crm, can_to_platform, agreed) {
                (true, false, _) => (p_changed() || agreed.is_none()).then_some(Side::Crm),
                (false, true, _) => (c_changed() || agreed.is_none()).then_some(Side::Platform),
                (false, false, _) => None,
                (true, true, None) => Some(if pv.is_null() {
                    Side::Platform
                } else if cv.is_null() {
                    Side::Crm
                } else {
                    opposite(pair.newer)
                }),
                (true, true, Some(_)) => match (p_changed(), c_changed()) {
                    (false, false) => None,
                    (true, false) => Some(Side::Crm),
                    (false, true) => Some(Side::Platform),
                    (true, true) => {
                        let target = opposite(pair.newer);
                        match target {
                            Side::Crm => d.crm_conflicts.push(m.platform_field.clone()),
                            Side::Platform => d.platform_conflicts.push(m.platform_field.clone()),
                        }
                        Some(target)
                    }
                },
            }
        };
        // Opt-out wins (S9): the one exception to "the newer side wins".
        let flow = if m.platform_field == OPTED_OUT && flow.is_some() {
            let out = |v: &Value| {
                to_platform_value(v, FieldType::Boolean).and_then(|b| b.as_bool()) == Some(true)
            };
            let agreed_state = agreed.map(|_| (p_changed(), c_changed()));
            let sides = Consent {
                platform_out: out(pv),
                crm_out: out(cv),
                changed: agreed_state,
            };
            let decided = consent_flow(&sides, can_to_crm, can_to_platform, flow);
            if decided != flow && agreed_state == Some((true, true)) {
                // The conflict is recorded on the side the opt-out went to.
                d.crm_conflicts.retain(|f| f != OPTED_OUT);
                d.platform_conflicts.retain(|f| f != OPTED_OUT);
                match decided {
                    Some(Side::Crm) => d.crm_conflicts.push(OPTED_OUT.to_owned()),
                    Some(Side::Platform) => d.platform_conflicts.push(OPTED_OUT.to_owned()),
                    None => {}
                }
            }
            decided
        } else {
            flow
        };

        match flow {
            Some(Side::Crm) => match to_crm_value(pv, crm_field, &m.crm_field, rules) {
                Ok(Some(value)) => {
                    d.via_crm.insert(
                        m.platform_field.clone(),
                        Agreed {
                            p: pv.clone(),
                            c: value.clone(),
                        },
                    );
                    d.crm_origins.insert(
                        m.crm_field.clone(),
                        Origin {
                            other: Some(m.platform_field.clone()),
                            from: cv.clone(),
                        },
                    );
                    to_crm.insert(m.crm_field.clone(), value);
                }
                // No owner to give: the CRM keeps its own.
                Ok(None) => {
                    d.base.0.insert(m.platform_field.clone(), now());
                }
                Err(rejection) => {
                    crm_rejection.get_or_insert(rejection);
                }
            },
            Some(Side::Platform) => match to_platform_value(cv, pfield.field_type) {
                Some(value) => {
                    d.via_platform.insert(
                        m.platform_field.clone(),
                        Agreed {
                            p: value.clone(),
                            c: cv.clone(),
                        },
                    );
                    d.found.insert(m.platform_field.clone(), now());
                    d.platform_origins.insert(
                        m.platform_field.clone(),
                        Origin {
                            other: Some(m.crm_field.clone()),
                            from: pv.clone(),
                        },
                    );
                    to_platform.insert(m.platform_field.clone(), value);
                }
                None => {
                    platform_rejection.get_or_insert(Rejection::new(
                        if m.platform_field == "email" {
                            "MISSING_EMAIL"
                        } else {
                            "INVALID_VALUE"
                        },
                        Some(&m.crm_field),
                        format!(
                            "the CRM's {} ({}) is not a valid {}; correct it in the CRM",
                            m.crm_field, cv, m.platform_field
                        ),
                    ));
                }
            },
            None => {
                // Agreed as things stand; one-way fields changed on the side
                // that does not send them are left alone. A field left empty
                // on create is agreed empty.
                if pair.platform.is_some() {
                    d.base.0.insert(m.platform_field.clone(), now());
                }
            }
        }
    }

    // F5: a CRM with one name field, so both parts travel together.
    if rules.joined_name && (to_crm.contains_key("first_name") || to_crm.contains_key("last_name"))
    {
        let cj = join_pair(&crm_name);
        d.joined_name = Some(JoinedName {
            parts: ["first_name", "last_name"]
                .into_iter()
                .filter_map(|part| {
                    rules
                        .mappings
                        .iter()
                        .find(|m| m.enabled && m.crm_field == part)
                        .map(|m| m.platform_field.clone())
                })
                .collect(),
            from: if cj.is_empty() {
                Value::Null
            } else {
                Value::String(cj)
            },
        });
        for part in ["first_name", "last_name"] {
            if !to_crm.contains_key(part)
                && let Some(m) = rules
                    .mappings
                    .iter()
                    .find(|m| m.enabled && m.crm_field == part)
            {
                to_crm.insert(part.to_owned(), clean(platform.get(&m.platform_field)));
            }
        }
    }
    let writes_name =
        pair.crm.is_none() || to_crm.contains_key("first_name") || to_crm.contains_key("last_name");
    if rules.joined_name && pair.platform.is_some() && writes_name && crm_rejection.is_none() {
        let name = joined(platform, rules);
        if name.trim().is_empty() {
            crm_rejection = Some(Rejection::new(
                "MISSING_NAME",
                Some("name"),
                "the CRM requires a name: give the contact a first or last name",
            ));
        }
    }

    // S4: a converted lead is never overwritten; the attempt is reported.
    if pair.crm_converted && pair.crm.is_some() && !to_crm.is_empty() {
        crm_rejection = Some(Rejection::new(
            "CONVERTED_LEAD",
            None,
            "the lead was converted in the CRM and is owned by sales: it is not overwritten",
        ));
    }
    d.to_crm = match (crm_rejection, pair.platform.is_some()) {
        (_, false) => Write::Unchanged,
        (Some(r), _) => Write::Reject(r),
        (None, _) if pair.crm.is_none() => Write::Create(to_crm),
        (None, _) if to_crm.is_empty() => Write::Unchanged,
        (None, _) => Write::Update(to_crm),
    };
    d.to_platform = match (platform_rejection, pair.crm.is_some()) {
        (_, false) => Write::Unchanged,
        (Some(r), _) => Write::Reject(r),
        (None, _) if pair.platform.is_none() => Write::Create(to_platform),
        (None, _) if to_platform.is_empty() => Write::Unchanged,
        (None, _) => Write::Update(to_platform),
    };
    if matches!(d.to_crm, Write::Reject(_)) {
        d.crm_conflicts.clear();
    }
    if matches!(d.to_platform, Write::Reject(_)) {
        d.platform_conflicts.clear();
    }
    d
}

/// Where the name flows, the two parts as one (F5): compared joined on both
/// sides, so a CRM that splits a name its own way is no change.
fn name_flow(
    pair: &Pair<'_>,
    platform: &Values,
    crm_name: &(Value, Value),
    rules: &Rules<'_>,
    d: &mut Decision,
) -> Option<Side> {
    let parts: Vec<&Mapping> = rules
        .mappings
        .iter()
        .filter(|m| m.enabled && is_name(&m.crm_field))
        .collect();
    if parts.is_empty() {
        return None;
    }
    let to_crm = parts.iter().all(|m| m.to_crm());
    let to_platform = parts.iter().all(|m| m.from_crm());
    let pj = joined(platform, rules);
    let cj = join_pair(crm_name);
    if pair.crm.is_none() {
        return (to_crm && !pj.is_empty()).then_some(Side::Crm);
    }
    if pair.platform.is_none() {
        return (to_platform && !cj.is_empty()).then_some(Side::Platform);
    }
    if same_text(&pj, &cj) {
        return None;
    }
    let snap = pair
        .snapshot
        .filter(|s| parts.iter().any(|m| s.0.contains_key(&m.platform_field)));
    let (p_changed, c_changed) = match snap {
        None => (true, true),
        Some(snap) => {
            let side = |side| {
                join_pair(&(
                    snap_side(snap, rules, "first_name", side),
                    snap_side(snap, rules, "last_name", side),
                ))
            };
            (
                !same_text(&pj, &side(Side::Platform)),
                !same_text(&cj, &side(Side::Crm)),
            )
        }
    };
    let target = match (to_crm, to_platform) {
        (false, false) => return None,
        (true, false) => return p_changed.then_some(Side::Crm),
        (false, true) => return c_changed.then_some(Side::Platform),
        (true, true) => match (p_changed, c_changed, snap.is_some()) {
            (false, false, _) => return None,
            (true, false, true) => return Some(Side::Crm),
            (false, true, true) => return Some(Side::Platform),
            _ if pj.is_empty() => return Some(Side::Platform),
            _ if cj.is_empty() => return Some(Side::Crm),
            (_, _, false) => return Some(opposite(pair.newer)),
            (true, true, true) => opposite(pair.newer),
        },
    };
    let conflicts = match target {
        Side::Crm => &mut d.crm_conflicts,
        Side::Platform => &mut d.platform_conflicts,
    };
    conflicts.extend(parts.iter().map(|m| m.platform_field.clone()));
    Some(target)
}

/// The change a lead conversion makes in the CRM (S10): the record moves
/// from the leads module to the contacts module, as the platform contact
/// became a client. It follows no mapped field.
pub fn lead_conversion() -> FieldChange {
    FieldChange {
        platform_field: "lifecycle".into(),
        crm_field: None,
        direction: SyncDirection::ToCrm,
        from: Value::String(CrmModule::Leads.as_str().to_owned()),
        to: Value::String(CrmModule::Contacts.as_str().to_owned()),
        conflict: false,
    }
}

/// Which of several CRM records with one e-mail is used (S8): the most
/// recently modified, then the highest id; returns (winner, the others).
pub fn pick_duplicate<T>(
    records: Vec<T>,
    key: impl Fn(&T) -> (chrono::DateTime<chrono::Utc>, String),
) -> Option<(T, Vec<T>)> {
    let mut records = records;
    records.sort_by(|a, b| {
        let (ta, ia) = key(a);
        let (tb, ib) = key(b);
        tb.cmp(&ta)
            .then_with(|| ib.len().cmp(&ia.len()))
            .then_with(|| ib.cmp(&ia))
    });
    let mut iter = records.into_iter();
    let winner = iter.next()?;
    Some((winner, iter.collect()))
}

fn opposite(side: Side) -> Side {
    // The newer side's value flows to the other side.
    match side {
        Side::Platform => Side::Crm,
        Side::Crm => Side::Platform,
    }
}

fn email_mapping<'a>(rules: &Rules<'a>) -> Option<&'a Mapping> {
    rules.mappings.iter().find(|m| m.platform_field == "email")
}

fn crm_email(crm: &Values, rules: &Rules<'_>) -> Option<String> {
    let key = email_mapping(rules).map_or("email", |m| m.crm_field.as_str());
    crm.get(key)
        .and_then(Value::as_str)
        .and_then(|s| crmsync_entity::Email::parse(s).ok())
        .map(crmsync_entity::Email::into_string)
}

fn is_name(crm_field: &str) -> bool {
    crm_field == "first_name" || crm_field == "last_name"
}

/// The CRM's first and last names; when only the whole name is there, split at
/// the first space (F5).
fn crm_names(crm: &Values, rules: &Rules<'_>) -> (Value, Value) {
    let first = clean(crm.get("first_name"));
    let last = clean(crm.get("last_name"));
    if rules.joined_name
        && first.is_null()
        && last.is_null()
        && let Some(name) = crm.get("name").and_then(Value::as_str)
    {
        let name = name.trim();
        return match name.split_once(' ') {
            Some((f, l)) => (Value::from(f.trim()), Value::from(l.trim())),
            None if name.is_empty() => (Value::Null, Value::Null),
            None => (Value::Null, Value::from(name)),
        };
    }
    (first, last)
}

fn snap_side(snap: &Snapshot, rules: &Rules<'_>, crm_field: &str, side: Side) -> Value {
    rules
        .mappings
        .iter()
        .find(|m| m.crm_field == crm_field)
        .and_then(|m| snap.0.get(&m.platform_field))
        .map_or(Value::Null, |a| match side {
            Side::Platform => a.p.clone(),
            Side::Crm => a.c.clone(),
        })
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

fn join_pair(names: &(Value, Value)) -> String {
    [text_of(&names.0), text_of(&names.1)]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The platform's full name, as the CRM would hold it.
fn joined(platform: &Values, rules: &Rules<'_>) -> String {
    let part = |crm_field: &str| {
        rules
            .mappings
            .iter()
            .find(|m| m.enabled && m.crm_field == crm_field)
            .map_or(Value::Null, |m| clean(platform.get(&m.platform_field)))
    };
    join_pair(&(part("first_name"), part("last_name")))
}

fn same_text(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// Empty strings, blank strings and empty lists are no value.
fn clean(v: Option<&Value>) -> Value {
    cleaned(v).clone()
}

/// [`clean`], borrowed.
fn cleaned(v: Option<&Value>) -> &Value {
    match v {
        None | Some(Value::Null) => &NULL,
        Some(Value::String(s)) if s.trim().is_empty() => &NULL,
        Some(Value::Array(a)) if a.is_empty() => &NULL,
        Some(v) => v,
    }
}

/// How two values of a mapped field are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// E-mails and owners: case-insensitive.
    CaseInsensitive,
    /// Picklist labels: case-insensitive, lists as sets.
    Options,
    /// Everything else: trimmed text, numbers by value.
    Plain,
}

fn compare_kind(platform: FieldType, crm: FieldType) -> Kind {
    match (platform, crm) {
        (FieldType::Email, _) | (_, FieldType::Email | FieldType::User) => Kind::CaseInsensitive,
        (_, FieldType::Picklist | FieldType::MultiPicklist) => Kind::Options,
        _ => Kind::Plain,
    }
}

fn norm(v: &Value, kind: Kind) -> Value {
    match v {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<f64>()
                && kind == Kind::Plain
                && s.chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
            {
                return serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number);
            }
            match kind {
                Kind::Plain => Value::String(s.to_owned()),
                _ => Value::String(s.to_lowercase()),
            }
        }
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Value::Array(items) => {
            let mut items: Vec<String> = items.iter().map(|i| norm(i, kind).to_string()).collect();
            if kind == Kind::Options {
                items.sort();
                items.dedup();
            }
            Value::Array(items.into_iter().map(Value::String).collect())
        }
        other => other.clone(),
    }
}

/// Equality of two values of one side (or one side and its snapshot).
fn same(a: &Value, b: &Value, kind: Kind) -> bool {
    // Equal values normalise alike.
    a == b || norm(cleaned(Some(a)), kind) == norm(cleaned(Some(b)), kind)
}

/// Equality of a platform value and a CRM value.
fn same_across(p: &Value, c: &Value, kind: Kind) -> bool {
    let single = |v: &Value| match v {
        Value::Array(a) if a.len() == 1 => a[0].clone(),
        other => other.clone(),
    };
    same(p, c, kind) || (kind == Kind::Options && same(&single(p), &single(c), kind))
}

/// A platform value in the CRM's normalised form (checked against the field).
/// `Ok(None)`: nothing to write (an owner nobody in the CRM matches, no default).
fn to_crm_value(
    pv: &Value,
    field: Option<&CrmField>,
    key: &str,
    rules: &Rules<'_>,
) -> Result<Option<Value>, Rejection> {
    let Some(field) = field else {
        return Ok(Some(pv.clone()));
    };
    if pv.is_null() {
        return Ok(Some(Value::Null));
    }
    let pick = |wanted: &str| -> Result<Value, Rejection> {
        let options = field.options.as_deref().unwrap_or_default();
        options
            .iter()
            .find(|o| o.label == wanted)
            .or_else(|| {
                options
                    .iter()
                    .find(|o| o.label.to_lowercase() == wanted.to_lowercase())
            })
            .map(|o| Value::String(o.label.clone()))
            .ok_or_else(|| {
                let allowed: Vec<_> = options.iter().map(|o| o.label.as_str()).collect();
                Rejection::new(
                    "INVALID_PICKLIST_VALUE",
                    Some(key),
                    format!(
                        "\"{wanted}\" is not an option of the CRM's {}; allowed values: {}",
                        field.label,
                        allowed.join(", ")
                    ),
                )
            })
    };
    Ok(Some(match field.field_type {
        FieldType::Picklist => pick(&text_of(pv))?,
        FieldType::MultiPicklist => {
            let items: Vec<String> = match pv {
                Value::Array(items) => items.iter().map(text_of).collect(),
                other => text_of(other)
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            };
            Value::Array(
                items
                    .iter()
                    .map(|i| pick(i))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
        FieldType::User => {
            let email = text_of(pv).to_lowercase();
            if rules.owners.contains(&email) {
                Value::String(email)
            } else if let Some(default) = rules.default_owner {
                Value::String(default.to_lowercase())
            } else {
                return Ok(None);
            }
        }
        FieldType::Number | FieldType::Integer => match pv {
            Value::Number(_) => pv.clone(),
            other => text_of(other)
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| {
                    Rejection::new(
                        "INVALID_VALUE",
                        Some(key),
                        format!(
                            "the CRM's {} takes a number, not \"{}\"",
                            field.label,
                            text_of(other)
                        ),
                    )
                })?,
        },
        FieldType::Boolean => match pv {
            Value::Bool(_) => pv.clone(),
            other => Value::Bool(matches!(text_of(other).as_str(), "true" | "yes" | "1")),
        },
        FieldType::Email => Value::String(text_of(pv).to_lowercase()),
        _ => match pv {
            Value::Array(items) => {
                Value::String(items.iter().map(text_of).collect::<Vec<_>>().join(", "))
            }
            other => Value::String(text_of(other)),
        },
    }))
}

/// A CRM value in the platform's form; `None` when the platform cannot hold it.
fn to_platform_value(cv: &Value, ptype: FieldType) -> Option<Value> {
    if cv.is_null() {
        return match ptype {
            // The identity is never cleared.
            FieldType::Email => None,
            FieldType::Boolean => Some(Value::Bool(false)),
            _ => Some(Value::Null),
        };
    }
    Some(match ptype {
        FieldType::Email => Value::String(
            crmsync_entity::Email::parse(&text_of(cv))
                .ok()?
                .into_string(),
        ),
        FieldType::Integer => match cv {
            Value::Number(n) => Value::from(n.as_f64()?.round() as i64),
            other => Value::from(text_of(other).parse::<f64>().ok()?.round() as i64),
        },
        FieldType::Boolean => match cv {
            Value::Bool(_) => cv.clone(),
            other => Value::Bool(matches!(
                text_of(other).to_lowercase().as_str(),
                "true" | "yes" | "1"
            )),
        },
        FieldType::Other => cv.clone(),
        _ => match cv {
            Value::Array(items) => {
                Value::String(items.iter().map(text_of).collect::<Vec<_>>().join(", "))
            }
            other => Value::String(text_of(other)),
        },
    })
}

#[cfg(test)]
mod tests;
