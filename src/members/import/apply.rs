//! The SQL of the member import: stage validated rows in a temporary table, check them against
//! the company's people, then apply them set-wise. Everything runs in the request's
//! row-level-security transaction (a tenant admin's [`crate::db::TenantTx`]).
//!
//! The staging table `member_import` is `TEMPORARY … ON COMMIT DROP`: private to the
//! connection, gone when the transaction ends (commit or rollback), never visible to another
//! tenant or request. Statements that name it are built at run time (the compile-time checker
//! cannot see a temporary table) and are not kept as prepared statements, so a cached plan never
//! outlives the table; every statement that writes a real table is a checked `query!`.
//!
//! Applying, per staged valid row (e-mail = the key):
//! - an identity with a membership here → the membership's roles and department are set to the
//!   row's where the row gives them (a blank cell keeps the current value): "updated" if that
//!   changed something, else "unchanged". A disabled membership stays disabled (re-enabling is
//!   a deliberate act on the member, and it takes a seat).
//! - else a pending invitation that has not expired → its roles, department and names are set
//!   likewise; no new token, no second e-mail.
//! - else (no invitation, or only an expired one) → a new invitation, or the expired one
//!   refreshed (new token, new expiry), and an invitation e-mail: "invited".

use sqlx::{PgConnection, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Row;
use crate::crypto::tokens;
use crate::db::{TenantId, UserId};
use crate::error::AppError;
use crate::mail::{self, Message, templates};
use crate::tenants::model::Locale;

/// Rows fetched or written per statement.
pub const BATCH: usize = 1000;

/// What the e-mails of this import say, and who sends them.
pub struct Context {
    pub tenant: TenantId,
    pub inviter: UserId,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub expires_in_days: u32,
    /// `{public base}/invitations/accept?token=`; the token is appended.
    pub accept_link: String,
    pub tenant_name: String,
    pub inviter_name: Option<String>,
    pub locale: Locale,
}

/// Outcomes of applying the staged rows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub invited: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// The tenant's name and mail locale, and the importing admin's name.
pub async fn senders(
    conn: &mut PgConnection,
    tenant: TenantId,
    me: UserId,
) -> Result<(String, Locale, Option<String>), AppError> {
    let t = sqlx::query!(
        "SELECT name, locale FROM tenants WHERE id = $1",
        tenant.as_uuid()
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(AppError::TenantNotFound)?;
    let me = sqlx::query_scalar!("SELECT display_name FROM users WHERE id = $1", me.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    let locale = Locale::from_stored(&t.locale);
    let inviter = me.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    Ok((t.name, locale, inviter))
}

pub async fn create_staging(conn: &mut PgConnection) -> Result<(), AppError> {
    sqlx::query(
        "CREATE TEMPORARY TABLE member_import (
             row_no             bigint PRIMARY KEY,
             email              text NOT NULL UNIQUE,
             first_name         text,
             last_name          text,
             department         text,
             role               text,
             ok                 boolean NOT NULL,
             membership_id      uuid,
             invitation_id      uuid,
             invitation_expired boolean NOT NULL DEFAULT false
         ) ON COMMIT DROP",
    )
    .persistent(false)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stage a batch (its e-mails distinct within it). Returns the rows whose e-mail an earlier
/// batch already staged, with the row of that first occurrence.
pub async fn stage(conn: &mut PgConnection, rows: &[Row]) -> Result<Vec<(u64, u64)>, AppError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let line: Vec<i64> = rows.iter().map(|r| line_i64(r.line)).collect();
    let email: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
    let first: Vec<Option<&str>> = rows.iter().map(|r| r.first_name.as_deref()).collect();
    let last: Vec<Option<&str>> = rows.iter().map(|r| r.last_name.as_deref()).collect();
    let dept: Vec<Option<&str>> = rows.iter().map(|r| r.department.as_deref()).collect();
    let role: Vec<Option<&str>> = rows.iter().map(|r| r.role).collect();
    let ok: Vec<bool> = rows.iter().map(|r| r.ok).collect();
    let staged: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO member_import (row_no, email, first_name, last_name, department, role, ok)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::boolean[])
         ON CONFLICT (email) DO NOTHING
         RETURNING row_no",
    )
    .persistent(false)
    .bind(&line)
    .bind(&email)
    .bind(&first)
    .bind(&last)
    .bind(&dept)
    .bind(&role)
    .bind(&ok)
    .fetch_all(&mut *conn)
    .await?;
    if staged.len() == rows.len() {
        return Ok(Vec::new());
    }
    let staged: std::collections::HashSet<i64> = staged.into_iter().collect();
    let repeated: Vec<&Row> = rows
        .iter()
        .filter(|r| !staged.contains(&line_i64(r.line)))
        .collect();
    let emails: Vec<&str> = repeated.iter().map(|r| r.email.as_str()).collect();
    let firsts: std::collections::HashMap<String, i64> =
        sqlx::query("SELECT email, row_no FROM member_import WHERE email = ANY($1::text[])")
            .persistent(false)
            .bind(&emails)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get("email")?, r.try_get("row_no")?)))
            .collect::<Result<_, sqlx::Error>>()?;
    Ok(repeated
        .iter()
        .map(|r| {
            let first = firsts.get(&r.email).copied().unwrap_or_default();
            (r.line, u64::try_from(first).unwrap_or_default())
        })
        .collect())
}

fn line_i64(line: u64) -> i64 {
    i64::try_from(line).unwrap_or(i64::MAX)
}

/// Rows the company's current people make invalid: the address of a practitioner (the
/// platform's network; not managed by import), or the importing admin's own address with a
/// role other than `tenant_admin` (nobody demotes themself by file). Those rows are marked
/// invalid; their row numbers and reasons are returned.
pub async fn check_against_people(
    conn: &mut PgConnection,
    tenant: TenantId,
    me: UserId,
) -> Result<Vec<(u64, &'static str)>, AppError> {
    sqlx::query("ANALYZE member_import")
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    let rows = sqlx::query(
        "SELECT s.row_no, 'practitioner' = ANY (m.roles) AS practitioner
         FROM member_import s
         JOIN users u ON u.email = s.email
         JOIN memberships m ON m.user_id = u.id AND m.tenant_id = $1
         WHERE s.ok
           AND ('practitioner' = ANY (m.roles)
                OR (u.id = $2 AND s.role IS NOT NULL AND s.role <> 'tenant_admin'))
         ORDER BY s.row_no",
    )
    .persistent(false)
    .bind(tenant.as_uuid())
    .bind(me.as_uuid())
    .fetch_all(&mut *conn)
    .await?;
    let mut refused = Vec::with_capacity(rows.len());
    let mut lines = Vec::with_capacity(rows.len());
    for r in rows {
        let line: i64 = r.try_get("row_no")?;
        let practitioner: bool = r.try_get("practitioner")?;
        lines.push(line);
        refused.push((
            u64::try_from(line).unwrap_or_default(),
            if practitioner {
                "belongs to a practitioner of the platform's network, who is not managed by import"
            } else {
                "is your own address: you cannot change your own role by import"
            },
        ));
    }
    if !lines.is_empty() {
        sqlx::query("UPDATE member_import SET ok = false WHERE row_no = ANY($1::bigint[])")
            .persistent(false)
            .bind(&lines)
            .execute(&mut *conn)
            .await?;
    }
    Ok(refused)
}

/// Apply every valid staged row (see the module header).
pub async fn apply(conn: &mut PgConnection, ctx: &Context) -> Result<Counts, AppError> {
    let tenant = ctx.tenant.as_uuid();
    let valid: i64 = sqlx::query_scalar("SELECT count(*) FROM member_import WHERE ok")
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
    // Who is who: members first, then pending invitations of addresses without a membership.
    // An ended membership does not count: a returning person is invited again (accepting
    // brings the membership back).
    sqlx::query(
        "UPDATE member_import s SET membership_id = m.id
         FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = $1 AND u.email = s.email AND s.ok AND m.ended_at IS NULL",
    )
    .persistent(false)
    .bind(tenant)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE member_import s SET invitation_id = i.id, invitation_expired = (i.expires_at <= $2)
         FROM invitations i
         WHERE i.tenant_id = $1 AND i.email = s.email
           AND i.accepted_at IS NULL AND i.revoked_at IS NULL
           AND s.ok AND s.membership_id IS NULL",
    )
    .persistent(false)
    .bind(tenant)
    .bind(ctx.now)
    .execute(&mut *conn)
    .await?;
    let members_updated = sqlx::query(
        "UPDATE memberships m
         SET roles = CASE WHEN s.role IS NULL THEN m.roles ELSE ARRAY[s.role] END,
             department = coalesce(s.department, m.department),
             updated_at = $2
         FROM member_import s
         WHERE s.membership_id = m.id AND m.tenant_id = $1
           AND (m.roles, m.department) IS DISTINCT FROM
               (CASE WHEN s.role IS NULL THEN m.roles ELSE ARRAY[s.role] END,
                coalesce(s.department, m.department))",
    )
    .persistent(false)
    .bind(tenant)
    .bind(ctx.now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let invitations_updated = sqlx::query(
        "UPDATE invitations i
         SET roles = CASE WHEN s.role IS NULL THEN i.roles ELSE ARRAY[s.role] END,
             department = coalesce(s.department, i.department),
             first_name = coalesce(s.first_name, i.first_name),
             last_name = coalesce(s.last_name, i.last_name),
             updated_at = $2
         FROM member_import s
         WHERE s.invitation_id = i.id AND i.tenant_id = $1 AND NOT s.invitation_expired
           AND (i.roles, i.department, i.first_name, i.last_name) IS DISTINCT FROM
               (CASE WHEN s.role IS NULL THEN i.roles ELSE ARRAY[s.role] END,
                coalesce(s.department, i.department), coalesce(s.first_name, i.first_name),
                coalesce(s.last_name, i.last_name))",
    )
    .persistent(false)
    .bind(tenant)
    .bind(ctx.now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let invited = invite(conn, ctx).await?;
    let valid = u64::try_from(valid).unwrap_or_default();
    let updated = members_updated + invitations_updated;
    Ok(Counts {
        invited,
        updated,
        unchanged: valid.saturating_sub(invited + updated),
    })
}

/// One row to invite (or whose expired invitation to refresh).
struct Invitee {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    department: Option<String>,
    role: Option<String>,
    /// The expired pending invitation to refresh, if any.
    expired: Option<Uuid>,
}

/// Invite, in batches, every valid row that is neither a member nor pending; returns how many
/// invitations were created or refreshed (each with its e-mail).
async fn invite(conn: &mut PgConnection, ctx: &Context) -> Result<u64, AppError> {
    let mut after: i64 = 0;
    let mut invited = 0u64;
    loop {
        let rows = sqlx::query(
            "SELECT row_no, email, first_name, last_name, department, role, invitation_id
             FROM member_import
             WHERE ok AND membership_id IS NULL
               AND (invitation_id IS NULL OR invitation_expired) AND row_no > $1
             ORDER BY row_no
             LIMIT $2",
        )
        .persistent(false)
        .bind(after)
        .bind(i64::try_from(BATCH).unwrap_or(1000))
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(invited);
        };
        after = last.try_get("row_no")?;
        let batch: Vec<Invitee> = rows
            .iter()
            .map(|r| {
                Ok(Invitee {
                    email: r.try_get("email")?,
                    first_name: r.try_get("first_name")?,
                    last_name: r.try_get("last_name")?,
                    department: r.try_get("department")?,
                    role: r.try_get("role")?,
                    expired: r.try_get("invitation_id")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        invited += invite_batch(conn, ctx, &batch).await?;
    }
}

/// Arrays of one batch, column by column. Absent optional values travel as `''` and are turned
/// back into NULL by `NULLIF` (a valid value is never empty: the validation trims and drops
/// empty cells), which keeps the statements compile-checked.
#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    email: Vec<String>,
    role: Vec<String>,
    department: Vec<String>,
    first_name: Vec<String>,
    last_name: Vec<String>,
    token_hash: Vec<Vec<u8>>,
}

impl Columns {
    fn push(&mut self, id: Uuid, row: &Invitee, role: &str, hash: [u8; 32]) {
        self.id.push(id);
        self.email.push(row.email.clone());
        self.role.push(role.to_owned());
        self.department
            .push(row.department.clone().unwrap_or_default());
        self.first_name
            .push(row.first_name.clone().unwrap_or_default());
        self.last_name
            .push(row.last_name.clone().unwrap_or_default());
        self.token_hash.push(hash.to_vec());
    }
}

async fn invite_batch(
    conn: &mut PgConnection,
    ctx: &Context,
    batch: &[Invitee],
) -> Result<u64, AppError> {
    let mut fresh = Columns::default();
    let mut renewed = Columns::default();
    // The e-mail of each invitation, keyed by its id; sent only for rows actually written.
    let mut links: std::collections::HashMap<Uuid, (String, String)> =
        std::collections::HashMap::with_capacity(batch.len());
    for row in batch {
        let id = row.expired.unwrap_or_else(Uuid::now_v7);
        let token = tokens::record_token(id);
        match row.expired {
            // A refreshed invitation keeps its roles when the row gives none.
            Some(_) => renewed.push(id, row, row.role.as_deref().unwrap_or(""), token.hash),
            None => fresh.push(
                id,
                row,
                row.role.as_deref().unwrap_or("employee"),
                token.hash,
            ),
        }
        links.insert(
            id,
            (
                row.email.clone(),
                format!("{}{}", ctx.accept_link, token.token),
            ),
        );
    }
    let tenant = ctx.tenant.as_uuid();
    let mut written: Vec<Uuid> = Vec::with_capacity(batch.len());
    if !fresh.id.is_empty() {
        // A concurrent invitation of the same address wins (ON CONFLICT): this row is then
        // left alone and gets no e-mail from here.
        let ids = sqlx::query_scalar!(
            "INSERT INTO invitations (id, tenant_id, email, roles, department, first_name,
                                      last_name, token_hash, invited_by, created_at, updated_at,
                                      expires_at)
             SELECT b.id, $1, b.email, ARRAY[b.role], NULLIF(b.department, ''),
                    NULLIF(b.first_name, ''), NULLIF(b.last_name, ''), b.token_hash, $2, $3, $3, $4
             FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $11::bytea[])
                  AS b(id, email, role, department, first_name, last_name, token_hash)
             ON CONFLICT (tenant_id, email) WHERE accepted_at IS NULL AND revoked_at IS NULL
             DO NOTHING
             RETURNING id",
            tenant,
            ctx.inviter.as_uuid(),
            ctx.now,
            ctx.expires_at,
            &fresh.id,
            &fresh.email,
            &fresh.role,
            &fresh.department,
            &fresh.first_name,
            &fresh.last_name,
            &fresh.token_hash,
        )
        .fetch_all(&mut *conn)
        .await?;
        written.extend(ids);
    }
    if !renewed.id.is_empty() {
        let ids = sqlx::query_scalar!(
            "UPDATE invitations i
             SET token_hash = b.token_hash, expires_at = $4, invited_by = $2, updated_at = $3,
                 roles = CASE WHEN b.role = '' THEN i.roles ELSE ARRAY[b.role] END,
                 department = coalesce(NULLIF(b.department, ''), i.department),
                 first_name = coalesce(NULLIF(b.first_name, ''), i.first_name),
                 last_name = coalesce(NULLIF(b.last_name, ''), i.last_name)
             FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[])
                  AS b(id, role, department, first_name, last_name, token_hash)
             WHERE i.id = b.id AND i.tenant_id = $1
               AND i.accepted_at IS NULL AND i.revoked_at IS NULL
             RETURNING i.id",
            tenant,
            ctx.inviter.as_uuid(),
            ctx.now,
            ctx.expires_at,
            &renewed.id,
            &renewed.role,
            &renewed.department,
            &renewed.first_name,
            &renewed.last_name,
            &renewed.token_hash,
        )
        .fetch_all(&mut *conn)
        .await?;
        written.extend(ids);
    }
    enqueue_invitations(conn, ctx, &written, &links).await?;
    Ok(written.len() as u64)
}

/// The invitation e-mails of one batch: rendered by the same templates as every other mail
/// ([`templates::render`]) and inserted into the outbox in one statement (the bulk twin of
/// [`mail::enqueue`], with the same checks).
async fn enqueue_invitations(
    conn: &mut PgConnection,
    ctx: &Context,
    ids: &[Uuid],
    links: &std::collections::HashMap<Uuid, (String, String)>,
) -> Result<(), AppError> {
    let mut mail_id = Vec::with_capacity(ids.len());
    let mut to = Vec::with_capacity(ids.len());
    let mut subject = Vec::with_capacity(ids.len());
    let mut text = Vec::with_capacity(ids.len());
    let mut html = Vec::with_capacity(ids.len());
    let mut template = "invitation";
    for id in ids {
        let Some((address, link)) = links.get(id) else {
            continue;
        };
        let message = Message::Invitation {
            link: link.clone(),
            tenant_name: ctx.tenant_name.clone(),
            inviter_name: ctx.inviter_name.clone(),
            expires_in_days: ctx.expires_in_days,
        };
        message.validate()?;
        template = message.template();
        let address = mail::deliverable(address)?;
        let rendered = templates::render(&message, ctx.locale);
        mail_id.push(Uuid::now_v7());
        to.push(address.to_owned());
        subject.push(rendered.subject);
        text.push(rendered.text);
        html.push(rendered.html);
    }
    if mail_id.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO email_outbox (id, tenant_id, to_address, locale, template, subject,
                                   body_text, body_html, created_at, next_attempt_at)
         SELECT m.id, $1, m.to_address, $2, $3, m.subject, m.body_text, m.body_html, $4, $4
         FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[])
              AS m(id, to_address, subject, body_text, body_html)",
        ctx.tenant.as_uuid(),
        ctx.locale.as_str(),
        template,
        ctx.now,
        &mail_id,
        &to,
        &subject,
        &text,
        &html,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Refuse the transaction if the company is now over its seats (409 `seat_limit_reached`).
pub async fn check_seats(conn: &mut PgConnection, now: OffsetDateTime) -> Result<(), AppError> {
    sqlx::query_scalar!(r#"SELECT app_private.check_seats($1) AS "left""#, now)
        .fetch_one(conn)
        .await?;
    Ok(())
}
