//! SQL of identity and access. Credentials go through the `app_private` definer functions of
//! migrations 0005 and 20261204000002 (the request role has no grant on them); sessions and
//! one-time tokens are tenant tables under forced RLS, written only by definers.
//!
//! Invariant: every definer that mints or changes a credential demands a proof spent in the
//! SAME transaction (a link spent by hash, a login challenge, an accepted second factor, a
//! live session): call the proving function and the definer it unlocks in one `TenantTx`.

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::keyring::SessionSecret;
use crate::db::{SessionId, TenantId, UserId};

/// What login needs to know about an e-mail in a tenant.
#[derive(Debug)]
pub struct LoginIdentity {
    pub user_id: UserId,
    pub password_hash: Option<String>,
    pub user_active: bool,
    pub email_verified: bool,
    pub totp_enabled: bool,
    pub locale: String,
    pub roles: Vec<String>,
    pub member_active: bool,
}

pub async fn login_identity(
    conn: &mut PgConnection,
    tenant: TenantId,
    email: &str,
) -> Result<Option<LoginIdentity>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT user_id AS "user_id!: UserId", password_hash, user_active AS "user_active!",
                  email_verified AS "email_verified!", totp_enabled AS "totp_enabled!",
                  locale AS "locale!", roles AS "roles!", member_active AS "member_active!"
           FROM app_private.login_identity($1, $2)"#,
        tenant.as_uuid(),
        email
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| LoginIdentity {
        user_id: r.user_id,
        password_hash: r.password_hash,
        user_active: r.user_active,
        email_verified: r.email_verified,
        totp_enabled: r.totp_enabled,
        locale: r.locale,
        roles: r.roles,
        member_active: r.member_active,
    }))
}

/// Outcome of spending one attempt of a failure budget.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub allowed: bool,
    pub retry_after_secs: u32,
    /// This attempt spent the last one: if it fails, the key is now locked.
    pub locked_now: bool,
}

impl Attempt {
    /// 429 `too_many_requests` with `Retry-After` once the budget is spent.
    pub fn refuse_if_spent(&self) -> Result<(), crate::error::AppError> {
        if self.allowed {
            Ok(())
        } else {
            Err(crate::error::AppError::TooManyRequests {
                code: "too_many_requests",
                retry_after_secs: self.retry_after_secs,
            })
        }
    }
}

pub async fn throttle_begin(
    conn: &mut PgConnection,
    key: &[u8; 32],
    max: u32,
    window_secs: u64,
    lock_secs: u64,
    now: OffsetDateTime,
) -> Result<Attempt, sqlx::Error> {
    let clamp = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
    let r = sqlx::query!(
        r#"SELECT allowed AS "allowed!", retry_after_secs AS "retry_after_secs!", locked_now AS "locked_now!"
           FROM app_private.throttle_begin($1, $2, $3, $4, $5)"#,
        key.as_slice(),
        i32::try_from(max).unwrap_or(i32::MAX),
        clamp(window_secs),
        clamp(lock_secs),
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(Attempt {
        allowed: r.allowed,
        retry_after_secs: u32::try_from(r.retry_after_secs).unwrap_or(1),
        locked_now: r.locked_now,
    })
}

pub async fn throttle_clear(conn: &mut PgConnection, key: &[u8; 32]) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT app_private.throttle_clear($1)", key.as_slice())
        .execute(conn)
        .await?;
    Ok(())
}

/// A new session with its first refresh token, for the transaction's tenant and person
/// (`app_private.open_session` takes both from the context, never from arguments).
pub async fn open_session(
    conn: &mut PgConnection,
    session: SessionId,
    secret: &SessionSecret,
    refresh_hash: &[u8; 32],
    now: OffsetDateTime,
    idle_expires: OffsetDateTime,
    absolute_expires: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT app_private.open_session($1, $2, $3, $4, $5, $6, $7)",
        session.as_uuid(),
        secret.as_bytes().as_slice(),
        Uuid::now_v7(),
        refresh_hash.as_slice(),
        now,
        idle_expires,
        absolute_expires
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The session of a refresh token of the transaction's person, by the token's hash (a look
/// only: the rotation below locks and checks the token itself).
pub async fn refresh_session(
    conn: &mut PgConnection,
    tenant: TenantId,
    hash: &[u8; 32],
) -> Result<Option<SessionId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT session_id AS "session_id: SessionId" FROM refresh_tokens
           WHERE tenant_id = $1 AND token_hash = $2"#,
        tenant.as_uuid(),
        hash.as_slice()
    )
    .fetch_optional(conn)
    .await
}

/// What `app_private.rotate_refresh_token` did with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Spent; its successor (the hash sent) was added, valid until `expires_at`.
    Rotated { expires_at: OffsetDateTime },
    /// Spent within the reuse interval, and its successor (the hash sent) is still unspent:
    /// that successor is the answer again.
    Replayed { expires_at: OffsetDateTime },
    /// Spent before: the session is now revoked.
    Reused,
    /// The token or its session is past its life, or the session was revoked.
    Expired,
    /// No such token for this person here.
    Unknown,
}

/// Rotate through `app_private.rotate_refresh_token` (migration 20261205000003): the presented
/// token's plaintext is the proof; the spend, the idle extension and the successor are all or
/// nothing; a replay within `reuse_interval` finds the successor instead, a later one revokes
/// the session.
pub async fn rotate_refresh(
    conn: &mut PgConnection,
    presented: &SecretString,
    successor_hash: &[u8; 32],
    now: OffsetDateTime,
    idle_expires: OffsetDateTime,
    reuse_interval: std::time::Duration,
) -> Result<Rotation, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT outcome AS "outcome!", expires_at
           FROM app_private.rotate_refresh_token($1, $2, $3, $4, $5, $6::int * interval '1 second')"#,
        presented.expose_secret(),
        Uuid::now_v7(),
        successor_hash.as_slice(),
        now,
        idle_expires,
        i32::try_from(reuse_interval.as_secs()).unwrap_or(0)
    )
    .fetch_one(conn)
    .await?;
    Ok(match (r.outcome.as_str(), r.expires_at) {
        ("rotated", Some(expires_at)) => Rotation::Rotated { expires_at },
        ("replayed", Some(expires_at)) => Rotation::Replayed { expires_at },
        ("reused", _) => Rotation::Reused,
        ("expired", _) => Rotation::Expired,
        _ => Rotation::Unknown,
    })
}

/// Revoke one session (the whole refresh-token family).
pub async fn revoke_session(
    conn: &mut PgConnection,
    tenant: TenantId,
    session: SessionId,
    reason: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        "UPDATE sessions SET revoked_at = $4, revoked_reason = $3
         WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
        tenant.as_uuid(),
        session.as_uuid(),
        reason,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Revoke every session of the request's person, in every tenant.
pub async fn revoke_all_sessions(
    conn: &mut PgConnection,
    reason: &str,
    now: OffsetDateTime,
) -> Result<i32, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"SELECT app_private.revoke_all_sessions($1, $2) AS "n!""#,
        reason,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Membership roles and status of the request's person now (refresh re-reads them).
pub async fn current_roles(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<(Vec<String>, bool)>, sqlx::Error> {
    if tenant.is_platform() {
        let r = sqlx::query!(
            "SELECT platform_roles, status FROM users WHERE id = $1",
            user.as_uuid()
        )
        .fetch_optional(conn)
        .await?;
        return Ok(r.map(|r| {
            let active = r.status == "active" && !r.platform_roles.is_empty();
            (r.platform_roles, active)
        }));
    }
    let r = sqlx::query!(
        r#"SELECT m.roles, m.status = 'active' AND u.status = 'active' AS "active!"
           FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.tenant_id = $1 AND m.user_id = $2"#,
        tenant.as_uuid(),
        user.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(r.map(|r| (r.roles, r.active)))
}

/// A single-use e-mailed token for the transaction's tenant and person.
pub async fn insert_auth_token(
    conn: &mut PgConnection,
    purpose: &str,
    hash: &[u8; 32],
    now: OffsetDateTime,
    expires: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT app_private.issue_auth_token($1, $2, $3, $4, $5)",
        Uuid::now_v7(),
        purpose,
        hash.as_slice(),
        now,
        expires
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Why a one-time token cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendError {
    Unknown,
    Used,
    Expired,
}

/// Is a single-use link of the transaction's person still spendable here? (A look only: the
/// budget is spent before the link, so a forged link costs the person nothing.)
pub async fn link_pending(
    conn: &mut PgConnection,
    tenant: TenantId,
    purpose: &str,
    hash: &[u8; 32],
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM auth_tokens
                          WHERE tenant_id = $1 AND purpose = $2 AND token_hash = $3
                            AND used_at IS NULL AND expires_at > $4) AS "pending!""#,
        tenant.as_uuid(),
        purpose,
        hash.as_slice(),
        now
    )
    .fetch_one(conn)
    .await
}

/// Spend a single-use link of the transaction's person (`app_private.spend_auth_token`: locked,
/// so two concurrent uses: exactly one wins). Success records, for this transaction only, the
/// proof that `set_password` / `mark_email_verified` demand.
pub async fn spend_auth_token(
    conn: &mut PgConnection,
    purpose: &str,
    hash: &[u8; 32],
    now: OffsetDateTime,
) -> Result<Result<(), SpendError>, sqlx::Error> {
    let outcome = sqlx::query_scalar!(
        r#"SELECT app_private.spend_auth_token($1, $2, $3) AS "outcome!""#,
        purpose,
        hash.as_slice(),
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(match outcome.as_str() {
        "ok" => Ok(()),
        "used" => Err(SpendError::Used),
        "expired" => Err(SpendError::Expired),
        _ => Err(SpendError::Unknown),
    })
}

/// After the server verified a password against `verified_hash`: record the login proof that
/// `open_session` spends (false: the hash changed meanwhile, or the person may not sign in).
pub async fn login_challenge(
    conn: &mut PgConnection,
    verified_hash: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.login_challenge($1) AS "ok!""#,
        verified_hash
    )
    .fetch_one(conn)
    .await
}

/// The transaction's person's password hash, to re-check a password: only when the session
/// guard has checked their session (and its secret) in this transaction, or a verification
/// link was spent in it.
pub async fn proven_password_hash(conn: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT app_private.proven_password_hash()")
        .fetch_one(conn)
        .await
}

/// "Forgot password" in an anonymous transaction: the database queues the reset mail for the
/// address's owner if they may sign in here, making the link's secret itself and writing it
/// into the mail in place of [`LINK_TOKEN_PLACEHOLDER`] (the request never holds it).
#[allow(clippy::too_many_arguments)]
pub async fn queue_password_reset(
    conn: &mut PgConnection,
    email: &str,
    subject: &str,
    text: &str,
    html: &str,
    now: OffsetDateTime,
    expires: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.queue_password_reset($1, $2, $3, $4, $5, $6, $7) AS "queued!""#,
        email,
        Uuid::now_v7(),
        subject,
        text,
        html,
        now,
        expires
    )
    .fetch_one(conn)
    .await
}

/// Where `queue_password_reset` puts the link's secret.
pub const LINK_TOKEN_PLACEHOLDER: &str = "__SEREIN_LINK_TOKEN__";

pub async fn create_identity(
    conn: &mut PgConnection,
    id: UserId,
    email: &str,
    display_name: &str,
    password_hash: Option<&str>,
    locale: &str,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.create_identity($1, $2, $3, $4, $5, $6) AS "created!""#,
        id.as_uuid(),
        email,
        display_name,
        password_hash,
        locale,
        now
    )
    .fetch_one(conn)
    .await
}

/// A new password, with the proof of a reset link spent in this transaction: the address is
/// verified, every reset link of the person (every tenant) retired, every session everywhere
/// revoked (the count is returned).
pub async fn set_password(
    conn: &mut PgConnection,
    hash: &str,
    now: OffsetDateTime,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.set_password($1, $2) AS "revoked!""#,
        hash,
        now
    )
    .fetch_one(conn)
    .await
}

/// Verification, with the proof of a verification link spent in this transaction. Self-sign-up
/// joins the company here (allowed domain, seats: SR409 when full). `true`: joined.
pub async fn mark_email_verified(
    conn: &mut PgConnection,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.mark_email_verified($1, $2) AS "joined!""#,
        Uuid::now_v7(),
        now
    )
    .fetch_one(conn)
    .await
}
