//! The object store behind files: a local directory (default) or an S3-compatible bucket,
//! through `object_store`. Keys are `tenants/{tenant_id}/files/{file_id}` (made by the
//! database, `files.storage_key`); values are sealed blobs only (the caller seals before
//! [`FileStore::put`] and opens after [`FileStore::get`]), so the directory or bucket holds
//! ciphertext whoever can list it.
//!
//! Invariants: a key is used only if it has the tenant-prefixed shape (a row whose key was
//! tampered with cannot point outside its company's prefix); a missing object on delete is not
//! an error (deletes are retried by the sweep); errors carry no object content.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use secrecy::ExposeSecret;

use super::config::StoreConfig;
use crate::db::TenantId;
use crate::error::AppError;

/// Uploads inspected at once per process: each holds its file (up to `FILES_MAX_BYTES`) and,
/// for an image, a decoded bitmap (up to `FILES_MAX_IMAGE_SIDE`² × 4 bytes). Beyond: 503.
pub const UPLOADS_AT_ONCE: usize = 4;

/// The configured store, and the upload permits of this process. Cheap to clone.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<dyn ObjectStore>,
    kind: &'static str,
    uploads: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("kind", &self.kind)
            .finish()
    }
}

/// The storage key of a file (what `app_private.file_create` stores).
pub fn storage_key(tenant: TenantId, file: uuid::Uuid) -> String {
    format!("tenants/{}/files/{}", tenant.as_uuid(), file)
}

fn store_error(op: &str, e: &object_store::Error) -> AppError {
    // The message names the key at most (ids), never content.
    tracing::warn!(operation = op, error = %e, "object store operation failed");
    AppError::Unavailable {
        code: "storage_unavailable",
        retry_after_secs: 2,
    }
}

impl FileStore {
    /// Open the configured store (creating the local directory if needed).
    pub fn open(config: &StoreConfig) -> anyhow::Result<Self> {
        match config {
            StoreConfig::Fs { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("FILES_DIR: cannot create {}: {e}", dir.display())
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| anyhow::anyhow!("FILES_DIR: {e}"))?;
                Ok(Self::new(Arc::new(fs), "fs"))
            }
            StoreConfig::S3(s3) => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    b = b.with_endpoint(endpoint);
                }
                if let Some(id) = &s3.access_key_id {
                    b = b.with_access_key_id(id.expose_secret());
                }
                if let Some(secret) = &s3.secret_access_key {
                    b = b.with_secret_access_key(secret.expose_secret());
                }
                let s3 = b.build().map_err(|e| anyhow::anyhow!("FILES_S3_*: {e}"))?;
                Ok(Self::new(Arc::new(s3), "s3"))
            }
        }
    }

    fn new(inner: Arc<dyn ObjectStore>, kind: &'static str) -> Self {
        Self {
            inner,
            kind,
            uploads: Arc::new(tokio::sync::Semaphore::new(UPLOADS_AT_ONCE)),
        }
    }

    /// A permit to read and inspect one upload now, or 503 `uploads_busy`.
    pub fn upload_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
        self.uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| AppError::Unavailable {
                code: "uploads_busy",
                retry_after_secs: 1,
            })
    }

    /// `fs` or `s3`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    fn path(key: &str) -> Result<ObjectPath, AppError> {
        let valid = key
            .strip_prefix("tenants/")
            .and_then(|rest| rest.split_once("/files/"))
            .is_some_and(|(t, f)| {
                uuid::Uuid::parse_str(t).is_ok() && uuid::Uuid::parse_str(f).is_ok()
            });
        if !valid {
            return Err(AppError::Internal("malformed storage key".into()));
        }
        ObjectPath::parse(key).map_err(|_| AppError::Internal("malformed storage key".into()))
    }

    /// Store a sealed blob under `key`.
    pub async fn put(&self, key: &str, sealed: Vec<u8>) -> Result<(), AppError> {
        let path = Self::path(key)?;
        self.inner
            .put(&path, PutPayload::from(sealed))
            .await
            .map(|_| ())
            .map_err(|e| store_error("put", &e))
    }

    /// The sealed blob under `key`; `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AppError> {
        let path = Self::path(key)?;
        match self.inner.get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| store_error("get", &e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("get", &e)),
        }
    }

    /// Remove every object of a company (`tenants/{tenant}/`): its offboarding. Returns how
    /// many were removed.
    pub async fn delete_tenant(&self, tenant: TenantId) -> Result<usize, AppError> {
        use futures_util::TryStreamExt as _;
        let prefix = ObjectPath::from(format!("tenants/{}", tenant.as_uuid()));
        let objects: Vec<object_store::ObjectMeta> = self
            .inner
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| store_error("list", &e))?;
        let mut removed = 0usize;
        for meta in objects {
            match self.inner.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                Err(e) => return Err(store_error("delete", &e)),
            }
        }
        Ok(removed)
    }

    /// Remove the object under `key` (absent already is fine).
    pub async fn delete(&self, key: &str) -> Result<(), AppError> {
        let path = Self::path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete", &e)),
        }
    }
}
