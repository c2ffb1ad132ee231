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

/// Issue 9 item 14: the document describes the API exactly enough for generated clients and
/// fuzzers. Every `{x}` of a path template is a required path parameter and every path
/// parameter is in the template; every other parameter is in the query (never a required
/// "path" parameter that is not in the path); every operation with a body lists 400, 413, 415
/// and 422; every operation that needs a token lists 401; no request body is `null`; every
/// free-text string a request carries has a pattern (the control-character rule).
#[tokio::test]
async fn the_document_describes_parameters_bodies_and_errors_exactly() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app
        .get("127.0.0.1", "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let in_template: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split('}').next())
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut path_params = Vec::new();
            for p in &params {
                let name = p["name"].as_str().unwrap();
                match p["in"].as_str().unwrap() {
                    "path" => {
                        path_params.push(name.to_owned());
                        if !in_template.contains(&name) {
                            problems.push(format!("{what}: path parameter {name} not in the path"));
                        }
                        if p["required"] != true {
                            problems.push(format!("{what}: path parameter {name} not required"));
                        }
                    }
                    "query" => {}
                    // An optional request header with a pattern (e.g. `Idempotency-Key`).
                    "header" if p["required"] != true => {}
                    other => problems.push(format!("{what}: parameter {name} in {other}")),
                }
                let schema = &p["schema"];
                let is_string = schema["type"] == "string"
                    || schema["type"]
                        .as_array()
                        .is_some_and(|t| t.contains(&"string".into()));
                if is_string
                    && schema.get("pattern").is_none()
                    && schema.get("format").is_none()
                    && schema.get("enum").is_none()
                {
                    problems.push(format!("{what}: string parameter {name} has no pattern"));
                }
            }
            for name in &in_template {
                if !path_params.iter().any(|p| p == name) {
                    problems.push(format!(
                        "{what}: {{{name}}} is not a declared path parameter"
                    ));
                }
            }
            let responses = op["responses"].as_object().unwrap();
            if let Some(body) = op.get("requestBody") {
                for code in ["400", "413", "415", "422"] {
                    if !responses.contains_key(code) {
                        problems.push(format!("{what}: has a body but does not list {code}"));
                    }
                }
                for (ct, content) in body["content"].as_object().unwrap() {
                    if content["schema"]
                        .get("oneOf")
                        .is_some_and(|o| o.to_string().contains("\"null\""))
                    {
                        problems.push(format!("{what}: {ct} body may be null"));
                    }
                }
            }
            let public = op["security"].as_array().is_none_or(Vec::is_empty);
            if !public && !responses.contains_key("401") {
                problems.push(format!("{what}: needs a token but does not list 401"));
            }
            for code in ["429", "503"] {
                if !responses.contains_key(code) {
                    problems.push(format!("{what}: does not list {code}"));
                }
            }
        }
    }
    // Free-text strings of request schemas carry a pattern.
    fn unpatterned(schema: &serde_json::Value, at: &str, out: &mut Vec<String>) {
        if let Some(obj) = schema.as_object() {
            let is_string = obj.get("type").is_some_and(|t| {
                t == "string" || t.as_array().is_some_and(|a| a.contains(&"string".into()))
            });
            let free = !["pattern", "enum", "const"]
                .iter()
                .any(|k| obj.contains_key(*k))
                && obj.get("format").is_none_or(|f| f == "password");
            if is_string && free {
                out.push(at.to_owned());
            }
            for (k, v) in obj {
                unpatterned(v, &format!("{at}.{k}"), out);
            }
        } else if let Some(items) = schema.as_array() {
            for (i, v) in items.iter().enumerate() {
                unpatterned(v, &format!("{at}[{i}]"), out);
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if name.ends_with("Request") || name.ends_with("Patch") || name == "Branding" {
            unpatterned(schema, name, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The two operations that declared their filters as required path parameters.
    for path in ["/api/v1/members", "/api/v1/members/invitations"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        assert!(
            params
                .iter()
                .all(|p| p["in"] == "query" && p["required"] != true),
            "{path}"
        );
    }
}
