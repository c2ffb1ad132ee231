//! The OpenAPI document covers every route: routes are only ever declared through
//! `utoipa_axum::routes!` (which takes method and path from the `#[utoipa::path]` attribute, so a
//! route and its documentation cannot diverge), and every documented operation is served.

use std::path::Path;

use crate::helpers::TestApp;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn routes_are_only_declared_through_documented_macros() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(!files.is_empty());
    let forbidden = [
        ".route(",
        ".route_service(",
        ".nest(",
        ".nest_service(",
        "routing::get",
        "routing::post",
        "routing::put",
        "routing::patch",
        "routing::delete",
    ];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for pat in forbidden {
            assert!(
                !text.contains(pat),
                "{} uses `{pat}`: declare routes with utoipa_axum::routes! so they are documented",
                f.display()
            );
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_served_and_the_document_is_served() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app
        .get("127.0.0.1", "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/tenant/profile"));
    assert!(paths.contains_key("/health/ready"));
    for (path, ops) in paths {
        for (method, _) in ops.as_object().unwrap() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let concrete = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
            let res = app
                .req(m, "alpha.localhost", &concrete)
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            // Served means routed: not the fallback's not_found/method_not_allowed.
            assert!(
                !(body.contains("\"code\":\"not_found\"") && status == 404) && status != 405,
                "{method} {path} is documented but not served ({status})"
            );
        }
    }
    let ui = app.get("127.0.0.1", "/docs/").await;
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().to_lowercase().contains("swagger"));
}
