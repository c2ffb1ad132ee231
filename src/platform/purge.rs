//! The purge job: finishes the offboarding of every tenant whose grace period is over.
//!
//! For each tenant with `status = 'offboarding' AND purge_after <= now` (claimed with
//! `FOR UPDATE SKIP LOCKED`, one tenant per transaction, so several pods or an operator's
//! `serein tenants purge` never purge the same tenant twice), in ONE transaction:
//! 1. crypto-shred: every tenant and subject key is destroyed ([`Keyring::destroy_tenant`]);
//!    `tenant_keys` keeps destroyed tombstones (no wrapped key) so no key is ever created
//!    again for that tenant id — the only rows left in a tenant table;
//! 2. every row of every other table with a `tenant_id` column is deleted; the tables are
//!    discovered from the catalogue (a new table is covered without editing this file) and
//!    deleted children first: a table refused for a foreign key (23503) is retried after the
//!    others, until nothing is left (a pass without progress fails the purge);
//! 3. identities that belonged to that company only (no other membership, no platform role, no
//!    practitioner profile) are deleted: nothing of a former employee's stays on the platform;
//! 4. the tenant row becomes an `offboarded` tombstone (`offboarded_at`; the slug is never
//!    reused; origins, domains and branding cleared).
//!
//! Runs through the owner door ([`Db::owner_conn`]: `JOBS_DATABASE_URL`, or the login of
//! `DATABASE_URL` for `serein tenants purge` and in development), a login that bypasses
//! row-level security: it acts on the platform, not inside a tenant. The in-process job is
//! started only when the door passes [`Db::check_owner_door`] (a NOINHERIT authenticator that
//! can only become the request role would otherwise fail every run, silently). Any failure
//! rolls the tenant's transaction back whole (keys included) and the next run retries.

use std::time::Duration;

use sqlx::{Acquire, AssertSqlSafe, PgConnection};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::crypto::keyring::Keyring;
use crate::db::{Db, TenantId};

/// One purged tenant.
#[derive(Debug, Clone)]
pub struct Purged {
    pub tenant: TenantId,
    pub slug: String,
    /// Rows deleted across the tenant tables (keys and identities not counted).
    pub rows: u64,
    /// Identities deleted because they belonged to this company only.
    pub identities: u64,
}

/// Purge every tenant due at `now`; returns what was purged.
#[tracing::instrument(skip_all)]
pub async fn purge_due(
    db: &Db,
    keyring: &Keyring,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<Purged>> {
    let mut conn = db.owner_conn().await?;
    let mut purged = Vec::new();
    while let Some(p) = purge_one(&mut conn, keyring, now).await? {
        tracing::info!(tenant = %p.tenant, slug = %p.slug, rows = p.rows, identities = p.identities, "tenant purged");
        purged.push(p);
    }
    Ok(purged)
}

/// Claim and purge one due tenant, if any.
async fn purge_one(
    conn: &mut PgConnection,
    keyring: &Keyring,
    now: OffsetDateTime,
) -> anyhow::Result<Option<Purged>> {
    let mut tx = conn.begin().await?;
    let due = sqlx::query!(
        r#"SELECT id AS "id: TenantId", slug FROM tenants
           WHERE status = 'offboarding' AND purge_after <= $1 AND managed_by <> 'platform'
           ORDER BY purge_after, id
           LIMIT 1
           FOR UPDATE SKIP LOCKED"#,
        now
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(due) = due else {
        return Ok(None);
    };
    let tenant = due.id;
    if tenant.is_platform() {
        anyhow::bail!("refusing to purge the platform tenant");
    }

    keyring
        .destroy_tenant(&mut tx, tenant)
        .await
        .map_err(|e| anyhow::anyhow!("destroying the keys of {}: {e}", due.slug))?;

    let members: Vec<uuid::Uuid> = sqlx::query_scalar!(
        "SELECT user_id FROM memberships WHERE tenant_id = $1",
        tenant as TenantId
    )
    .fetch_all(&mut *tx)
    .await?;

    let rows = delete_tenant_rows(&mut tx, tenant).await?;

    // Lock the identities first, in a statement of its own: a membership being created for
    // one of them elsewhere (an invitation accepted in another company) holds a key-share lock
    // on the user row, so this waits for it to commit, and the DELETE below (a fresh snapshot)
    // then sees it and keeps that person; later attempts wait for this transaction instead.
    sqlx::query!(
        "SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &members
    )
    .fetch_all(&mut *tx)
    .await?;
    let identities = sqlx::query!(
        r#"DELETE FROM users u
           WHERE u.id = ANY($1)
             AND cardinality(u.platform_roles) = 0
             AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id)
             AND NOT EXISTS (SELECT 1 FROM practitioner_profiles p WHERE p.user_id = u.id)"#,
        &members
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();

    sqlx::query!(
        r#"UPDATE tenants
           SET status = 'offboarded', offboarded_at = $2, purge_after = NULL,
               allowed_email_domains = '{}', web_origins = '{}', branding = '{}',
               updated_at = $2
           WHERE id = $1"#,
        tenant as TenantId,
        now
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Purged {
        tenant,
        slug: due.slug,
        rows,
        identities,
    }))
}

/// Delete the tenant's rows from every table with a `tenant_id` column except `tenant_keys`
/// (its destroyed tombstones stay), children before parents.
async fn delete_tenant_rows(conn: &mut PgConnection, tenant: TenantId) -> anyhow::Result<u64> {
    // `%I` quotes the identifiers: the statement below is built only from catalogue names.
    let mut pending: Vec<String> = sqlx::query_scalar!(
        r#"SELECT format('%I.%I', n.nspname, c.relname) AS "name!"
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
           WHERE a.attname = 'tenant_id' AND NOT a.attisdropped
             AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND NOT (n.nspname = 'public' AND c.relname = 'tenant_keys')
           ORDER BY 1"#
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut total = 0u64;
    while !pending.is_empty() {
        let mut blocked = Vec::new();
        let before = pending.len();
        for table in pending {
            let mut sp = conn.begin().await?;
            let done = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = $1"
            )))
            .bind(tenant.as_uuid())
            .execute(&mut *sp)
            .await;
            match done {
                Ok(r) => {
                    sp.commit().await?;
                    total = total.saturating_add(r.rows_affected());
                }
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23503") => {
                    sp.rollback().await?;
                    blocked.push(table);
                }
                Err(e) => {
                    sp.rollback().await?;
                    return Err(anyhow::anyhow!("purging {table}: {e}"));
                }
            }
        }
        if blocked.len() == before {
            anyhow::bail!(
                "purge made no progress; still referenced: {}",
                blocked.join(", ")
            );
        }
        pending = blocked;
    }
    Ok(total)
}

/// The periodic job inside `serve` (unless `PURGE_WORKER=false`): purge what is due every
/// `interval`, until `stop` turns true.
pub async fn run_worker(
    db: Db,
    keyring: Keyring,
    clock: Clock,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match purge_due(&db, &keyring, clock.now()).await {
            Ok(p) if !p.is_empty() => tracing::info!(tenants = p.len(), "purge run finished"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "purge run failed; retrying next interval"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}
