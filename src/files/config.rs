//! Settings of the files feature: limits of an upload and where objects are stored.
//!
//! `FILES_STORE=fs` (default) keeps objects under `FILES_DIR` (default `{SEREIN_DATA_DIR}/files`);
//! `FILES_STORE=s3` uses an S3-compatible bucket (`FILES_S3_BUCKET`, `FILES_S3_REGION`,
//! `FILES_S3_ENDPOINT` for MinIO and others, `FILES_S3_ACCESS_KEY_ID` and
//! `FILES_S3_SECRET_ACCESS_KEY` as secrets, `FILES_S3_ALLOW_HTTP` for a local server). Either
//! way the objects are ciphertext (see the module header of [`super`]).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{ConfigError, Settings, config_error};

/// Where objects live.
#[derive(Clone)]
pub enum StoreConfig {
    /// A local directory (one pod, or a shared volume).
    Fs { dir: PathBuf },
    /// An S3-compatible bucket.
    S3(S3Config),
}

/// An S3-compatible bucket.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Empty: AWS itself.
    pub endpoint: Option<String>,
    pub access_key_id: Option<SecretString>,
    pub secret_access_key: Option<SecretString>,
    /// Allow `http://` endpoints (a local MinIO or test server).
    pub allow_http: bool,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fs { dir } => f.debug_struct("Fs").field("dir", dir).finish(),
            Self::S3(s3) => f
                .debug_struct("S3")
                .field("bucket", &s3.bucket)
                .field("region", &s3.region)
                .field("endpoint", &s3.endpoint)
                .field("allow_http", &s3.allow_http)
                .finish_non_exhaustive(),
        }
    }
}

/// Validated settings of the files feature.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Largest accepted file (`FILES_MAX_BYTES`, default 10 MiB).
    pub max_bytes: usize,
    /// Largest decoded image side in pixels (`FILES_MAX_IMAGE_SIDE`, default 8,192).
    pub max_image_side: u32,
    /// Largest decoded image in pixels, width × height (`FILES_MAX_IMAGE_PIXELS`, default
    /// 16,777,216 = 4096²); the decoder's memory cap is 4 bytes a pixel of it (64 MiB).
    pub max_image_pixels: u64,
    /// Timeout of an upload (`FILES_TIMEOUT_MS`, default 60 s).
    pub timeout: Duration,
    pub store: StoreConfig,
}

impl FilesConfig {
    pub fn load(s: &Settings<'_>, data_dir: &std::path::Path) -> Result<Self, ConfigError> {
        let store = match s
            .get("FILES_STORE", "fs".to_owned(), |v| {
                Ok(v.to_ascii_lowercase())
            })?
            .as_str()
        {
            "fs" => StoreConfig::Fs {
                dir: s
                    .opt("FILES_DIR", |v| Ok(PathBuf::from(v)))?
                    .unwrap_or_else(|| data_dir.join("files")),
            },
            "s3" => {
                let bucket = s
                    .opt("FILES_S3_BUCKET", |v| Ok(v.to_owned()))?
                    .ok_or_else(|| {
                        config_error("FILES_S3_BUCKET", "required with FILES_STORE=s3")
                    })?;
                StoreConfig::S3(S3Config {
                    bucket,
                    region: s.get("FILES_S3_REGION", "us-east-1".to_owned(), |v| {
                        Ok(v.to_owned())
                    })?,
                    endpoint: s.opt("FILES_S3_ENDPOINT", |v| Ok(v.to_owned()))?,
                    access_key_id: s.secret("FILES_S3_ACCESS_KEY_ID"),
                    secret_access_key: s.secret("FILES_S3_SECRET_ACCESS_KEY"),
                    allow_http: s.flag("FILES_S3_ALLOW_HTTP", false)?,
                })
            }
            other => {
                return Err(config_error(
                    "FILES_STORE",
                    format!("must be fs or s3, not {other:?}"),
                ));
            }
        };
        Ok(Self {
            max_bytes: s.size("FILES_MAX_BYTES", 10 * 1024 * 1024, 1024, 1 << 30)?,
            max_image_side: u32::try_from(s.int("FILES_MAX_IMAGE_SIDE", 8192, 16, 65_535)?)
                .unwrap_or(8192),
            max_image_pixels: s.int("FILES_MAX_IMAGE_PIXELS", 4096 * 4096, 256, 100_000_000)?,
            timeout: s.millis("FILES_TIMEOUT_MS", 60_000, 1_000, 3_600_000)?,
            store,
        })
    }
}
