//! Tenant resolution: every request's tenant is its Host, `{slug}.{BASE_DOMAIN}`; the bare base
//! domain is the platform host.
//!
//! Invariants:
//! - Only the Host decides (the `Host` header, or the authority of an absolute-form request
//!   target); no other header or parameter can override it.
//! - Unknown slug → 404 `tenant_not_found`; suspended or offboarding (grace period) → 403
//!   `tenant_suspended`; offboarded (purged tombstone) → 410 `tenant_offboarded`; a malformed
//!   Host → 400 `invalid_host`. A host outside the base domain → 400 `invalid_host`.
//! - Slug → tenant is cached in-process for `TENANT_CACHE_TTL_MS` (default 5 s); a status
//!   change made through this process forgets the entry at once ([`TenantDirectory::forget`]),
//!   other processes see it within the TTL. Unknown slugs are cached apart, in a bounded map:
//!   a flood of random slugs can only evict other unknown slugs, never a real tenant.
//! - A request with two Host headers is refused; an absolute-form request target's authority
//!   wins over the Host header (RFC 9112 §3.2.2).
//! - CORS is answered here, because only here is the tenant's list of web origins known.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::model::TenantStatus;
use super::repo;
use crate::clock::Clock;
use crate::db::{Db, SystemTx, TenantId};
use crate::error::{AppError, problem_response};

/// Most entries the cache holds before it evicts.
const CACHE_CAPACITY: usize = 10_000;

/// A resolved, active tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: Arc<str>,
    pub web_origins: Arc<[String]>,
}

/// The host class of a request, put in its extensions by [`resolve_tenant`].
#[derive(Debug, Clone)]
pub enum Tenancy {
    Tenant(Tenant),
    Platform,
}

/// What a Host header says, before any database look-up.
#[derive(Debug, PartialEq, Eq)]
pub enum HostClass {
    Platform,
    Tenant(String),
    /// Well-formed, under the base domain, but cannot be a tenant (e.g. `a.b.localhost`).
    NoSuchTenant,
}

/// Classify a raw Host value against the base domain.
pub fn classify_host(raw: &str, base_domain: &str) -> Result<HostClass, AppError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 260 {
        return Err(AppError::InvalidHost(
            "The Host header is missing or too long.",
        ));
    }
    let (host, port) = match raw.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (raw, None),
    };
    if let Some(p) = port
        && (p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n > 65_535))
    {
        return Err(AppError::InvalidHost(
            "The Host header has an invalid port.",
        ));
    }
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let well_formed = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !well_formed {
        return Err(AppError::InvalidHost(
            "The Host header is not a valid host name.",
        ));
    }
    if host == base_domain {
        return Ok(HostClass::Platform);
    }
    let Some(label) = host
        .strip_suffix(base_domain)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return Err(AppError::InvalidHost("This host is not served here."));
    };
    match super::model::parse_slug(label) {
        Ok(slug) if !label.contains('.') => Ok(HostClass::Tenant(slug)),
        _ => Ok(HostClass::NoSuchTenant),
    }
}

struct Entry {
    resolved: repo::Resolved,
    expires: time::OffsetDateTime,
}

#[derive(Default)]
struct Cache {
    /// Real tenants: bounded by the number of tenants, not by what clients send.
    known: HashMap<String, Entry>,
    /// Slugs with no tenant, until they expire: bounded by [`CACHE_CAPACITY`].
    unknown: HashMap<String, time::OffsetDateTime>,
}

/// Slug → tenant, cached.
#[derive(Clone)]
pub struct TenantDirectory {
    db: Db,
    clock: Clock,
    ttl: time::Duration,
    cache: Arc<RwLock<Cache>>,
}

impl TenantDirectory {
    pub fn new(db: Db, clock: Clock, ttl: Duration) -> Self {
        Self {
            db,
            clock,
            ttl: time::Duration::try_from(ttl).unwrap_or(time::Duration::seconds(5)),
            cache: Arc::new(RwLock::new(Cache::default())),
        }
    }

    /// Resolve a slug, from the cache when fresh.
    pub async fn lookup(&self, slug: &str) -> Result<Option<repo::Resolved>, AppError> {
        let now = self.clock.now();
        if let Ok(cache) = self.cache.read() {
            if let Some(e) = cache.known.get(slug)
                && e.expires > now
            {
                return Ok(Some(e.resolved.clone()));
            }
            if cache.unknown.get(slug).is_some_and(|exp| *exp > now) {
                return Ok(None);
            }
        }
        let mut tx = SystemTx::begin(&self.db).await?;
        let resolved = repo::resolve(&mut tx, slug).await?;
        tx.commit().await?;
        let expires = now.checked_add(self.ttl).unwrap_or(now);
        if let Ok(mut cache) = self.cache.write() {
            match &resolved {
                Some(r) => {
                    cache.unknown.remove(slug);
                    cache.known.insert(
                        slug.to_owned(),
                        Entry {
                            resolved: r.clone(),
                            expires,
                        },
                    );
                }
                None => {
                    cache.known.remove(slug);
                    if cache.unknown.len() >= CACHE_CAPACITY {
                        cache.unknown.retain(|_, exp| *exp > now);
                        if cache.unknown.len() >= CACHE_CAPACITY {
                            cache.unknown.clear();
                        }
                    }
                    cache.unknown.insert(slug.to_owned(), expires);
                }
            }
        }
        Ok(resolved)
    }

    /// Forget one slug (after a status or settings change made by this process): the next
    /// request on its host reads the database.
    pub fn forget(&self, slug: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.known.remove(slug);
            cache.unknown.remove(slug);
        }
    }

    /// Forget everything (after an operator change in this process).
    pub fn invalidate(&self) {
        if let Ok(mut cache) = self.cache.write() {
            *cache = Cache::default();
        }
    }
}

/// Paths served on any host, without tenant resolution (probes use the pod IP as Host).
pub fn is_host_independent(path: &str) -> bool {
    path.starts_with("/health/")
        || path == "/metrics"
        || path == "/api/v1/openapi.json"
        || path == "/docs"
        || path.starts_with("/docs/")
}

/// The request's host: the absolute-form authority if any, else the single Host header.
fn host_of(req: &Request) -> Result<&str, AppError> {
    if let Some(a) = req.uri().authority() {
        return Ok(a.as_str());
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(h), None) => h
            .to_str()
            .map_err(|_| AppError::InvalidHost("The Host header is not valid text.")),
        (Some(_), Some(_)) => Err(AppError::InvalidHost("More than one Host header.")),
        (None, _) => Err(AppError::InvalidHost("The Host header is missing.")),
    }
}

/// What tenant resolution reads: the slug directory and the platform host. The middleware's
/// whole state; it sees nothing else of the application.
#[derive(Clone)]
pub struct TenantHosts {
    pub directory: TenantDirectory,
    /// `BASE_DOMAIN`: the platform host, and the parent of every tenant host.
    pub base_domain: Arc<str>,
}

/// Middleware: resolve the tenant of the Host, refuse unknown or suspended tenants, answer
/// CORS for the tenant's web origins.
pub async fn resolve_tenant(
    State(hosts): State<TenantHosts>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_host_independent(req.uri().path()) {
        return next.run(req).await;
    }
    let class = host_of(&req).and_then(|h| classify_host(h, &hosts.base_domain));
    let tenancy = match class {
        Err(e) => return problem_response(&e),
        Ok(HostClass::NoSuchTenant) => return problem_response(&AppError::TenantNotFound),
        Ok(HostClass::Platform) => Tenancy::Platform,
        Ok(HostClass::Tenant(slug)) => match hosts.directory.lookup(&slug).await {
            Err(e) => return e.into_response(),
            Ok(None) => return problem_response(&AppError::TenantNotFound),
            Ok(Some(r)) if r.status == TenantStatus::Offboarded => {
                return problem_response(&AppError::Gone("tenant_offboarded"));
            }
            Ok(Some(r)) if r.status != TenantStatus::Active => {
                return problem_response(&AppError::TenantSuspended);
            }
            Ok(Some(r)) => {
                tracing::Span::current().record("tenant", slug.as_str());
                Tenancy::Tenant(Tenant {
                    id: r.id,
                    slug: Arc::from(slug),
                    web_origins: Arc::from(r.web_origins),
                })
            }
        },
    };

    let origin = allowed_origin(req.headers(), &tenancy);
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(origin);
    }
    req.extensions_mut().insert(tenancy);
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if cors_headers(h, origin) {
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id, retry-after"),
        );
    }
    res
}

/// `Vary: Origin` always; the allow headers when the origin is allowed (returns whether it was).
fn cors_headers(h: &mut HeaderMap, origin: Option<HeaderValue>) -> bool {
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(o) = origin else {
        return false;
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    true
}

/// The request's Origin, if the tenant allows it. The platform host allows none.
fn allowed_origin(headers: &HeaderMap, tenancy: &Tenancy) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let o = origin.to_str().ok()?;
    match tenancy {
        Tenancy::Tenant(t) if t.web_origins.iter().any(|w| w == o) => Some(origin.clone()),
        _ => None,
    }
}

fn preflight(origin: Option<HeaderValue>) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    if cors_headers(h, origin) {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, idempotency-key, x-request-id"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    res
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = AppError;

    #[tracing::instrument(name = "tenant_extractor", skip_all)]
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Tenancy>() {
            Some(Tenancy::Tenant(t)) => Ok(t.clone()),
            Some(Tenancy::Platform) => Err(AppError::TenantRequired),
            // The middleware did not run: refuse rather than guess.
            None => Err(AppError::TenantNotFound),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenancy {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Tenancy>()
            .cloned()
            .ok_or(AppError::TenantNotFound)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let b = "localhost";
        assert_eq!(classify_host("localhost", b).unwrap(), HostClass::Platform);
        assert_eq!(
            classify_host("localhost:8080", b).unwrap(),
            HostClass::Platform
        );
        assert_eq!(
            classify_host("ACME.localhost:8080", b).unwrap(),
            HostClass::Tenant("acme".into())
        );
        assert_eq!(
            classify_host("acme.localhost.", b).unwrap(),
            HostClass::Tenant("acme".into())
        );
        assert_eq!(
            classify_host("a.b.localhost", b).unwrap(),
            HostClass::NoSuchTenant
        );
        assert_eq!(
            classify_host("www.localhost", b).unwrap(),
            HostClass::NoSuchTenant
        );
        for bad in [
            "",
            "acme.localhost:99999",
            "acme.localhost:x",
            "ac me.localhost",
            "acme..localhost",
            "[::1]:80",
            "evil.com",
            "acme.localhost.evil.com",
            "a_b.localhost",
        ] {
            assert!(classify_host(bad, b).is_err(), "{bad}");
        }
    }
}
