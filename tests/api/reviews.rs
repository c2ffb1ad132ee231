//! Reviews (issue 11, item 9): one per ended consultation, by its employee, read back by its
//! author only, the comment sealed; a practitioner's rating shown (and used by matching) only
//! from the company's `min_cohort` on, in steps of five; the database alone refusing the rest.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Executor, PgConnection};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::booking::{book, bookable, booking, employee};
use crate::consultations::plant;
use crate::helpers::{TestApp, as_app_with_roles, as_member_with_session_roles};
use crate::members::{person, send};
use crate::people::{host, mint_session};
use crate::practitioners::add_practitioner;
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// The next whole hour of the app's (manual) clock.
fn next_hour(app: &TestApp) -> OffsetDateTime {
    let now = app.clock.now();
    now.replace_minute(0)
        .unwrap()
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::hours(1)
}

/// A fresh session of `user` with `role` in `tenant` (host `slug`): tokens live 15 minutes
/// and the clock moves in these tests.
async fn token(app: &TestApp, tenant: TenantId, slug: &str, user: UserId, role: Role) -> String {
    mint_session(app, tenant, &host(slug), user, &[role])
        .await
        .1
}

async fn review_call(
    app: &TestApp,
    method: Method,
    slug: &str,
    token: &str,
    consultation: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let res = send(
        app,
        method,
        &host(slug),
        &format!("/api/v1/consultations/{consultation}/review"),
        token,
        body,
    )
    .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn post_review(
    app: &TestApp,
    slug: &str,
    token: &str,
    consultation: &str,
    body: Value,
) -> (u16, Value) {
    review_call(app, Method::POST, slug, token, consultation, Some(body)).await
}

async fn get_review(app: &TestApp, slug: &str, token: &str, consultation: &str) -> (u16, Value) {
    review_call(app, Method::GET, slug, token, consultation, None).await
}

/// Stored reviews of a consultation (as the owner).
async fn stored(app: &TestApp, consultation: &str) -> Vec<(i16, Option<Vec<u8>>)> {
    sqlx::query_as(
        "SELECT rating, comment FROM consultation_reviews WHERE consultation_id = $1::uuid",
    )
    .bind(consultation)
    .fetch_all(&mut app.owner().await)
    .await
    .unwrap()
}

/// Book a slot of `doc` at `t` for the employee holding `e`, then let the practitioner start and
/// end it on the clock: the consultation's id (the clock is left just after its start).
async fn held(app: &TestApp, doc: UserId, e: &str, t: OffsetDateTime) -> String {
    let (s, c) = book(app, "alpha", e, booking(doc, &at(t)), None).await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    app.clock
        .advance(t + time::Duration::minutes(1) - app.clock.now());
    let p = token(app, app.tenant_a, "alpha", doc, Role::Practitioner).await;
    for action in ["start", "end"] {
        app.clock.advance(time::Duration::seconds(1));
        let res = send(
            app,
            Method::POST,
            &host("alpha"),
            &format!("/api/v1/consultations/{id}/{action}"),
            &p,
            None,
        )
        .await;
        assert_eq!(res.status(), 200, "{action}");
    }
    id
}

#[tokio::test]
async fn the_employee_reviews_an_ended_consultation_once_and_reads_it_back_sealed_at_rest() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (me, e) = employee(&app, app.tenant_a, "alpha").await;
    let h = next_hour(&app);
    let (s, later) = book(
        &app,
        "alpha",
        &e,
        booking(doc, &at(h + time::Duration::hours(3))),
        None,
    )
    .await;
    assert_eq!(s, 201);
    let later = later["id"].as_str().unwrap().to_owned();
    let id = held(&app, doc, &e, h).await;
    let e = token(&app, app.tenant_a, "alpha", me, Role::Employee).await;

    // Not before its end: the later session is only confirmed.
    let (s, body) = post_review(&app, "alpha", &e, &later, json!({"rating": 5})).await;
    assert_eq!((s, body["code"].as_str()), (409, Some("not_reviewable")));
    assert!(stored(&app, &later).await.is_empty());

    // Out of range, too long, unknown fields, wrong types: 422, and nothing stored.
    for body in [
        json!({"rating": 0}),
        json!({"rating": 6}),
        json!({"rating": -3}),
        json!({"rating": 4, "comment": "x".repeat(2001)}),
        json!({"rating": 4, "employee_id": me}),
        json!({"rating": 4, "tenant_id": app.tenant_b}),
        json!({"rating": "5"}),
        json!({"rating": 4.5}),
        json!({}),
    ] {
        let (s, problem) = post_review(&app, "alpha", &e, &id, body.clone()).await;
        assert_eq!(s, 422, "{body}: {problem}");
        assert!(
            matches!(
                problem["code"].as_str(),
                Some("validation_failed" | "invalid_body")
            ),
            "{problem}"
        );
    }
    let (_, problem) = post_review(&app, "alpha", &e, &id, json!({"rating": 6})).await;
    assert_eq!(problem["code"], "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "rating");
    assert!(stored(&app, &id).await.is_empty());
    // Nothing to read yet.
    assert_eq!(get_review(&app, "alpha", &e, &id).await.0, 404);

    // The review: 201 with what was written.
    let comment = "Very helpful — listened well, practical advice. Merci !";
    let (s, r) = post_review(
        &app,
        "alpha",
        &e,
        &id,
        json!({"rating": 4, "comment": format!("  {comment}\n")}),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["rating"], 4);
    assert_eq!(r["comment"], comment);
    assert_eq!(r["consultation_id"], id.as_str());
    assert_eq!(r["practitioner_id"], doc.to_string());
    let (s, read) = get_review(&app, "alpha", &e, &id).await;
    assert_eq!(s, 200);
    assert_eq!(read, r, "read back as written");

    // A second review of the same consultation: 409, the first one unchanged.
    let (s, body) = post_review(&app, "alpha", &e, &id, json!({"rating": 1})).await;
    assert_eq!((s, body["code"].as_str()), (409, Some("review_exists")));
    let rows = stored(&app, &id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, 4);

    // At rest the comment is ciphertext: not the text, not containing it, the text's length plus
    // the envelope (17-byte header, 16-byte tag). A review without a comment stores none.
    let blob = rows[0].1.clone().unwrap();
    assert_ne!(blob, comment.as_bytes());
    assert!(
        !blob
            .windows(8)
            .any(|w| comment.as_bytes().windows(8).any(|c| c == w)),
        "plaintext in the stored comment"
    );
    assert_eq!(blob.len(), comment.len() + 33);
    // Moved to another row, the blob no longer opens: 410, never a 500 or the text.
    let second = held(&app, doc, &e, h + time::Duration::hours(5)).await;
    let e = token(&app, app.tenant_a, "alpha", me, Role::Employee).await;
    let (s, r2) = post_review(&app, "alpha", &e, &second, json!({"rating": 5})).await;
    assert_eq!((s, &r2["comment"]), (201, &Value::Null));
    assert_eq!(stored(&app, &second).await[0].1, None);
    sqlx::query("UPDATE consultation_reviews SET comment = $2 WHERE consultation_id = $1::uuid")
        .bind(&second)
        .bind(&blob)
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let (s, body) = get_review(&app, "alpha", &e, &second).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (410, Some("sealed_data_unreadable"))
    );

    // Without a token: 401.
    let res = app
        .req(
            Method::GET,
            &host("alpha"),
            &format!("/api/v1/consultations/{id}/review"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn nobody_but_the_author_writes_or_reads_a_review() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let doc = bookable(&app, &[a], true).await;
    let (me, e) = employee(&app, a, "alpha").await;
    let id = held(&app, doc, &e, next_hour(&app)).await;
    let e = token(&app, a, "alpha", me, Role::Employee).await;
    let (s, _) = post_review(
        &app,
        "alpha",
        &e,
        &id,
        json!({"rating": 2, "comment": "Only for me and the platform."}),
    )
    .await;
    assert_eq!(s, 201);

    let (_, colleague) = employee(&app, a, "alpha").await;
    let (_, foreigner) = employee(&app, b, "bravo").await;
    let doc_token = token(&app, a, "alpha", doc, Role::Practitioner).await;
    let (_, hr) = person(&app, a, "alpha", &[Role::Hr]).await;
    let (_, admin) = person(&app, a, "alpha", &[Role::TenantAdmin]).await;
    for (who, slug, t, want) in [
        // Another employee of the company: not theirs, so not found.
        ("colleague", "alpha", &colleague, 404),
        // Another company's employee, on their own host: not found.
        ("employee of B", "bravo", &foreigner, 404),
        // Roles that never review (Casbin): the practitioner of the session included.
        ("practitioner", "alpha", &doc_token, 403),
        ("hr", "alpha", &hr, 403),
        ("tenant admin", "alpha", &admin, 403),
    ] {
        let (s, body) = get_review(&app, slug, t, &id).await;
        assert_eq!(s, want, "{who} reads: {body}");
        assert!(body.get("comment").is_none() && body.get("rating").is_none());
        let (s, body) = post_review(&app, slug, t, &id, json!({"rating": 5})).await;
        assert_eq!(s, want, "{who} writes: {body}");
    }
    // On A's host with a token of B: 401 (tokens are bound to their host).
    assert_eq!(get_review(&app, "alpha", &foreigner, &id).await.0, 401);
    let rows = stored(&app, &id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, 2);
    // The author still reads it.
    assert_eq!(get_review(&app, "alpha", &e, &id).await.0, 200);
}

/// `GET /practitioners/{id}`'s `rating` as seen by `token` on `slug`'s host.
async fn shown(app: &TestApp, slug: &str, token: &str, doc: UserId) -> Value {
    let res = send(
        app,
        Method::GET,
        &host(slug),
        &format!("/api/v1/practitioners/{doc}"),
        token,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let one: Value = res.json().await.unwrap();
    // The list says the same.
    let list: Value = send(
        app,
        Method::GET,
        &host(slug),
        "/api/v1/practitioners",
        token,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let listed = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == doc.to_string())
        .unwrap();
    assert_eq!(listed["rating"], one["rating"]);
    one["rating"].clone()
}

/// The matching rating component and explanation for `doc`.
async fn matched(app: &TestApp, token: &str, doc: UserId) -> (Value, Vec<String>) {
    let res: Value = send(
        app,
        Method::GET,
        &host("alpha"),
        "/api/v1/practitioners/match?need=stress",
        token,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let item = res["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["practitioner"]["user_id"] == doc.to_string())
        .unwrap()
        .clone();
    assert_eq!(
        item["practitioner"]["rating"],
        shown(app, "alpha", token, doc).await
    );
    let rating = item["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rating")
        .unwrap()
        .clone();
    let explanation = item["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    (rating, explanation)
}

#[tokio::test]
async fn a_rating_shows_from_min_cohort_on_in_steps_of_five_and_matching_uses_nothing_more() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut o = app.owner().await;
    // One practitioner serving both companies; A keeps the default cohort (5), B asks for 10.
    let doc = add_practitioner(
        &app,
        &mut o,
        "Dr Rated",
        &["stress"],
        &["en"],
        "bio",
        true,
        &[a, b],
    )
    .await;
    sqlx::query("UPDATE tenants SET min_cohort = 10 WHERE id = $1")
        .bind(b.as_uuid())
        .execute(&mut o)
        .await
        .unwrap();
    // Ended sessions: five in A, one in B.
    let past = app.clock.now() - time::Duration::days(3);
    let mut reviewers = Vec::new();
    for i in 0..6 {
        let (tenant, slug) = if i == 4 { (b, "bravo") } else { (a, "alpha") };
        let (user, t) = employee(&app, tenant, slug).await;
        let c = plant(
            &mut o,
            tenant,
            user,
            doc,
            past + time::Duration::hours(i),
            50,
            "ended",
        )
        .await
        .unwrap();
        reviewers.push((slug, t, c.to_string()));
    }
    let (_, viewer) = employee(&app, a, "alpha").await;
    let (_, viewer_b) = employee(&app, b, "bravo").await;
    let review = |i: usize, rating: i64| {
        let (slug, t, c) = reviewers[i].clone();
        let app = &app;
        async move {
            // A second between reviews: the release order is the order of writing.
            app.clock.advance(time::Duration::seconds(1));
            let (s, body) = post_review(app, slug, &t, &c, json!({"rating": rating})).await;
            assert_eq!(s, 201, "{body}");
        }
    };

    // Four reviews: below A's cohort, nothing shows and matching does not count a rating.
    for (i, rating) in [(0, 5), (1, 4), (2, 4), (3, 3)] {
        review(i, rating).await;
        assert_eq!(shown(&app, "alpha", &viewer, doc).await, Value::Null);
    }
    let (component, explanation) = matched(&app, &viewer, doc).await;
    assert_eq!(
        (&component["applied"], &component["value"]),
        (&json!(false), &Value::Null),
        "{component}"
    );
    assert!(explanation.contains(&"too few reviews to show: rating not counted".to_owned()));

    // The fifth, written in B: five reviews across the companies the practitioner serves. A
    // shows their mean; B, whose cohort is 10, still shows nothing.
    review(4, 2).await;
    let want = json!({"average": 3.6, "count": 5});
    assert_eq!(shown(&app, "alpha", &viewer, doc).await, want);
    assert_eq!(shown(&app, "bravo", &viewer_b, doc).await, Value::Null);
    // Matching applies the rating component, with the same figures (shrunk toward 3.5 by five
    // virtual reviews, mapped from 1–5 to 0–1).
    let (component, explanation) = matched(&app, &viewer, doc).await;
    let expected = ((3.6 * 5.0 + 3.5 * 5.0) / 10.0 - 1.0) / 4.0;
    assert_eq!(component["applied"], true, "{component}");
    assert!(
        (component["value"].as_f64().unwrap() - expected).abs() < 1e-4,
        "{component}"
    );
    assert!(
        explanation.contains(&"rated 3.6/5 by 5 reviews".to_owned()),
        "{explanation:?}"
    );

    // A sixth review is not released alone: the figures stay those of the first five until
    // five more arrive, so nobody (the practitioner least) can read one person's rating from
    // the change.
    review(5, 1).await;
    assert_eq!(shown(&app, "alpha", &viewer, doc).await, want);
    let (again, _) = matched(&app, &viewer, doc).await;
    assert_eq!(again, component);
}

/// Run one statement in a savepoint: rows affected, or the SQLSTATE.
async fn attempt(conn: &mut PgConnection, sql: &str) -> Result<u64, String> {
    conn.execute("SAVEPOINT probe").await.unwrap();
    match conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await {
        Ok(done) => {
            conn.execute("RELEASE SAVEPOINT probe").await.unwrap();
            Ok(done.rows_affected())
        }
        Err(e) => {
            conn.execute("ROLLBACK TO SAVEPOINT probe").await.unwrap();
            Err(e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned())
                .unwrap_or_default())
        }
    }
}

async fn visible(conn: &mut PgConnection) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT consultation_id FROM consultation_reviews ORDER BY 1")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
}

/// A direct INSERT of a review (the request role has no grant: only the definer writes).
fn insert_sql(
    tenant: TenantId,
    consultation: Uuid,
    employee: UserId,
    practitioner: UserId,
) -> String {
    format!(
        "INSERT INTO consultation_reviews (id, tenant_id, consultation_id, employee_id,
                                           practitioner_id, rating, comment, created_at)
         VALUES (gen_random_uuid(), '{tenant}', '{consultation}', '{employee}', '{practitioner}',
                 5, NULL, now())"
    )
}

/// `app_private.review_consultation` as the context of `conn`: its outcome, or the SQLSTATE.
async fn review_by_definer(conn: &mut PgConnection, consultation: Uuid) -> Result<String, String> {
    conn.execute("SAVEPOINT d").await.unwrap();
    let r: Result<String, sqlx::Error> = sqlx::query_scalar(
        "SELECT app_private.review_consultation(gen_random_uuid(), $1, 5::smallint, NULL, now())",
    )
    .bind(consultation)
    .fetch_one(&mut *conn)
    .await;
    match r {
        Ok(v) => {
            conn.execute("RELEASE SAVEPOINT d").await.unwrap();
            Ok(v)
        }
        Err(e) => {
            conn.execute("ROLLBACK TO SAVEPOINT d").await.unwrap();
            Err(e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned())
                .unwrap_or_default())
        }
    }
}

#[tokio::test]
async fn the_database_alone_keeps_reviews_to_their_author_and_the_aggregate_to_proven_members() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut o = app.owner().await;
    let doc = add_practitioner(
        &app,
        &mut o,
        "Dr Door",
        &["stress"],
        &["en"],
        "bio",
        true,
        &[a],
    )
    .await;
    let other_doc = add_practitioner(
        &app,
        &mut o,
        "Dr Other",
        &["stress"],
        &["en"],
        "bio",
        true,
        &[a],
    )
    .await;
    mint_session(&app, a, &host("alpha"), doc, &[Role::Practitioner]).await;
    let (me, _) = employee(&app, a, "alpha").await;
    let (other, other_token) = employee(&app, a, "alpha").await;
    let (reader_b, _) = employee(&app, b, "bravo").await;
    let past = app.clock.now() - time::Duration::days(2);
    let hour = time::Duration::hours(1);
    let mine = plant(&mut o, a, me, doc, past, 50, "ended").await.unwrap();
    let mine_open = plant(
        &mut o,
        a,
        me,
        doc,
        app.clock.now() + time::Duration::days(2),
        50,
        "confirmed",
    )
    .await
    .unwrap();
    let theirs = plant(&mut o, a, other, doc, past + hour, 50, "ended")
        .await
        .unwrap();
    let theirs_unreviewed = plant(&mut o, a, other, doc, past + hour * 2, 50, "ended")
        .await
        .unwrap();
    // The other employee's review, through the API (before the proofs below re-key sessions).
    let (s, _) = post_review(
        &app,
        "alpha",
        &other_token,
        &theirs.to_string(),
        json!({"rating": 1, "comment": "Not for anyone else."}),
    )
    .await;
    assert_eq!(s, 201);

    let mut c = app.owner().await;
    // A proven employee writes no review row directly — not someone else's, not their own, not
    // into another company — and updates or deletes none (no grant: a review is final).
    assert!(as_member_with_session_roles(&mut c, a, me, "employee").await);
    for (what, sql) in [
        ("theirs as me", insert_sql(a, theirs_unreviewed, me, doc)),
        (
            "theirs as them",
            insert_sql(a, theirs_unreviewed, other, doc),
        ),
        ("mine, not ended", insert_sql(a, mine_open, me, doc)),
        (
            "mine, another practitioner",
            insert_sql(a, mine, me, other_doc),
        ),
        ("mine, into B", insert_sql(b, mine, me, doc)),
        ("mine, as it should be", insert_sql(a, mine, me, doc)),
        (
            "UPDATE",
            "UPDATE consultation_reviews SET rating = 5".into(),
        ),
        (
            "UPDATE",
            "UPDATE consultation_reviews SET comment = NULL".into(),
        ),
        ("DELETE", "DELETE FROM consultation_reviews".into()),
    ] {
        assert_eq!(attempt(&mut c, &sql).await, Err("42501".into()), "{what}");
    }
    assert_eq!(visible(&mut c).await, Vec::<Uuid>::new());
    // Through the definer: someone else's consultation is not found, their own is reviewable
    // once ended, and once only (the practitioner comes from the consultation: no argument
    // names one).
    assert_eq!(
        review_by_definer(&mut c, theirs_unreviewed).await,
        Ok("not_found".into())
    );
    assert_eq!(
        review_by_definer(&mut c, theirs).await,
        Ok("not_found".into())
    );
    assert_eq!(
        review_by_definer(&mut c, mine_open).await,
        Ok("not_reviewable".into())
    );
    assert_eq!(review_by_definer(&mut c, mine).await, Ok("created".into()));
    assert_eq!(
        review_by_definer(&mut c, mine).await,
        Ok("review_exists".into())
    );
    assert_eq!(visible(&mut c).await, vec![mine]);
    let written: (Uuid, Uuid) = sqlx::query_as(
        "SELECT employee_id, practitioner_id FROM consultation_reviews WHERE consultation_id = $1",
    )
    .bind(mine)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(written, (me.as_uuid(), doc.as_uuid()));
    c.execute("ROLLBACK").await.unwrap();
    // The same person, also employed by B and proven there: A's consultation does not exist.
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ($1, $2, $3, '{employee}')",
    )
    .bind(Uuid::now_v7())
    .bind(b.as_uuid())
    .bind(me.as_uuid())
    .execute(&mut o)
    .await
    .unwrap();
    mint_session(&app, b, &host("bravo"), me, &[Role::Employee]).await;
    assert!(as_member_with_session_roles(&mut c, b, me, "employee").await);
    assert_eq!(
        review_by_definer(&mut c, mine).await,
        Ok("not_found".into())
    );
    assert_eq!(visible(&mut c).await, Vec::<Uuid>::new());
    c.execute("ROLLBACK").await.unwrap();

    // The practitioner of both sessions, proven, reads no review; the author reads theirs.
    for (user, roles, want) in [
        (doc, "practitioner", vec![]),
        (other, "employee", vec![theirs]),
    ] {
        assert!(as_member_with_session_roles(&mut c, a, user, roles).await);
        assert_eq!(visible(&mut c).await, want, "{roles}");
        c.execute("ROLLBACK").await.unwrap();
    }

    // Claimed, not proven (a crafted app.user_id), or in the wrong company: nothing read,
    // nothing written.
    for (tenant, user) in [
        (Some(a), Some(other)),
        (None, Some(other)),
        (Some(b), Some(other)),
    ] {
        as_app_with_roles(
            &mut c,
            tenant,
            user,
            "tenant_admin,hr,employee,practitioner",
        )
        .await;
        assert_eq!(visible(&mut c).await, Vec::<Uuid>::new());
        assert_eq!(
            review_by_definer(&mut c, theirs_unreviewed).await,
            Err("42501".into()),
            "{tenant:?}"
        );
        c.execute("ROLLBACK").await.unwrap();
    }

    // The aggregate: refused without a tenant or a proof; to a proven reader, nothing about a
    // practitioner who does not serve their company, nothing below the cohort.
    let ratings =
        format!("SELECT count(*) FROM app_private.practitioner_ratings(ARRAY['{doc}'::uuid])");
    for (tenant, user) in [(None, Some(other)), (Some(a), Some(other)), (Some(a), None)] {
        as_app_with_roles(&mut c, tenant, user, "employee").await;
        assert_eq!(
            attempt(&mut c, &ratings).await,
            Err("42501".into()),
            "{tenant:?} {user:?}"
        );
        c.execute("ROLLBACK").await.unwrap();
    }
    // Five reviews of `doc` now exist (as the owner): a proven reader of A gets the row, a
    // proven reader of B (doc does not serve B) gets none.
    for i in 0..4 {
        let (u, _) = employee(&app, a, "alpha").await;
        let cid = plant(&mut o, a, u, doc, past + hour * (3 + i), 50, "ended")
            .await
            .unwrap();
        o.execute(sqlx::AssertSqlSafe(insert_sql(a, cid, u, doc)))
            .await
            .unwrap();
    }
    let released = format!(
        "SELECT review_count, rating_mean FROM app_private.practitioner_ratings(ARRAY['{doc}'::uuid])"
    );
    assert!(as_member_with_session_roles(&mut c, a, me, "employee").await);
    let row: Option<(i64, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(released.clone()))
        .fetch_optional(&mut c)
        .await
        .unwrap();
    assert_eq!(row, Some((5, (1.0 + 4.0 * 5.0) / 5.0)));
    c.execute("ROLLBACK").await.unwrap();
    assert!(as_member_with_session_roles(&mut c, b, reader_b, "employee").await);
    let row: Option<(i64, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(released))
        .fetch_optional(&mut c)
        .await
        .unwrap();
    assert_eq!(row, None);
    c.execute("ROLLBACK").await.unwrap();
}
