//! The object store behind files: a local directory (default) or an S3-compatible bucket,
//! through `object_store`. Keys are `tenants/{tenant_id}/files/{file_id}` (made by the
//! database, `files.storage_key`); values are sealed blobs only (the caller seals before
//! [`FileStore::put`] and opens after [`FileStore::get`]), so the directory or bucket holds
//! ciphertext whoever can list it.
//!
//! Invariants: a key is used only if it has the tenant-prefixed shape (a row whose key was
//! tampered with cannot point outside its company's prefix); a missing object on delete is not
//! an error (deletes are retried by the sweep); errors carry no object content.
//!
//! Admission of uploads (memory, fairness):
//! - one upload at a time per person (tenant, user) in this process, held from before the body
//!   is read to the end: a second concurrent one is 429 `upload_in_progress` with
//!   `Retry-After: 1` ([`FileStore::person_slot`]) — so a slow client holds only its own slot;
//! - the body is read WITHOUT a process permit; [`UPLOADS_AT_ONCE`] permits bound only the
//!   inspection (decoding, re-encoding). The owned permit is MOVED INTO the blocking task
//!   ([`FileStore::inspect`]): a client that disconnects, or the route's timeout, drops the
//!   request future, but the permit is released only when the decoding itself ends, so the
//!   number of bitmaps in memory never exceeds the permits. A request waits up to
//!   [`PERMIT_WAIT`] for a permit, then 503 `uploads_busy` with `Retry-After: 1`.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use secrecy::ExposeSecret;

use super::config::StoreConfig;
use crate::db::TenantId;
use crate::error::AppError;

/// Uploads inspected at once per process. One inspection peaks at `FILES_MAX_BYTES` + 2 ×
/// `max_alloc` (see `content`): with the defaults 10 MiB + 2 × 64 MiB ≈ 138 MiB, so two at once
/// ≈ 276 MiB, leaving ≈ 236 MiB of the chart's 512 MiB container limit to the rest of the
/// process (idle ≈ 30–60 MiB) and to bodies being read (≤ `FILES_MAX_BYTES` each, one per
/// person). Raising `FILES_MAX_IMAGE_PIXELS` raises this figure by 8 bytes a pixel.
pub const UPLOADS_AT_ONCE: usize = 2;

/// How long an upload waits for an inspection permit before 503 `uploads_busy`.
pub const PERMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// People with an upload in flight in this process.
type Uploaders = std::sync::Mutex<std::collections::HashSet<(TenantId, uuid::Uuid)>>;

/// A person's upload slot; released on drop.
pub struct PersonSlot {
    uploaders: Arc<Uploaders>,
    key: (TenantId, uuid::Uuid),
}

impl Drop for PersonSlot {
    fn drop(&mut self) {
        // A poisoned lock still holds a valid set: a panic elsewhere must not pin the slot.
        let mut set = self
            .uploaders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.remove(&self.key);
    }
}

/// The configured store, and the upload permits of this process. Cheap to clone.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<dyn ObjectStore>,
    kind: &'static str,
    uploads: Arc<tokio::sync::Semaphore>,
    uploaders: Arc<Uploaders>,
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
            uploaders: Arc::default(),
        }
    }

    /// The person's one upload slot in this process, or 429 `upload_in_progress`.
    pub fn person_slot(&self, tenant: TenantId, user: uuid::Uuid) -> Result<PersonSlot, AppError> {
        let key = (tenant, user);
        let mut set = self
            .uploaders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !set.insert(key) {
            return Err(AppError::TooManyRequests {
                code: "upload_in_progress",
                retry_after_secs: 1,
            });
        }
        Ok(PersonSlot {
            uploaders: self.uploaders.clone(),
            key,
        })
    }

    /// Run `work` (decoding, re-encoding) on the blocking pool under an inspection permit that
    /// the blocking task itself owns: dropping the returned future (client gone, timeout) does
    /// not free the permit while `work` still runs. No permit within [`PERMIT_WAIT`]: 503
    /// `uploads_busy`.
    pub async fn inspect<T, F>(&self, work: F) -> Result<T, AppError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let busy = || AppError::Unavailable {
            code: "uploads_busy",
            retry_after_secs: 1,
        };
        let permit = tokio::time::timeout(PERMIT_WAIT, self.uploads.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| AppError::Internal("file inspection task failed".into()))
    }

    /// Inspection permits free now (tests and metrics).
    pub fn free_permits(&self) -> usize {
        self.uploads.available_permits()
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn store() -> FileStore {
        FileStore::new(Arc::new(object_store::memory::InMemory::new()), "memory")
    }

    #[tokio::test]
    async fn a_dropped_upload_keeps_its_permit_until_the_decoding_ends() {
        let files = store();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let running = files.clone();
        let request = tokio::spawn(async move {
            running
                .inspect(move || {
                    let _ = started_tx.send(());
                    // The "decoding": runs until the test lets it finish.
                    let _ = wait.recv();
                })
                .await
        });
        started.await.unwrap();
        // The client goes away (or the route times out): the request future is dropped.
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        // The decoding still runs, so its permit is still taken.
        assert_eq!(files.free_permits(), UPLOADS_AT_ONCE - 1);
        release.send(()).unwrap();
        // Once it ends, every permit comes back.
        let all = u32::try_from(UPLOADS_AT_ONCE).unwrap();
        let back = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            files.uploads.acquire_many(all),
        )
        .await;
        assert!(back.is_ok());
    }

    #[tokio::test]
    async fn one_upload_at_a_time_per_person() {
        let files = store();
        let tenant = TenantId(uuid::Uuid::now_v7());
        let (me, you) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let slot = files.person_slot(tenant, me).unwrap();
        let err = files.person_slot(tenant, me).err().unwrap();
        assert!(matches!(
            err,
            AppError::TooManyRequests {
                code: "upload_in_progress",
                retry_after_secs: 1
            }
        ));
        // Somebody else, or the same person in another company, is not held up.
        let _other = files.person_slot(tenant, you).unwrap();
        let _elsewhere = files
            .person_slot(TenantId(uuid::Uuid::now_v7()), me)
            .unwrap();
        drop(slot);
        assert!(files.person_slot(tenant, me).is_ok());
    }
}
