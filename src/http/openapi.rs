//! The answers every operation shares, written into the OpenAPI document once, from the same
//! rules the shared extractors and middleware enforce (so a client or a fuzzer can tell valid
//! from invalid without reading the code).
//!
//! Invariants (checked by `tests/api/openapi.rs`): an operation with a request body lists 400
//! (`malformed_json`), 413, 415 and 422 (`invalid_body`, `validation_failed`), one without a
//! body lists 422 (`invalid_body`: it refuses one, `middleware::refuse_unexpected_body`); one with query
//! parameters lists 400 (`invalid_query`); one with path parameters lists 404; one that needs
//! a bearer token lists 401; every `/api` operation lists 400 (`invalid_host`), 403
//! (`tenant_suspended`) and 404 (`tenant_not_found`, `tenant_required`), which host resolution
//! answers before any handler; every operation lists 429 (per-IP throttle) and 503 (load
//! shedding, database unavailable, request timeout). An error response an operation lists
//! itself gets the problem body here too, so annotations name only the status and its codes. A request body is a JSON object, never `null`: the
//! `null` alternative that utoipa writes for an optional body is removed. Every string of a
//! request (body property at any depth, query or path parameter) without a stricter pattern,
//! format or enum carries the pattern of `http::text`: no control characters in parameters,
//! none but tab and line breaks in bodies.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Body strings: no NUL or control character but `\t`, `\n`, `\r` (`text::is_refused`).
pub const BODY_TEXT_PATTERN: &str =
    "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";
/// Query and path parameters: no control character at all.
pub const PARAM_TEXT_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// A secret sent by the client (password, token, code): a string.
pub fn secret_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Password,
        )))
        .build()
}

/// An optional secret (`Option<SecretString>`): a string or `null`.
pub fn optional_secret_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Password,
        )))
        .build()
}

/// A new password: the policy's length (`crypto::passwords::check_policy`, 8–128 characters).
pub fn new_password_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Password,
        )))
        .min_length(Some(8))
        .max_length(Some(128))
        .build()
}

/// Complete every operation of `doc` (see the module header), then the text patterns.
pub fn complete(doc: &mut OpenApi) {
    complete_operations(doc);
    // The patterns are added on the document's JSON form (one walk over every schema shape);
    // the round trip through serde is lossless for utoipa's types.
    if let Ok(mut value) = serde_json::to_value(&*doc) {
        add_text_patterns(&mut value);
        if let Ok(done) = serde_json::from_value(value) {
            *doc = done;
        }
    }
}

fn add_text_patterns(doc: &mut serde_json::Value) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(|s| s.as_object_mut())
    {
        for (name, schema) in schemas.iter_mut() {
            // Only schemas a request can carry; responses and problems are the server's.
            if name != "Problem" {
                pattern_strings(schema, BODY_TEXT_PATTERN);
            }
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut() {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            if let Some(body) = op.pointer_mut("/requestBody/content") {
                for content in body
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|c| c.values_mut())
                {
                    if let Some(schema) = content.get_mut("schema") {
                        pattern_strings(schema, BODY_TEXT_PATTERN);
                    }
                }
            }
            for param in op
                .get_mut("parameters")
                .and_then(|p| p.as_array_mut())
                .into_iter()
                .flatten()
            {
                if let Some(schema) = param.get_mut("schema") {
                    pattern_strings(schema, PARAM_TEXT_PATTERN);
                }
            }
        }
    }
}

/// Give every free-text string schema below `schema` the `pattern`.
fn pattern_strings(schema: &mut serde_json::Value, pattern: &str) {
    use serde_json::Value;
    let Some(obj) = schema.as_object_mut() else {
        if let Some(items) = schema.as_array_mut() {
            for s in items {
                pattern_strings(s, pattern);
            }
        }
        return;
    };
    let is_string = match obj.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    // `format: password` only tells a UI to mask the field.
    let constrained = ["pattern", "enum", "const"]
        .iter()
        .any(|k| obj.contains_key(*k))
        || obj
            .get("format")
            .is_some_and(|f| f.as_str() != Some("password"));
    if is_string && !constrained {
        obj.insert("pattern".to_owned(), Value::from(pattern));
    }
    for key in [
        "properties",
        "items",
        "oneOf",
        "anyOf",
        "allOf",
        "additionalProperties",
    ] {
        match obj.get_mut(key) {
            Some(Value::Object(props)) if key == "properties" => {
                for p in props.values_mut() {
                    pattern_strings(p, pattern);
                }
            }
            Some(v) => pattern_strings(v, pattern),
            None => {}
        }
    }
}

fn complete_operations(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let api = path.starts_with("/api/");
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(op, api);
        }
    }
}

fn complete_operation(op: &mut Operation, api: bool) {
    let params_in = |place: ParameterIn| {
        op.parameters.iter().flatten().any(|p| match p {
            RefOr::T(p) => {
                std::mem::discriminant(&p.parameter_in) == std::mem::discriminant(&place)
            }
            RefOr::Ref(_) => false,
        })
    };
    let has_query = params_in(ParameterIn::Query);
    let has_path = params_in(ParameterIn::Path);
    let public = op.security.as_ref().is_none_or(Vec::is_empty);
    let mut has_body = false;
    if let Some(RefOr::T(body)) = &mut op.request_body {
        has_body = true;
        for content in body.content.values_mut() {
            if let RefOr::T(content) = content {
                strip_null(&mut content.schema);
            }
        }
    }
    // Every error an operation lists itself (`(status = 409, description = "slug_taken")`)
    // carries the problem body: handlers name the status and the codes, never the body.
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(response) = response
            && (status.starts_with('4') || status.starts_with('5'))
            && response.content.is_empty()
        {
            *response = match problem(&response.description) {
                RefOr::T(done) => done,
                RefOr::Ref(_) => continue,
            };
        }
    }
    let mut add = |status: &str, why: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(why));
    };
    if has_body {
        add("400", "malformed_json: the body is not valid JSON");
        add("413", "payload_too_large");
        add(
            "415",
            "unsupported_media_type: the body is not of the documented content type",
        );
        add(
            "422",
            "invalid_body (not an object, a field of the wrong type, an unknown field, a \
             control character; `errors` names the field) or validation_failed",
        );
    }
    if !has_body {
        add(
            "422",
            "invalid_body: this operation takes no request body (only an empty one, or `{}`)",
        );
    }
    if has_query {
        add(
            "400",
            "invalid_query: a malformed or unknown parameter, or a control character",
        );
    }
    if has_path {
        add("404", "not_found");
    }
    // Every /api route is resolved against the Host first.
    if api {
        add("400", "invalid_host: the Host header is not a host name");
        add(
            "403",
            "tenant_suspended: the company of this host is suspended",
        );
        add(
            "404",
            "tenant_not_found (no company at this host), or tenant_required (a company route \
             called on the platform host)",
        );
    }
    if !public {
        add(
            "401",
            "unauthorized: no, an invalid or an expired token; session_revoked",
        );
    }
    add("429", "too_many_requests (per client IP); see Retry-After");
    add(
        "503",
        "overloaded, database_busy, database_unavailable or request_timeout; see Retry-After",
    );
}

/// `oneOf: [X, {type: null}]` → `X`.
fn strip_null(schema: &mut Option<RefOr<Schema>>) {
    let Some(RefOr::T(Schema::OneOf(one))) = schema else {
        return;
    };
    let mut kept = one.items.iter().filter(|s| !is_null(s));
    if let (Some(only), None) = (kept.next(), kept.next()) {
        *schema = Some(only.clone());
    }
}

fn is_null(s: &RefOr<Schema>) -> bool {
    serde_json::to_value(s).is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("null"))
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}
