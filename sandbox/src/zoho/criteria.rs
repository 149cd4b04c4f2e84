//! The search `criteria` grammar:
//!
//! ```text
//! expr      := group (("and" | "or") group)*      evaluated left to right
//! group     := "(" (expr | condition) ")"
//! condition := field ":" operator ":" value ("," value)*
//! ```
//!
//! A bare `field:operator:value` is accepted at the top level. `\(`, `\)`, `\,` and `\\`
//! escape those characters in values; a comma-separated list means "any of". At most
//! [`MAX_CONDITIONS`] conditions.

/// Most conditions one criteria may hold.
pub const MAX_CONDITIONS: usize = 10;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `equals`: case-insensitive "contains" on text fields (as v8 does), exact otherwise.
    Equals,
    /// `not_equal`.
    NotEqual,
    /// `starts_with`.
    StartsWith,
    /// `in`: any of the values, exactly.
    In,
    /// `greater_than`.
    GreaterThan,
    /// `greater_equal`.
    GreaterEqual,
    /// `less_than`.
    LessThan,
    /// `less_equal`.
    LessEqual,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "equals" => Op::Equals,
            "not_equal" => Op::NotEqual,
            "starts_with" => Op::StartsWith,
            "in" => Op::In,
            "greater_than" => Op::GreaterThan,
            "greater_equal" => Op::GreaterEqual,
            "less_than" => Op::LessThan,
            "less_equal" => Op::LessEqual,
            _ => return None,
        })
    }
}

/// One `(field:operator:values)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Field api name.
    pub field: String,
    /// Operator.
    pub op: Op,
    /// Values, unescaped; several mean "any of".
    pub values: Vec<String>,
}

/// A parsed criteria: a tree of conditions joined by `and`/`or`. COQL's `where`
/// reuses it with its own condition type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr<C = Condition> {
    /// A single condition.
    Cond(C),
    /// Both sides.
    And(Box<Expr<C>>, Box<Expr<C>>),
    /// Either side.
    Or(Box<Expr<C>>, Box<Expr<C>>),
}

/// Why a criteria was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriteriaError {
    /// Not well formed; the text says where.
    Syntax(String),
    /// An operator the sandbox does not support, named.
    Operator(String),
    /// More than [`MAX_CONDITIONS`] conditions.
    TooMany(usize),
}

impl<C> Expr<C> {
    /// Evaluates with `test` deciding each condition.
    pub fn eval(&self, test: &mut impl FnMut(&C) -> bool) -> bool {
        match self {
            Expr::Cond(c) => test(c),
            Expr::And(a, b) => a.eval(test) && b.eval(test),
            Expr::Or(a, b) => a.eval(test) || b.eval(test),
        }
    }

    /// All conditions, left to right.
    pub fn conditions(&self) -> Vec<&C> {
        match self {
            Expr::Cond(c) => vec![c],
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut v = a.conditions();
                v.extend(b.conditions());
                v
            }
        }
    }
}

/// Parses a criteria string.
pub fn parse(input: &str) -> Result<Expr, CriteriaError> {
    let chars: Vec<char> = input.trim().chars().collect();
    let mut p = Parser { chars, pos: 0 };
    let expr = if p.peek() == Some('(') {
        p.expr()?
    } else {
        let raw = p.raw_condition()?;
        condition(&raw)?
    };
    p.skip_ws();
    if p.pos != p.chars.len() {
        return Err(CriteriaError::Syntax(format!(
            "unexpected text at position {}",
            p.pos
        )));
    }
    let n = expr.conditions().len();
    if n > MAX_CONDITIONS {
        return Err(CriteriaError::TooMany(n));
    }
    Ok(expr)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), CriteriaError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(CriteriaError::Syntax(format!(
                "expected '{c}' at position {}",
                self.pos
            )))
        }
    }

    fn expr(&mut self) -> Result<Expr, CriteriaError> {
        let mut left = self.group()?;
        loop {
            self.skip_ws();
            if self.peek().is_none_or(|c| c == ')') {
                return Ok(left);
            }
            let word: String = self.chars[self.pos..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            self.pos += word.chars().count();
            let right = self.group()?;
            left = match word.to_ascii_lowercase().as_str() {
                "and" => Expr::And(Box::new(left), Box::new(right)),
                "or" => Expr::Or(Box::new(left), Box::new(right)),
                _ => {
                    return Err(CriteriaError::Syntax(format!(
                        "expected 'and' or 'or', got {word:?}"
                    )));
                }
            };
        }
    }

    fn group(&mut self) -> Result<Expr, CriteriaError> {
        self.expect('(')?;
        self.skip_ws();
        let inner = if self.peek() == Some('(') {
            self.expr()?
        } else {
            let raw = self.raw_condition()?;
            condition(&raw)?
        };
        self.expect(')')?;
        Ok(inner)
    }

    /// The text up to the next unescaped ')' (or the end), escapes kept.
    fn raw_condition(&mut self) -> Result<String, CriteriaError> {
        let mut raw = String::new();
        while let Some(c) = self.peek() {
            match c {
                '\\' => {
                    raw.push(c);
                    self.pos += 1;
                    if let Some(next) = self.peek() {
                        raw.push(next);
                        self.pos += 1;
                    }
                }
                ')' => break,
                '(' => {
                    return Err(CriteriaError::Syntax(format!(
                        "unescaped '(' in a condition at position {}",
                        self.pos
                    )));
                }
                _ => {
                    raw.push(c);
                    self.pos += 1;
                }
            }
        }
        Ok(raw)
    }
}

/// `field:operator:value,value` with escapes still in place.
fn condition(raw: &str) -> Result<Expr, CriteriaError> {
    let mut parts = raw.splitn(3, ':');
    let field = parts.next().unwrap_or("").trim();
    let op = parts.next().map(str::trim);
    let value = parts.next();
    let (Some(op), Some(value)) = (op, value) else {
        return Err(CriteriaError::Syntax(format!(
            "a condition is field:operator:value, got {raw:?}"
        )));
    };
    if field.is_empty() {
        return Err(CriteriaError::Syntax(format!("no field name in {raw:?}")));
    }
    let op = Op::parse(op).ok_or_else(|| CriteriaError::Operator(op.to_owned()))?;
    let mut values = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ',' => values.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    values.push(current);
    Ok(Expr::Cond(Condition {
        field: field.to_owned(),
        op,
        values,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(field: &str, op: Op, values: &[&str]) -> Expr {
        Expr::Cond(Condition {
            field: field.into(),
            op,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        })
    }

    #[test]
    fn a_single_condition_in_parentheses_parses() {
        assert_eq!(
            parse("(Email:equals:a@b.com)").unwrap(),
            cond("Email", Op::Equals, &["a@b.com"])
        );
    }

    #[test]
    fn a_bare_condition_parses() {
        assert_eq!(
            parse("Last_Name:starts_with:Sm").unwrap(),
            cond("Last_Name", Op::StartsWith, &["Sm"])
        );
    }

    #[test]
    fn and_of_two_conditions_parses() {
        let e = parse("((Email:equals:a@b.com)and(Last_Name:starts_with:Sm))").unwrap();
        assert_eq!(
            e,
            Expr::And(
                Box::new(cond("Email", Op::Equals, &["a@b.com"])),
                Box::new(cond("Last_Name", Op::StartsWith, &["Sm"]))
            )
        );
    }

    #[test]
    fn top_level_or_and_nesting_parse() {
        let e = parse("((A:equals:1)and((B:equals:2)or(C:equals:3)))or(D:in:4,5)").unwrap();
        assert_eq!(e.conditions().len(), 4);
        let mut truth = |c: &Condition| c.field == "D";
        assert!(e.eval(&mut truth));
        let mut truth = |c: &Condition| c.field == "A" || c.field == "C";
        assert!(e.eval(&mut truth));
        let mut truth = |c: &Condition| c.field == "A";
        assert!(!e.eval(&mut truth));
    }

    #[test]
    fn escapes_and_commas_split_values() {
        let e = parse(r"(Company:equals:Acme \(EU\)\, Ltd,Globex)").unwrap();
        assert_eq!(
            e,
            cond("Company", Op::Equals, &["Acme (EU), Ltd", "Globex"])
        );
    }

    #[test]
    fn values_may_hold_colons() {
        let e = parse("(Modified_Time:greater_than:2026-11-21T10:00:00+00:00)").unwrap();
        assert_eq!(
            e,
            cond(
                "Modified_Time",
                Op::GreaterThan,
                &["2026-11-21T10:00:00+00:00"]
            )
        );
    }

    #[test]
    fn unknown_operators_are_named() {
        assert_eq!(
            parse("(Email:contains:x)"),
            Err(CriteriaError::Operator("contains".into()))
        );
    }

    #[test]
    fn more_than_ten_conditions_are_refused() {
        let many = (0..11)
            .map(|i| format!("(A:equals:{i})"))
            .collect::<Vec<_>>()
            .join("or");
        assert_eq!(parse(&many), Err(CriteriaError::TooMany(11)));
        let ten = (0..10)
            .map(|i| format!("(A:equals:{i})"))
            .collect::<Vec<_>>()
            .join("or");
        assert!(parse(&ten).is_ok());
    }

    #[test]
    fn malformed_criteria_are_syntax_errors() {
        for bad in [
            "(Email:equals:a",
            "(Email)",
            "((A:equals:1)xor(B:equals:2))",
            "(A:equals:1))",
            "(A:equals:(1)",
            "()",
        ] {
            assert!(matches!(parse(bad), Err(CriteriaError::Syntax(_))), "{bad}");
        }
    }
}
