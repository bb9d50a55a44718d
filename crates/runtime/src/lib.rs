//! rootcause-runtime: see the crate documentation as it is filled in.
