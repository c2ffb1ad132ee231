//! The realtime gateway (issue 12, items 4–5) with a real client (tokio-tungstenite): refusal
//! without a valid token, live chat between the two participants (typing, read marks,
//! presence), rooms closed to everyone else and across tenants, resume without loss or
//! duplicates, notifications pushed, slow consumers and silent peers dropped, token expiry and
//! renewal, and fan-out between two servers on one database — including after the listener's
//! connection is killed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::booking::{book, bookable, booking, employee};
use crate::helpers::TestApp;
use crate::members::send;
use crate::people::{host, mint_session};
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Open a socket on `app` for host `slug` with these subprotocols (`None`: no header).
async fn connect_with(
    app: &TestApp,
    slug: &str,
    protocols: Option<String>,
    path: &str,
) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("ws://{}{path}", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "host",
        format!("{}:{}", host(slug), app.addr.port())
            .parse()
            .unwrap(),
    );
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

pub async fn connect(app: &TestApp, slug: &str, token: &str) -> Ws {
    let mut ws = connect_with(
        app,
        slug,
        Some(format!("serein.v1, bearer.{token}")),
        "/api/v1/ws",
    )
    .await
    .unwrap();
    let ready = next(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    ws
}

/// The next event (pings are answered by the client library while reading).
pub async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        match frame {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Events until one of type `kind` (returned with the ones skipped before it).
pub async fn until(ws: &mut Ws, kind: &str) -> (Value, Vec<Value>) {
    let mut skipped = Vec::new();
    loop {
        let e = next(ws).await;
        if e["type"] == kind {
            return (e, skipped);
        }
        skipped.push(e);
    }
}

pub async fn emit(ws: &mut Ws, event: Value) {
    ws.send(Message::Text(event.to_string().into()))
        .await
        .unwrap();
}

/// Read until the server closes; its close code.
async fn closed(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Err(_) => panic!("not closed within 20 s"),
            Ok(Some(Ok(Message::Close(c)))) => return c.map(|c| c.code),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => {
                eprintln!("socket error before a close frame: {e}");
                return None;
            }
            Ok(None) => return None,
        }
    }
}

async fn tok(app: &TestApp, tenant: TenantId, slug: &str, user: UserId, role: Role) -> String {
    mint_session(app, tenant, &host(slug), user, &[role])
        .await
        .1
}

/// A practitioner and an employee of tenant A with a confirmed consultation in a few hours:
/// (doc, employee, consultation id).
pub async fn care(app: &TestApp) -> (UserId, UserId, String) {
    let doc = bookable(app, &[app.tenant_a], true).await;
    let (emp, e) = employee(app, app.tenant_a, "alpha").await;
    let t = (app.clock.now() + time::Duration::hours(3))
        .replace_minute(0)
        .unwrap()
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    let (s, c) = book(app, "alpha", &e, booking(doc, &t), None).await;
    assert_eq!(s, 201, "{c}");
    (doc, emp, c["id"].as_str().unwrap().to_owned())
}

pub async fn rest_send(app: &TestApp, c: &str, token: &str, body: &str) -> Value {
    let res = send(
        app,
        Method::POST,
        &host("alpha"),
        &format!("/api/v1/consultations/{c}/messages"),
        token,
        Some(json!({"body": body})),
    )
    .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

fn fast(s: &mut crate::helpers::Spawn) {
    s.env.insert("REALTIME_PING_SECS".into(), "1".into());
    s.env
        .insert("REALTIME_SESSION_CHECK_SECS".into(), "1".into());
}

#[tokio::test]
async fn the_socket_needs_a_valid_token_in_the_subprotocol_never_the_url() {
    let app = TestApp::spawn().await;
    let (emp, _) = employee(&app, app.tenant_a, "alpha").await;
    let good = tok(&app, app.tenant_a, "alpha", emp, Role::Employee).await;
    let (b_emp, _) = employee(&app, app.tenant_b, "bravo").await;
    let bravo = tok(&app, app.tenant_b, "bravo", b_emp, Role::Employee).await;
    let status = |r: Result<Ws, tungstenite::Error>| match r {
        Err(tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    for (protocols, path) in [
        (None, "/api/v1/ws".to_owned()),
        (Some("serein.v1".to_owned()), "/api/v1/ws".to_owned()),
        (
            Some("serein.v1, bearer.not-a-token".to_owned()),
            "/api/v1/ws".to_owned(),
        ),
        // Another company's token on this host.
        (
            Some(format!("serein.v1, bearer.{bravo}")),
            "/api/v1/ws".to_owned(),
        ),
        // A token in the URL is not read.
        (
            Some("serein.v1".to_owned()),
            format!("/api/v1/ws?access_token={good}"),
        ),
    ] {
        assert_eq!(
            status(connect_with(&app, "alpha", protocols.clone(), &path).await),
            401,
            "{protocols:?} {path}"
        );
    }
    // Without the protocol's subprotocol, or not an upgrade: a problem, not a socket.
    assert_eq!(
        status(connect_with(&app, "alpha", Some(format!("bearer.{good}")), "/api/v1/ws").await),
        400
    );
    let res = send(&app, Method::GET, &host("alpha"), "/api/v1/ws", &good, None).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "websocket_required"
    );
    // An ended session: refused before any socket exists.
    let (sid, ended) =
        mint_session(&app, app.tenant_a, &host("alpha"), emp, &[Role::Employee]).await;
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1")
        .bind(sid.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let refused = connect_with(
        &app,
        "alpha",
        Some(format!("serein.v1, bearer.{ended}")),
        "/api/v1/ws",
    )
    .await;
    assert_eq!(status(refused), 401);
    // The valid token: a socket, with `serein.v1` selected.
    let mut ws = connect(&app, "alpha", &good).await;
    emit(&mut ws, json!({"type": "ping", "ref": "p1"})).await;
    assert_eq!(next(&mut ws).await, json!({"type": "pong", "ref": "p1"}));
    // Bad events are refused without closing.
    emit(&mut ws, json!({"type": "chat.send", "consultation_id": uuid::Uuid::now_v7(), "body": "x", "sender_id": emp})).await;
    assert_eq!(next(&mut ws).await["code"], "invalid_event");
    emit(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await["type"], "pong");
}

#[tokio::test]
async fn the_two_participants_chat_live_and_nobody_else_joins_their_room() {
    let app = TestApp::spawn().await;
    let (doc, emp, c) = care(&app).await;
    let (et, pt) = (
        tok(&app, app.tenant_a, "alpha", emp, Role::Employee).await,
        tok(&app, app.tenant_a, "alpha", doc, Role::Practitioner).await,
    );
    let mut e = connect(&app, "alpha", &et).await;
    emit(
        &mut e,
        json!({"type": "subscribe", "consultation_id": c, "ref": "s"}),
    )
    .await;
    let sub = next(&mut e).await;
    assert_eq!(
        (
            sub["type"].as_str(),
            sub["last_seq"].as_i64(),
            sub["ref"].as_str()
        ),
        (Some("subscribed"), Some(0), Some("s"))
    );
    let mut p = connect(&app, "alpha", &pt).await;
    emit(&mut p, json!({"type": "subscribe", "consultation_id": c})).await;
    until(&mut p, "subscribed").await;
    // Presence both ways: the employee sees the practitioner arrive; the practitioner learns the
    // employee is there.
    let (pres, _) = until(&mut e, "presence").await;
    assert_eq!(
        (pres["user_id"].as_str(), pres["online"].as_bool()),
        (Some(doc.to_string().as_str()), Some(true))
    );
    let (pres, _) = until(&mut p, "presence").await;
    assert_eq!(
        (pres["user_id"].as_str(), pres["online"].as_bool()),
        (Some(emp.to_string().as_str()), Some(true))
    );

    // A message through the socket: acknowledged to its sender, delivered to both in order.
    emit(&mut e, json!({"type": "chat.send", "consultation_id": c, "body": "Bonjour", "client_ref": "m1", "ref": "x"})).await;
    let (sent, _) = until(&mut e, "chat.sent").await;
    assert_eq!(
        (
            sent["seq"].as_i64(),
            sent["ref"].as_str(),
            sent["replayed"].as_bool()
        ),
        (Some(1), Some("x"), Some(false))
    );
    for ws in [&mut e, &mut p] {
        let (m, _) = until(ws, "chat.message").await;
        assert_eq!(
            (m["message"]["seq"].as_i64(), m["message"]["body"].as_str()),
            (Some(1), Some("Bonjour"))
        );
    }
    // A message through REST reaches both sockets too.
    rest_send(&app, &c, &pt, "Hello from REST").await;
    for ws in [&mut e, &mut p] {
        let (m, _) = until(ws, "chat.message").await;
        assert_eq!(m["message"]["seq"], 2);
    }
    // Typing goes to the other participant only; read marks to the room.
    emit(&mut p, json!({"type": "chat.typing", "consultation_id": c})).await;
    let (typing, _) = until(&mut e, "chat.typing").await;
    assert_eq!(typing["user_id"], doc.to_string());
    emit(
        &mut e,
        json!({"type": "chat.read", "consultation_id": c, "seq": 2}),
    )
    .await;
    let (read, _) = until(&mut p, "chat.read").await;
    assert_eq!(
        (read["user_id"].as_str(), read["seq"].as_i64()),
        (Some(emp.to_string().as_str()), Some(2))
    );
    emit(&mut p, json!({"type": "ping"})).await;
    let (_, skipped) = until(&mut p, "pong").await;
    assert!(
        skipped.iter().all(|e| e["type"] != "chat.typing"),
        "own typing echoed: {skipped:?}"
    );

    // A colleague, HR, and another company's employee cannot join; they see nothing of the room.
    let (colleague, _) = employee(&app, app.tenant_a, "alpha").await;
    let (hr, _) = crate::members::person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    let (stranger, _) = employee(&app, app.tenant_b, "bravo").await;
    let mut outsiders = [
        connect(
            &app,
            "alpha",
            &tok(&app, app.tenant_a, "alpha", colleague, Role::Employee).await,
        )
        .await,
        connect(
            &app,
            "alpha",
            &tok(&app, app.tenant_a, "alpha", hr, Role::Hr).await,
        )
        .await,
        connect(
            &app,
            "bravo",
            &tok(&app, app.tenant_b, "bravo", stranger, Role::Employee).await,
        )
        .await,
    ];
    for ws in outsiders.iter_mut() {
        emit(
            ws,
            json!({"type": "subscribe", "consultation_id": c, "ref": "try"}),
        )
        .await;
        let err = next(ws).await;
        assert_eq!(
            (err["type"].as_str(), err["code"].as_str()),
            (Some("error"), Some("not_found")),
            "{err}"
        );
        emit(
            ws,
            json!({"type": "chat.send", "consultation_id": c, "body": "let me in"}),
        )
        .await;
        assert_eq!(next(ws).await["code"], "not_found");
    }
    rest_send(&app, &c, &et, "private").await;
    until(&mut p, "chat.message").await;
    for ws in outsiders.iter_mut() {
        emit(ws, json!({"type": "ping"})).await;
        let (_, skipped) = until(ws, "pong").await;
        assert!(skipped.is_empty(), "an outsider received {skipped:?}");
    }
    // The practitioner leaves: the employee is told.
    drop(p);
    let (gone, _) = until(&mut e, "presence").await;
    assert_eq!(gone["online"], false);
}

#[tokio::test]
async fn a_reconnecting_client_resumes_from_its_cursor_without_loss_or_duplicates_and_is_notified()
{
    let app = TestApp::spawn().await;
    let (doc, emp, c) = care(&app).await;
    let (et, pt) = (
        tok(&app, app.tenant_a, "alpha", emp, Role::Employee).await,
        tok(&app, app.tenant_a, "alpha", doc, Role::Practitioner).await,
    );
    let mut e = connect(&app, "alpha", &et).await;
    emit(&mut e, json!({"type": "subscribe", "consultation_id": c})).await;
    until(&mut e, "subscribed").await;
    rest_send(&app, &c, &pt, "one").await;
    let (m, _) = until(&mut e, "chat.message").await;
    assert_eq!(m["message"]["seq"], 1);
    emit(
        &mut e,
        json!({"type": "chat.read", "consultation_id": c, "seq": 1}),
    )
    .await;
    until(&mut e, "chat.read").await;
    e.close(None).await.unwrap();
    drop(e);

    // While the employee is away: two messages, and a notification waiting for them.
    rest_send(&app, &c, &pt, "two").await;
    rest_send(&app, &c, &pt, "three").await;
    let unread: Value = send(
        &app,
        Method::GET,
        &host("alpha"),
        "/api/v1/notifications?unread=true",
        &et,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let waiting = unread["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "message_received" && n["consultation_id"] == c.as_str())
        .count();
    assert_eq!(waiting, 1, "{unread}");
    let res = send(
        &app,
        Method::POST,
        &host("alpha"),
        "/api/v1/notifications/read-all",
        &et,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    // Back, connected but not in the room: the next new-message notification is pushed.
    let mut e = connect(&app, "alpha", &et).await;
    rest_send(&app, &c, &pt, "four").await;
    let (n, _) = until(&mut e, "notification").await;
    assert_eq!(
        (
            n["notification"]["kind"].as_str(),
            n["notification"]["consultation_id"].as_str()
        ),
        (Some("message_received"), Some(c.as_str()))
    );
    // Resume after 1: exactly 2, 3, 4 in order, then live ones, each once.
    emit(
        &mut e,
        json!({"type": "subscribe", "consultation_id": c, "after_seq": 1}),
    )
    .await;
    let (sub, backlog) = until(&mut e, "subscribed").await;
    let seqs: Vec<i64> = backlog
        .iter()
        .filter(|e| e["type"] == "chat.message")
        .map(|m| m["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 3, 4]);
    assert_eq!(sub["last_seq"], 4);
    rest_send(&app, &c, &pt, "five").await;
    let (m, _) = until(&mut e, "chat.message").await;
    assert_eq!(m["message"]["seq"], 5);
    emit(&mut e, json!({"type": "ping"})).await;
    let (_, skipped) = until(&mut e, "pong").await;
    assert!(
        skipped.iter().all(|e| e["type"] != "chat.message"),
        "a duplicate: {skipped:?}"
    );
}

#[tokio::test]
async fn silent_peers_and_expired_tokens_are_closed_with_their_codes() {
    let app = TestApp::spawn_with(fast).await;
    let (doc, emp, _) = care(&app).await;
    let et = tok(&app, app.tenant_a, "alpha", emp, Role::Employee).await;

    // A socket whose session ends is closed at the next session check (4003), even if it only
    // listens. (Real time again: the check rides on the ping timer.)
    let (sid, ended) =
        mint_session(&app, app.tenant_a, &host("alpha"), emp, &[Role::Employee]).await;
    let mut revoked = connect(&app, "alpha", &ended).await;
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1")
        .bind(sid.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(closed(&mut revoked).await, Some(CloseCode::Library(4003)));

    // A silent peer (reads nothing, so answers no ping) is dropped after two intervals. This
    // waits in real time: pings are a transport timer (REALTIME_PING_SECS=1 here), not the
    // injected clock, and reading would answer them.
    let mut silent = connect(&app, "alpha", &et).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(closed(&mut silent).await, Some(CloseCode::Library(4009)));

    // Token expiry: renewed in time, the socket stays; not renewed, it closes with 4001.
    let mut renewing = connect(&app, "alpha", &et).await;
    let mut lapsing = connect(&app, "alpha", &et).await;
    app.clock.advance(time::Duration::minutes(10));
    let fresh = tok(&app, app.tenant_a, "alpha", emp, Role::Employee).await;
    emit(
        &mut renewing,
        json!({"type": "auth", "token": fresh, "ref": "a"}),
    )
    .await;
    let (ok, _) = until(&mut renewing, "auth.ok").await;
    assert_eq!(ok["ref"], "a");
    // A token of someone else is refused and closes the socket.
    let other = tok(&app, app.tenant_a, "alpha", doc, Role::Practitioner).await;
    let mut hijack = connect(&app, "alpha", &et).await;
    emit(&mut hijack, json!({"type": "auth", "token": other})).await;
    assert_eq!(closed(&mut hijack).await, Some(CloseCode::Library(4001)));
    app.clock.advance(time::Duration::minutes(6));
    assert_eq!(closed(&mut lapsing).await, Some(CloseCode::Library(4001)));
    emit(&mut renewing, json!({"type": "ping"})).await;
    until(&mut renewing, "pong").await;
}

#[tokio::test]
async fn a_message_sent_through_one_server_reaches_a_client_of_the_other_even_after_its_listener_dies()
 {
    let one = TestApp::spawn().await;
    let two = one.spawn_peer(|_| {}).await;
    let (doc, emp, c) = care(&one).await;
    let (et, pt) = (
        tok(&one, one.tenant_a, "alpha", emp, Role::Employee).await,
        tok(&one, one.tenant_a, "alpha", doc, Role::Practitioner).await,
    );
    let mut e = connect(&two, "alpha", &et).await;
    emit(&mut e, json!({"type": "subscribe", "consultation_id": c})).await;
    until(&mut e, "subscribed").await;
    let mut p = connect(&one, "alpha", &pt).await;
    emit(&mut p, json!({"type": "subscribe", "consultation_id": c})).await;
    until(&mut p, "subscribed").await;
    // Presence crosses servers too.
    let (pres, _) = until(&mut e, "presence").await;
    assert_eq!(pres["online"], true);

    let sent = std::time::Instant::now();
    rest_send(&one, &c, &pt, "across servers").await;
    let (m, _) = until(&mut e, "chat.message").await;
    assert_eq!(
        (m["message"]["seq"].as_i64(), m["message"]["body"].as_str()),
        (Some(1), Some("across servers"))
    );
    assert!(sent.elapsed() < Duration::from_secs(5));
    emit(
        &mut e,
        json!({"type": "chat.send", "consultation_id": c, "body": "and back"}),
    )
    .await;
    loop {
        let (m, _) = until(&mut p, "chat.message").await;
        if m["message"]["seq"] == 2 {
            assert_eq!(m["message"]["body"], "and back");
            break;
        }
    }

    // Kill server two's LISTEN connection: it comes back, and nothing sent meanwhile is lost.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = 'serein-realtime' AND datname = current_database()
           AND query ILIKE 'listen%'",
    )
    .fetch_one(&mut one.owner().await)
    .await
    .unwrap();
    assert!(killed >= 1, "no listener found to kill");
    for body in ["during", "after"] {
        rest_send(&one, &c, &pt, body).await;
    }
    let mut got = Vec::new();
    while got.len() < 2 {
        let (m, _) = until(&mut e, "chat.message").await;
        if m["message"]["seq"].as_i64().unwrap() > 2 {
            got.push(m["message"]["body"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(got, vec!["during", "after"]);
    drop(two);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_as_a_slow_consumer() {
    // A client that stops reading while its room fills is dropped as a slow consumer, never
    // buffered without bound.
    let app = TestApp::spawn().await;
    let (doc, emp, c) = care(&app).await;
    let (et, pt) = (
        tok(&app, app.tenant_a, "alpha", emp, Role::Employee).await,
        tok(&app, app.tenant_a, "alpha", doc, Role::Practitioner).await,
    );
    let mut slow = connect(&app, "alpha", &et).await;
    emit(
        &mut slow,
        json!({"type": "subscribe", "consultation_id": c}),
    )
    .await;
    until(&mut slow, "subscribed").await;
    let body = "x".repeat(9_000);
    let before = app.state.realtime.connections();
    let mut dropped = false;
    for _ in 0..3_000 {
        rest_send(&app, &c, &pt, &body).await;
        if app.state.realtime.connections() < before {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the slow socket was never dropped");
    assert_eq!(closed(&mut slow).await, Some(CloseCode::Library(4008)));
}

#[tokio::test]
async fn call_signals_pass_between_the_two_participants_only_while_the_call_is_open() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert(
            "REALTIME_STUN_URLS".into(),
            "stun:stun.example.test:3478".into(),
        );
        s.env.insert(
            "REALTIME_TURN_URLS".into(),
            "turn:turn.example.test:3478?transport=udp, turns:turn.example.test:5349".into(),
        );
        s.env
            .insert("REALTIME_TURN_SECRET".into(), "shared-turn-secret".into());
    })
    .await;
    let (doc, emp, c) = care(&app).await;
    let et = tok(&app, app.tenant_a, "alpha", emp, Role::Employee).await;
    let ice = format!("/api/v1/consultations/{c}/ice");
    // Hours before the start: the call is not open, neither for ICE servers nor for signals.
    let res = send(&app, Method::GET, &host("alpha"), &ice, &et, None).await;
    assert_eq!(res.status(), 409);
    let mut e = connect(&app, "alpha", &et).await;
    emit(
        &mut e,
        json!({"type": "call.offer", "consultation_id": c, "sdp": "v=0 early", "ref": "o"}),
    )
    .await;
    let err = next(&mut e).await;
    assert_eq!(
        (err["code"].as_str(), err["ref"].as_str()),
        (Some("call_closed"), Some("o"))
    );

    // Five minutes before the start (the database's clock decides too: move the consultation).
    sqlx::query(
        "UPDATE consultations SET starts_at = now() + interval '5 minutes',
                                  ends_at = now() + interval '65 minutes' WHERE id = $1::uuid",
    )
    .bind(&c)
    .execute(&mut app.owner().await)
    .await
    .unwrap();
    app.clock.advance(
        sqlx::query_scalar::<_, time::OffsetDateTime>("SELECT now() + interval '5 minutes'")
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap()
            - time::Duration::minutes(5)
            - app.clock.now(),
    );
    let (et, pt) = (
        tok(&app, app.tenant_a, "alpha", emp, Role::Employee).await,
        tok(&app, app.tenant_a, "alpha", doc, Role::Practitioner).await,
    );
    let servers: Value = send(&app, Method::GET, &host("alpha"), &ice, &et, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        servers["ice_servers"][0]["urls"],
        json!(["stun:stun.example.test:3478"])
    );
    let turn = &servers["ice_servers"][1];
    let username = turn["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, emp.to_string());
    assert!(expiry.parse::<i64>().unwrap() > app.clock.now().unix_timestamp());
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"shared-turn-secret").unwrap();
    mac.update(username.as_bytes());
    let expect = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn["credential"], expect.as_str());

    let mut e = connect(&app, "alpha", &et).await;
    let mut p = connect(&app, "alpha", &pt).await;
    let sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 192.0.2.10\r\ns=-\r\n";
    emit(
        &mut p,
        json!({"type": "call.offer", "consultation_id": c, "sdp": sdp, "ref": "o1"}),
    )
    .await;
    let (sent, _) = until(&mut p, "call.sent").await;
    assert_eq!(
        (sent["kind"].as_str(), sent["ref"].as_str()),
        (Some("offer"), Some("o1"))
    );
    let (offer, _) = until(&mut e, "call.offer").await;
    assert_eq!(
        (offer["from"].as_str(), offer["sdp"].as_str()),
        (Some(doc.to_string().as_str()), Some(sdp))
    );
    emit(
        &mut e,
        json!({"type": "call.answer", "consultation_id": c, "sdp": "v=0 answer"}),
    )
    .await;
    let (answer, _) = until(&mut p, "call.answer").await;
    assert_eq!(answer["sdp"], "v=0 answer");
    let candidate = json!({"candidate": "candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    emit(
        &mut e,
        json!({"type": "call.ice", "consultation_id": c, "candidate": candidate}),
    )
    .await;
    let (ice_event, _) = until(&mut p, "call.ice").await;
    assert_eq!(ice_event["candidate"], candidate);
    emit(&mut p, json!({"type": "call.hangup", "consultation_id": c})).await;
    let (hangup, _) = until(&mut e, "call.hangup").await;
    assert_eq!(hangup["from"], doc.to_string());
    // Bad payloads are refused.
    emit(
        &mut p,
        json!({"type": "call.ice", "consultation_id": c, "candidate": "not an object"}),
    )
    .await;
    assert_eq!(until(&mut p, "error").await.0["code"], "validation_failed");

    // Nobody else relays into this call, and the sender never hears its own signal.
    let (colleague, _) = employee(&app, app.tenant_a, "alpha").await;
    let mut other = connect(
        &app,
        "alpha",
        &tok(&app, app.tenant_a, "alpha", colleague, Role::Employee).await,
    )
    .await;
    emit(
        &mut other,
        json!({"type": "call.offer", "consultation_id": c, "sdp": "v=0 intruder"}),
    )
    .await;
    assert_eq!(next(&mut other).await["code"], "not_found");
    assert_eq!(
        send(
            &app,
            Method::GET,
            &host("alpha"),
            &ice,
            &tok(&app, app.tenant_a, "alpha", colleague, Role::Employee).await,
            None
        )
        .await
        .status(),
        404
    );
    emit(&mut e, json!({"type": "ping"})).await;
    let (_, skipped) = until(&mut e, "pong").await;
    assert!(
        skipped
            .iter()
            .all(|s| !s["type"].as_str().unwrap().starts_with("call.")),
        "{skipped:?}"
    );
    // At rest the signals are sealed.
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM call_signals WHERE payload IS NOT NULL")
            .fetch_all(&mut app.owner().await)
            .await
            .unwrap();
    assert_eq!(stored.len(), 3);
    assert!(
        stored
            .iter()
            .all(|b| !b.windows(9).any(|w| w == b"192.0.2.1"))
    );
}

#[tokio::test]
async fn a_long_backlog_resumes_whole_and_abuse_is_bounded() {
    let app = TestApp::spawn().await;
    let (doc, emp, c) = care(&app).await;
    let (et, pt) = (
        tok(&app, app.tenant_a, "alpha", emp, Role::Employee).await,
        tok(&app, app.tenant_a, "alpha", doc, Role::Practitioner).await,
    );
    // 150 messages (more than twice the socket's outgoing queue) while the employee is away.
    for i in 1..=150 {
        rest_send(&app, &c, &pt, &format!("message {i} {}", "x".repeat(500))).await;
    }
    let mut e = connect(&app, "alpha", &et).await;
    emit(
        &mut e,
        json!({"type": "subscribe", "consultation_id": c, "after_seq": 0}),
    )
    .await;
    let (sub, backlog) = until(&mut e, "subscribed").await;
    let seqs: Vec<i64> = backlog
        .iter()
        .filter(|e| e["type"] == "chat.message")
        .map(|m| m["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=150).collect::<Vec<i64>>());
    assert_eq!(sub["last_seq"], 150);

    // Forged NOTIFYs (any database role can send one) change nothing a client sees: an unsigned
    // typing event is dropped, a read mark is re-read from the database.
    let tenant = app.tenant_a.to_string();
    for forged in [
        json!({"k": "typing", "t": tenant, "c": c, "u": doc}),
        json!({"k": "presence", "t": tenant, "c": c, "u": doc, "on": true, "m": "00"}),
        json!({"k": "read", "t": tenant, "c": c, "u": doc, "s": 999}),
    ] {
        sqlx::query("SELECT pg_notify('serein_realtime', $1)")
            .bind(forged.to_string())
            .execute(&mut app.owner().await)
            .await
            .unwrap();
    }
    emit(&mut e, json!({"type": "ping"})).await;
    let (_, seen) = until(&mut e, "pong").await;
    for ev in &seen {
        assert_ne!(ev["type"], "chat.typing", "{seen:?}");
        assert_ne!(ev["type"], "presence", "{seen:?}");
        if ev["type"] == "chat.read" {
            assert_eq!(
                ev["seq"], 150,
                "the practitioner's stored mark, not the forged one"
            );
        }
    }

    // Events are rate limited per socket; sockets per person are capped.
    // (60 at once: above the burst of 40, within the 64 answers a socket queues.)
    for _ in 0..60 {
        emit(&mut e, json!({"type": "ping"})).await;
    }
    let mut limited = 0;
    for _ in 0..60 {
        let ev = next(&mut e).await;
        if ev["code"] == "rate_limited" {
            limited += 1;
        }
    }
    assert!(limited > 0, "no event was refused");
    let mut held = Vec::new();
    for _ in 0..9 {
        held.push(connect(&app, "alpha", &et).await);
    }
    let over = connect_with(
        &app,
        "alpha",
        Some(format!("serein.v1, bearer.{et}")),
        "/api/v1/ws",
    )
    .await;
    match over {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 429),
        other => panic!("an 11th socket of one person: {:?}", other.map(|_| "open")),
    }
}
