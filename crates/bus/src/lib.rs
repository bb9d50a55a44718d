//! rootcause-bus: see the crate documentation as it is filled in.
