//! Request throttling with governor: per client IP on every route, and tighter per
//! (client IP, account) on login, TOTP and password reset. Both answer 429 `too_many_requests`
//! with `Retry-After`.
//!
//! These limits are per process (DESIGN §8); the security counters that must hold across
//! instances (failed logins, lockout) live in PostgreSQL (`app_private.throttle_begin`).
//!
//! The client IP is the TCP peer, unless the peer is a configured trusted proxy
//! (`TRUSTED_PROXIES`, empty by default): then it is the right-most `X-Forwarded-For` address
//! that is not itself a trusted proxy — the left part of that header is client-controlled.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};

use super::config::{AuthConfig, IpNet};
use crate::app::AppState;
use crate::error::AppError;

/// The client address of a request, as decided by [`Throttle::client_ip`].
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// In-process rate limiters.
#[derive(Clone)]
pub struct Throttle {
    per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    per_account: Arc<DefaultKeyedRateLimiter<(IpAddr, [u8; 16])>>,
    trusted: Arc<[IpNet]>,
    checks: Arc<AtomicU64>,
}

fn nz(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN)
}

impl Throttle {
    pub fn new(cfg: &AuthConfig) -> Self {
        let ip = Quota::per_second(nz(cfg.ip_rate_per_sec)).allow_burst(nz(cfg.ip_burst));
        let account = Quota::per_minute(nz(cfg.auth_rate_per_min)).allow_burst(nz(cfg.auth_burst));
        Self {
            per_ip: Arc::new(DefaultKeyedRateLimiter::keyed(ip)),
            per_account: Arc::new(DefaultKeyedRateLimiter::keyed(account)),
            trusted: cfg.trusted_proxies.clone().into(),
            checks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The client address (see the module header).
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
        let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if !self.trusted.iter().any(|n| n.contains(peer)) {
            return peer;
        }
        let mut chain: Vec<IpAddr> = Vec::new();
        for v in headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else {
                return peer;
            };
            for part in v.split(',') {
                match part.trim().parse::<IpAddr>() {
                    Ok(ip) => chain.push(ip),
                    // A malformed hop: trust nothing left of it.
                    Err(_) => chain.clear(),
                }
            }
        }
        chain
            .into_iter()
            .rev()
            .find(|ip| !self.trusted.iter().any(|n| n.contains(*ip)))
            .unwrap_or(peer)
    }

    fn housekeeping(&self) {
        // Forget idle keys now and then so a scan of many addresses cannot grow memory forever.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 8192 == 8191 {
            self.per_ip.retain_recent();
            self.per_account.retain_recent();
            self.per_ip.shrink_to_fit();
            self.per_account.shrink_to_fit();
        }
    }

    /// One request from `ip`. IPv6 clients are counted per /64 (one end site holds a whole
    /// /64, so counting single addresses would let it rotate past the limit).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), AppError> {
        self.housekeeping();
        self.per_ip.check_key(&bucket(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            too_many(wait)
        })
    }

    /// One attempt on `account` (an e-mail or a user id) from `ip`.
    pub fn check_account(&self, ip: IpAddr, account: &str) -> Result<(), AppError> {
        let digest = Sha256::digest(account.trim().to_lowercase().as_bytes());
        let mut key = [0u8; 16];
        for (k, d) in key.iter_mut().zip(digest.iter()) {
            *k = *d;
        }
        self.per_account
            .check_key(&(bucket(ip), key))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                too_many(wait)
            })
    }
}

/// The rate-limit bucket of an address: itself for IPv4, its /64 for IPv6.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
    }
}

fn too_many(wait: std::time::Duration) -> AppError {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    AppError::TooManyRequests {
        code: "too_many_requests",
        retry_after_secs: u32::try_from(secs.max(1)).unwrap_or(u32::MAX),
    }
}

/// Middleware: the per-IP limit on every request; records the client address for handlers.
pub async fn per_ip(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ip = state.throttle.client_ip(peer, req.headers());
    if let Err(e) = state.throttle.check_ip(ip) {
        return e.into_response();
    }
    req.extensions_mut().insert(ClientIp(ip));
    next.run(req).await
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or(ClientIp(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn throttle(trusted: &str) -> Throttle {
        let mut cfg =
            crate::app::AppConfig::load(&std::collections::HashMap::<String, String>::from([
                ("TRUSTED_PROXIES".to_owned(), trusted.to_owned()),
                ("AUTH_RATE_LIMIT_BURST".to_owned(), "2".to_owned()),
            ]))
            .unwrap()
            .auth;
        cfg.ip_burst = 3;
        Throttle::new(&cfg)
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 10.0.0.7"),
        );
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        // Untrusted peer: the header is ignored.
        assert_eq!(throttle("").client_ip(Some(peer), &h), peer);
        // Trusted peer: right-most untrusted hop (10.0.0.7 is also a proxy here).
        assert_eq!(
            throttle("10.0.0.0/8").client_ip(Some(peer), &h),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        // A spoofed left part does not help: the right-most untrusted address wins.
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("9.9.9.9, 5.6.7.8"),
        );
        assert_eq!(
            throttle("10.0.0.0/8").client_ip(Some(peer), &h),
            "5.6.7.8".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn limits_answer_429_with_retry_after() {
        let t = throttle("");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            t.check_ip(ip).unwrap();
        }
        match t.check_ip(ip) {
            Err(AppError::TooManyRequests {
                retry_after_secs, ..
            }) => assert!(retry_after_secs >= 1),
            other => panic!("{other:?}"),
        }
        // Another address is unaffected.
        t.check_ip("192.0.2.2".parse().unwrap()).unwrap();
        t.check_account(ip, "a@b.c").unwrap();
        t.check_account(ip, "A@B.C ").unwrap();
        assert!(t.check_account(ip, "a@b.c").is_err());
        t.check_account(ip, "other@b.c").unwrap();
        // One IPv6 /64 is one client.
        let t = throttle("");
        for i in 0..3 {
            t.check_ip(format!("2001:db8::{i}").parse().unwrap())
                .unwrap();
        }
        assert!(t.check_ip("2001:db8::ffff".parse().unwrap()).is_err());
        t.check_ip("2001:db8:0:1::1".parse().unwrap()).unwrap();
    }
}
