//! The command line: `serein serve` (default), `serein migrate`, `serein tenants apply DIR
//! [--adopt]`, `serein tenants list`, `serein tenants export DIR`, `serein tenants purge`,
//! `serein users add`, `serein keys rotate [--tenant SLUG]`.
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
    /// Manage people.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Envelope-encryption keys.
    Keys {
        #[command(subcommand)]
        command: crate::crypto::rotation::KeysCommand,
    },
}

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
        Command::Users { command } => users(config, command).await,
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

async fn users(config: Config, command: UsersCommand) -> anyhow::Result<()> {
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
    let db = Db::connect(&config).await?;
    db.migrate().await?;
    let added = crate::auth::admin::add_user(
        &db,
        &config,
        crate::auth::admin::NewUser {
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

async fn tenants(config: Config, command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Apply { dir, check, adopt } => {
            let specs = crate::tenants::file::load_dir(&dir)?;
            if check {
                println!("{} tenant file(s) valid", specs.len());
                return Ok(());
            }
            let db = Db::connect(&config).await?;
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
            let db = Db::connect(&config).await?;
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
            let db = Db::connect(&config).await?;
            db.migrate().await?;
            let keyring = crate::crypto::keyring::Keyring::from_config(&config)?;
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
