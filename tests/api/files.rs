//! Files (issue 13, item 6): uploads are sniffed (claims that disagree are refused, SVG and HTML
//! never stored), images re-encoded without metadata, objects sealed at rest, served with safe
//! headers only to those the link rules allow (owner, avatars, attachments, published article
//! images) — through the API and at the database alone — and removed by the sweep. The S3
//! backend runs against a real S3-compatible server (moto, from PyPI; `.ci/run` installs it).

use std::io::Cursor;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{Executor, PgConnection, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::booking::{book, bookable, booking, employee};
use crate::helpers::{
    TestApp, as_app, as_app_with_roles, as_member_with_session, as_member_with_session_roles,
    problem,
};
use crate::people::{add_person, host, mint_session};
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

const BOUNDARY: &str = "serein-test-boundary-7e3f0a";

/// A refused upload: ((name, declared type, bytes), purpose, status, code).
type Case<'a> = (
    (&'a str, Option<&'a str>, &'a [u8]),
    Option<&'a str>,
    u16,
    &'a str,
);

/// One part of a form: (name, file name, content type, bytes).
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file_name, ct, data) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disp = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = file_name {
            disp.push_str(&format!("; filename=\"{f}\""));
        }
        out.extend_from_slice(disp.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = ct {
            out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// Upload one file: (status, body).
pub(crate) async fn upload(
    app: &TestApp,
    slug: &str,
    token: &str,
    (name, ct, data): (&str, Option<&str>, &[u8]),
    purpose: Option<&str>,
) -> (u16, Value) {
    let mut parts: Vec<Part<'_>> = vec![("file", Some(name), ct, data)];
    if let Some(p) = purpose {
        parts.push(("purpose", None, None, p.as_bytes()));
    }
    let res = app
        .req(Method::POST, &host(slug), "/api/v1/files")
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(form(&parts))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(crate) async fn fetch(app: &TestApp, slug: &str, token: &str, id: &str) -> reqwest::Response {
    app.req(Method::GET, &host(slug), &format!("/api/v1/files/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn remove(app: &TestApp, slug: &str, token: &str, id: &str) -> u16 {
    app.req(Method::DELETE, &host(slug), &format!("/api/v1/files/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub(crate) fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 120, 200]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A JPEG carrying an EXIF segment with a GPS marker (APP1 right after SOI).
fn jpeg_with_exif(marker: &[u8]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 100, 50]));
    let mut plain = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut plain), image::ImageFormat::Jpeg)
        .unwrap();
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(marker);
    let len = u16::try_from(payload.len() + 2).unwrap();
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&plain[2..]);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn token_for(
    app: &TestApp,
    tenant: TenantId,
    slug: &str,
    user: UserId,
    role: Role,
) -> String {
    mint_session(app, tenant, &host(slug), user, &[role])
        .await
        .1
}

async fn files_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM files")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

fn object_path(app: &TestApp, tenant: TenantId, id: &str) -> std::path::PathBuf {
    app.data_dir
        .join("files")
        .join("tenants")
        .join(tenant.to_string())
        .join("files")
        .join(id)
}

#[tokio::test]
async fn uploads_are_rewritten_sealed_at_rest_and_served_with_safe_headers() {
    let app = TestApp::spawn().await;
    let (me, t) = employee(&app, app.tenant_a, "alpha").await;

    // A JPEG with EXIF/GPS metadata: stored re-encoded, the metadata gone.
    let marker = b"GPSLatitude=48.8566-SECRET-MARKER";
    let (s, info) = upload(
        &app,
        "alpha",
        &t,
        ("holiday.jpeg", Some("image/jpeg"), &jpeg_with_exif(marker)),
        None,
    )
    .await;
    assert_eq!(s, 201, "{info}");
    assert_eq!(info["content_type"], "image/jpeg");
    assert_eq!(info["purpose"], "attachment");
    assert_eq!(info["file_name"], "holiday.jpg");
    let id = info["id"].as_str().unwrap().to_owned();
    assert_eq!(info["url"], format!("/api/v1/files/{id}"));
    let res = fetch(&app, "alpha", &t, &id).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/jpeg");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(h["cache-control"], "private, no-store");
    let body = res.bytes().await.unwrap();
    let digest = hex(&Sha256::digest(&body));
    assert_eq!(info["sha256"], digest);
    assert_eq!(h["etag"].to_str().unwrap(), format!("\"{digest}\""));
    assert!(
        !body.windows(marker.len()).any(|w| w == marker),
        "the EXIF metadata survived re-encoding"
    );
    assert!(!body.windows(4).any(|w| w == b"Exif"));
    let back = image::load_from_memory(&body).unwrap();
    assert_eq!((back.width(), back.height()), (16, 8));
    // A conditional request answers 304 without the body.
    let res = app
        .req(Method::GET, &host("alpha"), &format!("/api/v1/files/{id}"))
        .bearer_auth(&t)
        .header("if-none-match", format!("\"{digest}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // At rest: the object on disk is ciphertext, under the tenant's prefix.
    let stored = std::fs::read(object_path(&app, app.tenant_a, &id)).unwrap();
    assert_ne!(stored.as_slice(), body.as_ref());
    assert!(!stored.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert_eq!(stored[0], 1, "a sealed blob (format version 1)");

    // A PNG with a page appended (a polyglot): what is served is the image alone.
    let mut polyglot = png(4, 4);
    polyglot.extend_from_slice(b"<html><script>alert(document.cookie)</script></html>");
    let (s, poly) = upload(
        &app,
        "alpha",
        &t,
        ("x.png", Some("image/png"), &polyglot),
        None,
    )
    .await;
    assert_eq!(s, 201, "{poly}");
    let res = fetch(&app, "alpha", &t, poly["id"].as_str().unwrap()).await;
    assert_eq!(res.headers()["content-type"], "image/png");
    let body = res.bytes().await.unwrap();
    assert!(!body.windows(7).any(|w| w == b"<script"));

    // Text and PDF: stored as sent, served only as attachments; a GIF becomes a PNG.
    let text = "Notes for my session: I feel better.\n".as_bytes();
    let (s, txt) = upload(
        &app,
        "alpha",
        &t,
        ("notes été.txt", Some("text/plain"), text),
        None,
    )
    .await;
    assert_eq!(s, 201, "{txt}");
    let res = fetch(&app, "alpha", &t, txt["id"].as_str().unwrap()).await;
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"notes _t_.txt\"; filename*=UTF-8''notes%20%C3%A9t%C3%A9.txt"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), text);
    let (s, pdf) = upload(
        &app,
        "alpha",
        &t,
        ("a.pdf", None, b"%PDF-1.4\n%test\n"),
        None,
    )
    .await;
    assert_eq!(s, 201, "{pdf}");
    let res = fetch(&app, "alpha", &t, pdf["id"].as_str().unwrap()).await;
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let mut gif = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(3, 3))
        .write_to(&mut Cursor::new(&mut gif), image::ImageFormat::Gif)
        .unwrap();
    let (s, g) = upload(
        &app,
        "alpha",
        &t,
        ("anim.gif", Some("image/gif"), &gif),
        Some("avatar"),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    assert_eq!(
        (g["content_type"].as_str(), g["file_name"].as_str()),
        (Some("image/png"), Some("anim.png"))
    );

    // The owner's row says who and what, nothing in the clear.
    let row = sqlx::query("SELECT owner_id, storage_key FROM files WHERE id = $1")
        .bind(Uuid::parse_str(&id).unwrap())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(row.get::<Uuid, _>("owner_id"), me.as_uuid());
    assert_eq!(
        row.get::<String, _>("storage_key"),
        format!("tenants/{}/files/{id}", app.tenant_a)
    );

    // Delete: 204, then gone for everyone, the object removed.
    assert_eq!(remove(&app, "alpha", &t, &id).await, 204);
    assert_eq!(fetch(&app, "alpha", &t, &id).await.status(), 404);
    assert_eq!(remove(&app, "alpha", &t, &id).await, 404);
    assert!(!object_path(&app, app.tenant_a, &id).exists());
}

#[tokio::test]
async fn spoofed_or_dangerous_types_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (_, t) = employee(&app, app.tenant_a, "alpha").await;
    let before = files_count(&app).await;
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".as_slice();
    let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>".as_slice();
    let p = png(4, 4);
    let wide = png(9000, 1);
    let cases: Vec<Case<'_>> = vec![
        // PNG bytes claimed as JPEG, by type or by name.
        (
            ("a.png", Some("image/jpeg"), &p),
            None,
            422,
            "type_mismatch",
        ),
        (("a.jpg", Some("image/png"), &p), None, 422, "type_mismatch"),
        (("a.jpg", None, &p), None, 422, "type_mismatch"),
        // HTML and SVG, whatever they claim.
        (
            ("a.png", Some("image/png"), html),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            ("a.html", Some("text/html"), html),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            ("a.txt", Some("text/plain"), html),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            ("a.svg", Some("image/svg+xml"), svg),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            ("a.png", Some("image/png"), svg),
            None,
            415,
            "unsupported_media_type",
        ),
        // Text claimed as an image; an executable.
        (
            ("a.png", Some("image/png"), b"just text"),
            None,
            422,
            "type_mismatch",
        ),
        (
            ("a.exe", None, b"MZ\x90\x00\x03\x00\x00\x00"),
            None,
            415,
            "unsupported_media_type",
        ),
        // An avatar must be an image; a PDF is not.
        (
            ("a.pdf", Some("application/pdf"), b"%PDF-1.4"),
            Some("avatar"),
            422,
            "not_an_image",
        ),
        // Dimensions over the limit (a decompression bomb's shape), and a broken image.
        (("wide.png", None, &wide), None, 422, "image_rejected"),
        (
            ("cut.png", None, &p[..p.len() / 2]),
            None,
            422,
            "image_rejected",
        ),
        // Bad purpose; article images are for practitioners.
        (
            ("a.png", None, &p),
            Some("banner"),
            422,
            "validation_failed",
        ),
        (
            ("a.png", None, &p),
            Some("article_image"),
            403,
            "purpose_not_allowed",
        ),
    ];
    for (file, purpose, status, code) in cases {
        let (s, body) = upload(&app, "alpha", &t, file, purpose).await;
        assert_eq!(
            (s, body["code"].as_str().unwrap_or_default()),
            (status, code),
            "{} {purpose:?}: {body}",
            file.0
        );
    }
    // Other malformed forms.
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    let post = |ct: String, body: Vec<u8>| {
        app.req(Method::POST, &host("alpha"), "/api/v1/files")
            .bearer_auth(&t)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let res = post("application/json".into(), b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = post(
        multipart.clone(),
        form(&[("purpose", None, None, b"attachment")]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 422, "no file part");
    let res = post(
        multipart.clone(),
        form(&[
            ("file", Some("a.png"), None, &p),
            ("owner_id", None, None, b"x"),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(problem(res).await["code"], "invalid_body");
    assert_eq!(
        files_count(&app).await,
        before,
        "a refused upload stored a row"
    );
}

#[tokio::test]
async fn the_upload_route_has_its_own_size_limit_declared_or_streamed() {
    let app = TestApp::spawn_with(|s| {
        s.env
            .insert("FILES_MAX_BYTES".into(), (2 * 1024 * 1024).to_string());
    })
    .await;
    let (_, t) = employee(&app, app.tenant_a, "alpha").await;
    // Over the global 1 MiB body limit, under the files limit: accepted.
    let big = "a line of plain text\n".repeat(75_000).into_bytes();
    assert!(big.len() > 1024 * 1024);
    let (s, body) = upload(&app, "alpha", &t, ("big.txt", None, &big), None).await;
    assert_eq!(s, 201, "{body}");
    // Over the files limit: 413, declared…
    let huge = "a line of plain text\n".repeat(150_000).into_bytes();
    let (s, body) = upload(&app, "alpha", &t, ("huge.txt", None, &huge), None).await;
    assert_eq!((s, body["code"].as_str()), (413, Some("payload_too_large")));
    // …and streamed without a length.
    let data = form(&[("file", Some("huge.txt"), None, &huge)]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let res = app
        .req(Method::POST, &host("alpha"), "/api/v1/files")
        .bearer_auth(&t)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        files_count(&app).await,
        1,
        "only the accepted upload is stored"
    );
}

#[tokio::test]
async fn every_files_route_needs_a_token() {
    let app = TestApp::spawn().await;
    let id = Uuid::now_v7();
    for (m, path) in [
        (Method::POST, "/api/v1/files".to_owned()),
        (Method::GET, format!("/api/v1/files/{id}")),
        (Method::DELETE, format!("/api/v1/files/{id}")),
        (Method::PUT, "/api/v1/me/avatar".to_owned()),
        (Method::DELETE, "/api/v1/me/avatar".to_owned()),
    ] {
        let res = app
            .req(m.clone(), &host("alpha"), &path)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{m} {path}");
    }
}

#[tokio::test]
async fn another_persons_or_companys_file_is_not_found_and_stays() {
    let app = TestApp::spawn().await;
    let (_, owner_t) = employee(&app, app.tenant_a, "alpha").await;
    let (_, colleague) = employee(&app, app.tenant_a, "alpha").await;
    let (_, b_person) = employee(&app, app.tenant_b, "bravo").await;
    let hr = add_person(&app, app.tenant_a, "hr@alpha.files.test", &["hr"]).await;
    let hr_t = token_for(&app, app.tenant_a, "alpha", hr, Role::Hr).await;
    let (s, f) = upload(
        &app,
        "alpha",
        &owner_t,
        ("a.txt", None, b"private words"),
        None,
    )
    .await;
    assert_eq!(s, 201);
    let id = f["id"].as_str().unwrap();
    for (who, slug, t) in [
        ("colleague", "alpha", &colleague),
        ("hr", "alpha", &hr_t),
        ("other company", "bravo", &b_person),
    ] {
        assert_eq!(fetch(&app, slug, t, id).await.status(), 404, "{who} GET");
        assert_eq!(remove(&app, slug, t, id).await, 404, "{who} DELETE");
    }
    // The owner's own token on another company's host: their token is not valid there.
    assert_eq!(fetch(&app, "bravo", &owner_t, id).await.status(), 401);
    // Unchanged: the owner still reads it.
    let res = fetch(&app, "alpha", &owner_t, id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"private words");
}

#[tokio::test]
async fn an_avatar_shows_to_colleagues_and_in_every_company_of_a_practitioner() {
    let app = TestApp::spawn().await;
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    let (_, colleague) = employee(&app, app.tenant_a, "alpha").await;
    let (_, b_person) = employee(&app, app.tenant_b, "bravo").await;
    let (s, f) = upload(
        &app,
        "alpha",
        &e,
        ("me.png", None, &png(8, 8)),
        Some("avatar"),
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let id = f["id"].as_str().unwrap().to_owned();
    // Not yet their avatar: only theirs to see.
    assert_eq!(fetch(&app, "alpha", &colleague, &id).await.status(), 404);
    let put = |t: &str, body: Value| {
        app.req(Method::PUT, &host("alpha"), "/api/v1/me/avatar")
            .bearer_auth(t)
            .json(&body)
            .send()
    };
    // Someone else's upload cannot become one's avatar; nor an attachment of one's own.
    let res = put(&colleague, json!({"file_id": id})).await.unwrap();
    assert_eq!(res.status(), 422);
    let (_, att) = upload(&app, "alpha", &e, ("x.png", None, &png(2, 2)), None).await;
    let res = put(&e, json!({"file_id": att["id"]})).await.unwrap();
    assert_eq!(res.status(), 422);
    let res = put(&e, json!({"file_id": id, "owner_id": Uuid::now_v7()}))
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "unknown fields are refused");
    let res = put(&e, json!({"file_id": id})).await.unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["avatar_url"], format!("/api/v1/files/{id}"));
    assert_eq!(fetch(&app, "alpha", &colleague, &id).await.status(), 200);
    let me: Value = app
        .req(Method::GET, &host("alpha"), "/api/v1/auth/me")
        .bearer_auth(&e)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["avatar_url"], format!("/api/v1/files/{id}"));
    // Not a member of bravo: not shown there.
    assert_eq!(fetch(&app, "bravo", &b_person, &id).await.status(), 404);

    // A practitioner serving both companies: their avatar, uploaded on alpha, shows on bravo.
    let doc = bookable(&app, &[app.tenant_a, app.tenant_b], true).await;
    let d = token_for(&app, app.tenant_a, "alpha", doc, Role::Practitioner).await;
    let (s, pf) = upload(
        &app,
        "alpha",
        &d,
        ("dr.jpg", None, &jpeg_with_exif(b"x")),
        Some("avatar"),
    )
    .await;
    assert_eq!(s, 201, "{pf}");
    let pid = pf["id"].as_str().unwrap().to_owned();
    assert_eq!(
        put(&d, json!({"file_id": pid})).await.unwrap().status(),
        200
    );
    let res = fetch(&app, "bravo", &b_person, &pid).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    // A new avatar replaces (and deletes) the old one.
    let (_, pf2) = upload(
        &app,
        "alpha",
        &d,
        ("dr2.png", None, &png(5, 5)),
        Some("avatar"),
    )
    .await;
    let pid2 = pf2["id"].as_str().unwrap().to_owned();
    assert_eq!(
        put(&d, json!({"file_id": pid2})).await.unwrap().status(),
        200
    );
    assert_eq!(fetch(&app, "bravo", &b_person, &pid).await.status(), 404);
    assert_eq!(
        fetch(&app, "alpha", &d, &pid).await.status(),
        404,
        "the old one is deleted"
    );
    assert_eq!(fetch(&app, "bravo", &b_person, &pid2).await.status(), 200);
    // Removing the avatar hides it everywhere.
    let res = app
        .req(Method::DELETE, &host("alpha"), "/api/v1/me/avatar")
        .bearer_auth(&d)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(fetch(&app, "bravo", &b_person, &pid2).await.status(), 404);
    let res = app
        .req(Method::DELETE, &host("alpha"), "/api/v1/me/avatar")
        .bearer_auth(&d)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

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

/// A confirmed consultation in tenant A: (practitioner, employee, their tokens, consultation).
async fn care(app: &TestApp) -> (UserId, UserId, String, String, String) {
    let doc = bookable(app, &[app.tenant_a], true).await;
    let (emp, e) = employee(app, app.tenant_a, "alpha").await;
    let t = (next_hour(app) + time::Duration::hours(2))
        .format(&Rfc3339)
        .unwrap();
    let (s, c) = book(app, "alpha", &e, booking(doc, &t), None).await;
    assert_eq!(s, 201, "{c}");
    let d = token_for(app, app.tenant_a, "alpha", doc, Role::Practitioner).await;
    (doc, emp, d, e, c["id"].as_str().unwrap().to_owned())
}

async fn send_message(app: &TestApp, t: &str, c: &str, body: Value) -> (u16, Value) {
    let res = app
        .req(
            Method::POST,
            &host("alpha"),
            &format!("/api/v1/consultations/{c}/messages"),
        )
        .bearer_auth(t)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    (s, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_attachment_reaches_the_other_participant_and_nobody_else() {
    let app = TestApp::spawn().await;
    let (_, _, d, e, c) = care(&app).await;
    let (_, stranger) = employee(&app, app.tenant_a, "alpha").await;
    let (s, f) = upload(
        &app,
        "alpha",
        &e,
        ("sleep-diary.pdf", None, b"%PDF-1.4\ndiary"),
        None,
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let id = f["id"].as_str().unwrap().to_owned();
    // Not yet attached: the practitioner cannot read it.
    assert_eq!(fetch(&app, "alpha", &d, &id).await.status(), 404);
    // The practitioner cannot attach the employee's file.
    let (s, body) = send_message(&app, &d, &c, json!({"body": "see", "attachment_id": id})).await;
    assert_eq!(s, 422, "{body}");
    let (s, m) = send_message(
        &app,
        &e,
        &c,
        json!({"body": "my diary", "attachment_id": id}),
    )
    .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["attachment_id"], id.as_str());
    // Once only.
    let (s, _) = send_message(&app, &e, &c, json!({"body": "again", "attachment_id": id})).await;
    assert_eq!(s, 422);
    // An avatar upload is not an attachment.
    let (_, av) = upload(
        &app,
        "alpha",
        &e,
        ("a.png", None, &png(2, 2)),
        Some("avatar"),
    )
    .await;
    let (s, _) = send_message(
        &app,
        &e,
        &c,
        json!({"body": "x", "attachment_id": av["id"]}),
    )
    .await;
    assert_eq!(s, 422);
    let res = fetch(&app, "alpha", &d, &id).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(fetch(&app, "alpha", &stranger, &id).await.status(), 404);
    // Only the owner deletes; then the message shows no attachment and the file is gone.
    assert_eq!(remove(&app, "alpha", &d, &id).await, 404);
    assert_eq!(remove(&app, "alpha", &e, &id).await, 204);
    assert_eq!(fetch(&app, "alpha", &d, &id).await.status(), 404);
    let res = app
        .req(
            Method::GET,
            &host("alpha"),
            &format!("/api/v1/consultations/{c}/messages"),
        )
        .bearer_auth(&d)
        .send()
        .await
        .unwrap();
    let page: Value = res.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    let first = items.iter().find(|m| m["body"] == "my diary").unwrap();
    assert!(first["attachment_id"].is_null(), "{first}");
}

/// PROOF 8b: the files table and its definers hold with the API out of the picture.
#[tokio::test]
async fn the_database_alone_refuses_crafted_contexts() {
    let app = TestApp::spawn().await;
    let (_, _, _, e, c) = care(&app).await;
    let emp: UserId = {
        let row: Uuid =
            sqlx::query_scalar("SELECT employee_id FROM consultations WHERE id = $1::uuid")
                .bind(&c)
                .fetch_one(&mut app.owner().await)
                .await
                .unwrap();
        UserId(row)
    };
    let (s, f) = upload(&app, "alpha", &e, ("a.txt", None, b"secret text"), None).await;
    assert_eq!(s, 201);
    let id = Uuid::parse_str(f["id"].as_str().unwrap()).unwrap();
    let (colleague, _) = employee(&app, app.tenant_a, "alpha").await;
    let (b_user, _) = employee(&app, app.tenant_b, "bravo").await;
    let mut conn = app.owner().await;

    async fn scalar_i64(conn: &mut PgConnection, sql: &str, id: Uuid) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(id)
            .fetch_one(conn)
            .await
            .unwrap()
    }
    // Claiming the owner's id without their session proves nothing: no row, no door opens.
    as_app_with_roles(&mut conn, Some(app.tenant_a), Some(emp), "employee").await;
    assert_eq!(
        scalar_i64(&mut conn, "SELECT count(*) FROM files WHERE id = $1", id).await,
        0
    );
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT count(*) FROM app_private.file_open($1)",
            id
        )
        .await,
        0
    );
    let key: Option<String> = sqlx::query_scalar("SELECT app_private.file_delete($1, now())")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(key.is_none());
    let outcome: String = sqlx::query_scalar(
        "SELECT app_private.file_create(gen_random_uuid(), 'attachment', 'text/plain', 1, sha256('x'::bytea), 'x.txt', NULL, now())",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(outcome, "not_found");
    let set: bool = sqlx::query_scalar("SELECT app_private.avatar_set($1, now())")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!set);
    let published: Option<i32> = sqlx::query_scalar(
        "SELECT app_private.article_images_publish(gen_random_uuid(), ARRAY[$1], now())",
    )
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(published.is_none());
    let cleared: bool = sqlx::query_scalar("SELECT app_private.avatar_clear(now())")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!cleared);
    conn.execute("ROLLBACK").await.unwrap();

    // No direct write, whoever the context claims.
    for sql in [
        "INSERT INTO files (id, tenant_id, owner_id, purpose, content_type, size_bytes, sha256, storage_key, file_name, created_at)
         SELECT gen_random_uuid(), tenant_id, owner_id, purpose, content_type, size_bytes, sha256, storage_key, file_name, now() FROM files LIMIT 1",
        "UPDATE files SET owner_id = gen_random_uuid()",
        "DELETE FROM files",
        "UPDATE users SET avatar_file_id = gen_random_uuid()",
        "SELECT * FROM app_private.files_sweep(now(), 10)",
        "SELECT app_private.files_forget(ARRAY[]::uuid[], ARRAY[]::uuid[])",
    ] {
        assert!(as_member_with_session(&mut conn, app.tenant_a, emp).await);
        let err = conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap_err();
        assert_eq!(
            err.as_database_error().unwrap().code().as_deref(),
            Some("42501"),
            "{sql}"
        );
        conn.execute("ROLLBACK").await.unwrap();
    }

    // A proven colleague: the row is invisible, the doors stay shut.
    assert!(as_member_with_session(&mut conn, app.tenant_a, colleague).await);
    assert_eq!(
        scalar_i64(&mut conn, "SELECT count(*) FROM files WHERE id = $1", id).await,
        0
    );
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT count(*) FROM app_private.file_open($1)",
            id
        )
        .await,
        0
    );
    let key: Option<String> = sqlx::query_scalar("SELECT app_private.file_delete($1, now())")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(key.is_none());
    // …nor can they send it as their attachment (not a participant anyway: not_found first).
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM app_private.message_send(gen_random_uuid(), $1::uuid, '\\x00'::bytea, $2, NULL, now())",
    )
    .bind(&c)
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_ne!(outcome, "sent");
    conn.execute("ROLLBACK").await.unwrap();

    // A proven person of another company, and the owner in a foreign company context.
    assert!(as_member_with_session(&mut conn, app.tenant_b, b_user).await);
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT count(*) FROM app_private.file_open($1)",
            id
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i64(&mut conn, "SELECT count(*) FROM files WHERE id = $1", id).await,
        0
    );
    conn.execute("ROLLBACK").await.unwrap();
    as_app(&mut conn, Some(app.tenant_b), Some(emp)).await;
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT count(*) FROM app_private.file_open($1)",
            id
        )
        .await,
        0
    );
    conn.execute("ROLLBACK").await.unwrap();

    // A role not held: the proven employee claiming practitioner gets no article image upload.
    assert!(!as_member_with_session_roles(&mut conn, app.tenant_a, emp, "practitioner").await);
    assert!(as_member_with_session(&mut conn, app.tenant_a, emp).await);
    let outcome: String = sqlx::query_scalar(
        "SELECT app_private.file_create(gen_random_uuid(), 'article_image', 'image/png', 1, sha256('x'::bytea), 'x.png', NULL, now())",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(outcome, "forbidden");
    // The owner, proven, sees their row and opens it.
    assert_eq!(
        scalar_i64(&mut conn, "SELECT count(*) FROM files WHERE id = $1", id).await,
        1
    );
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT count(*) FROM app_private.file_open($1)",
            id
        )
        .await,
        1
    );
    conn.execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn the_sweep_removes_deleted_and_never_linked_uploads() {
    let app = TestApp::spawn().await;
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    let mut ids = Vec::new();
    for name in ["old.txt", "fresh.txt", "deleted.txt"] {
        let (s, f) = upload(&app, "alpha", &e, (name, None, b"some words"), None).await;
        assert_eq!(s, 201);
        ids.push(f["id"].as_str().unwrap().to_owned());
    }
    // An upload never attached for more than a day; one deleted whose object removal failed.
    let mut owner = app.owner().await;
    sqlx::query("UPDATE files SET created_at = now() - interval '25 hours' WHERE id = $1::uuid")
        .bind(&ids[0])
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("UPDATE files SET deleted_at = now() WHERE id = $1::uuid")
        .bind(&ids[2])
        .execute(&mut owner)
        .await
        .unwrap();
    serein::jobs::JobWorker::from_state(&app.state)
        .prune()
        .await
        .unwrap();
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM files WHERE tenant_id = $1")
        .bind(app.tenant_a.as_uuid())
        .fetch_all(&mut owner)
        .await
        .unwrap();
    assert_eq!(left, vec![Uuid::parse_str(&ids[1]).unwrap()]);
    assert!(!object_path(&app, app.tenant_a, &ids[0]).exists());
    assert!(!object_path(&app, app.tenant_a, &ids[2]).exists());
    assert!(object_path(&app, app.tenant_a, &ids[1]).exists());
    assert_eq!(fetch(&app, "alpha", &e, &ids[1]).await.status(), 200);
}

/// A real S3-compatible server: moto's (PyPI `moto[server]`), killed on drop.
struct S3Server {
    child: std::process::Child,
    port: u16,
}

impl S3Server {
    async fn start() -> Self {
        let probe = std::process::Command::new("python3")
            .args(["-c", "import moto.server"])
            .output()
            .expect("python3 runs");
        assert!(
            probe.status.success(),
            "the S3 test needs moto's server: python3 -m pip install --user 'moto[server]==5.2.5' \
             (.ci/run does this)\n{}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto");
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if client
                .get(format!("http://127.0.0.1:{port}/"))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Self { child, port }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_s3_backend_stores_serves_and_deletes_through_a_real_s3_server() {
    let s3 = S3Server::start().await;
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let raw = reqwest::Client::new();
    // moto accepts unsigned requests: make the bucket.
    let res = raw
        .put(format!("{endpoint}/serein-files"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let app = TestApp::spawn_with(|s| {
        for (k, v) in [
            ("FILES_STORE", "s3"),
            ("FILES_S3_BUCKET", "serein-files"),
            ("FILES_S3_REGION", "us-east-1"),
            ("FILES_S3_ENDPOINT", endpoint.as_str()),
            ("FILES_S3_ACCESS_KEY_ID", "testing"),
            ("FILES_S3_SECRET_ACCESS_KEY", "testing"),
            ("FILES_S3_ALLOW_HTTP", "true"),
        ] {
            s.env.insert(k.into(), v.into());
        }
    })
    .await;
    assert_eq!(app.state.files.kind(), "s3");
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    let img = png(7, 3);
    let (s, f) = upload(&app, "alpha", &e, ("s3.png", Some("image/png"), &img), None).await;
    assert_eq!(s, 201, "{f}");
    let id = f["id"].as_str().unwrap().to_owned();
    let key = format!("tenants/{}/files/{id}", app.tenant_a);
    // In the bucket under the tenant's prefix (read back through the S3 API), only as
    // ciphertext.
    let stored = app
        .state
        .files
        .get(&key)
        .await
        .unwrap()
        .expect("the object is in the bucket");
    assert!(!stored.starts_with(b"\x89PNG"));
    assert_eq!(stored[0], 1, "a sealed blob");
    let res = fetch(&app, "alpha", &e, &id).await;
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.unwrap();
    assert_eq!(hex(&Sha256::digest(&body)), f["sha256"].as_str().unwrap());
    assert_eq!(image::load_from_memory(&body).unwrap().width(), 7);
    assert_eq!(remove(&app, "alpha", &e, &id).await, 204);
    assert!(
        app.state.files.get(&key).await.unwrap().is_none(),
        "the object is gone"
    );
    assert_eq!(fetch(&app, "alpha", &e, &id).await.status(), 404);
}

#[tokio::test]
async fn an_offboarded_companys_objects_are_removed_by_the_worker() {
    let app = TestApp::spawn().await;
    let (_, b) = employee(&app, app.tenant_b, "bravo").await;
    let (_, a) = employee(&app, app.tenant_a, "alpha").await;
    let (s, fb) = upload(
        &app,
        "bravo",
        &b,
        ("b.png", None, &png(3, 3)),
        Some("avatar"),
    )
    .await;
    assert_eq!(s, 201);
    let (s, fa) = upload(
        &app,
        "alpha",
        &a,
        ("a.png", None, &png(3, 3)),
        Some("avatar"),
    )
    .await;
    assert_eq!(s, 201);
    let b_obj = object_path(&app, app.tenant_b, fb["id"].as_str().unwrap());
    let a_obj = object_path(&app, app.tenant_a, fa["id"].as_str().unwrap());
    assert!(b_obj.exists() && a_obj.exists());
    // Bravo's purge is done (its rows gone: the purge job's work, not under test here).
    let mut owner = app.owner().await;
    sqlx::query("DELETE FROM files WHERE tenant_id = $1")
        .bind(app.tenant_b.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("UPDATE tenants SET status = 'offboarded', offboarded_at = now() WHERE id = $1")
        .bind(app.tenant_b.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    serein::jobs::JobWorker::from_state(&app.state)
        .prune()
        .await
        .unwrap();
    assert!(!b_obj.exists(), "the offboarded company's object stayed");
    assert!(a_obj.exists(), "another company's object was removed");
    let done: Option<OffsetDateTime> =
        sqlx::query_scalar("SELECT files_removed_at FROM tenants WHERE id = $1")
            .bind(app.tenant_b.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(done.is_some());
}

#[tokio::test]
async fn an_attachment_goes_with_its_pruned_message_and_not_before() {
    let app = TestApp::spawn().await;
    let (_, _, d, e, c) = care(&app).await;
    let (s, f) = upload(&app, "alpha", &e, ("a.txt", None, b"for the record"), None).await;
    assert_eq!(s, 201);
    let id = f["id"].as_str().unwrap().to_owned();
    let (s, _) = send_message(&app, &e, &c, json!({"body": "see", "attachment_id": id})).await;
    assert_eq!(s, 201);
    let mut owner = app.owner().await;
    sqlx::query("UPDATE files SET created_at = now() - interval '30 days' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&mut owner)
        .await
        .unwrap();
    // Linked: an old attachment stays.
    serein::jobs::JobWorker::from_state(&app.state)
        .prune()
        .await
        .unwrap();
    assert_eq!(fetch(&app, "alpha", &d, &id).await.status(), 200);
    // Its message pruned (what `records_prune` does past the window): the attachment goes.
    sqlx::query("DELETE FROM messages WHERE attachment_id = $1::uuid")
        .bind(&id)
        .execute(&mut owner)
        .await
        .unwrap();
    serein::jobs::JobWorker::from_state(&app.state)
        .prune()
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM files WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(!object_path(&app, app.tenant_a, &id).exists());
}

/// Wait (bounded, no sleep) until backend `pid` waits on a lock, or `task` has finished.
async fn blocked_or_done<T>(
    watcher: &mut PgConnection,
    pid: i32,
    task: &tokio::task::JoinHandle<T>,
) -> bool {
    for _ in 0..20_000 {
        if task.is_finished() {
            return false;
        }
        let waiting: bool = sqlx::query_scalar(
            "SELECT coalesce(bool_or(wait_event_type = 'Lock'), false) FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(pid)
        .fetch_one(&mut *watcher)
        .await
        .unwrap();
        if waiting {
            return true;
        }
        tokio::task::yield_now().await;
    }
    panic!("neither blocked nor done");
}

async fn backend_pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sweep_never_tombstones_a_file_a_message_is_attaching() {
    let app = TestApp::spawn().await;
    let (_, emp, _, e, c) = care(&app).await;
    let (s, f) = upload(&app, "alpha", &e, ("a.txt", None, b"for the record"), None).await;
    assert_eq!(s, 201);
    let id = Uuid::parse_str(f["id"].as_str().unwrap()).unwrap();
    let mut owner = app.owner().await;
    // Old enough to look orphaned.
    sqlx::query("UPDATE files SET created_at = now() - interval '25 hours' WHERE id = $1")
        .bind(id)
        .execute(&mut owner)
        .await
        .unwrap();

    // Connection 1: the employee sends a message with the file attached; not committed yet
    // (the file row is locked, the message inserted).
    let mut linker = app.owner().await;
    assert!(as_member_with_session(&mut linker, app.tenant_a, emp).await);
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM app_private.message_send(gen_random_uuid(), $1::uuid, '\\x00'::bytea, $2, NULL, $3)",
    )
    .bind(&c)
    .bind(id)
    .bind(app.clock.now())
    .fetch_one(&mut linker)
    .await
    .unwrap();
    assert_eq!(outcome, "sent");

    // Connection 2: the worker's sweep runs meanwhile, in its own transaction.
    let mut sweeper = app.owner().await;
    let pid = backend_pid(&mut sweeper).await;
    let sweep = tokio::spawn(async move {
        sweeper.execute("BEGIN").await.unwrap();
        sweeper
            .execute("SELECT set_config('role', 'serein_worker', true)")
            .await
            .unwrap();
        let swept: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM app_private.files_sweep(now(), 100)")
                .fetch_all(&mut sweeper)
                .await
                .unwrap();
        sweeper.execute("COMMIT").await.unwrap();
        swept
    });
    // Whether the sweep skipped the locked row (done) or waits for it (blocked), the message
    // commits now.
    blocked_or_done(&mut owner, pid, &sweep).await;
    linker.execute("COMMIT").await.unwrap();
    let swept = sweep.await.unwrap();
    assert!(!swept.contains(&id), "the sweep took an attached file");
    let tombstoned: bool =
        sqlx::query_scalar("SELECT deleted_at IS NOT NULL FROM files WHERE id = $1")
            .bind(id)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(!tombstoned, "a message points at a tombstoned file");
    let linked: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE attachment_id = $1")
        .bind(id)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(linked, 1);
    // A later sweep leaves it too (linked).
    serein::jobs::JobWorker::from_state(&app.state)
        .prune()
        .await
        .unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM files WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(left, 1);
}

#[tokio::test]
async fn an_avatar_is_never_set_to_a_file_the_sweep_is_tombstoning() {
    let app = TestApp::spawn().await;
    let (me, e) = employee(&app, app.tenant_a, "alpha").await;
    let (s, f) = upload(
        &app,
        "alpha",
        &e,
        ("me.png", None, &png(4, 4)),
        Some("avatar"),
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let id = Uuid::parse_str(f["id"].as_str().unwrap()).unwrap();
    let mut owner = app.owner().await;
    sqlx::query("UPDATE files SET created_at = now() - interval '25 hours' WHERE id = $1")
        .bind(id)
        .execute(&mut owner)
        .await
        .unwrap();

    // Connection 1: the sweep tombstones the never-used avatar upload; not committed yet.
    let mut sweeper = app.owner().await;
    sweeper.execute("BEGIN").await.unwrap();
    sweeper
        .execute("SELECT set_config('role', 'serein_worker', true)")
        .await
        .unwrap();
    let swept: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM app_private.files_sweep(now(), 100)")
        .fetch_all(&mut sweeper)
        .await
        .unwrap();
    assert!(swept.contains(&id));

    // Connection 2: its owner makes it their avatar meanwhile.
    let mut setter = app.owner().await;
    let pid = backend_pid(&mut setter).await;
    let tenant = app.tenant_a;
    let set = tokio::spawn(async move {
        assert!(as_member_with_session(&mut setter, tenant, me).await);
        let ok: bool = sqlx::query_scalar("SELECT app_private.avatar_set($1, now())")
            .bind(id)
            .fetch_one(&mut setter)
            .await
            .unwrap();
        setter.execute("COMMIT").await.unwrap();
        ok
    });
    // It must wait for the sweep's lock (without the lock it would succeed at once).
    assert!(
        blocked_or_done(&mut owner, pid, &set).await,
        "avatar_set did not wait for the file row"
    );
    sweeper.execute("COMMIT").await.unwrap();
    assert!(!set.await.unwrap(), "a tombstoned file became an avatar");
    let avatar: Option<Uuid> = sqlx::query_scalar("SELECT avatar_file_id FROM users WHERE id = $1")
        .bind(me.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(avatar, None);
}

/// An upload whose body arrives slowly: the head of the form is sent, the rest waits on the
/// returned sender (dropping it ends the body, unfinished). Returns the request's task.
fn slow_upload(
    app: &TestApp,
    token: &str,
) -> (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    tokio::task::JoinHandle<u16>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\n\r\nthe first words"
    )
    .into_bytes();
    let stream = futures_util::stream::unfold((Some(head), rx), |(head, mut rx)| async move {
        if let Some(h) = head {
            return Some((Ok(h), (None, rx)));
        }
        rx.recv().await.map(|chunk| (chunk, (None, rx)))
    });
    let req = app
        .req(Method::POST, &host("alpha"), "/api/v1/files")
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(reqwest::Body::wrap_stream(stream));
    let task = tokio::spawn(async move {
        match req.send().await {
            Ok(res) => res.status().as_u16(),
            Err(_) => 0,
        }
    });
    (tx, task)
}

#[tokio::test]
async fn slow_uploads_hold_up_only_their_senders() {
    let app = TestApp::spawn().await;
    // More slow senders than the server has inspection permits.
    let mut slow = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..serein::files::store::UPLOADS_AT_ONCE + 1 {
        let (_, t) = employee(&app, app.tenant_a, "alpha").await;
        slow.push(slow_upload(&app, &t));
        tokens.push(t);
    }
    // Each slow body has reached the handler: a second upload of the same person now is 429
    // with Retry-After, whoever else is uploading.
    for t in &tokens {
        let mut refused = None;
        for _ in 0..10_000 {
            let (s, body) = upload(&app, "alpha", t, ("b.txt", None, b"words"), None).await;
            if s == 429 {
                refused = Some(body);
                break;
            }
            assert_eq!(s, 201, "{body}");
            tokio::task::yield_now().await;
        }
        let refused = refused.expect("a second upload of a person with one in flight is refused");
        assert_eq!(refused["code"], "upload_in_progress");
    }
    // Somebody else is served at once, although every permit's worth of slow uploads is open.
    let (_, other) = employee(&app, app.tenant_a, "alpha").await;
    let (s, body) = upload(&app, "alpha", &other, ("c.txt", None, b"words"), None).await;
    assert_eq!(s, 201, "{body}");
    // The slow ones finish normally.
    for (tx, task) in slow {
        tx.send(Ok(format!("\r\n--{BOUNDARY}--\r\n").into_bytes()))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(task.await.unwrap(), 201);
    }
    // And the person may upload again.
    let (s, _) = upload(&app, "alpha", &tokens[0], ("d.txt", None, b"words"), None).await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn an_erased_employees_attachments_no_longer_open_and_nobody_elses_suffer() {
    let app = TestApp::spawn().await;
    let (doc, emp, d, e, c) = care(&app).await;
    let (colleague, k) = employee(&app, app.tenant_a, "alpha").await;
    // The employee's attachment, and the practitioner's (re-wrapped to the employee's key when
    // it is sent).
    let (s, mine) = upload(
        &app,
        "alpha",
        &e,
        ("diary.pdf", None, b"%PDF-1.4\ndiary"),
        None,
    )
    .await;
    assert_eq!(s, 201, "{mine}");
    let mine = mine["id"].as_str().unwrap().to_owned();
    let (s, theirs) = upload(
        &app,
        "alpha",
        &d,
        ("sheet.txt", None, b"breathing exercise"),
        None,
    )
    .await;
    assert_eq!(s, 201, "{theirs}");
    let theirs = theirs["id"].as_str().unwrap().to_owned();
    let (s, kept) = upload(
        &app,
        "alpha",
        &d,
        ("own.txt", None, b"the practitioner's own"),
        None,
    )
    .await;
    assert_eq!(s, 201);
    let kept = kept["id"].as_str().unwrap().to_owned();
    let (s, other) = upload(
        &app,
        "alpha",
        &k,
        ("x.txt", None, b"a colleague's file"),
        None,
    )
    .await;
    assert_eq!(s, 201);
    let other = other["id"].as_str().unwrap().to_owned();
    let (s, m) = send_message(&app, &e, &c, json!({"body": "mine", "attachment_id": mine})).await;
    assert_eq!(s, 201, "{m}");
    let (s, m) = send_message(
        &app,
        &d,
        &c,
        json!({"body": "for you", "attachment_id": theirs}),
    )
    .await;
    assert_eq!(s, 201, "{m}");
    // Sealed under the employee's subject key, both of them; the unattached upload under its
    // owner's.
    let mut owner = app.owner().await;
    for (id, who) in [
        (&mine, emp),
        (&theirs, emp),
        (&kept, doc),
        (&other, colleague),
    ] {
        let sealed_for: Option<Uuid> =
            sqlx::query_scalar("SELECT sealed_for FROM files WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&mut owner)
                .await
                .unwrap();
        assert_eq!(sealed_for, Some(who.as_uuid()), "{id}");
    }
    // Both participants read both attachments.
    for t in [&e, &d] {
        for id in [&mine, &theirs] {
            assert_eq!(fetch(&app, "alpha", t, id).await.status(), 200, "{id}");
        }
    }
    let res = fetch(&app, "alpha", &e, &theirs).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"breathing exercise");

    // The employee's erasure: their subject key destroyed.
    let mut tx = sqlx::Connection::begin(&mut owner).await.unwrap();
    app.state
        .keyring
        .destroy_subject(&mut tx, app.tenant_a, emp)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // The conversation's attachments no longer open, for anyone: a clean 410, never a 500.
    for t in [&e, &d] {
        for id in [&mine, &theirs] {
            let res = fetch(&app, "alpha", t, id).await;
            assert_eq!(res.status(), 410, "{id}");
            let p: Value = res.json().await.unwrap();
            assert_eq!(p["code"], "file_unavailable");
        }
    }
    // Other people's files still open.
    assert_eq!(fetch(&app, "alpha", &d, &kept).await.status(), 200);
    assert_eq!(fetch(&app, "alpha", &k, &other).await.status(), 200);
}

#[tokio::test]
async fn the_database_alone_guards_the_file_key_doors() {
    let app = TestApp::spawn().await;
    let (_, emp, _, e, _) = care(&app).await;
    let (colleague, _) = employee(&app, app.tenant_a, "alpha").await;
    let (s, f) = upload(&app, "alpha", &e, ("a.txt", None, b"secret text"), None).await;
    assert_eq!(s, 201);
    let id = Uuid::parse_str(f["id"].as_str().unwrap()).unwrap();
    let mut conn = app.owner().await;
    // A colleague, proven: no key of the file, and cannot re-wrap it (not theirs; nor may they
    // name the employee's key).
    assert!(as_member_with_session(&mut conn, app.tenant_a, colleague).await);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app_private.file_key($1)")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    for subject in [colleague, emp] {
        let ok: bool =
            sqlx::query_scalar("SELECT app_private.file_key_set($1, $2, '\\x00'::bytea)")
                .bind(id)
                .bind(subject.as_uuid())
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(!ok);
    }
    conn.execute("ROLLBACK").await.unwrap();
    // The owner claimed without proof: nothing.
    as_app_with_roles(&mut conn, Some(app.tenant_a), Some(emp), "employee").await;
    let ok: bool = sqlx::query_scalar("SELECT app_private.file_key_set($1, $2, '\\x00'::bytea)")
        .bind(id)
        .bind(emp.as_uuid())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!ok);
    conn.execute("ROLLBACK").await.unwrap();
    // The proven owner: an attachment without a wrapped key is refused; re-wrapping for a
    // stranger (not a patient of theirs) is refused.
    assert!(as_member_with_session(&mut conn, app.tenant_a, emp).await);
    let outcome: String = sqlx::query_scalar(
        "SELECT app_private.file_create(gen_random_uuid(), 'attachment', 'text/plain', 1, sha256('x'::bytea), 'x.txt', NULL, now())",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(outcome, "invalid_key");
    let ok: bool = sqlx::query_scalar("SELECT app_private.file_key_set($1, $2, '\\x00'::bytea)")
        .bind(id)
        .bind(colleague.as_uuid())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!ok);
    conn.execute("ROLLBACK").await.unwrap();
}
