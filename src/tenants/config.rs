//! Settings of the tenant feature: how long a resolved Host stays cached, and the directory of
//! declarative tenant files applied at start-up.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, Settings};

/// Validated tenant settings.
#[derive(Debug, Clone)]
pub struct TenantsConfig {
    /// How long a slug's resolution is reused (`TENANT_CACHE_TTL_MS`, default 5 s); a suspension
    /// made by another process takes effect within it.
    pub cache_ttl: Duration,
    /// Directory of `tenants/*.toml` applied at start-up (`SEREIN_TENANTS_DIR`, default
    /// `tenants`; empty: do not apply).
    pub dir: Option<PathBuf>,
}

impl TenantsConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let dir = s.get("SEREIN_TENANTS_DIR", "tenants".to_owned(), |v| {
            Ok(v.to_owned())
        })?;
        Ok(Self {
            cache_ttl: s.millis("TENANT_CACHE_TTL_MS", 5_000, 0, 300_000)?,
            dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
        })
    }
}
