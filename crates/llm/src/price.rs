//! Prices per model and the cost of a call, in integer micro-USD so sums over
//! a diagnosis stay exact.
//!
//! Prices are USD per million tokens, as the providers publish them. A call's
//! input tokens include its cached tokens (OpenAI's convention; Anthropic's
//! counts are normalised to it), and the cached part is billed at the cached
//! price.

use std::collections::BTreeMap;

use rootcause_diagnosis::Usage;
use serde::{Deserialize, Serialize};

/// What one model costs, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input tokens served from the provider's prompt cache; defaults to the
    /// input price when the provider has no discount.
    #[serde(default)]
    pub cached: Option<f64>,
}

impl ModelPrice {
    /// A price from input, output and cached USD per million tokens.
    #[must_use]
    pub const fn new(input: f64, output: f64, cached: f64) -> Self {
        Self {
            input,
            output,
            cached: Some(cached),
        }
    }

    /// Free (local models).
    pub const FREE: Self = Self::new(0.0, 0.0, 0.0);

    /// Cost in micro-USD of the given token counts, rounded up so a budget
    /// never undercounts. `cached` is part of `input`.
    #[must_use]
    pub fn cost_micros(&self, input: u64, output: u64, cached: u64) -> u64 {
        let cached = cached.min(input);
        let uncached = input - cached;
        // USD per million tokens == micro-USD per token.
        #[expect(
            clippy::cast_precision_loss,
            reason = "token counts are far below 2^52"
        )]
        let micros = uncached as f64 * self.input
            + cached as f64 * self.cached.unwrap_or(self.input)
            + output as f64 * self.output;
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped to 0..u64::MAX before the cast"
        )]
        let micros = micros.ceil().clamp(0.0, u64::MAX as f64) as u64;
        micros
    }

    /// A [`Usage`] with its cost filled in.
    #[must_use]
    pub fn usage(&self, input: u64, output: u64, cached: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cached_tokens: cached,
            cost_micros: self.cost_micros(input, output, cached),
        }
    }

    fn is_valid(&self) -> bool {
        [self.input, self.output, self.cached.unwrap_or(0.0)]
            .iter()
            .all(|p| p.is_finite() && *p >= 0.0)
    }
}

/// Model name → price. Lookup is exact first, then by the longest
/// configured name the model starts with, so the dated names providers
/// answer with (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) find the
/// family price while `gpt-4o-mini` still finds its own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
}

/// The built-in prices (USD per million tokens: input, output, cached input),
/// from the providers' public price pages. Configuration overrides any entry.
const DEFAULT_PRICES: &[(&str, ModelPrice)] = &[
    // OpenAI
    ("gpt-5", ModelPrice::new(1.25, 10.0, 0.125)),
    ("gpt-5-mini", ModelPrice::new(0.25, 2.0, 0.025)),
    ("gpt-5-nano", ModelPrice::new(0.05, 0.40, 0.005)),
    ("gpt-4.1", ModelPrice::new(2.0, 8.0, 0.50)),
    ("gpt-4.1-mini", ModelPrice::new(0.40, 1.60, 0.10)),
    ("gpt-4.1-nano", ModelPrice::new(0.10, 0.40, 0.025)),
    ("gpt-4o", ModelPrice::new(2.50, 10.0, 1.25)),
    ("gpt-4o-mini", ModelPrice::new(0.15, 0.60, 0.075)),
    ("o3", ModelPrice::new(2.0, 8.0, 0.50)),
    ("o4-mini", ModelPrice::new(1.10, 4.40, 0.275)),
    // Anthropic (cached = cache read)
    ("claude-opus-4-5", ModelPrice::new(5.0, 25.0, 0.50)),
    ("claude-opus-4-1", ModelPrice::new(15.0, 75.0, 1.50)),
    ("claude-opus-4", ModelPrice::new(15.0, 75.0, 1.50)),
    ("claude-sonnet-4-5", ModelPrice::new(3.0, 15.0, 0.30)),
    ("claude-sonnet-4", ModelPrice::new(3.0, 15.0, 0.30)),
    ("claude-haiku-4-5", ModelPrice::new(1.0, 5.0, 0.10)),
    ("claude-3-5-haiku", ModelPrice::new(0.80, 4.0, 0.08)),
];

impl PriceTable {
    /// The built-in prices.
    #[must_use]
    pub fn defaults() -> Self {
        Self {
            prices: DEFAULT_PRICES
                .iter()
                .map(|(m, p)| ((*m).to_owned(), *p))
                .collect(),
        }
    }

    /// The built-in prices with `overrides` replacing or adding entries.
    #[must_use]
    pub fn with_overrides(overrides: &BTreeMap<String, ModelPrice>) -> Self {
        let mut table = Self::defaults();
        for (model, price) in overrides {
            table.prices.insert(model.clone(), *price);
        }
        table
    }

    /// The price of `model`: exact match, else the longest prefix match.
    #[must_use]
    pub fn get(&self, model: &str) -> Option<ModelPrice> {
        if let Some(p) = self.prices.get(model) {
            return Some(*p);
        }
        self.prices
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }

    /// Models whose price is negative or not a number.
    pub(crate) fn invalid_entries(&self) -> impl Iterator<Item = &str> {
        self.prices
            .iter()
            .filter(|(_, p)| !p.is_valid())
            .map(|(m, _)| m.as_str())
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn cost_bills_cached_tokens_at_the_cached_price() {
        let p = ModelPrice::new(2.50, 10.0, 1.25);
        // 1000 input of which 400 cached, 200 output:
        // 600*2.5 + 400*1.25 + 200*10 = 1500 + 500 + 2000 = 4000 micro-USD.
        assert_eq!(p.cost_micros(1000, 200, 400), 4000);
        // Cached larger than input is clamped, not underflowed.
        assert_eq!(p.cost_micros(10, 0, 50), 13);
    }

    #[test]
    fn cost_rounds_up() {
        let p = ModelPrice::new(0.15, 0.60, 0.075);
        assert_eq!(p.cost_micros(1, 0, 0), 1);
        assert_eq!(p.cost_micros(0, 0, 0), 0);
    }

    #[test]
    fn lookup_prefers_exact_then_longest_prefix() {
        let t = PriceTable::defaults();
        assert_eq!(t.get("gpt-4o-mini").map(|p| p.input), Some(0.15));
        assert_eq!(t.get("gpt-4o-2024-08-06").map(|p| p.input), Some(2.50));
        assert_eq!(t.get("gpt-4o-mini-2024-07-18").map(|p| p.input), Some(0.15));
        assert_eq!(
            t.get("claude-sonnet-4-5-20250929").map(|p| p.output),
            Some(15.0)
        );
        assert_eq!(t.get("llama3.1:8b"), None);
    }

    #[test]
    fn overrides_replace_defaults() {
        let mut o = BTreeMap::new();
        o.insert("gpt-4o".to_owned(), ModelPrice::new(1.0, 2.0, 0.5));
        o.insert("llama3.1:8b".to_owned(), ModelPrice::FREE);
        let t = PriceTable::with_overrides(&o);
        assert_eq!(t.get("gpt-4o").map(|p| p.input), Some(1.0));
        assert_eq!(t.get("llama3.1:8b"), Some(ModelPrice::FREE));
    }
}
