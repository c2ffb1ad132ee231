//! The flows of files: upload (inspect → seal → record → store, one transaction), open (the
//! definer decides → fetch → open → verify the digest), delete (tombstone → commit → remove
//! the object), avatars, and the object sweep of the job worker.

use sha2::{Digest as _, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::content::{self, Served};
use super::model::{FileId, FileInfo, Purpose};
use super::repo::{self, NewFile};
use super::store::{FileStore, storage_key};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::crypto::keyring::{Aad, CryptoError, KeyScope, Keyring};
use crate::crypto::sealed::{self, DataKey, KEY_LEN};
use crate::db::{Db, TenantId, UserId, WorkerTx};
use crate::error::{AppError, AppResult};

const TABLE: &str = "files";
const COLUMN: &str = "content";
/// The AAD column of an attachment's wrapped data key.
const KEY_COLUMN: &str = "content_key";
/// The key version an attachment's blob names: its own data key has one version only.
const DATA_KEY_VERSION: u32 = 1;

/// `v1|{tenant}|files|content|{id}`: the tenant is the company the file was uploaded in.
pub fn aad(tenant: TenantId, id: Uuid) -> Aad<'static> {
    Aad {
        tenant,
        table: TABLE,
        column: COLUMN,
        row_id: id,
    }
}

/// A form as read from the request.
pub struct Upload {
    pub bytes: Vec<u8>,
    pub declared: Option<String>,
    pub name: Option<String>,
    pub purpose: Purpose,
}

/// Inspect, seal and store an upload of the actor's.
pub async fn upload(state: &AppState, actor: &Actor, form: Upload) -> AppResult<FileInfo> {
    let limits = content::ImageLimits {
        max_side: state.config.files.max_image_side,
        max_pixels: state.config.files.max_image_pixels,
        fit: if form.purpose == Purpose::Avatar {
            content::AVATAR_FIT
        } else {
            content::IMAGE_FIT
        },
    };
    let Upload {
        bytes,
        declared,
        name,
        purpose,
    } = form;
    let raw_name = name.clone();
    // Decoding and encoding images is CPU and memory work: on the blocking pool, under an
    // inspection permit the blocking task owns (`FileStore::inspect`).
    let inspected = state
        .files
        .inspect(move || {
            content::inspect(
                bytes,
                declared.as_deref(),
                name.as_deref(),
                purpose.needs_image(),
                &limits,
            )
        })
        .await??;
    let digest = Sha256::digest(&inspected.bytes).to_vec();
    let file_name = content::sanitise_name(raw_name.as_deref(), inspected.served);
    let size_bytes = i64::try_from(inspected.bytes.len()).unwrap_or(i64::MAX);
    let id = FileId::new();
    let now = state.clock.now();
    let mut tx = actor.begin(state).await?;
    let (sealed, wrapped_key) = seal(
        &state.keyring,
        &mut tx,
        actor,
        purpose,
        id.as_uuid(),
        &inspected.bytes,
    )
    .await?;
    let outcome = repo::create(
        &mut tx,
        &NewFile {
            id,
            purpose,
            content_type: inspected.served.mime(),
            size_bytes,
            sha256: &digest,
            file_name: &file_name,
            wrapped_key: wrapped_key.as_deref(),
        },
        now,
    )
    .await?;
    match outcome.as_str() {
        "created" => {}
        "forbidden" => {
            return Err(AppError::forbidden_because(
                "purpose_not_allowed",
                "Article images are uploaded by practitioners.",
            ));
        }
        _ => return Err(AppError::NotFound),
    }
    // Written before the commit: a row never names an object that was not stored. A commit
    // that fails after this leaves an object no row names: ciphertext only, under a key whose
    // id nobody was told; it stays until the company's prefix is removed at offboarding (the
    // sweep walks rows, not the store — listing a bucket per round is not cheap).
    state
        .files
        .put(&storage_key(actor.tenant, id.as_uuid()), sealed)
        .await?;
    tx.commit().await?;
    tracing::info!(file = %id, purpose = purpose.as_str(), size = size_bytes, "file stored");
    Ok(FileInfo {
        id,
        purpose,
        content_type: inspected.served.mime().to_owned(),
        size_bytes,
        sha256: hex(&digest),
        file_name,
        url: id.url(),
        created_at: now,
    })
}

/// The AAD of an attachment's data key: the file bound with the person whose subject key
/// wraps it (a wrapped key moved to another file or claimed for another person does not open).
fn key_aad(tenant: TenantId, id: Uuid, subject: UserId) -> Aad<'static> {
    Aad {
        tenant,
        table: TABLE,
        column: KEY_COLUMN,
        row_id: Aad::bound_row(id, &[subject.as_uuid().as_bytes()]),
    }
}

/// Seal an upload: avatars and article images under the identity key; an attachment under a
/// fresh data key, wrapped under the uploader's own subject key (returned with the blob).
async fn seal(
    keyring: &Keyring,
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    purpose: Purpose,
    id: Uuid,
    plain: &[u8],
) -> AppResult<(Vec<u8>, Option<Vec<u8>>)> {
    let aad = aad(actor.tenant, id);
    if purpose.platform_sealed() {
        return Ok((keyring.seal_identity(&aad, plain)?, None));
    }
    let data_key = DataKey::generate()?;
    let blob = sealed::seal_with(&data_key, DATA_KEY_VERSION, &aad.encode()?, plain)?;
    let wrapped = keyring
        .seal(
            conn,
            actor.tenant,
            KeyScope::Subject(actor.user),
            &key_aad(actor.tenant, id, actor.user),
            data_key.expose(),
        )
        .await?;
    Ok((blob, Some(wrapped)))
}

/// Unwrap an attachment's data key (under `subject`'s key, through the key door's rules).
async fn data_key(
    keyring: &Keyring,
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    id: Uuid,
    subject: UserId,
    wrapped: &[u8],
) -> Result<DataKey, CryptoError> {
    let raw = keyring
        .open(
            conn,
            tenant,
            KeyScope::Subject(subject),
            &key_aad(tenant, id, subject),
            wrapped,
        )
        .await?;
    let bytes: &[u8; KEY_LEN] = raw
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::Unreadable)?;
    Ok(DataKey::from_bytes(bytes))
}

/// For sending a message: make the actor's attachment `file` sealed for `employee` (the
/// conversation's subject key, like the message body) inside the caller's transaction — a
/// practitioner's upload is re-wrapped from their key to the employee's (60 bytes in the row;
/// the object is not touched). Nothing happens when `file` is not a live attachment of the
/// actor's here, or is sealed for the employee already: `app_private.message_send` then decides
/// (and refuses an attachment sealed for anyone else).
pub async fn seal_attachment_for(
    keyring: &Keyring,
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    file: Uuid,
    employee: UserId,
) -> AppResult<()> {
    let Some((Some(subject), Some(wrapped))) = repo::own_key(conn, file).await? else {
        return Ok(());
    };
    if subject == employee {
        return Ok(());
    }
    let key = data_key(keyring, conn, tenant, file, subject, &wrapped).await?;
    let rewrapped = keyring
        .seal(
            conn,
            tenant,
            KeyScope::Subject(employee),
            &key_aad(tenant, file, employee),
            key.expose(),
        )
        .await?;
    repo::key_set(conn, file, employee, &rewrapped).await?;
    Ok(())
}

/// A file opened for its reader.
pub struct Opened {
    pub served: Served,
    pub sha256: Vec<u8>,
    pub file_name: String,
    pub bytes: Zeroizing<Vec<u8>>,
}

fn unavailable() -> AppError {
    AppError::Gone("file_unavailable")
}

/// Open a file the actor may read (404 otherwise, whatever the reason).
pub async fn open(state: &AppState, actor: &Actor, id: Uuid) -> AppResult<Opened> {
    let mut tx = actor.begin(state).await?;
    let file = repo::readable(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let purpose = Purpose::parse(&file.purpose).map_err(|_| AppError::NotFound)?;
    let served = Served::parse(&file.content_type).ok_or(AppError::NotFound)?;
    if file.storage_key != storage_key(file.tenant, file.id) {
        return Err(unavailable());
    }
    let blob = state
        .files
        .get(&file.storage_key)
        .await?
        .ok_or_else(unavailable)?;
    let aad = aad(file.tenant, file.id);
    let bytes = if purpose.platform_sealed() {
        state.keyring.open_identity(&aad, &blob)
    } else if file.tenant == actor.tenant {
        match repo::key_of(&mut tx, file.id).await? {
            // An attachment: its data key under a person's subject key (destroyed at that
            // person's erasure: then 410, like any record that no longer opens).
            Some((Some(subject), Some(wrapped))) => {
                match data_key(
                    &state.keyring,
                    &mut tx,
                    actor.tenant,
                    file.id,
                    subject,
                    &wrapped,
                )
                .await
                {
                    Ok(key) => aad
                        .encode()
                        .and_then(|ad| sealed::open_with(&key, &ad, &blob)),
                    Err(e) => Err(e),
                }
            }
            // Attachments stored before migration 20261209000601: the clinical key.
            _ => {
                state
                    .keyring
                    .open(&mut tx, actor.tenant, KeyScope::Clinical, &aad, &blob)
                    .await
            }
        }
    } else {
        // Company-sealed files are never readable from another company (the definer agrees).
        return Err(AppError::NotFound);
    }
    .map_err(|_| unavailable())?;
    tx.commit().await?;
    if Sha256::digest(bytes.as_slice()).as_slice() != file.sha256.as_slice() {
        tracing::warn!(file = %file.id, "a stored file does not match its digest");
        return Err(unavailable());
    }
    Ok(Opened {
        served,
        sha256: file.sha256,
        file_name: file.file_name,
        bytes,
    })
}

/// Delete a file of the actor's: tombstone and unlink in the database, then remove the object
/// (if that fails, the job worker's sweep removes it later).
pub async fn delete(state: &AppState, actor: &Actor, id: Uuid) -> AppResult<()> {
    let mut tx = actor.begin(state).await?;
    let key = repo::delete(&mut tx, id, state.clock.now())
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    if let Err(e) = state.files.delete(&key).await {
        tracing::warn!(file = %id, error = %e, "object removal deferred to the sweep");
    }
    tracing::info!(file = %id, "file deleted");
    Ok(())
}

/// Make one of the actor's avatar uploads their avatar.
pub async fn set_avatar(state: &AppState, actor: &Actor, file: FileId) -> AppResult<()> {
    let mut tx = actor.begin(state).await?;
    if !repo::avatar_set(&mut tx, file, state.clock.now()).await? {
        return Err(AppError::invalid(
            "file_id",
            "must be an avatar upload of yours (purpose `avatar`) in this company",
        ));
    }
    tx.commit().await
}

/// Remove the actor's avatar.
pub async fn clear_avatar(state: &AppState, actor: &Actor) -> AppResult<()> {
    let mut tx = actor.begin(state).await?;
    if !repo::avatar_clear(&mut tx, state.clock.now()).await? {
        return Err(AppError::NotFound);
    }
    tx.commit().await
}

/// Files per sweep round.
const SWEEP_BATCH: i32 = 200;

/// The job worker's object sweep: tombstone unlinked uploads older than a day, remove the
/// objects of tombstoned files, forget their rows; then remove the objects of offboarded
/// companies (whose rows the purge deleted). Returns how many objects were removed. An object
/// that cannot be removed now keeps its row (retried next time).
pub async fn sweep(db: &Db, store: &FileStore, now: time::OffsetDateTime) -> AppResult<usize> {
    let mut total = 0usize;
    loop {
        let mut tx = WorkerTx::begin(db).await?;
        let batch = repo::sweep(&mut tx, now, SWEEP_BATCH).await?;
        let full = batch.len() >= usize::try_from(SWEEP_BATCH).unwrap_or(usize::MAX);
        let mut done = Vec::with_capacity(batch.len());
        for file in batch {
            match store.delete(&file.storage_key).await {
                Ok(()) => done.push(file),
                Err(_) => tracing::warn!(file = %file.id, "object removal failed; retried later"),
            }
        }
        let n = repo::forget(&mut tx, &done).await?;
        tx.commit().await?;
        total = total.saturating_add(usize::try_from(n).unwrap_or(0));
        if !full || done.is_empty() {
            break;
        }
    }
    // Offboarded companies: their whole prefix (the purge deleted their rows).
    let mut tx = WorkerTx::begin(db).await?;
    for tenant in repo::offboarded(&mut tx, 10).await? {
        match store.delete_tenant(tenant).await {
            Ok(n) => {
                repo::offboarded_done(&mut tx, tenant, now).await?;
                tracing::info!(tenant = %tenant, objects = n, "offboarded company's files removed");
                total = total.saturating_add(n);
            }
            Err(_) => tracing::warn!(tenant = %tenant, "offboarded company's files: retried later"),
        }
    }
    tx.commit().await?;
    Ok(total)
}

/// Lower-case hex (digests in responses and ETags).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
