//! `serein demo`: a newcomer's company, ready to book in. In tenant `demo` (and only there) it
//! makes two practitioners with a week of availability and one employee, all with one
//! password, so the README's walk-through runs from login to a booked consultation, its call
//! and its calendar feed. With `--history` it also gives the company a synthetic past (module
//! [`history`]): employees without a password and three closed months of consultations, so
//! HR's usage report and CSV export have released cells.
//!
//! Runs as the login role of `DATABASE_URL` (the owner), like every operator command, and
//! reuses their paths: migrations and the self-check as `serein migrate`; the tenant files as
//! `serve` applies them at start-up (only when tenant `demo` does not exist yet); identities
//! and memberships through [`super::users::add_user`]; the schedule and weekly rules through
//! the availability repository the practitioner's own API uses.
//!
//! Invariants:
//! - Tenant `demo` only: the slug is fixed, there is no option to point it elsewhere. The
//!   default password is published in the README, so it is refused outright when
//!   `SEREIN_REQUIRE_SECRETS=true` (production); `--password-stdin` gives another one.
//! - Idempotent and additive: what exists is never changed. A person who already has an
//!   account keeps their password and roles (the missing demo role is added, as `users add`
//!   does); a profile, a schedule, or weekly rules the practitioner already has are left as
//!   they are (they may have been edited since). A second run writes nothing and prints
//!   `unchanged` for each person.
//! - A practitioner appears in the directory because the triggers of migration
//!   20261206000001 see an active practitioner membership of an active person with a profile;
//!   nothing here writes the directory.
//! - Concurrent runs: identities and memberships are upserts; each practitioner's profile
//!   row is locked before their schedule is looked at, so two runs never both add rules.

mod history;

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::app::AppConfig;
use crate::availability::model::RuleRequest;
use crate::availability::repo as availability;
use crate::db::{Db, TenantId, UserId};
use crate::practitioners::repo as practitioners;

/// The one tenant this command writes to.
pub const DEMO_TENANT: &str = "demo";

/// The published password of the demo accounts (without `--password-stdin`).
pub const DEMO_PASSWORD: &str = "demo-password-2026";

/// A practitioner of the demo company.
struct DemoPractitioner {
    /// The shell variable the summary suggests for their id.
    var: &'static str,
    email: &'static str,
    name: &'static str,
    specialties: &'static [&'static str],
    languages: &'static [&'static str],
    bio: &'static str,
    licence_number: &'static str,
    auto_confirm: bool,
}

const PRACTITIONERS: [DemoPractitioner; 2] = [
    DemoPractitioner {
        var: "ALICE",
        email: "alice@demo.serein.test",
        name: "Dr Alice Martin",
        specialties: &["anxiety", "stress"],
        languages: &["en", "fr"],
        bio: "Clinical psychologist. CBT for anxiety and stress at work.",
        licence_number: "DEMO-ALICE-0001",
        auto_confirm: true,
    },
    DemoPractitioner {
        var: "BRUNO",
        email: "bruno@demo.serein.test",
        name: "Dr Bruno Keller",
        specialties: &["burnout", "sleep"],
        languages: &["en", "de"],
        bio: "Psychotherapist. Burnout prevention and recovery, sleep problems.",
        licence_number: "DEMO-BRUNO-0002",
        auto_confirm: false,
    },
];

const EMPLOYEE_EMAIL: &str = "ana@demo.serein.test";
const EMPLOYEE_NAME: &str = "Ana Silva";

/// The practitioners' zone: rules are local times in it.
const TIME_ZONE: &str = "Europe/Paris";

/// Weekly windows, Monday to Friday, local time.
const WINDOWS: [(&str, &str); 2] = [("09:00", "12:30"), ("14:00", "18:00")];
const WEEKDAYS: [&str; 5] = ["monday", "tuesday", "wednesday", "thursday", "friday"];

/// Run `serein demo` (with `--history`: and the synthetic past of [`history`]).
pub async fn run(
    config: AppConfig,
    password_stdin: bool,
    with_history: bool,
) -> anyhow::Result<()> {
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned())
    } else if config.tokens.require_secrets {
        anyhow::bail!(
            "refusing the published demo password with SEREIN_REQUIRE_SECRETS=true; \
             give another one with --password-stdin"
        );
    } else {
        SecretString::from(DEMO_PASSWORD.to_owned())
    };
    let emails = PRACTITIONERS.iter().map(|p| p.email);
    for email in std::iter::once(EMPLOYEE_EMAIL).chain(emails) {
        crate::crypto::passwords::check_policy(&password, email)
            .map_err(|e| anyhow::anyhow!("password refused: {}", super::users::describe(&e)))?;
    }
    let db = Db::connect(&config.core).await?;
    db.migrate().await?;
    crate::db::selfcheck::run(&db).await?;
    let tenant = ensure_tenant(&db, &config).await?;
    let now = OffsetDateTime::now_utc();

    let mut lines = Vec::new();
    let employee = ensure_person(
        &db,
        &config,
        tenant,
        EMPLOYEE_EMAIL,
        EMPLOYEE_NAME,
        "employee",
        &password,
    )
    .await?;
    lines.push(Line {
        person: employee,
        role: "employee",
        detail: String::new(),
    });
    let mut ids = Vec::new();
    for p in &PRACTITIONERS {
        let mut person = ensure_person(
            &db,
            &config,
            tenant,
            p.email,
            p.name,
            "practitioner",
            &password,
        )
        .await?;
        let made = ensure_practice(&db, person.user, p, now).await?;
        person.changes.extend(made);
        ids.push((p, person.user));
        lines.push(Line {
            person,
            role: "practitioner",
            detail: format!(
                "{TIME_ZONE}, Mon-Fri 09:00-12:30 and 14:00-18:00, 50 min on the hour, {}",
                if p.auto_confirm {
                    "confirms automatically"
                } else {
                    "confirms by hand"
                }
            ),
        });
    }

    let history = if with_history {
        let people: Vec<history::HistoryPractitioner> = ids
            .iter()
            .map(|(p, user)| history::HistoryPractitioner {
                user: *user,
                auto_confirm: p.auto_confirm,
            })
            .collect();
        Some(history::ensure_history(&db, tenant, &people, now).await?)
    } else {
        None
    };

    let host = format!("{DEMO_TENANT}.{}", config.core.base_domain);
    let base = format!("http://{host}:{}", config.core.bind.port());
    println!("demo company: {base} (tenant {DEMO_TENANT})");
    for l in &lines {
        let what = if l.person.changes.is_empty() {
            "unchanged".to_owned()
        } else {
            format!("created {}", l.person.changes.join(", "))
        };
        println!(
            "{:<24} {:<13} {}  [{what}]",
            l.person.email, l.role, l.person.user
        );
        if !l.detail.is_empty() {
            println!("{:<24} {:<13} {}", "", "", l.detail);
        }
        if !l.person.has_password {
            println!(
                "  note: this account has no password yet (it existed before); ask for a link \
                 with POST {base}/api/v1/auth/password/forgot (development mail lands in \
                 $SEREIN_DATA_DIR/mail)"
            );
        }
    }
    let shown = if password_stdin {
        "<the password you gave>"
    } else {
        DEMO_PASSWORD
    };
    println!("password of every new demo account: {shown}");
    println!("(accounts that already existed keep their own password)");
    if !password_stdin {
        println!(
            "WARNING: {DEMO_PASSWORD:?} is published in the README: for a local machine only, \
             never a reachable server (use --password-stdin there)."
        );
    }
    for (p, id) in &ids {
        println!("{}={id}   # {}", p.var, p.name);
    }
    if let Some(h) = &history {
        for line in &h.lines {
            println!("{line}");
        }
        if h.changed {
            println!(
                "next, as HR (README, \"Usage reports and CSV exports\"): the first report or \
                 export releases (freezes) these closed months"
            );
        }
    }
    println!("next, log in as the employee (README, \"Book a consultation in five minutes\"):");
    println!(
        "  curl -s {base}/api/v1/auth/login -H 'content-type: application/json' \\\n      \
         -d '{{\"email\":\"{EMPLOYEE_EMAIL}\",\"password\":\"{shown}\"}}'"
    );
    Ok(())
}

struct Line {
    person: Person,
    role: &'static str,
    detail: String,
}

/// The tenant's id, applying the tenant files first (as `serve` does at start-up) when the
/// tenant does not exist yet.
async fn ensure_tenant(db: &Db, config: &AppConfig) -> anyhow::Result<TenantId> {
    let mut conn = db.admin_conn().await?;
    if let Some(id) = demo_tenant(&mut conn).await? {
        return Ok(id);
    }
    let hint = "create it with `serein tenants apply tenants/` (the repository ships \
                tenants/demo.toml), or run this from the repository's root";
    let Some(dir) = config.tenants.dir.as_ref().filter(|d| d.is_dir()) else {
        anyhow::bail!("no tenant {DEMO_TENANT:?} and no tenants directory: {hint}");
    };
    let specs = crate::tenants::file::load_dir(dir)?;
    if !specs.iter().any(|s| s.slug == DEMO_TENANT) {
        anyhow::bail!(
            "no tenant {DEMO_TENANT:?}, and {} has no {DEMO_TENANT}.toml: {hint}",
            dir.display()
        );
    }
    let report = crate::tenants::repo::apply(&mut conn, &specs).await?;
    println!(
        "applied {}: {} created, {} updated, {} suspended, {} unchanged",
        dir.display(),
        report.created.len(),
        report.updated.len(),
        report.suspended.len(),
        report.unchanged.len()
    );
    demo_tenant(&mut conn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant {DEMO_TENANT:?} is still missing: {hint}"))
}

/// The demo tenant's id, if it exists; an error when it is not active.
async fn demo_tenant(conn: &mut sqlx::PgConnection) -> anyhow::Result<Option<TenantId>> {
    let row = sqlx::query!(
        r#"SELECT id AS "id: TenantId", status FROM tenants
           WHERE slug = $1 AND managed_by <> 'platform'"#,
        DEMO_TENANT
    )
    .fetch_optional(conn)
    .await?;
    match row {
        None => Ok(None),
        Some(r) if r.status == "active" => Ok(Some(r.id)),
        Some(r) => anyhow::bail!(
            "tenant {DEMO_TENANT:?} is {}; the demo needs it active",
            r.status
        ),
    }
}

/// One demo person, and what this run created for them.
struct Person {
    user: UserId,
    email: String,
    has_password: bool,
    changes: Vec<&'static str>,
}

/// The person's identity and an active membership holding `role` in the demo tenant. When both
/// are already there nothing is written; otherwise `users add` does the work.
async fn ensure_person(
    db: &Db,
    config: &AppConfig,
    tenant: TenantId,
    email: &str,
    name: &str,
    role: &str,
    password: &SecretString,
) -> anyhow::Result<Person> {
    let mut conn = db.admin_conn().await?;
    let existing = sqlx::query!(
        r#"SELECT u.id AS "id: UserId", u.password_hash IS NOT NULL AS "has_password!",
                  coalesce(m.status = 'active' AND $3 = ANY (m.roles), false) AS "member!"
           FROM users u
           LEFT JOIN memberships m ON m.user_id = u.id AND m.tenant_id = $1
           WHERE u.email = $2"#,
        tenant.as_uuid(),
        email,
        role
    )
    .fetch_optional(&mut *conn)
    .await?;
    drop(conn);
    if let Some(e) = existing.as_ref().filter(|e| e.member) {
        return Ok(Person {
            user: e.id,
            email: email.to_owned(),
            has_password: e.has_password,
            changes: Vec::new(),
        });
    }
    let added = super::users::add_user(
        db,
        config,
        super::users::NewUser {
            tenant: Some(DEMO_TENANT),
            email,
            roles: &[role.to_owned()],
            platform_admin: false,
            display_name: Some(name),
            password: Some(password.clone()),
        },
    )
    .await?;
    Ok(Person {
        user: added.user,
        email: added.email,
        // A new identity got the password; an existing one kept whatever it had.
        has_password: added.created || existing.is_some_and(|e| e.has_password),
        changes: vec![if added.created {
            "account"
        } else {
            "membership"
        }],
    })
}

/// A practitioner's verified profile, schedule and weekly rules, each created only when
/// missing. Returns what was created.
async fn ensure_practice(
    db: &Db,
    user: UserId,
    p: &DemoPractitioner,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<&'static str>> {
    let mut made = Vec::new();
    let mut conn = db.admin_conn().await?;
    let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
    let specialties: Vec<String> = p.specialties.iter().map(|s| (*s).to_owned()).collect();
    let languages: Vec<String> = p.languages.iter().map(|s| (*s).to_owned()).collect();
    let created = sqlx::query_scalar!(
        r#"INSERT INTO practitioner_profiles (user_id, specialties, languages, bio, licence_number,
                                              licence_country, verified_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, 'FR', $6, $6, $6)
           ON CONFLICT (user_id) DO NOTHING
           RETURNING true AS "created!""#,
        user.as_uuid(),
        &specialties,
        &languages,
        p.bio,
        p.licence_number,
        now
    )
    .fetch_optional(&mut *tx)
    .await?;
    if created.is_some() {
        made.push("profile");
    }
    // Serialises concurrent runs for this practitioner (the rules are checked, then added).
    practitioners::profile_for_update(&mut tx, user).await?;
    if availability::settings(&mut tx, user).await?.is_none() {
        availability::save_settings(&mut tx, user, TIME_ZONE, Some(p.auto_confirm), now).await?;
        made.push("schedule");
    }
    if availability::rule_count(&mut tx, user).await? == 0 {
        for weekday in WEEKDAYS {
            for (start, end) in WINDOWS {
                let rule = weekly_rule(weekday, start, end).parse().map_err(|errors| {
                    anyhow::anyhow!(
                        "demo rule {weekday} {start}-{end}: {}",
                        errors
                            .iter()
                            .map(|e| format!("{} {}", e.field, e.reason))
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                })?;
                availability::insert_rule(&mut tx, user, &rule, now).await?;
            }
        }
        made.push("weekly rules");
    }
    tx.commit().await?;
    Ok(made)
}

/// One demo window, as the practitioner would send it to `POST /availability/rules` (and
/// checked by the same `parse`): 50-minute sessions on the hour (10 minutes to breathe after
/// each), bookable from an hour ahead up to 60 days, by video, audio or chat.
fn weekly_rule(weekday: &str, start: &str, end: &str) -> RuleRequest {
    RuleRequest {
        weekday: weekday.to_owned(),
        start: start.to_owned(),
        end: end.to_owned(),
        lengths: vec![50],
        step_minutes: Some(60),
        buffer_before_minutes: None,
        buffer_after_minutes: Some(10),
        min_notice_minutes: Some(60),
        horizon_days: Some(60),
        kinds: vec!["video".into(), "audio".into(), "chat".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_rule_passes_the_api_checks() {
        for weekday in WEEKDAYS {
            for (start, end) in WINDOWS {
                assert!(weekly_rule(weekday, start, end).parse().is_ok());
            }
        }
    }

    #[test]
    fn the_demo_password_meets_the_policy() {
        let emails = PRACTITIONERS.iter().map(|p| p.email);
        for email in std::iter::once(EMPLOYEE_EMAIL).chain(emails) {
            assert!(
                crate::crypto::passwords::check_policy(
                    &SecretString::from(DEMO_PASSWORD.to_owned()),
                    email
                )
                .is_ok()
            );
        }
    }
}
