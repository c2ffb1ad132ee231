//! The Casbin enforcer and the route → (resource, action) table.
//!
//! Invariants:
//! - Policies are `policies/model.conf` and `policies/policy.csv`, compiled into the binary (the
//!   files in the repository are the single source; nothing at run time can swap them).
//! - Every operation of the OpenAPI document declares its decision next to its handler, as the
//!   operation extension `x-authz: {"resource": …, "action": …}`. The table is built from that
//!   document at start-up; an operation without a decision, or naming a pair no policy line
//!   mentions, stops start-up. At request time a route missing from the table is denied.
//! - Decisions are per role; a person with several roles may act if any of them may.
//! - The enforcer sits behind a read lock: `CachedEnforcer::enforce(&self)` needs no write.
//! - The policies are fixed for the life of the process, so every route's answer for every
//!   subject (the pseudo-roles and each [`Role`]) is asked of Casbin once, at start-up, and kept
//!   with the route's [`Decision`]: the per-request gate reads a bit instead of evaluating the
//!   model (issue 10). A decision built by hand (not from the route table) still asks Casbin.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use axum::http::Method;
use casbin::{CachedEnforcer, CoreApi, DefaultModel, StringAdapter};

use super::Role;

/// Model and policy, as shipped in `policies/`.
pub const MODEL: &str = include_str!("../../policies/model.conf");
pub const POLICY: &str = include_str!("../../policies/policy.csv");

/// Subjects that are not roles of a person.
pub const ANONYMOUS: &str = "anonymous";
pub const ENROLLING: &str = "enrolling";

/// What a route does, in Casbin's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decision {
    pub resource: String,
    pub action: String,
    /// Casbin's answers for this pair, one bit per subject ([`subject_bit`]), when the
    /// decision comes from the route table; `None` for one built by hand.
    answers: Option<u16>,
}

impl Decision {
    /// A decision built by hand: every question about it goes to Casbin.
    pub fn new(resource: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            action: action.into(),
            answers: None,
        }
    }
}

/// The bit of a subject in [`Decision::answers`]: the two pseudo-roles, then the roles.
fn subject_bit(subject: &str) -> Option<u16> {
    match subject {
        ANONYMOUS => Some(1),
        ENROLLING => Some(1 << 1),
        other => Role::parse(other).map(role_bit),
    }
}

fn role_bit(role: Role) -> u16 {
    let i = Role::ALL.iter().position(|r| *r == role).unwrap_or(0);
    1 << (2 + i)
}

/// The enforcer plus the route table.
#[derive(Clone)]
pub struct Rbac {
    enforcer: Arc<RwLock<CachedEnforcer>>,
    /// Route template → method → decision (looked up per request without allocating).
    routes: Arc<HashMap<String, HashMap<Method, Decision>>>,
}

impl Rbac {
    /// Load the shipped policies and the decisions declared in `openapi`.
    pub async fn load(openapi: &utoipa::openapi::OpenApi) -> anyhow::Result<Self> {
        let model = DefaultModel::from_str(MODEL).await?;
        let enforcer = CachedEnforcer::new(model, StringAdapter::new(POLICY)).await?;
        let mut routes = route_decisions(openapi)?;
        let known = policy_pairs(POLICY);
        let mut unknown: Vec<String> = routes
            .iter()
            .flat_map(|(p, by_method)| by_method.iter().map(move |(m, d)| (m, p, d)))
            .filter(|(_, _, d)| !known.contains(&(d.resource.clone(), d.action.clone())))
            .map(|(m, p, d)| format!("{m} {p} → ({}, {})", d.resource, d.action))
            .collect();
        unknown.sort();
        if !unknown.is_empty() {
            anyhow::bail!(
                "routes declare decisions that no line of policies/policy.csv grants to anyone: {}",
                unknown.join("; ")
            );
        }
        // Ask Casbin once per (route, subject); requests read the answers.
        let subjects = [ANONYMOUS, ENROLLING]
            .into_iter()
            .chain(Role::ALL.iter().map(|r| r.as_str()));
        let subjects: Vec<&str> = subjects.collect();
        for d in routes
            .values_mut()
            .flat_map(|by_method| by_method.values_mut())
        {
            let mut answers = 0u16;
            for subject in &subjects {
                if enforcer.enforce((*subject, d.resource.as_str(), d.action.as_str()))? {
                    answers |= subject_bit(subject).unwrap_or(0);
                }
            }
            d.answers = Some(answers);
        }
        Ok(Self {
            enforcer: Arc::new(RwLock::new(enforcer)),
            routes: Arc::new(routes),
        })
    }

    /// The declared decision of a matched route.
    pub fn decision(&self, method: &Method, path: &str) -> Option<&Decision> {
        self.routes.get(path)?.get(method)
    }

    /// Every route and its decision (tests, documentation).
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &str, &Decision)> {
        self.routes
            .iter()
            .flat_map(|(p, by_method)| by_method.iter().map(move |(m, d)| (m, p.as_str(), d)))
    }

    /// May `subject` (a role name or pseudo-role) do this? Errors deny.
    pub fn allows(&self, subject: &str, d: &Decision) -> bool {
        if let (Some(answers), Some(bit)) = (d.answers, subject_bit(subject)) {
            return answers & bit != 0;
        }
        self.ask_casbin(subject, d)
    }

    fn ask_casbin(&self, subject: &str, d: &Decision) -> bool {
        match self.enforcer.read() {
            Ok(e) => e
                .enforce((subject, d.resource.as_str(), d.action.as_str()))
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Is the route public (allowed without a token)?
    pub fn is_public(&self, d: &Decision) -> bool {
        self.allows(ANONYMOUS, d)
    }

    /// May a person holding `roles` do this (any role suffices)?
    pub fn allows_roles(&self, roles: &[Role], d: &Decision) -> bool {
        match d.answers {
            Some(answers) => roles.iter().any(|r| answers & role_bit(*r) != 0),
            None => roles.iter().any(|r| self.ask_casbin(r.as_str(), d)),
        }
    }
}

/// (resource, action) pairs mentioned by `p` lines.
pub fn policy_pairs(policy: &str) -> HashSet<(String, String)> {
    policy
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("p,"))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split(',').map(str::trim).collect();
            match cols.as_slice() {
                [_, _, obj, act, ..] => Some(((*obj).to_owned(), (*act).to_owned())),
                _ => None,
            }
        })
        .collect()
}

/// Read `x-authz` of every operation.
pub fn route_decisions(
    openapi: &utoipa::openapi::OpenApi,
) -> anyhow::Result<HashMap<String, HashMap<Method, Decision>>> {
    let doc = serde_json::to_value(openapi)?;
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    let paths = doc
        .get("paths")
        .and_then(|p| p.as_object())
        .cloned()
        .unwrap_or_default();
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (m, op) in item {
            let Ok(method) = m.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            if !op.is_object() {
                continue;
            }
            let authz = op.get("x-authz");
            let field = |k: &str| {
                authz
                    .and_then(|a| a.get(k))
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            match (field("resource"), field("action")) {
                (Some(resource), Some(action)) => {
                    out.entry(path.clone())
                        .or_insert_with(HashMap::new)
                        .insert(method, Decision::new(resource, action));
                }
                _ => missing.push(format!("{} {path}", m.to_ascii_uppercase())),
            }
        }
    }
    if !missing.is_empty() {
        missing.sort();
        anyhow::bail!(
            "routes without an authorization decision (x-authz): {}",
            missing.join(", ")
        );
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn doc(authz: serde_json::Value) -> utoipa::openapi::OpenApi {
        let mut op = serde_json::json!({"responses": {}});
        if !authz.is_null() {
            op["x-authz"] = authz;
        }
        serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/api/v1/x/{id}": {"get": op}}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn undeclared_or_unknown_decisions_stop_start_up_and_unknown_pairs_deny() {
        let missing = Rbac::load(&doc(serde_json::Value::Null)).await;
        assert!(
            missing
                .err()
                .unwrap()
                .to_string()
                .contains("GET /api/v1/x/{id}")
        );
        let unknown = Rbac::load(&doc(
            serde_json::json!({"resource": "notes", "action": "steal"}),
        ))
        .await;
        assert!(
            unknown
                .err()
                .unwrap()
                .to_string()
                .contains("(notes, steal)")
        );
        let rbac = Rbac::load(&doc(
            serde_json::json!({"resource": "session", "action": "read"}),
        ))
        .await
        .unwrap();
        let d = rbac
            .decision(&Method::GET, "/api/v1/x/{id}")
            .unwrap()
            .clone();
        assert!(!rbac.is_public(&d));
        assert!(rbac.allows_roles(&[Role::Employee], &d));
        assert!(!rbac.allows(ENROLLING, &d));
        assert!(rbac.decision(&Method::POST, "/api/v1/x/{id}").is_none());
        let nothing = Decision::new("notes", "steal");
        for r in Role::ALL {
            assert!(!rbac.allows(r.as_str(), &nothing), "{r:?}");
        }
        // The answers kept with a route are Casbin's, for every subject.
        let by_hand = Decision::new(d.resource.clone(), d.action.clone());
        for subject in [ANONYMOUS, ENROLLING, "nobody"]
            .into_iter()
            .chain(Role::ALL.iter().map(|r| r.as_str()))
        {
            assert_eq!(
                rbac.allows(subject, &d),
                rbac.allows(subject, &by_hand),
                "{subject}"
            );
        }
        for r in Role::ALL {
            assert_eq!(
                rbac.allows_roles(&[r], &d),
                rbac.allows_roles(&[r], &by_hand),
                "{r:?}"
            );
        }
        // Inheritance: tenant_admin inherits hr's grants.
        let hr_only = policy_pairs("p, hr, reports, read\n");
        assert!(hr_only.contains(&("reports".into(), "read".into())));
    }
}
