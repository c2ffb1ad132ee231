//! Configuration: defaults that work on a fresh machine, overridden by an optional TOML file
//! (`SEREIN_CONFIG`), overridden by environment variables.
//!
//! Invariants: every value is validated here, once; a bad value stops start-up with a message
//! naming the variable; secrets (the database URL carries a password in production) are
//! `secrecy` types and never reach `Debug` output or logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

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

/// Validated configuration.
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
    /// Body limit of the CSV member import (`IMPORT_MAX_BYTES`, default 20 MiB): the one route
    /// allowed more than `max_body_bytes`; it streams its body instead of buffering it.
    pub import_max_bytes: usize,
    /// Timeout of the CSV member import (`IMPORT_TIMEOUT_MS`, default 300 s).
    pub import_timeout: Duration,
    pub max_in_flight: usize,
    pub tenant_cache_ttl: Duration,
    /// Directory of `tenants/*.toml` applied at start-up (`None`: do not apply).
    pub tenants_dir: Option<PathBuf>,
    pub shutdown_grace: Duration,
    /// Where development fallbacks live (generated keys, `.eml` files): `SEREIN_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Tokens, passwords, sessions, throttling.
    pub auth: crate::auth::config::AuthConfig,
    /// Master key and key cache of envelope encryption.
    pub crypto: crate::crypto::master::CryptoConfig,
    /// E-mail: SMTP relay, sender, retries.
    pub mail: crate::mail::MailConfig,
    /// Platform tenant management: offboarding grace, purge job.
    pub platform: crate::platform::PlatformConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"[redacted]")
            .field("base_domain", &self.base_domain)
            .field("bind", &self.bind)
            .field("log_format", &self.log_format)
            .field("db_max_connections", &self.db_max_connections)
            .field("tenants_dir", &self.tenants_dir)
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

/// The optional file: same names as the environment variables, lower-case, without prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    create_database: Option<bool>,
    migrate_on_start: Option<bool>,
    app_role: Option<String>,
    base_domain: Option<String>,
    bind: Option<String>,
    log_format: Option<String>,
    log: Option<String>,
    db_max_connections: Option<u32>,
    db_min_connections: Option<u32>,
    db_acquire_timeout_ms: Option<u64>,
    db_statement_timeout_ms: Option<u64>,
    db_idle_in_transaction_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    import_max_bytes: Option<usize>,
    import_timeout_ms: Option<u64>,
    max_in_flight: Option<usize>,
    tenant_cache_ttl_ms: Option<u64>,
    tenants_dir: Option<String>,
    shutdown_grace_ms: Option<u64>,
}

impl FileConfig {
    const KEYS: &'static [&'static str] = &[
        "database_url",
        "create_database",
        "migrate_on_start",
        "app_role",
        "base_domain",
        "bind",
        "log_format",
        "log",
        "db_max_connections",
        "db_min_connections",
        "db_acquire_timeout_ms",
        "db_statement_timeout_ms",
        "db_idle_in_transaction_timeout_ms",
        "request_timeout_ms",
        "header_read_timeout_ms",
        "max_body_bytes",
        "import_max_bytes",
        "import_timeout_ms",
        "max_in_flight",
        "tenant_cache_ttl_ms",
        "tenants_dir",
        "shutdown_grace_ms",
    ];
}

/// Settings of the feature sections: the variable, else the file's key (lower case, without the
/// `SEREIN_` prefix), else the default. Records which file keys were read so that
/// [`Settings::finish`] can refuse unknown ones.
pub struct Settings<'a> {
    src: &'a dyn Source,
    file: toml::Table,
    used: std::cell::RefCell<std::collections::HashSet<String>>,
}

impl Settings<'_> {
    fn file_key(env: &str) -> String {
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

    /// Refuse file keys no setting read (a typo must not silently fall back to a default).
    pub fn finish(&self, path: &str) -> Result<(), ConfigError> {
        let used = self.used.borrow();
        let mut unknown: Vec<&String> = self.file.keys().filter(|k| !used.contains(*k)).collect();
        unknown.sort();
        match unknown.first() {
            Some(k) => Err(err("SEREIN_CONFIG", format!("{path}: unknown key {k:?}"))),
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

/// One setting: environment variable name, file value, default.
fn pick<T, F>(
    src: &dyn Source,
    env: &str,
    file: Option<T>,
    default: T,
    parse: F,
) -> Result<T, ConfigError>
where
    F: Fn(&str) -> Result<T, String>,
{
    match src.get(env) {
        Some(raw) => parse(raw.trim()).map_err(|reason| err(env, reason)),
        None => Ok(file.unwrap_or(default)),
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

impl Config {
    /// Load from the process environment (and `SEREIN_CONFIG` if set).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(&Env)
    }

    /// Load from any source: file named by `SEREIN_CONFIG`, then variables, then defaults.
    pub fn load(src: &dyn Source) -> Result<Self, ConfigError> {
        // The file's keys of the foundation settings go to `FileConfig`; every other key is
        // read by the feature sections through `Settings` (same name as the variable, lower
        // case, without the `SEREIN_` prefix). A key nobody reads is an error.
        let (file, rest, path) = match src.get("SEREIN_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| err("SEREIN_CONFIG", format!("cannot read {path}: {e}")))?;
                let mut table = toml::from_str::<toml::Table>(&text)
                    .map_err(|e| err("SEREIN_CONFIG", format!("{path}: {e}")))?;
                let mut known = toml::Table::new();
                for k in FileConfig::KEYS {
                    if let Some(v) = table.remove(*k) {
                        known.insert((*k).to_owned(), v);
                    }
                }
                let file = known
                    .try_into::<FileConfig>()
                    .map_err(|e| err("SEREIN_CONFIG", format!("{path}: {e}")))?;
                (file, table, path)
            }
            None => (FileConfig::default(), toml::Table::new(), String::new()),
        };
        let settings = Settings {
            src,
            file: rest,
            used: std::cell::RefCell::new(std::collections::HashSet::new()),
        };

        let database_url = pick(
            src,
            "DATABASE_URL",
            file.database_url,
            DEFAULT_DATABASE_URL.to_owned(),
            |s| Ok(s.to_owned()),
        )?;
        match url::Url::parse(&database_url) {
            Ok(u) if u.scheme() == "postgres" || u.scheme() == "postgresql" => {}
            // The value may hold a password: never echo it.
            _ => {
                return Err(err(
                    "DATABASE_URL",
                    "expected a postgres:// URL (value not shown)",
                ));
            }
        }
        let create_database = pick(
            src,
            "SEREIN_CREATE_DATABASE",
            file.create_database,
            true,
            parse_bool,
        )?;
        let migrate_on_start = pick(
            src,
            "SEREIN_MIGRATE_ON_START",
            file.migrate_on_start,
            true,
            parse_bool,
        )?;
        let app_role = pick(
            src,
            "SEREIN_APP_ROLE",
            file.app_role,
            "serein_app".to_owned(),
            |s| Ok(s.to_owned()),
        )?;
        if !valid_role_name(&app_role) {
            return Err(err(
                "SEREIN_APP_ROLE",
                "must be a lower-case SQL identifier ([a-z_][a-z0-9_]*)",
            ));
        }
        let base_domain = pick(
            src,
            "BASE_DOMAIN",
            file.base_domain,
            "localhost".to_owned(),
            |s| Ok(s.to_owned()),
        )?
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
        if !valid_domain(&base_domain) {
            return Err(err(
                "BASE_DOMAIN",
                format!("not a valid DNS name: {base_domain:?}"),
            ));
        }
        let bind = pick(src, "BIND", file.bind, "0.0.0.0:8080".to_owned(), |s| {
            Ok(s.to_owned())
        })?;
        let bind: SocketAddr = bind
            .parse()
            .map_err(|_| err("BIND", format!("expected host:port, got {bind:?}")))?;
        let log_format = pick(
            src,
            "LOG_FORMAT",
            file.log_format,
            "pretty".to_owned(),
            |s| Ok(s.to_owned()),
        )?;
        let log_format = match log_format.as_str() {
            "pretty" | "text" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("expected pretty or json, got {other:?}"),
                ));
            }
        };
        let log_filter = pick(
            src,
            "RUST_LOG",
            file.log,
            "info,sqlx=warn".to_owned(),
            |s| Ok(s.to_owned()),
        )?;
        if tracing_subscriber::EnvFilter::try_new(&log_filter).is_err() {
            return Err(err("RUST_LOG", "not a valid tracing filter directive"));
        }
        let db_max_connections = pick(
            src,
            "DB_MAX_CONNECTIONS",
            file.db_max_connections,
            16,
            |s| parse_u64(s).map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
        )?;
        let db_max_connections = in_range("DB_MAX_CONNECTIONS", db_max_connections, 1, 1000)?;
        let db_min_connections =
            pick(src, "DB_MIN_CONNECTIONS", file.db_min_connections, 0, |s| {
                parse_u64(s).map(|v| u32::try_from(v).unwrap_or(u32::MAX))
            })?;
        let db_min_connections = in_range(
            "DB_MIN_CONNECTIONS",
            db_min_connections,
            0,
            db_max_connections,
        )?;
        let ms = |name: &str, file: Option<u64>, default: u64, lo: u64, hi: u64| {
            let v = pick(src, name, file, default, parse_u64)?;
            in_range(name, v, lo, hi).map(Duration::from_millis)
        };
        let db_acquire_timeout = ms(
            "DB_ACQUIRE_TIMEOUT_MS",
            file.db_acquire_timeout_ms,
            2_000,
            50,
            60_000,
        )?;
        let db_statement_timeout = ms(
            "DB_STATEMENT_TIMEOUT_MS",
            file.db_statement_timeout_ms,
            15_000,
            100,
            3_600_000,
        )?;
        let db_idle_in_transaction_timeout = ms(
            "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
            file.db_idle_in_transaction_timeout_ms,
            60_000,
            1_000,
            3_600_000,
        )?;
        let request_timeout = ms(
            "REQUEST_TIMEOUT_MS",
            file.request_timeout_ms,
            30_000,
            100,
            600_000,
        )?;
        let header_read_timeout = ms(
            "HEADER_READ_TIMEOUT_MS",
            file.header_read_timeout_ms,
            10_000,
            100,
            120_000,
        )?;
        let tenant_cache_ttl = ms(
            "TENANT_CACHE_TTL_MS",
            file.tenant_cache_ttl_ms,
            5_000,
            0,
            300_000,
        )?;
        let shutdown_grace = ms(
            "SHUTDOWN_GRACE_MS",
            file.shutdown_grace_ms,
            20_000,
            0,
            600_000,
        )?;
        let max_body_bytes = pick(
            src,
            "MAX_BODY_BYTES",
            file.max_body_bytes,
            1024 * 1024,
            |s| parse_u64(s).map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
        )?;
        let max_body_bytes = in_range("MAX_BODY_BYTES", max_body_bytes, 1024, 1 << 30)?;
        let import_max_bytes = pick(
            src,
            "IMPORT_MAX_BYTES",
            file.import_max_bytes,
            20 * 1024 * 1024,
            |s| parse_u64(s).map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
        )?;
        let import_max_bytes = in_range("IMPORT_MAX_BYTES", import_max_bytes, 1024, 1 << 30)?;
        let import_timeout = ms(
            "IMPORT_TIMEOUT_MS",
            file.import_timeout_ms,
            300_000,
            1_000,
            3_600_000,
        )?;
        let max_in_flight = pick(src, "MAX_IN_FLIGHT", file.max_in_flight, 1024, |s| {
            parse_u64(s).map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        })?;
        let max_in_flight = in_range("MAX_IN_FLIGHT", max_in_flight, 1, 1_000_000)?;
        let tenants_dir = pick(
            src,
            "SEREIN_TENANTS_DIR",
            file.tenants_dir,
            "tenants".to_owned(),
            |s| Ok(s.to_owned()),
        )?;
        let tenants_dir = (!tenants_dir.is_empty()).then(|| PathBuf::from(tenants_dir));

        let jobs_database_url = settings.secret("JOBS_DATABASE_URL");
        if let Some(u) = &jobs_database_url {
            match url::Url::parse(u.expose_secret()) {
                Ok(u) if u.scheme() == "postgres" || u.scheme() == "postgresql" => {}
                _ => {
                    return Err(err(
                        "JOBS_DATABASE_URL",
                        "expected a postgres:// URL (value not shown)",
                    ));
                }
            }
        }
        let metrics_bind = settings.get("METRICS_BIND", Some(DEFAULT_METRICS_BIND), |s| match s
            .trim()
        {
            "off" | "false" | "" => Ok(None),
            v => v
                .parse::<SocketAddr>()
                .map(Some)
                .map_err(|_| format!("expected host:port or `off`, got {v:?}")),
        })?;

        let data_dir = PathBuf::from(settings.get("SEREIN_DATA_DIR", ".data".to_owned(), |s| {
            if s.is_empty() {
                Err("must not be empty".to_owned())
            } else {
                Ok(s.to_owned())
            }
        })?);
        let auth = crate::auth::config::AuthConfig::load(&settings)?;
        let crypto = crate::crypto::master::CryptoConfig::load(&settings)?;
        let mail = crate::mail::MailConfig::load(&settings, &base_domain)?;
        let platform = crate::platform::PlatformConfig::load(&settings)?;
        settings.finish(&path)?;

        Ok(Self {
            data_dir,
            auth,
            crypto,
            mail,
            platform,
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
            db_acquire_timeout,
            db_statement_timeout,
            db_idle_in_transaction_timeout,
            request_timeout,
            header_read_timeout,
            max_body_bytes,
            import_max_bytes,
            import_timeout,
            max_in_flight,
            tenant_cache_ttl,
            tenants_dir,
            shutdown_grace,
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
        Config::load(&m)
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
