//! The last committed state of recently written sessions, kept in the
//! writing process so "load state, decide, append" does not parse the
//! snapshot and replay the tail on every message.
//!
//! Safe because it is only a starting point: under the session lock,
//! [`super::append_with`] takes the cached state out, checks its seq against
//! the row's `last_seq`, folds whatever other processes appended since, and
//! only puts a state back after its own transaction really committed (never
//! from inside a caller's transaction, which could still roll back). Events up
//! to a committed seq never change, so a cached state at seq `n` is the state
//! at seq `n` for good.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::ids::SessionId;
use crate::state::DiagnosisState;

/// Up to `capacity` session states, least recently used evicted first.
#[derive(Debug)]
pub struct StateCache {
    capacity: usize,
    // A std mutex: it is held only to move a state in or out, never across
    // an await, so it cannot stall the runtime.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<SessionId, (DiagnosisState, u64)>,
    clock: u64,
}

impl StateCache {
    /// A cache of up to `capacity` sessions; 0 disables it.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// How many sessions it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a session's state out (a writer owns it until it puts one back),
    /// so no clone of a possibly large state is made.
    pub(crate) fn take(&self, session_id: SessionId) -> Option<DiagnosisState> {
        self.lock().entries.remove(&session_id).map(|(s, _)| s)
    }

    /// Keeps `state` unless a newer one of the same session is already there
    /// (two writers of one process may finish in either order).
    pub(crate) fn put(&self, state: DiagnosisState) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some((held, used)) = inner.entries.get_mut(&state.session_id) {
            if held.seq < state.seq {
                *held = state;
            }
            *used = now;
            return;
        }
        if inner.entries.len() >= self.capacity {
            // O(capacity) scan; capacities are hundreds, and this runs once
            // per commit, next to a database round trip.
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                inner.entries.remove(&id);
            }
        }
        inner.entries.insert(state.session_id, (state, now));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written entry
        // (each operation is one map call), so a poisoned cache is still valid.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
