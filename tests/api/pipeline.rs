//! The request pipeline: problem+json for every failure, bad input changes nothing, limits
//! (body size, in-flight, pool, timeouts, slowloris) answer fast and recover.
//!
//! The product has no unauthenticated write route yet, so the body tests mount a probe route
//! (`/api/v1/_probe/…`) through `App::build_with`: it goes through the same layers, the same
//! `AppJson` extractor and a real `TenantTx` insert, so "nothing written" is checked against
//! real rows, with a positive control proving the route does write when the input is good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serein::app::AppState;
use serein::db::tenancy::DbActor;
use serein::db::{TenantTx, UserId};
use serein::error::{AppError, AppResult};
use serein::http::AppJson;
use serein::rbac::Role;
use serein::tenants::resolve::Tenant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::helpers::{TestApp, problem, seed_world};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMembership {
    user_id: uuid::Uuid,
    roles: Vec<String>,
    department: Option<String>,
}

/// The header naming the tenant admin the probe acts as: `<user id>/<session id>`, a session
/// whose secret is the suite's `TEST_SESSION_SECRET` (a claimed role without the session
/// guard's proof is no role, migration 20261209000010).
const PROBE_ADMIN: &str = "x-probe-admin";

async fn probe_insert(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: axum::http::HeaderMap,
    AppJson(body): AppJson<NewMembership>,
) -> AppResult<StatusCode> {
    // The probe acts as a proven tenant admin and writes an invitation (theirs to create under
    // RLS): `user_id` is the inviter, so an unknown one is a reference to nobody.
    let (admin_id, session) = headers
        .get(PROBE_ADMIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once('/'))
        .and_then(|(u, s)| Some((u.parse::<uuid::Uuid>().ok()?, s.parse::<uuid::Uuid>().ok()?)))
        .ok_or(AppError::NotFound)?;
    let admin = DbActor {
        user: UserId::from(admin_id),
        roles: vec![Role::TenantAdmin],
        session: None,
    };
    let mut tx = TenantTx::begin(&state.db, tenant.id, Some(&admin)).await?;
    sqlx::query("SELECT app_private.session_guard($1, $2, $3, $4, ARRAY['tenant_admin'], now())")
        .bind(tenant.id.as_uuid())
        .bind(admin_id)
        .bind(session)
        .bind(crate::helpers::TEST_SESSION_SECRET.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(AppError::from)?;
    sqlx::query(
        "INSERT INTO invitations (id, tenant_id, email, invited_by, roles, department, token_hash, created_at, updated_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, sha256(gen_random_uuid()::text::bytea), now(), now(), now() + interval '7 days')",
    )
        .bind(uuid::Uuid::now_v7())
        .bind(tenant.id.as_uuid())
        .bind(format!("{}@probe.test", body.user_id.simple()))
        .bind(body.user_id)
        .bind(body.roles)
        .bind(body.department)
        .execute(&mut *tx)
        .await
        .map_err(AppError::from)?;
    tx.commit().await?;
    Ok(StatusCode::CREATED)
}

fn probes(gate: Arc<Notify>) -> Router<AppState> {
    Router::new()
        .route("/api/v1/_probe/memberships", post(probe_insert))
        .route(
            "/api/v1/_probe/hold",
            get(move || {
                let gate = gate.clone();
                async move {
                    gate.notified().await;
                    "released"
                }
            }),
        )
        .route(
            "/api/v1/_probe/never",
            get(std::future::pending::<&'static str>),
        )
        .route(
            "/api/v1/_probe/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("boom secret-detail");
                }
                "unreachable"
            }),
        )
}

async fn probe_rows(app: &TestApp) -> i64 {
    let mut owner = app.owner().await;
    sqlx::query_scalar("SELECT count(*) FROM invitations")
        .fetch_one(&mut owner)
        .await
        .unwrap()
}

async fn spawn_with_probes(
    f: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> (TestApp, Arc<Notify>) {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let app = TestApp::spawn_with(move |s| {
        s.extra = Some(probes(g));
        f(&mut s.env);
    })
    .await;
    (app, gate)
}

const PROBE: &str = "/api/v1/_probe/memberships";

/// A tenant admin of alpha with a live session the probe can prove: its `PROBE_ADMIN` value.
async fn probe_admin(owner: &mut sqlx::PgConnection, app: &TestApp) -> String {
    let admin = UserId::new();
    crate::helpers::give_roles(owner, app.tenant_a, admin, "tenant_admin").await;
    let session: uuid::Uuid = sqlx::query_scalar(
        "UPDATE sessions SET secret_hash = sha256($2) WHERE user_id = $1 RETURNING id",
    )
    .bind(admin.as_uuid())
    .bind(crate::helpers::TEST_SESSION_SECRET.as_slice())
    .fetch_one(&mut *owner)
    .await
    .unwrap();
    format!("{admin}/{session}")
}

#[tokio::test]
async fn bad_bodies_get_problems_and_write_nothing() {
    let (app, _) = spawn_with_probes(|_| {}).await;
    let mut owner = app.owner().await;
    let user = seed_world(&mut owner, app.tenant_b, "someone").await;
    let admin = probe_admin(&mut owner, &app).await;
    let before = probe_rows(&app).await;
    let post = |body: Vec<u8>, ct: Option<&str>| {
        let mut r = app
            .req(reqwest::Method::POST, "alpha.localhost", PROBE)
            .header(PROBE_ADMIN, &admin)
            .body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send()
    };

    let res = post(b"{\"user_id\": ".to_vec(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(problem(res).await["code"], "malformed_json");

    let body = serde_json::json!({"user_id": user.to_string(), "roles": ["employee"], "department": null, "tenant_id": app.tenant_b.to_string()});
    let res = post(serde_json::to_vec(&body).unwrap(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let p = problem(res).await;
    assert_eq!(p["code"], "invalid_body");
    assert!(p["detail"].as_str().unwrap().contains("tenant_id"), "{p}");

    let body =
        serde_json::json!({"user_id": "not-a-uuid", "roles": ["employee"], "department": null});
    let res = post(serde_json::to_vec(&body).unwrap(), Some("application/json"))
        .await
        .unwrap();
    assert_eq!(problem(res).await["code"], "invalid_body");

    let ok_body = serde_json::json!({"user_id": user.to_string(), "roles": ["employee"], "department": "ops"});
    let res = post(serde_json::to_vec(&ok_body).unwrap(), Some("text/plain"))
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(problem(res).await["code"], "unsupported_media_type");

    let res = post(serde_json::to_vec(&ok_body).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(res.status(), 415);

    // Over the 1 MiB default, declared…
    let mut big = serde_json::to_vec(&ok_body).unwrap();
    big.extend(std::iter::repeat_n(b' ', 2 * 1024 * 1024));
    let res = post(big.clone(), Some("application/json")).await.unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(problem(res).await["code"], "payload_too_large");
    // …and streamed without a Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let res = app
        .req(reqwest::Method::POST, "alpha.localhost", PROBE)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    // A constraint violation (unknown role) is refused by the database, not stored, and is a
    // client error that names no constraint.
    let bad_role = serde_json::json!({"user_id": user.to_string(), "roles": ["superuser"], "department": null});
    let res = post(
        serde_json::to_vec(&bad_role).unwrap(),
        Some("application/json"),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 422);
    let p = problem(res).await;
    assert_eq!(p["code"], "validation_failed");
    assert!(
        !p.to_string().contains("invitations_roles_check"),
        "constraint names leak: {p}"
    );
    // A reference to nobody: 400 invalid_reference.
    let ghost = serde_json::json!({"user_id": uuid::Uuid::now_v7().to_string(), "roles": ["employee"], "department": null});
    let res = post(
        serde_json::to_vec(&ghost).unwrap(),
        Some("application/json"),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(problem(res).await["code"], "invalid_reference");

    assert_eq!(
        probe_rows(&app).await,
        before,
        "a rejected request wrote rows"
    );

    // Positive control: the same route writes when the input is good…
    let res = post(
        serde_json::to_vec(&ok_body).unwrap(),
        Some("application/json"),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(probe_rows(&app).await, before + 1);
    // …and a duplicate is a 409, not a 500.
    let res = post(
        serde_json::to_vec(&ok_body).unwrap(),
        Some("application/json"),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "conflict");
    assert_eq!(probe_rows(&app).await, before + 1);
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_problems() {
    let app = TestApp::spawn().await;
    let res = app.get("alpha.localhost", "/api/v1/nope").await;
    assert_eq!(res.status(), 404);
    assert_eq!(problem(res).await["code"], "not_found");
    let res = app
        .req(
            reqwest::Method::DELETE,
            "alpha.localhost",
            "/api/v1/tenant/profile",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(problem(res).await["code"], "method_not_allowed");
}

#[tokio::test]
async fn responses_carry_request_id_and_safety_headers() {
    let app = TestApp::spawn().await;
    let res = app
        .req(
            reqwest::Method::GET,
            "alpha.localhost",
            "/api/v1/tenant/profile",
        )
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["cache-control"], "no-store");
    // A hostile request id is replaced, not echoed.
    let res = app
        .req(
            reqwest::Method::GET,
            "alpha.localhost",
            "/api/v1/tenant/profile",
        )
        .header("x-request-id", "<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "<script>");
    assert_eq!(res.headers()["x-request-id"].len(), 36);
}

#[tokio::test]
async fn panics_become_opaque_500_problems() {
    let (app, _) = spawn_with_probes(|_| {}).await;
    let res = app.get("alpha.localhost", "/api/v1/_probe/panic").await;
    assert_eq!(res.status(), 500);
    let p = problem(res).await;
    assert_eq!(p["code"], "internal_error");
    assert!(!p.to_string().contains("secret-detail"));
    // The server keeps serving.
    assert_eq!(
        app.get("alpha.localhost", "/api/v1/tenant/profile")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn overload_sheds_with_503_and_retry_after_then_recovers() {
    let (app, gate) = spawn_with_probes(|env| {
        env.insert("MAX_IN_FLIGHT".into(), "1".into());
    })
    .await;
    let held = tokio::spawn(
        app.req(
            reqwest::Method::GET,
            "alpha.localhost",
            "/api/v1/_probe/hold",
        )
        .send(),
    );
    // Wait until the held request occupies the only slot.
    let mut shed = None;
    for _ in 0..200 {
        let res = app.get("alpha.localhost", "/api/v1/tenant/profile").await;
        if res.status() == 503 {
            shed = Some(res);
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let res = shed.expect("no request was shed while the only slot was held");
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(problem(res).await["code"], "overloaded");
    // Liveness is never shed.
    assert_eq!(
        app.get("alpha.localhost", "/health/live").await.status(),
        200
    );
    gate.notify_one();
    assert_eq!(held.await.unwrap().unwrap().status(), 200);
    assert_eq!(
        app.get("alpha.localhost", "/api/v1/tenant/profile")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn pool_exhaustion_is_a_fast_503_and_recovers() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("DB_MAX_CONNECTIONS".into(), "1".into());
        s.env.insert("DB_ACQUIRE_TIMEOUT_MS".into(), "300".into());
    })
    .await;
    assert_eq!(
        app.get("alpha.localhost", "/api/v1/tenant/profile")
            .await
            .status(),
        200
    );
    let hog = app.db.admin_conn().await.unwrap();
    let started = Instant::now();
    let res = app.get("alpha.localhost", "/api/v1/tenant/profile").await;
    assert_eq!(res.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "pool exhaustion hung"
    );
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(problem(res).await["code"], "database_busy");
    drop(hog);
    assert_eq!(
        app.get("alpha.localhost", "/api/v1/tenant/profile")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn request_timeout_is_a_503_problem() {
    let (app, _) = spawn_with_probes(|env| {
        env.insert("REQUEST_TIMEOUT_MS".into(), "200".into());
    })
    .await;
    let res = app.get("alpha.localhost", "/api/v1/_probe/never").await;
    assert_eq!(res.status(), 503);
    assert_eq!(problem(res).await["code"], "request_timeout");
}

#[tokio::test]
async fn slowloris_connections_are_closed_while_others_are_served() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("HEADER_READ_TIMEOUT_MS".into(), "500".into());
    })
    .await;
    let addr = app.addr;
    let mut attackers = Vec::new();
    for _ in 0..40 {
        attackers.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /api/v1/tenant/profile HTTP/1.1\r\nHost: alpha.localhost\r\n")
                .await
                .unwrap();
            // Dribble one header line every 100 ms, never finishing the block.
            for i in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if s.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return started.elapsed();
                }
                let mut buf = [0u8; 512];
                match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => return started.elapsed(),
                    Ok(Ok(_)) => {
                        // hyper answers 408 before closing: also a close.
                        return started.elapsed();
                    }
                    Err(_) => {}
                }
            }
            started.elapsed()
        }));
    }
    // Meanwhile, a well-behaved client is served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.get("alpha.localhost", "/api/v1/tenant/profile")
            .await
            .status(),
        200
    );
    for a in attackers {
        let held = a.await.unwrap();
        assert!(
            held < Duration::from_secs(5),
            "a slow connection was held for {held:?}"
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let (app, gate) = spawn_with_probes(|_| {}).await;
    let held = tokio::spawn(
        app.req(
            reqwest::Method::GET,
            "alpha.localhost",
            "/api/v1/_probe/hold",
        )
        .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = app.addr;
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are refused once the listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    gate.notify_one();
    let res = held.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "released");
    stopping.await.unwrap();
}
