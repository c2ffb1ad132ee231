//! Tenant domain types: the declarative file (`tenants/<slug>.toml`), its validated form, and
//! the public profile served to login screens.
//!
//! Invariants: a [`TenantSpec`] only exists validated; every validation error names the field
//! (dotted path) so `serein tenants apply` can name file and field.

use serde::{Deserialize, Serialize};

/// Names that may never be a tenant slug: they are, or may become, platform hosts.
pub const RESERVED_SLUGS: &[&str] = &[
    "admin", "api", "app", "assets", "auth", "cdn", "docs", "help", "mail", "metrics", "platform",
    "public", "serein", "static", "status", "support", "www",
];

/// Commercial plan. Seats and allowance defaults per plan arrive with the platform API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Starter,
    Standard,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Starter => "starter",
            Plan::Standard => "standard",
            Plan::Enterprise => "enterprise",
        }
    }
}

/// Whether a tenant is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// Supported interface and e-mail languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Locale {
    En,
    Fr,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Fr => "fr",
        }
    }
}

/// `tenants/<slug>.toml` as written by an operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Optional; when present it must equal the file name's stem.
    pub slug: Option<String>,
    pub name: String,
    pub plan: Plan,
    #[serde(default = "default_status")]
    pub status: TenantStatus,
    #[serde(default = "default_locale")]
    pub locale: Locale,
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Consultations per employee per calendar year.
    #[serde(default = "default_allowance")]
    pub allowance: i32,
    /// Browser origins allowed by CORS for this tenant.
    #[serde(default)]
    pub web_origins: Vec<String>,
    #[serde(default)]
    pub signup: SignupFile,
    #[serde(default)]
    pub privacy: PrivacyFile,
    #[serde(default)]
    pub branding: Branding,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupFile {
    /// E-mail domains allowed to self-register as employees; empty = self-sign-up closed.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyFile {
    #[serde(default = "default_min_cohort")]
    pub min_cohort: i32,
}

impl Default for PrivacyFile {
    fn default() -> Self {
        Self {
            min_cohort: default_min_cohort(),
        }
    }
}

/// Look of the tenant's login and app screens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_color: Option<String>,
    /// An `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
}

fn default_status() -> TenantStatus {
    TenantStatus::Active
}
fn default_locale() -> Locale {
    Locale::En
}
fn default_time_zone() -> String {
    "UTC".to_owned()
}
fn default_allowance() -> i32 {
    6
}
fn default_min_cohort() -> i32 {
    5
}

/// A validated tenant declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    pub slug: String,
    pub name: String,
    pub plan: Plan,
    pub status: TenantStatus,
    pub locale: Locale,
    pub time_zone: String,
    pub allowance: i32,
    pub min_cohort: i32,
    pub allowed_email_domains: Vec<String>,
    pub web_origins: Vec<String>,
    pub branding: Branding,
}

/// A field that failed validation: dotted path and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub field: String,
    pub reason: String,
}

fn spec_err(field: &str, reason: impl Into<String>) -> SpecError {
    SpecError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Is `s` a valid tenant slug (a lower-case DNS label, not reserved)?
pub fn parse_slug(s: &str) -> Result<String, String> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if s.is_empty() || s.len() > 63 || !ok_chars || s.starts_with('-') || s.ends_with('-') {
        return Err(format!(
            "{s:?} is not a lower-case DNS label (a-z, 0-9, inner hyphens, 1-63 characters)"
        ));
    }
    if RESERVED_SLUGS.contains(&s) {
        return Err(format!("{s:?} is reserved"));
    }
    Ok(s.to_owned())
}

fn valid_email_domain(d: &str) -> bool {
    d.contains('.') && crate::config::valid_domain(d)
}

fn valid_origin(o: &str) -> bool {
    match url::Url::parse(o) {
        Ok(u) => {
            (u.scheme() == "https" || u.scheme() == "http")
                && u.host_str().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none()
                && u.path() == "/"
                && !o.ends_with('/')
                && u.origin().ascii_serialization() == o
        }
        Err(_) => false,
    }
}

fn valid_color(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c.bytes().skip(1).all(|b| b.is_ascii_hexdigit())
}

impl TenantSpec {
    /// Validate a file's content for the slug given by its file name.
    pub fn parse(file_slug: &str, f: TenantFile) -> Result<Self, Vec<SpecError>> {
        let mut errs = Vec::new();
        let slug = match parse_slug(file_slug) {
            Ok(s) => s,
            Err(reason) => {
                errs.push(spec_err("slug (file name)", reason));
                String::new()
            }
        };
        if let Some(declared) = &f.slug
            && declared != file_slug
        {
            errs.push(spec_err(
                "slug",
                format!("{declared:?} does not match the file name {file_slug:?}"),
            ));
        }
        let name = f.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            errs.push(spec_err("name", "must be 1-200 printable characters"));
        }
        if f.time_zone.is_empty()
            || f.time_zone.len() > 64
            || !f
                .time_zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        {
            errs.push(spec_err("time_zone", "must be an IANA time zone name"));
        }
        if !(0..=100).contains(&f.allowance) {
            errs.push(spec_err("allowance", "must be between 0 and 100"));
        }
        if !(3..=1000).contains(&f.privacy.min_cohort) {
            errs.push(spec_err(
                "privacy.min_cohort",
                "must be between 3 and 1000 (smaller cells would identify people)",
            ));
        }
        let mut domains = Vec::new();
        for (i, d) in f.signup.allowed_email_domains.iter().enumerate() {
            let d = d.trim().to_ascii_lowercase();
            if !valid_email_domain(&d) {
                errs.push(spec_err(
                    &format!("signup.allowed_email_domains[{i}]"),
                    format!("{d:?} is not a domain name"),
                ));
            } else if !domains.contains(&d) {
                domains.push(d);
            }
        }
        let mut origins = Vec::new();
        for (i, o) in f.web_origins.iter().enumerate() {
            if !valid_origin(o) {
                errs.push(spec_err(
                    &format!("web_origins[{i}]"),
                    format!("{o:?} is not an origin (scheme://host[:port], no path)"),
                ));
            } else if !origins.contains(o) {
                origins.push(o.clone());
            }
        }
        let b = &f.branding;
        if let Some(n) = &b.display_name
            && (n.trim().is_empty() || n.chars().count() > 80)
        {
            errs.push(spec_err("branding.display_name", "must be 1-80 characters"));
        }
        if let Some(c) = &b.primary_color
            && !valid_color(c)
        {
            errs.push(spec_err("branding.primary_color", "must be #RRGGBB"));
        }
        if let Some(u) = &b.logo_url
            && !url::Url::parse(u).is_ok_and(|u| u.scheme() == "https")
        {
            errs.push(spec_err("branding.logo_url", "must be an https:// URL"));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            slug,
            name,
            plan: f.plan,
            status: f.status,
            locale: f.locale,
            time_zone: f.time_zone,
            allowance: f.allowance,
            min_cohort: f.privacy.min_cohort,
            allowed_email_domains: domains,
            web_origins: origins,
            branding: f.branding,
        })
    }
}

/// What a login or sign-up screen needs to know about the tenant of its host. Public: it holds
/// nothing about people.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantProfile {
    pub slug: String,
    pub name: String,
    pub locale: String,
    pub time_zone: String,
    pub branding: Branding,
    /// Whether employees may register themselves (with an allowed e-mail domain).
    pub self_signup: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn file(toml_text: &str) -> TenantFile {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn slugs() {
        assert!(parse_slug("acme").is_ok());
        assert!(parse_slug("acme-2").is_ok());
        for bad in [
            "",
            "-a",
            "a-",
            "Acme",
            "a.b",
            "a_b",
            "www",
            "api",
            &"a".repeat(64),
        ] {
            assert!(parse_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_fields() {
        let f = file(
            r##"name = "X"
plan = "standard"
allowance = 500
web_origins = ["https://x.example/path"]
[privacy]
min_cohort = 1
[branding]
primary_color = "red"
"##,
        );
        let errs = TenantSpec::parse("x", f).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "allowance",
                "privacy.min_cohort",
                "web_origins[0]",
                "branding.primary_color"
            ]
        );
    }

    #[test]
    fn origins() {
        assert!(valid_origin("https://app.acme.example"));
        assert!(valid_origin("http://localhost:3000"));
        assert!(!valid_origin("https://app.acme.example/"));
        assert!(!valid_origin("https://u:p@x.example"));
        assert!(!valid_origin("javascript:alert(1)"));
    }
}
