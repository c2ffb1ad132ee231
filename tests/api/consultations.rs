//! Consultations (issue 11): the database layer on its own — who reads a consultation, the
//! busy-time definer, the double-booking exclusion across companies — attacked as
//! `serein_app` with crafted and proven contexts.

use sqlx::{Executor, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::{TestApp, as_app_with_roles, as_member_with_session_roles};
use crate::people::{add_person, host, mint_session};
use crate::practitioners::add_practitioner;
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

/// Insert a consultation as the owner (bookings have their own definer): its id, or the
/// SQLSTATE of the refusal.
pub async fn plant(
    owner: &mut PgConnection,
    tenant: TenantId,
    employee: UserId,
    practitioner: UserId,
    starts_at: OffsetDateTime,
    minutes: i64,
    status: &str,
) -> Result<Uuid, String> {
    let id = Uuid::now_v7();
    let cancelled_by = (status == "cancelled").then_some(employee.as_uuid());
    sqlx::query(
        "INSERT INTO consultations (id, tenant_id, employee_id, practitioner_id, kind, status,
                                    starts_at, ends_at, room, cancelled_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'video', $5, $6, $6 + make_interval(mins => $7::int), md5($1::text),
                 $8, now(), now())",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(employee.as_uuid())
    .bind(practitioner.as_uuid())
    .bind(status)
    .bind(starts_at)
    .bind(minutes)
    .bind(cancelled_by)
    .execute(&mut *owner)
    .await
    .map(|_| id)
    .map_err(|e| {
        e.as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
            .unwrap_or_default()
    })
}

async fn busy(
    conn: &mut PgConnection,
    practitioner: UserId,
    from: OffsetDateTime,
    days: i64,
) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    let rows: Vec<(OffsetDateTime, OffsetDateTime)> = sqlx::query_as(
        "SELECT starts_at, ends_at FROM app_private.practitioner_busy($1, $2, $2 + make_interval(days => $3::int))",
    )
    .bind(practitioner.as_uuid())
    .bind(from)
    .bind(days)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    rows
}

async fn seen(conn: &mut PgConnection) -> Vec<Uuid> {
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM consultations ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM consultation_events")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(events <= i64::try_from(ids.len()).unwrap() * 10);
    conn.execute("ROLLBACK").await.unwrap();
    ids
}

/// A person of `tenant` with `roles` and a live session there.
async fn proven_person(app: &TestApp, tenant: TenantId, slug: &str, roles: &[Role]) -> UserId {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let email = format!("{}@{slug}.consult.test", Uuid::now_v7().simple());
    let user = add_person(app, tenant, &email, &names).await;
    mint_session(app, tenant, &host(slug), user, roles).await;
    user
}

#[tokio::test]
async fn only_the_two_participants_read_a_consultation_and_busy_time_names_nobody() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut o = app.owner().await;
    let doc = add_practitioner(
        &app,
        &mut o,
        "Dr Both",
        &["stress"],
        &["en"],
        "bio",
        true,
        &[a, b],
    )
    .await;
    mint_session(&app, a, &host("alpha"), doc, &[Role::Practitioner]).await;
    let only_b = add_practitioner(
        &app,
        &mut o,
        "Dr B",
        &["stress"],
        &["en"],
        "bio",
        true,
        &[b],
    )
    .await;
    let patient = proven_person(&app, a, "alpha", &[Role::Employee]).await;
    let colleague = proven_person(&app, a, "alpha", &[Role::Employee]).await;
    let hr = proven_person(&app, a, "alpha", &[Role::Hr]).await;
    let admin = proven_person(&app, a, "alpha", &[Role::TenantAdmin]).await;
    let other_doc = add_practitioner(
        &app,
        &mut o,
        "Dr Colleague",
        &["stress"],
        &["en"],
        "bio",
        true,
        &[a],
    )
    .await;
    mint_session(&app, a, &host("alpha"), other_doc, &[Role::Practitioner]).await;
    let patient_b = proven_person(&app, b, "bravo", &[Role::Employee]).await;
    let reader_b = proven_person(&app, b, "bravo", &[Role::Employee]).await;

    let t0 = (OffsetDateTime::now_utc() + time::Duration::days(5))
        .replace_nanosecond(0)
        .unwrap();
    let in_a = plant(&mut o, a, patient, doc, t0, 50, "confirmed")
        .await
        .unwrap();
    // The same practitioner in B, later the same day; and a cancelled one overlapping A's.
    plant(
        &mut o,
        b,
        patient_b,
        doc,
        t0 + time::Duration::minutes(50),
        50,
        "requested",
    )
    .await
    .unwrap();
    plant(&mut o, b, patient_b, doc, t0, 30, "cancelled")
        .await
        .unwrap();

    // Double booking refused by the database, across companies, whoever inserts.
    assert_eq!(
        plant(
            &mut o,
            b,
            patient_b,
            doc,
            t0 + time::Duration::minutes(20),
            50,
            "requested"
        )
        .await,
        Err("23P01".into())
    );
    // One employee, two overlapping sessions in one company: refused too.
    assert_eq!(
        plant(
            &mut o,
            a,
            patient,
            other_doc,
            t0 + time::Duration::minutes(10),
            50,
            "requested"
        )
        .await,
        Err("23P01".into())
    );

    let mut c = app.owner().await;
    // The participants, proven, read it; nobody else does, whatever roles they hold.
    for (user, roles, want) in [
        (patient, "employee", vec![in_a]),
        (doc, "practitioner", vec![in_a]),
        (colleague, "employee", vec![]),
        (hr, "hr", vec![]),
        (admin, "tenant_admin", vec![]),
        (other_doc, "practitioner", vec![]),
    ] {
        assert!(as_member_with_session_roles(&mut c, a, user, roles).await);
        assert_eq!(seen(&mut c).await, want, "{roles}");
    }
    // A claimed participant (no proof), an empty or foreign tenant: nothing.
    for (tenant, user) in [
        (Some(a), Some(patient)),
        (Some(a), Some(doc)),
        (None, Some(patient)),
        (Some(b), Some(patient)),
    ] {
        as_app_with_roles(
            &mut c,
            tenant,
            user,
            "tenant_admin,hr,employee,practitioner",
        )
        .await;
        assert_eq!(seen(&mut c).await, Vec::<Uuid>::new());
    }

    // Busy time: merged across companies, as intervals only, to a proven reader of a company
    // the practitioner serves (and to themself).
    let from = t0 - time::Duration::days(1);
    let want = vec![(t0, t0 + time::Duration::minutes(100))];
    for (tenant, user, roles) in [
        (a, colleague, "employee"),
        (b, reader_b, "employee"),
        (a, doc, "practitioner"),
    ] {
        assert!(as_member_with_session_roles(&mut c, tenant, user, roles).await);
        assert_eq!(
            busy(&mut c, doc, from, 10).await,
            want,
            "{roles} of {tenant}"
        );
    }
    // A's reader asking about a practitioner who serves only B: nothing. A range over 64
    // days: nothing. A claim without proof: nothing.
    assert!(as_member_with_session_roles(&mut c, a, colleague, "employee").await);
    assert!(busy(&mut c, only_b, from, 10).await.is_empty());
    assert!(as_member_with_session_roles(&mut c, a, colleague, "employee").await);
    assert!(busy(&mut c, doc, from, 65).await.is_empty());
    as_app_with_roles(&mut c, Some(a), Some(colleague), "employee").await;
    assert!(busy(&mut c, doc, from, 10).await.is_empty());
}

/// Call a booking definer as the context of `conn`: its first column as text, or the SQLSTATE.
async fn call_definer(
    conn: &mut PgConnection,
    sql: &str,
    practitioner: UserId,
) -> Result<Option<String>, String> {
    conn.execute("SAVEPOINT d").await.unwrap();
    let r: Result<Option<String>, sqlx::Error> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(practitioner.as_uuid())
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

const LOCK: &str = "SELECT app_private.booking_lock($1)::text";
const BOOK: &str = "SELECT outcome FROM app_private.book_consultation(gen_random_uuid(), $1, 'video', now() + interval '2 days', now() + interval '2 days 1 hour', now())";
const CLAIM: &str =
    "SELECT outcome FROM app_private.idempotency_claim($1::text, sha256('x'), now(), 24)";

#[tokio::test]
async fn the_booking_definers_take_no_claim_as_proof_and_book_only_for_a_proven_employee() {
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
    let only_b = add_practitioner(
        &app,
        &mut o,
        "Dr Elsewhere",
        &["stress"],
        &["en"],
        "bio",
        true,
        &[b],
    )
    .await;
    for p in [doc, only_b] {
        sqlx::query("INSERT INTO practitioner_schedules (user_id, time_zone, created_at, updated_at) VALUES ($1, 'UTC', now(), now())")
            .bind(p.as_uuid())
            .execute(&mut o)
            .await
            .unwrap();
    }
    mint_session(&app, a, &host("alpha"), doc, &[Role::Practitioner]).await;
    let patient = proven_person(&app, a, "alpha", &[Role::Employee]).await;
    let hr = proven_person(&app, a, "alpha", &[Role::Hr]).await;
    let mut c = app.owner().await;

    // Claims prove nothing: every definer refuses (42501) a context without the guard's proof,
    // whoever it names and whatever roles it claims.
    for (tenant, user) in [
        (Some(a), Some(patient)),
        (Some(a), None),
        (None, Some(patient)),
        (Some(b), Some(patient)),
    ] {
        as_app_with_roles(&mut c, tenant, user, "employee,tenant_admin").await;
        for sql in [LOCK, BOOK, CLAIM] {
            assert_eq!(
                call_definer(&mut c, sql, doc).await,
                Err("42501".into()),
                "{sql} as {user:?} in {tenant:?}"
            );
        }
        c.execute("ROLLBACK").await.unwrap();
    }
    // Proven, but not an employee (HR), or the practitioner booking themself, or a
    // practitioner who does not serve this company: no lock, no booking.
    for (user, roles, practitioner) in [
        (hr, "hr", doc),
        (doc, "practitioner", doc),
        (patient, "employee", only_b),
    ] {
        assert!(as_member_with_session_roles(&mut c, a, user, roles).await);
        assert_eq!(
            call_definer(&mut c, LOCK, practitioner).await,
            Ok(None),
            "{roles}"
        );
        assert_eq!(
            call_definer(&mut c, BOOK, practitioner).await,
            Ok(Some("not_allowed".into())),
            "{roles}"
        );
        c.execute("ROLLBACK").await.unwrap();
    }
    // The proven employee: the lock answers the confirmation setting, the booking is theirs.
    assert!(as_member_with_session_roles(&mut c, a, patient, "employee").await);
    assert_eq!(
        call_definer(&mut c, LOCK, doc).await,
        Ok(Some("true".into()))
    );
    assert_eq!(
        call_definer(&mut c, BOOK, doc).await,
        Ok(Some("booked".into()))
    );
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM consultations WHERE employee_id = $1")
        .bind(patient.as_uuid())
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(mine, 1);
    c.execute("ROLLBACK").await.unwrap();
    // The lifecycle definers: a planted consultation of the patient's, moved only by a proven
    // participant; claims raise 42501, a proven stranger (HR) gets not_found and no names.
    let t0 = (OffsetDateTime::now_utc() + time::Duration::days(9))
        .replace_nanosecond(0)
        .unwrap();
    let planted = plant(&mut o, a, patient, doc, t0, 50, "confirmed")
        .await
        .unwrap();
    let moves = [
        format!(
            "SELECT app_private.consultation_transition('{planted}', 'cancel', NULL, now()) WHERE $1::uuid IS NOT NULL"
        ),
        format!(
            "SELECT app_private.reschedule_lock('{planted}', now())::text WHERE $1::uuid IS NOT NULL"
        ),
        format!(
            "SELECT app_private.consultation_reschedule('{planted}', now() + interval '10 days', now() + interval '10 days 1 hour', now()) WHERE $1::uuid IS NOT NULL"
        ),
    ];
    as_app_with_roles(&mut c, Some(a), Some(patient), "employee").await;
    for sql in &moves {
        assert_eq!(
            call_definer(&mut c, sql, doc).await,
            Err("42501".into()),
            "{sql}"
        );
    }
    let names: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM app_private.consultation_counterparts(ARRAY['{planted}'::uuid])"
    )))
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(names, 0);
    c.execute("ROLLBACK").await.unwrap();
    assert!(as_member_with_session_roles(&mut c, a, hr, "hr").await);
    assert_eq!(
        call_definer(&mut c, &moves[0], doc).await,
        Ok(Some("not_found".into()))
    );
    assert_eq!(call_definer(&mut c, &moves[1], doc).await, Ok(None));
    assert_eq!(
        call_definer(&mut c, &moves[2], doc).await,
        Ok(Some("not_found".into()))
    );
    c.execute("ROLLBACK").await.unwrap();
    assert!(as_member_with_session_roles(&mut c, a, patient, "employee").await);
    assert_eq!(
        call_definer(&mut c, &moves[0], doc).await,
        Ok(Some("cancelled".into()))
    );
    c.execute("ROLLBACK").await.unwrap();
    // The idempotency table is not the request role's: no grant.
    assert!(as_member_with_session_roles(&mut c, a, patient, "employee").await);
    let denied = c
        .execute("SELECT 1 FROM idempotency_keys")
        .await
        .unwrap_err();
    assert_eq!(
        denied.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("42501")
    );
    c.execute("ROLLBACK").await.unwrap();
}
