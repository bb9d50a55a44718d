//! The code agent's tools: `git_log`, `git_show`, `git_blame` over a local
//! clone, and `deploy_history` over a change log.

pub mod changes;
pub mod git_tools;
pub mod repo;

pub use changes::{
    ChangeRecord, ChangeSource, ChangesFile, ChangesHttp, DeployHistoryTool, change_records,
};
pub use git_tools::{GitBlameTool, GitLogTool, GitShowTool};
pub use repo::{GitOrigin, GitRepository};
