//! Availability (issue 11, item 1): the practitioner's own schedule through the API, and the
//! global tables' row-level security attacked as `serein_app` (DESIGN §2: global tables get
//! explicit tests; the catalogue matrix covers tables with a tenant_id).

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Executor, PgConnection, Row};
use uuid::Uuid;

use crate::helpers::{TestApp, as_app_with_roles, as_member_with_session_roles, problem};
use crate::members::send;
use crate::people::{add_person, host, member_session, mint_session};
use crate::practitioners::add_practitioner;
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

/// A practitioner serving `tenants`, with a live session on A's host (and its token).
async fn practitioner(app: &TestApp, name: &str, tenants: &[TenantId]) -> (UserId, String) {
    let mut o = app.owner().await;
    let id = add_practitioner(
        app,
        &mut o,
        name,
        &["stress"],
        &["en"],
        "bio",
        true,
        tenants,
    )
    .await;
    let (_, token) =
        mint_session(app, app.tenant_a, &host("alpha"), id, &[Role::Practitioner]).await;
    (id, token)
}

/// Open every day around the clock (hour-long slots, no notice, `kinds`) for the practitioner
/// of `token`, through the API.
pub async fn open_all_week(app: &TestApp, host: &str, token: &str, kinds: &[&str]) {
    for day in serein::availability::model::WEEKDAYS {
        let body = json!({"weekday": day, "start": "00:00", "end": "24:00", "lengths": [60],
                          "min_notice_minutes": 0, "horizon_days": 60, "kinds": kinds});
        let res = send(
            app,
            Method::POST,
            host,
            "/api/v1/availability/rules",
            token,
            Some(body),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
}

fn rule(weekday: &str, start: &str, end: &str) -> Value {
    json!({"weekday": weekday, "start": start, "end": end, "lengths": [50],
           "buffer_after_minutes": 10, "kinds": ["video", "audio"]})
}

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

#[tokio::test]
async fn a_practitioner_keeps_one_schedule_for_every_company_they_serve() {
    let app = TestApp::spawn().await;
    let (a, b) = (host("alpha"), host("bravo"));
    let (doc, t) = practitioner(&app, "Dr Rules", &[app.tenant_a, app.tenant_b]).await;
    let base = "/api/v1/availability";

    // Before anything is saved: this company's zone, automatic confirmation, not saved.
    let s = json_of(
        send(&app, Method::GET, &a, &format!("{base}/settings"), &t, None).await,
        200,
    )
    .await;
    assert_eq!(s["saved"], false);
    assert_eq!(s["auto_confirm"], true);

    let created = json_of(
        send(
            &app,
            Method::POST,
            &a,
            &format!("{base}/rules"),
            &t,
            Some(rule("tuesday", "09:00", "12:30")),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["weekday"], "tuesday");
    assert_eq!(created["lengths"], json!([50]));
    assert_eq!(created["kinds"], json!(["video", "audio"]));
    assert_eq!(created["min_notice_minutes"], 720);
    let id = created["id"].as_str().unwrap().to_owned();
    json_of(
        send(
            &app,
            Method::POST,
            &a,
            &format!("{base}/rules"),
            &t,
            Some(rule("sunday", "20:00", "24:00")),
        )
        .await,
        201,
    )
    .await;

    // One schedule: the same rules on the other company's host (a session there).
    let (_, t_b) = mint_session(&app, app.tenant_b, &b, doc, &[Role::Practitioner]).await;
    let on_b = json_of(
        send(&app, Method::GET, &b, &format!("{base}/rules"), &t_b, None).await,
        200,
    )
    .await;
    let on_a = json_of(
        send(&app, Method::GET, &a, &format!("{base}/rules"), &t, None).await,
        200,
    )
    .await;
    assert_eq!(on_a, on_b);
    assert_eq!(on_a["items"].as_array().unwrap().len(), 2);
    assert_eq!(on_a["items"][1]["end"], "24:00");

    // Change it, move the zone, confirm manually.
    let changed = json_of(
        send(
            &app,
            Method::PUT,
            &a,
            &format!("{base}/rules/{id}"),
            &t,
            Some(rule("wednesday", "14:00", "18:00")),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["weekday"], "wednesday");
    let s = json_of(
        send(
            &app,
            Method::PUT,
            &b,
            &format!("{base}/settings"),
            &t_b,
            Some(json!({"time_zone": "Europe/Paris", "auto_confirm": false})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        s,
        json!({"time_zone": "Europe/Paris", "auto_confirm": false, "saved": true})
    );
    let rules = json_of(
        send(&app, Method::GET, &a, &format!("{base}/rules"), &t, None).await,
        200,
    )
    .await;
    assert_eq!(rules["time_zone"], "Europe/Paris");

    // Exceptions: time off and extra hours, listed by start, deleted.
    let off = json_of(
        send(&app, Method::POST, &a, &format!("{base}/exceptions"), &t,
             Some(json!({"kind": "time_off", "starts_at": "2030-08-01T00:00:00Z", "ends_at": "2030-08-15T00:00:00Z"}))).await,
        201,
    )
    .await;
    assert!(off.get("offer").is_none());
    let extra = json_of(
        send(&app, Method::POST, &a, &format!("{base}/exceptions"), &t,
             Some(json!({"kind": "extra_hours", "starts_at": "2030-07-05T16:00:00Z", "ends_at": "2030-07-05T19:00:00Z",
                         "offer": {"lengths": [45], "kinds": ["chat"]}}))).await,
        201,
    )
    .await;
    assert_eq!(extra["offer"]["lengths"], json!([45]));
    let list = json_of(
        send(
            &app,
            Method::GET,
            &a,
            &format!("{base}/exceptions?from=2030-01-01T00:00:00Z&limit=1"),
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(list["items"][0]["id"], extra["id"]);
    let cursor = list["next_cursor"].as_str().unwrap();
    let rest = json_of(
        send(
            &app,
            Method::GET,
            &a,
            &format!("{base}/exceptions?from=2030-01-01T00:00:00Z&cursor={cursor}"),
            &t,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rest["items"][0]["id"], off["id"]);
    assert!(rest["next_cursor"].is_null());
    let off_id = off["id"].as_str().unwrap();
    json_of(
        send(
            &app,
            Method::DELETE,
            &a,
            &format!("{base}/exceptions/{off_id}"),
            &t,
            None,
        )
        .await,
        204,
    )
    .await;
    json_of(
        send(
            &app,
            Method::DELETE,
            &a,
            &format!("{base}/exceptions/{off_id}"),
            &t,
            None,
        )
        .await,
        404,
    )
    .await;
    json_of(
        send(
            &app,
            Method::DELETE,
            &a,
            &format!("{base}/rules/{id}"),
            &t,
            None,
        )
        .await,
        204,
    )
    .await;
    let rules = json_of(
        send(&app, Method::GET, &a, &format!("{base}/rules"), &t, None).await,
        200,
    )
    .await;
    assert_eq!(rules["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_input_is_refused_field_by_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let (_, t) = practitioner(&app, "Dr Strict", &[app.tenant_a]).await;
    let base = "/api/v1/availability";
    // Each case: a valid body with one part changed, and the field the 422 names.
    let valid_rule = json!({"weekday": "monday", "start": "09:00", "end": "12:00",
                            "lengths": [50], "kinds": ["video"]});
    let valid_extra = json!({"kind": "extra_hours", "starts_at": "2030-08-01T10:00:00Z",
                             "ends_at": "2030-08-01T12:00:00Z",
                             "offer": {"lengths": [50], "kinds": ["video"]}});
    let with = |base: &Value, change: Value| {
        let mut b = base.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let cases = [
        (
            "rules",
            with(&valid_rule, json!({"weekday": "funday"})),
            "weekday",
        ),
        ("rules", with(&valid_rule, json!({"start": "9h"})), "start"),
        (
            "rules",
            with(&valid_rule, json!({"start": "12:00", "end": "09:00"})),
            "end",
        ),
        (
            "rules",
            with(&valid_rule, json!({"end": "09:30"})),
            "lengths[0]",
        ),
        (
            "rules",
            with(&valid_rule, json!({"lengths": [5]})),
            "lengths[0]",
        ),
        (
            "rules",
            with(&valid_rule, json!({"lengths": []})),
            "lengths",
        ),
        (
            "rules",
            with(&valid_rule, json!({"kinds": ["telepathy"]})),
            "kinds[0]",
        ),
        (
            "rules",
            with(&valid_rule, json!({"horizon_days": 999})),
            "horizon_days",
        ),
        (
            "rules",
            with(&valid_rule, json!({"buffer_before_minutes": -1})),
            "buffer_before_minutes",
        ),
        (
            "exceptions",
            with(&valid_extra, json!({"ends_at": "2030-08-01T09:00:00Z"})),
            "ends_at",
        ),
        (
            "exceptions",
            with(&valid_extra, json!({"ends_at": "2030-08-03T00:00:00Z"})),
            "ends_at",
        ),
        (
            "exceptions",
            with(&valid_extra, json!({"offer": null})),
            "offer",
        ),
        (
            "exceptions",
            with(&valid_extra, json!({"kind": "time_off"})),
            "offer",
        ),
        (
            "exceptions",
            with(
                &valid_extra,
                json!({"offer": {"lengths": [50], "kinds": []}}),
            ),
            "offer.kinds",
        ),
    ];
    for (path, body, field) in cases {
        let res = send(
            &app,
            Method::POST,
            &a,
            &format!("{base}/{path}"),
            &t,
            Some(body.clone()),
        )
        .await;
        assert_eq!(res.status(), 422, "{body}");
        let p = problem(res).await;
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
    // Unknown fields and wrong types: 422 invalid_body; an unknown zone: 422 on time_zone.
    let res = send(&app, Method::POST, &a, &format!("{base}/rules"), &t,
                   Some(json!({"weekday": "monday", "start": "09:00", "end": "12:00", "lengths": [50], "kinds": ["video"], "colour": "red"}))).await;
    assert_eq!(res.status(), 422);
    assert_eq!(problem(res).await["code"], "invalid_body");
    for tz in ["Mars/Olympus", "", "+02:00", "Europe/../etc"] {
        let res = send(
            &app,
            Method::PUT,
            &a,
            &format!("{base}/settings"),
            &t,
            Some(json!({"time_zone": tz})),
        )
        .await;
        assert_eq!(res.status(), 422, "{tz}");
        assert_eq!(problem(res).await["errors"][0]["field"], "time_zone");
    }
    let res = send(
        &app,
        Method::GET,
        &a,
        &format!("{base}/exceptions?from=yesterday"),
        &t,
        None,
    )
    .await;
    assert_eq!(res.status(), 422);
    // Nothing was written.
    let rules = json_of(
        send(&app, Method::GET, &a, &format!("{base}/rules"), &t, None).await,
        200,
    )
    .await;
    assert_eq!(rules["items"], json!([]));
    let s = json_of(
        send(&app, Method::GET, &a, &format!("{base}/settings"), &t, None).await,
        200,
    )
    .await;
    assert_eq!(s["saved"], false);
}

#[tokio::test]
async fn only_practitioners_reach_the_routes_and_only_their_own_rows() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let (_, mine) = practitioner(&app, "Dr Mine", &[app.tenant_a]).await;
    let (_, theirs) = practitioner(&app, "Dr Theirs", &[app.tenant_a]).await;
    let base = "/api/v1/availability";
    let r = json_of(
        send(
            &app,
            Method::POST,
            &a,
            &format!("{base}/rules"),
            &mine,
            Some(rule("monday", "09:00", "12:00")),
        )
        .await,
        201,
    )
    .await;
    let rid = r["id"].as_str().unwrap().to_owned();
    let e = json_of(
        send(&app, Method::POST, &a, &format!("{base}/exceptions"), &mine,
             Some(json!({"kind": "time_off", "starts_at": "2030-08-01T00:00:00Z", "ends_at": "2030-08-02T00:00:00Z"}))).await,
        201,
    )
    .await;
    let eid = e["id"].as_str().unwrap().to_owned();

    // Another practitioner: the ids are 404, their lists are their own (empty).
    let res = send(
        &app,
        Method::PUT,
        &a,
        &format!("{base}/rules/{rid}"),
        &theirs,
        Some(rule("friday", "09:00", "12:00")),
    )
    .await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &a,
            &format!("{base}/rules/{rid}"),
            &theirs,
            None
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &a,
            &format!("{base}/exceptions/{eid}"),
            &theirs,
            None
        )
        .await
        .status(),
        404
    );
    let list = json_of(
        send(
            &app,
            Method::GET,
            &a,
            &format!("{base}/rules"),
            &theirs,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(list["items"], json!([]));
    let list = json_of(
        send(
            &app,
            Method::GET,
            &a,
            &format!("{base}/exceptions?from=2030-01-01T00:00:00Z"),
            &theirs,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(list["items"], json!([]));

    // Other roles: 403 (Casbin), whatever the id; no token: 401.
    for roles in [
        vec![Role::Employee],
        vec![Role::Hr],
        vec![Role::TenantAdmin],
    ] {
        let (_, tok) = member_session(&app, &roles).await;
        for (m, path) in [
            (Method::GET, format!("{base}/rules")),
            (Method::GET, format!("{base}/settings")),
            (Method::DELETE, format!("{base}/rules/{rid}")),
            (Method::GET, format!("{base}/exceptions")),
        ] {
            let res = send(&app, m.clone(), &a, &path, &tok, None).await;
            assert_eq!(res.status(), 403, "{roles:?} {m} {path}");
        }
    }
    let res = app
        .req(Method::GET, &a, &format!("{base}/rules"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // The owner's rows are intact.
    let list = json_of(
        send(&app, Method::GET, &a, &format!("{base}/rules"), &mine, None).await,
        200,
    )
    .await;
    assert_eq!(list["items"][0]["weekday"], "monday");
}

/// A rule for the practitioner `{doc}`, written as the request role.
const PLANT_RULE: &str = "INSERT INTO availability_rules (id, practitioner_id, weekday, start_time, end_time, lengths, min_notice_minutes, horizon_days, kinds, created_at, updated_at) VALUES (gen_random_uuid(), '{doc}', 2, '09:00', '10:00', '{60}', 0, 30, '{video}', now(), now())";

/// Count the rows of `table` `conn`'s context reads.
async fn visible(conn: &mut PgConnection, table: &str) -> i64 {
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    n
}

/// Run a statement in a savepoint: rows affected, or the SQLSTATE.
async fn attempt(conn: &mut PgConnection, sql: &str) -> Result<u64, String> {
    conn.execute("SAVEPOINT a").await.unwrap();
    let r = conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await;
    match r {
        Ok(done) => {
            conn.execute("RELEASE SAVEPOINT a").await.unwrap();
            Ok(done.rows_affected())
        }
        Err(e) => {
            conn.execute("ROLLBACK TO SAVEPOINT a").await.unwrap();
            Err(e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned())
                .unwrap_or_default())
        }
    }
}

#[tokio::test]
async fn the_global_tables_hold_alone_against_crafted_contexts() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    // A practitioner serving A only, with one rule and one exception.
    let (doc, t) = practitioner(&app, "Dr Guarded", &[app.tenant_a]).await;
    json_of(
        send(
            &app,
            Method::POST,
            &a,
            "/api/v1/availability/rules",
            &t,
            Some(rule("monday", "09:00", "12:00")),
        )
        .await,
        201,
    )
    .await;
    json_of(
        send(&app, Method::POST, &a, "/api/v1/availability/exceptions", &t,
             Some(json!({"kind": "time_off", "starts_at": "2030-08-01T00:00:00Z", "ends_at": "2030-08-02T00:00:00Z"}))).await,
        201,
    )
    .await;
    let tables = [
        "practitioner_schedules",
        "availability_rules",
        "availability_exceptions",
    ];
    let employee_a = add_person(&app, app.tenant_a, "emp.avail@alpha.test", &["employee"]).await;
    mint_session(&app, app.tenant_a, &a, employee_a, &[Role::Employee]).await;
    let employee_b = add_person(&app, app.tenant_b, "emp.avail@bravo.test", &["employee"]).await;
    mint_session(
        &app,
        app.tenant_b,
        &host("bravo"),
        employee_b,
        &[Role::Employee],
    )
    .await;
    let (other, _) = practitioner(&app, "Dr Other", &[app.tenant_a]).await;
    mint_session(&app, app.tenant_a, &a, other, &[Role::Practitioner]).await;
    let mut c = app.owner().await;
    let doc_sql = |s: &str| s.replace("{doc}", &doc.to_string());

    // Claims prove nothing: the practitioner's own id in the context, without the guard's
    // proof, reads nothing and writes nothing; nor do an empty or foreign tenant.
    for (tenant, user, roles) in [
        (Some(app.tenant_a), Some(doc), "practitioner"),
        (Some(app.tenant_a), Some(employee_a), "employee"),
        (
            Some(app.tenant_a),
            None,
            "tenant_admin,hr,employee,practitioner",
        ),
        (None, Some(doc), "practitioner"),
        (Some(app.tenant_b), Some(doc), "practitioner"),
    ] {
        as_app_with_roles(&mut c, tenant, user, roles).await;
        let proven: Option<Uuid> = sqlx::query_scalar("SELECT app_private.proven_person()")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(proven, None);
        for t in tables {
            assert_eq!(visible(&mut c, t).await, 0, "{t} as {roles} {tenant:?}");
        }
        assert_eq!(
            attempt(&mut c, &doc_sql(PLANT_RULE)).await,
            Err("42501".into())
        );
        assert_eq!(
            attempt(&mut c, "UPDATE availability_rules SET weekday = 3").await,
            Ok(0)
        );
        assert_eq!(
            attempt(&mut c, "DELETE FROM availability_rules").await,
            Ok(0)
        );
        assert_eq!(
            attempt(&mut c, "DELETE FROM availability_exceptions").await,
            Ok(0)
        );
        assert_eq!(
            attempt(
                &mut c,
                "UPDATE practitioner_schedules SET time_zone = 'UTC'"
            )
            .await,
            Ok(0)
        );
        c.execute("ROLLBACK").await.unwrap();
    }

    // Proven: an employee of a company the practitioner serves reads, never writes; one of
    // another company reads nothing; another practitioner of the same company reads (a
    // colleague's offer) and changes nothing; the practitioner themself does both.
    let cases: [(TenantId, UserId, &str, i64, bool); 4] = [
        (app.tenant_a, employee_a, "employee", 1, false),
        (app.tenant_b, employee_b, "employee", 0, false),
        (app.tenant_a, other, "practitioner", 1, false),
        (app.tenant_a, doc, "practitioner", 1, true),
    ];
    for (tenant, user, roles, reads, writes) in cases {
        assert!(as_member_with_session_roles(&mut c, tenant, user, roles).await);
        for t in tables {
            assert_eq!(
                visible(&mut c, t).await,
                reads,
                "{t} as proven {roles} of {tenant}"
            );
        }
        let changed = attempt(
            &mut c,
            &doc_sql("UPDATE availability_rules SET weekday = 5 WHERE practitioner_id = '{doc}'"),
        )
        .await;
        let deleted = attempt(
            &mut c,
            &doc_sql("DELETE FROM availability_exceptions WHERE practitioner_id = '{doc}'"),
        )
        .await;
        let moved = attempt(&mut c, &doc_sql("UPDATE practitioner_schedules SET time_zone = 'Asia/Tokyo' WHERE user_id = '{doc}'")).await;
        let want = Ok(u64::from(writes));
        assert_eq!(
            (changed, deleted, moved),
            (want.clone(), want.clone(), want),
            "{roles} of {tenant}"
        );
        // A rule planted for someone else is refused by WITH CHECK.
        if user != doc {
            assert_eq!(
                attempt(&mut c, &doc_sql(PLANT_RULE)).await,
                Err("42501".into())
            );
        }
        c.execute("ROLLBACK").await.unwrap();
    }
    // The rows are as the practitioner left them.
    let row = sqlx::query("SELECT weekday FROM availability_rules WHERE practitioner_id = $1")
        .bind(doc.as_uuid())
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(row.get::<i16, _>(0), 1);
}

#[tokio::test]
async fn slots_keep_local_hours_across_dst_and_hide_busy_time_from_every_company() {
    let app = TestApp::spawn().await;
    let (a, b) = (host("alpha"), host("bravo"));
    let (doc, t) = practitioner(&app, "Dr Slots", &[app.tenant_a, app.tenant_b]).await;
    let base = "/api/v1/availability";
    json_of(
        send(
            &app,
            Method::PUT,
            &a,
            &format!("{base}/settings"),
            &t,
            Some(json!({"time_zone": "Europe/Paris"})),
        )
        .await,
        200,
    )
    .await;
    json_of(
        send(
            &app,
            Method::POST,
            &a,
            &format!("{base}/rules"),
            &t,
            Some(
                json!({"weekday": "sunday", "start": "09:00", "end": "12:00", "lengths": [60],
                         "min_notice_minutes": 0, "horizon_days": 365, "kinds": ["video"]}),
            ),
        )
        .await,
        201,
    )
    .await;
    let (_, employee) = member_session(&app, &[Role::Employee]).await;
    let slots = |q: &str| format!("/api/v1/practitioners/{doc}/slots?{q}");
    let starts = |v: &Value| -> Vec<String> {
        v["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["starts_at"].as_str().unwrap().to_owned())
            .collect()
    };

    // 2027-03-21 (winter time) and 2027-03-28 (the change, 02:00 → 03:00): 09:00–12:00 local
    // both Sundays.
    let range = "from=2027-03-20T00:00:00Z&to=2027-03-29T00:00:00Z";
    let paris = json_of(
        send(
            &app,
            Method::GET,
            &a,
            &slots(&format!("{range}&tz=Europe/Paris")),
            &employee,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(paris["time_zone"], "Europe/Paris");
    assert_eq!(
        starts(&paris),
        [
            "2027-03-21T09:00:00+01:00",
            "2027-03-21T10:00:00+01:00",
            "2027-03-21T11:00:00+01:00",
            "2027-03-28T09:00:00+02:00",
            "2027-03-28T10:00:00+02:00",
            "2027-03-28T11:00:00+02:00",
        ]
    );
    assert_eq!(paris["slots"][0]["ends_at"], "2027-03-21T10:00:00+01:00");
    assert_eq!(paris["slots"][0]["length_minutes"], 60);
    // The same instants in the caller's zone (New York changed two weeks earlier), and UTC by
    // default.
    let ny = json_of(
        send(
            &app,
            Method::GET,
            &a,
            &slots(&format!("{range}&tz=America/New_York")),
            &employee,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(starts(&ny)[3], "2027-03-28T03:00:00-04:00");
    let utc = json_of(
        send(&app, Method::GET, &a, &slots(range), &employee, None).await,
        200,
    )
    .await;
    assert_eq!(starts(&utc)[0], "2027-03-21T08:00:00Z");

    // A booking in the other company takes 10:00 away, without a word about it.
    let mut o = app.owner().await;
    let patient_b = add_person(
        &app,
        app.tenant_b,
        "patient.slots@bravo.test",
        &["employee"],
    )
    .await;
    let at = time::OffsetDateTime::parse(
        "2027-03-28T08:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    crate::consultations::plant(&mut o, app.tenant_b, patient_b, doc, at, 60, "confirmed")
        .await
        .unwrap();
    let res = send(
        &app,
        Method::GET,
        &a,
        &slots(&format!("{range}&tz=Europe/Paris")),
        &employee,
        None,
    )
    .await;
    let text = res.text().await.unwrap();
    assert!(
        !text.contains("bravo") && !text.contains(&patient_b.to_string()),
        "{text}"
    );
    let after: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        starts(&after)[3..],
        ["2027-03-28T09:00:00+02:00", "2027-03-28T11:00:00+02:00"]
    );
    // The practitioner sees their own slots from any company they serve.
    let (_, t_b) = mint_session(&app, app.tenant_b, &b, doc, &[Role::Practitioner]).await;
    let own = json_of(
        send(
            &app,
            Method::GET,
            &b,
            &slots(&format!("{range}&tz=Europe/Paris")),
            &t_b,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(starts(&own), starts(&after));

    // Filters and bad input.
    let none = json_of(
        send(
            &app,
            Method::GET,
            &a,
            &slots(&format!("{range}&kind=chat")),
            &employee,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(none["slots"], json!([]));
    for (q, field) in [
        ("from=2027-03-01T00:00:00Z&to=2027-05-03T00:00:00Z", "to"),
        ("from=2027-03-02T00:00:00Z&to=2027-03-01T00:00:00Z", "to"),
        ("from=tomorrow", "from"),
        ("kind=telepathy", "kind"),
        ("length=7", "length"),
        ("tz=Mars/Olympus", "tz"),
    ] {
        let res = send(&app, Method::GET, &a, &slots(q), &employee, None).await;
        assert_eq!(res.status(), 422, "{q}");
        assert_eq!(problem(res).await["errors"][0]["field"], field, "{q}");
    }
    // 62 days exactly is accepted.
    let res = send(
        &app,
        Method::GET,
        &a,
        &slots("from=2027-03-01T00:00:00Z&to=2027-05-02T00:00:00Z"),
        &employee,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);

    // Not this company's practitioner, or not a practitioner: 404. HR: 403. No token: 401.
    let (only_b, _) = practitioner(&app, "Dr Only B", &[app.tenant_b]).await;
    for who in [only_b, patient_b, UserId::new()] {
        let res = send(
            &app,
            Method::GET,
            &a,
            &format!("/api/v1/practitioners/{who}/slots"),
            &employee,
            None,
        )
        .await;
        assert_eq!(res.status(), 404, "{who}");
    }
    let (_, hr) = member_session(&app, &[Role::Hr]).await;
    assert_eq!(
        send(&app, Method::GET, &a, &slots(""), &hr, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.req(Method::GET, &a, &slots(""))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn matching_counts_the_soonest_free_slot_and_zero_for_a_full_schedule() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let mut o = app.owner().await;
    let mut doc = async |name: &str| {
        let id = add_practitioner(
            &app,
            &mut o,
            name,
            &["anxiety"],
            &["en"],
            "bio",
            true,
            &[app.tenant_a],
        )
        .await;
        let (_, t) = mint_session(&app, app.tenant_a, &a, id, &[Role::Practitioner]).await;
        (id, t)
    };
    let (free, t_free) = doc("Dr Free").await;
    let (full, t_full) = doc("Dr Full").await;
    let (unset, _) = doc("Dr Unset").await;
    for t in [&t_free, &t_full] {
        open_all_week(&app, &a, t, &["video"]).await;
    }
    // Dr Full is away for the next 15 days.
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    json_of(
        send(
            &app,
            Method::POST,
            &a,
            "/api/v1/availability/exceptions",
            &t_full,
            Some(
                json!({"kind": "time_off", "starts_at": fmt(now - time::Duration::hours(1)),
                         "ends_at": fmt(now + time::Duration::days(15))}),
            ),
        )
        .await,
        201,
    )
    .await;
    let (_, employee) = member_session(&app, &[Role::Employee]).await;
    let res = json_of(
        send(
            &app,
            Method::GET,
            &a,
            "/api/v1/practitioners/match?need=anxiety&limit=10",
            &employee,
            None,
        )
        .await,
        200,
    )
    .await;
    let availability = |who: UserId| -> (bool, f64) {
        let item = res["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["practitioner"]["user_id"] == who.to_string())
            .unwrap();
        let c = item["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "availability")
            .unwrap();
        (
            c["applied"].as_bool().unwrap(),
            c["value"].as_f64().unwrap_or(-1.0),
        )
    };
    let (applied, value) = availability(free);
    assert!(applied && value > 0.99, "{value}");
    assert_eq!(availability(full), (true, 0.0));
    assert!(!availability(unset).0);
    // Free now ranks above fully booked (no schedule at all: availability not counted, as
    // before scheduling existed).
    let rank = |who: UserId| {
        res["items"]
            .as_array()
            .unwrap()
            .iter()
            .position(|i| i["practitioner"]["user_id"] == who.to_string())
            .unwrap()
    };
    assert!(rank(free) < rank(full));
}
