//! The `agent-worker` binary: everything is in the library and the runtime's
//! service skeleton, so tests build the same service in-process.

fn main() -> std::process::ExitCode {
    rootcause_runtime::service::main::<rootcause_agent_worker::AgentWorker>()
}
