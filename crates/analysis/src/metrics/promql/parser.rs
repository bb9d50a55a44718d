//! Lexer and recursive-descent parser for the supported PromQL subset.

use regex::Regex;

use super::ast::{AggOp, BinOp, Expr, Grouping, MatchOp, Matcher, Matching, VectorSelector};
use crate::metrics::error::QueryError;
use crate::metrics::series::METRIC_NAME_LABEL;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number(f64),
    Duration(i64),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Op(&'static str),
    Eof,
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    _src: &'a str,
}

fn perr(position: usize, reason: impl Into<String>) -> QueryError {
    QueryError::Parse {
        position,
        reason: reason.into(),
    }
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            chars: src.chars().collect(),
            pos: 0,
            _src: src,
        }
    }

    fn peek_char(&self, off: usize) -> Option<char> {
        self.chars.get(self.pos + off).copied()
    }

    fn tokens(mut self) -> Result<Vec<(Tok, usize)>, QueryError> {
        let mut out = Vec::new();
        loop {
            while self.peek_char(0).is_some_and(char::is_whitespace) {
                self.pos += 1;
            }
            // Comments run to the end of the line.
            if self.peek_char(0) == Some('#') {
                while self.peek_char(0).is_some_and(|c| c != '\n') {
                    self.pos += 1;
                }
                continue;
            }
            let start = self.pos;
            let Some(c) = self.peek_char(0) else {
                out.push((Tok::Eof, start));
                return Ok(out);
            };
            let tok = match c {
                '(' => self.single(Tok::LParen),
                ')' => self.single(Tok::RParen),
                '{' => self.single(Tok::LBrace),
                '}' => self.single(Tok::RBrace),
                '[' => self.single(Tok::LBracket),
                ']' => self.single(Tok::RBracket),
                ',' => self.single(Tok::Comma),
                ':' if !self
                    .peek_char(1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_') =>
                {
                    self.single(Tok::Colon)
                }
                '"' | '\'' | '`' => self.string(c)?,
                '0'..='9' => self.number_or_duration()?,
                '.' if self.peek_char(1).is_some_and(|c| c.is_ascii_digit()) => {
                    self.number_or_duration()?
                }
                c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                    let mut s = String::new();
                    while let Some(c) = self.peek_char(0) {
                        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                            s.push(c);
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                    Tok::Ident(s)
                }
                _ => self.operator()?,
            };
            out.push((tok, start));
        }
    }

    fn single(&mut self, t: Tok) -> Tok {
        self.pos += 1;
        t
    }

    fn operator(&mut self) -> Result<Tok, QueryError> {
        let two: String = self.chars[self.pos..].iter().take(2).collect();
        for op in ["==", "!=", "<=", ">=", "=~", "!~"] {
            if two == op {
                self.pos += 2;
                return Ok(Tok::Op(op));
            }
        }
        let c = self.chars[self.pos];
        let op = match c {
            '+' => "+",
            '-' => "-",
            '*' => "*",
            '/' => "/",
            '%' => "%",
            '^' => "^",
            '<' => "<",
            '>' => ">",
            '=' => "=",
            _ => return Err(perr(self.pos, format!("unexpected character {c:?}"))),
        };
        self.pos += 1;
        Ok(Tok::Op(op))
    }

    fn string(&mut self, quote: char) -> Result<Tok, QueryError> {
        let start = self.pos;
        self.pos += 1;
        let mut s = String::new();
        loop {
            let Some(c) = self.peek_char(0) else {
                return Err(perr(start, "unterminated string"));
            };
            self.pos += 1;
            if c == quote {
                return Ok(Tok::Str(s));
            }
            if c == '\\' && quote != '`' {
                let Some(e) = self.peek_char(0) else {
                    return Err(perr(start, "unterminated string"));
                };
                self.pos += 1;
                match e {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    '\\' => s.push('\\'),
                    '"' => s.push('"'),
                    '\'' => s.push('\''),
                    // Regex escapes such as `\.` pass through to the regex.
                    other => {
                        s.push('\\');
                        s.push(other);
                    }
                }
            } else {
                s.push(c);
            }
        }
    }

    fn digits(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek_char(0) {
            if c.is_ascii_digit() || c == '.' {
                s.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        s
    }

    fn unit(&mut self) -> Option<i64> {
        let c0 = self.peek_char(0)?;
        let c1 = self.peek_char(1);
        let (ms, len) = match (c0, c1) {
            ('m', Some('s')) => (1, 2),
            ('s', _) => (1_000, 1),
            ('m', _) => (60_000, 1),
            ('h', _) => (3_600_000, 1),
            ('d', _) => (86_400_000, 1),
            ('w', _) => (604_800_000, 1),
            ('y', _) => (31_536_000_000, 1),
            _ => return None,
        };
        // A unit is not followed by more identifier characters.
        if self
            .peek_char(len)
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return None;
        }
        self.pos += len;
        Some(ms)
    }

    fn number_or_duration(&mut self) -> Result<Tok, QueryError> {
        let start = self.pos;
        let mut text = self.digits();
        // Exponent: `1e3`, `2.5E-2`.
        if matches!(self.peek_char(0), Some('e' | 'E'))
            && (self.peek_char(1).is_some_and(|c| c.is_ascii_digit())
                || (matches!(self.peek_char(1), Some('+' | '-'))
                    && self.peek_char(2).is_some_and(|c| c.is_ascii_digit())))
        {
            text.push('e');
            self.pos += 1;
            if let Some(sign @ ('+' | '-')) = self.peek_char(0) {
                text.push(sign);
                self.pos += 1;
            }
            text.push_str(&self.digits());
        } else if !text.contains('.')
            && let Some(unit) = self.unit()
        {
            let mut total = parse_int(&text, start)?.saturating_mul(unit);
            // Compound durations: `1h30m`.
            while self.peek_char(0).is_some_and(|c| c.is_ascii_digit()) {
                let at = self.pos;
                let more = self.digits();
                let unit = self
                    .unit()
                    .ok_or_else(|| perr(at, "expected a duration unit (ms, s, m, h, d, w, y)"))?;
                total = total.saturating_add(parse_int(&more, at)?.saturating_mul(unit));
            }
            return Ok(Tok::Duration(total));
        }
        text.parse::<f64>()
            .map(Tok::Number)
            .map_err(|_| perr(start, format!("invalid number {text:?}")))
    }
}

fn parse_int(s: &str, pos: usize) -> Result<i64, QueryError> {
    s.parse::<i64>()
        .map_err(|_| perr(pos, format!("invalid duration amount {s:?}")))
}

/// Parses a PromQL expression of the supported subset.
///
/// # Errors
///
/// [`QueryError::Parse`] with the character position of the problem,
/// [`QueryError::InvalidRegex`] for a matcher regex that does not compile,
/// [`QueryError::Unsupported`] for subqueries, `@` and `group_left/right`.
pub fn parse_expr(src: &str) -> Result<Expr, QueryError> {
    let toks = Lexer::new(src).tokens()?;
    let mut p = Parser { toks, i: 0 };
    let e = p.expr(0)?;
    match p.peek() {
        Tok::Eof => Ok(e),
        t => Err(perr(
            p.pos(),
            format!("unexpected {t:?} after the expression"),
        )),
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
}

const KEYWORD_BY: &str = "by";
const KEYWORD_WITHOUT: &str = "without";

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].0
    }

    fn peek_at(&self, off: usize) -> &Tok {
        &self.toks[(self.i + off).min(self.toks.len() - 1)].0
    }

    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].1
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), QueryError> {
        if self.peek() == want {
            self.next();
            Ok(())
        } else {
            Err(perr(
                self.pos(),
                format!("expected {what}, found {:?}", self.peek()),
            ))
        }
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        Some(match self.peek() {
            Tok::Ident(s) if s.eq_ignore_ascii_case("or") => (BinOp::Or, 1),
            Tok::Ident(s) if s.eq_ignore_ascii_case("and") => (BinOp::And, 2),
            Tok::Ident(s) if s.eq_ignore_ascii_case("unless") => (BinOp::Unless, 2),
            Tok::Op("==") => (BinOp::Eq, 3),
            Tok::Op("!=") => (BinOp::Ne, 3),
            Tok::Op("<") => (BinOp::Lt, 3),
            Tok::Op(">") => (BinOp::Gt, 3),
            Tok::Op("<=") => (BinOp::Le, 3),
            Tok::Op(">=") => (BinOp::Ge, 3),
            Tok::Op("+") => (BinOp::Add, 4),
            Tok::Op("-") => (BinOp::Sub, 4),
            Tok::Op("*") => (BinOp::Mul, 5),
            Tok::Op("/") => (BinOp::Div, 5),
            Tok::Op("%") => (BinOp::Mod, 5),
            _ => return None,
        })
    }

    fn expr(&mut self, min_prec: u8) -> Result<Expr, QueryError> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec < min_prec {
                break;
            }
            self.next();
            let mut return_bool = false;
            if matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case("bool")) {
                if !op.is_comparison() {
                    return Err(perr(
                        self.pos(),
                        "bool modifier only applies to comparisons",
                    ));
                }
                self.next();
                return_bool = true;
            }
            let mut matching = Matching::Default;
            if let Tok::Ident(s) = self.peek().clone()
                && (s.eq_ignore_ascii_case("on") || s.eq_ignore_ascii_case("ignoring"))
                && self.peek_at(1) == &Tok::LParen
            {
                self.next();
                let labels = self.label_list()?;
                matching = if s.eq_ignore_ascii_case("on") {
                    Matching::On(labels)
                } else {
                    Matching::Ignoring(labels)
                };
            }
            if let Tok::Ident(s) = self.peek()
                && (s.eq_ignore_ascii_case("group_left") || s.eq_ignore_ascii_case("group_right"))
            {
                return Err(QueryError::Unsupported {
                    feature: format!("{s} (many-to-one matching)"),
                });
            }
            let rhs = self.expr(prec + 1)?;
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                return_bool,
                matching,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        match self.peek() {
            Tok::Op("-") => {
                self.next();
                let e = self.unary()?;
                Ok(match e {
                    Expr::Number(n) => Expr::Number(-n),
                    e => Expr::Neg(Box::new(e)),
                })
            }
            Tok::Op("+") => {
                self.next();
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<Expr, QueryError> {
        let base = self.postfix()?;
        if self.peek() == &Tok::Op("^") {
            self.next();
            if matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case("bool")) {
                return Err(perr(
                    self.pos(),
                    "bool modifier only applies to comparisons",
                ));
            }
            let mut matching = Matching::Default;
            if let Tok::Ident(s) = self.peek().clone()
                && (s.eq_ignore_ascii_case("on") || s.eq_ignore_ascii_case("ignoring"))
            {
                self.next();
                let labels = self.label_list()?;
                matching = if s.eq_ignore_ascii_case("on") {
                    Matching::On(labels)
                } else {
                    Matching::Ignoring(labels)
                };
            }
            // Right-associative and binding tighter than unary minus on its right.
            let exp = self.unary()?;
            return Ok(Expr::Binary {
                op: BinOp::Pow,
                lhs: Box::new(base),
                rhs: Box::new(exp),
                return_bool: false,
                matching,
            });
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.primary()?;
        loop {
            match self.peek() {
                Tok::LBracket => {
                    let at = self.pos();
                    self.next();
                    let Tok::Duration(range) = self.next() else {
                        return Err(perr(at, "expected a duration such as 5m inside [ ]"));
                    };
                    if self.peek() == &Tok::Colon {
                        return Err(QueryError::Unsupported {
                            feature: "subqueries ([range:step])".to_owned(),
                        });
                    }
                    self.expect(&Tok::RBracket, "`]`")?;
                    e = match e {
                        Expr::Vector(vs) => Expr::Matrix(vs, range),
                        _ => {
                            return Err(perr(
                                at,
                                "ranges apply only to a plain selector (subqueries are not supported)",
                            ));
                        }
                    };
                }
                Tok::Ident(s) if s.eq_ignore_ascii_case("offset") => {
                    let at = self.pos();
                    self.next();
                    let neg = if self.peek() == &Tok::Op("-") {
                        self.next();
                        true
                    } else {
                        false
                    };
                    let Tok::Duration(d) = self.next() else {
                        return Err(perr(at, "expected a duration after offset"));
                    };
                    let d = if neg { -d } else { d };
                    match &mut e {
                        Expr::Vector(vs) | Expr::Matrix(vs, _) => vs.offset_ms = d,
                        _ => return Err(perr(at, "offset applies only to a selector")),
                    }
                }
                Tok::Ident(s) if s == "@" => {
                    return Err(QueryError::Unsupported {
                        feature: "@ modifier".to_owned(),
                    });
                }
                _ => return Ok(e),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let at = self.pos();
        match self.next() {
            Tok::Number(n) => Ok(Expr::Number(n)),
            Tok::Str(s) => Ok(Expr::String(s)),
            Tok::LParen => {
                let e = self.expr(0)?;
                self.expect(&Tok::RParen, "`)`")?;
                Ok(e)
            }
            Tok::LBrace => {
                let matchers = self.matchers_after_brace()?;
                selector(matchers, at)
            }
            Tok::Ident(name) => {
                if name.eq_ignore_ascii_case("inf") {
                    return Ok(Expr::Number(f64::INFINITY));
                }
                if name.eq_ignore_ascii_case("nan") {
                    return Ok(Expr::Number(f64::NAN));
                }
                if let Some(op) = AggOp::from_name(&name)
                    && (self.peek() == &Tok::LParen
                        || matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(KEYWORD_BY) || s.eq_ignore_ascii_case(KEYWORD_WITHOUT)))
                {
                    return self.aggregate(op);
                }
                if self.peek() == &Tok::LParen {
                    self.next();
                    let mut args = Vec::new();
                    if self.peek() != &Tok::RParen {
                        loop {
                            args.push(self.expr(0)?);
                            if self.peek() == &Tok::Comma {
                                self.next();
                                continue;
                            }
                            break;
                        }
                    }
                    self.expect(&Tok::RParen, "`)` closing the function call")?;
                    return Ok(Expr::Call(name, args));
                }
                let mut matchers = vec![Matcher {
                    name: METRIC_NAME_LABEL.to_owned(),
                    op: MatchOp::Equal,
                    value: name,
                    regex: None,
                }];
                if self.peek() == &Tok::LBrace {
                    self.next();
                    matchers.extend(self.matchers_after_brace()?);
                }
                selector(matchers, at)
            }
            Tok::Eof => Err(perr(at, "unexpected end of query")),
            t => Err(perr(at, format!("unexpected {t:?}"))),
        }
    }

    fn aggregate(&mut self, op: AggOp) -> Result<Expr, QueryError> {
        let mut grouping = self.grouping()?;
        self.expect(&Tok::LParen, "`(` after the aggregation")?;
        let param = if op.takes_param() {
            let p = self.expr(0)?;
            self.expect(&Tok::Comma, "`,` after the aggregation parameter")?;
            Some(Box::new(p))
        } else {
            None
        };
        let expr = self.expr(0)?;
        self.expect(&Tok::RParen, "`)` closing the aggregation")?;
        if grouping == Grouping::None {
            grouping = self.grouping()?;
        }
        Ok(Expr::Aggregate {
            op,
            grouping,
            param,
            expr: Box::new(expr),
        })
    }

    fn grouping(&mut self) -> Result<Grouping, QueryError> {
        match self.peek() {
            Tok::Ident(s) if s.eq_ignore_ascii_case(KEYWORD_BY) => {
                self.next();
                Ok(Grouping::By(self.label_list()?))
            }
            Tok::Ident(s) if s.eq_ignore_ascii_case(KEYWORD_WITHOUT) => {
                self.next();
                Ok(Grouping::Without(self.label_list()?))
            }
            _ => Ok(Grouping::None),
        }
    }

    fn label_list(&mut self) -> Result<Vec<String>, QueryError> {
        self.expect(&Tok::LParen, "`(` opening a label list")?;
        let mut out = Vec::new();
        loop {
            match self.next() {
                Tok::RParen => return Ok(out),
                Tok::Ident(s) => {
                    out.push(s);
                    match self.next() {
                        Tok::Comma => {}
                        Tok::RParen => return Ok(out),
                        t => {
                            return Err(perr(
                                self.pos(),
                                format!("expected `,` or `)` in label list, found {t:?}"),
                            ));
                        }
                    }
                }
                t => {
                    return Err(perr(
                        self.pos(),
                        format!("expected a label name, found {t:?}"),
                    ));
                }
            }
        }
    }

    fn matchers_after_brace(&mut self) -> Result<Vec<Matcher>, QueryError> {
        let mut out = Vec::new();
        loop {
            let at = self.pos();
            match self.next() {
                Tok::RBrace => return Ok(out),
                Tok::Ident(name) | Tok::Str(name) => {
                    let op = match self.next() {
                        Tok::Op("=") => MatchOp::Equal,
                        Tok::Op("!=") => MatchOp::NotEqual,
                        Tok::Op("=~") => MatchOp::Regex,
                        Tok::Op("!~") => MatchOp::NotRegex,
                        t => {
                            return Err(perr(
                                at,
                                format!("expected =, !=, =~ or !~ after label {name}, found {t:?}"),
                            ));
                        }
                    };
                    let Tok::Str(value) = self.next() else {
                        return Err(perr(
                            at,
                            format!("expected a quoted value for label {name}"),
                        ));
                    };
                    let regex = match op {
                        MatchOp::Regex | MatchOp::NotRegex => {
                            Some(Regex::new(&format!("^(?s:{value})$")).map_err(|e| {
                                QueryError::InvalidRegex {
                                    pattern: value.clone(),
                                    reason: e.to_string(),
                                }
                            })?)
                        }
                        _ => None,
                    };
                    out.push(Matcher {
                        name,
                        op,
                        value,
                        regex,
                    });
                    match self.next() {
                        Tok::Comma => {}
                        Tok::RBrace => return Ok(out),
                        t => {
                            return Err(perr(
                                self.pos(),
                                format!("expected `,` or `}}`, found {t:?}"),
                            ));
                        }
                    }
                }
                t => return Err(perr(at, format!("expected a label matcher, found {t:?}"))),
            }
        }
    }
}

fn selector(matchers: Vec<Matcher>, at: usize) -> Result<Expr, QueryError> {
    // As in Prometheus: a selector must not match every series.
    if matchers.iter().all(|m| m.matches("")) {
        return Err(perr(
            at,
            "vector selector must contain at least one matcher that does not match the empty string",
        ));
    }
    Ok(Expr::Vector(VectorSelector {
        matchers,
        offset_ms: 0,
    }))
}

#[cfg(test)]
mod tests {

    use super::*;

    fn ok(s: &str) -> Expr {
        parse_expr(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn selectors_and_ranges() {
        let Expr::Matrix(vs, range) = ok(r#"http_requests_total{service="cart",code=~"5.."}[5m]"#)
        else {
            panic!("expected matrix")
        };
        assert_eq!(range, 300_000);
        assert_eq!(vs.matchers.len(), 3);
        assert!(vs.matchers[2].matches("503"));
        assert!(!vs.matchers[2].matches("1503"), "regex is anchored");
        let Expr::Vector(vs) = ok(r#"{__name__="x"} offset 1h30m"#) else {
            panic!()
        };
        assert_eq!(vs.offset_ms, 5_400_000);
    }

    #[test]
    fn precedence() {
        // 1 + 2 * 3 ^ 2 = 19, -2 ^ 2 = -4
        let Expr::Binary { op, rhs, .. } = ok("1 + 2 * 3 ^ 2") else {
            panic!()
        };
        assert_eq!(op, BinOp::Add);
        assert!(matches!(*rhs, Expr::Binary { op: BinOp::Mul, .. }));
        assert!(matches!(ok("-2 ^ 2"), Expr::Neg(_)));
        assert!(matches!(
            ok("a > bool 1 or b"),
            Expr::Binary { op: BinOp::Or, .. }
        ));
    }

    #[test]
    fn aggregations_both_grouping_positions() {
        for q in [
            "sum by (service) (rate(x[5m]))",
            "sum(rate(x[5m])) by (service)",
        ] {
            let Expr::Aggregate { op, grouping, .. } = ok(q) else {
                panic!()
            };
            assert_eq!(op, AggOp::Sum);
            assert_eq!(grouping, Grouping::By(vec!["service".to_owned()]));
        }
        assert!(matches!(
            ok("topk(3, x)"),
            Expr::Aggregate {
                op: AggOp::Topk,
                param: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn errors() {
        for (q, needle) in [
            ("rate(x[5m]", "closing the function call"),
            (r#"{a=""}"#, "at least one matcher"),
            ("x[5]", "duration"),
            (r#"x{a=~"("}"#, "invalid regex"),
            ("x[5m:1m]", "subqueries"),
            ("a + on(b) group_left c", "group_left"),
            ("x $", "unexpected character"),
        ] {
            let e = parse_expr(q).unwrap_err().to_string();
            assert!(e.contains(needle), "{q}: {e}");
        }
    }
}
