//! The agents of a diagnosis. Today: [`offline`], the investigation of an
//! incident bundle by the analyzers alone (no model), moved out of the CLI so
//! the agent-worker, `rootcause diagnose` and `rootcause eval` run the same
//! code. The LLM tool-calling agents and the coordinator build on it.

pub mod offline;
