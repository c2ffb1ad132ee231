//! Content (issue 13, item 5): practitioners' articles read in every company, company news
//! kept in its company, Markdown sanitised, language-aware search, keyset paging — through the
//! API, and at the database alone (the global `articles` table gets explicit attacks: the
//! catalogue matrix covers tables with a tenant_id only).

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Executor, PgConnection, Row};
use uuid::Uuid;

use crate::helpers::{TestApp, as_app, as_app_with_roles, as_member_with_session_roles};
use crate::members::{person, send};
use crate::people::{host, mint_session};
use crate::practitioners::add_practitioner;
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

/// One call on `slug`'s host: (status, JSON body or Null).
async fn api(
    app: &TestApp,
    method: Method,
    slug: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let res = send(app, method, &host(slug), path, token, body).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A practitioner serving `tenants`, named `name`, with a session on alpha's host.
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

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn article(title: &str, body: &str, status: &str) -> Value {
    json!({"title": title, "summary": "A short summary", "body_markdown": body,
           "tags": ["Sleep", "wellbeing"], "language": "en", "status": status})
}

#[tokio::test]
async fn a_practitioner_serving_two_companies_publishes_an_article_with_an_image_both_read() {
    let app = TestApp::spawn().await;
    let (doc, p) = practitioner(&app, "Dr Calm", &[app.tenant_a, app.tenant_b]).await;
    let (_, ea) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let (_, eb) = person(&app, app.tenant_b, "bravo", &[Role::Employee]).await;
    let (_, hr_b) = person(&app, app.tenant_b, "bravo", &[Role::Hr]).await;
    let (s, up) = crate::files::upload(
        &app,
        "alpha",
        &p,
        ("calm.png", None, &crate::files::png(8, 8)),
        Some("article_image"),
    )
    .await;
    assert_eq!(s, 201, "{up}");
    let image = up["id"].as_str().unwrap().to_owned();
    let body = format!(
        "# Rest\n\n![A calm room](/api/v1/files/{image})\n\n![tracker](https://tracker.example/p.png)\n\nSleep well."
    );

    // A draft: the author sees it, nobody else does.
    let (s, draft) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p,
        Some(article("Sleep basics", &body, "draft")),
    )
    .await;
    assert_eq!(s, 201, "{draft}");
    let id = draft["id"].as_str().unwrap().to_owned();
    assert_eq!(draft["status"], "draft");
    assert!(draft["published_at"].is_null());
    assert_eq!(draft["author"]["id"], doc.to_string());
    assert_eq!(draft["author"]["display_name"], "Dr Calm");
    assert_eq!(draft["tags"], json!(["sleep", "wellbeing"]));
    assert_eq!(draft["version"], 1);
    let one = format!("/api/v1/articles/{id}");
    for (slug, t) in [("alpha", &ea), ("bravo", &eb), ("bravo", &hr_b)] {
        assert_eq!(api(&app, Method::GET, slug, &one, t, None).await.0, 404);
        assert_eq!(
            crate::files::fetch(&app, slug, t, &image).await.status(),
            404,
            "{slug}: a draft's image"
        );
        let (_, list) = api(&app, Method::GET, slug, "/api/v1/articles", t, None).await;
        assert!(!ids(&list).contains(&id), "{slug}: a draft is listed");
    }
    let (_, mine) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/articles?mine=true",
        &p,
        None,
    )
    .await;
    assert_eq!(ids(&mine), vec![id.clone()]);
    let (_, feed) = api(&app, Method::GET, "alpha", "/api/v1/articles", &p, None).await;
    assert!(
        ids(&feed).is_empty(),
        "the public feed holds published articles only"
    );

    // Publishing is an edit from the version read; a stale version is a conflict.
    let mut publish = article("Sleep basics", &body, "published");
    publish["version"] = json!(1);
    let (s, published) = api(&app, Method::PUT, "alpha", &one, &p, Some(publish.clone())).await;
    assert_eq!(s, 200, "{published}");
    assert_eq!(published["status"], "published");
    assert_eq!(published["version"], 2);
    assert!(published["published_at"].is_string());
    let (s, stale) = api(&app, Method::PUT, "alpha", &one, &p, Some(publish)).await;
    assert_eq!(s, 409, "{stale}");
    assert_eq!(stale["code"], "version_conflict");

    // Employees of both companies (and B's HR) read it, with the same-origin image only —
    // and the image itself.
    for (slug, t) in [("alpha", &ea), ("bravo", &eb), ("bravo", &hr_b)] {
        let res = crate::files::fetch(&app, slug, t, &image).await;
        assert_eq!(res.status(), 200, "{slug}: the article's image");
        assert_eq!(res.headers()["content-type"], "image/png");
        let (s, a) = api(&app, Method::GET, slug, &one, t, None).await;
        assert_eq!(s, 200, "{slug}: {a}");
        let html = a["body_html"].as_str().unwrap();
        assert!(
            html.contains(&format!(
                "<img src=\"/api/v1/files/{image}\" alt=\"A calm room\">"
            )),
            "{html}"
        );
        assert!(!html.contains("tracker.example"), "{html}");
        assert!(a["body_markdown"].as_str().unwrap().contains("Sleep well."));
        let (_, list) = api(&app, Method::GET, slug, "/api/v1/articles", t, None).await;
        assert_eq!(ids(&list), vec![id.clone()]);
        assert!(
            list["items"][0].get("body_html").is_none(),
            "lists carry no bodies"
        );
        assert_eq!(list["items"][0]["author"]["display_name"], "Dr Calm");
    }
    // Filters.
    for (q, hit) in [
        (format!("author_id={doc}"), true),
        (format!("author_id={}", Uuid::now_v7()), false),
        ("tag=sleep".into(), true),
        ("tag=anxiety".into(), false),
        ("language=en".into(), true),
        ("language=fr".into(), false),
    ] {
        let (s, list) = api(
            &app,
            Method::GET,
            "bravo",
            &format!("/api/v1/articles?{q}"),
            &eb,
            None,
        )
        .await;
        assert_eq!(s, 200, "{q}: {list}");
        assert_eq!(ids(&list).contains(&id), hit, "{q}");
    }
    for bad in [
        "language=de",
        "author_id=nope",
        "mine=maybe",
        "status=draft",
        "tag=a,b",
        "cursor=zz",
        "sort=x",
    ] {
        let (s, _) = api(
            &app,
            Method::GET,
            "alpha",
            &format!("/api/v1/articles?{bad}"),
            &ea,
            None,
        )
        .await;
        assert!(s == 422 || s == 400, "{bad}: {s}");
    }

    // Another practitioner of A can neither edit nor delete it (404: not theirs).
    let (_, other) = practitioner(&app, "Dr Other", &[app.tenant_a]).await;
    let mut edit = article("Taken over", "x", "draft");
    edit["version"] = json!(2);
    assert_eq!(
        api(&app, Method::PUT, "alpha", &one, &other, Some(edit.clone()))
            .await
            .0,
        404
    );
    assert_eq!(
        api(&app, Method::DELETE, "alpha", &one, &other, None)
            .await
            .0,
        404
    );

    // Unpublishing hides it again from readers; the author deletes it.
    let (s, back) = api(
        &app,
        Method::PUT,
        "alpha",
        &one,
        &p,
        Some(json!({
        "title": "Sleep basics", "body_markdown": body, "version": 2, "status": "draft"})),
    )
    .await;
    assert_eq!(s, 200, "{back}");
    assert!(back["published_at"].is_null());
    assert_eq!(back["tags"], json!([]));
    assert_eq!(
        api(&app, Method::GET, "bravo", &one, &eb, None).await.0,
        404
    );
    assert_eq!(
        api(&app, Method::DELETE, "alpha", &one, &p, None).await.0,
        204
    );
    assert_eq!(api(&app, Method::GET, "alpha", &one, &p, None).await.0, 404);
    assert_eq!(
        api(&app, Method::DELETE, "alpha", &one, &p, None).await.0,
        404
    );
}

#[tokio::test]
async fn stored_xss_comes_back_clean() {
    let app = TestApp::spawn().await;
    let (_, p) = practitioner(&app, "Dr Calm", &[app.tenant_a]).await;
    let (_, e) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let (_, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    let attack = "<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n[x](javascript:alert(3))\n\n\
                  <svg onload=alert(4)>\n\n<iframe src=https://evil.example></iframe>\n\n\
                  ![p](data:image/png;base64,AAAA)\n\n<a href=\"javascript:alert(5)\">y</a>";
    let (s, a) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p,
        Some(article("XSS", attack, "published")),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let (s, n) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/news",
        &hr,
        Some(json!({"title": "XSS", "body_markdown": attack, "status": "published"})),
    )
    .await;
    assert_eq!(s, 201, "{n}");
    let clean = |html: &str| {
        // Raw HTML shows as escaped text: no element or attribute of it survives.
        for bad in [
            "<script",
            "<img",
            "<svg",
            "<iframe",
            " onerror=alert(2)>",
            "data:image",
            "<a href=\"javascript",
        ] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
    };
    let (_, a) = api(
        &app,
        Method::GET,
        "alpha",
        &format!("/api/v1/articles/{}", a["id"].as_str().unwrap()),
        &e,
        None,
    )
    .await;
    clean(a["body_html"].as_str().unwrap());
    assert!(
        a["body_html"].as_str().unwrap().contains("&lt;script&gt;"),
        "raw HTML shows as text"
    );
    let (_, n) = api(
        &app,
        Method::GET,
        "alpha",
        &format!("/api/v1/news/{}", n["id"].as_str().unwrap()),
        &e,
        None,
    )
    .await;
    clean(n["body_html"].as_str().unwrap());

    // HTML planted in the row behind the renderer's back is sanitised on the way out.
    let mut o = app.owner().await;
    sqlx::query("UPDATE articles SET body_html = '<p onclick=\"x()\">hi</p><script>alert(1)</script><img src=\"https://t.example/p\">'")
        .execute(&mut o).await.unwrap();
    let (_, list) = api(&app, Method::GET, "alpha", "/api/v1/articles", &e, None).await;
    let id = ids(&list).remove(0);
    let (_, a) = api(
        &app,
        Method::GET,
        "alpha",
        &format!("/api/v1/articles/{id}"),
        &e,
        None,
    )
    .await;
    let html = a["body_html"].as_str().unwrap();
    assert!(
        !html.contains("onclick") && !html.contains("<script") && !html.contains("t.example"),
        "{html}"
    );
    assert!(html.contains("<p>hi</p>"), "{html}");

    // Unknown fields are refused (mass assignment), bad input is 422 with field errors.
    let mut extra = article("T", "b", "draft");
    extra["author_id"] = json!(Uuid::now_v7().to_string());
    assert_eq!(
        api(
            &app,
            Method::POST,
            "alpha",
            "/api/v1/articles",
            &p,
            Some(extra)
        )
        .await
        .0,
        422
    );
    let (s, prob) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p,
        Some(json!({
        "title": "x".repeat(201), "body_markdown": "", "language": "de", "status": "live"})),
    )
    .await;
    assert_eq!(s, 422, "{prob}");
    let fields: Vec<&str> = prob["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["title", "body_markdown", "language", "status"] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    // The longest body is accepted, one character more is not (counted in characters).
    let longest = "é".repeat(100_000);
    let (s, a) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p,
        Some(article("Long", &longest, "draft")),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let (s, prob) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p,
        Some(article("Long", &format!("{longest}é"), "draft")),
    )
    .await;
    assert_eq!(s, 422, "{prob}");
    assert_eq!(prob["errors"][0]["field"], "body_markdown");
    assert_eq!(
        api(
            &app,
            Method::POST,
            "alpha",
            "/api/v1/news",
            &hr,
            Some(json!({"title": "t", "body_markdown": "b", "tenant_id": Uuid::now_v7()}))
        )
        .await
        .0,
        422
    );
}

#[tokio::test]
async fn company_news_stays_in_its_company_and_drafts_with_its_hr() {
    let app = TestApp::spawn().await;
    let (_, hr_a) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    let (_, admin_a) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let (_, ea) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let (_, pa) = practitioner(&app, "Dr A", &[app.tenant_a]).await;
    let (_, hr_b) = person(&app, app.tenant_b, "bravo", &[Role::Hr]).await;
    let (_, eb) = person(&app, app.tenant_b, "bravo", &[Role::Employee]).await;

    let (s, n) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/news",
        &hr_a,
        Some(json!({
        "title": "Office wellbeing week", "body_markdown": "Yoga **every** morning.",
        "status": "published"})),
    )
    .await;
    assert_eq!(s, 201, "{n}");
    assert_eq!(n["language"], "en", "the company's language by default");
    assert!(!n["pinned"].as_bool().unwrap());
    let id = n["id"].as_str().unwrap().to_owned();
    let one = format!("/api/v1/news/{id}");
    let (s, pinned) = api(&app, Method::POST, "alpha", "/api/v1/news", &admin_a, Some(json!({
        "title": "Read me first", "body_markdown": "Pinned.", "status": "published", "pinned": true}))).await;
    assert_eq!(s, 201, "{pinned}");
    let (s, draft) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/news",
        &hr_a,
        Some(json!({
        "title": "Secret reorganisation", "body_markdown": "Not yet."})),
    )
    .await;
    assert_eq!(s, 201, "{draft}");
    let draft_id = draft["id"].as_str().unwrap().to_owned();

    // Every member of A reads published news, pinned first; nobody but HR sees the draft.
    for t in [&ea, &pa, &hr_a] {
        let (s, list) = api(&app, Method::GET, "alpha", "/api/v1/news", t, None).await;
        assert_eq!(s, 200, "{list}");
        assert_eq!(
            ids(&list),
            vec![pinned["id"].as_str().unwrap().to_owned(), id.clone()]
        );
        assert_eq!(api(&app, Method::GET, "alpha", &one, t, None).await.0, 200);
    }
    assert_eq!(
        api(
            &app,
            Method::GET,
            "alpha",
            &format!("/api/v1/news/{draft_id}"),
            &ea,
            None
        )
        .await
        .0,
        404
    );
    let (_, drafts) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/news?status=draft",
        &ea,
        None,
    )
    .await;
    assert!(ids(&drafts).is_empty());
    let (_, drafts) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/news?status=draft",
        &hr_a,
        None,
    )
    .await;
    assert_eq!(ids(&drafts), vec![draft_id.clone()]);
    let (_, found) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/news?q=reorganisation",
        &ea,
        None,
    )
    .await;
    assert!(
        ids(&found).is_empty(),
        "search never returns a draft to an employee"
    );

    // Company B never sees A's news: not listed, not by id, not by search, not editable.
    for t in [&eb, &hr_b] {
        let (_, list) = api(&app, Method::GET, "bravo", "/api/v1/news", t, None).await;
        assert!(ids(&list).is_empty(), "{list}");
        let (_, found) = api(
            &app,
            Method::GET,
            "bravo",
            "/api/v1/news?q=wellbeing",
            t,
            None,
        )
        .await;
        assert!(ids(&found).is_empty(), "{found}");
        let (_, found) = api(
            &app,
            Method::GET,
            "bravo",
            "/api/v1/news?q=secret&status=draft",
            t,
            None,
        )
        .await;
        assert!(ids(&found).is_empty(), "{found}");
        assert_eq!(api(&app, Method::GET, "bravo", &one, t, None).await.0, 404);
    }
    let edit =
        json!({"title": "Taken over", "body_markdown": "x", "version": 1, "status": "published"});
    assert_eq!(
        api(&app, Method::PUT, "bravo", &one, &hr_b, Some(edit.clone()))
            .await
            .0,
        404
    );
    assert_eq!(
        api(&app, Method::DELETE, "bravo", &one, &hr_b, None)
            .await
            .0,
        404
    );
    let (_, found) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/news?q=wellbeing",
        &ea,
        None,
    )
    .await;
    assert_eq!(ids(&found), vec![id.clone()]);
    assert!(found["items"][0]["rank"].as_f64().unwrap() > 0.0);

    // A French-speaking company's news is French by default, and searched as such; A's
    // employees never see it.
    sqlx::query("UPDATE tenants SET locale = 'fr' WHERE id = $1")
        .bind(app.tenant_b.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let (s, fr) = api(
        &app,
        Method::POST,
        "bravo",
        "/api/v1/news",
        &hr_b,
        Some(json!({
        "title": "Semaine du bien-être", "body_markdown": "Nos thérapeutes vous accueillent.",
        "status": "published"})),
    )
    .await;
    assert_eq!(s, 201, "{fr}");
    assert_eq!(fr["language"], "fr");
    let (_, found) = api(
        &app,
        Method::GET,
        "bravo",
        "/api/v1/news?q=th%C3%A9rapeute",
        &eb,
        None,
    )
    .await;
    assert_eq!(ids(&found), vec![fr["id"].as_str().unwrap().to_owned()]);
    let (_, found) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/news?q=th%C3%A9rapeute",
        &ea,
        None,
    )
    .await;
    assert!(ids(&found).is_empty(), "{found}");
    assert_eq!(
        api(
            &app,
            Method::GET,
            "alpha",
            &format!("/api/v1/news/{}", fr["id"].as_str().unwrap()),
            &ea,
            None
        )
        .await
        .0,
        404
    );

    // HR edits from the version read; the tenant admin deletes.
    let (s, edited) = api(&app, Method::PUT, "alpha", &one, &hr_a, Some(edit.clone())).await;
    assert_eq!(s, 200, "{edited}");
    assert_eq!(edited["title"], "Taken over");
    assert_eq!(
        edited["published_at"], n["published_at"],
        "publication time kept on edit"
    );
    assert_eq!(
        api(&app, Method::PUT, "alpha", &one, &hr_a, Some(edit))
            .await
            .0,
        409
    );
    assert_eq!(
        api(&app, Method::DELETE, "alpha", &one, &admin_a, None)
            .await
            .0,
        204
    );
    assert_eq!(
        api(&app, Method::GET, "alpha", &one, &ea, None).await.0,
        404
    );
}

#[tokio::test]
async fn search_is_language_aware_and_never_shows_others_drafts() {
    let app = TestApp::spawn().await;
    let (_, p) = practitioner(&app, "Dr Calm", &[app.tenant_a]).await;
    let (_, q) = practitioner(&app, "Dr Quiet", &[app.tenant_a]).await;
    let (_, e) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let post = |token: String, body: Value| {
        let app = &app;
        async move {
            let (s, a) = api(
                app,
                Method::POST,
                "alpha",
                "/api/v1/articles",
                &token,
                Some(body),
            )
            .await;
            assert_eq!(s, 201, "{a}");
            a["id"].as_str().unwrap().to_owned()
        }
    };
    let fr = post(
        p.clone(),
        json!({"title": "Trouver de l'aide", "language": "fr", "status": "published",
        "body_markdown": "Les thérapeutes de la plateforme vous écoutent."}),
    )
    .await;
    let en = post(
        p.clone(),
        json!({"title": "Rest", "language": "en", "status": "published",
        "body_markdown": "Sleeping enough matters."}),
    )
    .await;
    let en_title = post(
        p.clone(),
        json!({"title": "Sleep", "summary": "All about sleep", "language": "en",
        "status": "published", "body_markdown": "Nothing else."}),
    )
    .await;
    let hidden = post(
        q.clone(),
        json!({"title": "Sleep secrets", "language": "en",
        "body_markdown": "A draft about sleeping."}),
    )
    .await;
    let search = |token: String, q: &'static str| {
        let app = &app;
        async move {
            let (s, page) = api(
                app,
                Method::GET,
                "alpha",
                &format!("/api/v1/articles?q={q}"),
                &token,
                None,
            )
            .await;
            assert_eq!(s, 200, "{page}");
            ids(&page)
        }
    };
    assert_eq!(
        search(e.clone(), "th%C3%A9rapeute").await,
        vec![fr.clone()],
        "French stemming"
    );
    assert_eq!(
        search(e.clone(), "sleep").await,
        vec![en_title.clone(), en.clone()],
        "title ranks first"
    );
    assert!(search(e.clone(), "zebra%20quantum").await.is_empty());
    // The other practitioner's draft is found by nobody but them (with mine=true).
    for t in [&e, &p] {
        assert!(!search(t.clone(), "secrets").await.contains(&hidden));
    }
    let (_, mine) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/articles?q=sleep&mine=true",
        &q,
        None,
    )
    .await;
    assert_eq!(ids(&mine), vec![hidden]);
    // A stop-word-only or punctuation query is an empty result, never an error.
    assert!(search(e.clone(), "the").await.is_empty());
    assert!(search(e.clone(), "%22%20-%20%22").await.is_empty());

    // News in French.
    let (_, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    let (s, n) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/news",
        &hr,
        Some(json!({
        "title": "Nouveaux thérapeutes", "body_markdown": "Bienvenue.", "language": "fr",
        "status": "published"})),
    )
    .await;
    assert_eq!(s, 201, "{n}");
    let (_, found) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/news?q=th%C3%A9rapeute",
        &e,
        None,
    )
    .await;
    assert_eq!(ids(&found), vec![n["id"].as_str().unwrap().to_owned()]);
    let (_, found) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/news?q=th%C3%A9rapeute&language=en",
        &e,
        None,
    )
    .await;
    assert!(ids(&found).is_empty());
}

/// Follow `path`'s cursors with `limit`, collecting every id.
async fn walk(app: &TestApp, token: &str, path: &str, limit: u32) -> Vec<String> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let (s, page) = api(app, Method::GET, "alpha", &url, token, None).await;
        assert_eq!(s, 200, "{page}");
        assert!(ids(&page).len() <= limit as usize);
        all.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
    panic!("the list never ended");
}

#[tokio::test]
async fn keyset_pages_have_no_duplicates_and_no_gaps() {
    let app = TestApp::spawn().await;
    let (_, p) = practitioner(&app, "Dr Calm", &[app.tenant_a]).await;
    let (_, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    let (_, e) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let mut articles = Vec::new();
    let mut news = Vec::new();
    // The clock does not move: equal times, so the id breaks every tie.
    for i in 0..7 {
        let body = "Sleep ".repeat(i + 1);
        let (s, a) = api(
            &app,
            Method::POST,
            "alpha",
            "/api/v1/articles",
            &p,
            Some(article(&format!("Note {i}"), &body, "published")),
        )
        .await;
        assert_eq!(s, 201);
        articles.push(a["id"].as_str().unwrap().to_owned());
        let (s, n) = api(
            &app,
            Method::POST,
            "alpha",
            "/api/v1/news",
            &hr,
            Some(json!({
            "title": format!("News {i}"), "body_markdown": body, "status": "published",
            "pinned": i % 3 == 0})),
        )
        .await;
        assert_eq!(s, 201);
        news.push((
            n["pinned"].as_bool().unwrap(),
            n["id"].as_str().unwrap().to_owned(),
        ));
    }
    let newest_first: Vec<String> = articles.iter().rev().cloned().collect();
    for limit in [1, 2, 3, 7, 8] {
        assert_eq!(
            walk(&app, &e, "/api/v1/articles", limit).await,
            newest_first,
            "limit {limit}"
        );
        let mut found = walk(&app, &e, "/api/v1/articles?q=sleep", limit).await;
        assert_eq!(found.len(), 7, "search, limit {limit}");
        found.sort();
        found.dedup();
        assert_eq!(found.len(), 7, "search pages repeat a row, limit {limit}");
        let got = walk(&app, &e, "/api/v1/news", limit).await;
        let mut want: Vec<(bool, String)> = news.clone();
        want.sort_by(|a, b| b.cmp(a));
        assert_eq!(
            got,
            want.into_iter().map(|(_, id)| id).collect::<Vec<_>>(),
            "news, limit {limit}"
        );
        let mut found = walk(&app, &e, "/api/v1/news?q=sleep", limit).await;
        found.sort();
        found.dedup();
        assert_eq!(found.len(), 7, "news search, limit {limit}");
    }
    // The more often the word, the higher the rank.
    let (_, page) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/articles?q=sleep&limit=200",
        &e,
        None,
    )
    .await;
    let ranks: Vec<f64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rank"].as_f64().unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "{ranks:?}");
    // A cursor of one mode is refused by the other.
    let (_, page) = api(
        &app,
        Method::GET,
        "alpha",
        "/api/v1/articles?limit=1",
        &e,
        None,
    )
    .await;
    let c = page["next_cursor"].as_str().unwrap();
    let (s, _) = api(
        &app,
        Method::GET,
        "alpha",
        &format!("/api/v1/articles?q=sleep&cursor={c}"),
        &e,
        None,
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn roles_are_refused_where_casbin_says_so_and_every_route_wants_a_token() {
    let app = TestApp::spawn().await;
    let (_, e) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let (_, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    let (_, p) = practitioner(&app, "Dr Calm", &[app.tenant_a]).await;
    let a = article("T", "b", "draft");
    let n = json!({"title": "t", "body_markdown": "b"});
    for (t, path, body) in [
        (&e, "/api/v1/articles", &a),
        (&hr, "/api/v1/articles", &a),
        (&e, "/api/v1/news", &n),
        (&p, "/api/v1/news", &n),
    ] {
        let (s, prob) = api(&app, Method::POST, "alpha", path, t, Some(body.clone())).await;
        assert_eq!(s, 403, "{path}: {prob}");
    }
    let any = Uuid::now_v7();
    for (m, path) in [
        (Method::GET, "/api/v1/articles".to_owned()),
        (Method::POST, "/api/v1/articles".to_owned()),
        (Method::GET, format!("/api/v1/articles/{any}")),
        (Method::PUT, format!("/api/v1/articles/{any}")),
        (Method::DELETE, format!("/api/v1/articles/{any}")),
        (Method::GET, "/api/v1/news".to_owned()),
        (Method::POST, "/api/v1/news".to_owned()),
        (Method::GET, format!("/api/v1/news/{any}")),
        (Method::PUT, format!("/api/v1/news/{any}")),
        (Method::DELETE, format!("/api/v1/news/{any}")),
    ] {
        let res = app
            .req(m.clone(), &host("alpha"), &path)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{m} {path}");
    }
}

async fn outcome(conn: &mut PgConnection, sql: &str, id: Uuid) -> String {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
        .get(0)
}

async fn visible(conn: &mut PgConnection, table: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(conn)
    .await
    .unwrap()
}

const CREATE_ARTICLE: &str = "SELECT app_private.article_create($1, 'Planted', '', 'x', '<p>x</p>', '{}', 'en', 'published', now())";
const UPDATE_ARTICLE: &str = "SELECT outcome FROM app_private.article_update($1, 1, 'Taken', '', 'x', '<script>x</script>', '{}', 'en', 'published', now())";
const DELETE_ARTICLE: &str = "SELECT outcome FROM app_private.article_delete($1)";
const CREATE_NEWS: &str = "SELECT app_private.news_create($1, 'Planted', 'x', '<p>x</p>', NULL, 'published', false, now())";
const UPDATE_NEWS: &str = "SELECT app_private.news_update($1, 1, 'Taken', 'x', '<p>x</p>', NULL, 'published', NULL, now())";
const DELETE_NEWS: &str = "SELECT app_private.news_delete($1)";

#[tokio::test]
async fn the_database_alone_holds_articles_and_news() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let (doc, p) = practitioner(&app, "Dr Calm", &[a]).await;
    let (other, _) = practitioner(&app, "Dr Other", &[a]).await;
    let (emp, _) = person(&app, a, "alpha", &[Role::Employee]).await;
    let (hr, hr_t) = person(&app, a, "alpha", &[Role::Hr]).await;
    let (hr_b, _) = person(&app, b, "bravo", &[Role::Hr]).await;
    let (_, published) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p,
        Some(article("Public", "x", "published")),
    )
    .await;
    let published = Uuid::parse_str(published["id"].as_str().unwrap()).unwrap();
    let (_, draft) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p,
        Some(article("Private", "x", "draft")),
    )
    .await;
    let draft = Uuid::parse_str(draft["id"].as_str().unwrap()).unwrap();
    let (_, news) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/news",
        &hr_t,
        Some(json!({"title": "Public", "body_markdown": "x", "status": "published"})),
    )
    .await;
    let news = Uuid::parse_str(news["id"].as_str().unwrap()).unwrap();
    let (_, news_draft) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/news",
        &hr_t,
        Some(json!({"title": "Private", "body_markdown": "x"})),
    )
    .await;
    let news_draft = Uuid::parse_str(news_draft["id"].as_str().unwrap()).unwrap();
    let mut c = app.owner().await;
    let snapshot = "SELECT md5(string_agg(x::text, ',' ORDER BY x.id)) FROM (SELECT id, title, body_html, status, version FROM articles UNION ALL SELECT id, title, body_html, status, version FROM news) x";
    let before: String = sqlx::query_scalar(snapshot)
        .fetch_one(&mut c)
        .await
        .unwrap();

    // No company context, or a context without a proven person: nothing at all, even claiming
    // to be the author and a practitioner.
    for (tenant, user, roles) in [
        (None, None, ""),
        (None, Some(doc), "practitioner"),
        (Some(a), None, "practitioner"),
        (Some(a), Some(doc), "practitioner"),
        (Some(a), Some(hr), "hr"),
    ] {
        as_app_with_roles(&mut c, tenant, user, roles).await;
        for id in [published, draft] {
            assert_eq!(
                visible(&mut c, "articles", id).await,
                0,
                "{tenant:?} {user:?} {roles}"
            );
        }
        for id in [news, news_draft] {
            assert_eq!(
                visible(&mut c, "news", id).await,
                0,
                "{tenant:?} {user:?} {roles}"
            );
        }
        assert_eq!(
            outcome(&mut c, CREATE_ARTICLE, Uuid::now_v7()).await,
            "forbidden"
        );
        assert_eq!(outcome(&mut c, UPDATE_ARTICLE, draft).await, "forbidden");
        assert_eq!(
            outcome(&mut c, DELETE_ARTICLE, published).await,
            "forbidden"
        );
        assert_eq!(
            outcome(&mut c, CREATE_NEWS, Uuid::now_v7()).await,
            "forbidden"
        );
        assert_eq!(outcome(&mut c, UPDATE_NEWS, news).await, "forbidden");
        assert_eq!(outcome(&mut c, DELETE_NEWS, news).await, "forbidden");
        c.execute("ROLLBACK").await.unwrap();
    }

    // A proven employee: published rows only; claiming practitioner or HR in app.roles after
    // the guard proves nothing to the definers.
    assert!(as_member_with_session_roles(&mut c, a, emp, "employee").await);
    assert_eq!(visible(&mut c, "articles", published).await, 1);
    assert_eq!(visible(&mut c, "articles", draft).await, 0);
    assert_eq!(visible(&mut c, "news", news).await, 1);
    assert_eq!(visible(&mut c, "news", news_draft).await, 0);
    c.execute("SELECT set_config('app.roles', 'practitioner,hr,tenant_admin', true)")
        .await
        .unwrap();
    assert_eq!(
        outcome(&mut c, CREATE_ARTICLE, Uuid::now_v7()).await,
        "forbidden"
    );
    assert_eq!(
        outcome(&mut c, CREATE_NEWS, Uuid::now_v7()).await,
        "forbidden"
    );
    assert_eq!(outcome(&mut c, UPDATE_NEWS, news).await, "forbidden");
    assert_eq!(visible(&mut c, "news", news_draft).await, 0);
    c.execute("ROLLBACK").await.unwrap();
    // The guard itself refuses a role the person does not hold.
    assert!(!as_member_with_session_roles(&mut c, a, emp, "practitioner").await);

    // A proven practitioner who is not the author: no draft, no edit, no delete.
    assert!(as_member_with_session_roles(&mut c, a, other, "practitioner").await);
    assert_eq!(visible(&mut c, "articles", draft).await, 0);
    assert_eq!(visible(&mut c, "articles", published).await, 1);
    assert_eq!(outcome(&mut c, UPDATE_ARTICLE, draft).await, "not_found");
    assert_eq!(
        outcome(&mut c, UPDATE_ARTICLE, published).await,
        "not_found"
    );
    assert_eq!(outcome(&mut c, DELETE_ARTICLE, draft).await, "not_found");
    // Someone else's id as app.user_id after the guard: the proof no longer matches.
    c.execute(sqlx::AssertSqlSafe(format!(
        "SELECT set_config('app.user_id', '{doc}', true)"
    )))
    .await
    .unwrap();
    assert_eq!(visible(&mut c, "articles", draft).await, 0);
    assert_eq!(visible(&mut c, "articles", published).await, 0);
    assert_eq!(outcome(&mut c, UPDATE_ARTICLE, draft).await, "forbidden");
    c.execute("ROLLBACK").await.unwrap();

    // HR of B: A's news is not there, not even for its definers; B's context sees no A rows.
    assert!(as_member_with_session_roles(&mut c, b, hr_b, "hr").await);
    assert_eq!(visible(&mut c, "news", news).await, 0);
    assert_eq!(visible(&mut c, "news", news_draft).await, 0);
    assert_eq!(outcome(&mut c, UPDATE_NEWS, news).await, "not_found");
    assert_eq!(outcome(&mut c, DELETE_NEWS, news_draft).await, "not_found");
    // A published article is platform-wide: B reads it.
    assert_eq!(visible(&mut c, "articles", published).await, 1);
    c.execute("ROLLBACK").await.unwrap();

    // The request role writes nothing directly, even as the proven author or HR.
    assert!(as_member_with_session_roles(&mut c, a, doc, "practitioner").await);
    assert_eq!(
        visible(&mut c, "articles", draft).await,
        1,
        "the author reads their draft"
    );
    for sql in [
        "UPDATE articles SET body_html = '<script>x</script>'",
        "DELETE FROM articles",
        "INSERT INTO articles (id, author_id, author_name, title, body_markdown, body_html, language, status, created_at, updated_at) VALUES (gen_random_uuid(), app.current_user_id(), '', 't', 'x', 'x', 'en', 'draft', now(), now())",
    ] {
        c.execute("SAVEPOINT s").await.unwrap();
        let err = c.execute(sql).await.unwrap_err().to_string();
        assert!(err.contains("permission denied"), "{sql}: {err}");
        c.execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    }
    c.execute("ROLLBACK").await.unwrap();
    assert!(as_member_with_session_roles(&mut c, a, hr, "hr").await);
    assert_eq!(
        visible(&mut c, "news", news_draft).await,
        1,
        "HR reads the company's drafts"
    );
    for sql in [
        "UPDATE news SET title = 'x'",
        "DELETE FROM news",
        "INSERT INTO news (id, tenant_id, author_id, title, body_markdown, body_html, language, status, created_at, updated_at) VALUES (gen_random_uuid(), app.current_tenant(), app.current_user_id(), 't', 'x', 'x', 'en', 'draft', now(), now())",
    ] {
        c.execute("SAVEPOINT s").await.unwrap();
        let err = c.execute(sql).await.unwrap_err().to_string();
        assert!(err.contains("permission denied"), "{sql}: {err}");
        c.execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    }
    c.execute("ROLLBACK").await.unwrap();

    // No-tenant reads as the request role see nothing of either table.
    as_app(&mut c, None, None).await;
    let n: i64 =
        sqlx::query_scalar("SELECT (SELECT count(*) FROM articles) + (SELECT count(*) FROM news)")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(n, 0);
    c.execute("ROLLBACK").await.unwrap();

    let after: String = sqlx::query_scalar(snapshot)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(before, after, "an attack changed a row");
}

/// An article's images follow it (content × files, migration 20261209000500): readable in every
/// company only while an article of their owner that shows them is published; another
/// practitioner's image, or an upload of another purpose, cannot be published; an edit that
/// drops an image, unpublishing and deleting withdraw it.
#[tokio::test]
async fn article_images_follow_their_article() {
    let app = TestApp::spawn().await;
    let (doc, p) = practitioner(&app, "Dr Calm", &[app.tenant_a, app.tenant_b]).await;
    let (_, p2) = practitioner(&app, "Dr Other", &[app.tenant_a]).await;
    let (_, ea) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let (_, eb) = person(&app, app.tenant_b, "bravo", &[Role::Employee]).await;
    let up = |token: String, purpose: &'static str| {
        let app = &app;
        async move {
            let (s, f) = crate::files::upload(
                app,
                "alpha",
                &token,
                ("pic.png", None, &crate::files::png(4, 4)),
                Some(purpose),
            )
            .await;
            assert_eq!(s, 201, "{f}");
            f["id"].as_str().unwrap().to_owned()
        }
    };
    let img = up(p.clone(), "article_image").await;
    let attachment = up(p.clone(), "attachment").await;
    let others = up(p2.clone(), "article_image").await;
    let readable = |slug: &'static str, token: String, id: String| {
        let app = &app;
        async move { crate::files::fetch(app, slug, &token, &id).await.status() == 200 }
    };
    let md = |ids: &[&str]| {
        ids.iter()
            .map(|i| format!("![x](/api/v1/files/{i})"))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let count = || async {
        let mut o = app.owner().await;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM articles")
            .fetch_one(&mut o)
            .await
            .unwrap()
    };

    // Someone else's image, or one's own upload of another purpose: the write is refused
    // whole (422 on images) and nothing is stored.
    let before = count().await;
    for (token, body) in [
        (&p2, md(&[&img])),
        (&p, md(&[&attachment])),
        (&p, md(&[&img, &others])),
    ] {
        let (s, e) = api(
            &app,
            Method::POST,
            "alpha",
            "/api/v1/articles",
            token,
            Some(article("Pictures", &body, "published")),
        )
        .await;
        assert_eq!(s, 422, "{e}");
        assert_eq!(e["errors"][0]["field"], "images", "{e}");
    }
    assert_eq!(count().await, before);
    assert!(!readable("bravo", eb.clone(), img.clone()).await);

    // Published: readable from both companies.
    let (s, a) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p,
        Some(article("Pictures", &md(&[&img]), "published")),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let one = format!("/api/v1/articles/{}", a["id"].as_str().unwrap());
    assert!(readable("bravo", eb.clone(), img.clone()).await);
    assert!(readable("alpha", ea.clone(), img.clone()).await);
    // Another practitioner cannot show it in their article either.
    let (s, _) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p2,
        Some(article("Borrowed", &md(&[&img]), "published")),
    )
    .await;
    assert_eq!(s, 422);

    // An edit that drops the image withdraws it; putting it back publishes it again.
    let mut edit = article("Pictures", "No pictures today.", "published");
    edit["version"] = json!(1);
    assert_eq!(
        api(&app, Method::PUT, "alpha", &one, &p, Some(edit))
            .await
            .0,
        200
    );
    assert!(!readable("bravo", eb.clone(), img.clone()).await);
    let mut edit = article("Pictures", &md(&[&img]), "published");
    edit["version"] = json!(2);
    assert_eq!(
        api(&app, Method::PUT, "alpha", &one, &p, Some(edit))
            .await
            .0,
        200
    );
    assert!(readable("bravo", eb.clone(), img.clone()).await);
    // Unpublished: withdrawn; published again, then deleted: withdrawn. The owner keeps it.
    let mut edit = article("Pictures", &md(&[&img]), "draft");
    edit["version"] = json!(3);
    assert_eq!(
        api(&app, Method::PUT, "alpha", &one, &p, Some(edit))
            .await
            .0,
        200
    );
    assert!(!readable("bravo", eb.clone(), img.clone()).await);
    let mut edit = article("Pictures", &md(&[&img]), "published");
    edit["version"] = json!(4);
    assert_eq!(
        api(&app, Method::PUT, "alpha", &one, &p, Some(edit))
            .await
            .0,
        200
    );
    assert!(readable("bravo", eb.clone(), img.clone()).await);
    assert_eq!(
        api(&app, Method::DELETE, "alpha", &one, &p, None).await.0,
        204
    );
    assert!(!readable("bravo", eb.clone(), img.clone()).await);
    assert!(!readable("alpha", ea.clone(), img.clone()).await);
    assert!(readable("alpha", p.clone(), img.clone()).await);

    // At the database alone: published rows of a files table say nothing without a published
    // article of the image's owner that names it (a row marked by hand is not served), and the
    // publish door refuses an article id that is not the caller's published article.
    let mut o = app.owner().await;
    sqlx::query(
        "UPDATE files SET article_id = gen_random_uuid(), published_at = now() WHERE id = $1::uuid",
    )
    .bind(&img)
    .execute(&mut o)
    .await
    .unwrap();
    assert!(!readable("bravo", eb.clone(), img.clone()).await);
    assert!(as_member_with_session_roles(&mut o, app.tenant_a, doc, "practitioner").await);
    let n: Option<i32> = sqlx::query_scalar(
        "SELECT app_private.article_images_publish(gen_random_uuid(), ARRAY[$1::uuid], now())",
    )
    .bind(&img)
    .fetch_one(&mut o)
    .await
    .unwrap();
    assert_eq!(n, None, "published for an article that does not exist");
    o.execute("ROLLBACK").await.unwrap();
}

/// A published article (and its image) is shown only while its author practises: disabled
/// everywhere, it leaves every company's feed; the author still reads their own; reinstated, it
/// is back (migration 20261209000900).
#[tokio::test]
async fn an_article_leaves_with_its_author_and_comes_back_with_them() {
    let app = TestApp::spawn().await;
    let (doc, p) = practitioner(&app, "Dr Gone", &[app.tenant_a, app.tenant_b]).await;
    let (_, eb) = person(&app, app.tenant_b, "bravo", &[Role::Employee]).await;
    let (s, f) = crate::files::upload(
        &app,
        "alpha",
        &p,
        ("pic.png", None, &crate::files::png(4, 4)),
        Some("article_image"),
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let img = f["id"].as_str().unwrap().to_owned();
    let (s, a) = api(
        &app,
        Method::POST,
        "alpha",
        "/api/v1/articles",
        &p,
        Some(article(
            "Leaving",
            &format!("![x](/api/v1/files/{img})"),
            "published",
        )),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let one = format!("/api/v1/articles/{}", a["id"].as_str().unwrap());
    let visible = || async {
        (
            api(&app, Method::GET, "bravo", &one, &eb, None).await.0,
            crate::files::fetch(&app, "bravo", &eb, &img)
                .await
                .status()
                .as_u16(),
        )
    };
    assert_eq!(visible().await, (200, 200));
    let mut o = app.owner().await;
    let set = |status: &'static str| {
        let app = &app;
        async move {
            let mut o = app.owner().await;
            sqlx::query("UPDATE memberships SET status = $2 WHERE user_id = $1")
                .bind(doc.as_uuid())
                .bind(status)
                .execute(&mut o)
                .await
                .unwrap();
        }
    };
    set("disabled").await;
    assert_eq!(visible().await, (404, 404));
    let (_, list) = api(&app, Method::GET, "bravo", "/api/v1/articles", &eb, None).await;
    assert!(ids(&list).is_empty(), "{list}");
    // Nothing was deleted or unpublished: the row waits (read as the owner).
    let status: String = sqlx::query_scalar("SELECT status FROM articles WHERE author_id = $1")
        .bind(doc.as_uuid())
        .fetch_one(&mut o)
        .await
        .unwrap();
    assert_eq!(status, "published", "nothing was deleted");
    set("active").await;
    assert_eq!(visible().await, (200, 200));
}
