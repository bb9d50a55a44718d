//! Parameters of the template miner, loadable from TOML or JSON.

use serde::{Deserialize, Serialize};

use super::LogsError;
use super::mask::CompiledMask;

/// A user mask: every match of `pattern` in a raw line is replaced by
/// `placeholder` before tokenising.
///
/// Use it for identifiers the general token classes miss, for example order
/// codes made only of letters (`pattern = "ORD-[A-Z]+"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Regular expression (Rust `regex` syntax) matched against the line.
    pub pattern: String,
    /// Replacement token; defaults to the wildcard `<*>`.
    #[serde(default = "default_placeholder")]
    pub placeholder: String,
}

fn default_placeholder() -> String {
    super::WILDCARD.to_owned()
}

/// Parameters of [`super::TemplateMiner`].
///
/// The defaults are the single configuration measured on all eight Loghub
/// systems (see `docs/analysis.md`); change them only for a reason you can
/// measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinerConfig {
    /// Depth of the parse tree, counting the root and the token-count layer:
    /// `depth - 2` leading tokens route a line to its leaf. Deeper trees
    /// separate more but split templates whose early tokens vary.
    pub depth: usize,
    /// Minimum share of a line's constant tokens (those not masked as
    /// variables) that must equal the template's to join it (0..=1). Lower
    /// merges more. Masking and the late merges already catch most
    /// variables, so the default is strict.
    pub similarity: f64,
    /// Maximum children of a tree node before new tokens share the wildcard
    /// branch; bounds fan-out on unmasked variable prefixes.
    pub max_children: usize,
    /// Cap on live templates; beyond it the least recently used are evicted
    /// from matching (their lines keep their template), so memory stays
    /// bounded on endless streams.
    pub max_clusters: usize,
    /// User masks, applied in order to the raw line before the built-in
    /// token classes.
    pub masks: Vec<MaskConfig>,
    /// Characters treated as whitespace when splitting tokens (for example
    /// `[","]` for comma-joined fields). Up to 16 ASCII characters are split
    /// on bytes; any non-ASCII one makes splitting char-based.
    pub extra_delimiters: Vec<char>,
    /// Merge templates that differ only where one of them already has a
    /// variable, in [`super::TemplateMiner::finish`] (end of a batch or of
    /// the input; a streaming caller calls it when it reads results).
    pub merge_variable_groups: bool,
    /// With `merge_variable_groups`: templates identical but for one
    /// position holding at least this many different words are merged, that
    /// position becoming a variable (0 or 1 disables).
    pub variable_cardinality: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            depth: 4,
            similarity: 0.9,
            max_children: 100,
            max_clusters: 50_000,
            masks: Vec::new(),
            extra_delimiters: Vec::new(),
            merge_variable_groups: true,
            variable_cardinality: 5,
        }
    }
}

impl MinerConfig {
    /// Checks the parameters and compiles the masks.
    ///
    /// # Errors
    /// [`LogsError::InvalidParameter`] for an out-of-range number,
    /// [`LogsError::InvalidMask`] for a pattern that does not compile.
    pub(crate) fn compile(&self) -> Result<Vec<CompiledMask>, LogsError> {
        if self.depth < 3 {
            return Err(LogsError::InvalidParameter {
                key: "depth",
                value: self.depth.to_string(),
                expected: "at least 3 (root, token count, one token)",
            });
        }
        if !(0.0..=1.0).contains(&self.similarity) {
            return Err(LogsError::InvalidParameter {
                key: "similarity",
                value: self.similarity.to_string(),
                expected: "between 0.0 and 1.0",
            });
        }
        if self.max_children < 2 {
            return Err(LogsError::InvalidParameter {
                key: "max_children",
                value: self.max_children.to_string(),
                expected: "at least 2",
            });
        }
        if self.max_clusters < 1 {
            return Err(LogsError::InvalidParameter {
                key: "max_clusters",
                value: self.max_clusters.to_string(),
                expected: "at least 1",
            });
        }
        self.masks
            .iter()
            .enumerate()
            .map(|(index, m)| {
                regex::Regex::new(&m.pattern)
                    .map(|regex| CompiledMask {
                        regex,
                        placeholder: m.placeholder.clone(),
                    })
                    .map_err(|source| LogsError::InvalidMask {
                        index,
                        pattern: m.pattern.clone(),
                        source,
                    })
            })
            .collect()
    }
}
