//! The syntax tree of the supported PromQL subset.

use regex::Regex;

/// How a label matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored, as in Prometheus)
    Regex,
    /// `!~`
    NotRegex,
}

/// One label matcher of a selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name (`__name__` for the metric name).
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// The value or pattern as written.
    pub value: String,
    /// Compiled, anchored pattern for `=~` and `!~`.
    pub regex: Option<Regex>,
}

impl Matcher {
    /// Whether a label value (empty when the label is absent) matches.
    #[must_use]
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

/// `name{matchers} offset d`.
#[derive(Debug, Clone)]
pub struct VectorSelector {
    /// Matchers, including one on `__name__` when a name was written.
    pub matchers: Vec<Matcher>,
    /// `offset` in milliseconds (may be negative).
    pub offset_ms: i64,
}

/// Binary operators, by PromQL precedence groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `and`
    And,
    /// `or`
    Or,
    /// `unless`
    Unless,
}

impl BinOp {
    /// Comparison operators filter (or give 0/1 with `bool`).
    #[must_use]
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Lt | Self::Gt | Self::Le | Self::Ge
        )
    }

    /// Set operators work on label sets only.
    #[must_use]
    pub fn is_set(self) -> bool {
        matches!(self, Self::And | Self::Or | Self::Unless)
    }
}

/// `on(...)`/`ignoring(...)` of a binary operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matching {
    /// All labels but the name.
    Default,
    /// Only these labels.
    On(Vec<String>),
    /// All labels but these and the name.
    Ignoring(Vec<String>),
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `group`
    Group,
    /// `stddev`
    Stddev,
    /// `stdvar`
    Stdvar,
    /// `topk`
    Topk,
    /// `bottomk`
    Bottomk,
    /// `quantile`
    Quantile,
}

impl AggOp {
    /// Parses an aggregation keyword (case-insensitive, as in PromQL).
    #[must_use]
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "count" => Self::Count,
            "group" => Self::Group,
            "stddev" => Self::Stddev,
            "stdvar" => Self::Stdvar,
            "topk" => Self::Topk,
            "bottomk" => Self::Bottomk,
            "quantile" => Self::Quantile,
            _ => return None,
        })
    }

    /// Whether the operator takes a parameter before the vector.
    #[must_use]
    pub fn takes_param(self) -> bool {
        matches!(self, Self::Topk | Self::Bottomk | Self::Quantile)
    }
}

/// `by (...)` / `without (...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// No clause: everything in one group.
    None,
    /// Keep only these labels.
    By(Vec<String>),
    /// Drop these labels (and the name).
    Without(Vec<String>),
}

/// An expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A number.
    Number(f64),
    /// A string literal (function arguments only).
    String(String),
    /// Instant vector selector.
    Vector(VectorSelector),
    /// Range vector selector: selector plus range in milliseconds.
    Matrix(VectorSelector, i64),
    /// Function call.
    Call(String, Vec<Expr>),
    /// Aggregation.
    Aggregate {
        /// Operator.
        op: AggOp,
        /// Grouping clause.
        grouping: Grouping,
        /// Parameter for topk/bottomk/quantile.
        param: Option<Box<Expr>>,
        /// The aggregated expression.
        expr: Box<Expr>,
    },
    /// Binary operation.
    Binary {
        /// Operator.
        op: BinOp,
        /// Left side.
        lhs: Box<Expr>,
        /// Right side.
        rhs: Box<Expr>,
        /// `bool` modifier on comparisons.
        return_bool: bool,
        /// Vector matching.
        matching: Matching,
    },
    /// Unary minus.
    Neg(Box<Expr>),
}
