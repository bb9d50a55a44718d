//! The incident stories. Each is one module with a `NAME`, a fixed seed and
//! a `build` function; [`all`] lists them. How to add one:
//! `docs/examples.md`.

pub mod common;
pub mod fare_rounding;
pub mod gds_latency;
pub mod seat_map_oom;

use crate::error::GenError;
use crate::files::BundleFiles;

/// A story the generator can write.
#[derive(Debug, Clone, Copy)]
pub struct Story {
    /// Directory name under `examples/`.
    pub name: &'static str,
    /// Root-cause category of `expected.json`.
    pub category: &'static str,
    /// One sentence for `examples/README.md`.
    pub blurb: &'static str,
    /// Builds the bundle's files in memory.
    pub build: fn() -> Result<BundleFiles, GenError>,
}

/// Every story, in the order `examples/README.md` lists them; the first is
/// the demo's default.
#[must_use]
pub fn all() -> Vec<Story> {
    vec![
        Story {
            name: fare_rounding::NAME,
            category: "bad_deploy",
            blurb: "booking-api quote errors after a fare-engine release whose per-leg rounding throws for currencies without minor units; a seat-map release, a mailer config change and a loyalty flag flip happen in the same hour.",
            build: fare_rounding::build,
        },
        Story {
            name: seat_map_oom::NAME,
            category: "resource_exhaustion",
            blurb: "seat selection fails in bursts at night with no release: seat-map's unbounded hold cache, filled by a larger timetable import, drives each pod to its memory limit and an OOMKill; a loyalty release and a booking-api downscale are in the same hour.",
            build: seat_map_oom::build,
        },
        Story {
            name: gds_latency::NAME,
            category: "dependency_failure",
            blurb: "booking confirmations time out on a Friday afternoon: the partner GDS behind pnr-sync slows to seconds; a booking-api release eleven minutes earlier and a fare-engine flag ramp are red herrings, and the booking database is healthy (db/ snapshots).",
            build: gds_latency::build,
        },
    ]
}
