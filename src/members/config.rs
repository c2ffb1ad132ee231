//! Settings of the members feature: the CSV import's own body limit and timeout (the one route
//! allowed more than `MAX_BODY_BYTES`; it streams its body instead of buffering it).

use std::time::Duration;

use crate::config::{ConfigError, Settings};

/// Validated settings of the CSV member import.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Body limit (`IMPORT_MAX_BYTES`, default 20 MiB).
    pub max_bytes: usize,
    /// Timeout (`IMPORT_TIMEOUT_MS`, default 300 s).
    pub timeout: Duration,
}

impl ImportConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_bytes: s.size("IMPORT_MAX_BYTES", 20 * 1024 * 1024, 1024, 1 << 30)?,
            timeout: s.millis("IMPORT_TIMEOUT_MS", 300_000, 1_000, 3_600_000)?,
        })
    }
}
