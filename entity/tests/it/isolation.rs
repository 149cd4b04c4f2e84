//! The tenant wall, checked in the source (ARCHITECTURE.md, "Tenant isolation"):
//! outside this crate, tenant-owned tables are read only through the
//! tenant-scoped finders, and every bulk update or delete of them names the
//! tenant. A new query that forgets the tenant fails this test before review.

use std::path::{Path, PathBuf};

/// Tables with a `tenant_id` (every model that implements `TenantScoped`).
const TENANT_OWNED: &[&str] = &[
    "api_key",
    "audit_log",
    "connector",
    "contact",
    "crm_link",
    "crm_notice",
    "crm_record",
    "delivery",
    "field_mapping",
    "pending_push",
    "realtime_subscription",
    "sync_checkpoint",
    "sync_item",
    "sync_run",
    "webhook",
];

/// The code that queries the database, outside the entity crate.
const SOURCES: &[&str] = &["api/src", "worker/src", "src"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Where `statement` starts in `text`, with the statement's text up to its
/// end (the first `;` after it).
fn statements<'a>(text: &'a str, start: &str) -> Vec<(usize, &'a str)> {
    text.match_indices(start)
        .map(|(at, _)| {
            let rest = &text[at..];
            let end = rest.find(';').unwrap_or(rest.len());
            (text[..at].lines().count(), &rest[..end])
        })
        .collect()
}

#[test]
fn tenant_owned_tables_are_queried_with_their_tenant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in SOURCES {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "the sources were found: {files:?}");
    let mut findings = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        for table in TENANT_OWNED {
            for bare in ["::Entity::find()", "::Entity::find_by_id("] {
                for (line, _) in statements(&text, &format!("{table}{bare}")) {
                    findings.push(format!(
                        "{name}:{line}: {table}{bare} reads across tenants: use for_tenant / find_for_tenant"
                    ));
                }
            }
            for bulk in ["::Entity::update_many()", "::Entity::delete_many()"] {
                for (line, statement) in statements(&text, &format!("{table}{bulk}")) {
                    if !statement.contains(&format!("{table}::Column::TenantId")) {
                        findings.push(format!(
                            "{name}:{line}: {table}{bulk} without a filter on {table}::Column::TenantId"
                        ));
                    }
                }
            }
        }
    }
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}
