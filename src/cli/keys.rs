//! `serein keys …`: envelope-encryption keys, as the owner (the login role of `DATABASE_URL`).
//! The rotation itself is [`Keyring::rotate_tenant`]; this file picks the tenants, runs one
//! transaction per tenant, then keeps the master key check current (records the current
//! master's, removes those of masters nothing is wrapped under any more) and prints what
//! happened. Like every process that builds the keyring, it first refuses a master key that is
//! not the database's ([`Keyring::connect`]).

use sqlx::Connection;

use crate::app::AppConfig;
use crate::clock::Clock;
use crate::crypto::keycheck;
use crate::crypto::keyring::Keyring;
use crate::db::{Db, TenantId};

/// `serein keys …`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// New tenant key versions (and fresh subject keys) for every tenant, or one: new writes
    /// use them, old records stay readable. Also re-wraps keys still under
    /// SEREIN_PREVIOUS_MASTER_KEY, and keeps the master key check current.
    Rotate {
        /// Only this tenant (its slug).
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `serein keys …` (operator command).
pub async fn run(config: AppConfig, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate { tenant } => rotate(config, tenant.as_deref()).await,
    }
}

async fn rotate(config: AppConfig, slug: Option<&str>) -> anyhow::Result<()> {
    // Never mint a development master key here: rotating under a key nobody has used would
    // only fail to unwrap (or, on an empty database, create keys under a throwaway master).
    if config.crypto.master_key.is_none() && !config.crypto.data_dir.join("master.key").exists() {
        anyhow::bail!(
            "no master key: set SEREIN_MASTER_KEY (or SEREIN_MASTER_KEY_FILE), or run where \
             SEREIN_DATA_DIR holds the development master.key"
        );
    }
    let db = Db::connect(&config.core).await?;
    if let Err(reason) = db.readiness().await {
        anyhow::bail!("database schema is not current ({reason}); run `serein migrate` first");
    }
    let keyring = Keyring::connect(&config.crypto, Clock::system(), &db).await?;
    let tenants: Vec<(TenantId, String)> = {
        let mut conn = db.admin_conn().await?;
        sqlx::query!(
            r#"SELECT id AS "id: TenantId", slug FROM tenants
               WHERE $1::text IS NULL OR slug = $1 ORDER BY slug"#,
            slug
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.id, r.slug))
        .collect()
    };
    if let (Some(s), true) = (slug, tenants.is_empty()) {
        anyhow::bail!("no tenant with slug {s:?}");
    }
    let (mut rotated, mut skipped) = (0usize, 0usize);
    let mut conn = db.admin_conn().await?;
    for (id, slug) in tenants {
        let mut tx = conn.begin().await?;
        let r = keyring.rotate_tenant(&mut tx, id).await?;
        tx.commit().await?;
        match r.skipped {
            Some(why) => {
                skipped += 1;
                println!("{slug:<24} skipped ({why})");
            }
            None => {
                rotated += 1;
                let versions: Vec<String> = r
                    .new_versions
                    .iter()
                    .map(|(p, v)| format!("{p} v{v}"))
                    .collect();
                println!(
                    "{slug:<24} {}; {} subject key(s) re-wrapped, {} created, {} tenant key(s) re-wrapped under the current master",
                    versions.join(", "),
                    r.subject_keys_rewrapped,
                    r.subject_keys_created,
                    r.tenant_keys_rewrapped
                );
            }
        }
    }
    // The current master's check (also when no tenant had keys to rotate), and none left for
    // a master under which nothing is wrapped any more.
    let mut tx = conn.begin().await?;
    keycheck::record_current(&keyring, &mut tx).await?;
    let removed = keycheck::prune(&keyring, &mut tx).await?;
    tx.commit().await?;
    println!("{rotated} tenant(s) rotated, {skipped} skipped");
    let removed: Vec<String> = removed.iter().map(|i| format!("{i:08x}")).collect();
    println!(
        "master key check current for id {:08x}{}",
        keyring.master_key_id(),
        if removed.is_empty() {
            String::new()
        } else {
            format!("; removed the check of id {}", removed.join(", "))
        }
    );
    Ok(())
}
