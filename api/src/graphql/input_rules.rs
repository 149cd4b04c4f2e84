//! Rules every argument value must follow, checked once over the parsed
//! document and its variables before execution, so that no resolver repeats
//! them and no bad value reaches one:
//!
//! - an `Int` fits in 32 bits (async-graphql's validation lets a larger
//!   number through, and parsing it later fails as an internal error);
//! - an enum is written as an enum value, not a string, in the document (the
//!   GraphQL spec's rule, which async-graphql does not enforce); variables
//!   carry enums as JSON strings and stay accepted;
//! - text (`String`, `ID` and the strings inside `JSON`) holds no control
//!   characters: they are invisible in every UI, break CSV exports and CRM
//!   calls, and PostgreSQL refuses NUL in text. Tab and line breaks are kept
//!   where text may span lines (descriptions, custom field values).
//!
//! Errors are VALIDATION with `extensions.field` naming the argument path
//! (`input.contact.firstName`, `mappings[2].crmField`), as resolvers name theirs.
//! The same rules hold on HTTP and WebSocket, on SQLite and PostgreSQL.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
    Selection, SelectionSet, VariableDefinition,
};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql_value::Value as DocumentValue;

use async_graphql::{Name, Pos, Positioned, ServerError, ServerResult, Value, Variables};

use crate::error::{ApiError, GqlError};

/// Input fields whose text may span lines (tab and line breaks allowed): a
/// description, a PEM key.
const MULTI_LINE_FIELDS: &[&str] = &["description", "privateKeyPem"];

/// How deeply a value may nest before it is refused (`JSON` values are the
/// only ones that can go deeper than the schema's own input types).
const MAX_VALUE_DEPTH: usize = 64;

/// The extension that applies the rules.
pub(crate) struct InputRules;

impl ExtensionFactory for InputRules {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(InputRulesExtension)
    }
}

struct InputRulesExtension;

#[async_trait::async_trait]
impl Extension for InputRulesExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let mut document = next
            .run(ctx, query, variables)
            .await
            .map_err(describe_syntax_error)?;
        leave_out_unset_variables(&mut document, variables);
        check_document(&ctx.schema_env.registry, &document, variables)?;
        Ok(document)
    }
}

/// The GraphQL spec's coercion of a nullable variable the request does not
/// give and whose definition has no default: the argument or input field it
/// stands for is left out, as if not written, so that field's own default
/// applies. async-graphql passes null instead, which a field with a default
/// refuses only when the resolver reads it (an internal error). A variable
/// given as an explicit null stays null.
fn leave_out_unset_variables(document: &mut ExecutableDocument, variables: &Variables) {
    let mut unset = HashSet::new();
    for (_, operation) in document.operations.iter() {
        for definition in &operation.node.variable_definitions {
            let definition = &definition.node;
            if definition.var_type.node.nullable
                && definition.default_value.is_none()
                && !variables.contains_key(&definition.name.node)
            {
                unset.insert(definition.name.node.clone());
            }
        }
    }
    if unset.is_empty() {
        return;
    }
    match &mut document.operations {
        DocumentOperations::Single(operation) => {
            leave_out_in_set(&mut operation.node.selection_set.node, &unset);
        }
        DocumentOperations::Multiple(operations) => {
            for operation in operations.values_mut() {
                leave_out_in_set(&mut operation.node.selection_set.node, &unset);
            }
        }
    }
    for fragment in document.fragments.values_mut() {
        leave_out_in_set(&mut fragment.node.selection_set.node, &unset);
    }
    // A definition whose every use was left out goes too (validation refuses
    // an unused variable); one still used elsewhere (a list, a directive)
    // stays, and is null there as before.
    let used = variables_used(document);
    let mut operations: Vec<&mut OperationDefinition> = match &mut document.operations {
        DocumentOperations::Single(operation) => vec![&mut operation.node],
        DocumentOperations::Multiple(operations) => {
            operations.values_mut().map(|o| &mut o.node).collect()
        }
    };
    for operation in &mut operations {
        operation
            .variable_definitions
            .retain(|d| !unset.contains(&d.node.name.node) || used.contains(&d.node.name.node));
    }
}

/// Every variable the document's values and directives use.
fn variables_used(document: &ExecutableDocument) -> HashSet<Name> {
    let mut used = HashSet::new();
    for (_, operation) in document.operations.iter() {
        in_directives(&operation.node.directives, &mut used);
        in_set(&operation.node.selection_set.node, &mut used);
    }
    for fragment in document.fragments.values() {
        in_directives(&fragment.node.directives, &mut used);
        in_set(&fragment.node.selection_set.node, &mut used);
    }
    return used;

    fn in_set(set: &SelectionSet, used: &mut HashSet<Name>) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    for (_, value) in &field.node.arguments {
                        in_value(&value.node, used);
                    }
                    in_directives(&field.node.directives, used);
                    in_set(&field.node.selection_set.node, used);
                }
                Selection::InlineFragment(fragment) => {
                    in_directives(&fragment.node.directives, used);
                    in_set(&fragment.node.selection_set.node, used);
                }
                Selection::FragmentSpread(spread) => in_directives(&spread.node.directives, used),
            }
        }
    }
    fn in_directives(directives: &[Positioned<Directive>], used: &mut HashSet<Name>) {
        for directive in directives {
            for (_, value) in &directive.node.arguments {
                in_value(&value.node, used);
            }
        }
    }
    fn in_value(value: &DocumentValue, used: &mut HashSet<Name>) {
        match value {
            DocumentValue::Variable(name) => {
                used.insert(name.clone());
            }
            DocumentValue::List(items) => items.iter().for_each(|v| in_value(v, used)),
            DocumentValue::Object(fields) => fields.values().for_each(|v| in_value(v, used)),
            _ => {}
        }
    }
}

fn leave_out_in_set(set: &mut SelectionSet, unset: &HashSet<Name>) {
    let is_unset = |value: &DocumentValue| matches!(value, DocumentValue::Variable(name) if unset.contains(name));
    for selection in &mut set.items {
        match &mut selection.node {
            Selection::Field(field) => {
                let field = &mut field.node;
                field.arguments.retain(|(_, value)| !is_unset(&value.node));
                for (_, value) in &mut field.arguments {
                    leave_out_in_value(&mut value.node, unset);
                }
                leave_out_in_set(&mut field.selection_set.node, unset);
            }
            Selection::InlineFragment(fragment) => {
                leave_out_in_set(&mut fragment.node.selection_set.node, unset);
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

fn leave_out_in_value(value: &mut DocumentValue, unset: &HashSet<Name>) {
    match value {
        DocumentValue::Object(fields) => {
            fields
                .retain(|_, v| !matches!(v, DocumentValue::Variable(name) if unset.contains(name)));
            for v in fields.values_mut() {
                leave_out_in_value(v, unset);
            }
        }
        DocumentValue::List(items) => {
            for item in items {
                leave_out_in_value(item, unset);
            }
        }
        _ => {}
    }
}

/// The parser's error in one line of words: pest's message is a multi-line
/// drawing of the source with a caret, meant for a terminal.
fn describe_syntax_error(mut error: ServerError) -> ServerError {
    let reason = error
        .message
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("= "))
        .next_back()
        .map(|r| r.replace('_', " "));
    if let (Some(reason), Some(at)) = (reason, error.locations.first()) {
        error.message = format!(
            "the query is not valid GraphQL at line {}, column {}: {reason}",
            at.line, at.column
        );
    }
    error
}

/// Checks every argument of every operation in `document`.
pub(crate) fn check_document(
    registry: &Registry,
    document: &ExecutableDocument,
    variables: &Variables,
) -> ServerResult<()> {
    let mut walker = Walker {
        registry,
        document,
        variables,
        defaults: Vec::new(),
        visited: HashSet::new(),
    };
    for (_, operation) in document.operations.iter() {
        let root = match operation.node.ty {
            OperationType::Query => Some(registry.query_type.as_str()),
            OperationType::Mutation => registry.mutation_type.as_deref(),
            OperationType::Subscription => registry.subscription_type.as_deref(),
        };
        walker.defaults = operation.node.variable_definitions.iter().collect();
        for definition in &operation.node.variable_definitions {
            walker.variable_default(definition)?;
        }
        if let Some(root) = root {
            walker.selection_set(root, &operation.node.selection_set)?;
        }
    }
    Ok(())
}

struct Walker<'a> {
    registry: &'a Registry,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    /// The current operation's variable definitions (for their defaults).
    defaults: Vec<&'a Positioned<VariableDefinition>>,
    /// Fragments already walked: their arguments do not depend on where they
    /// are spread, and a cycle (refused later by validation) must not loop.
    visited: HashSet<&'a str>,
}

impl<'a> Walker<'a> {
    /// A variable's default value is a literal like any other.
    fn variable_default(&self, definition: &Positioned<VariableDefinition>) -> ServerResult<()> {
        let Some(default) = &definition.node.default_value else {
            return Ok(());
        };
        let ty = definition.node.var_type.node.to_string();
        let path = format!("${}", definition.node.name.node);
        self.check(&ty, &default.node, &path, true, default.pos)
    }

    fn selection_set(
        &mut self,
        type_name: &str,
        set: &'a Positioned<SelectionSet>,
    ) -> ServerResult<()> {
        let registry = self.registry;
        for selection in &set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    let Some(meta) = registry
                        .types
                        .get(type_name)
                        .and_then(|t| t.field_by_name(&field.node.name.node))
                    else {
                        continue;
                    };
                    // Each argument is checked twice: as written, with the
                    // variables left out, where an enum must not be a string;
                    // then with the variables' values, where it may.
                    for (name, value) in &field.node.arguments {
                        let Some(arg) = meta.args.get(name.node.as_str()) else {
                            continue;
                        };
                        let written = value
                            .node
                            .clone()
                            .into_const_with(|_| Ok::<_, Infallible>(Value::Null));
                        let given = value
                            .node
                            .clone()
                            .into_const_with(|var| Ok::<_, Infallible>(self.variable(&var)));
                        for (value_of, literal) in [(written, true), (given, false)] {
                            let Ok(v) = value_of;
                            self.check(&arg.ty, &v, name.node.as_str(), literal, value.pos)?;
                        }
                    }
                    let inner = MetaTypeName::concrete_typename(&meta.ty);
                    self.selection_set(inner, &field.node.selection_set)?;
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(type_name, |c| c.node.on.node.as_str());
                    self.selection_set(on, &fragment.node.selection_set)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let Some((key, fragment)) = self.document.fragments.get_key_value(name) else {
                        continue;
                    };
                    if self.visited.insert(key.as_str()) {
                        let on = fragment.node.type_condition.node.on.node.as_str();
                        self.selection_set(on, &fragment.node.selection_set)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The value of variable `name`: the request's, else its default.
    fn variable(&self, name: &str) -> Value {
        self.variables
            .get(name)
            .cloned()
            .or_else(|| {
                self.defaults
                    .iter()
                    .find(|d| d.node.name.node == name)
                    .and_then(|d| d.node.default_value.as_ref())
                    .map(|v| v.node.clone())
            })
            .unwrap_or(Value::Null)
    }

    /// Checks `value` against the input type `ty`; `path` names it in errors.
    fn check(
        &self,
        ty: &str,
        value: &Value,
        path: &str,
        literal: bool,
        pos: Pos,
    ) -> ServerResult<()> {
        let mut checker = Checker {
            registry: self.registry,
            literal,
        };
        checker
            .value(ty, value, &mut path.to_owned(), 0)
            .map_err(|(field, message)| {
                let error: async_graphql::Error =
                    GqlError(ApiError::validation(field, message)).into();
                error.into_server_error(pos)
            })
    }
}

/// Checks one value; an error is (field path, message).
struct Checker<'a> {
    registry: &'a Registry,
    /// The value was written in the document (not given as a variable).
    literal: bool,
}

type Refusal = (String, String);

impl Checker<'_> {
    fn value(
        &mut self,
        ty: &str,
        value: &Value,
        path: &mut String,
        depth: usize,
    ) -> Result<(), Refusal> {
        if depth > MAX_VALUE_DEPTH {
            return Err((
                path.clone(),
                format!("is nested too deeply (at most {MAX_VALUE_DEPTH} levels)"),
            ));
        }
        match MetaTypeName::create(ty) {
            MetaTypeName::NonNull(inner) => self.value(inner, value, path, depth),
            MetaTypeName::List(inner) => match value {
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        self.value(inner, item, path, depth + 1)?;
                        path.truncate(len);
                    }
                    Ok(())
                }
                // A single value where a list is expected is a list of one.
                other => self.value(inner, other, path, depth),
            },
            MetaTypeName::Named(name) => self.named(name, value, path, depth),
        }
    }

    fn named(
        &mut self,
        name: &str,
        value: &Value,
        path: &mut String,
        depth: usize,
    ) -> Result<(), Refusal> {
        if matches!(value, Value::Null) {
            return Ok(());
        }
        match (self.registry.types.get(name), value) {
            (Some(MetaType::Scalar { .. }), _) => scalar(name, value, path),
            (Some(MetaType::Enum { enum_values, .. }), Value::String(s)) if self.literal => {
                let values: Vec<&str> = enum_values.keys().map(String::as_str).collect();
                Err((
                    path.clone(),
                    format!(
                        "expects a {name} value written without quotes, one of {}; found the string \"{}\"",
                        values.join(", "),
                        shorten(s)
                    ),
                ))
            }
            (Some(MetaType::InputObject { input_fields, .. }), Value::Object(fields)) => {
                for (key, item) in fields {
                    let Some(field) = input_fields.get(key.as_str()) else {
                        continue;
                    };
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key.as_str());
                    self.value(&field.ty, item, path, depth + 1)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The rules of scalar values.
fn scalar(name: &str, value: &Value, path: &str) -> Result<(), Refusal> {
    match (name, value) {
        ("Int", Value::Number(n)) => {
            let fits = n.as_i64().is_some_and(|v| i32::try_from(v).is_ok());
            if fits || !(n.is_i64() || n.is_u64()) {
                // Not a whole number: validation says it is not an Int.
                return Ok(());
            }
            Err((
                path.to_owned(),
                format!(
                    "{n} is out of range: an Int is a whole number from {} to {}",
                    i32::MIN,
                    i32::MAX
                ),
            ))
        }
        ("String" | "ID", Value::String(s)) => {
            let leaf = path.rsplit(['.', '[']).next().unwrap_or(path);
            text(s, MULTI_LINE_FIELDS.contains(&leaf)).map_err(|m| (path.to_owned(), m))
        }
        ("JSON", value) => json(value, path, 0),
        _ => Ok(()),
    }
}

/// The strings of a `JSON` value, keys included; values may span lines.
fn json(value: &Value, path: &str, depth: usize) -> Result<(), Refusal> {
    if depth > MAX_VALUE_DEPTH {
        return Err((
            path.to_owned(),
            format!("is nested too deeply (at most {MAX_VALUE_DEPTH} levels)"),
        ));
    }
    match value {
        Value::String(s) => text(s, true).map_err(|m| (path.to_owned(), m)),
        Value::List(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| json(item, &format!("{path}[{i}]"), depth + 1)),
        Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            text(key, false).map_err(|m| (path.to_owned(), format!("a key {m}")))?;
            json(item, &format!("{path}.{key}"), depth + 1)
        }),
        _ => Ok(()),
    }
}

/// Refuses control characters (C0, DEL, C1); tab and line breaks pass when
/// `multi_line`.
fn text(s: &str, multi_line: bool) -> Result<(), String> {
    let allowed = |c: char| multi_line && matches!(c, '\t' | '\n' | '\r');
    match s
        .chars()
        .enumerate()
        .find(|&(_, c)| c.is_control() && !allowed(c))
    {
        None => Ok(()),
        Some((at, c)) => Err(format!(
            "must not contain control characters (found U+{:04X} at character {})",
            u32::from(c),
            at + 1
        )),
    }
}

/// A value short enough to quote in a message.
fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}
