//! The CRM kinds crmsync connects to: one line per kind. A kind whose line
//! says `None` is known to the API (its enum value exists) but cannot be
//! created yet; a new enum value does not compile until it has a line here.
//! How to add a CRM: ARCHITECTURE.md, "Adding a CRM".

use crmsync_entity::enums::ConnectorKind;
use sea_orm::Iterable;

use super::kit::{CrmKit, Description};

// Each CRM's folder (`crm/<kind>/`), reached as `crm::<kind>`.
#[path = "hubspot/mod.rs"]
pub mod hubspot;
#[path = "pipedrive/mod.rs"]
pub mod pipedrive;
#[path = "salesforce/mod.rs"]
pub mod salesforce;
#[path = "sap_c4c/mod.rs"]
pub mod sap_c4c;
#[path = "zendesk_sell/mod.rs"]
pub mod zendesk_sell;
#[path = "zoho/mod.rs"]
pub mod zoho;

/// The kit of `kind`, or `None` for a kind not available yet.
pub fn kit(kind: ConnectorKind) -> Option<&'static dyn CrmKit> {
    match kind {
        ConnectorKind::ZohoCrm => Some(&zoho::kit::Kit),
        ConnectorKind::Pipedrive => Some(&pipedrive::kit::Kit),
        ConnectorKind::Hubspot => Some(&hubspot::kit::Kit),
        ConnectorKind::Salesforce => Some(&salesforce::kit::Kit),
        ConnectorKind::ZendeskSell => Some(&zendesk_sell::kit::Kit),
        ConnectorKind::SapC4c => Some(&sap_c4c::kit::Kit),
    }
}

/// Every available kit, in the enum's order.
pub fn kits() -> impl Iterator<Item = &'static dyn CrmKit> {
    ConnectorKind::iter().filter_map(kit)
}

/// The description of `kind`, or `None` for a kind not available yet.
pub fn describe(kind: ConnectorKind) -> Option<&'static Description> {
    kit(kind).map(|k| k.describe())
}

/// Why a kind cannot be used: it is not available yet. Names the kinds that are.
pub fn unavailable(kind: ConnectorKind) -> String {
    let available: Vec<&str> = kits().map(|k| k.describe().kind.as_str()).collect();
    format!(
        "{kind} connectors are not available yet; {} can be created today",
        available.join(", ")
    )
}

/// The kit whose stored credentials carry `tag`.
pub fn by_tag(tag: &str) -> Option<&'static dyn CrmKit> {
    kits().find(|k| k.describe().tag == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kit_describes_its_own_kind_with_one_export_module_and_a_unique_tag() {
        let mut tags = Vec::new();
        for kind in ConnectorKind::iter() {
            let Some(kit) = kit(kind) else { continue };
            let d = kit.describe();
            assert_eq!(d.kind, kind);
            assert_eq!(d.modules.iter().filter(|m| m.to_crm).count(), 1, "{kind}");
            assert!(!d.default_import_modules().is_empty(), "{kind}");
            assert!(!tags.contains(&d.tag), "{kind}: tag {} taken", d.tag);
            tags.push(d.tag);
            assert!(d.credential_fields.iter().any(|f| f.required), "{kind}");
        }
        assert!(tags.len() >= 2);
    }
}
