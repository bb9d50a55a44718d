//! The `[tools]` section: where the tools read their data, owned here so the
//! agent-worker, the CLI and tests share one definition and one set of
//! defaults.
//!
//! ```toml
//! [tools]
//! bundle_dir = "examples/scenarios/cart-errors-after-release"  # ROOTCAUSE__TOOLS__BUNDLE_DIR
//! tenant = "local"                                              # ROOTCAUSE__TOOLS__TENANT
//! git_cache_dir = "/var/cache/rootcause/git"                    # ROOTCAUSE__TOOLS__GIT_CACHE_DIR
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rootcause_diagnosis::TenantId;
use serde::Deserialize;

use crate::bundle::Bundle;
use crate::error::ToolError;
use crate::registry::{CallLimits, ToolRegistry};

/// The tenant that owns data read without a tenant of its own (a bundle on
/// disk, the CLI): one name everywhere, so a knowledge base ingested by the
/// CLI is visible to a worker started with the defaults.
pub const DEFAULT_TENANT: &str = "local";

/// The name of the folder, under the system temp dir, where `repo.bundle`
/// files are unpacked when neither `git_cache_dir` nor a user cache
/// directory is available.
pub const DEFAULT_GIT_CACHE: &str = "rootcause-git-cache";

/// Where `repo.bundle` files are unpacked by default: the user's own cache
/// directory (`$XDG_CACHE_HOME/rootcause/git` or `~/.cache/rootcause/git`),
/// not a shared `/tmp` another local user could pre-create; the temp dir
/// only when neither is set.
#[must_use]
pub fn default_git_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .map_or_else(
            || std::env::temp_dir().join(DEFAULT_GIT_CACHE),
            |cache| cache.join("rootcause").join("git"),
        )
}

/// `[tools]`: the data the tools serve. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsSettings {
    /// An incident bundle served offline by the tools (`logs/`,
    /// `metrics.om`, `repo.bundle`, `changes.jsonl`, `db/`).
    #[serde(default)]
    pub bundle_dir: Option<PathBuf>,
    /// Tenant that owns the bundle's data; tools refuse other tenants.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Where `repo.bundle` is unpacked; [`default_git_cache`] when unset.
    #[serde(default)]
    pub git_cache_dir: Option<PathBuf>,
}

impl Default for ToolsSettings {
    fn default() -> Self {
        Self {
            bundle_dir: None,
            tenant: default_tenant(),
            git_cache_dir: None,
        }
    }
}

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

impl ToolsSettings {
    /// The git cache folder to use.
    #[must_use]
    pub fn git_cache(&self) -> PathBuf {
        self.git_cache_dir.clone().unwrap_or_else(default_git_cache)
    }

    /// A registry with the standard tools over `bundle_dir` (none when it is
    /// unset: live connectors are registered by whoever configures them).
    ///
    /// # Errors
    /// [`ToolError`] when the bundle cannot be opened or its tools cannot be
    /// registered; the error names the bundle folder.
    pub fn registry(&self, limits: CallLimits) -> Result<ToolRegistry, ToolError> {
        let mut registry = ToolRegistry::new(limits);
        if let Some(dir) = &self.bundle_dir {
            let bundle = Bundle::open(dir, TenantId::new(self.tenant.clone()))?;
            register(&mut registry, bundle, &self.git_cache())?;
        }
        Ok(registry)
    }
}

fn register(registry: &mut ToolRegistry, bundle: Bundle, cache: &Path) -> Result<(), ToolError> {
    crate::toolbox::register_bundle_tools(registry, &Arc::new(bundle), cache, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_cli() {
        let s: ToolsSettings = serde_json::from_str("{}").expect("empty section");
        assert_eq!(s.tenant, "local");
        assert_eq!(s.git_cache(), default_git_cache());
        assert!(
            s.git_cache().ends_with("rootcause/git") || s.git_cache().ends_with(DEFAULT_GIT_CACHE),
            "{}",
            s.git_cache().display()
        );
        assert!(s.bundle_dir.is_none());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            serde_json::from_str::<ToolsSettings>(r#"{"bundle":"x"}"#).expect_err("typo refused");
        assert!(err.to_string().contains("unknown field `bundle`"), "{err}");
    }

    #[test]
    fn without_a_bundle_the_registry_is_empty() {
        let registry = ToolsSettings::default()
            .registry(CallLimits::default())
            .expect("registry");
        assert!(registry.names().is_empty());
    }
}
