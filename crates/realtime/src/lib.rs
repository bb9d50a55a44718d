//! rootcause-realtime: see the crate documentation as it is filled in.
