//! The command line: `serein serve` (default), `serein migrate`, and one file per command
//! group: [`tenants`] (`apply DIR [--adopt]`, `list`, `export DIR`, `purge`), [`users`]
//! (`add`), [`keys`] (`rotate [--tenant SLUG]`), [`demo`] (a bookable demo company;
//! `--history`: and a synthetic past for HR's usage report).
//!
//! Operator commands run as the login role from `DATABASE_URL` (they manage the platform, not
//! a tenant's data); `serve` is the only command that answers requests.

pub mod demo;
pub mod keys;
pub mod tenants;
pub mod users;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{App, AppConfig};
use crate::clock::Clock;
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
        command: tenants::TenantsCommand,
    },
    /// Manage people.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Envelope-encryption keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Fill tenant `demo` with two practitioners (availability Mon-Fri) and one employee, all
    /// with one password, ready for the README's booking walk-through. Idempotent. Without
    /// `--password-stdin` the password is the published `demo-password-2026` (local use only;
    /// refused when SEREIN_REQUIRE_SECRETS=true).
    Demo {
        /// Read the accounts' password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Also give the company a synthetic past (demo only): 41 employees without a password
        /// in four departments and three closed months of consultations with the two
        /// practitioners, so HR's usage report and CSV export have released cells. Idempotent;
        /// plans no reminder, notice or e-mail.
        #[arg(long)]
        history: bool,
    },
}

/// Entry point of the binary.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match AppConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("serein: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init_tracing(&config.core);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::Tenants { command } => tenants::run(config, command).await,
        Command::Users { command } => users::run(config, command).await,
        Command::Keys { command } => keys::run(config, command).await,
        Command::Demo {
            password_stdin,
            history,
        } => demo::run(config, password_stdin, history).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serein: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: AppConfig) -> anyhow::Result<()> {
    let bind = config.core.bind;
    let app = App::build(config, Clock::system()).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {bind}: {e}"))?;
    app.run(listener, crate::http::server::shutdown_signal())
        .await
}

async fn migrate(config: AppConfig) -> anyhow::Result<()> {
    let db = Db::connect(&config.core).await?;
    db.migrate().await?;
    crate::db::selfcheck::run(&db).await?;
    println!("migrations applied; self-check passed");
    Ok(())
}
