//! `serein tenants …`: the declarative tenant files (`apply`, `export`), the list, and the
//! purge of offboarded tenants, as the owner (the login role of `DATABASE_URL`).

use std::path::PathBuf;

use clap::Subcommand;

use crate::app::AppConfig;
use crate::clock::Clock;
use crate::db::Db;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Make the database match DIR/*.toml: create, update, suspend tenants whose file is gone.
    /// Idempotent; an invalid file stops everything with file and field named.
    Apply {
        /// Directory of tenant files.
        dir: PathBuf,
        /// Validate only; write nothing.
        #[arg(long)]
        check: bool,
        /// Take over API-managed tenants that have a file here (they become file-managed).
        /// Without it such a file is refused.
        #[arg(long)]
        adopt: bool,
    },
    /// Write one DIR/<slug>.toml per company tenant (API- and file-managed; not the platform
    /// tenant, not offboarding/offboarded ones) in the file format `apply` reads.
    Export {
        /// Directory to write into (created if missing; existing files of the same name are
        /// replaced).
        dir: PathBuf,
    },
    /// Purge now every offboarding tenant whose grace period is over (destroy its keys, delete
    /// its rows, keep a tombstone). The server does the same periodically.
    Purge,
    /// List tenants.
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Run one `serein tenants …` command.
pub async fn run(config: AppConfig, command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Apply { dir, check, adopt } => {
            let specs = crate::tenants::file::load_dir(&dir)?;
            if check {
                println!("{} tenant file(s) valid", specs.len());
                return Ok(());
            }
            let db = Db::connect(&config.core).await?;
            db.migrate().await?;
            let mut conn = db.admin_conn().await?;
            let r = crate::tenants::repo::apply_with(
                &mut conn,
                &specs,
                crate::tenants::repo::ApplyOptions { adopt },
            )
            .await?;
            for (what, slugs) in [
                ("created", &r.created),
                ("updated", &r.updated),
                ("suspended", &r.suspended),
                ("unchanged", &r.unchanged),
            ] {
                for s in slugs {
                    println!("{what:9} {s}");
                }
            }
            println!(
                "{} created, {} updated, {} suspended, {} unchanged",
                r.created.len(),
                r.updated.len(),
                r.suspended.len(),
                r.unchanged.len()
            );
            Ok(())
        }
        TenantsCommand::Export { dir } => {
            let db = Db::connect(&config.core).await?;
            db.migrate().await?;
            let mut conn = db.admin_conn().await?;
            let tenants = crate::tenants::repo::export(&mut conn).await?;
            let written = crate::tenants::file::write_dir(&dir, &tenants)?;
            for (t, path) in tenants.iter().zip(&written) {
                println!(
                    "exported  {} ({}) -> {}",
                    t.spec.slug,
                    t.managed_by,
                    path.display()
                );
            }
            println!("{} tenant file(s) written", written.len());
            Ok(())
        }
        TenantsCommand::Purge => {
            let db = Db::connect(&config.core).await?;
            db.migrate().await?;
            let keyring =
                crate::crypto::keyring::Keyring::connect(&config.crypto, Clock::system(), &db)
                    .await?;
            let purged =
                crate::platform::purge::purge_due(&db, &keyring, Clock::system().now()).await?;
            for p in &purged {
                println!(
                    "purged    {} ({} rows, {} identities)",
                    p.slug, p.rows, p.identities
                );
            }
            println!("{} tenant(s) purged", purged.len());
            Ok(())
        }
        TenantsCommand::List { json } => {
            let db = Db::connect(&config.core).await?;
            let mut conn = db.admin_conn().await?;
            let rows = crate::tenants::repo::list(&mut conn).await?;
            if json {
                for r in rows {
                    println!("{}", serde_json::to_string(&r)?);
                }
            } else {
                println!(
                    "{:<24} {:<32} {:<10} {:<10} {:<5} ID",
                    "SLUG", "NAME", "PLAN", "STATUS", "BY"
                );
                for r in rows {
                    println!(
                        "{:<24} {:<32} {:<10} {:<10} {:<5} {}",
                        r.slug, r.name, r.plan, r.status, r.managed_by, r.id
                    );
                }
            }
            Ok(())
        }
    }
}
