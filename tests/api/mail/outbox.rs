//! The outbox at the database level: what the request role may do, leases, retention.

use serein::db::{TenantId, TenantTx, WorkerTx};
use serein::mail::outbox::{self, ClaimLimits, RetryPolicy};
use serein::mail::{MailWorker, Message};
use serein::tenants::model::Locale;
use sqlx::Executor;
use time::{Duration, OffsetDateTime};

use super::support::{enqueue_committed, rows};
use crate::helpers::{TestApp, as_app};

#[tokio::test]
async fn the_request_role_may_only_insert_fresh_rows_for_its_own_tenant() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    crate::helpers::seed_world(&mut owner, app.tenant_a, "a").await;
    crate::helpers::seed_world(&mut owner, app.tenant_b, "b").await;
    let insert = |tenant: TenantId, status: &str, attempts: i32| {
        format!(
            "INSERT INTO email_outbox (id, tenant_id, to_address, locale, template, subject, body_text,
                                       created_at, next_attempt_at, status, attempts, sent_at)
             VALUES (gen_random_uuid(), '{tenant}', 'x@y.test', 'en', 'verify_email', 's', {body},
                     now(), now(), '{status}', {attempts}, {sent})",
            body = if status == "pending" { "'b'" } else { "NULL" },
            sent = if status == "sent" { "now()" } else { "NULL" },
        )
    };
    let sqlstate = |e: sqlx::Error| {
        e.as_database_error()
            .and_then(|d| d.code().map(|c| c.to_string()))
            .unwrap_or_default()
    };
    let mut conn = app.owner().await;
    as_app(&mut conn, Some(app.tenant_a), None).await;
    // Its own tenant, fresh: allowed.
    conn.execute(sqlx::AssertSqlSafe(insert(app.tenant_a, "pending", 0)))
        .await
        .unwrap();
    for (sql, what) in [
        (
            "SELECT count(*) FROM email_outbox".to_owned(),
            "reading (even its own tenant's rows)",
        ),
        (
            "UPDATE email_outbox SET status = 'dead'".to_owned(),
            "updating",
        ),
        ("DELETE FROM email_outbox".to_owned(), "deleting"),
        (insert(app.tenant_b, "pending", 0), "inserting for tenant B"),
        (
            insert(app.tenant_a, "sent", 0),
            "inserting an already sent row",
        ),
        (
            insert(app.tenant_a, "pending", 5),
            "inserting a row with attempts spent",
        ),
    ] {
        conn.execute("SAVEPOINT s").await.unwrap();
        let r = conn.execute(sqlx::AssertSqlSafe(sql.clone())).await;
        assert_eq!(
            r.map_err(sqlstate).map(|_| ()),
            Err("42501".into()),
            "{what}"
        );
        conn.execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    }
    // The worker's functions refuse a tenant context (a request cannot claim other tenants' mail).
    for sql in [
        "SELECT * FROM app_private.mail_claim(now(), 10, 60, 8)",
        "SELECT app_private.mail_prune(now(), 10)",
        "SELECT app_private.mail_mark_sent(gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), now())",
    ] {
        conn.execute("SAVEPOINT s").await.unwrap();
        let r = conn.execute(sql).await;
        assert_eq!(
            r.map_err(sqlstate).map(|_| ()),
            Err("42501".into()),
            "{sql}"
        );
        conn.execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    }
    conn.execute("ROLLBACK").await.unwrap();

    // enqueue through a TenantTx of A, naming tenant B: refused by row-level security.
    let mut tx = TenantTx::begin(&app.db, app.tenant_a, None).await.unwrap();
    let r = serein::mail::enqueue(
        &mut tx,
        app.tenant_b,
        "ivan@bravo.test",
        Locale::En,
        &Message::VerifyEmail {
            link: "https://bravo.localhost/v".into(),
        },
        app.clock.now(),
    )
    .await;
    assert!(r.is_err());
    drop(tx);
    let b_rows = rows(&mut owner, app.tenant_b).await;
    assert_eq!(b_rows.len(), 1, "only seed_world's row");
}

#[tokio::test]
async fn a_leased_message_is_not_claimed_twice_and_a_lost_lease_records_nothing() {
    let app = TestApp::spawn().await;
    enqueue_committed(
        &app,
        app.tenant_a,
        "judy@acme.test",
        Locale::En,
        &Message::VerifyEmail {
            link: "https://alpha.localhost/v".into(),
        },
    )
    .await;
    let limits = ClaimLimits {
        batch: 10,
        lease_secs: 300,
        max_attempts: 3,
    };
    let policy = RetryPolicy {
        max_attempts: 3,
        base_secs: 60,
        cap_secs: 3600,
    };
    let claim = |now: OffsetDateTime| {
        let db = app.db.clone();
        async move {
            let mut tx = WorkerTx::begin(&db).await.unwrap();
            let c = outbox::claim(&mut tx, now, limits).await.unwrap();
            tx.commit().await.unwrap();
            c
        }
    };
    let t0 = app.clock.now();
    let first = claim(t0).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    // The claimed row's Debug output carries no address or body.
    let dbg = format!("{:?}", first[0]);
    assert!(!dbg.contains("judy") && !dbg.contains("https://"), "{dbg}");
    // Leased: a second worker gets nothing, until the lease expires (the first worker died).
    assert!(claim(t0 + Duration::seconds(299)).await.is_empty());
    let second = claim(t0 + Duration::seconds(300)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert_ne!(first[0].lease, second[0].lease);
    // The first worker's late outcome is ignored.
    let mut tx = WorkerTx::begin(&app.db).await.unwrap();
    assert!(
        !outbox::mark_sent(&mut tx, &first[0], t0 + Duration::seconds(301))
            .await
            .unwrap()
    );
    assert_eq!(
        outbox::mark_failed(&mut tx, &first[0], t0, "connect", false, policy)
            .await
            .unwrap(),
        outbox::AfterFailure::LeaseLost
    );
    assert!(
        outbox::mark_sent(&mut tx, &second[0], t0 + Duration::seconds(301))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let mut owner = app.owner().await;
    assert_eq!(rows(&mut owner, app.tenant_a).await[0].status, "sent");

    // A worker that died on the last permitted attempt: declared dead when the lease expires.
    enqueue_committed(
        &app,
        app.tenant_b,
        "ken@bravo.test",
        Locale::En,
        &Message::VerifyEmail {
            link: "https://bravo.localhost/v".into(),
        },
    )
    .await;
    let t = t0 + Duration::seconds(400);
    for i in 0..3 {
        let c = claim(t + Duration::seconds(300 * i)).await;
        assert_eq!(c.len(), 1, "claim {i}");
    }
    assert!(claim(t + Duration::seconds(900)).await.is_empty());
    let r = &rows(&mut owner, app.tenant_b).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("dead", 3));
    assert!(r.body_text.is_none());
}

#[tokio::test]
async fn retention_prunes_old_sent_and_dead_rows_only() {
    let app = TestApp::spawn().await;
    let link = Message::VerifyEmail {
        link: "https://alpha.localhost/v".into(),
    };
    enqueue_committed(&app, app.tenant_a, "leo@acme.test", Locale::En, &link).await;
    let worker = MailWorker::from_state(&app.state);
    assert_eq!(worker.run_once().await.unwrap(), 1);
    enqueue_committed(&app, app.tenant_a, "mia@acme.test", Locale::En, &link).await;
    let mut owner = app.owner().await;
    // Make both rows old (created_at comes from the clock at enqueue).
    sqlx::query("UPDATE email_outbox SET created_at = created_at - interval '31 days'")
        .execute(&mut owner)
        .await
        .unwrap();
    assert_eq!(worker.prune().await.unwrap(), 1);
    let left = rows(&mut owner, app.tenant_a).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].status, "pending",
        "a pending message is never pruned"
    );
}
