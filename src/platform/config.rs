//! Settings of platform administration: the offboarding grace period and the purge job.

use std::time::Duration;

use crate::config::{ConfigError, Settings};

/// Validated platform settings.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Days between an offboarding request and the purge (`OFFBOARDING_GRACE_DAYS`, 0–365,
    /// default 30). A request may ask for another grace with `?grace_days=`.
    pub offboarding_grace_days: u32,
    /// Run the purge job inside `serve` (`PURGE_WORKER`, default true).
    pub purge_worker: bool,
    /// How often the job looks for tenants due (`PURGE_INTERVAL_SECS`, default 3600).
    pub purge_interval: Duration,
}

impl PlatformConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            offboarding_grace_days: u32::try_from(s.int("OFFBOARDING_GRACE_DAYS", 30, 0, 365)?)
                .unwrap_or(30),
            purge_worker: s.flag("PURGE_WORKER", true)?,
            purge_interval: Duration::from_secs(s.int("PURGE_INTERVAL_SECS", 3_600, 1, 86_400)?),
        })
    }
}
