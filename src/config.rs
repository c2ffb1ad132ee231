//! Configuration: the one loader ([`Settings`]) and the core's own section ([`Config`]).
//!
//! Every setting has a default that works on a fresh machine, overridden by an optional TOML file
//! (`SEREIN_CONFIG`: the variable's name, lower case, without the `SEREIN_` prefix), overridden by
//! the environment variable. Each feature owns its section (`AuthConfig` in `auth`, `MailConfig`
//! in `mail`, …) and reads it through the same [`Settings`]; `app::AppConfig` assembles the
//! sections, so this module names no feature.
//!
//! Invariants: every value is validated once, when its section loads; a bad value stops start-up
//! with a message naming the variable; a file key no section reads is refused
//! ([`Settings::finish`]); secrets (the database URL carries a password in production) are
//! `secrecy` types and never reach `Debug` output or logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// The default database: the local PostgreSQL, database `serein` (created if missing).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/serein";

/// `/metrics` listens here unless `METRICS_BIND` says otherwise: loopback, so a bare
/// development server exposes nothing; the Helm chart binds the pod address on its own port.
pub const DEFAULT_METRICS_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (development).
    Pretty,
    /// One JSON object per line (production).
    Json,
}

/// The core's settings: database, listeners, request pipeline, logs, data directory.
#[derive(Clone)]
pub struct Config {
    pub database_url: SecretString,
    /// The owner door for owner-level background jobs (the offboarding purge):
    /// `JOBS_DATABASE_URL`, a login that can bypass row-level security (the owner). Unset: the
    /// login of `database_url` (development, where it is the superuser); the start-up check
    /// refuses an in-process purge job whose door cannot act as the owner.
    pub jobs_database_url: Option<SecretString>,
    /// Where `/metrics` is served (`METRICS_BIND`, default `127.0.0.1:9090`; `off` disables
    /// it): a listener of its own, never a tenant's public host.
    pub metrics_bind: Option<SocketAddr>,
    /// Create the database named in `database_url` when it does not exist (dev convenience).
    pub create_database: bool,
    /// Apply pending migrations when `serve` starts (dev default). In production a migration
    /// job runs them as the owner role and pods only verify the schema is current.
    pub migrate_on_start: bool,
    /// Role every request transaction drops to.
    pub app_role: String,
    pub base_domain: String,
    pub bind: SocketAddr,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub db_max_connections: u32,
    pub db_min_connections: u32,
    pub db_acquire_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub db_idle_in_transaction_timeout: Duration,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
    pub shutdown_grace: Duration,
    /// Where development fallbacks live (generated keys, `.eml` files): `SEREIN_DATA_DIR`.
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"[redacted]")
            .field("base_domain", &self.base_domain)
            .field("bind", &self.bind)
            .field("log_format", &self.log_format)
            .field("db_max_connections", &self.db_max_connections)
            .finish_non_exhaustive()
    }
}

/// A configuration error naming the offending setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

fn err(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// File keys that are not the variable's name without `SEREIN_`, lower case (kept as they were
/// first documented).
const FILE_KEY_ALIASES: &[(&str, &str)] = &[("RUST_LOG", "log")];

/// The one configuration loader: a setting is the variable, else the file's key (lower case,
/// without the `SEREIN_` prefix), else the default. Records which file keys were read so that
/// [`Settings::finish`] can refuse unknown ones.
pub struct Settings<'a> {
    src: &'a dyn Source,
    file: toml::Table,
    path: String,
    used: std::cell::RefCell<std::collections::HashSet<String>>,
}

impl<'a> Settings<'a> {
    /// Read the file named by `SEREIN_CONFIG` (if any) over `src`.
    pub fn open(src: &'a dyn Source) -> Result<Self, ConfigError> {
        let (file, path) = match src.get("SEREIN_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| err("SEREIN_CONFIG", format!("cannot read {path}: {e}")))?;
                let table = toml::from_str::<toml::Table>(&text)
                    .map_err(|e| err("SEREIN_CONFIG", format!("{path}: {e}")))?;
                (table, path)
            }
            None => (toml::Table::new(), String::new()),
        };
        Ok(Self {
            src,
            file,
            path,
            used: std::cell::RefCell::new(std::collections::HashSet::new()),
        })
    }
}

impl Settings<'_> {
    fn file_key(env: &str) -> String {
        if let Some((_, key)) = FILE_KEY_ALIASES.iter().find(|(e, _)| *e == env) {
            return (*key).to_owned();
        }
        env.strip_prefix("SEREIN_")
            .unwrap_or(env)
            .to_ascii_lowercase()
    }

    /// The raw value, if set anywhere.
    pub fn raw(&self, env: &str) -> Option<String> {
        let key = Self::file_key(env);
        self.used.borrow_mut().insert(key.clone());
        match self.src.get(env) {
            Some(v) => Some(v.trim().to_owned()),
            None => self.file.get(&key).map(|v| match v {
                toml::Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            }),
        }
    }

    /// A setting with a default; the parser's error names the variable.
    pub fn get<T>(
        &self,
        env: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.raw(env) {
            Some(raw) => parse(&raw).map_err(|reason| err(env, reason)),
            None => Ok(default),
        }
    }

    /// An optional setting (unset or empty → `None`).
    pub fn opt<T>(
        &self,
        env: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.raw(env) {
            Some(raw) if !raw.is_empty() => {
                parse(&raw).map(Some).map_err(|reason| err(env, reason))
            }
            _ => Ok(None),
        }
    }

    /// An integer setting within bounds.
    pub fn int(&self, env: &str, default: u64, lo: u64, hi: u64) -> Result<u64, ConfigError> {
        let v = self.get(env, default, parse_u64)?;
        in_range(env, v, lo, hi)
    }

    /// A duration in milliseconds within bounds (`…_MS` settings).
    pub fn millis(
        &self,
        env: &str,
        default: u64,
        lo: u64,
        hi: u64,
    ) -> Result<Duration, ConfigError> {
        self.int(env, default, lo, hi).map(Duration::from_millis)
    }

    /// A size or count that must fit a `usize`, within bounds.
    pub fn size(
        &self,
        env: &str,
        default: usize,
        lo: usize,
        hi: usize,
    ) -> Result<usize, ConfigError> {
        let v = self.get(env, default, |s| {
            parse_u64(s).map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        })?;
        in_range(env, v, lo, hi)
    }

    /// A boolean setting.
    pub fn flag(&self, env: &str, default: bool) -> Result<bool, ConfigError> {
        self.get(env, default, parse_bool)
    }

    /// A secret (never echoed in errors).
    pub fn secret(&self, env: &str) -> Option<SecretString> {
        self.raw(env)
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    }

    /// Where development fallbacks live (`SEREIN_DATA_DIR`, default `.data`): read by the
    /// core and by the sections that keep generated files there.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        self.get("SEREIN_DATA_DIR", ".data".to_owned(), |s| {
            if s.is_empty() {
                Err("must not be empty".to_owned())
            } else {
                Ok(s.to_owned())
            }
        })
        .map(PathBuf::from)
    }

    /// The platform host (`BASE_DOMAIN`, default `localhost`), normalised and validated.
    pub fn base_domain(&self) -> Result<String, ConfigError> {
        let d = self
            .get("BASE_DOMAIN", "localhost".to_owned(), |s| Ok(s.to_owned()))?
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if !valid_domain(&d) {
            return Err(err("BASE_DOMAIN", format!("not a valid DNS name: {d:?}")));
        }
        Ok(d)
    }

    /// Refuse file keys no setting read (a typo must not silently fall back to a default).
    pub fn finish(&self) -> Result<(), ConfigError> {
        let used = self.used.borrow();
        let mut unknown: Vec<&String> = self.file.keys().filter(|k| !used.contains(*k)).collect();
        unknown.sort();
        match unknown.first() {
            Some(k) => Err(err(
                "SEREIN_CONFIG",
                format!("{}: unknown key {k:?}", self.path),
            )),
            None => Ok(()),
        }
    }
}

/// Build a [`ConfigError`] (for feature sections).
pub fn config_error(name: &str, reason: impl Into<String>) -> ConfigError {
    err(name, reason)
}

/// Where raw values come from; the environment in production, a map in tests.
pub trait Source {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<S: std::hash::BuildHasher> Source for std::collections::HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<String> {
        std::collections::HashMap::get(self, key).cloned()
    }
}

fn parse_u64(raw: &str) -> Result<u64, String> {
    raw.parse::<u64>()
        .map_err(|_| format!("expected a non-negative integer, got {raw:?}"))
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {raw:?}")),
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<T, ConfigError> {
    if v < lo || v > hi {
        return Err(err(name, format!("must be between {lo} and {hi}, got {v}")));
    }
    Ok(v)
}

/// A DNS name made of valid labels (the platform host).
pub fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A PostgreSQL role name we are willing to put in a `set_config('role', …)` literal.
pub fn valid_role_name(r: &str) -> bool {
    let mut bytes = r.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b == b'_')
        && r.len() <= 63
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A `postgres://` URL; the error never echoes the value (it may hold a password).
fn postgres_url(name: &str, url: &str) -> Result<(), ConfigError> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "postgres" || u.scheme() == "postgresql" => Ok(()),
        _ => Err(err(name, "expected a postgres:// URL (value not shown)")),
    }
}

impl Config {
    /// The core section, read through the one loader.
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let text = |s: &str| Ok(s.to_owned());
        let database_url = s.get("DATABASE_URL", DEFAULT_DATABASE_URL.to_owned(), text)?;
        postgres_url("DATABASE_URL", &database_url)?;
        let create_database = s.flag("SEREIN_CREATE_DATABASE", true)?;
        let migrate_on_start = s.flag("SEREIN_MIGRATE_ON_START", true)?;
        let app_role = s.get("SEREIN_APP_ROLE", "serein_app".to_owned(), text)?;
        if !valid_role_name(&app_role) {
            return Err(err(
                "SEREIN_APP_ROLE",
                "must be a lower-case SQL identifier ([a-z_][a-z0-9_]*)",
            ));
        }
        let base_domain = s.base_domain()?;
        let bind = s.get("BIND", "0.0.0.0:8080".to_owned(), text)?;
        let bind: SocketAddr = bind
            .parse()
            .map_err(|_| err("BIND", format!("expected host:port, got {bind:?}")))?;
        let log_format = match s.get("LOG_FORMAT", "pretty".to_owned(), text)?.as_str() {
            "pretty" | "text" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("expected pretty or json, got {other:?}"),
                ));
            }
        };
        let log_filter = s.get("RUST_LOG", "info,sqlx=warn".to_owned(), text)?;
        if tracing_subscriber::EnvFilter::try_new(&log_filter).is_err() {
            return Err(err("RUST_LOG", "not a valid tracing filter directive"));
        }
        let db_max_connections =
            u32::try_from(s.int("DB_MAX_CONNECTIONS", 16, 1, 1000)?).unwrap_or(16);
        let db_min_connections =
            u32::try_from(s.int("DB_MIN_CONNECTIONS", 0, 0, u64::from(db_max_connections))?)
                .unwrap_or(0);
        let jobs_database_url = s.secret("JOBS_DATABASE_URL");
        if let Some(u) = &jobs_database_url {
            postgres_url("JOBS_DATABASE_URL", u.expose_secret())?;
        }
        let metrics_bind = s.get("METRICS_BIND", Some(DEFAULT_METRICS_BIND), |v| {
            match v.trim() {
                "off" | "false" | "" => Ok(None),
                v => v
                    .parse::<SocketAddr>()
                    .map(Some)
                    .map_err(|_| format!("expected host:port or `off`, got {v:?}")),
            }
        })?;
        Ok(Self {
            database_url: SecretString::from(database_url),
            jobs_database_url,
            metrics_bind,
            create_database,
            migrate_on_start,
            app_role,
            base_domain,
            bind,
            log_format,
            log_filter,
            db_max_connections,
            db_min_connections,
            db_acquire_timeout: s.millis("DB_ACQUIRE_TIMEOUT_MS", 2_000, 50, 60_000)?,
            db_statement_timeout: s.millis("DB_STATEMENT_TIMEOUT_MS", 15_000, 100, 3_600_000)?,
            db_idle_in_transaction_timeout: s.millis(
                "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                60_000,
                1_000,
                3_600_000,
            )?,
            request_timeout: s.millis("REQUEST_TIMEOUT_MS", 30_000, 100, 600_000)?,
            header_read_timeout: s.millis("HEADER_READ_TIMEOUT_MS", 10_000, 100, 120_000)?,
            max_body_bytes: s.size("MAX_BODY_BYTES", 1024 * 1024, 1024, 1 << 30)?,
            max_in_flight: s.size("MAX_IN_FLIGHT", 1024, 1, 1_000_000)?,
            shutdown_grace: s.millis("SHUTDOWN_GRACE_MS", 20_000, 0, 600_000)?,
            data_dir: s.data_dir()?,
        })
    }

    /// The database URL, for the one place that opens connections.
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let s = Settings::open(&m)?;
        let c = Config::load(&s)?;
        s.finish()?;
        Ok(c)
    }

    #[test]
    fn defaults_work() {
        let c = load(&[]).unwrap();
        assert_eq!(c.base_domain, "localhost");
        assert_eq!(c.bind.port(), 8080);
        assert_eq!(c.app_role, "serein_app");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = load(&[("BIND", "nope")]).err().unwrap();
        assert_eq!(e.name, "BIND");
        let e = load(&[("DB_MAX_CONNECTIONS", "0")]).err().unwrap();
        assert_eq!(e.name, "DB_MAX_CONNECTIONS");
        let e = load(&[("BASE_DOMAIN", "bad_domain")]).err().unwrap();
        assert_eq!(e.name, "BASE_DOMAIN");
        let e = load(&[("SEREIN_APP_ROLE", "x; drop")]).err().unwrap();
        assert_eq!(e.name, "SEREIN_APP_ROLE");
    }

    #[test]
    fn database_url_is_never_echoed() {
        let e = load(&[("DATABASE_URL", "mysql://u:hunter2@h/db")])
            .err()
            .unwrap();
        assert!(!e.to_string().contains("hunter2"));
        let c = load(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
