//! `$metadata`: the EDMX document (OData v2, EDM 2008/09) with SAP's
//! `sap:` annotations and C4C's `c4c:value-help` naming each code field's
//! code list set, and the code list sets themselves (`{Type}{Property}Collection`
//! of `CodeList` entries: `Code`, `Description`).

use std::fmt::Write;

use super::model::{Kind, NAMESPACE, Set, TenantData};

/// The name of a code field's code list set.
pub fn code_list_set(set: Set, prop: &str) -> String {
    format!("{}{prop}Collection", set.type_name())
}

/// Every code list set name of the standard properties (the service document lists them).
pub fn code_list_sets() -> Vec<String> {
    let data = TenantData::new(Default::default(), 0, &[]);
    all_code_lists(&data).into_iter().map(|(n, _)| n).collect()
}

/// Every code list set with its entries.
pub fn all_code_lists(data: &TenantData) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for set in Set::ALL {
        for prop in &data.table(set).props {
            if let Kind::Code(list) = &prop.kind {
                out.push((code_list_set(set, &prop.name), list.clone()));
            }
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The EDMX document of a tenant (its extension fields included).
pub fn document(data: &TenantData) -> String {
    let mut x = String::new();
    x.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    x.push_str(concat!(
        r#"<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx""#,
        r#" xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata""#,
        r#" xmlns:sap="http://www.sap.com/Protocols/SAPData""#,
        r#" xmlns:c4c="http://www.sap.com/Protocols/C4CData">"#,
        r#"<edmx:DataServices m:DataServiceVersion="2.0">"#,
    ));
    let _ = write!(
        x,
        r#"<Schema Namespace="{NAMESPACE}" xml:lang="en" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">"#
    );
    for set in Set::ALL {
        let table = data.table(set);
        let _ = write!(
            x,
            r#"<EntityType Name="{}"><Key><PropertyRef Name="ObjectID"/></Key>"#,
            set.type_name()
        );
        for prop in &table.props {
            let facets = match &prop.kind {
                Kind::Text(len) => format!(r#" MaxLength="{len}""#),
                Kind::Code(_) => format!(
                    r#" MaxLength="10" c4c:value-help="{}""#,
                    code_list_set(set, &prop.name)
                ),
                Kind::Time => r#" Precision="7""#.to_owned(),
                Kind::Bool => String::new(),
            };
            let nullable = if prop.name == "ObjectID" {
                "false"
            } else {
                "true"
            };
            let concurrency = if prop.name == "ETag" {
                r#" ConcurrencyMode="Fixed""#
            } else {
                ""
            };
            let _ = write!(
                x,
                r#"<Property Name="{}" Type="{}" Nullable="{nullable}"{facets}{concurrency} sap:creatable="{}" sap:updatable="{}" sap:filterable="true" sap:label="{}"/>"#,
                prop.name,
                prop.kind.edm(),
                prop.creatable,
                prop.updatable,
                escape(&prop.name),
            );
        }
        x.push_str("</EntityType>");
    }
    x.push_str(concat!(
        r#"<EntityType Name="CodeList"><Key><PropertyRef Name="Code"/></Key>"#,
        r#"<Property Name="Code" Type="Edm.String" Nullable="false" MaxLength="10" sap:creatable="false" sap:updatable="false"/>"#,
        r#"<Property Name="Description" Type="Edm.String" Nullable="true" MaxLength="255" sap:creatable="false" sap:updatable="false"/>"#,
        "</EntityType>",
    ));
    let _ = write!(
        x,
        r#"<EntityContainer Name="{NAMESPACE}" m:IsDefaultEntityContainer="true">"#
    );
    for set in Set::ALL {
        let _ = write!(
            x,
            r#"<EntitySet Name="{}" EntityType="{NAMESPACE}.{}" sap:creatable="true" sap:updatable="true" sap:deletable="true"/>"#,
            set.set_name(),
            set.type_name()
        );
    }
    for (name, _) in all_code_lists(data) {
        let _ = write!(
            x,
            r#"<EntitySet Name="{name}" EntityType="{NAMESPACE}.CodeList" sap:creatable="false" sap:updatable="false" sap:deletable="false"/>"#
        );
    }
    x.push_str("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sap_c4c::model::{Settings, default_extensions};

    #[test]
    fn the_document_names_every_set_and_code_list() {
        let data = TenantData::new(Settings::default(), 1, &default_extensions());
        let xml = document(&data);
        for name in [
            "LeadCollection",
            "IndividualCustomerCollection",
            "ContactCollection",
            "LeadQualificationLevelCodeCollection",
            "PleziURL_KUT",
        ] {
            assert!(xml.contains(name), "{name} missing");
        }
    }
}
