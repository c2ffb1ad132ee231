//! Tenant resolution from the Host: unknown, suspended, platform host, upper case, port,
//! malformed, and no header can override it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, problem};

const PROFILE: &str = "/api/v1/tenant/profile";

#[tokio::test]
async fn tenant_host_serves_its_own_tenant_only() {
    let app = TestApp::spawn().await;
    let a: serde_json::Value = app
        .get("alpha.localhost", PROFILE)
        .await
        .json()
        .await
        .unwrap();
    let b: serde_json::Value = app
        .get("bravo.localhost", PROFILE)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["slug"], "alpha");
    assert_eq!(b["slug"], "bravo");
    assert_eq!(a["name"], "Tenant alpha");
}

#[tokio::test]
async fn upper_case_trailing_dot_and_any_port_resolve() {
    let app = TestApp::spawn().await;
    for host in ["ALPHA.LOCALHOST", "Alpha.localhost.", "alpha.localhost"] {
        let res = app.get(host, PROFILE).await;
        assert_eq!(res.status(), 200, "{host}");
    }
    let res = app
        .client
        .get(format!("http://{}{PROFILE}", app.addr))
        .header("host", "alpha.localhost:443")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(format!("http://{}{PROFILE}", app.addr))
        .header("host", "alpha.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "no port");
}

#[tokio::test]
async fn unknown_slug_is_404_tenant_not_found() {
    let app = TestApp::spawn().await;
    for host in ["nope.localhost", "a.b.localhost", "www.localhost"] {
        let res = app.get(host, PROFILE).await;
        assert_eq!(res.status(), 404, "{host}");
        assert_eq!(problem(res).await["code"], "tenant_not_found", "{host}");
    }
    // Any path on an unknown tenant host, not only known routes.
    let res = app.get("nope.localhost", "/api/v1/anything").await;
    assert_eq!(problem(res).await["code"], "tenant_not_found");
}

#[tokio::test]
async fn platform_host_has_no_tenant() {
    let app = TestApp::spawn().await;
    let res = app.get("localhost", PROFILE).await;
    assert_eq!(res.status(), 404);
    assert_eq!(problem(res).await["code"], "tenant_required");
}

#[tokio::test]
async fn malformed_or_foreign_host_is_400() {
    let app = TestApp::spawn().await;
    for host in [
        "alpha.localhost:99999",
        "alpha.localhost:x",
        "al_pha.localhost",
        "alpha..localhost",
        "evil.example",
        "alpha.localhost.evil.example",
    ] {
        let res = app.get(host, PROFILE).await;
        assert_eq!(res.status(), 400, "{host}");
        assert_eq!(problem(res).await["code"], "invalid_host", "{host}");
    }
}

#[tokio::test]
async fn missing_host_header_is_400() {
    let app = TestApp::spawn().await;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /api/v1/tenant/profile HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.0 400") || text.starts_with("HTTP/1.1 400"),
        "{text}"
    );
    assert!(text.contains("invalid_host"), "{text}");
}

#[tokio::test]
async fn two_host_headers_are_400() {
    let app = TestApp::spawn().await;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /api/v1/tenant/profile HTTP/1.1\r\nHost: alpha.localhost\r\nHost: bravo.localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(!text.contains("\"slug\""), "{text}");
}

#[tokio::test]
async fn no_header_or_parameter_overrides_the_host() {
    let app = TestApp::spawn().await;
    let res = app
        .req(
            reqwest::Method::GET,
            "alpha.localhost",
            &format!("{PROFILE}?tenant=bravo&tenant_id={}", app.tenant_b),
        )
        .header("x-forwarded-host", "bravo.localhost")
        .header("x-tenant-id", app.tenant_b.to_string())
        .header("forwarded", "host=bravo.localhost")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["slug"], "alpha");
}

#[tokio::test]
async fn suspension_takes_effect_within_the_cache_ttl() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("alpha.localhost", PROFILE).await.status(), 200);
    let mut owner = app.owner().await;
    sqlx::query("UPDATE tenants SET status = 'suspended' WHERE slug = 'alpha'")
        .execute(&mut owner)
        .await
        .unwrap();
    // Within the TTL the cached answer stands…
    assert_eq!(app.get("alpha.localhost", PROFILE).await.status(), 200);
    // …after it, the tenant is refused. (The clock is injected: no sleeping.)
    app.clock.advance(time::Duration::seconds(6));
    let res = app.get("alpha.localhost", PROFILE).await;
    assert_eq!(res.status(), 403);
    assert_eq!(problem(res).await["code"], "tenant_suspended");
    // Other tenants are unaffected.
    assert_eq!(app.get("bravo.localhost", PROFILE).await.status(), 200);
    // Resuming works the same way.
    sqlx::query("UPDATE tenants SET status = 'active' WHERE slug = 'alpha'")
        .execute(&mut owner)
        .await
        .unwrap();
    app.clock.advance(time::Duration::seconds(6));
    assert_eq!(app.get("alpha.localhost", PROFILE).await.status(), 200);
}

#[tokio::test]
async fn new_tenant_is_found_after_negative_cache_expires() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("charlie.localhost", PROFILE).await.status(), 404);
    let mut owner = app.owner().await;
    crate::helpers::create_tenant(&mut owner, "charlie").await;
    app.clock.advance(time::Duration::seconds(6));
    assert_eq!(app.get("charlie.localhost", PROFILE).await.status(), 200);
}

#[tokio::test]
async fn cors_allows_only_the_tenants_origins() {
    let app = TestApp::spawn().await;
    let ok = app
        .req(reqwest::Method::GET, "alpha.localhost", PROFILE)
        .header("origin", "https://alpha.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://alpha.example"
    );
    // Bravo's origin is not allowed on alpha's host.
    let other = app
        .req(reqwest::Method::GET, "alpha.localhost", PROFILE)
        .header("origin", "https://bravo.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let pre = app
        .req(reqwest::Method::OPTIONS, "alpha.localhost", PROFILE)
        .header("origin", "https://alpha.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://alpha.example"
    );
}
