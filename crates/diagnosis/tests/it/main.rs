//! Integration tests of rootcause-diagnosis (one binary, one module per area).

mod store;
