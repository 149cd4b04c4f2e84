//! `POST /coql`: the subset of the CRM Object Query Language a sync needs.
//!
//! ```text
//! select col (, col)* from Module where cond
//!     [order by col [asc|desc] (, col [asc|desc])*]
//!     [limit [offset ,] count | limit count offset offset]
//! cond := operand [(and | or) operand]        more than two need parentheses
//! operand := "(" cond ")" | col op value | col is [not] null
//!          | col [not] in (value, ...) | col [not] like 'text' | col between v and v
//! ```
//!
//! Keywords ignore case; values are `'quoted'` (`''` escapes a quote), numbers, or
//! bare words. The `where` tree reuses the search criteria's [`Expr`].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde_json::{Value, json};

use super::auth::{Need, begin, scope_allows, scope_mismatch};
use super::criteria::Expr;
use super::org::{Module, OrgData, Record};
use super::{Reject, data_reply, error, json_reply};
use crate::AppState;

/// Most records one call returns.
const MAX_LIMIT: usize = 2000;
/// Most records reachable through `limit` and `offset`.
const MAX_REACH: usize = 100_000;
const DEFAULT_LIMIT: usize = 200;
const MAX_COLUMNS: usize = 50;
const MAX_CRITERIA: usize = 25;
const MAX_ORDER_BY: usize = 10;

pub(crate) async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&state, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, Reject> {
    let call = begin(state, headers, Need::Coql).await?;
    let parsed = select_query(body).and_then(|text| parse(&text).map_err(Reject::from));
    // The module's read scope is checked before any credit is spent, as for other calls.
    if let Ok(q) = &parsed
        && let Some(m) = Module::from_api(&q.module)
        && !scope_allows(&call.scope, Need::Module(m, "read"))
    {
        return Err(scope_mismatch());
    }
    // Zoho charges by the page size asked for: 1 credit up to 200, 2 up to 1,000, 3 beyond.
    let cost = match &parsed {
        Ok(q) if q.limit > 1000 => 3,
        Ok(q) if q.limit > 200 => 2,
        _ => 1,
    };
    call.charge(cost).await?;
    let q = parsed?;
    let m = Module::from_api(&q.module).ok_or_else(|| {
        invalid_query(
            "invalid query formed",
            json!({ "module": q.module, "reason": "invalid module given" }),
        )
    })?;
    let data = call.org.data.lock();
    check(&q, &data, m)?;
    Ok(answer(&q, &data, m))
}

/// The body's `select_query`.
fn select_query(body: &[u8]) -> Result<String, Reject> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        error(
            400,
            "INVALID_DATA",
            &format!("the body is not valid JSON: {e}"),
            json!({}),
        )
    })?;
    match value.get("select_query") {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(error(
            400,
            "MANDATORY_NOT_FOUND",
            "required field not found",
            json!({ "api_name": "select_query" }),
        )),
        Some(_) => Err(error(
            400,
            "INVALID_DATA",
            "select_query must be a string",
            json!({ "api_name": "select_query", "expected_data_type": "string" }),
        )),
    }
}

fn invalid_query(message: &str, details: Value) -> Reject {
    error(400, "INVALID_QUERY", message, details)
}

fn limit_exceeded(details: Value) -> Reject {
    error(
        400,
        "LIMIT_EXCEEDED",
        "the query exceeds a limit of the query API",
        details,
    )
}

// ---------------------------------------------------------------------------
// Syntax
// ---------------------------------------------------------------------------

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub columns: Vec<String>,
    pub module: String,
    pub filter: Expr<Cmp>,
    /// Column and ascending.
    pub order: Vec<(String, bool)>,
    pub offset: usize,
    pub limit: usize,
}

/// One comparison of the `where` clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cmp {
    pub column: String,
    pub op: CmpOp,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Like,
    NotLike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
    Between,
}

impl CmpOp {
    fn text(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
            CmpOp::Like => "like",
            CmpOp::NotLike => "not like",
            CmpOp::In => "in",
            CmpOp::NotIn => "not in",
            CmpOp::IsNull => "is null",
            CmpOp::IsNotNull => "is not null",
            CmpOp::Between => "between",
        }
    }
}

/// Why a query does not parse: Zoho's `SYNTAX_ERROR`, with either the place
/// (`line`, `column`, `near`) or the clause at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyntaxError {
    Near { column: usize, near: String },
    Clause(&'static str),
}

impl From<SyntaxError> for Reject {
    fn from(e: SyntaxError) -> Reject {
        match e {
            SyntaxError::Near { column, near } => error(
                400,
                "SYNTAX_ERROR",
                "error occurred while parsing the query",
                json!({ "line": 1, "column": column, "near": near }),
            ),
            SyntaxError::Clause(clause) => error(
                400,
                "SYNTAX_ERROR",
                &format!("the {clause} clause is missing or malformed"),
                json!({ "clause": clause }),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Sym(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based character column.
    column: usize,
}

const SYMBOLS: [&str; 11] = ["<=", ">=", "!=", "<>", "=", "<", ">", "(", ")", ",", "*"];

fn tokenize(text: &str) -> Result<Vec<Token>, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let (s, next) = quoted(&chars, i).ok_or_else(|| SyntaxError::Near {
                column,
                near: chars[i..].iter().collect(),
            })?;
            out.push(Token {
                tok: Tok::Str(s),
                column,
            });
            i = next;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let end = scan(&chars, i + 1, |c| c.is_ascii_digit() || c == '.');
            out.push(Token {
                tok: Tok::Num(chars[i..end].iter().collect()),
                column,
            });
            i = end;
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let end = scan(&chars, i, |c| {
                c.is_alphanumeric() || matches!(c, '_' | '$' | '.')
            });
            out.push(Token {
                tok: Tok::Word(chars[i..end].iter().collect()),
                column,
            });
            i = end;
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let sym = SYMBOLS
                .iter()
                .find(|s| rest.starts_with(**s))
                .ok_or_else(|| SyntaxError::Near {
                    column,
                    near: c.to_string(),
                })?;
            out.push(Token {
                tok: Tok::Sym(sym),
                column,
            });
            i += sym.len();
        }
    }
    Ok(out)
}

fn scan(chars: &[char], from: usize, keep: impl Fn(char) -> bool) -> usize {
    (from..chars.len())
        .find(|&j| !keep(chars[j]))
        .unwrap_or(chars.len())
}

/// A quoted string from `start` (the quote): its text and the index after it. A doubled
/// quote stands for one.
fn quoted(chars: &[char], start: usize) -> Option<(String, usize)> {
    let q = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == q {
            if chars.get(i + 1) == Some(&q) {
                s.push(q);
                i += 2;
                continue;
            }
            return Some((s, i + 1));
        }
        s.push(chars[i]);
        i += 1;
    }
    None
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Where the text ends, for errors at the end.
    end: usize,
}

/// Parses a COQL select query.
pub(crate) fn parse(text: &str) -> Result<Query, SyntaxError> {
    let mut p = Parser {
        toks: tokenize(text)?,
        pos: 0,
        end: text.chars().count() + 1,
    };
    p.keyword("select")?;
    let columns = p.list(Parser::column)?;
    p.keyword("from")?;
    let module = p.column()?;
    if !p.at_keyword("where") {
        return Err(SyntaxError::Clause("where"));
    }
    p.pos += 1;
    let filter = p.condition()?;
    let order = if p.at_keyword("order") {
        p.pos += 1;
        p.keyword("by")?;
        p.list(Parser::order_item)?
    } else {
        Vec::new()
    };
    let (offset, limit) = p.limit()?;
    if let Some(t) = p.toks.get(p.pos) {
        return Err(p.near(t.clone()));
    }
    Ok(Query {
        columns,
        module,
        filter,
        order,
        offset,
        limit,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn near(&self, t: Token) -> SyntaxError {
        let near = match t.tok {
            Tok::Word(s) | Tok::Num(s) => s,
            Tok::Str(s) => format!("'{s}'"),
            Tok::Sym(s) => s.to_owned(),
        };
        SyntaxError::Near {
            column: t.column,
            near,
        }
    }

    /// The error for the current token (or the end of the text).
    fn unexpected(&self) -> SyntaxError {
        match self.toks.get(self.pos) {
            Some(t) => self.near(t.clone()),
            None => SyntaxError::Near {
                column: self.end,
                near: String::new(),
            },
        }
    }

    fn at_keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn keyword(&mut self, k: &str) -> Result<(), SyntaxError> {
        if !self.at_keyword(k) {
            return Err(self.unexpected());
        }
        self.pos += 1;
        Ok(())
    }

    fn symbol(&mut self, s: &str) -> Result<(), SyntaxError> {
        if !self.at_symbol(s) {
            return Err(self.unexpected());
        }
        self.pos += 1;
        Ok(())
    }

    fn at_symbol(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }

    fn list<T>(
        &mut self,
        item: fn(&mut Parser) -> Result<T, SyntaxError>,
    ) -> Result<Vec<T>, SyntaxError> {
        let mut out = vec![item(self)?];
        while self.at_symbol(",") {
            self.pos += 1;
            out.push(item(self)?);
        }
        Ok(out)
    }

    /// A column or module name: a word that is not a keyword, or a quoted name.
    fn column(&mut self) -> Result<String, SyntaxError> {
        let name = match self.peek() {
            Some(Tok::Word(w)) if !is_keyword(w) => w.clone(),
            Some(Tok::Str(s)) => s.clone(),
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(name)
    }

    fn value(&mut self) -> Result<String, SyntaxError> {
        let v = match self.peek() {
            Some(Tok::Str(s) | Tok::Num(s)) => s.clone(),
            Some(Tok::Word(w)) if !is_keyword(w) || is_literal(w) => w.clone(),
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(v)
    }

    /// At most two operands joined at one level: `A and B and C` needs parentheses.
    fn condition(&mut self) -> Result<Expr<Cmp>, SyntaxError> {
        let left = self.operand()?;
        let join = if self.at_keyword("and") {
            Expr::And
        } else if self.at_keyword("or") {
            Expr::Or
        } else {
            return Ok(left);
        };
        self.pos += 1;
        let right = self.operand()?;
        if self.at_keyword("and") || self.at_keyword("or") {
            return Err(self.unexpected());
        }
        Ok(join(Box::new(left), Box::new(right)))
    }

    fn operand(&mut self) -> Result<Expr<Cmp>, SyntaxError> {
        if self.at_symbol("(") {
            self.pos += 1;
            let inner = self.condition()?;
            self.symbol(")")?;
            return Ok(inner);
        }
        let column = self.column()?;
        let (op, values) = self.comparison()?;
        Ok(Expr::Cond(Cmp { column, op, values }))
    }

    fn comparison(&mut self) -> Result<(CmpOp, Vec<String>), SyntaxError> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.unexpected());
        };
        self.pos += 1;
        let op = match tok {
            Tok::Sym("=") => CmpOp::Eq,
            Tok::Sym("!=" | "<>") => CmpOp::Ne,
            Tok::Sym("<") => CmpOp::Lt,
            Tok::Sym(">") => CmpOp::Gt,
            Tok::Sym("<=") => CmpOp::Le,
            Tok::Sym(">=") => CmpOp::Ge,
            Tok::Word(w) => return self.word_comparison(&w.to_ascii_lowercase()),
            _ => {
                self.pos -= 1;
                return Err(self.unexpected());
            }
        };
        Ok((op, vec![self.value()?]))
    }

    fn word_comparison(&mut self, word: &str) -> Result<(CmpOp, Vec<String>), SyntaxError> {
        let negated = word == "not";
        let word = if negated {
            let next = match self.peek() {
                Some(Tok::Word(w)) => w.to_ascii_lowercase(),
                _ => return Err(self.unexpected()),
            };
            self.pos += 1;
            next
        } else {
            word.to_owned()
        };
        match (word.as_str(), negated) {
            ("is", false) => {
                let not = self.at_keyword("not");
                if not {
                    self.pos += 1;
                }
                self.keyword("null")?;
                Ok((
                    if not { CmpOp::IsNotNull } else { CmpOp::IsNull },
                    Vec::new(),
                ))
            }
            ("in", _) => {
                self.symbol("(")?;
                let values = self.list(Parser::value)?;
                self.symbol(")")?;
                Ok((if negated { CmpOp::NotIn } else { CmpOp::In }, values))
            }
            ("like", _) => {
                let v = self.value()?;
                Ok((if negated { CmpOp::NotLike } else { CmpOp::Like }, vec![v]))
            }
            ("between", false) => {
                let low = self.value()?;
                self.keyword("and")?;
                Ok((CmpOp::Between, vec![low, self.value()?]))
            }
            _ => {
                self.pos -= 1;
                Err(self.unexpected())
            }
        }
    }

    fn order_item(&mut self) -> Result<(String, bool), SyntaxError> {
        let column = self.column()?;
        let asc = if self.at_keyword("desc") {
            self.pos += 1;
            false
        } else {
            if self.at_keyword("asc") {
                self.pos += 1;
            }
            true
        };
        Ok((column, asc))
    }

    fn number(&mut self) -> Result<usize, SyntaxError> {
        match self.peek() {
            Some(Tok::Num(n)) => {
                let n = n.parse().map_err(|_| self.unexpected())?;
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.unexpected()),
        }
    }

    /// `limit count`, `limit offset, count` or `limit count offset n` (offset 0 and
    /// limit 200 when absent).
    fn limit(&mut self) -> Result<(usize, usize), SyntaxError> {
        if !self.at_keyword("limit") {
            return Ok((0, DEFAULT_LIMIT));
        }
        self.pos += 1;
        let first = self.number()?;
        if self.at_symbol(",") {
            self.pos += 1;
            return Ok((first, self.number()?));
        }
        if self.at_keyword("offset") {
            self.pos += 1;
            return Ok((self.number()?, first));
        }
        Ok((0, first))
    }
}

const KEYWORDS: [&str; 17] = [
    "select", "from", "where", "and", "or", "not", "is", "null", "in", "like", "between", "order",
    "by", "asc", "desc", "limit", "offset",
];

fn is_keyword(w: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
}

/// Words that are values although keywords (`null` only appears after `is`).
fn is_literal(w: &str) -> bool {
    w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false")
}

// ---------------------------------------------------------------------------
// Meaning
// ---------------------------------------------------------------------------

/// How a field's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Date,
    DateTime,
    Boolean,
    /// `id` and lookups, compared by id.
    Id,
    /// Multi-line text, which COQL refuses in criteria.
    Multiline,
}

fn kind_of(data: &OrgData, m: Module, column: &str) -> Option<Kind> {
    if column == "id" {
        return Some(Kind::Id);
    }
    let f = data.field(m, column)?;
    Some(match f.data_type.as_str() {
        "integer" | "bigint" | "double" | "currency" | "percent" => Kind::Number,
        "date" => Kind::Date,
        "datetime" => Kind::DateTime,
        "boolean" => Kind::Boolean,
        "lookup" | "ownerlookup" => Kind::Id,
        "textarea" => Kind::Multiline,
        _ => Kind::Text,
    })
}

fn op_allowed(kind: Kind, op: CmpOp) -> bool {
    use CmpOp::*;
    match kind {
        Kind::Text => matches!(
            op,
            Eq | Ne | Like | NotLike | In | NotIn | IsNull | IsNotNull
        ),
        Kind::Number | Kind::Date | Kind::DateTime => !matches!(op, Like | NotLike),
        Kind::Id => matches!(op, Eq | Ne | In | NotIn | IsNull | IsNotNull),
        Kind::Boolean => matches!(op, Eq | Ne),
        Kind::Multiline => false,
    }
}

fn value_fits(kind: Kind, v: &str) -> bool {
    match kind {
        Kind::Number => v.parse::<f64>().is_ok(),
        Kind::Date => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok(),
        Kind::DateTime => DateTime::parse_from_rfc3339(v).is_ok(),
        Kind::Boolean => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
        Kind::Id => v.parse::<u64>().is_ok(),
        Kind::Text | Kind::Multiline => true,
    }
}

fn data_type_name(data: &OrgData, m: Module, column: &str) -> String {
    data.field(m, column)
        .map_or_else(|| "bigint".to_owned(), |f| f.data_type.clone())
}

fn unknown_column(column: &str) -> Reject {
    invalid_query(
        "column given seems to be invalid",
        json!({ "column_name": column }),
    )
}

/// Checks the query against the module's fields and the documented limits.
fn check(q: &Query, data: &OrgData, m: Module) -> Result<(), Reject> {
    if q.columns.len() > MAX_COLUMNS {
        return Err(limit_exceeded(
            json!({ "clause": "select", "limit": MAX_COLUMNS }),
        ));
    }
    if let Some(c) = q.columns.iter().find(|c| kind_of(data, m, c).is_none()) {
        return Err(unknown_column(c));
    }
    let conditions = q.filter.conditions();
    if conditions.len() > MAX_CRITERIA {
        return Err(limit_exceeded(
            json!({ "clause": "where", "limit": MAX_CRITERIA }),
        ));
    }
    for c in conditions {
        check_condition(c, data, m)?;
    }
    check_order(q, data, m)?;
    if q.limit == 0 || q.limit > MAX_LIMIT {
        return Err(limit_exceeded(json!({ "by": "limit", "limit": MAX_LIMIT })));
    }
    if q.offset + q.limit > MAX_REACH {
        return Err(limit_exceeded(
            json!({ "by": "offset", "limit": MAX_REACH }),
        ));
    }
    Ok(())
}

fn check_condition(c: &Cmp, data: &OrgData, m: Module) -> Result<(), Reject> {
    let kind = kind_of(data, m, &c.column).ok_or_else(|| unknown_column(&c.column))?;
    if kind == Kind::Multiline {
        return Err(invalid_query(
            "data type not supported",
            json!({ "column_name": c.column, "data_type": data_type_name(data, m, &c.column) }),
        ));
    }
    if !op_allowed(kind, c.op) {
        return Err(invalid_query(
            "invalid query formed",
            json!({ "column_name": c.column, "operator": c.op.text(), "reason": "invalid operator found" }),
        ));
    }
    if let Some(v) = c.values.iter().find(|v| !value_fits(kind, v)) {
        return Err(invalid_query(
            "value given seems to be invalid for the column",
            json!({ "column_name": c.column, "expected_data_type": data_type_name(data, m, &c.column), "value": v }),
        ));
    }
    Ok(())
}

fn check_order(q: &Query, data: &OrgData, m: Module) -> Result<(), Reject> {
    if q.order.len() > MAX_ORDER_BY {
        return Err(limit_exceeded(
            json!({ "clause": "order by", "limit": MAX_ORDER_BY }),
        ));
    }
    for (i, (column, _)) in q.order.iter().enumerate() {
        if kind_of(data, m, column).is_none() {
            return Err(unknown_column(column));
        }
        if q.order[..i].iter().any(|(c, _)| c == column) {
            return Err(error(
                400,
                "DUPLICATE_DATA",
                "duplicate data",
                json!({ "clause": "order by", "column_name": column }),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

/// A record's value of a column as COQL compares it; None when empty.
fn comparable(data: &OrgData, m: Module, r: &Record, column: &str, kind: Kind) -> Option<String> {
    let v = data.field_value(m, r, column);
    let s = match (&v, kind) {
        (Value::Null, _) => return None,
        (Value::String(s), _) => s.clone(),
        (Value::Object(o), Kind::Id) => o.get("id")?.as_str()?.to_owned(),
        (Value::Array(items), _) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(";"),
        (other, _) => other.to_string(),
    };
    (!s.is_empty()).then_some(s)
}

fn compare(kind: Kind, a: &str, b: &str) -> Option<std::cmp::Ordering> {
    match kind {
        Kind::Number => a.parse::<f64>().ok()?.partial_cmp(&b.parse::<f64>().ok()?),
        Kind::DateTime => Some(
            DateTime::parse_from_rfc3339(a)
                .ok()?
                .timestamp()
                .cmp(&DateTime::parse_from_rfc3339(b).ok()?.timestamp()),
        ),
        Kind::Id => Some(a.parse::<u64>().ok()?.cmp(&b.parse::<u64>().ok()?)),
        Kind::Boolean | Kind::Date => Some(a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase())),
        Kind::Text | Kind::Multiline => Some(a.to_lowercase().cmp(&b.to_lowercase())),
    }
}

/// `like` patterns: `%` at either end means "any text there"; matching ignores case.
fn like(value: &str, pattern: &str) -> bool {
    let (v, p) = (value.to_lowercase(), pattern.to_lowercase());
    let (starts, rest) = p
        .strip_prefix('%')
        .map_or((false, p.as_str()), |r| (true, r));
    let (ends, core) = rest.strip_suffix('%').map_or((false, rest), |r| (true, r));
    match (starts, ends) {
        (true, true) => v.contains(core),
        (true, false) => v.ends_with(core),
        (false, true) => v.starts_with(core),
        (false, false) => v == core,
    }
}

/// Whether a record passes one comparison. An empty value passes only `is null`
/// (and nothing else, as in SQL).
fn passes(c: &Cmp, kind: Kind, value: Option<&str>) -> bool {
    use std::cmp::Ordering::*;
    let Some(v) = value else {
        return c.op == CmpOp::IsNull;
    };
    let ord = |i: usize| compare(kind, v, &c.values[i]);
    let eq_any = || (0..c.values.len()).any(|i| ord(i) == Some(Equal));
    match c.op {
        CmpOp::IsNull => false,
        CmpOp::IsNotNull => true,
        CmpOp::Eq | CmpOp::In => eq_any(),
        CmpOp::Ne | CmpOp::NotIn => !eq_any(),
        CmpOp::Lt => ord(0) == Some(Less),
        CmpOp::Gt => ord(0) == Some(Greater),
        CmpOp::Le => matches!(ord(0), Some(Less | Equal)),
        CmpOp::Ge => matches!(ord(0), Some(Greater | Equal)),
        CmpOp::Between => {
            matches!(ord(0), Some(Greater | Equal)) && matches!(ord(1), Some(Less | Equal))
        }
        CmpOp::Like => like(v, &c.values[0]),
        CmpOp::NotLike => !like(v, &c.values[0]),
    }
}

/// The matching rows, ordered and cut to the page, as Zoho answers them.
fn answer(q: &Query, data: &OrgData, m: Module) -> Response {
    let kind = |c: &str| kind_of(data, m, c).unwrap_or(Kind::Text);
    let mut rows: Vec<&Record> = data
        .store(m)
        .records
        .values()
        .filter(|r| !r.converted)
        .filter(|r| {
            q.filter.eval(&mut |c: &Cmp| {
                let k = kind(&c.column);
                passes(c, k, comparable(data, m, r, &c.column, k).as_deref())
            })
        })
        .collect();
    order_rows(&mut rows, &q.order, data, m);
    let total = rows.len();
    let page: Vec<Value> = rows
        .into_iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|r| row_json(q, data, m, r))
        .collect();
    if page.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let info = json!({ "count": page.len(), "more_records": total > q.offset + q.limit });
    json_reply(StatusCode::OK, &data_reply(page, [("info", info)]))
}

/// Sorts by the `order by` columns. Records start in id order and the sort is stable,
/// so id breaks ties; empty values sort first in ascending order, as in SQL.
fn order_rows(rows: &mut [&Record], order: &[(String, bool)], data: &OrgData, m: Module) {
    use std::cmp::Ordering;
    let by_column = |a: &Record, b: &Record, column: &str| {
        let k = kind_of(data, m, column).unwrap_or(Kind::Text);
        match (
            comparable(data, m, a, column, k),
            comparable(data, m, b, column, k),
        ) {
            (Some(x), Some(y)) => compare(k, &x, &y).unwrap_or(Ordering::Equal),
            (x, y) => x.is_some().cmp(&y.is_some()),
        }
    };
    rows.sort_by(|a, b| {
        order.iter().fold(Ordering::Equal, |acc, (column, asc)| {
            acc.then_with(|| {
                let o = by_column(a, b, column);
                if *asc { o } else { o.reverse() }
            })
        })
    });
}

/// The selected columns and `id`; lookups (and users) show only their id, as COQL does.
fn row_json(q: &Query, data: &OrgData, m: Module, r: &Record) -> Value {
    let mut out = serde_json::Map::new();
    for c in &q.columns {
        let v = data.field_value(m, r, c);
        let v = match (kind_of(data, m, c), v) {
            (Some(Kind::Id), Value::Object(o)) => {
                json!({ "id": o.get("id").cloned().unwrap_or(Value::Null) })
            }
            (_, v) => v,
        };
        out.insert(c.clone(), v);
    }
    out.insert("id".into(), Value::String(r.id.to_string()));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(column: &str, op: CmpOp, values: &[&str]) -> Expr<Cmp> {
        Expr::Cond(Cmp {
            column: column.into(),
            op,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        })
    }

    #[test]
    fn a_full_query_parses() {
        let q = parse(
            "SELECT Last_Name, 'Email' FROM Leads WHERE (Email like '%@acme.com' and score >= 10) \
             or Last_Name in ('O''Brien', Smith) ORDER BY Created_Time desc, Last_Name LIMIT 5, 20",
        )
        .unwrap();
        assert_eq!(q.columns, ["Last_Name", "Email"]);
        assert_eq!(q.module, "Leads");
        assert_eq!(
            q.filter,
            Expr::Or(
                Box::new(Expr::And(
                    Box::new(cmp("Email", CmpOp::Like, &["%@acme.com"])),
                    Box::new(cmp("score", CmpOp::Ge, &["10"]))
                )),
                Box::new(cmp("Last_Name", CmpOp::In, &["O'Brien", "Smith"]))
            )
        );
        assert_eq!(
            q.order,
            [
                ("Created_Time".to_owned(), false),
                ("Last_Name".to_owned(), true)
            ]
        );
        assert_eq!((q.offset, q.limit), (5, 20));
    }

    #[test]
    fn null_tests_and_limit_offset_parse() {
        let q =
            parse("select id from Contacts where Email is not null limit 10 offset 30").unwrap();
        assert_eq!(q.filter, cmp("Email", CmpOp::IsNotNull, &[]));
        assert_eq!((q.offset, q.limit), (30, 10));
        let q = parse("select id from Contacts where Phone is null").unwrap();
        assert_eq!(q.filter, cmp("Phone", CmpOp::IsNull, &[]));
        assert_eq!((q.offset, q.limit), (0, 200));
    }

    #[test]
    fn a_query_without_where_is_a_where_clause_error() {
        assert_eq!(
            parse("select Last_Name from Leads limit 10"),
            Err(SyntaxError::Clause("where"))
        );
    }

    #[test]
    fn three_criteria_without_brackets_are_refused_where_the_third_begins() {
        let e =
            parse("select id from Leads where id is not null and Email is null and Phone is null");
        assert_eq!(
            e,
            Err(SyntaxError::Near {
                column: 61,
                near: "and".into()
            })
        );
    }

    #[test]
    fn syntax_errors_name_the_token_near_them() {
        for (text, near) in [
            ("select * from Leads where id is not null", "*"),
            ("select id Leads where id is not null", "Leads"),
            ("select id from Leads where Email == 'x'", "="),
            ("select id from Leads where Email = 'x' limit", ""),
            ("select id from Leads where (Email = 'x'", ""),
            ("select id from Leads where Email = 'x", "'x"),
        ] {
            match parse(text) {
                Err(SyntaxError::Near { near: got, .. }) => assert_eq!(got, near, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn like_patterns_mean_contains_starts_and_ends() {
        assert!(like("Anna@Acme.com", "%acme%"));
        assert!(like("Anna@Acme.com", "anna%"));
        assert!(like("Anna@Acme.com", "%.COM"));
        assert!(!like("Anna@Acme.com", "acme"));
        assert!(like("x", "x"));
        assert!(like("anything", "%"));
    }
}
