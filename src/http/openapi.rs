//! The answers every operation shares, written into the OpenAPI document once, from the same
//! rules the shared extractors and middleware enforce (so a client or a fuzzer can tell valid
//! from invalid without reading the code).
//!
//! Invariants (checked by `tests/api/openapi.rs`): an operation with a request body lists 400
//! (`malformed_json`), 413, 415 and 422 (`invalid_body`, `validation_failed`); one with query
//! parameters lists 400 (`invalid_query`); one with path parameters lists 404; one that needs
//! a bearer token lists 401; every operation lists 429 (per-IP throttle) and 503 (load shedding,
//! database unavailable, request timeout). A request body is a JSON object, never `null`: the
//! `null` alternative that utoipa writes for an optional body is removed.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Complete every operation of `doc` (see the module header).
pub fn complete(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
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
            complete_operation(op);
        }
    }
}

fn complete_operation(op: &mut Operation) {
    let params_in = |place: ParameterIn| {
        op.parameters.iter().flatten().any(|p| match p {
            RefOr::T(p) => std::mem::discriminant(&p.parameter_in) == std::mem::discriminant(&place),
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
    if has_query {
        add(
            "400",
            "invalid_query: a malformed or unknown parameter, or a control character",
        );
    }
    if has_path {
        add("404", "not_found");
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
