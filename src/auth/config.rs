//! Settings of identity and access: token lifetimes, password cost, session lifetimes, lockout
//! budget, rate limits, trusted proxies, and the public URL used in e-mailed links. Parsed and
//! validated once, through the one loader ([`crate::config::Settings`]); the signing keys of
//! tokens are the signer's section ([`crate::crypto::token_config::TokenConfig`]).

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{ConfigError, Settings};
use crate::crypto::passwords::HashCost;

/// A trusted reverse proxy: one address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("not an IP address: {a:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix length in {s:?}"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let shift = 32 - u32::from(self.prefix);
                let mask = u32::MAX.checked_shl(shift).unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let shift = 128 - u32::from(self.prefix);
                let mask = u128::MAX.checked_shl(shift).unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// Validated identity-and-access settings.
#[derive(Clone)]
pub struct AuthConfig {
    pub access_ttl: Duration,
    pub mfa_ttl: Duration,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub reset_ttl: Duration,
    pub verify_ttl: Duration,
    pub password_cost: HashCost,
    pub password_concurrency: usize,
    pub login_max_failures: u32,
    pub failure_window: Duration,
    pub lockout: Duration,
    pub totp_max_failures: u32,
    /// Requests per second per client IP (sustained) and burst, all routes.
    pub ip_rate_per_sec: u32,
    pub ip_burst: u32,
    /// Attempts per minute per (client IP, account) on login, TOTP and password reset.
    pub auth_rate_per_min: u32,
    pub auth_burst: u32,
    /// Proxies whose `X-Forwarded-For` is believed (empty: the peer address is the client).
    pub trusted_proxies: Vec<IpNet>,
    /// Template of the web app's base URL for e-mailed links; `{host}` is the tenant host.
    pub public_url: String,
    /// How long a spent refresh token still answers with its (same) successor instead of
    /// revoking the session as reused (`REFRESH_TOKEN_REUSE_INTERVAL_SECS`, 0–60, default 10;
    /// 0 turns the interval off).
    pub refresh_reuse_interval: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("access_ttl", &self.access_ttl)
            .field("password_cost", &self.password_cost)
            .finish_non_exhaustive()
    }
}

fn secs(
    s: &Settings<'_>,
    name: &str,
    default: u64,
    lo: u64,
    hi: u64,
) -> Result<Duration, ConfigError> {
    s.int(name, default, lo, hi).map(Duration::from_secs)
}

fn small(s: &Settings<'_>, name: &str, default: u64, lo: u64, hi: u64) -> Result<u32, ConfigError> {
    s.int(name, default, lo, hi)
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

impl AuthConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let password_cost = HashCost {
            memory_kib: small(
                s,
                "ARGON2_MEMORY_KIB",
                u64::from(HashCost::OWASP.memory_kib),
                8,
                4 * 1024 * 1024,
            )?,
            iterations: small(
                s,
                "ARGON2_ITERATIONS",
                u64::from(HashCost::OWASP.iterations),
                1,
                100,
            )?,
            parallelism: small(
                s,
                "ARGON2_PARALLELISM",
                u64::from(HashCost::OWASP.parallelism),
                1,
                64,
            )?,
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let password_concurrency = usize::try_from(s.int(
            "PASSWORD_HASH_CONCURRENCY",
            u64::try_from(cores).unwrap_or(2),
            1,
            1024,
        )?)
        .unwrap_or(1);
        let trusted_proxies = s.get("TRUSTED_PROXIES", Vec::new(), |v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(IpNet::parse)
                .collect()
        })?;
        let public_url = s.get("PUBLIC_URL", "http://{host}:8080".to_owned(), |v| {
            let probe = v.replace("{host}", "demo.localhost");
            match url::Url::parse(&probe) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
                    Ok(v.trim_end_matches('/').to_owned())
                }
                _ => Err("expected an http(s) URL template such as https://{host}".to_owned()),
            }
        })?;
        Ok(Self {
            access_ttl: secs(s, "ACCESS_TOKEN_TTL_SECS", 900, 30, 3600)?,
            mfa_ttl: secs(s, "MFA_TOKEN_TTL_SECS", 300, 30, 900)?,
            session_idle: secs(s, "SESSION_IDLE_SECS", 2 * 3600, 300, 30 * 86_400)?,
            session_absolute: secs(s, "SESSION_ABSOLUTE_SECS", 12 * 3600, 600, 90 * 86_400)?,
            reset_ttl: secs(s, "PASSWORD_RESET_TTL_SECS", 3600, 300, 86_400)?,
            verify_ttl: secs(s, "EMAIL_VERIFY_TTL_SECS", 2 * 86_400, 3600, 30 * 86_400)?,
            password_cost,
            password_concurrency,
            login_max_failures: small(s, "LOGIN_MAX_FAILURES", 10, 3, 1000)?,
            failure_window: secs(s, "LOGIN_FAILURE_WINDOW_SECS", 900, 60, 86_400)?,
            lockout: secs(s, "LOGIN_LOCKOUT_SECS", 900, 60, 86_400)?,
            totp_max_failures: small(s, "TOTP_MAX_FAILURES", 5, 3, 1000)?,
            ip_rate_per_sec: small(s, "RATE_LIMIT_PER_IP_PER_SEC", 50, 1, 1_000_000)?,
            ip_burst: small(s, "RATE_LIMIT_PER_IP_BURST", 200, 1, 1_000_000)?,
            auth_rate_per_min: small(s, "AUTH_RATE_LIMIT_PER_MIN", 10, 1, 1_000_000)?,
            auth_burst: small(s, "AUTH_RATE_LIMIT_BURST", 10, 1, 1_000_000)?,
            trusted_proxies,
            public_url,
            refresh_reuse_interval: secs(s, "REFRESH_TOKEN_REUSE_INTERVAL_SECS", 10, 0, 60)?,
        })
    }

    /// The base URL of the web app for a host (`demo.localhost`), for e-mailed links.
    pub fn public_base(&self, host: &str) -> String {
        self.public_url.replace("{host}", host)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let n = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        let one = IpNet::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("nope").is_err());
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
