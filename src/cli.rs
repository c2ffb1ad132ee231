//! The command line: `serein serve` (default), `serein migrate`, `serein tenants apply DIR`,
//! `serein tenants list`, `serein keys rotate [--tenant SLUG]`.
//!
//! Operator commands run as the login role from `DATABASE_URL` (they manage the platform, not
//! a tenant's data); `serve` is the only command that answers requests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;

#[derive(Debug, Parser)]
#[command(
    name = "serein",
    version,
    about = "Serein: multi-tenant employee mental-health platform backend"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (default). Applies pending migrations first.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Envelope-encryption keys.
    Keys {
        #[command(subcommand)]
        command: crate::crypto::rotation::KeysCommand,
    },
}

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
    },
    /// List tenants.
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the binary.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("serein: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init_tracing(&config);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::Tenants { command } => tenants(config, command).await,
        Command::Keys { command } => crate::crypto::rotation::run(config, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serein: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let app = App::build(config, Clock::system()).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {bind}: {e}"))?;
    app.run(listener, crate::http::server::shutdown_signal())
        .await
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let db = Db::connect(&config).await?;
    db.migrate().await?;
    crate::db::selfcheck::run(&db).await?;
    println!("migrations applied; self-check passed");
    Ok(())
}

async fn tenants(config: Config, command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Apply { dir, check } => {
            let specs = crate::tenants::file::load_dir(&dir)?;
            if check {
                println!("{} tenant file(s) valid", specs.len());
                return Ok(());
            }
            let db = Db::connect(&config).await?;
            db.migrate().await?;
            let mut conn = db.admin_conn().await?;
            let r = crate::tenants::repo::apply(&mut conn, &specs).await?;
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
        TenantsCommand::List { json } => {
            let db = Db::connect(&config).await?;
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
