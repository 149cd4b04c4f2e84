//! The subset of SOQL the sandbox Salesforce understands: parsing, resolving field names against an
//! object's schema, and running a query over records held as JSON maps.
//!
//! Supported: `SELECT f, ... | COUNT() FROM Object [WHERE ...] [ORDER BY f [ASC|DESC]
//! [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`, keywords in any case. WHERE takes `AND`, `OR`,
//! `NOT` and parentheses; like Salesforce, `AND` and `OR` may not be mixed at one level without
//! parentheses. Operators: `= != <> < <= > >= LIKE IN (...) NOT IN (...)`. Literals: quoted strings
//! with backslash escapes, numbers, `true`, `false`, `null`, unquoted dates (`2026-11-21`) and
//! date-times (`2026-11-21T10:00:00Z`, with optional fraction, or an offset `+01:00`).
//!
//! Semantics follow Salesforce's: text comparisons are case-insensitive; an empty string is null;
//! a null field equals only `null`, and so passes `!=` and `NOT IN` against any other value (SOQL
//! has no SQL-style unknown); a boolean field without a value counts as false; date-times compare
//! as instants to the millisecond.
//!
//! Not supported (refused as `MALFORMED_QUERY`, or `INVALID_FIELD` for relationship paths):
//! relationship fields (`Owner.Email`), subqueries and semi-joins, aggregate functions other than
//! `COUNT()`, `GROUP BY`, `HAVING`, `TYPEOF`, `FIELDS(...)`, `INCLUDES`/`EXCLUDES`, date literals
//! such as `TODAY` or `LAST_N_DAYS:n`, bind variables, `USING SCOPE`, `WITH`, `FOR UPDATE`.
//! A query longer than 100,000 characters is refused, as Salesforce does, and so is nesting of NOT
//! and parentheses beyond 100 levels; other limits Salesforce enforces (such as `OFFSET` at most
//! 2000) are the caller's to check.

use std::cmp::Ordering;
use std::collections::HashSet;

use chrono::NaiveDate;
use serde_json::{Map, Value};

/// A parsed SOQL query: `SELECT ... FROM ... [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The selected fields, or `COUNT()`.
    pub select: Select,
    /// The object queried, as written (the sandbox checks it).
    pub from: String,
    /// The WHERE clause, if any.
    pub filter: Option<Condition>,
    /// The ORDER BY keys, most significant first.
    pub order_by: Vec<Order>,
    /// `LIMIT n`.
    pub limit: Option<usize>,
    /// `OFFSET n`.
    pub offset: Option<usize>,
    /// The type of each ORDER BY key, known once resolved.
    order_types: Vec<Option<SoqlType>>,
}

/// What a query selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// `SELECT a, b`: plain field names (canonical api names once resolved).
    Fields(Vec<String>),
    /// `SELECT COUNT()`: the number of matching records only.
    Count,
}

/// One ORDER BY key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The field sorted on.
    pub field: String,
    /// `DESC` (otherwise ascending).
    pub descending: bool,
    /// Whether records without a value come last; Salesforce's default is nulls first when
    /// ascending and nulls last when descending, and `parse` fills that default in.
    pub nulls_last: bool,
}

/// A WHERE clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Every condition holds (`a AND b AND c`).
    And(Vec<Condition>),
    /// At least one condition holds (`a OR b OR c`).
    Or(Vec<Condition>),
    /// The condition does not hold (`NOT a`).
    Not(Box<Condition>),
    /// A test on one field.
    Compare(Comparison),
}

/// One field tested against literal values: `field op value`, `field [NOT] IN (...)`,
/// `field LIKE '...'`. Built by [`parse`] only: it carries the literals pre-parsed for matching.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The field tested (canonical api name once resolved).
    pub field: String,
    /// The operator.
    pub operator: Operator,
    /// The literal operand: exactly one, except for IN and NOT IN (one or more).
    pub values: Vec<Literal>,
    /// The field's type, once resolved.
    kind: Option<SoqlType>,
    /// `values`, ready to compare with a record's value.
    prepared: Vec<Prepared>,
    /// IN / NOT IN over many strings: the same values as a set.
    set: Option<ValueSet>,
    /// LIKE's pattern, compiled.
    like: Option<Vec<LikePart>>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`, with `%` (any run) and `_` (any one character), case-insensitive.
    Like,
    /// `IN (...)`
    In,
    /// `NOT IN (...)`
    NotIn,
}

/// A literal value written in a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true` / `false`
    Boolean(bool),
    /// A number, such as `42` or `-1.5`.
    Number(f64),
    /// A quoted string, escapes decoded.
    Text(String),
    /// An unquoted date-time such as `2026-11-21T10:00:00Z`, as milliseconds since the Unix epoch.
    DateTime(i64),
    /// An unquoted date such as `2026-11-21`.
    Date(NaiveDate),
}

/// The type of a field, as far as SOQL cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoqlType {
    /// A record id (18 characters; a 15-character literal matches its first 15). Compared
    /// case-sensitively.
    Id,
    /// Text of any kind: string, e-mail, phone, url, picklist, textarea. Compared
    /// case-insensitively.
    Text,
    /// A boolean (checkbox); a missing value counts as false.
    Boolean,
    /// A date-time, stored as `2026-11-21T10:00:00.000+0000` (`Z` and `+00:00` are read too).
    DateTime,
    /// A date, stored as `2026-11-21`.
    Date,
    /// A number (double, currency, percent, integer).
    Number,
}

/// Why a query was refused, with Salesforce's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    /// `MALFORMED_QUERY` (syntax) or `INVALID_FIELD` (unknown field, literal of the wrong type).
    pub code: &'static str,
    /// Salesforce's wording of the problem.
    pub message: String,
}

impl std::fmt::Display for SoqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SoqlError {}

/// Parses a SOQL query strictly; anything outside the subset is `MALFORMED_QUERY`, with
/// Salesforce's message naming the unexpected token and its row and column. A date or date-time
/// literal that is no real instant (`2026-02-30`) is `INVALID_FIELD`.
pub fn parse(text: &str) -> Result<Query, SoqlError> {
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(SoqlError {
            code: MALFORMED,
            message: "SOQL statements cannot be longer than 100,000 characters.".to_owned(),
        });
    }
    let tokens = lex(text)?;
    Parser {
        text,
        tokens,
        pos: 0,
        depth: 0,
    }
    .query()
}

/// Salesforce's limit on a query's length.
pub const MAX_QUERY_CHARS: usize = 100_000;

/// How deep NOT and parentheses may nest: a bound on the parser's (and matcher's) recursion.
const MAX_NESTING: usize = 100;

impl Query {
    /// Resolves every field name (SELECT, WHERE, ORDER BY) against the object's schema, rewriting
    /// each to its canonical api name. `schema(name)` is called with the name as written and gives
    /// (canonical name, type) or None; it must match names case-insensitively, as Salesforce does.
    ///
    /// An unknown field, or a relationship path such as `Owner.Email`, is `INVALID_FIELD` in
    /// Salesforce's words; so is a literal of the wrong type for its field (a quoted string
    /// compared with a boolean, number, date or date-time field, an unquoted value compared with a
    /// text field, a date compared with a date-time field).
    pub fn resolve(
        &mut self,
        schema: &dyn Fn(&str) -> Option<(String, SoqlType)>,
    ) -> Result<(), SoqlError> {
        let entity = self.from.clone();
        let lookup = |name: &str| lookup(&entity, name, schema);
        if let Select::Fields(fields) = &mut self.select {
            for field in fields.iter_mut() {
                *field = lookup(field)?.0;
            }
        }
        if let Some(filter) = &mut self.filter {
            filter.resolve(&lookup)?;
        }
        self.order_types.clear();
        for order in &mut self.order_by {
            let (name, kind) = lookup(&order.field)?;
            order.field = name;
            self.order_types.push(Some(kind));
        }
        Ok(())
    }

    /// True when the record (api name -> JSON value) passes the WHERE clause.
    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        self.filter.as_ref().is_none_or(|c| c.matches(record))
    }

    /// ORDER BY's order between two records (Equal when there is no ORDER BY).
    pub fn compare(&self, a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
        for (i, order) in self.order_by.iter().enumerate() {
            let kind = self.order_types.get(i).copied().flatten();
            let left = field_value(a, &order.field, kind);
            let right = field_value(b, &order.field, kind);
            let nulls = if order.nulls_last {
                Ordering::Greater
            } else {
                Ordering::Less
            };
            let ordering = match (left, right) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => nulls,
                (Some(_), None) => nulls.reverse(),
                (Some(x), Some(y)) if order.descending => compare_values(x, y, kind).reverse(),
                (Some(x), Some(y)) => compare_values(x, y, kind),
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    /// Filter, sort (stable), offset and limit over records, in that order.
    pub fn run<'a>(
        &self,
        records: impl IntoIterator<Item = &'a Map<String, Value>>,
    ) -> Vec<&'a Map<String, Value>> {
        let mut found: Vec<_> = records.into_iter().filter(|r| self.matches(r)).collect();
        if !self.order_by.is_empty() {
            found.sort_by(|a, b| self.compare(a, b));
        }
        let offset = self.offset.unwrap_or(0).min(found.len());
        found.drain(..offset);
        if let Some(limit) = self.limit {
            found.truncate(limit);
        }
        found
    }
}

const MALFORMED: &str = "MALFORMED_QUERY";
const INVALID_FIELD: &str = "INVALID_FIELD";

/// Finds a field in the schema, or says why not in Salesforce's words.
fn lookup(
    entity: &str,
    name: &str,
    schema: &dyn Fn(&str) -> Option<(String, SoqlType)>,
) -> Result<(String, SoqlType), SoqlError> {
    if let Some((relationship, _)) = name.split_once('.') {
        return Err(SoqlError {
            code: INVALID_FIELD,
            message: format!(
                "Didn't understand relationship '{relationship}' in field path. If you are \
                 attempting to use a custom relationship, be sure to append the '__r' after the \
                 custom relationship name. Please reference your WSDL or the describe call for \
                 the appropriate names."
            ),
        });
    }
    schema(name).ok_or_else(|| SoqlError {
        code: INVALID_FIELD,
        message: format!(
            "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom \
             field, be sure to append the '__c' after the custom field name. Please reference \
             your WSDL or the describe call for the appropriate names."
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Matching

/// Finds a field's api name and type, or says why not.
type FieldLookup<'a> = dyn Fn(&str) -> Result<(String, SoqlType), SoqlError> + 'a;

impl Condition {
    fn resolve(&mut self, lookup: &FieldLookup<'_>) -> Result<(), SoqlError> {
        match self {
            Condition::And(all) | Condition::Or(all) => {
                all.iter_mut().try_for_each(|c| c.resolve(lookup))
            }
            Condition::Not(inner) => inner.resolve(lookup),
            Condition::Compare(comparison) => comparison.resolve(lookup),
        }
    }

    fn matches(&self, record: &Map<String, Value>) -> bool {
        match self {
            Condition::And(all) => all.iter().all(|c| c.matches(record)),
            Condition::Or(any) => any.iter().any(|c| c.matches(record)),
            Condition::Not(inner) => !inner.matches(record),
            Condition::Compare(comparison) => comparison.matches(record),
        }
    }
}

/// A literal ready to compare with a record's value.
#[derive(Debug, Clone, PartialEq)]
enum Prepared {
    Null,
    Bool(bool),
    Number(f64),
    /// Case-folded text.
    Text(String),
    /// An id, exact.
    Id(String),
    /// Milliseconds since the epoch.
    DateTime(i64),
    Date(NaiveDate),
}

/// IN / NOT IN over many strings, looked up rather than scanned.
#[derive(Debug, Clone, PartialEq)]
enum ValueSet {
    /// Case-folded texts.
    Text(HashSet<String>),
    /// Exact ids, and the 15-character ones apart (they match an 18-character id's prefix).
    Id {
        full: HashSet<String>,
        short: HashSet<String>,
    },
}

/// Beyond this many values, IN looks values up in a set.
const SET_THRESHOLD: usize = 8;

/// One element of a compiled LIKE pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LikePart {
    /// `%`: any run of characters, the empty one too.
    Any,
    /// `_`: exactly one character.
    One,
    /// A character, case-folded.
    Char(char),
}

impl Comparison {
    fn new(field: String, operator: Operator, values: Vec<Literal>) -> Self {
        let mut comparison = Comparison {
            field,
            operator,
            values,
            kind: None,
            prepared: Vec::new(),
            set: None,
            like: None,
        };
        comparison.prepare();
        comparison
    }

    /// Checks the literals against the field's type, and prepares them for that type.
    fn resolve(&mut self, lookup: &FieldLookup<'_>) -> Result<(), SoqlError> {
        let (name, kind) = lookup(&self.field)?;
        self.field = name;
        for value in &self.values {
            check_type(&self.field, kind, value)?;
        }
        self.kind = Some(kind);
        self.prepare();
        Ok(())
    }

    /// Fills `prepared` and `set` from `values` and `kind`.
    fn prepare(&mut self) {
        let kind = self.kind;
        self.prepared = self.values.iter().map(|v| prepare(v, kind)).collect();
        self.set = None;
        let all_text = |p: &Prepared| matches!(p, Prepared::Text(_));
        let all_id = |p: &Prepared| matches!(p, Prepared::Id(_));
        if matches!(self.operator, Operator::In | Operator::NotIn)
            && self.prepared.len() > SET_THRESHOLD
        {
            if self.prepared.iter().all(all_text) {
                let texts = self.prepared.iter().filter_map(|p| match p {
                    Prepared::Text(t) => Some(t.clone()),
                    _ => None,
                });
                self.set = Some(ValueSet::Text(texts.collect()));
            } else if self.prepared.iter().all(all_id) {
                let (mut full, mut short) = (HashSet::new(), HashSet::new());
                for p in &self.prepared {
                    if let Prepared::Id(id) = p {
                        if id.len() == 15 {
                            &mut short
                        } else {
                            &mut full
                        }
                        .insert(id.clone());
                    }
                }
                self.set = Some(ValueSet::Id { full, short });
            }
        }
    }

    fn matches(&self, record: &Map<String, Value>) -> bool {
        let value = field_value(record, &self.field, self.kind);
        match self.operator {
            Operator::Eq => self.equals(value, &self.prepared[0]),
            Operator::Ne => !self.equals(value, &self.prepared[0]),
            Operator::In => self.is_in(value),
            Operator::NotIn => !self.is_in(value),
            Operator::Like => match (value, &self.like) {
                (Some(Value::String(s)), Some(pattern)) => like_matches(pattern, s),
                _ => false,
            },
            Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge => {
                let Some(ordering) = value.and_then(|v| compare_literal(v, &self.prepared[0]))
                else {
                    return false;
                };
                match self.operator {
                    Operator::Lt => ordering.is_lt(),
                    Operator::Le => ordering.is_le(),
                    Operator::Gt => ordering.is_gt(),
                    _ => ordering.is_ge(),
                }
            }
        }
    }

    fn is_in(&self, value: Option<&Value>) -> bool {
        match (&self.set, value) {
            (Some(ValueSet::Text(set)), Some(Value::String(s))) => set.contains(&fold(s)),
            (Some(ValueSet::Id { full, short }), Some(Value::String(s))) => {
                full.contains(s.as_str()) || s.get(..15).is_some_and(|p| short.contains(p))
            }
            (Some(_), _) => false,
            (None, _) => self.prepared.iter().any(|p| self.equals(value, p)),
        }
    }

    fn equals(&self, value: Option<&Value>, literal: &Prepared) -> bool {
        match (value, literal) {
            (None, Prepared::Null) => true,
            (None, _) | (_, Prepared::Null) => false,
            (Some(Value::String(s)), Prepared::Id(id)) if id.len() == 15 => {
                s.get(..15) == Some(id.as_str())
            }
            (Some(v), literal) => compare_literal(v, literal) == Some(Ordering::Equal),
        }
    }
}

/// A record's value for a field: None when absent, null or empty (Salesforce keeps no empty
/// strings); a boolean field without a value is false.
fn field_value<'r>(
    record: &'r Map<String, Value>,
    field: &str,
    kind: Option<SoqlType>,
) -> Option<&'r Value> {
    static FALSE: Value = Value::Bool(false);
    match record.get(field) {
        None | Some(Value::Null) if kind == Some(SoqlType::Boolean) => Some(&FALSE),
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(value) => Some(value),
    }
}

/// A record's (non-null) value against a literal; None when they cannot be compared.
fn compare_literal(value: &Value, literal: &Prepared) -> Option<Ordering> {
    match (value, literal) {
        (Value::Bool(b), Prepared::Bool(l)) => Some(b.cmp(l)),
        (Value::Number(n), Prepared::Number(l)) => n.as_f64()?.partial_cmp(l),
        (Value::String(s), Prepared::Text(l)) => Some(compare_folded(s, l)),
        (Value::String(s), Prepared::Id(l)) => Some(s.as_str().cmp(l.as_str())),
        (Value::String(s), Prepared::DateTime(l)) => Some(parse_datetime_ms(s)?.cmp(l)),
        (Value::String(s), Prepared::Date(l)) => Some(parse_date(s.get(..10)?)?.cmp(l)),
        _ => None,
    }
}

/// Two records' (non-null) values for one ORDER BY key.
fn compare_values(a: &Value, b: &Value, kind: Option<SoqlType>) -> Ordering {
    match (a, b) {
        (Value::String(x), Value::String(y)) => match kind {
            Some(SoqlType::Id | SoqlType::Date) => x.cmp(y),
            Some(SoqlType::Text) => compare_case_insensitive(x, y),
            Some(SoqlType::DateTime) | None => match (parse_datetime_ms(x), parse_datetime_ms(y)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => compare_case_insensitive(x, y),
            },
            Some(SoqlType::Boolean | SoqlType::Number) => x.cmp(y),
        },
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => json_rank(a).cmp(&json_rank(b)),
    }
}

/// An arbitrary but fixed order between JSON kinds, for values of mixed kinds.
fn json_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn prepare(literal: &Literal, kind: Option<SoqlType>) -> Prepared {
    match (literal, kind) {
        // Salesforce: `= null` on a boolean field is `= false`.
        (Literal::Null, Some(SoqlType::Boolean)) => Prepared::Bool(false),
        (Literal::Null, _) => Prepared::Null,
        (Literal::Text(t), _) if t.is_empty() => Prepared::Null,
        (Literal::Text(t), Some(SoqlType::Id)) => Prepared::Id(t.clone()),
        (Literal::Text(t), _) => Prepared::Text(fold(t)),
        (Literal::Boolean(b), _) => Prepared::Bool(*b),
        (Literal::Number(n), _) => Prepared::Number(*n),
        (Literal::DateTime(ms), _) => Prepared::DateTime(*ms),
        (Literal::Date(d), _) => Prepared::Date(*d),
    }
}

/// Refuses a literal of the wrong type for its field, as Salesforce words it.
fn check_type(field: &str, kind: SoqlType, literal: &Literal) -> Result<(), SoqlError> {
    let fits = matches!(
        (kind, literal),
        (_, Literal::Null)
            | (SoqlType::Id | SoqlType::Text, Literal::Text(_))
            | (SoqlType::Boolean, Literal::Boolean(_))
            | (SoqlType::Number, Literal::Number(_))
            | (SoqlType::DateTime, Literal::DateTime(_))
            | (SoqlType::Date, Literal::Date(_))
    );
    if fits {
        return Ok(());
    }
    let (name, quoted) = match kind {
        SoqlType::Id => ("id", true),
        SoqlType::Text => ("string", true),
        SoqlType::Boolean => ("boolean", false),
        SoqlType::Number => ("double", false),
        SoqlType::DateTime => ("dateTime", false),
        SoqlType::Date => ("date", false),
    };
    let should = if quoted { "should" } else { "should not" };
    Err(SoqlError {
        code: INVALID_FIELD,
        message: format!(
            "value of filter criterion for field '{field}' must be of type {name} and {should} be \
             enclosed in quotes"
        ),
    })
}

/// Lower-cases text the one way every comparison uses.
fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// Compares text with already-folded text, ignoring case, without allocating.
fn compare_folded(text: &str, folded: &str) -> Ordering {
    if text.is_ascii() && folded.is_ascii() {
        let text = text.bytes().map(|b| b.to_ascii_lowercase());
        text.cmp(folded.bytes())
    } else {
        text.chars()
            .flat_map(char::to_lowercase)
            .cmp(folded.chars())
    }
}

/// Compares two texts ignoring case, without allocating; equal-ignoring-case texts are Equal.
fn compare_case_insensitive(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        let a = a.bytes().map(|c| c.to_ascii_lowercase());
        a.cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        let a = a.chars().flat_map(char::to_lowercase);
        a.cmp(b.chars().flat_map(char::to_lowercase))
    }
}

/// Compiles a LIKE pattern from a string literal's raw (still escaped) text: `%` and `_` are
/// wildcards, `\%` and `\_` the characters themselves.
fn compile_like(raw: &str) -> Vec<LikePart> {
    let mut parts = Vec::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                // Consecutive `%` mean the same as one; keeping one keeps matching linear.
                if parts.last() != Some(&LikePart::Any) {
                    parts.push(LikePart::Any);
                }
            }
            '_' => parts.push(LikePart::One),
            '\\' => {
                // The lexer has checked the escape already.
                let decoded = chars.next().and_then(unescape).unwrap_or('\\');
                parts.extend(decoded.to_lowercase().map(LikePart::Char));
            }
            c => parts.extend(c.to_lowercase().map(LikePart::Char)),
        }
    }
    parts
}

/// Whether a text matches a compiled LIKE pattern, ignoring case.
fn like_matches(pattern: &[LikePart], text: &str) -> bool {
    if text.is_ascii() {
        // The common case reads the bytes in place rather than collecting folded characters.
        let bytes = text.as_bytes();
        wildcard_matches(pattern, bytes.len(), |i| {
            char::from(bytes[i].to_ascii_lowercase())
        })
    } else {
        let folded: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
        wildcard_matches(pattern, folded.len(), |i| folded[i])
    }
}

/// Matches a text of `len` characters, read through `at`, against a LIKE pattern; a `%` is
/// retried one character further on a mismatch, so matching takes at most `len * pattern` steps.
fn wildcard_matches(pattern: &[LikePart], len: usize, at: impl Fn(usize) -> char) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `%` was, and how much text it has swallowed so far.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < len {
        match pattern.get(p) {
            Some(LikePart::Any) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(LikePart::One) => (p, t) = (p + 1, t + 1),
            Some(LikePart::Char(c)) if *c == at(t) => (p, t) = (p + 1, t + 1),
            _ => match backtrack {
                Some((star, swallowed)) => {
                    backtrack = Some((star, swallowed + 1));
                    (p, t) = (star + 1, swallowed + 1);
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|part| *part == LikePart::Any)
}

// ---------------------------------------------------------------------------------------------
// Dates and times

/// Reads `2026-11-21T10:00:00[.fff][Z|+hh:mm|+hhmm]` as milliseconds since the Unix epoch.
/// Fractions beyond milliseconds are dropped. Cheap enough to run per record and comparison.
pub(crate) fn parse_datetime_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date = parse_date(text.get(..10)?)?;
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let count = i - start;
        if count == 0 {
            return None;
        }
        for _ in count..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [_, _, b':', _, _] => (digits(rest, 0, 2)?, digits(rest, 3, 2)?),
                [_, _, _, _] => (digits(rest, 0, 2)?, digits(rest, 2, 2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = date
        .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?)
        .num_days();
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Reads `2026-11-21`, a real calendar date only.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )
}

/// `len` ASCII digits at `start`, as a number.
fn digits(b: &[u8], start: usize, len: usize) -> Option<i64> {
    b.get(start..start + len)?.iter().try_fold(0i64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

// ---------------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A keyword or a name (names may hold dots: relationship paths, refused when resolved).
    Word,
    /// A quoted string; the token's text keeps the quotes and escapes.
    Str,
    /// An unsigned or negative number.
    Number,
    /// Something starting like `2026-`: a date or date-time.
    DateLike,
    LParen,
    RParen,
    Comma,
    /// `= != <> < <= > >=`
    Op(Operator),
    /// A character or run that SOQL (or this subset) has no use for; the parser reports it when
    /// it gets there, so that the first problem in reading order is the one named.
    Unknown,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offsets into the query text.
    start: usize,
    end: usize,
}

/// Salesforce's syntax error: the query line, a caret under the position, the row and column.
fn malformed(text: &str, offset: usize, problem: &str) -> SoqlError {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let row = before.matches('\n').count() + 1;
    let column = text[line_start..offset].chars().count() + 1;
    SoqlError {
        code: MALFORMED,
        message: format!(
            "\n{}\n{}^\nERROR at Row:{row}:Column:{column}\n{problem}",
            &text[line_start..line_end],
            " ".repeat(column - 1)
        ),
    }
}

fn unexpected(text: &str, offset: usize, token: &str) -> SoqlError {
    malformed(text, offset, &format!("unexpected token: '{token}'"))
}

/// What a backslash escape in a string literal stands for; `\%` and `\_` stay themselves (they
/// matter to LIKE only).
fn unescape(c: char) -> Option<char> {
    Some(match c {
        'n' | 'N' => '\n',
        'r' | 'R' => '\r',
        't' | 'T' => '\t',
        'b' | 'B' => '\u{8}',
        'f' | 'F' => '\u{c}',
        '"' | '\'' | '\\' | '%' | '_' => c,
        _ => return None,
    })
}

fn lex(text: &str) -> Result<Vec<Token>, SoqlError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        let next_is_digit = text[start + c.len_utf8()..].starts_with(|d: char| d.is_ascii_digit());
        let tok = match c {
            c if c.is_whitespace() => {
                chars.next();
                continue;
            }
            '(' | ')' | ',' => {
                chars.next();
                match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    _ => Tok::Comma,
                }
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let second = chars.peek().map(|&(_, c)| c);
                let (operator, two) = match (c, second) {
                    ('=', _) => (Operator::Eq, false),
                    ('!', Some('=')) | ('<', Some('>')) => (Operator::Ne, true),
                    ('<', Some('=')) => (Operator::Le, true),
                    ('>', Some('=')) => (Operator::Ge, true),
                    ('<', _) => (Operator::Lt, false),
                    ('>', _) => (Operator::Gt, false),
                    _ => {
                        tokens.push(Token {
                            tok: Tok::Unknown,
                            start,
                            end: start + 1,
                        });
                        continue;
                    }
                };
                if two {
                    chars.next();
                }
                Tok::Op(operator)
            }
            '\'' => {
                chars.next();
                lex_string(text, start, &mut chars)?;
                Tok::Str
            }
            c if c.is_ascii_digit() || (c == '-' && next_is_digit) => {
                chars.next();
                while chars.next_if(|&(_, c)| is_literal_char(c)).is_some() {}
                let end = chars.peek().map_or(text.len(), |&(i, _)| i);
                let word = &text[start..end];
                if is_number(word) {
                    Tok::Number
                } else if word.len() > 5 && word.as_bytes()[4] == b'-' {
                    Tok::DateLike
                } else {
                    Tok::Unknown
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                while chars
                    .next_if(|&(_, c)| c.is_alphanumeric() || c == '_' || c == '.')
                    .is_some()
                {}
                Tok::Word
            }
            _ => {
                chars.next();
                Tok::Unknown
            }
        };
        let end = chars.peek().map_or(text.len(), |&(i, _)| i);
        tokens.push(Token { tok, start, end });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        start: text.len(),
        end: text.len(),
    });
    Ok(tokens)
}

/// Reads a string literal's rest after its opening quote, checking its escapes.
fn lex_string(
    text: &str,
    start: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<(), SoqlError> {
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => return Ok(()),
            '\\' => match chars.next() {
                Some((_, e)) if unescape(e).is_some() => {}
                Some((_, e)) => {
                    let end = chars.peek().map_or(text.len(), |&(j, _)| j);
                    let problem = format!(
                        "Invalid string literal '{}'. Illegal character sequence '\\{e}' in \
                         string literal.",
                        &text[start + 1..end]
                    );
                    return Err(malformed(text, i, &problem));
                }
                None => break,
            },
            _ => {}
        }
    }
    Err(malformed(
        text,
        start,
        "unterminated string literal: missing the closing quote",
    ))
}

fn is_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '+' | '-' | '_')
}

fn is_number(word: &str) -> bool {
    let unsigned = word.strip_prefix('-').unwrap_or(word);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && all_digits(fraction)
}

/// Reads a string literal's text (between the quotes) with its escapes decoded.
fn decode_string(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next().and_then(unescape));
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Words that cannot name a field or an object.
const RESERVED: &[&str] = &[
    "AND", "ASC", "BY", "DESC", "EXCLUDES", "FALSE", "FOR", "FROM", "GROUP", "HAVING", "IN",
    "INCLUDES", "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OFFSET", "OR", "ORDER", "SELECT", "TRUE",
    "USING", "WHERE", "WITH",
];

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    pos: usize,
    /// How many NOT and parentheses enclose the current condition.
    depth: usize,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.tok != Tok::Eof {
            self.pos += 1;
        }
        token
    }

    fn token_text(&self, token: &Token) -> &'t str {
        &self.text[token.start..token.end]
    }

    /// The syntax error for the next token.
    fn unexpected(&self) -> SoqlError {
        let token = self.peek();
        let shown = if token.tok == Tok::Eof {
            "<EOF>"
        } else {
            self.token_text(token)
        };
        unexpected(self.text, token.start, shown)
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        let token = self.peek();
        token.tok == Tok::Word && self.token_text(token).eq_ignore_ascii_case(keyword)
    }

    /// Consumes the keyword if it comes next.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.at_keyword(keyword);
        if found {
            self.advance();
        }
        found
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), SoqlError> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect(&mut self, tok: &Tok) -> Result<(), SoqlError> {
        if &self.peek().tok == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// A field or object name: a word that is no reserved keyword.
    fn name(&mut self) -> Result<String, SoqlError> {
        let token = self.peek();
        let text = self.token_text(token);
        if token.tok != Tok::Word || RESERVED.iter().any(|r| r.eq_ignore_ascii_case(text)) {
            return Err(self.unexpected());
        }
        self.advance();
        Ok(text.to_owned())
    }

    fn query(mut self) -> Result<Query, SoqlError> {
        self.expect_keyword("SELECT")?;
        let select = self.select()?;
        self.expect_keyword("FROM")?;
        let from = self.name()?;
        if from.contains('.') {
            return Err(unexpected(
                self.text,
                self.tokens[self.pos - 1].start,
                &from,
            ));
        }
        let filter = if self.eat_keyword("WHERE") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.eat_keyword("ORDER") {
            self.expect_keyword("BY")?;
            order_by.push(self.order()?);
            while self.peek().tok == Tok::Comma {
                self.advance();
                order_by.push(self.order()?);
            }
        }
        let limit = if self.eat_keyword("LIMIT") {
            Some(self.count()?)
        } else {
            None
        };
        let offset = if self.eat_keyword("OFFSET") {
            Some(self.count()?)
        } else {
            None
        };
        self.expect(&Tok::Eof)?;
        Ok(Query {
            select,
            from,
            filter,
            order_by,
            limit,
            offset,
            order_types: Vec::new(),
        })
    }

    fn select(&mut self) -> Result<Select, SoqlError> {
        if self.at_keyword("COUNT") && self.tokens[self.pos + 1].tok == Tok::LParen {
            self.advance();
            self.advance();
            self.expect(&Tok::RParen)?;
            return Ok(Select::Count);
        }
        let mut fields = vec![self.name()?];
        while self.peek().tok == Tok::Comma {
            self.advance();
            fields.push(self.name()?);
        }
        Ok(Select::Fields(fields))
    }

    fn order(&mut self) -> Result<Order, SoqlError> {
        let field = self.name()?;
        let descending = if self.eat_keyword("DESC") {
            true
        } else {
            self.eat_keyword("ASC");
            false
        };
        let nulls_last = if self.eat_keyword("NULLS") {
            if self.eat_keyword("LAST") {
                true
            } else {
                self.expect_keyword("FIRST")?;
                false
            }
        } else {
            descending
        };
        Ok(Order {
            field,
            descending,
            nulls_last,
        })
    }

    /// A non-negative integer, for LIMIT and OFFSET.
    fn count(&mut self) -> Result<usize, SoqlError> {
        let token = self.peek();
        match token.tok {
            Tok::Number => match self.token_text(token).parse() {
                Ok(n) => {
                    self.advance();
                    Ok(n)
                }
                Err(_) => Err(self.unexpected()),
            },
            _ => Err(self.unexpected()),
        }
    }

    /// Conditions joined by AND, or by OR: never both at one level without parentheses.
    fn condition(&mut self) -> Result<Condition, SoqlError> {
        let mut items = vec![self.unary()?];
        let mut joined_by_and = None;
        loop {
            let and = if self.at_keyword("AND") {
                true
            } else if self.at_keyword("OR") {
                false
            } else {
                break;
            };
            if joined_by_and.is_some_and(|previous| previous != and) {
                return Err(self.unexpected());
            }
            joined_by_and = Some(and);
            self.advance();
            items.push(self.unary()?);
        }
        Ok(match joined_by_and {
            None => items.remove(0),
            Some(true) => Condition::And(items),
            Some(false) => Condition::Or(items),
        })
    }

    /// `NOT x`, `( ... )` or a comparison.
    fn unary(&mut self) -> Result<Condition, SoqlError> {
        let nested = self.at_keyword("NOT") || self.peek().tok == Tok::LParen;
        if !nested {
            return self.comparison();
        }
        if self.depth == MAX_NESTING {
            let problem = format!("conditions may not nest deeper than {MAX_NESTING} levels");
            return Err(malformed(self.text, self.peek().start, &problem));
        }
        self.depth += 1;
        let condition = if self.eat_keyword("NOT") {
            Condition::Not(Box::new(self.unary()?))
        } else {
            self.advance();
            let inner = self.condition()?;
            self.expect(&Tok::RParen)?;
            inner
        };
        self.depth -= 1;
        Ok(condition)
    }

    fn comparison(&mut self) -> Result<Condition, SoqlError> {
        let field = self.name()?;
        let operator = match self.peek().tok {
            Tok::Op(operator) => operator,
            Tok::Word if self.at_keyword("LIKE") => Operator::Like,
            Tok::Word if self.at_keyword("IN") => Operator::In,
            Tok::Word if self.at_keyword("NOT") => {
                self.advance();
                if !self.at_keyword("IN") {
                    return Err(self.unexpected());
                }
                Operator::NotIn
            }
            _ => return Err(self.unexpected()),
        };
        self.advance();
        let comparison = match operator {
            Operator::In | Operator::NotIn => {
                self.expect(&Tok::LParen)?;
                let mut values = vec![self.literal(&field)?];
                while self.peek().tok == Tok::Comma {
                    self.advance();
                    values.push(self.literal(&field)?);
                }
                self.expect(&Tok::RParen)?;
                Comparison::new(field, operator, values)
            }
            Operator::Like => {
                let token = self.peek().clone();
                if token.tok != Tok::Str {
                    return Err(self.unexpected());
                }
                let value = self.literal(&field)?;
                let mut comparison = Comparison::new(field, operator, vec![value]);
                let raw = &self.text[token.start + 1..token.end - 1];
                comparison.like = Some(compile_like(raw));
                comparison
            }
            _ => {
                let value = self.literal(&field)?;
                Comparison::new(field, operator, vec![value])
            }
        };
        Ok(Condition::Compare(comparison))
    }

    /// A literal compared with `field` (named in the error for a date that does not exist).
    fn literal(&mut self, field: &str) -> Result<Literal, SoqlError> {
        let token = self.peek().clone();
        let text = self.token_text(&token);
        let literal = match token.tok {
            Tok::Str => Literal::Text(decode_string(&text[1..text.len() - 1])),
            Tok::Number => match text.parse() {
                Ok(n) => Literal::Number(n),
                Err(_) => return Err(self.unexpected()),
            },
            Tok::DateLike => {
                let value = if text.len() == 10 {
                    parse_date(text).map(Literal::Date)
                } else {
                    parse_datetime_ms(text).map(Literal::DateTime)
                };
                value.ok_or_else(|| SoqlError {
                    code: INVALID_FIELD,
                    message: format!(
                        "value of filter criterion for field '{field}' must be a valid date \
                         (2026-11-21) or date-time (2026-11-21T10:00:00Z), not '{text}'"
                    ),
                })?
            }
            Tok::Word if text.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Word if text.eq_ignore_ascii_case("true") => Literal::Boolean(true),
            Tok::Word if text.eq_ignore_ascii_case("false") => Literal::Boolean(false),
            _ => return Err(self.unexpected()),
        };
        self.advance();
        Ok(literal)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Lead's fields, as the sandbox's schema would give them (case-insensitive).
    fn lead_schema(name: &str) -> Option<(String, SoqlType)> {
        use SoqlType::*;
        const FIELDS: &[(&str, SoqlType)] = &[
            ("Id", Id),
            ("OwnerId", Id),
            ("FirstName", Text),
            ("LastName", Text),
            ("Company", Text),
            ("Email", Text),
            ("Status", Text),
            ("Plezi_URL__c", Text),
            ("IsConverted", Boolean),
            ("Sync_To_Plezi__c", Boolean),
            ("CreatedDate", DateTime),
            ("SystemModstamp", DateTime),
            ("ConvertedDate", Date),
            ("NumberOfEmployees", Number),
        ];
        FIELDS
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(field, kind)| ((*field).to_owned(), *kind))
    }

    fn query(text: &str) -> Query {
        let mut query = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        query
            .resolve(&lead_schema)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        query
    }

    fn record(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Whether the record passes `WHERE {condition}` on Lead.
    fn passes(condition: &str, value: Value) -> bool {
        query(&format!("SELECT Id FROM Lead WHERE {condition}")).matches(&record(value))
    }

    fn ids(query: &Query, records: &[Map<String, Value>]) -> Vec<String> {
        query
            .run(records)
            .iter()
            .map(|r| r["Id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn parse_error(text: &str) -> SoqlError {
        match parse(text) {
            Ok(query) => panic!("{text} parsed: {query:?}"),
            Err(error) => error,
        }
    }

    fn resolve_error(text: &str) -> SoqlError {
        let mut query = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        match query.resolve(&lead_schema) {
            Ok(()) => panic!("{text} resolved: {query:?}"),
            Err(error) => error,
        }
    }

    /// Asserts a MALFORMED_QUERY naming the token.
    fn assert_unexpected(text: &str, token: &str) {
        let error = parse_error(text);
        assert_eq!(error.code, "MALFORMED_QUERY", "{text}");
        assert!(
            error
                .message
                .ends_with(&format!("unexpected token: '{token}'")),
            "{text}: {}",
            error.message
        );
    }

    fn leads() -> Vec<Map<String, Value>> {
        [
            json!({"Id": "00Q000000000001AAA", "LastName": "bravo", "NumberOfEmployees": 10,
                   "CreatedDate": "2026-11-21T10:00:00.000+0000", "Email": "b@x.io"}),
            json!({"Id": "00Q000000000002AAA", "LastName": "Alpha", "NumberOfEmployees": 5,
                   "CreatedDate": "2026-11-21T09:00:00Z", "Email": null}),
            json!({"Id": "00Q000000000003AAA", "LastName": "charlie",
                   "CreatedDate": "2026-11-21T10:30:00.000+01:00", "Email": "c@x.io"}),
            json!({"Id": "00Q000000000004AAA", "LastName": "Alpha", "NumberOfEmployees": 7,
                   "CreatedDate": "2026-11-22T00:00:00.000+0000"}),
        ]
        .into_iter()
        .map(record)
        .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Parsing

    #[test]
    fn soql_parses_every_clause() {
        let query = parse(
            "SELECT Id, Email FROM Lead WHERE Email != null ORDER BY LastName DESC, Id \
             LIMIT 10 OFFSET 20",
        )
        .unwrap();
        assert_eq!(
            query.select,
            Select::Fields(vec!["Id".into(), "Email".into()])
        );
        assert_eq!(query.from, "Lead");
        let Some(Condition::Compare(comparison)) = &query.filter else {
            panic!("{:?}", query.filter);
        };
        assert_eq!(comparison.field, "Email");
        assert_eq!(comparison.operator, Operator::Ne);
        assert_eq!(comparison.values, vec![Literal::Null]);
        assert_eq!(
            query.order_by,
            vec![
                Order {
                    field: "LastName".into(),
                    descending: true,
                    nulls_last: true
                },
                Order {
                    field: "Id".into(),
                    descending: false,
                    nulls_last: false
                },
            ]
        );
        assert_eq!((query.limit, query.offset), (Some(10), Some(20)));
    }

    #[test]
    fn soql_keywords_are_case_insensitive() {
        let query = parse(
            "select Id from Lead where IsConverted = TRUE and not Email like 'a%' order by Id \
             asc nulls last limit 1 offset 2",
        )
        .unwrap();
        assert_eq!(query.limit, Some(1));
        assert_eq!(query.offset, Some(2));
        assert!(query.order_by[0].nulls_last);
        assert!(matches!(query.filter, Some(Condition::And(ref all)) if all.len() == 2));
    }

    #[test]
    fn soql_select_count() {
        let query = parse("SELECT COUNT() FROM Lead WHERE IsConverted = false").unwrap();
        assert_eq!(query.select, Select::Count);
        assert_eq!(
            parse("select count ( ) from Contact").unwrap().select,
            Select::Count
        );
    }

    #[test]
    fn soql_minimal_query_has_no_clauses() {
        let query = parse("SELECT Id FROM Contact").unwrap();
        assert_eq!(query.filter, None);
        assert!(query.order_by.is_empty());
        assert_eq!((query.limit, query.offset), (None, None));
    }

    #[test]
    fn soql_whitespace_and_newlines_are_free() {
        let query = parse("  SELECT\n  Id ,Email\n FROM\tLead\nWHERE Email='a'\n").unwrap();
        assert_eq!(
            query.select,
            Select::Fields(vec!["Id".into(), "Email".into()])
        );
    }

    #[test]
    fn soql_order_by_nulls_defaults_and_explicit() {
        let query = parse(
            "SELECT Id FROM Lead ORDER BY A, B ASC, C DESC, D ASC NULLS LAST, E DESC NULLS FIRST",
        )
        .unwrap();
        let nulls: Vec<_> = query
            .order_by
            .iter()
            .map(|o| (o.descending, o.nulls_last))
            .collect();
        assert_eq!(
            nulls,
            vec![
                (false, false),
                (false, false),
                (true, true),
                (false, true),
                (true, false)
            ]
        );
    }

    #[test]
    fn soql_literals_of_every_kind() {
        let query = parse(
            "SELECT Id FROM Lead WHERE A IN ('x', 42, -1.5, true, FALSE, null, 2026-11-21, \
             2026-11-21T10:00:00Z)",
        )
        .unwrap();
        let Some(Condition::Compare(comparison)) = query.filter else {
            panic!()
        };
        assert_eq!(
            comparison.values,
            vec![
                Literal::Text("x".into()),
                Literal::Number(42.0),
                Literal::Number(-1.5),
                Literal::Boolean(true),
                Literal::Boolean(false),
                Literal::Null,
                Literal::Date(NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()),
                Literal::DateTime(1_795_255_200_000),
            ]
        );
    }

    #[test]
    fn soql_string_escapes_are_decoded() {
        let query =
            parse(r#"SELECT Id FROM Lead WHERE A = 'O\'Brien \\ \n\t\r\b\f\" \N'"#).unwrap();
        let Some(Condition::Compare(comparison)) = query.filter else {
            panic!()
        };
        assert_eq!(
            comparison.values,
            vec![Literal::Text("O'Brien \\ \n\t\r\u{8}\u{c}\" \n".into())]
        );
    }

    #[test]
    fn soql_escaped_quote_matches_the_record() {
        assert!(passes(
            r"LastName = 'o\'brien'",
            json!({"LastName": "O'Brien"})
        ));
        assert!(passes(r"LastName = 'a\\b'", json!({"LastName": r"a\b"})));
    }

    #[test]
    fn soql_invalid_escape_is_malformed() {
        let error = parse_error(r"SELECT Id FROM Lead WHERE A = 'a\qb'");
        assert_eq!(error.code, "MALFORMED_QUERY");
        assert!(
            error.message.ends_with(
                r"Invalid string literal 'a\q'. Illegal character sequence '\q' in string literal."
            ),
            "{}",
            error.message
        );
    }

    #[test]
    fn soql_unterminated_string_is_malformed() {
        let error = parse_error("SELECT Id FROM Lead WHERE A = 'abc");
        assert_eq!(error.code, "MALFORMED_QUERY");
        assert!(error.message.contains("Column:31"), "{}", error.message);
    }

    // -----------------------------------------------------------------------------------------
    // Syntax errors

    #[test]
    fn soql_malformed_message_shows_the_line_the_caret_and_the_position() {
        let text = "SELECT Id FROM Lead WHERE A = 1 AND B = 2 OR C = 3";
        let error = parse_error(text);
        let column = text.find("OR").unwrap() + 1;
        assert_eq!(error.code, "MALFORMED_QUERY");
        assert_eq!(
            error.message,
            format!(
                "\n{text}\n{}^\nERROR at Row:1:Column:{column}\nunexpected token: 'OR'",
                " ".repeat(column - 1)
            )
        );
    }

    #[test]
    fn soql_malformed_position_counts_rows() {
        let error = parse_error("SELECT Id\nFROM Lead\nWHERE Email = 'a' GROUP BY Email");
        assert!(
            error
                .message
                .starts_with("\nWHERE Email = 'a' GROUP BY Email\n                  ^\n"),
            "{}",
            error.message
        );
        assert!(
            error
                .message
                .ends_with("ERROR at Row:3:Column:19\nunexpected token: 'GROUP'"),
            "{}",
            error.message
        );
    }

    #[test]
    fn soql_mixing_and_with_or_needs_parentheses() {
        assert_unexpected("SELECT Id FROM Lead WHERE A = 1 AND B = 2 OR C = 3", "OR");
        assert_unexpected("SELECT Id FROM Lead WHERE A = 1 OR B = 2 AND C = 3", "AND");
        assert_unexpected(
            "SELECT Id FROM Lead WHERE (A = 1 OR B = 2 AND C = 3)",
            "AND",
        );
        assert!(parse("SELECT Id FROM Lead WHERE (A = 1 AND B = 2) OR C = 3").is_ok());
        assert!(parse("SELECT Id FROM Lead WHERE A = 1 AND (B = 2 OR C = 3)").is_ok());
        assert!(parse("SELECT Id FROM Lead WHERE A = 1 OR B = 2 OR C = 3").is_ok());
        assert!(parse("SELECT Id FROM Lead WHERE NOT A = 1 AND B = 2").is_ok());
    }

    #[test]
    fn soql_unsupported_or_broken_syntax_is_malformed() {
        let cases = [
            ("", "<EOF>"),
            ("SELECT", "<EOF>"),
            ("SELECT Id", "<EOF>"),
            ("SELECT Id FROM", "<EOF>"),
            ("Id FROM Lead", "Id"),
            ("SELECT FROM Lead", "FROM"),
            ("SELECT Id, FROM Lead", "FROM"),
            ("SELECT Id Email FROM Lead", "Email"),
            ("SELECT FIELDS(ALL) FROM Lead", "("),
            ("SELECT COUNT(Id) FROM Lead", "Id"),
            ("SELECT Id FROM Lead Contact", "Contact"),
            ("SELECT Id FROM Lead WHERE", "<EOF>"),
            ("SELECT Id FROM Lead WHERE Email", "<EOF>"),
            ("SELECT Id FROM Lead WHERE Email =", "<EOF>"),
            ("SELECT Id FROM Lead WHERE Email == 'a'", "="),
            ("SELECT Id FROM Lead WHERE Email = 'a' AND", "<EOF>"),
            ("SELECT Id FROM Lead WHERE (Email = 'a'", "<EOF>"),
            ("SELECT Id FROM Lead WHERE Email = 'a')", ")"),
            ("SELECT Id FROM Lead WHERE Email = foo", "foo"),
            ("SELECT Id FROM Lead WHERE Email IN ()", ")"),
            ("SELECT Id FROM Lead WHERE Email IN 'a'", "'a'"),
            ("SELECT Id FROM Lead WHERE Email IN ('a',)", ")"),
            (
                "SELECT Id FROM Lead WHERE Id IN (SELECT Id FROM Lead)",
                "SELECT",
            ),
            ("SELECT Id FROM Lead WHERE Email NOT LIKE 'a'", "LIKE"),
            ("SELECT Id FROM Lead WHERE Email LIKE 5", "5"),
            ("SELECT Id FROM Lead WHERE Email ! 'a'", "!"),
            ("SELECT Id FROM Lead WHERE Email = :email", ":"),
            ("SELECT Id FROM Lead WHERE CreatedDate = TODAY", "TODAY"),
            (
                "SELECT Id FROM Lead WHERE CreatedDate > LAST_N_DAYS:3",
                "LAST_N_DAYS",
            ),
            ("SELECT Id FROM Lead WHERE A = 12abc", "12abc"),
            ("SELECT Id FROM Lead GROUP BY Email", "GROUP"),
            ("SELECT Id FROM Lead ORDER Id", "Id"),
            ("SELECT Id FROM Lead ORDER BY", "<EOF>"),
            ("SELECT Id FROM Lead ORDER BY Id NULLS", "<EOF>"),
            ("SELECT Id FROM Lead ORDER BY Id NULLS MIDDLE", "MIDDLE"),
            ("SELECT Id FROM Lead LIMIT", "<EOF>"),
            ("SELECT Id FROM Lead LIMIT -1", "-1"),
            ("SELECT Id FROM Lead LIMIT 1.5", "1.5"),
            ("SELECT Id FROM Lead LIMIT x", "x"),
            ("SELECT Id FROM Lead LIMIT 5 ORDER BY Id", "ORDER"),
            ("SELECT Id FROM Lead OFFSET 5 LIMIT 1", "LIMIT"),
            ("SELECT Id FROM Lead LIMIT 5;", ";"),
            ("SELECT Id FROM Lead FOR UPDATE", "FOR"),
            ("SELECT Id FROM Owner.Lead", "Owner.Lead"),
        ];
        for (text, token) in cases {
            assert_unexpected(text, token);
        }
    }

    #[test]
    fn soql_nesting_and_length_are_bounded() {
        let deep = |n: usize| {
            format!(
                "SELECT Id FROM Lead WHERE {}A = 1{}",
                "(".repeat(n),
                ")".repeat(n)
            )
        };
        assert!(parse(&deep(MAX_NESTING)).is_ok());
        let error = parse_error(&deep(MAX_NESTING + 1));
        assert_eq!(error.code, "MALFORMED_QUERY");
        assert!(
            error.message.ends_with("deeper than 100 levels"),
            "{}",
            error.message
        );
        let not = format!(
            "SELECT Id FROM Lead WHERE {}A = 1",
            "NOT ".repeat(100_000 / 4 - 10)
        );
        assert_eq!(parse_error(&not).code, "MALFORMED_QUERY");

        let long = format!(
            "SELECT Id FROM Lead WHERE Email = '{}'",
            "a".repeat(MAX_QUERY_CHARS)
        );
        let error = parse_error(&long);
        assert_eq!(
            (error.code, error.message.as_str()),
            (
                "MALFORMED_QUERY",
                "SOQL statements cannot be longer than 100,000 characters."
            )
        );
    }

    // -----------------------------------------------------------------------------------------
    // Resolving

    #[test]
    fn soql_resolve_rewrites_every_field_to_its_api_name() {
        let query = query(
            "SELECT id, EMAIL, plezi_url__c FROM Lead WHERE isconverted = false ORDER BY \
             lastname",
        );
        assert_eq!(
            query.select,
            Select::Fields(vec!["Id".into(), "Email".into(), "Plezi_URL__c".into()])
        );
        let Some(Condition::Compare(comparison)) = &query.filter else {
            panic!()
        };
        assert_eq!(comparison.field, "IsConverted");
        assert_eq!(query.order_by[0].field, "LastName");
    }

    #[test]
    fn soql_unknown_field_is_invalid_field_in_salesforce_words() {
        for text in [
            "SELECT Id, Foo FROM Lead",
            "SELECT Id FROM Lead WHERE Foo = 'a'",
            "SELECT Id FROM Lead WHERE Email = 'a' AND (NOT Foo = 'a')",
            "SELECT Id FROM Lead ORDER BY Foo",
        ] {
            let error = resolve_error(text);
            assert_eq!(error.code, "INVALID_FIELD", "{text}");
            assert_eq!(
                error.message,
                "No such column 'Foo' on entity 'Lead'. If you are attempting to use a custom \
                 field, be sure to append the '__c' after the custom field name. Please \
                 reference your WSDL or the describe call for the appropriate names.",
                "{text}"
            );
        }
    }

    #[test]
    fn soql_relationship_paths_are_invalid_field() {
        let error = resolve_error("SELECT Id, Owner.Email FROM Lead");
        assert_eq!(error.code, "INVALID_FIELD");
        assert!(
            error
                .message
                .starts_with("Didn't understand relationship 'Owner' in field path."),
            "{}",
            error.message
        );
    }

    #[test]
    fn soql_literal_of_the_wrong_type_is_invalid_field() {
        let cases = [
            (
                "IsConverted = 'true'",
                "value of filter criterion for field 'IsConverted' must be of type boolean and \
                 should not be enclosed in quotes",
            ),
            (
                "createddate > '2026-11-21T10:00:00Z'",
                "value of filter criterion for field 'CreatedDate' must be of type dateTime and \
                 should not be enclosed in quotes",
            ),
            (
                "CreatedDate > 2026-11-21",
                "value of filter criterion for field 'CreatedDate' must be of type dateTime and \
                 should not be enclosed in quotes",
            ),
            (
                "ConvertedDate = 2026-11-21T10:00:00Z",
                "value of filter criterion for field 'ConvertedDate' must be of type date and \
                 should not be enclosed in quotes",
            ),
            (
                "NumberOfEmployees IN (1, '2')",
                "value of filter criterion for field 'NumberOfEmployees' must be of type double \
                 and should not be enclosed in quotes",
            ),
            (
                "Email = 5",
                "value of filter criterion for field 'Email' must be of type string and should \
                 be enclosed in quotes",
            ),
            (
                "LastName = true",
                "value of filter criterion for field 'LastName' must be of type string and \
                 should be enclosed in quotes",
            ),
            (
                "Id = 5",
                "value of filter criterion for field 'Id' must be of type id and should be \
                 enclosed in quotes",
            ),
            (
                "Sync_To_Plezi__c LIKE 'tr%'",
                "value of filter criterion for field 'Sync_To_Plezi__c' must be of type boolean \
                 and should not be enclosed in quotes",
            ),
        ];
        for (condition, message) in cases {
            let error = resolve_error(&format!("SELECT Id FROM Lead WHERE {condition}"));
            assert_eq!(
                (error.code, error.message.as_str()),
                ("INVALID_FIELD", message)
            );
        }
    }

    #[test]
    fn soql_null_fits_every_type() {
        for field in ["Id", "Email", "IsConverted", "CreatedDate", "ConvertedDate"] {
            query(&format!("SELECT Id FROM Lead WHERE {field} = null"));
        }
    }

    #[test]
    fn soql_impossible_dates_are_invalid_field() {
        for literal in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T10:00:00",
            "2026-11-21T10:00Z",
            "2026-11-21T10:00:00+1:00",
            "2026-02-30",
            "2026-1-1",
        ] {
            let error = parse_error(&format!(
                "SELECT Id FROM Lead WHERE CreatedDate > {literal}"
            ));
            assert_eq!(error.code, "INVALID_FIELD", "{literal}");
            assert!(
                error.message.starts_with(
                    "value of filter criterion for field 'CreatedDate' must be a valid date"
                ),
                "{}",
                error.message
            );
            assert!(error.message.contains(literal), "{}", error.message);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Operators

    #[test]
    fn soql_equals_ignores_case_for_text() {
        assert!(passes("Email = 'ANN@X.IO'", json!({"Email": "ann@x.io"})));
        assert!(passes("LastName = 'émile'", json!({"LastName": "ÉMILE"})));
        assert!(!passes("Email = 'ann@x.io'", json!({"Email": "anne@x.io"})));
    }

    #[test]
    fn soql_not_equals_both_spellings() {
        for op in ["!=", "<>"] {
            assert!(passes(
                &format!("Email {op} 'a@x.io'"),
                json!({"Email": "b@x.io"})
            ));
            assert!(!passes(
                &format!("Email {op} 'A@X.IO'"),
                json!({"Email": "a@x.io"})
            ));
        }
    }

    #[test]
    fn soql_null_tests_absence_and_presence() {
        for absent in [json!({}), json!({"Email": null}), json!({"Email": ""})] {
            assert!(passes("Email = null", absent.clone()), "{absent}");
            assert!(!passes("Email != null", absent.clone()), "{absent}");
            assert!(passes("Email = ''", absent.clone()), "{absent}");
        }
        assert!(!passes("Email = null", json!({"Email": "a@x.io"})));
        assert!(passes("Email != null", json!({"Email": "a@x.io"})));
    }

    #[test]
    fn soql_a_null_field_fails_every_comparison_but_inequality() {
        let empty = || json!({});
        assert!(!passes("Email = 'a'", empty()));
        assert!(!passes("Email < 'a'", empty()));
        assert!(!passes("Email >= 'a'", empty()));
        assert!(!passes("Email LIKE '%'", empty()));
        assert!(!passes("Email IN ('a', 'b')", empty()));
        assert!(!passes("NumberOfEmployees > 0", empty()));
        assert!(!passes("CreatedDate < 2030-01-01T00:00:00Z", empty()));
        // SOQL knows no SQL-style unknown: null is simply not 'a'.
        assert!(passes("Email != 'a'", empty()));
        assert!(passes("Email NOT IN ('a', 'b')", empty()));
        assert!(passes("Email IN ('a', null)", empty()));
        assert!(!passes("Email NOT IN ('a', null)", empty()));
    }

    #[test]
    fn soql_ordering_operators_on_numbers() {
        let r = || json!({"NumberOfEmployees": 10});
        assert!(passes("NumberOfEmployees < 11", r()));
        assert!(!passes("NumberOfEmployees < 10", r()));
        assert!(passes("NumberOfEmployees <= 10", r()));
        assert!(passes("NumberOfEmployees > 9.5", r()));
        assert!(!passes("NumberOfEmployees > 10", r()));
        assert!(passes("NumberOfEmployees >= 10", r()));
        assert!(passes("NumberOfEmployees = 10.0", r()));
        assert!(passes("NumberOfEmployees > -1", r()));
    }

    #[test]
    fn soql_ordering_operators_on_text_ignore_case() {
        let r = || json!({"LastName": "Martin"});
        assert!(passes("LastName > 'leroy'", r()));
        assert!(passes("LastName < 'NOËL'", r()));
        assert!(passes("LastName >= 'MARTIN'", r()));
        assert!(passes("LastName <= 'martin'", r()));
        assert!(!passes("LastName < 'martin'", r()));
    }

    #[test]
    fn soql_ids_compare_exactly_and_by_their_15_character_form() {
        let r = || json!({"Id": "00Q5g00000AbCdEFGH"});
        assert!(passes("Id = '00Q5g00000AbCdEFGH'", r()));
        assert!(passes("Id = '00Q5g00000AbCdE'", r()));
        assert!(!passes("Id = '00Q5g00000ABCDE'", r()));
        assert!(passes("Id > '00Q5g00000AbCdEFGA'", r()));
        assert!(passes("Id IN ('00Q5g00000AbCdE')", r()));
        assert!(passes("OwnerId = null", r()));
    }

    #[test]
    fn soql_in_and_not_in() {
        let r = || json!({"Status": "Working", "NumberOfEmployees": 3});
        assert!(passes("Status IN ('Open', 'WORKING')", r()));
        assert!(!passes("Status IN ('Open', 'Closed')", r()));
        assert!(!passes("Status NOT IN ('Open', 'working')", r()));
        assert!(passes("Status NOT IN ('Open')", r()));
        assert!(passes("NumberOfEmployees IN (1, 2, 3)", r()));
        assert!(passes("NOT Status IN ('Open')", r()));
    }

    #[test]
    fn soql_in_over_many_values_uses_a_set_with_the_same_answers() {
        let emails: Vec<String> = (0..50).map(|i| format!("'user{i}@X.io'")).collect();
        let list = emails.join(", ");
        let q = query(&format!("SELECT Id FROM Lead WHERE Email IN ({list})"));
        let Some(Condition::Compare(comparison)) = &q.filter else {
            panic!()
        };
        assert!(comparison.set.is_some());
        assert!(q.matches(&record(json!({"Email": "USER7@x.io"}))));
        assert!(!q.matches(&record(json!({"Email": "user50@x.io"}))));
        assert!(!q.matches(&record(json!({}))));
        let not_in = query(&format!("SELECT Id FROM Lead WHERE Email NOT IN ({list})"));
        assert!(!not_in.matches(&record(json!({"Email": "user49@x.io"}))));
        assert!(not_in.matches(&record(json!({"Email": "user50@x.io"}))));

        let ids: Vec<String> = (0..20).map(|i| format!("'00Q0000000000{i:02}'")).collect();
        let q = query(&format!(
            "SELECT Id FROM Lead WHERE Id IN ({})",
            ids.join(", ")
        ));
        assert!(q.matches(&record(json!({"Id": "00Q000000000007AAA"}))));
        assert!(q.matches(&record(json!({"Id": "00Q000000000019"}))));
        assert!(!q.matches(&record(json!({"Id": "00Q000000000020AAA"}))));
    }

    #[test]
    fn soql_like_wildcards_ignore_case() {
        let r = || json!({"Email": "Ann.Lee@Example.com"});
        assert!(passes("Email LIKE '%@example.com'", r()));
        assert!(passes("Email LIKE 'ann%'", r()));
        assert!(passes("Email LIKE '%LEE%'", r()));
        assert!(passes("Email LIKE 'a_n.lee@example.co_'", r()));
        assert!(passes("Email LIKE '%'", r()));
        assert!(passes("Email LIKE '%%.%'", r()));
        assert!(!passes("Email LIKE 'lee%'", r()));
        assert!(!passes("Email LIKE '_'", r()));
        assert!(!passes("Email LIKE 'ann.lee@example.co'", r()));
        assert!(passes("Email LIKE 'ann.lee@example.com'", r()));
        assert!(passes("NOT Email LIKE 'bob%'", r()));
        assert!(passes(
            "LastName LIKE 'é_IL%'",
            json!({"LastName": "Émile"})
        ));
        assert!(!passes("LastName LIKE 'e%'", json!({"LastName": "Émile"})));
    }

    #[test]
    fn soql_like_backtracks_over_repeated_text() {
        assert!(passes("LastName LIKE '%aab'", json!({"LastName": "aaab"})));
        assert!(passes(
            "LastName LIKE '%a_c%'",
            json!({"LastName": "xabxabcx"})
        ));
        assert!(!passes(
            "LastName LIKE '%a_c'",
            json!({"LastName": "xabxabcx"})
        ));
    }

    #[test]
    fn soql_like_escaped_wildcards_are_literal() {
        assert!(passes(
            r"LastName LIKE '100\%'",
            json!({"LastName": "100%"})
        ));
        assert!(!passes(
            r"LastName LIKE '100\%'",
            json!({"LastName": "1000"})
        ));
        assert!(passes(
            r"LastName LIKE 'a\_b%'",
            json!({"LastName": "a_bc"})
        ));
        assert!(!passes(
            r"LastName LIKE 'a\_b%'",
            json!({"LastName": "axbc"})
        ));
        assert!(passes(
            r"LastName LIKE 'o\'b%'",
            json!({"LastName": "O'Brien"})
        ));
    }

    #[test]
    fn soql_booleans_and_missing_booleans() {
        assert!(passes("IsConverted = true", json!({"IsConverted": true})));
        assert!(!passes("IsConverted = true", json!({"IsConverted": false})));
        assert!(passes("IsConverted = false", json!({})));
        assert!(passes("IsConverted != true", json!({"IsConverted": null})));
        // Salesforce: `= null` on a boolean is `= false`, `!= null` is `= true`.
        assert!(passes("IsConverted = null", json!({"IsConverted": false})));
        assert!(!passes("IsConverted = null", json!({"IsConverted": true})));
        assert!(passes("IsConverted != null", json!({"IsConverted": true})));
    }

    #[test]
    fn soql_datetimes_compare_as_instants_in_every_written_form() {
        let at_ten = [
            "2026-11-21T10:00:00.000+0000",
            "2026-11-21T10:00:00Z",
            "2026-11-21T10:00:00.000Z",
            "2026-11-21T10:00:00+00:00",
            "2026-11-21T11:00:00.000+0100",
            "2026-11-21T05:30:00-04:30",
        ];
        for stored in at_ten {
            let r = || json!({"CreatedDate": stored});
            assert!(
                passes("CreatedDate = 2026-11-21T10:00:00Z", r()),
                "{stored}"
            );
            assert!(
                passes("CreatedDate = 2026-11-21T10:00:00.000Z", r()),
                "{stored}"
            );
            assert!(
                passes("CreatedDate = 2026-11-21T11:00:00+01:00", r()),
                "{stored}"
            );
            assert!(
                passes("CreatedDate = 2026-11-21T09:00:00-01:00", r()),
                "{stored}"
            );
            assert!(
                passes("CreatedDate > 2026-11-21T09:59:59.999Z", r()),
                "{stored}"
            );
            assert!(
                passes("CreatedDate < 2026-11-21T10:00:00.001Z", r()),
                "{stored}"
            );
            assert!(
                !passes("CreatedDate > 2026-11-21T10:00:00Z", r()),
                "{stored}"
            );
            assert!(
                passes("CreatedDate >= 2026-11-21T10:00:00Z", r()),
                "{stored}"
            );
            assert!(
                passes("CreatedDate <= 2026-11-21T10:00:00Z", r()),
                "{stored}"
            );
        }
    }

    #[test]
    fn soql_datetimes_keep_milliseconds() {
        let r = || json!({"SystemModstamp": "2026-11-21T10:00:00.123+0000"});
        assert!(passes("SystemModstamp = 2026-11-21T10:00:00.123Z", r()));
        assert!(passes("SystemModstamp > 2026-11-21T10:00:00.122Z", r()));
        assert!(!passes("SystemModstamp > 2026-11-21T10:00:00.123Z", r()));
        // Digits beyond the millisecond are dropped, as Salesforce keeps none.
        assert!(!passes("SystemModstamp < 2026-11-21T10:00:00.1235Z", r()));
        assert!(passes("SystemModstamp IN (2026-11-21T10:00:00.123Z)", r()));
    }

    #[test]
    fn soql_an_unreadable_stored_datetime_matches_nothing() {
        let r = || json!({"CreatedDate": "yesterday"});
        assert!(!passes("CreatedDate > 2000-01-01T00:00:00Z", r()));
        assert!(!passes("CreatedDate < 2100-01-01T00:00:00Z", r()));
    }

    #[test]
    fn soql_dates_compare_as_days() {
        let r = || json!({"ConvertedDate": "2026-11-21"});
        assert!(passes("ConvertedDate = 2026-11-21", r()));
        assert!(passes("ConvertedDate > 2026-11-20", r()));
        assert!(passes("ConvertedDate < 2026-12-01", r()));
        assert!(!passes("ConvertedDate < 2026-11-21", r()));
    }

    #[test]
    fn soql_datetime_parser_reads_the_epoch_and_refuses_garbage() {
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00.000+0000"), Some(0));
        assert_eq!(parse_datetime_ms("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(
            parse_datetime_ms("2026-11-21T10:00:00.5Z"),
            Some(1_795_255_200_500)
        );
        for bad in [
            "",
            "2026-11-21",
            "2026-11-21T10:00:00",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00:00ZZ",
            "2026-11-21 10:00:00Z",
            "2026-11-21T10:00:00+01",
            "2026-11-21T10:00:00+01:60",
            "2026-11-21T10:60:00Z",
        ] {
            assert_eq!(parse_datetime_ms(bad), None, "{bad}");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Logic

    #[test]
    fn soql_and_or_not_with_parentheses() {
        let r = || json!({"FirstName": "Ann", "LastName": "Lee", "IsConverted": false});
        assert!(passes("FirstName = 'ann' AND LastName = 'lee'", r()));
        assert!(!passes("FirstName = 'ann' AND LastName = 'x'", r()));
        assert!(passes("FirstName = 'x' OR LastName = 'lee'", r()));
        assert!(!passes("FirstName = 'x' OR LastName = 'y'", r()));
        assert!(passes("NOT FirstName = 'x'", r()));
        assert!(!passes("NOT (FirstName = 'x' OR LastName = 'lee')", r()));
        assert!(passes(
            "(FirstName = 'x' OR LastName = 'lee') AND IsConverted = false",
            r()
        ));
        assert!(!passes(
            "FirstName = 'x' AND (LastName = 'lee' OR IsConverted = false)",
            r()
        ));
        assert!(passes(
            "(FirstName = 'x' AND LastName = 'lee') OR IsConverted = false",
            r()
        ));
        assert!(passes("((FirstName = 'ann'))", r()));
        assert!(passes("NOT NOT FirstName = 'ann'", r()));
    }

    #[test]
    fn soql_not_binds_to_the_next_condition_only() {
        let query = parse("SELECT Id FROM Lead WHERE NOT A = 1 AND B = 2").unwrap();
        let Some(Condition::And(all)) = query.filter else {
            panic!()
        };
        assert!(matches!(all[0], Condition::Not(_)));
        assert!(matches!(all[1], Condition::Compare(_)));
    }

    #[test]
    fn soql_no_where_matches_everything() {
        assert!(query("SELECT Id FROM Lead").matches(&record(json!({}))));
    }

    #[test]
    fn soql_unresolved_queries_match_by_the_literal_kind() {
        let query = parse(
            "SELECT Id FROM Lead WHERE Email = 'A@X.IO' AND CreatedDate > 2026-01-01T00:00:00Z \
             AND Count__c >= 3 AND Flag__c = true",
        )
        .unwrap();
        let r = json!({"Email": "a@x.io", "CreatedDate": "2026-11-21T10:00:00.000+0000",
                       "Count__c": 3, "Flag__c": true});
        assert!(query.matches(&record(r)));
    }

    // -----------------------------------------------------------------------------------------
    // Ordering and paging

    #[test]
    fn soql_order_by_text_ignores_case_and_is_stable() {
        let query = query("SELECT Id FROM Lead ORDER BY LastName");
        assert_eq!(ids(&query, &leads()), ["2", "4", "1", "3"].map(full_id));
    }

    fn full_id(n: &str) -> String {
        format!("00Q00000000000{n}AAA")
    }

    #[test]
    fn soql_order_by_several_keys() {
        let query = query("SELECT Id FROM Lead ORDER BY LastName DESC, NumberOfEmployees DESC");
        assert_eq!(ids(&query, &leads()), ["3", "1", "4", "2"].map(full_id));
        let query = query_asc_then_desc();
        assert_eq!(ids(&query, &leads()), ["4", "2", "1", "3"].map(full_id));
    }

    fn query_asc_then_desc() -> Query {
        query("SELECT Id FROM Lead ORDER BY LastName ASC, NumberOfEmployees DESC")
    }

    #[test]
    fn soql_order_by_nulls_first_when_ascending_last_when_descending() {
        let ascending = query("SELECT Id FROM Lead ORDER BY NumberOfEmployees");
        assert_eq!(ids(&ascending, &leads()), ["3", "2", "4", "1"].map(full_id));
        let descending = query("SELECT Id FROM Lead ORDER BY NumberOfEmployees DESC");
        assert_eq!(
            ids(&descending, &leads()),
            ["1", "4", "2", "3"].map(full_id)
        );
        let last = query("SELECT Id FROM Lead ORDER BY NumberOfEmployees ASC NULLS LAST");
        assert_eq!(ids(&last, &leads()), ["2", "4", "1", "3"].map(full_id));
        let first = query("SELECT Id FROM Lead ORDER BY NumberOfEmployees DESC NULLS FIRST");
        assert_eq!(ids(&first, &leads()), ["3", "1", "4", "2"].map(full_id));
        let email = query("SELECT Id FROM Lead ORDER BY Email, Id DESC");
        assert_eq!(ids(&email, &leads()), ["4", "2", "1", "3"].map(full_id));
    }

    #[test]
    fn soql_order_by_datetime_compares_instants() {
        let query = query("SELECT Id FROM Lead ORDER BY CreatedDate");
        // 3 is 09:30 UTC (10:30+01:00), before 1 at 10:00 UTC.
        assert_eq!(ids(&query, &leads()), ["2", "3", "1", "4"].map(full_id));
    }

    #[test]
    fn soql_order_by_booleans_puts_false_first() {
        let records: Vec<_> = [
            json!({"Id": "a", "IsConverted": true}),
            json!({"Id": "b"}),
            json!({"Id": "c", "IsConverted": false}),
        ]
        .into_iter()
        .map(record)
        .collect();
        let query = query("SELECT Id FROM Lead ORDER BY IsConverted, Id");
        assert_eq!(ids(&query, &records), ["b", "c", "a"]);
    }

    #[test]
    fn soql_compare_without_order_by_is_equal() {
        let leads = leads();
        let query = query("SELECT Id FROM Lead");
        assert_eq!(query.compare(&leads[0], &leads[1]), Ordering::Equal);
        assert_eq!(ids(&query, &leads), ["1", "2", "3", "4"].map(full_id));
    }

    #[test]
    fn soql_run_filters_sorts_then_offsets_and_limits() {
        let leads = leads();
        let base = "SELECT Id FROM Lead WHERE LastName != 'charlie' ORDER BY Id DESC";
        assert_eq!(ids(&query(base), &leads), ["4", "2", "1"].map(full_id));
        assert_eq!(
            ids(&query(&format!("{base} LIMIT 2")), &leads),
            ["4", "2"].map(full_id)
        );
        assert_eq!(
            ids(&query(&format!("{base} OFFSET 1")), &leads),
            ["2", "1"].map(full_id)
        );
        assert_eq!(
            ids(&query(&format!("{base} LIMIT 1 OFFSET 1")), &leads),
            ["2"].map(full_id)
        );
        assert!(ids(&query(&format!("{base} OFFSET 3")), &leads).is_empty());
        assert!(ids(&query(&format!("{base} OFFSET 99")), &leads).is_empty());
        assert!(ids(&query(&format!("{base} LIMIT 0")), &leads).is_empty());
    }

    #[test]
    fn soql_count_runs_like_any_query() {
        let query = query("SELECT COUNT() FROM Lead WHERE Email != null");
        assert_eq!(query.run(&leads()).len(), 2);
    }

    #[test]
    fn soql_runs_over_many_records() {
        let records: Vec<_> = (0..100_000)
            .map(|i| {
                record(json!({
                    "Id": format!("00Q{i:015}"),
                    "Email": format!("user{i}@example.com"),
                    "SystemModstamp": format!("2026-11-21T10:{:02}:{:02}.000+0000", i / 60 % 60, i % 60),
                    "IsConverted": i % 2 == 0,
                }))
            })
            .collect();
        let query = query(
            "SELECT Id FROM Lead WHERE IsConverted = false AND Email LIKE '%9@example.com' \
             ORDER BY SystemModstamp DESC, Id LIMIT 3",
        );
        let found = query.run(&records);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0]["SystemModstamp"], "2026-11-21T10:59:59.000+0000");
    }
}
