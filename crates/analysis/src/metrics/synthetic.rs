//! Deterministic synthetic series with known change points, shared by the
//! detector tests and the false-positive bench so both measure the same
//! thing. Not used by the analyzers themselves.

use super::series::Sample;

/// A small deterministic generator (SplitMix64) with Gaussian draws
/// (Box–Muller); a dependency would add nothing for this.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed; equal seeds give equal sequences.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "53 random bits")]
        let v = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        v
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Poisson draw (Knuth for small means, normal approximation above 50).
    pub fn poisson(&mut self, mean: f64) -> f64 {
        if mean > 50.0 {
            return (mean + mean.sqrt() * self.normal()).round().max(0.0);
        }
        let l = (-mean).exp();
        let mut k = 0.0;
        let mut p = 1.0;
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }
}

/// Scrape interval of the synthetic series.
pub const STEP_MS: i64 = 30_000;

/// Length of the synthetic series.
pub const LEN: usize = 240;

/// Where the baseline of the synthetic series ends (index).
pub const BASELINE: usize = 100;

/// Which shape of change a synthetic series carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Gaussian noise only: any detection is a false positive.
    Noise,
    /// Poisson counts turned into a counter (about 1 event per scrape).
    CounterNoise,
    /// +6 σ level shift.
    Step,
    /// Linear rise of 1 σ per sample for 20 samples, then flat.
    Ramp,
    /// +15 σ for 2 samples.
    Spike,
    /// Sine of ±8 σ, period 30 samples, plus a +6 σ step.
    SeasonalStep,
    /// Counter at ~50/s with a reset to zero at sample 120 and its rate
    /// up 50 % at the change.
    CounterReset,
    /// +6 σ step with 20 % of the samples missing.
    MissingPoints,
}

impl Shape {
    /// Every shape that carries a change.
    pub const CHANGES: [Shape; 6] = [
        Self::Step,
        Self::Ramp,
        Self::Spike,
        Self::SeasonalStep,
        Self::CounterReset,
        Self::MissingPoints,
    ];

    /// Whether the values are a cumulative counter (detect on its rate).
    #[must_use]
    pub fn is_counter(self) -> bool {
        matches!(self, Self::CounterNoise | Self::CounterReset)
    }
}

/// A synthetic series and the true onset (timestamp), if any.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// Raw samples (counter values for counter shapes).
    pub samples: Vec<Sample>,
    /// True change onset.
    pub onset_ms: Option<i64>,
}

fn ts(i: usize) -> i64 {
    #[expect(clippy::cast_possible_wrap, reason = "small indices")]
    let i = i as i64;
    i * STEP_MS
}

/// Builds a series of `shape` with the change at index `at` (ignored for
/// noise shapes).
#[must_use]
pub fn generate(shape: Shape, at: usize, rng: &mut Rng) -> Synthetic {
    let sigma = 5.0;
    let level = 100.0;
    let mut samples = Vec::with_capacity(LEN);
    let mut onset_ms = Some(ts(at));
    match shape {
        Shape::Noise => {
            onset_ms = None;
            for i in 0..LEN {
                samples.push(Sample {
                    timestamp_ms: ts(i),
                    value: level + sigma * rng.normal(),
                });
            }
        }
        Shape::CounterNoise => {
            onset_ms = None;
            let mut c = 0.0;
            for i in 0..LEN {
                c += rng.poisson(1.0);
                samples.push(Sample {
                    timestamp_ms: ts(i),
                    value: c,
                });
            }
        }
        Shape::Step | Shape::MissingPoints | Shape::Ramp | Shape::Spike | Shape::SeasonalStep => {
            for i in 0..LEN {
                let shift = match shape {
                    Shape::Ramp if i >= at => {
                        #[expect(clippy::cast_precision_loss, reason = "small")]
                        let k = ((i - at + 1).min(20)) as f64;
                        k * sigma
                    }
                    Shape::Spike if i == at || i == at + 1 => 15.0 * sigma,
                    Shape::Step | Shape::MissingPoints | Shape::SeasonalStep if i >= at => {
                        6.0 * sigma
                    }
                    _ => 0.0,
                };
                #[expect(clippy::cast_precision_loss, reason = "small")]
                let season = if shape == Shape::SeasonalStep {
                    8.0 * sigma * (std::f64::consts::TAU * i as f64 / 30.0).sin()
                } else {
                    0.0
                };
                if shape == Shape::MissingPoints && rng.uniform() < 0.2 && i != at {
                    continue;
                }
                samples.push(Sample {
                    timestamp_ms: ts(i),
                    value: level + season + shift + sigma * rng.normal(),
                });
            }
        }
        Shape::CounterReset => {
            let mut c = 1e6;
            for i in 0..LEN {
                let rate = if i >= at { 75.0 } else { 50.0 };
                #[expect(clippy::cast_precision_loss, reason = "small")]
                let inc = rng.poisson(rate * (STEP_MS / 1000) as f64);
                c = if i == 120 { inc } else { c + inc };
                samples.push(Sample {
                    timestamp_ms: ts(i),
                    value: c,
                });
            }
        }
    }
    Synthetic { samples, onset_ms }
}
