//! `serein users add`: operator actions on people, run as the login role of `DATABASE_URL` (the
//! owner), like the other operator commands, never through the HTTP API.
//!
//! Adding a person is idempotent: an existing identity keeps its password; its membership gains
//! the given roles and is (re)activated. Without a password, a single-use set-password link is
//! returned (a password-reset token valid 72 hours).

use clap::Subcommand;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::app::AppConfig;
use crate::auth::model::Email;
use crate::crypto::passwords::{self, Passwords};
use crate::crypto::tokens;
use crate::db::{Db, TenantId, UserId};
use crate::rbac::Role;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a person to a tenant with roles (or make them a platform admin). With
    /// `--password-stdin` the password is read from the first line of standard input;
    /// otherwise a single-use link to set it is printed.
    Add {
        /// Tenant slug (omit with --platform-admin).
        #[arg(
            long,
            required_unless_present = "platform_admin",
            conflicts_with = "platform_admin"
        )]
        tenant: Option<String>,
        #[arg(long)]
        email: String,
        /// Role in the tenant: tenant_admin, hr, practitioner or employee (repeatable).
        #[arg(long = "role", required_unless_present = "platform_admin")]
        roles: Vec<String>,
        /// Make the person a platform admin (logs in on the platform host).
        #[arg(long)]
        platform_admin: bool,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Run one `serein users …` command.
pub async fn run(config: AppConfig, command: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::Add {
        tenant,
        email,
        roles,
        platform_admin,
        name,
        password_stdin,
    } = command;
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\r', '\n']).to_owned();
        Some(secrecy::SecretString::from(pw))
    } else {
        None
    };
    let db = Db::connect(&config.core).await?;
    db.migrate().await?;
    let added = add_user(
        &db,
        &config,
        NewUser {
            tenant: tenant.as_deref(),
            email: &email,
            roles: &roles,
            platform_admin,
            display_name: name.as_deref(),
            password,
        },
    )
    .await?;
    println!(
        "{} {} on {} (user {})",
        if added.created { "created" } else { "updated" },
        added.email,
        added.host,
        added.user
    );
    if let Some(link) = added.set_password_link {
        println!(
            "set-password link (single use, expires {}):",
            added.link_expires
        );
        println!("{link}");
    }
    Ok(())
}

/// How long a printed set-password link stays valid.
pub const LINK_TTL: time::Duration = time::Duration::hours(72);

pub struct NewUser<'a> {
    pub tenant: Option<&'a str>,
    pub email: &'a str,
    pub roles: &'a [String],
    pub platform_admin: bool,
    pub display_name: Option<&'a str>,
    pub password: Option<SecretString>,
}

#[derive(Debug)]
pub struct Added {
    pub user: UserId,
    pub email: String,
    pub host: String,
    pub created: bool,
    pub set_password_link: Option<String>,
    pub link_expires: OffsetDateTime,
}

pub async fn add_user(db: &Db, config: &AppConfig, new: NewUser<'_>) -> anyhow::Result<Added> {
    let email = Email::parse(new.email)
        .map_err(|_| anyhow::anyhow!("--email: not a valid e-mail address"))?;
    let roles: Vec<String> = if new.platform_admin {
        Vec::new()
    } else {
        let mut out = Vec::new();
        for r in new.roles {
            match Role::parse(r.trim()) {
                Some(Role::PlatformAdmin) | None => anyhow::bail!(
                    "--role {r:?}: expected tenant_admin, hr, practitioner or employee"
                ),
                Some(role) => out.push(role.as_str().to_owned()),
            }
        }
        if out.is_empty() {
            anyhow::bail!("--role: at least one role is required");
        }
        out
    };
    let hash = match &new.password {
        Some(pw) => {
            passwords::check_policy(pw, email.as_str())
                .map_err(|e| anyhow::anyhow!("password refused: {}", describe(&e)))?;
            let hasher = Passwords::new(config.auth.password_cost, 1)?;
            Some(hasher.hash(pw).await.map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        None => None,
    };
    let display_name = new.display_name.unwrap_or_default().trim().to_owned();
    let now = OffsetDateTime::now_utc();
    let mut conn = db.admin_conn().await?;
    let mut tx = sqlx::Acquire::begin(&mut *conn).await?;

    let (tenant, host) = match new.tenant {
        Some(slug) => {
            let id = sqlx::query_scalar!(
                r#"SELECT id AS "id: TenantId" FROM tenants WHERE slug = $1 AND managed_by <> 'platform'"#,
                slug
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| anyhow::anyhow!("--tenant {slug:?}: no such tenant"))?;
            (id, format!("{slug}.{}", config.core.base_domain))
        }
        None => (TenantId::PLATFORM, config.core.base_domain.clone()),
    };

    let id = UserId::new();
    // An operator vouches for the address: it is marked verified.
    let created = sqlx::query_scalar!(
        r#"INSERT INTO users (id, email, display_name, password_hash, password_changed_at,
                              email_verified_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, CASE WHEN $4::text IS NULL THEN NULL ELSE $5::timestamptz END, $5, $5, $5)
           ON CONFLICT (email) DO NOTHING
           RETURNING id AS "id: UserId""#,
        id.as_uuid(),
        email.as_str(),
        display_name,
        hash,
        now
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (user, created) = match created {
        Some(u) => (u, true),
        None => {
            let u = sqlx::query_scalar!(
                r#"SELECT id AS "id: UserId" FROM users WHERE email = $1"#,
                email.as_str()
            )
            .fetch_one(&mut *tx)
            .await?;
            (u, false)
        }
    };
    if new.platform_admin {
        sqlx::query!(
            "UPDATE users SET platform_roles = ARRAY['platform_admin'], updated_at = $2
             WHERE id = $1",
            user.as_uuid(),
            now
        )
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query!(
            r#"INSERT INTO memberships (id, tenant_id, user_id, roles, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $5)
               ON CONFLICT (tenant_id, user_id) DO UPDATE
               SET roles = ARRAY(SELECT DISTINCT unnest(memberships.roles || EXCLUDED.roles) ORDER BY 1),
                   status = 'active', updated_at = EXCLUDED.updated_at"#,
            uuid::Uuid::now_v7(),
            tenant.as_uuid(),
            user.as_uuid(),
            &roles,
            now
        )
        .execute(&mut *tx)
        .await?;
    }
    let needs_link = created && hash.is_none();
    let link = if needs_link {
        let token = tokens::user_token(user);
        sqlx::query!(
            "INSERT INTO auth_tokens (id, tenant_id, user_id, purpose, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, 'password_reset', $4, $5, $6)",
            uuid::Uuid::now_v7(),
            tenant.as_uuid(),
            user.as_uuid(),
            token.hash.as_slice(),
            now,
            now + LINK_TTL
        )
        .execute(&mut *tx)
        .await?;
        Some(format!(
            "{}/reset-password?token={}",
            config.auth.public_base(&host),
            token.token
        ))
    } else {
        None
    };
    tx.commit().await?;
    Ok(Added {
        user,
        email: email.as_str().to_owned(),
        host,
        created,
        set_password_link: link,
        link_expires: now + LINK_TTL,
    })
}

/// A refusal in words (a validation error's fields and reasons).
pub(super) fn describe(e: &crate::error::AppError) -> String {
    match e {
        crate::error::AppError::Validation(errors) => errors
            .iter()
            .map(|f| format!("{} {}", f.field, f.reason))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
