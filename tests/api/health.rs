//! Probes and metrics.

use sqlx::Executor;

use crate::helpers::{TestApp, problem};

#[tokio::test]
async fn live_and_ready_on_any_host() {
    let app = TestApp::spawn().await;
    // Probes arrive with the pod address as Host; unknown tenants do not matter here.
    for host in ["127.0.0.1", "nope.localhost", "alpha.localhost"] {
        assert_eq!(app.get(host, "/health/live").await.status(), 200, "{host}");
        assert_eq!(app.get(host, "/health/ready").await.status(), 200, "{host}");
    }
}

#[tokio::test]
async fn ready_fails_when_a_migration_is_missing_and_recovers() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    owner
        .execute("CREATE TEMP TABLE saved AS SELECT * FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)")
        .await
        .unwrap();
    owner
        .execute("DELETE FROM _sqlx_migrations WHERE version IN (SELECT version FROM saved)")
        .await
        .unwrap();
    let res = app.get("127.0.0.1", "/health/ready").await;
    assert_eq!(res.status(), 503);
    assert_eq!(problem(res).await["code"], "not_ready");
    assert_eq!(app.get("127.0.0.1", "/health/live").await.status(), 200);
    owner
        .execute("INSERT INTO _sqlx_migrations SELECT * FROM saved")
        .await
        .unwrap();
    assert_eq!(app.get("127.0.0.1", "/health/ready").await.status(), 200);
}

/// `/metrics` is served on its own listener (`METRICS_BIND`), never on the API listener: not on
/// a tenant's host, not on the platform host, not on the bare address.
#[tokio::test]
async fn metrics_count_requests_by_route_and_report_the_pool() {
    // A free port for the metrics listener (bound, released, handed to the app).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(|s| {
        s.env
            .insert("METRICS_BIND".into(), format!("127.0.0.1:{port}"));
    })
    .await;
    app.get("alpha.localhost", "/api/v1/tenant/profile").await;
    app.get("nope.localhost", "/api/v1/tenant/profile").await;
    for host in ["alpha.localhost", "localhost", "127.0.0.1"] {
        let res = app.get(host, "/metrics").await;
        assert_eq!(res.status(), 404, "/metrics on the API listener at {host}");
    }
    let body = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(
            "http_requests_total{method=\"GET\",route=\"/api/v1/tenant/profile\",status=\"200\"}"
        ),
        "{body}"
    );
    assert!(body.contains("status=\"404\""), "{body}");
    assert!(
        body.contains("http_request_duration_seconds_bucket"),
        "{body}"
    );
    for g in [
        "db_pool_connections",
        "db_pool_idle",
        "db_pool_waiting",
        "db_pool_max",
    ] {
        assert!(body.contains(g), "{g} missing");
    }
    // Raw paths never become labels.
    assert!(!body.contains("nope.localhost"));
}
