//! OData v2 system query options: `$filter` (comparisons, `and`/`or`/`not`,
//! parentheses, `substringof`/`startswith`/`endswith`), `$orderby`, `$top`,
//! `$skip`, `$skiptoken`, `$select`, `$inlinecount`, `$format`.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;

use super::model::{Kind, Record, Table};

/// The options of a collection read, checked against the table.
#[derive(Debug, Default)]
pub struct Options {
    /// The parsed `$filter`.
    pub filter: Option<Expr>,
    /// `$orderby`: property and descending.
    pub order: Vec<(String, bool)>,
    /// `$top`.
    pub top: Option<usize>,
    /// `$skip`.
    pub skip: usize,
    /// `$skiptoken`: entries already served.
    pub skiptoken: usize,
    /// `$select`.
    pub select: Option<Vec<String>>,
    /// `$inlinecount=allpages`.
    pub inlinecount: bool,
}

/// A `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// `Prop op literal`.
    Cmp(String, Op, Lit),
    /// `substringof('x', Prop)`, `startswith(Prop, 'x')`, `endswith(Prop, 'x')`.
    Text(TextFn, String, String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
}

/// A string function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFn {
    /// `substringof`.
    Contains,
    /// `startswith`.
    Starts,
    /// `endswith`.
    Ends,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `'text'`.
    Text(String),
    /// `datetimeoffset'...'` or `datetime'...'`, in epoch ms.
    Time(i64),
    /// `true`, `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// The last value of a query parameter.
pub fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl Options {
    /// Parses the options of a collection read; the message says which and why.
    pub fn parse(query: &[(String, String)], table: &Table) -> Result<Options, String> {
        let number = |key: &str| -> Result<Option<usize>, String> {
            param(query, key)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("Invalid value '{v}' of system query option {key}"))
                })
                .transpose()
        };
        let known = |name: &str| -> Result<String, String> {
            table.prop(name).map(|p| p.name.clone()).ok_or_else(|| {
                format!(
                    "Property {name} not found in type {}",
                    table.set.type_name()
                )
            })
        };
        let mut options = Options {
            top: number("$top")?,
            skip: number("$skip")?.unwrap_or(0),
            skiptoken: number("$skiptoken")?.unwrap_or(0),
            ..Options::default()
        };
        if let Some(filter) = param(query, "$filter").filter(|f| !f.trim().is_empty()) {
            let expr = Parser::new(filter).parse()?;
            check_props(&expr, table)?;
            options.filter = Some(expr);
        }
        if let Some(order) = param(query, "$orderby") {
            for part in order.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let mut words = part.split_whitespace();
                let name = known(words.next().unwrap_or_default())?;
                let desc = match words.next() {
                    None | Some("asc") => false,
                    Some("desc") => true,
                    Some(other) => return Err(format!("Invalid sort order '{other}' in $orderby")),
                };
                options.order.push((name, desc));
            }
        }
        if let Some(select) = param(query, "$select").filter(|s| s.trim() != "*") {
            let names = select
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(known)
                .collect::<Result<Vec<_>, _>>()?;
            options.select = Some(names);
        }
        match param(query, "$inlinecount") {
            None | Some("none") => {}
            Some("allpages") => options.inlinecount = true,
            Some(other) => return Err(format!("Invalid value '{other}' of $inlinecount")),
        }
        Ok(options)
    }
}

fn check_props(expr: &Expr, table: &Table) -> Result<(), String> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            check_props(a, table)?;
            check_props(b, table)
        }
        Expr::Not(a) => check_props(a, table),
        Expr::Cmp(name, _, _) | Expr::Text(_, name, _) => {
            table.prop(name).map(|_| ()).ok_or_else(|| {
                format!(
                    "Property {name} not found in type {}",
                    table.set.type_name()
                )
            })
        }
    }
}

/// Whether a record matches.
pub fn matches(expr: &Expr, table: &Table, record: &Record) -> bool {
    match expr {
        Expr::And(a, b) => matches(a, table, record) && matches(b, table, record),
        Expr::Or(a, b) => matches(a, table, record) || matches(b, table, record),
        Expr::Not(a) => !matches(a, table, record),
        Expr::Text(f, name, needle) => {
            let hay = record.text(name);
            match f {
                TextFn::Contains => hay.contains(needle.as_str()),
                TextFn::Starts => hay.starts_with(needle.as_str()),
                TextFn::Ends => hay.ends_with(needle.as_str()),
            }
        }
        Expr::Cmp(name, op, lit) => {
            let kind = table.prop(name).map(|p| &p.kind);
            let ordering = compare(record.values.get(name), kind, lit);
            match (op, ordering) {
                (Op::Eq, o) => o == Some(Ordering::Equal),
                (Op::Ne, o) => o != Some(Ordering::Equal),
                (_, None) => false,
                (Op::Gt, Some(o)) => o == Ordering::Greater,
                (Op::Ge, Some(o)) => o != Ordering::Less,
                (Op::Lt, Some(o)) => o == Ordering::Less,
                (Op::Le, Some(o)) => o != Ordering::Greater,
            }
        }
    }
}

fn compare(value: Option<&Value>, kind: Option<&Kind>, lit: &Lit) -> Option<Ordering> {
    let is_text = matches!(kind, Some(Kind::Text(_) | Kind::Code(_)));
    match (value, lit) {
        (None | Some(Value::Null), Lit::Null) => Some(Ordering::Equal),
        (None | Some(Value::Null), Lit::Text(t)) if is_text => Some("".cmp(t.as_str())),
        (None | Some(Value::Null), _) | (_, Lit::Null) => None,
        (Some(Value::String(s)), Lit::Text(t)) => Some(s.as_str().cmp(t.as_str())),
        (Some(Value::Number(n)), Lit::Time(ms)) => n.as_i64().map(|v| v.cmp(ms)),
        (Some(Value::Bool(b)), Lit::Bool(l)) => Some(b.cmp(l)),
        _ => None,
    }
}

/// Orders two records by `$orderby` (then by ObjectID, so pages are stable).
pub fn order(a: &Record, b: &Record, by: &[(String, bool)]) -> Ordering {
    for (name, desc) in by {
        let o = cmp_values(a.values.get(name), b.values.get(name));
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.text("ObjectID").cmp(b.text("ObjectID"))
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_i64()
            .unwrap_or_default()
            .cmp(&y.as_i64().unwrap_or_default()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// A recursive-descent parser of the `$filter` subset.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn parse(mut self) -> Result<Expr, String> {
        let expr = self.or()?;
        self.skip_ws();
        if self.pos < self.src.len() {
            return Err(self.error("end of expression"));
        }
        Ok(expr)
    }

    fn error(&self, expected: &str) -> String {
        format!(
            "Invalid filter expression: expected {expected} at position {} in '{}'",
            self.pos, self.src
        )
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        let boundary = rest[word.len().min(rest.len())..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) && boundary {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn punct(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.punct('(') {
            let inner = self.or()?;
            if !self.punct(')') {
                return Err(self.error("')'"));
            }
            return Ok(inner);
        }
        for (name, f) in [
            ("substringof", TextFn::Contains),
            ("startswith", TextFn::Starts),
            ("endswith", TextFn::Ends),
        ] {
            if self.keyword(name) {
                return self.text_fn(f);
            }
        }
        let name = self.ident()?;
        self.skip_ws();
        let op = [
            ("eq", Op::Eq),
            ("ne", Op::Ne),
            ("ge", Op::Ge),
            ("gt", Op::Gt),
            ("le", Op::Le),
            ("lt", Op::Lt),
        ]
        .into_iter()
        .find(|(w, _)| self.keyword(w))
        .map(|(_, op)| op)
        .ok_or_else(|| self.error("a comparison operator (eq, ne, gt, ge, lt, le)"))?;
        let lit = self.literal()?;
        Ok(Expr::Cmp(name, op, lit))
    }

    fn text_fn(&mut self, f: TextFn) -> Result<Expr, String> {
        if !self.punct('(') {
            return Err(self.error("'('"));
        }
        let (name, needle) = if f == TextFn::Contains {
            let needle = self.string()?;
            if !self.punct(',') {
                return Err(self.error("','"));
            }
            (self.ident()?, needle)
        } else {
            let name = self.ident()?;
            if !self.punct(',') {
                return Err(self.error("','"));
            }
            (name, self.string()?)
        };
        if !self.punct(')') {
            return Err(self.error("')'"));
        }
        // `substringof(...) eq true` is how OData v2 clients often write it.
        if self.keyword("eq") {
            return match self.literal()? {
                Lit::Bool(true) => Ok(Expr::Text(f, name, needle)),
                Lit::Bool(false) => Ok(Expr::Not(Box::new(Expr::Text(f, name, needle)))),
                _ => Err(self.error("true or false")),
            };
        }
        Ok(Expr::Text(f, name, needle))
    }

    fn ident(&mut self) -> Result<String, String> {
        self.skip_ws();
        let len = self
            .rest()
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("a property name"));
        }
        let name = self.rest()[..len].to_owned();
        self.pos += len;
        Ok(name)
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        if !self.rest().starts_with('\'') {
            return Err(self.error("a quoted string"));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.rest().chars().next() else {
                return Err(self.error("a closing quote"));
            };
            self.pos += c.len_utf8();
            if c == '\'' {
                // '' is an escaped quote.
                if self.rest().starts_with('\'') {
                    self.pos += 1;
                    out.push('\'');
                    continue;
                }
                return Ok(out);
            }
            out.push(c);
        }
    }

    fn literal(&mut self) -> Result<Lit, String> {
        self.skip_ws();
        for prefix in ["datetimeoffset", "datetime"] {
            let rest = self.rest();
            if rest.len() > prefix.len()
                && rest[..prefix.len()].eq_ignore_ascii_case(prefix)
                && rest[prefix.len()..].starts_with('\'')
            {
                self.pos += prefix.len();
                let text = self.string()?;
                return parse_time(&text)
                    .map(Lit::Time)
                    .ok_or_else(|| format!("Invalid {prefix} literal '{text}'"));
            }
        }
        if self.rest().starts_with('\'') {
            return Ok(Lit::Text(self.string()?));
        }
        if self.keyword("true") {
            return Ok(Lit::Bool(true));
        }
        if self.keyword("false") {
            return Ok(Lit::Bool(false));
        }
        if self.keyword("null") {
            return Ok(Lit::Null);
        }
        Err(self.error("a literal ('text', datetimeoffset'...', true, false, null)"))
    }
}

/// An ISO 8601 time with an offset (`datetimeoffset'...'`) or without (UTC, `datetime'...'`).
fn parse_time(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .map(|t| t.and_utc().timestamp_millis())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn and_binds_tighter_than_or() {
        let e = Parser::new("A eq 'x' or B eq 'y' and C eq 'z'")
            .parse()
            .unwrap();
        assert!(matches!(e, Expr::Or(_, _)));
    }

    #[test]
    fn a_datetimeoffset_literal_is_epoch_ms() {
        let e = Parser::new("EntityLastChangedOn ge datetimeoffset'1970-01-01T00:00:01Z'")
            .parse()
            .unwrap();
        assert_eq!(
            e,
            Expr::Cmp("EntityLastChangedOn".into(), Op::Ge, Lit::Time(1000))
        );
    }

    #[test]
    fn quotes_escape_by_doubling_and_garbage_is_refused() {
        let e = Parser::new("Name eq 'O''Brien'").parse().unwrap();
        assert_eq!(
            e,
            Expr::Cmp("Name".into(), Op::Eq, Lit::Text("O'Brien".into()))
        );
        assert!(Parser::new("Name eq").parse().is_err());
        assert!(Parser::new("Name eq 'a' xx").parse().is_err());
    }
}
