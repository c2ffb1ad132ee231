//! SMTP over TLS: STARTTLS (required) and implicit TLS against a relay whose certificate comes
//! from a private CA; an unverifiable relay, or one without STARTTLS, gets nothing.

use serein::mail::{MailWorker, Message};
use serein::tenants::model::Locale;

use super::support::{
    Pki, SmtpServer, app_with_smtp, enqueue_committed, parse_eml, rows, start_tls_server,
};

#[tokio::test]
async fn starttls_and_implicit_tls_deliver_to_a_relay_with_a_private_ca() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem").to_string_lossy().into_owned();
    for (mode, implicit) in [("starttls", false), ("tls", true)] {
        let smtp = start_tls_server(&pki, implicit).await;
        let app = app_with_smtp(smtp.port, &[("SMTP_TLS", mode), ("SMTP_TLS_CA_FILE", &ca)]).await;
        let link = format!("https://alpha.localhost/verify-email?token={mode}");
        enqueue_committed(
            &app,
            app.tenant_a,
            "olga@acme.test",
            Locale::En,
            &Message::VerifyEmail { link: link.clone() },
        )
        .await;
        assert_eq!(
            MailWorker::from_state(&app.state).run_once().await.unwrap(),
            1
        );
        let mut owner = app.owner().await;
        let r = &rows(&mut owner, app.tenant_a).await[0];
        assert_eq!(r.status, "sent", "{mode}: {:?}", r.last_error);
        let received = smtp.received();
        assert_eq!(received.len(), 1, "{mode}");
        let m = parse_eml(&received[0]);
        assert_eq!(m["to"], "olga@acme.test");
        assert!(m["text"].as_str().unwrap().contains(&link), "{mode}");
    }
}

#[tokio::test]
async fn a_relay_that_cannot_prove_its_identity_or_offers_no_starttls_gets_nothing() {
    let pki = Pki::new();
    // Its certificate chains to a CA we were not told to trust.
    let untrusted = start_tls_server(&pki, false).await;
    // No STARTTLS offered at all: the message must not go out in clear.
    let plain = SmtpServer::start().await;
    for (smtp, expected) in [(&untrusted, "tls"), (&plain, "client")] {
        let app = app_with_smtp(smtp.port, &[("SMTP_TLS", "starttls")]).await;
        enqueue_committed(
            &app,
            app.tenant_a,
            "pat@acme.test",
            Locale::En,
            &Message::VerifyEmail {
                link: "https://alpha.localhost/verify-email?token=t".into(),
            },
        )
        .await;
        assert_eq!(
            MailWorker::from_state(&app.state).run_once().await.unwrap(),
            1
        );
        let mut owner = app.owner().await;
        let r = &rows(&mut owner, app.tenant_a).await[0];
        assert_eq!(r.status, "pending", "{expected}");
        assert_eq!(r.last_error.as_deref(), Some(expected));
        assert!(
            smtp.received().is_empty(),
            "{expected}: a message was delivered"
        );
    }
}
