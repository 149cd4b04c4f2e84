use std::collections::{HashMap, HashSet};

use crmsync_entity::enums::{MappingDirection, SyncDirection};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::crm::PicklistOption;

const SOURCE: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const SCORE: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

fn field(key: &str, field_type: FieldType, options: Option<&[&str]>) -> CrmField {
    CrmField {
        api_name: key.into(),
        label: key.into(),
        field_type,
        mandatory: false,
        read_only: false,
        custom: key.len() == 40,
        options: options.map(|o| {
            o.iter()
                .enumerate()
                .map(|(i, l)| PicklistOption {
                    id: i.to_string(),
                    label: (*l).into(),
                })
                .collect()
        }),
    }
}

fn fields() -> HashMap<String, CrmField> {
    [
        field("email", FieldType::Email, None),
        field("first_name", FieldType::Text, None),
        field("last_name", FieldType::Text, None),
        field("phone", FieldType::Phone, None),
        field("owner_id", FieldType::User, None),
        field(
            SOURCE,
            FieldType::Picklist,
            Some(&["Web", "Event", "Partner"]),
        ),
        field(SCORE, FieldType::Number, None),
    ]
    .into_iter()
    .map(|f| (f.api_name.clone(), f))
    .collect()
}

fn mapping(p: &str, c: &str, direction: MappingDirection) -> Mapping {
    Mapping {
        platform_field: p.into(),
        crm_field: c.into(),
        direction,
        enabled: true,
        locked: false,
    }
}

fn mappings() -> Vec<Mapping> {
    use MappingDirection::*;
    vec![
        mapping("email", "email", Both),
        mapping("first_name", "first_name", Both),
        mapping("last_name", "last_name", Both),
        mapping("phone", "phone", Both),
        mapping("owner_email", "owner_id", Both),
        mapping("source", SOURCE, ToCrm),
        mapping("behaviour_score", SCORE, ToCrm),
    ]
}

struct World {
    mappings: Vec<Mapping>,
    fields: HashMap<String, CrmField>,
    owners: HashSet<String>,
}

impl World {
    fn new() -> Self {
        Self {
            mappings: mappings(),
            fields: fields(),
            owners: ["ann@crm.test".to_owned(), "bob@crm.test".to_owned()]
                .into_iter()
                .collect(),
        }
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            mappings: &self.mappings,
            fields: &self.fields,
            joined_name: true,
            owners: &self.owners,
            default_owner: Some("ann@crm.test"),
        }
    }
}

fn vals(pairs: &[(&str, Value)]) -> Values {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// What the CRM holds after a write, as the client reads it back: one name
/// re-split at the first space, numbers as floats.
fn apply_to_crm(crm: &mut Values, write: &Values) {
    for (k, v) in write {
        crm.insert(k.clone(), v.clone());
    }
    if write.contains_key("first_name") || write.contains_key("last_name") {
        let name = join_pair(&(clean(crm.get("first_name")), clean(crm.get("last_name"))));
        let (f, l) = name.split_once(' ').unwrap_or((&name, ""));
        crm.insert("first_name".into(), json!(f));
        crm.insert("last_name".into(), json!(l));
    }
    if let Some(Value::Number(n)) = crm.get(SCORE).cloned() {
        crm.insert(SCORE.into(), json!(n.as_f64().unwrap()));
    }
}

fn apply_to_platform(platform: &mut Values, write: &Values) {
    for (k, v) in write {
        platform.insert(k.clone(), v.clone());
    }
}

/// Applies a decision to both sides; returns the snapshot to keep.
fn apply(d: &Decision, platform: &mut Values, crm: &mut Values) -> Snapshot {
    match &d.to_platform {
        Write::Create(v) | Write::Update(v) => apply_to_platform(platform, v),
        _ => {}
    }
    match &d.to_crm {
        Write::Create(v) | Write::Update(v) => apply_to_crm(crm, v),
        _ => {}
    }
    let (platform_applied, crm_applied) = (
        !matches!(d.to_platform, Write::Reject(_)),
        !matches!(d.to_crm, Write::Reject(_)),
    );
    let kept = d.snapshot(platform_applied, crm_applied);
    // The stored form is the same snapshot, as text.
    let stored: Snapshot =
        serde_json::from_str(&d.stored_snapshot(platform_applied, crm_applied)).unwrap();
    assert_eq!(stored, kept);
    kept
}

fn pair<'a>(
    p: Option<&'a Values>,
    c: Option<&'a Values>,
    s: Option<&'a Snapshot>,
    newer: Side,
) -> Pair<'a> {
    Pair {
        platform: p,
        crm: c,
        crm_converted: false,
        snapshot: s,
        newer,
    }
}

fn contact() -> Values {
    vals(&[
        ("email", json!("marie@x.fr")),
        ("first_name", json!("Marie Claire")),
        ("last_name", json!("Dupont")),
        ("phone", json!("+33 1 23")),
        ("owner_email", json!("bob@crm.test")),
        ("source", json!("web")),
        ("behaviour_score", json!(42)),
    ])
}

#[test]
fn a_new_contact_is_created_in_the_crm_with_labels_and_owner() {
    let w = World::new();
    let p = contact();
    let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
    let Write::Create(values) = &d.to_crm else {
        panic!("{:?}", d.to_crm)
    };
    assert_eq!(values[SOURCE], json!("Web"));
    assert_eq!(values["owner_id"], json!("bob@crm.test"));
    assert_eq!(values[SCORE], json!(42));
    assert_eq!(d.to_platform, Write::Unchanged);
}

#[test]
fn the_crm_re_splitting_a_name_is_no_change() {
    let w = World::new();
    let mut p = contact();
    let mut c = Values::new();
    let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
    let snap = apply(&d, &mut p, &mut c);
    assert_eq!(c["first_name"], json!("Marie"));
    let again = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Crm),
        &w.rules(),
    );
    assert!(again.writes_nothing(), "{again:?}");
}

#[test]
fn unknown_owner_goes_to_the_default_owner() {
    let w = World::new();
    let mut p = contact();
    p.insert("owner_email".into(), json!("stranger@else.com"));
    let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
    let Write::Create(values) = &d.to_crm else {
        panic!()
    };
    assert_eq!(values["owner_id"], json!("ann@crm.test"));
}

#[test]
fn rejections_say_why() {
    let w = World::new();
    let mut p = contact();
    p.insert("source".into(), json!("Carrier pigeon"));
    let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
    let Write::Reject(r) = &d.to_crm else {
        panic!()
    };
    assert_eq!(r.code, "INVALID_PICKLIST_VALUE");
    assert!(r.message.contains("Web, Event, Partner"), "{}", r.message);

    let mut p = contact();
    p.remove("first_name");
    p.insert("last_name".into(), json!(" "));
    let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
    assert!(matches!(&d.to_crm, Write::Reject(r) if r.code == "MISSING_NAME"));

    let c = vals(&[("first_name", json!("No")), ("last_name", json!("Mail"))]);
    let d = decide(&pair(None, Some(&c), None, Side::Crm), &w.rules());
    assert!(matches!(&d.to_platform, Write::Reject(r) if r.code == "MISSING_EMAIL"));

    let c = vals(&[("email", json!("a@b.com")), ("last_name", json!("Lead"))]);
    let p = contact();
    let d = decide(
        &Pair {
            crm_converted: true,
            ..pair(Some(&p), Some(&c), None, Side::Platform)
        },
        &w.rules(),
    );
    assert!(matches!(&d.to_crm, Write::Reject(r) if r.code == "CONVERTED_LEAD"));
}

#[test]
fn a_converted_lead_with_nothing_to_write_is_no_rejection() {
    let w = World::new();
    let mut p = contact();
    let mut c = Values::new();
    let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
    let snap = apply(&d, &mut p, &mut c);
    let d = decide(
        &Pair {
            crm_converted: true,
            ..pair(Some(&p), Some(&c), Some(&snap), Side::Crm)
        },
        &w.rules(),
    );
    assert_eq!(d.to_crm, Write::Unchanged);
}

#[test]
fn a_field_changed_on_both_sides_takes_the_newer_side_and_is_a_conflict() {
    let w = World::new();
    let mut p = contact();
    let mut c = Values::new();
    let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
    let snap = apply(&d, &mut p, &mut c);
    p.insert("phone".into(), json!("+1 platform"));
    c.insert("phone".into(), json!("+1 crm"));
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Crm),
        &w.rules(),
    );
    assert_eq!(d.platform_conflicts, ["phone"]);
    assert_eq!(
        d.to_platform,
        Write::Update(vals(&[("phone", json!("+1 crm"))]))
    );
    assert_eq!(d.to_crm, Write::Unchanged);
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Platform),
        &w.rules(),
    );
    assert_eq!(d.crm_conflicts, ["phone"]);
    assert_eq!(
        d.to_crm,
        Write::Update(vals(&[("phone", json!("+1 platform"))]))
    );
}

#[test]
fn duplicates_pick_the_most_recently_modified() {
    let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let records = vec![
        ("1", t("2026-01-01T00:00:00Z")),
        ("2", t("2026-03-01T00:00:00Z")),
        ("3", t("2026-02-01T00:00:00Z")),
    ];
    let (winner, others) = pick_duplicate(records, |r| (r.1, r.0.to_owned())).unwrap();
    assert_eq!(winner.0, "2");
    assert_eq!(others.len(), 2);
}

fn change(
    direction: SyncDirection,
    platform_field: &str,
    crm_field: &str,
    from: Value,
    to: Value,
    conflict: bool,
) -> FieldChange {
    FieldChange {
        platform_field: platform_field.into(),
        crm_field: Some(crm_field.into()),
        direction,
        from,
        to,
        conflict,
    }
}

/// A contact synced once: (platform, CRM, snapshot).
fn synced(p: Values) -> (Values, Values, Snapshot) {
    let w = World::new();
    let mut p = p;
    let mut c = Values::new();
    let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
    let snap = apply(&d, &mut p, &mut c);
    (p, c, snap)
}

#[test]
fn a_creation_lists_every_value_sent_from_nothing() {
    let w = World::new();
    let p = contact();
    let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
    let changes = d.changes();
    let by_field = |f: &str| {
        changes
            .iter()
            .find(|c| c.platform_field == f)
            .unwrap_or_else(|| panic!("no change of {f}: {changes:?}"))
    };
    assert_eq!(
        by_field("source"),
        &change(
            SyncDirection::ToCrm,
            "source",
            SOURCE,
            Value::Null,
            json!("Web"),
            false
        )
    );
    assert_eq!(by_field("behaviour_score").to, json!(42));
    assert_eq!(by_field("owner_email").to, json!("bob@crm.test"));
    assert!(
        changes
            .iter()
            .all(|c| c.from.is_null() && c.direction == SyncDirection::ToCrm)
    );
    // Into the platform: a record from the CRM creates a contact.
    let c = vals(&[
        ("email", json!("new@crm.test")),
        ("first_name", json!("Neo")),
        ("last_name", json!("Crm")),
        ("phone", json!("+44 1")),
    ]);
    let d = decide(&pair(None, Some(&c), None, Side::Crm), &w.rules());
    let changes = d.changes();
    assert!(
        changes.contains(&change(
            SyncDirection::FromCrm,
            "phone",
            "phone",
            Value::Null,
            json!("+44 1"),
            false
        )),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .all(|c| c.direction == SyncDirection::FromCrm)
    );
}

#[test]
fn an_update_lists_the_old_and_new_value_of_the_field_that_changed() {
    let w = World::new();
    let (mut p, c, snap) = synced(contact());
    p.insert("phone".into(), json!("+33 9 99"));
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Platform),
        &w.rules(),
    );
    assert_eq!(
        d.changes(),
        [change(
            SyncDirection::ToCrm,
            "phone",
            "phone",
            json!("+33 1 23"),
            json!("+33 9 99"),
            false
        )]
    );

    let (p, mut c, snap) = synced(contact());
    c.insert("phone".into(), Value::Null);
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Crm),
        &w.rules(),
    );
    assert_eq!(
        d.changes(),
        [change(
            SyncDirection::FromCrm,
            "phone",
            "phone",
            json!("+33 1 23"),
            Value::Null,
            false
        )],
        "a value cleared in the CRM clears the platform's"
    );
}

#[test]
fn a_conflict_is_marked_on_the_field_that_lost() {
    let w = World::new();
    let (mut p, mut c, snap) = synced(contact());
    p.insert("phone".into(), json!("+1 platform"));
    c.insert("phone".into(), json!("+1 crm"));
    let crm_won = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Crm),
        &w.rules(),
    );
    assert_eq!(
        crm_won.changes(),
        [change(
            SyncDirection::FromCrm,
            "phone",
            "phone",
            json!("+1 platform"),
            json!("+1 crm"),
            true
        )]
    );
    let platform_won = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Platform),
        &w.rules(),
    );
    assert_eq!(
        platform_won.changes(),
        [change(
            SyncDirection::ToCrm,
            "phone",
            "phone",
            json!("+1 crm"),
            json!("+1 platform"),
            true
        )]
    );
}

#[test]
fn a_joined_name_goes_out_as_one_change_of_the_crms_name() {
    let w = World::new();
    // The CRM split "Marie Claire Dupont" its own way ("Marie" / "Claire Dupont").
    let (mut p, c, snap) = synced(contact());
    assert_eq!(c["last_name"], json!("Claire Dupont"));
    p.insert("last_name".into(), json!("Durand"));
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Platform),
        &w.rules(),
    );
    let Write::Update(sent) = &d.to_crm else {
        panic!("{:?}", d.to_crm)
    };
    assert!(sent.contains_key("first_name") && sent.contains_key("last_name"));
    assert_eq!(
        d.changes(),
        [FieldChange {
            platform_field: "first_name + last_name".into(),
            crm_field: Some("name".into()),
            direction: SyncDirection::ToCrm,
            from: json!("Marie Claire Dupont"),
            to: json!("Marie Claire Durand"),
            conflict: false,
        }]
    );

    // On the way in, the platform's parts change one by one; a part that
    // stays the same is no change.
    let mut ann = contact();
    ann.insert("first_name".into(), json!("Ann"));
    ann.insert("last_name".into(), json!("Lee"));
    let (p, mut c, snap) = synced(ann);
    c.insert("last_name".into(), json!("Smith"));
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Crm),
        &w.rules(),
    );
    assert_eq!(
        d.changes(),
        [change(
            SyncDirection::FromCrm,
            "last_name",
            "last_name",
            json!("Lee"),
            json!("Smith"),
            false
        )]
    );
}

#[test]
fn nothing_written_or_a_refused_write_is_no_change() {
    let w = World::new();
    let (p, c, snap) = synced(contact());
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Crm),
        &w.rules(),
    );
    assert!(d.writes_nothing());
    assert_eq!(d.changes(), []);

    let mut p = p;
    p.insert("source".into(), json!("Carrier pigeon"));
    p.insert("phone".into(), json!("+99"));
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Platform),
        &w.rules(),
    );
    assert!(matches!(d.to_crm, Write::Reject(_)));
    assert_eq!(d.changes(), []);
}

#[test]
fn a_lifecycle_that_follows_the_crm_module_is_a_change_without_crm_field() {
    let w = World::new();
    let (p, c, snap) = synced(contact());
    let mut d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Crm),
        &w.rules(),
    );
    d.set_platform_field("lifecycle", Some(json!("PROSPECT")), json!("CLIENT"));
    assert_eq!(
        d.changes(),
        [FieldChange {
            platform_field: "lifecycle".into(),
            crm_field: None,
            direction: SyncDirection::FromCrm,
            from: json!("PROSPECT"),
            to: json!("CLIENT"),
            conflict: false,
        }]
    );
}

#[test]
fn changes_are_stored_lean_and_read_back_in_the_items_direction() {
    let w = World::new();
    let (mut p, c, snap) = synced(contact());
    p.insert("phone".into(), json!("+33 9 99"));
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Platform),
        &w.rules(),
    );
    let stored: Value = serde_json::from_str(&FieldChange::to_text(&d.changes()).unwrap()).unwrap();
    assert_eq!(
        stored,
        json!([{"platformField": "phone", "crmField": "phone", "from": "+33 1 23", "to": "+33 9 99"}])
    );
    assert_eq!(FieldChange::to_text(&[]), None);
    let item = crmsync_entity::models::sync_item::Model {
        id: "i".into(),
        tenant_id: "t".into(),
        run_id: "r".into(),
        connector_id: "c".into(),
        direction: SyncDirection::ToCrm,
        outcome: crmsync_entity::enums::ItemOutcome::Updated,
        email: None,
        contact_id: None,
        crm_record_id: None,
        reason_code: None,
        field: None,
        message: None,
        changes: Some(stored),
        created_at: chrono::Utc::now(),
    };
    assert_eq!(item.field_changes(), d.changes());
}

fn text_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        "[A-Za-z]{1,6}( [A-Za-z]{1,6})?".prop_map(Value::from),
    ]
}

fn platform_values() -> impl Strategy<Value = Values> {
    (
        "[a-z]{1,5}@[a-z]{1,4}\\.com",
        text_value(),
        text_value(),
        text_value(),
        prop_oneof![
            Just("ann@crm.test"),
            Just("bob@crm.test"),
            Just("who@x.com")
        ],
        prop_oneof![Just("Web"), Just("event"), Just("Partner")],
        0i64..200,
    )
        .prop_map(|(email, first, last, phone, owner, source, score)| {
            vals(&[
                ("email", json!(email)),
                ("first_name", first),
                ("last_name", if last.is_null() { json!("X") } else { last }),
                ("phone", phone),
                ("owner_email", json!(owner)),
                ("source", json!(source)),
                ("behaviour_score", json!(score)),
            ])
        })
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Platform), Just(Side::Crm)]
}

/// Edits of either side after a first sync: (field, value) pairs.
fn edits() -> impl Strategy<Value = Vec<(bool, usize, Value)>> {
    prop::collection::vec((any::<bool>(), 0usize..4, text_value()), 0..4)
}

const EDITABLE: [(&str, &str); 4] = [
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("phone", "phone"),
    ("owner_email", "owner_id"),
];

proptest! {
    #[test]
    fn deciding_is_deterministic(p in platform_values(), newer in side()) {
        let w = World::new();
        let a = decide(&pair(Some(&p), None, None, newer), &w.rules());
        let b = decide(&pair(Some(&p), None, None, newer), &w.rules());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn after_applying_a_decision_the_next_one_writes_nothing(
        p0 in platform_values(), edits in edits(), newer in side(), newer2 in side()
    ) {
        let w = World::new();
        let mut p = p0;
        let mut c = Values::new();
        let d = decide(&pair(Some(&p), None, None, newer), &w.rules());
        let snap = apply(&d, &mut p, &mut c);
        for (on_platform, i, v) in edits {
            let (pf, cf) = EDITABLE[i];
            let v = if pf == "owner_email" && !v.is_null() { json!("bob@crm.test") } else { v };
            if on_platform { p.insert(pf.into(), v); } else { c.insert(cf.into(), v); }
        }
        let d = decide(&pair(Some(&p), Some(&c), Some(&snap), newer2), &w.rules());
        let snap = apply(&d, &mut p, &mut c);
        let again = decide(&pair(Some(&p), Some(&c), Some(&snap), newer2), &w.rules());
        prop_assert!(
            again.writes_nothing() || matches!(again.to_crm, Write::Reject(_)) || matches!(again.to_platform, Write::Reject(_)),
            "{:?}", again
        );
        prop_assert!(again.changes().is_empty(), "{:?}", again.changes());
    }

    #[test]
    fn the_stored_changes_are_those_of_the_decision_in_each_direction(
        p0 in platform_values(), edits in edits(), newer in side()
    ) {
        let w = World::new();
        let mut p = p0;
        let mut c = Values::new();
        let first = decide(&pair(Some(&p), None, None, newer), &w.rules());
        let snap = apply(&first, &mut p, &mut c);
        for (on_platform, i, v) in edits {
            let (pf, cf) = EDITABLE[i];
            if on_platform { p.insert(pf.into(), v); } else { c.insert(cf.into(), v); }
        }
        let then = decide(&pair(Some(&p), Some(&c), Some(&snap), newer), &w.rules());
        let conversion = [crate::decide::lead_conversion()];
        for d in [&first, &then] {
            for direction in [SyncDirection::FromCrm, SyncDirection::ToCrm] {
                let mut owned = d.changes_to(direction);
                prop_assert_eq!(d.changes_text(direction, &[]), FieldChange::to_text(&owned));
                owned.extend(conversion.iter().cloned());
                prop_assert_eq!(d.changes_text(direction, &conversion), FieldChange::to_text(&owned));
            }
        }
    }

    #[test]
    fn a_field_changed_on_one_side_only_flows_to_the_other(
        p0 in platform_values(), i in 2usize..3, value in "[a-z]{3,8}", on_platform in any::<bool>(), newer in side()
    ) {
        let w = World::new();
        let mut p = p0;
        let mut c = Values::new();
        let d = decide(&pair(Some(&p), None, None, Side::Platform), &w.rules());
        let snap = apply(&d, &mut p, &mut c);
        let (pf, cf) = EDITABLE[i];
        let value = json!(format!("+{value}"));
        prop_assume!(!same(&p.get(pf).cloned().unwrap_or(Value::Null), &value, Kind::Plain));
        if on_platform { p.insert(pf.into(), value.clone()); } else { c.insert(cf.into(), value.clone()); }
        let d = decide(&pair(Some(&p), Some(&c), Some(&snap), newer), &w.rules());
        let before = if on_platform { c.get(cf) } else { p.get(pf) };
        let changes = d.changes();
        prop_assert_eq!(changes.len(), 1, "{:?}", changes);
        prop_assert_eq!(&changes[0].platform_field, pf);
        prop_assert_eq!(&changes[0].to, &value);
        prop_assert_eq!(&changes[0].from, &before.cloned().unwrap_or(Value::Null));
        if on_platform {
            prop_assert_eq!(&d.to_crm, &Write::Update(vals(&[(cf, value)])));
        } else {
            prop_assert_eq!(&d.to_platform, &Write::Update(vals(&[(pf, value)])));
        }
        prop_assert!(d.platform_conflicts.is_empty() && d.crm_conflicts.is_empty());
    }

    #[test]
    fn computed_fields_never_flow_from_the_crm(
        p in platform_values(), score in 0f64..1000.0, newer in side()
    ) {
        let mut w = World::new();
        // Even a mapping that says BOTH cannot fill a computed field.
        w.mappings.push(mapping("state", "first_name", MappingDirection::Both));
        let c = vals(&[("email", json!("a@b.com")), (SCORE, json!(score)), ("first_name", json!("Active"))]);
        for platform in [None, Some(&p)] {
            let d = decide(&pair(platform, Some(&c), None, newer), &w.rules());
            if let Write::Create(v) | Write::Update(v) = &d.to_platform {
                prop_assert!(!v.contains_key("behaviour_score") && !v.contains_key("state"), "{:?}", v);
            }
        }
    }

    #[test]
    fn a_rejected_side_keeps_its_snapshot(p0 in platform_values(), newer in side()) {
        let w = World::new();
        let mut p = p0;
        let mut c = Values::new();
        let d = decide(&pair(Some(&p), None, None, newer), &w.rules());
        let snap = apply(&d, &mut p, &mut c);
        p.insert("source".into(), json!("Nowhere"));
        p.insert("phone".into(), json!("+99"));
        let d = decide(&pair(Some(&p), Some(&c), Some(&snap), newer), &w.rules());
        prop_assert!(matches!(d.to_crm, Write::Reject(_)));
        let kept = d.snapshot(true, false);
        prop_assert_eq!(kept.0.get("phone"), snap.0.get("phone"));
    }
}

#[test]
fn the_snapshot_as_found_agrees_what_would_flow_to_the_platform_as_both_sides_hold_it() {
    let w = World::new();
    let (mut p, mut c, snap) = synced(contact());
    c.insert("phone".into(), json!("+33 7 77"));
    p.insert("behaviour_score".into(), json!(50));
    let d = decide(
        &pair(Some(&p), Some(&c), Some(&snap), Side::Crm),
        &w.rules(),
    );
    assert!(matches!(&d.to_platform, Write::Update(v) if v.contains_key("phone")));
    assert!(matches!(&d.to_crm, Write::Update(v) if v.contains_key(SCORE)));
    let stored = |crm_applied| -> Snapshot {
        serde_json::from_str(&d.stored_snapshot_as_found(crm_applied)).unwrap()
    };
    let agreed = |p: &str, c: &str| Agreed {
        p: json!(p),
        c: json!(c),
    };

    let applied = stored(true);
    assert_eq!(applied.0["phone"], agreed("+33 1 23", "+33 7 77"));
    assert_eq!(applied.0["behaviour_score"], d.via_crm["behaviour_score"]);
    assert_eq!(applied.0["behaviour_score"].p, json!(50));
    assert_eq!(applied.0["email"], snap.0["email"]);
    assert_eq!(applied.0.len(), snap.0.len());

    // A refused CRM write keeps the field's previous agreed value.
    let refused = stored(false);
    assert_eq!(refused.0["behaviour_score"], snap.0["behaviour_score"]);
    assert_eq!(refused.0["phone"], agreed("+33 1 23", "+33 7 77"));
}

#[test]
fn a_snapshot_stores_the_crm_form_only_where_it_differs_and_reads_both_stored_forms() {
    let snapshot = Snapshot(BTreeMap::from([
        (
            "email".to_owned(),
            Agreed {
                p: json!("ada@example.com"),
                c: json!("ada@example.com"),
            },
        ),
        (
            "phone".to_owned(),
            Agreed {
                p: json!("+33 1 23"),
                c: json!(null),
            },
        ),
        (
            "behaviour_score".to_owned(),
            Agreed {
                p: json!(42),
                c: json!(42.0),
            },
        ),
    ]));
    let text = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(
        text,
        r#"{"behaviour_score":{"p":42,"c":42.0},"email":{"p":"ada@example.com"},"phone":{"p":"+33 1 23","c":null}}"#
    );
    assert_eq!(serde_json::from_str::<Snapshot>(&text).unwrap(), snapshot);
    // Links stored before the short form keep both forms of every field.
    let long = json!({
        "behaviour_score": {"p": 42, "c": 42.0},
        "email": {"p": "ada@example.com", "c": "ada@example.com"},
        "phone": {"p": "+33 1 23", "c": null},
    });
    assert_eq!(Snapshot::from_json(&long), Some(snapshot));
    // A field without its platform form is unreadable, so is the snapshot.
    assert_eq!(Snapshot::from_json(&json!({"email": {"c": "x"}})), None);
}

fn consent(platform_out: bool, crm_out: bool, changed: Option<(bool, bool)>) -> Consent {
    Consent {
        platform_out,
        crm_out,
        changed,
    }
}

#[test]
fn an_opt_out_wins_a_first_pairing_whichever_record_is_newer() {
    // Platform opted out, CRM opted in and newer: the opt-out goes to the CRM.
    let c = consent(true, false, None);
    assert_eq!(
        consent_flow(&c, true, true, Some(Side::Platform)),
        Some(Side::Crm)
    );
    // CRM opted out, platform opted in and newer: the opt-out comes in.
    let c = consent(false, true, None);
    assert_eq!(
        consent_flow(&c, true, true, Some(Side::Crm)),
        Some(Side::Platform)
    );
    // A mapping that cannot carry the opt-out moves nothing.
    assert_eq!(consent_flow(&c, true, false, Some(Side::Crm)), None);
}

#[test]
fn an_opt_in_newer_than_the_agreed_opt_out_is_applied() {
    // Agreed opted out; the CRM opted back in since: the platform follows.
    let c = consent(true, false, Some((false, true)));
    assert_eq!(
        consent_flow(&c, true, true, Some(Side::Platform)),
        Some(Side::Platform)
    );
    // And the other way.
    let c = consent(false, true, Some((true, false)));
    assert_eq!(
        consent_flow(&c, true, true, Some(Side::Crm)),
        Some(Side::Crm)
    );
}

#[test]
fn an_opt_out_wins_a_conflict_and_agreement_moves_nothing() {
    let c = consent(false, true, Some((true, true)));
    assert_eq!(
        consent_flow(&c, true, true, Some(Side::Crm)),
        Some(Side::Platform)
    );
    assert_eq!(
        consent_flow(&consent(true, true, None), true, true, None),
        None
    );
    assert_eq!(
        consent_flow(&consent(false, false, None), true, true, Some(Side::Crm)),
        Some(Side::Crm)
    );
}
