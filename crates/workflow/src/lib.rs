//! The diagnosis workflow: which agent runs next and when a diagnosis stops,
//! decided as a pure function of its state.
//!
//! A diagnosis runs one of two graphs ([`Graph::simple`], [`Graph::complex`]),
//! chosen explicitly or by a rule on the incident ([`choose_mode`]). The
//! graphs are data: nodes ([`Node`], one per [`Phase`](rootcause_diagnosis::Phase)),
//! edges with [`Condition`]s, and interrupts (deadline, budget) that end a
//! diagnosis from any node. [`next`] takes the state, the clock and the
//! [`WorkflowConfig`] and returns the [`Action`]s to record; nothing here does
//! I/O or reads a clock, so the orchestrator, the in-process CLI and the
//! tests all take the same path.
//!
//! How the orchestrator uses it, in one transaction per message:
//! 1. apply the message's events to the state (an agent's completion, a
//!    plan the coordinator made, a [`control`] such as pause);
//! 2. `loop { let a = next(&state, now, &config); if a.is_empty() { break } }`,
//!    appending each batch's events ([`Action::to_event`]) and publishing a
//!    task for each [`Action::Dispatch`] through the outbox;
//! 3. arm a timer for [`wake_at`], so deadlines and agent timeouts fire even
//!    when no message arrives.
//!
//! Layout:
//! - [`graph`] has nodes, conditions, edges, the two graphs, their rendering;
//! - [`mod@decide`] has [`next`], [`control`], [`wake_at`], [`conclusion`], [`Action`];
//! - [`drive`] has [`absorb`] (a worker's report as events), [`advance`]
//!   (`next` until settled) and [`task_for`], the step the orchestrator and
//!   `diagnose --local` share;
//! - [`plan`] has questions, default plans, derived task ids;
//! - [`config`] has [`WorkflowConfig`], [`choose_mode`], [`deadline_for`];
//! - [`error`] has [`WorkflowError`].

pub mod config;
pub mod decide;
pub mod drive;
pub mod error;
pub mod graph;
pub mod plan;

pub use config::{ModeChoice, WorkflowConfig, choose_mode, deadline_for};
pub use decide::{Action, Control, conclusion, control, facts, next, wake_at};
pub use drive::{Dispatch, DriveError, PlannedEvent, Step, absorb, advance, task_for};
pub use error::WorkflowError;
pub use graph::{Condition, Edge, Facts, Graph, GraphDefect, Interrupt, Node};
pub use plan::{agreeing_kinds, default_plan, evidence_kind_of, task_id};

/// The examples in `docs/WORKFLOWS.md` run as doc tests.
#[doc = include_str!("../../../docs/WORKFLOWS.md")]
#[cfg(doctest)]
pub struct WorkflowsDoc;
