use serde_json::json;

use super::*;
use crate::crm::PicklistOption;
use crate::platform::tests::crm;

fn cond(field: &str, operator: RuleOperator, value: Option<&str>) -> Condition {
    Condition {
        field: field.into(),
        operator,
        value: value.map(str::to_owned),
    }
}

fn rule(direction: SyncDirection, conditions: Vec<Condition>, action: RuleAction) -> SyncRule {
    SyncRule {
        direction,
        conditions,
        action,
        set_fields: Vec::new(),
    }
}

fn values(pairs: &[(&str, Value)]) -> Values {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn holds_on(c: Condition, v: Value) -> bool {
    holds(&c, &values(&[(c.field.clone().as_str(), v)]))
}

use RuleOperator::*;
use SyncDirection::{FromCrm, ToCrm};

#[test]
fn without_rules_for_a_direction_everything_syncs() {
    let rules = vec![rule(FromCrm, vec![], RuleAction::Exclude)];
    assert_eq!(verdict(&rules, ToCrm, &Values::new()), Ok(&[][..]));
    assert_eq!(verdict(&[], FromCrm, &Values::new()), Ok(&[][..]));
    assert!(verdict(&rules, FromCrm, &Values::new()).is_err());
}

#[test]
fn the_first_rule_that_holds_decides_in_order() {
    let mut include = rule(
        ToCrm,
        vec![cond("source", Equals, Some("webinar"))],
        RuleAction::Include,
    );
    include.set_fields = vec![SetField {
        field: "Lead_Source".into(),
        value: json!("Webinar"),
    }];
    let rules = vec![
        rule(FromCrm, vec![], RuleAction::Exclude),
        rule(
            ToCrm,
            vec![cond("opted_out", Equals, Some("true"))],
            RuleAction::Exclude,
        ),
        include,
        rule(ToCrm, vec![], RuleAction::Include),
    ];
    let out = values(&[("opted_out", json!(true)), ("source", json!("webinar"))]);
    let excluded = verdict(&rules, ToCrm, &out).unwrap_err();
    assert_eq!(excluded.code, EXCLUDED_BY_RULE);
    assert_eq!(excluded.field.as_deref(), Some("rules[1]"));
    assert!(excluded.message.contains("rule 1"), "{}", excluded.message);

    let webinar = values(&[("opted_out", json!(false)), ("source", json!("Webinar"))]);
    let sets = verdict(&rules, ToCrm, &webinar).unwrap();
    assert_eq!(sets[0].field, "Lead_Source");

    let other = values(&[("opted_out", json!(false)), ("source", json!("ads"))]);
    assert_eq!(verdict(&rules, ToCrm, &other), Ok(&[][..]));
}

#[test]
fn a_record_no_rule_matches_does_not_sync() {
    let rules = vec![rule(
        FromCrm,
        vec![cond("Lead_Source", Equals, Some("Web"))],
        RuleAction::Include,
    )];
    let error = verdict(&rules, FromCrm, &values(&[("Lead_Source", json!("Ads"))])).unwrap_err();
    assert_eq!(error.code, EXCLUDED_BY_RULE);
    assert_eq!(error.field, None);
    assert!(
        error.message.contains("no FROM_CRM rule"),
        "{}",
        error.message
    );
}

#[test]
fn equals_and_not_equals_ignore_case_and_compare_numbers_by_value() {
    assert!(holds_on(cond("f", Equals, Some("Web ")), json!("web")));
    assert!(!holds_on(cond("f", Equals, Some("Web")), json!("Webinar")));
    assert!(holds_on(cond("f", Equals, Some("42")), json!(42.0)));
    assert!(holds_on(cond("f", Equals, Some("true")), json!(true)));
    assert!(!holds_on(cond("f", Equals, Some("true")), Value::Null));
    assert!(holds_on(cond("f", NotEquals, Some("Web")), json!("Ads")));
    assert!(holds_on(cond("f", NotEquals, Some("Web")), Value::Null));
    assert!(!holds_on(cond("f", NotEquals, Some("web")), json!("Web")));
    // A list field holds a value when one of its items does.
    assert!(holds_on(cond("f", Equals, Some("B")), json!(["A", "B"])));
    assert!(!holds_on(
        cond("f", NotEquals, Some("B")),
        json!(["A", "B"])
    ));
}

#[test]
fn in_takes_a_comma_list_or_a_json_array() {
    for list in ["Web, Ads", r#"["Web","Ads"]"#] {
        assert!(holds_on(cond("f", In, Some(list)), json!("ads")), "{list}");
        assert!(
            !holds_on(cond("f", In, Some(list)), json!("Fair")),
            "{list}"
        );
    }
    assert!(holds_on(cond("f", In, Some("[1, 2]")), json!(2)));
}

#[test]
fn contains_is_a_substring_of_text_or_an_item_of_a_list() {
    assert!(holds_on(
        cond("f", Contains, Some("ACME")),
        json!("sales@acme.test")
    ));
    assert!(!holds_on(
        cond("f", Contains, Some("globex")),
        json!("sales@acme.test")
    ));
    assert!(holds_on(cond("f", Contains, Some("b")), json!(["a", "B"])));
    assert!(!holds_on(cond("f", Contains, Some("x")), Value::Null));
}

#[test]
fn is_set_and_is_not_set_treat_blank_text_and_empty_lists_as_unset() {
    for unset in [Value::Null, json!(""), json!("  "), json!([])] {
        assert!(!holds_on(cond("f", IsSet, None), unset.clone()));
        assert!(holds_on(cond("f", IsNotSet, None), unset));
    }
    assert!(holds_on(cond("f", IsSet, None), json!(false)));
    assert!(holds(&cond("missing", IsNotSet, None), &Values::new()));
}

#[test]
fn greater_and_less_compare_numbers_and_dates() {
    assert!(holds_on(cond("f", GreaterOrEqual, Some("50")), json!(50)));
    assert!(holds_on(cond("f", GreaterOrEqual, Some("50")), json!("75")));
    assert!(!holds_on(
        cond("f", GreaterOrEqual, Some("50")),
        json!(49.5)
    ));
    assert!(holds_on(cond("f", LessOrEqual, Some("50")), json!(10)));
    assert!(!holds_on(cond("f", LessOrEqual, Some("50")), Value::Null));
    assert!(holds_on(
        cond("f", GreaterOrEqual, Some("2026-01-01")),
        json!("2026-03-01T10:00:00+01:00")
    ));
    assert!(holds_on(
        cond("f", LessOrEqual, Some("2026-01-01T00:00:00Z")),
        json!("2025-12-31T23:00:00-00:30")
    ));
    assert!(!holds_on(
        cond("f", LessOrEqual, Some("2026-01-01")),
        json!("2026-01-02")
    ));
}

fn picklist() -> CrmField {
    CrmField {
        options: Some(vec![
            PicklistOption {
                id: "web_form".into(),
                label: "Web Form".into(),
            },
            PicklistOption {
                id: "ads".into(),
                label: "Advertisement".into(),
            },
        ]),
        ..crm("Lead_Source", FieldType::Picklist)
    }
}

fn crm_fields() -> Vec<CrmField> {
    vec![
        picklist(),
        crm("Owner", FieldType::User),
        crm("Email_Opt_Out", FieldType::Boolean),
        crm("Annual_Revenue", FieldType::Number),
        CrmField {
            read_only: true,
            ..crm("Created_Time", FieldType::DateTime)
        },
        crm("Account_Name", FieldType::Lookup),
    ]
}

fn input(direction: SyncDirection, conditions: Vec<Condition>) -> SyncRuleInput {
    SyncRuleInput {
        direction,
        conditions,
        action: RuleAction::Include,
        set_fields: Vec::new(),
    }
}

fn refused(rule: SyncRuleInput) -> FieldError {
    let rows = vec![input(ToCrm, vec![]), input(FromCrm, vec![]), rule];
    validate_rules(&rows, &crm_fields()).unwrap_err()
}

#[test]
fn picklists_are_compared_and_validated_by_label() {
    // The record holds the label (clients normalise picklists to labels).
    assert!(holds_on(
        cond("Lead_Source", Equals, Some("web form")),
        json!("Web Form")
    ));
    let ok = validate_rules(
        &[input(
            FromCrm,
            vec![cond("Lead_Source", In, Some("Web Form, Advertisement"))],
        )],
        &crm_fields(),
    );
    assert_eq!(
        ok.unwrap()[0].conditions[0].value.as_deref(),
        Some(r#"["Web Form","Advertisement"]"#)
    );
    // An option written by its stored value is kept as its label.
    let by_value = validate_rules(
        &[input(
            FromCrm,
            vec![cond("Lead_Source", Equals, Some("web_form"))],
        )],
        &crm_fields(),
    )
    .unwrap();
    assert_eq!(by_value[0].conditions[0].value.as_deref(), Some("Web Form"));
    let error = refused(input(
        FromCrm,
        vec![cond("Lead_Source", Equals, Some("Trade show"))],
    ));
    assert_eq!(error.field, "rules[2].conditions[0].value");
    assert!(
        error
            .message
            .contains("allowed values: Web Form, Advertisement"),
        "{}",
        error.message
    );
}

#[test]
fn validation_names_the_rule_and_the_part_at_fault() {
    let cases = [
        (
            input(ToCrm, vec![cond("nope", Equals, Some("x"))]),
            "rules[2].conditions[0].field",
        ),
        (
            input(FromCrm, vec![cond("source", Equals, Some("x"))]),
            "rules[2].conditions[0].field",
        ),
        (
            input(
                FromCrm,
                vec![
                    cond("Owner", IsSet, None),
                    cond("Email_Opt_Out", GreaterOrEqual, Some("1")),
                ],
            ),
            "rules[2].conditions[1].operator",
        ),
        (
            input(ToCrm, vec![cond("source", LessOrEqual, Some("b"))]),
            "rules[2].conditions[0].operator",
        ),
        (
            input(
                ToCrm,
                vec![cond("behaviourScore", GreaterOrEqual, Some("high"))],
            ),
            "rules[2].conditions[0].value",
        ),
        (
            input(ToCrm, vec![cond("source", Equals, None)]),
            "rules[2].conditions[0].value",
        ),
        (
            input(ToCrm, vec![cond("source", IsSet, Some("x"))]),
            "rules[2].conditions[0].value",
        ),
        (
            input(FromCrm, vec![cond("Account_Name", Equals, Some("x"))]),
            "rules[2].conditions[0].operator",
        ),
    ];
    for (rule, field) in cases {
        let shown = format!("{rule:?}");
        assert_eq!(refused(rule).field, field, "{shown}");
    }
}

#[test]
fn set_fields_are_checked_against_the_target_side() {
    let with = |direction, field: &str, value: &str| SyncRuleInput {
        set_fields: vec![(field.into(), value.into())],
        ..input(direction, vec![])
    };
    assert_eq!(
        refused(with(ToCrm, "Created_Time", "2026-01-01")).field,
        "rules[2].setFields[0].field"
    );
    let read_only = refused(with(ToCrm, "Created_Time", "2026-01-01"));
    assert!(
        read_only.message.contains("read-only"),
        "{}",
        read_only.message
    );
    assert_eq!(
        refused(with(ToCrm, "Lead_Source", "Trade show")).field,
        "rules[2].setFields[0].value"
    );
    assert_eq!(
        refused(with(FromCrm, "behaviour_score", "10")).field,
        "rules[2].setFields[0].field"
    );
    assert_eq!(
        refused(with(FromCrm, "optedOut", "maybe")).field,
        "rules[2].setFields[0].value"
    );
    assert_eq!(
        refused(SyncRuleInput {
            action: RuleAction::Exclude,
            ..with(ToCrm, "Lead_Source", "Web Form")
        })
        .field,
        "rules[2].setFields"
    );
    let rules = validate_rules(
        &[
            with(ToCrm, "Lead_Source", "web form"),
            with(FromCrm, "optedOut", "true"),
            with(ToCrm, "Annual_Revenue", "12.5"),
        ],
        &crm_fields(),
    )
    .unwrap();
    assert_eq!(rules[0].set_fields[0].value, json!("Web Form"));
    assert_eq!(rules[1].set_fields[0].field, "optedOut");
    assert_eq!(rules[1].set_fields[0].value, json!(true));
    assert_eq!(rules[2].set_fields[0].value, json!(12.5));
}

#[test]
fn camel_case_platform_names_are_kept_as_written_and_read_by_catalog_name() {
    let rules = validate_rules(
        &[SyncRuleInput {
            set_fields: vec![("optedOut".into(), "true".into())],
            ..input(FromCrm, vec![])
        }],
        &crm_fields(),
    )
    .unwrap();
    assert_eq!(rules[0].set_fields[0].field, "optedOut");
    let rules = validate_rules(
        &[input(
            ToCrm,
            vec![cond("ownerEmail", Contains, Some("@acme"))],
        )],
        &crm_fields(),
    )
    .unwrap();
    assert_eq!(rules[0].conditions[0].field, "ownerEmail");
    let ann = values(&[("owner_email", json!("ann@acme.test"))]);
    assert_eq!(verdict(&rules, ToCrm, &ann), Ok(&[][..]));
    let bob = values(&[("owner_email", json!("bob@globex.test"))]);
    assert!(verdict(&rules, ToCrm, &bob).is_err());
}

#[test]
fn stored_rules_read_back_as_they_were_saved() {
    let rules = vec![SyncRule {
        set_fields: vec![SetField {
            field: "Lead_Source".into(),
            value: json!("Web Form"),
        }],
        ..rule(
            ToCrm,
            vec![cond("source", In, Some("a,b"))],
            RuleAction::Include,
        )
    }];
    let json = serde_json::to_value(&rules).unwrap();
    assert_eq!(json[0]["direction"], json!("TO_CRM"));
    assert_eq!(json[0]["conditions"][0]["operator"], json!("IN"));
    assert_eq!(json[0]["setFields"][0]["field"], json!("Lead_Source"));
    let back: Vec<SyncRule> = serde_json::from_value(json).unwrap();
    assert_eq!(back, rules);
}
