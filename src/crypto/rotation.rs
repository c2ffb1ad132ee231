//! Key rotation, one tenant at a time (`serein keys rotate [--tenant SLUG]` drives it, from
//! `cli::keys`).
//!
//! Runs as the OWNER (the login role of `DATABASE_URL`, through [`crate::db::Db::admin_conn`]), never as
//! the request role, which holds no privilege on the key tables. For each tenant that has keys,
//! in one transaction per tenant (every statement filters `tenant_id` explicitly):
//! 1. every purpose in use gets a new tenant key version (newest + 1) wrapped under the current
//!    master; older versions are marked retired (they keep opening the records that name them);
//! 2. live older tenant key versions still wrapped under the previous master are re-wrapped
//!    under the current one (master rotation);
//! 3. every live subject key version is re-wrapped under the new `data` key (so old tenant key
//!    versions could later be destroyed without losing subject data), and every person whose
//!    newest subject key is live gets a fresh subject key version for new writes;
//! 4. the current master's key check is recorded unless it exists ([`super::keycheck`]), so a
//!    new master's check commits with the first keys wrapped under it. (`serein keys rotate`
//!    then removes the checks of master ids no live tenant key names any more.)
//!
//! Invariants: nothing is ever decrypted but keys; no record is rewritten (records name their
//! key version; re-encrypting records is a per-table job, `Keyring::blob_key_version` tells
//! which are behind); a tenant whose keys were destroyed is skipped, never revived; two
//! concurrent rotations of one tenant cannot both commit (the second hits the primary key).

use std::sync::Arc;

use sqlx::PgConnection;
use uuid::Uuid;

use super::cache::Purpose;
use super::keyring::Keyring;
use super::keystore;
use super::sealed::{self, CryptoError, DataKey};
use crate::db::{TenantId, UserId};

/// Rows handled per statement when re-wrapping subject keys.
const BATCH: i64 = 500;

/// What rotating one tenant did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// New versions per purpose.
    pub new_versions: Vec<(&'static str, u32)>,
    /// Older tenant key versions re-wrapped under the current master.
    pub tenant_keys_rewrapped: u64,
    pub subject_keys_rewrapped: u64,
    pub subject_keys_created: u64,
    /// Why nothing was done (`no keys yet`, `keys destroyed`).
    pub skipped: Option<&'static str>,
}

impl Keyring {
    /// Rotate one tenant's keys inside the caller's transaction on the OWNER's connection (see
    /// module header; on a `TenantTx` it fails with `permission denied`). Commit to make it take
    /// effect.
    pub async fn rotate_tenant(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
    ) -> Result<RotationReport, CryptoError> {
        let now = self.clock_now();
        let mut report = RotationReport::default();
        let all = keystore::tenant_keys_all(conn, tenant).await?;
        if all.is_empty() {
            report.skipped = Some("no keys yet");
            return Ok(report);
        }
        let mut new_data: Option<(u32, Arc<DataKey>)> = None;
        for purpose in [Purpose::Data, Purpose::Clinical] {
            let rows: Vec<&keystore::TenantKeyRow> = all
                .iter()
                .filter(|r| r.purpose == purpose.as_str())
                .collect();
            let Some(newest) = rows.iter().max_by_key(|r| r.version) else {
                continue;
            };
            if newest.wrapped_key.is_none() {
                report = RotationReport {
                    skipped: Some("keys destroyed"),
                    ..RotationReport::default()
                };
                return Ok(report);
            }
            // Master rotation: older live versions still under the previous master.
            for r in &rows {
                let Some(wrapped) = &r.wrapped_key else {
                    continue;
                };
                if sealed::key_version(wrapped) == Some(self.master_key_id()) {
                    continue;
                }
                let version = u32::try_from(r.version).map_err(|_| CryptoError::Unreadable)?;
                let key = self.tenant_key_from_row(tenant, purpose, version, wrapped)?;
                let rewrapped = self.wrap_tenant_key(tenant, purpose, version, &key)?;
                keystore::rewrap_tenant_key(conn, tenant, purpose.as_str(), r.version, &rewrapped)
                    .await?;
                report.tenant_keys_rewrapped += 1;
            }
            let next = newest
                .version
                .checked_add(1)
                .ok_or(CryptoError::Unreadable)?;
            let next_u = u32::try_from(next).map_err(|_| CryptoError::Unreadable)?;
            let key = DataKey::generate()?;
            let wrapped = self.wrap_tenant_key(tenant, purpose, next_u, &key)?;
            if !keystore::insert_tenant_key(conn, tenant, purpose, next, &wrapped, now).await? {
                // A concurrent rotation got there first: refuse rather than fork.
                return Err(CryptoError::Concurrent);
            }
            report.new_versions.push((purpose.as_str(), next_u));
            if purpose == Purpose::Data {
                new_data = Some((next_u, Arc::new(key)));
            }
        }
        keystore::retire_old_tenant_keys(conn, tenant, now).await?;
        if let Some((data_version, data_key)) = new_data {
            self.rotate_subject_keys(conn, tenant, &all, data_version, &data_key, &mut report)
                .await?;
        }
        // Keys are now wrapped under the current master: its check commits with them.
        super::keycheck::record_current(self, conn).await?;
        Ok(report)
    }

    async fn rotate_subject_keys(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        old_data_keys: &[keystore::TenantKeyRow],
        data_version: u32,
        data_key: &DataKey,
        report: &mut RotationReport,
    ) -> Result<(), CryptoError> {
        let now = self.clock_now();
        let data_version_db = i32::try_from(data_version).map_err(|_| CryptoError::Unreadable)?;
        // Pass 1: re-wrap every live subject key version under the new data key.
        let mut after = (Uuid::nil(), 0);
        loop {
            let page = keystore::live_subject_keys_after(conn, tenant, after, BATCH).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = (last.0, last.1);
            let (mut subjects, mut versions, mut wrapped) = (Vec::new(), Vec::new(), Vec::new());
            for (subject, version, wrapping_version, old) in &page {
                if *wrapping_version == data_version_db {
                    continue;
                }
                let parent_row = old_data_keys
                    .iter()
                    .find(|r| r.purpose == "data" && r.version == *wrapping_version)
                    .and_then(|r| r.wrapped_key.as_deref())
                    .ok_or(CryptoError::Unreadable)?;
                let parent_version =
                    u32::try_from(*wrapping_version).map_err(|_| CryptoError::Unreadable)?;
                let parent =
                    self.tenant_key_from_row(tenant, Purpose::Data, parent_version, parent_row)?;
                let v = u32::try_from(*version).map_err(|_| CryptoError::Unreadable)?;
                let key = self.unwrap_subject_key(&parent, tenant, UserId(*subject), v, old)?;
                wrapped.push(self.wrap_subject_key(
                    data_key,
                    data_version,
                    tenant,
                    UserId(*subject),
                    v,
                    &key,
                )?);
                subjects.push(*subject);
                versions.push(*version);
            }
            report.subject_keys_rewrapped += keystore::rewrap_subject_keys(
                conn,
                tenant,
                data_version_db,
                &subjects,
                &versions,
                &wrapped,
            )
            .await?;
        }
        // Pass 2: a fresh subject key version for every person whose newest key is live.
        let mut after = Uuid::nil();
        loop {
            let page = keystore::live_subjects_after(conn, tenant, after, BATCH).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.0;
            let (mut subjects, mut versions, mut wrapped) = (Vec::new(), Vec::new(), Vec::new());
            for (subject, newest) in &page {
                let next = newest.checked_add(1).ok_or(CryptoError::Unreadable)?;
                let next_u = u32::try_from(next).map_err(|_| CryptoError::Unreadable)?;
                let key = DataKey::generate()?;
                wrapped.push(self.wrap_subject_key(
                    data_key,
                    data_version,
                    tenant,
                    UserId(*subject),
                    next_u,
                    &key,
                )?);
                subjects.push(*subject);
                versions.push(next);
            }
            report.subject_keys_created += keystore::insert_subject_keys(
                conn,
                tenant,
                data_version_db,
                &subjects,
                &versions,
                &wrapped,
                now,
            )
            .await?;
        }
        keystore::retire_old_subject_keys(conn, tenant, now).await?;
        Ok(())
    }
}
