//! Transactional e-mail: the outbox is written in the caller's transaction, the worker delivers
//! to a REAL SMTP server (Python's aiosmtpd, started per test; `.ci/run` installs it), retries
//! with exponential backoff on the injected clock, gives up after the configured attempts,
//! purges bodies, and the request role can only insert rows for its own tenant.
//!
//! Messages are parsed back with Python's `email` package, an independent MIME parser.

mod outbox;
pub mod support;
mod tls;

use std::path::PathBuf;
use std::time::{Duration as StdDuration, Instant};

use serein::db::TenantTx;
use serein::mail::{MailWorker, Message, Transport};
use serein::tenants::model::Locale;
use sqlx::Executor;
use time::Duration;

use support::{
    SmtpServer, app_with_smtp, assert_close, enqueue_committed, free_port, parse_eml, rows,
};

use crate::helpers::TestApp;

#[tokio::test]
async fn a_committed_message_is_delivered_over_smtp_in_the_recipients_language() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(smtp.port, &[]).await;
    assert!(matches!(app.state.mail.transport(), Transport::Smtp(_)));
    let reset = "https://alpha.localhost/reset-password?token=0190.s3cret-reset";
    let verify = "https://alpha.localhost/verify-email?token=0190.s3cret-verify";
    enqueue_committed(
        &app,
        app.tenant_a,
        "Alice.Martin@acme.test",
        Locale::Fr,
        &Message::PasswordReset {
            link: reset.into(),
            expires_in_minutes: 60,
        },
    )
    .await;
    enqueue_committed(
        &app,
        app.tenant_b,
        "bob@bravo.test",
        Locale::En,
        &Message::VerifyEmail {
            link: verify.into(),
        },
    )
    .await;
    let worker = MailWorker::from_state(&app.state);
    assert_eq!(worker.run_once().await.unwrap(), 2);

    let received = smtp.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let msgs: Vec<serde_json::Value> = received.iter().map(|p| parse_eml(p)).collect();
    let fr = msgs
        .iter()
        .find(|m| m["to"] == "Alice.Martin@acme.test")
        .unwrap_or_else(|| panic!("no message to Alice: {msgs:?}"));
    assert_eq!(fr["subject"], "Réinitialisez votre mot de passe");
    assert_eq!(fr["from"], "Serein Test <no-reply@serein.test>");
    assert_eq!(fr["rcpt_to"], "Alice.Martin@acme.test", "SMTP envelope");
    assert_eq!(fr["mail_from"], "no-reply@serein.test", "SMTP envelope");
    assert_eq!(fr["multipart"], "multipart/alternative");
    assert_eq!(fr["auto_submitted"], "auto-generated");
    assert_eq!(fr["defects"], 0);
    let text = fr["text"].as_str().unwrap();
    assert!(text.contains(reset), "{text}");
    assert!(text.contains("expire dans 60 minutes"), "{text}");
    assert!(
        fr["html"]
            .as_str()
            .unwrap()
            .contains(&format!("href=\"{reset}\""))
    );
    let en = msgs.iter().find(|m| m["to"] == "bob@bravo.test").unwrap();
    assert_eq!(en["subject"], "Confirm your email address");
    assert!(en["text"].as_str().unwrap().contains(verify));

    // Recorded as sent, bodies purged, metadata kept; the Message-ID names the outbox row.
    let mut owner = app.owner().await;
    let a = rows(&mut owner, app.tenant_a).await;
    assert_eq!(a.len(), 1);
    let row = &a[0];
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));
    assert!(row.body_text.is_none() && row.body_html.is_none());
    assert!(row.lease_id.is_none() && row.last_error.is_none());
    assert_close(row.sent_at.unwrap(), app.clock.now());
    assert_eq!(
        fr["message_id"],
        format!("<{}@serein.test>", row.id),
        "Message-ID"
    );
    let kept: (String, String, String) =
        sqlx::query_as("SELECT to_address, template, locale FROM email_outbox WHERE id = $1")
            .bind(row.id)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(
        kept,
        (
            "Alice.Martin@acme.test".into(),
            "password_reset".into(),
            "fr".into()
        )
    );
    // Nothing is sent twice.
    assert_eq!(worker.run_once().await.unwrap(), 0);
    assert_eq!(smtp.received().len(), 2);
}

#[tokio::test]
async fn a_rolled_back_transaction_sends_nothing() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(smtp.port, &[]).await;
    let m = Message::VerifyEmail {
        link: "https://alpha.localhost/verify-email?token=x.y".into(),
    };
    {
        let mut tx = TenantTx::begin(&app.db, app.tenant_a, None).await.unwrap();
        serein::mail::enqueue(
            &mut tx,
            app.tenant_a,
            "carol@acme.test",
            Locale::En,
            &m,
            app.clock.now(),
        )
        .await
        .unwrap();
        // Dropped without commit: rolled back.
    }
    // A failure later in the same transaction rolls the mail back with it.
    let mut tx = TenantTx::begin(&app.db, app.tenant_a, None).await.unwrap();
    serein::mail::enqueue(
        &mut tx,
        app.tenant_a,
        "dave@acme.test",
        Locale::En,
        &m,
        app.clock.now(),
    )
    .await
    .unwrap();
    assert!(tx.execute("SELECT 1 / 0").await.is_err());
    // COMMIT of an aborted transaction rolls it back.
    let _ = tx.commit().await;

    let worker = MailWorker::from_state(&app.state);
    assert_eq!(worker.run_once().await.unwrap(), 0);
    assert!(smtp.received().is_empty());
    let mut owner = app.owner().await;
    assert!(rows(&mut owner, app.tenant_a).await.is_empty());
}

#[tokio::test]
async fn smtp_down_retries_with_exponential_backoff_then_dead_after_max_attempts() {
    let port = free_port(); // nothing listens here
    let app = app_with_smtp(
        port,
        &[
            ("SMTP_MAX_ATTEMPTS", "3"),
            ("MAIL_RETRY_BASE_SECS", "60"),
            ("MAIL_RETRY_MAX_SECS", "3600"),
        ],
    )
    .await;
    let link = "https://alpha.localhost/reset-password?token=u.sec";
    enqueue_committed(
        &app,
        app.tenant_a,
        "erin@acme.test",
        Locale::En,
        &Message::PasswordReset {
            link: link.into(),
            expires_in_minutes: 60,
        },
    )
    .await;
    let worker = MailWorker::from_state(&app.state);
    let mut owner = app.owner().await;

    // Attempt 1 fails: retry in base = 60 s; the body is kept for the retry.
    let t1 = app.clock.now();
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let r = &rows(&mut owner, app.tenant_a).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("pending", 1));
    assert_eq!(r.last_error.as_deref(), Some("connect"));
    assert!(r.body_text.as_deref().unwrap().contains(link));
    assert!(r.lease_id.is_none(), "the lease is released");
    assert_close(r.next_attempt_at, t1 + Duration::seconds(60));

    // Not due before then.
    assert_eq!(worker.run_once().await.unwrap(), 0);
    app.clock.advance(Duration::seconds(59));
    assert_eq!(worker.run_once().await.unwrap(), 0);

    // Attempt 2 fails: retry in 2 × base.
    app.clock.advance(Duration::seconds(1));
    let t2 = app.clock.now();
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let r = &rows(&mut owner, app.tenant_a).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("pending", 2));
    assert_close(r.next_attempt_at, t2 + Duration::seconds(120));
    app.clock.advance(Duration::seconds(119));
    assert_eq!(worker.run_once().await.unwrap(), 0);

    // Attempt 3 (the last permitted) fails: dead, body purged.
    app.clock.advance(Duration::seconds(1));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let r = &rows(&mut owner, app.tenant_a).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("dead", 3));
    assert!(r.body_text.is_none() && r.body_html.is_none());
    assert_close(r.dead_at.unwrap(), app.clock.now());
    assert_eq!(r.last_error.as_deref(), Some("connect"));

    // Never tried again.
    app.clock.advance(Duration::days(2));
    assert_eq!(worker.run_once().await.unwrap(), 0);
    assert_eq!(rows(&mut owner, app.tenant_a).await[0].attempts, 3);
}

#[tokio::test]
async fn a_retry_succeeds_once_the_relay_is_back_and_backoff_is_capped() {
    let port = free_port();
    let app = app_with_smtp(
        port,
        &[
            ("SMTP_MAX_ATTEMPTS", "10"),
            ("MAIL_RETRY_BASE_SECS", "60"),
            ("MAIL_RETRY_MAX_SECS", "200"),
        ],
    )
    .await;
    let link = "https://bravo.localhost/invitations/tok";
    enqueue_committed(
        &app,
        app.tenant_b,
        "frank@bravo.test",
        Locale::En,
        &Message::Invitation {
            link: link.into(),
            tenant_name: "Bravo & Co".into(),
            inviter_name: Some("Grace".into()),
            expires_in_days: 7,
        },
    )
    .await;
    let worker = MailWorker::from_state(&app.state);
    let mut owner = app.owner().await;
    // 60, 120, then capped at 200.
    for expected in [60, 120, 200, 200] {
        let t = app.clock.now();
        assert_eq!(worker.run_once().await.unwrap(), 1);
        let r = &rows(&mut owner, app.tenant_b).await[0];
        assert_eq!(r.status, "pending");
        assert_close(r.next_attempt_at, t + Duration::seconds(expected));
        app.clock.advance(Duration::seconds(expected));
    }
    let smtp = SmtpServer::start_on(port).await;
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    let m = parse_eml(&received[0]);
    assert_eq!(m["subject"], "You are invited to join Bravo & Co on Serein");
    assert!(m["text"].as_str().unwrap().contains(link));
    assert!(m["html"].as_str().unwrap().contains("Bravo &amp; Co"));
    let r = &rows(&mut owner, app.tenant_b).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("sent", 5));
    assert!(r.body_text.is_none());
}

#[tokio::test]
async fn without_smtp_host_messages_are_written_as_parseable_eml_files() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir.join("mail");
    match app.state.mail.transport() {
        Transport::Files(d) => assert_eq!(d, &dir),
        other => panic!("expected the file transport, got {other:?}"),
    }
    let login = "http://alpha.localhost:8080/login";
    let reset = "http://alpha.localhost:8080/forgot-password";
    enqueue_committed(
        &app,
        app.tenant_a,
        "heidi@acme.test",
        Locale::Fr,
        &Message::AccountExists {
            login_link: login.into(),
            reset_link: reset.into(),
        },
    )
    .await;
    assert_eq!(
        MailWorker::from_state(&app.state).run_once().await.unwrap(),
        1
    );
    let mut owner = app.owner().await;
    let row = &rows(&mut owner, app.tenant_a).await[0];
    assert_eq!(row.status, "sent");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files, vec![dir.join(format!("{}.eml", row.id))]);
    let m = parse_eml(&files[0]);
    assert_eq!(m["to"], "heidi@acme.test");
    assert_eq!(m["from"], "Serein <no-reply@localhost>");
    assert_eq!(m["subject"], "Vous avez déjà un compte Serein");
    assert_eq!(m["defects"], 0);
    let text = m["text"].as_str().unwrap();
    assert!(text.contains(login) && text.contains(reset), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the mail directory is private: {mode:o}");
    }
}

#[tokio::test]
async fn the_server_runs_the_worker_in_the_background_and_stops_it_on_shutdown() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("MAIL_WORKER".into(), "true".into());
        s.env.insert("MAIL_POLL_MS".into(), "20".into());
        // Long grace: if the worker ignored shutdown, stop() would take a minute.
        s.env.insert("SHUTDOWN_GRACE_MS".into(), "60000".into());
    })
    .await;
    enqueue_committed(
        &app,
        app.tenant_a,
        "nina@acme.test",
        Locale::En,
        &Message::VerifyEmail {
            link: "https://alpha.localhost/verify-email?token=bg".into(),
        },
    )
    .await;
    // A background task: poll with a deadline.
    let dir = app.data_dir.join("mail");
    let deadline = Instant::now() + StdDuration::from_secs(20);
    let mut owner = app.owner().await;
    loop {
        let sent = rows(&mut owner, app.tenant_a)
            .await
            .first()
            .is_some_and(|r| r.status == "sent");
        if sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background worker did not send within 20 s"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // Graceful shutdown stops the worker promptly.
    tokio::time::timeout(StdDuration::from_secs(10), app.stop())
        .await
        .expect("the server and its mail worker stop on shutdown");
}
