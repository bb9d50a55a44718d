//! Event store tests.
