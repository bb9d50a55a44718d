//! The per-diagnosis budget (tokens and money) and the ledger that enforces
//! it before each call is sent.
//!
//! Each call reserves its estimate (input estimated from the request, output
//! = its `max_tokens`, priced at the most expensive provider of the chain)
//! and is refused with [`LlmError::BudgetExceeded`] when spent + reserved +
//! estimate would pass a limit. When the call returns, the reservation is
//! replaced by the real usage. Calls in flight therefore cannot jointly
//! overshoot, and the total can pass a limit only by what one call's real
//! usage exceeds its estimate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rootcause_diagnosis::Usage;
use serde::Deserialize;

use crate::chat::ChatRequest;
use crate::error::{BudgetResource, LlmError};
use crate::price::ModelPrice;

/// Budget limits from configuration (`[llm.budget]`); absent means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetSettings {
    /// Input plus output tokens per diagnosis.
    pub max_tokens: Option<u64>,
    /// USD per diagnosis.
    pub max_cost_usd: Option<f64>,
}

/// The limits in the units the ledger counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// Input plus output tokens.
    pub max_tokens: Option<u64>,
    /// Micro-USD.
    pub max_cost_micros: Option<u64>,
}

impl From<BudgetSettings> for Budget {
    fn from(s: BudgetSettings) -> Self {
        Self {
            max_tokens: s.max_tokens,
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "validated non-negative and finite; clamped"
            )]
            max_cost_micros: s
                .max_cost_usd
                .map(|usd| (usd * 1e6).round().clamp(0.0, u64::MAX as f64) as u64),
        }
    }
}

/// What a call is expected to cost, before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Estimate {
    /// Input plus output tokens.
    pub tokens: u64,
    /// Micro-USD.
    pub cost_micros: u64,
}

impl Estimate {
    /// The estimate for `request` at `price`: estimated input, full
    /// `max_tokens` output, no cache discount.
    #[must_use]
    pub fn for_request(request: &ChatRequest, price: ModelPrice) -> Self {
        let input = request.estimated_input_tokens();
        let output = u64::from(request.max_tokens);
        Self {
            tokens: input + output,
            cost_micros: price.cost_micros(input, output, 0),
        }
    }
}

#[derive(Debug, Default)]
struct Books {
    spent: Usage,
    per_agent: BTreeMap<String, Usage>,
    reserved: Estimate,
}

/// The running account of one diagnosis. Shared (`Arc`) by every agent of the
/// diagnosis in this process; seed it with what earlier tasks spent (from
/// `agent_executions`) so a budget holds across workers.
#[derive(Debug)]
pub struct Ledger {
    budget: Budget,
    // Held for a few additions, never across an await.
    books: Mutex<Books>,
}

impl Ledger {
    /// A ledger with `already_spent` on the books.
    #[must_use]
    pub fn new(budget: Budget, already_spent: Usage) -> Arc<Self> {
        Arc::new(Self {
            budget,
            books: Mutex::new(Books {
                spent: already_spent,
                ..Books::default()
            }),
        })
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        // Every update is a few saturating additions; a poisoned lock still
        // holds consistent numbers.
        self.books
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The limits.
    #[must_use]
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Reserves `estimate`, or refuses when it would pass a limit.
    ///
    /// # Errors
    /// [`LlmError::BudgetExceeded`] naming the limit; nothing is reserved.
    pub fn reserve(self: &Arc<Self>, estimate: Estimate) -> Result<Reservation, LlmError> {
        let mut books = self.books();
        let check = |resource, spent: u64, reserved: u64, estimate: u64, limit: Option<u64>| {
            let committed = spent.saturating_add(reserved);
            match limit {
                Some(limit) if committed.saturating_add(estimate) > limit => {
                    Err(LlmError::BudgetExceeded {
                        resource,
                        spent: committed,
                        estimate,
                        limit,
                    })
                }
                _ => Ok(()),
            }
        };
        check(
            BudgetResource::Tokens,
            books.spent.total_tokens(),
            books.reserved.tokens,
            estimate.tokens,
            self.budget.max_tokens,
        )?;
        check(
            BudgetResource::CostMicros,
            books.spent.cost_micros,
            books.reserved.cost_micros,
            estimate.cost_micros,
            self.budget.max_cost_micros,
        )?;
        books.reserved.tokens = books.reserved.tokens.saturating_add(estimate.tokens);
        books.reserved.cost_micros = books
            .reserved
            .cost_micros
            .saturating_add(estimate.cost_micros);
        Ok(Reservation {
            ledger: Arc::clone(self),
            estimate,
            settled: false,
        })
    }

    /// Everything spent so far (in this process, plus the seed).
    #[must_use]
    pub fn spent(&self) -> Usage {
        self.books().spent
    }

    /// What each agent spent in this process.
    #[must_use]
    pub fn per_agent(&self) -> BTreeMap<String, Usage> {
        self.books().per_agent.clone()
    }

    fn release(&self, estimate: Estimate, actual: Option<(&str, &Usage)>) {
        let mut books = self.books();
        books.reserved.tokens = books.reserved.tokens.saturating_sub(estimate.tokens);
        books.reserved.cost_micros = books
            .reserved
            .cost_micros
            .saturating_sub(estimate.cost_micros);
        if let Some((agent, usage)) = actual {
            books.spent.add(usage);
            books
                .per_agent
                .entry(agent.to_owned())
                .or_default()
                .add(usage);
        }
    }
}

/// A reserved estimate; released on drop if the call failed, replaced by the
/// real usage with [`Reservation::commit`].
#[derive(Debug)]
pub struct Reservation {
    ledger: Arc<Ledger>,
    estimate: Estimate,
    settled: bool,
}

impl Reservation {
    /// The reserved estimate.
    #[must_use]
    pub fn estimate(&self) -> Estimate {
        self.estimate
    }

    /// Books the real usage of the call against `agent`.
    pub fn commit(mut self, agent: &str, usage: &Usage) {
        self.settled = true;
        self.ledger.release(self.estimate, Some((agent, usage)));
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.ledger.release(self.estimate, None);
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn usage(tokens: u64, cost: u64) -> Usage {
        Usage {
            input_tokens: tokens,
            output_tokens: 0,
            cached_tokens: 0,
            cost_micros: cost,
        }
    }

    #[test]
    fn refuses_before_passing_a_limit_and_counts_reservations() {
        let ledger = Ledger::new(
            Budget {
                max_tokens: Some(100),
                max_cost_micros: None,
            },
            usage(50, 0),
        );
        let a = ledger
            .reserve(Estimate {
                tokens: 30,
                cost_micros: 0,
            })
            .expect("fits");
        // 50 spent + 30 reserved + 30 > 100.
        let err = ledger
            .reserve(Estimate {
                tokens: 30,
                cost_micros: 0,
            })
            .expect_err("over");
        assert!(matches!(
            err,
            LlmError::BudgetExceeded {
                resource: BudgetResource::Tokens,
                spent: 80,
                estimate: 30,
                limit: 100
            }
        ));
        // The first call used less than estimated: room again.
        a.commit("log", &usage(10, 0));
        assert_eq!(ledger.spent().total_tokens(), 60);
        assert!(
            ledger
                .reserve(Estimate {
                    tokens: 30,
                    cost_micros: 0
                })
                .is_ok()
        );
    }

    #[test]
    fn dropped_reservation_is_released() {
        let ledger = Ledger::new(
            Budget {
                max_tokens: None,
                max_cost_micros: Some(10),
            },
            Usage::default(),
        );
        {
            let _r = ledger
                .reserve(Estimate {
                    tokens: 0,
                    cost_micros: 10,
                })
                .expect("fits");
            assert!(
                ledger
                    .reserve(Estimate {
                        tokens: 0,
                        cost_micros: 1
                    })
                    .is_err()
            );
        }
        assert!(
            ledger
                .reserve(Estimate {
                    tokens: 0,
                    cost_micros: 10
                })
                .is_ok()
        );
        assert_eq!(ledger.spent(), Usage::default());
    }

    #[test]
    fn usd_converts_to_micros() {
        let b = Budget::from(BudgetSettings {
            max_tokens: None,
            max_cost_usd: Some(2.5),
        });
        assert_eq!(b.max_cost_micros, Some(2_500_000));
    }
}
