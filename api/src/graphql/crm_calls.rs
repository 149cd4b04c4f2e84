//! The per-request cap on fields that call a CRM, so that one request cannot
//! multiply into hundreds of CRM calls (300 aliases of `crmFields`, 100 of
//! `testConnector`).
//!
//! - Before anything runs, the document is counted: a request whose
//!   operation selects more than [`MAX_PER_REQUEST`] such fields (aliases and
//!   fragments included) is refused as a whole, naming the field.
//! - While it runs, each such field takes one of the request's
//!   [`MAX_PER_REQUEST`] turns, so a list (`connectors { crmFields }`) is
//!   capped too: the fields past the cap answer an error and call nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, ServerError, ServerResult, Value, Variables};

/// The most fields that call a CRM in one request.
pub(crate) const MAX_PER_REQUEST: usize = 5;

/// The fields that call a CRM, by parent type and name. `crmFields` is
/// served from a short cache but still counts: the cache is per connector.
pub(crate) const CRM_FIELDS: &[(&str, &str)] = &[
    ("Connector", "crmFields"),
    ("Mutation", "createConnector"),
    ("Mutation", "updateConnector"),
    ("Mutation", "testConnector"),
    ("Mutation", "setFieldMappings"),
];

/// Counts and caps a request's CRM-calling fields; see the module documentation.
pub(crate) struct CrmCallLimit;

impl ExtensionFactory for CrmCallLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest::default())
    }
}

/// One instance per request: the turns taken so far.
#[derive(Default)]
struct PerRequest {
    taken: AtomicUsize,
}

#[async_trait::async_trait]
impl Extension for PerRequest {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let counted = count(&document);
        if counted.total > MAX_PER_REQUEST {
            return Err(refusal(format!(
                "this request selects {} fields that call the CRM ({}); at most {MAX_PER_REQUEST} are allowed per request: send the others in further requests",
                counted.total,
                counted.names.join(", ")
            )));
        }
        Ok(document)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if CRM_FIELDS.contains(&(info.parent_type, info.name))
            && self.taken.fetch_add(1, Ordering::Relaxed) >= MAX_PER_REQUEST
        {
            return Err(refusal(format!(
                "{} was not run: at most {MAX_PER_REQUEST} fields that call the CRM run per request; ask for the others in further requests",
                info.alias.unwrap_or(info.name)
            )));
        }
        next.run(ctx, info).await
    }
}

fn refusal(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", "RATE_LIMITED");
    error.extensions = Some(extensions);
    error
}

/// CRM-calling fields a document selects, in its most expensive operation.
#[derive(Debug, Default, PartialEq)]
struct Counted {
    total: usize,
    /// The fields' names, each once, in the order met.
    names: Vec<&'static str>,
}

fn count(document: &ExecutableDocument) -> Counted {
    let mut counter = Counter {
        document,
        fragments: HashMap::new(),
        names: Vec::new(),
    };
    let total = document
        .operations
        .iter()
        .map(|(_, op)| counter.selection_set(&op.node.selection_set.node))
        .max()
        .unwrap_or(0);
    Counted {
        total,
        names: counter.names,
    }
}

struct Counter<'a> {
    document: &'a ExecutableDocument,
    /// Each fragment's count, once known; `None` while it is being counted
    /// (a cycle, which validation refuses, counts nothing here).
    fragments: HashMap<&'a Name, Option<usize>>,
    names: Vec<&'static str>,
}

impl<'a> Counter<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let own = match CRM_FIELDS.iter().find(|(_, n)| *n == name) {
                        Some((_, n)) => {
                            if !self.names.contains(n) {
                                self.names.push(n);
                            }
                            1
                        }
                        None => 0,
                    };
                    own + self.selection_set(&field.node.selection_set.node)
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node),
            })
            .fold(0, usize::saturating_add)
    }

    /// A fragment is counted once however often it is spread (no blow-up
    /// from fragments that spread each other).
    fn fragment(&mut self, name: &'a Name) -> usize {
        if let Some(known) = self.fragments.get(name) {
            return known.unwrap_or(0);
        }
        let Some(definition) = self.document.fragments.get(name) else {
            return 0;
        };
        self.fragments.insert(name, None);
        let counted = self.selection_set(&definition.node.selection_set.node);
        self.fragments.insert(name, Some(counted));
        counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(query: &str) -> usize {
        count(&async_graphql::parser::parse_query(query).unwrap()).total
    }

    #[test]
    fn aliases_fragments_and_mutations_are_counted() {
        assert_eq!(
            counted(
                "{ connector(id: 1) { a: crmFields(module: LEADS) { apiName } b: crmFields(module: CONTACTS) { apiName } } }"
            ),
            2
        );
        assert_eq!(
            counted(
                "{ connector(id: 1) { ...F ...F } } fragment F on Connector { crmFields(module: LEADS) { apiName } x: crmFields(module: LEADS) { apiName } }"
            ),
            4
        );
        assert_eq!(
            counted(
                "mutation { a: testConnector(input: {id: 1}) { ok } b: testConnector(input: {id: 1}) { ok } tenant: createTenant(input: {name: \"x\", slug: \"x\"}) { tenant { id } } }"
            ),
            2
        );
        assert_eq!(counted("{ viewer { role } }"), 0);
    }

    #[test]
    fn fragments_that_spread_each_other_are_counted_without_blowing_up() {
        let mut query = String::from("{ connector(id: 1) { ...F0 } }");
        for i in 0..40 {
            query.push_str(&format!(
                " fragment F{i} on Connector {{ ...F{n} ...F{n} }}",
                n = i + 1
            ));
        }
        query.push_str(" fragment F40 on Connector { crmFields(module: LEADS) { apiName } }");
        assert!(counted(&query) > MAX_PER_REQUEST);
        assert_eq!(
            counted(
                "{ connector(id: 1) { ...A } } fragment A on Connector { ...A crmFields(module: LEADS) { apiName } }"
            ),
            1
        );
    }
}
