//! Tenant domain types: the declarative file (`tenants/<slug>.toml`), its validated form, and
//! the public profile served to login screens.
//!
//! Invariants: a [`TenantSpec`] only exists validated; every validation error names the field
//! (dotted path) so `serein tenants apply` can name file and field.
//!
//! ONE model: the platform API (`/platform/tenants`) and the files share [`TenantSpec`]. An API
//! body is turned into a [`TenantFile`] and goes through the same [`TenantSpec::parse`]; a
//! PATCH is applied to the stored spec's file form ([`TenantSpec::to_file`]) and re-parsed; and
//! `serein tenants export` writes [`TenantSpec::to_file`] back as TOML. Seats omitted in a file
//! (or a create body) take the plan's default ([`Plan::default_seats`]).

use serde::{Deserialize, Serialize};

/// Names that may never be a tenant slug: they are, or may become, platform hosts.
pub const RESERVED_SLUGS: &[&str] = &[
    "admin", "api", "app", "assets", "auth", "cdn", "docs", "help", "mail", "metrics", "platform",
    "public", "serein", "static", "status", "support", "www",
];

/// Commercial plan.
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

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "starter" => Some(Self::Starter),
            "standard" => Some(Self::Standard),
            "enterprise" => Some(Self::Enterprise),
            _ => None,
        }
    }

    /// Seats (active company members plus pending invitations) when none are given.
    pub fn default_seats(self) -> i32 {
        match self {
            Plan::Starter => 50,
            Plan::Standard => 500,
            Plan::Enterprise => 5000,
        }
    }
}

/// Most seats a tenant may have (the database's CHECK agrees).
pub const MAX_SEATS: i32 = 1_000_000;

/// Whether a tenant is served. Life cycle: active ⇄ suspended; active|suspended →
/// offboarding (grace period; resume cancels) → offboarded (keys destroyed, rows purged, the
/// row kept as a tombstone so the slug is never reused). A file may declare only `active` or
/// `suspended`; the offboarding states belong to the platform API and the purge job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
    Offboarding,
    Offboarded,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Offboarding => "offboarding",
            TenantStatus::Offboarded => "offboarded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "offboarding" => Some(Self::Offboarding),
            "offboarded" => Some(Self::Offboarded),
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
    /// A locale as stored (`users.locale`, `tenants.locale`: constrained to these values);
    /// anything else reads as English.
    pub fn from_stored(s: &str) -> Self {
        Self::parse(s).unwrap_or(Self::En)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Fr => "fr",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "en" => Some(Self::En),
            "fr" => Some(Self::Fr),
            _ => None,
        }
    }
}

/// `tenants/<slug>.toml` as written by an operator (or by `serein tenants export`). Field
/// order matters for TOML output: plain values first, tables last.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Optional; when present it must equal the file name's stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// Hours before a start inside which an employee's cancellation still uses up the session
    /// (0–168, default 24).
    #[serde(default = "default_late_cancel_hours")]
    pub late_cancel_hours: i32,
    /// Seats: active company members plus pending invitations. Default: the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<i32>,
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignupFile {
    /// E-mail domains allowed to self-register as employees; empty = self-sign-up closed.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyFile {
    #[serde(default = "default_min_cohort")]
    pub min_cohort: i32,
    /// Days after a consultation's end during which its chat stays open, then is deleted.
    #[serde(default = "default_message_retention_days")]
    pub message_retention_days: i32,
}

impl Default for PrivacyFile {
    fn default() -> Self {
        Self {
            min_cohort: default_min_cohort(),
            message_retention_days: default_message_retention_days(),
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
pub fn default_locale() -> Locale {
    Locale::En
}
pub fn default_time_zone() -> String {
    "UTC".to_owned()
}
pub fn default_allowance() -> i32 {
    6
}
pub fn default_late_cancel_hours() -> i32 {
    24
}
pub fn default_min_cohort() -> i32 {
    5
}
pub fn default_message_retention_days() -> i32 {
    30
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
    pub late_cancel_hours: i32,
    pub seats: i32,
    pub min_cohort: i32,
    pub message_retention_days: i32,
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

/// Field rules shared by every writer of a tenant's settings: the files, the platform API and
/// the tenant admins' `PATCH /tenant`. Each answers the reason a value is refused.
pub mod rules {
    use super::{Branding, valid_color, valid_email_domain};

    /// A trimmed display name of 1-200 printable characters.
    pub fn name(s: &str) -> Result<String, &'static str> {
        let n = s.trim();
        if n.is_empty() || n.chars().count() > 200 || !crate::http::text::is_single_line(n) {
            return Err("must be 1-200 printable characters");
        }
        Ok(n.to_owned())
    }

    /// The shape of an IANA time zone name (whether PostgreSQL knows it is checked there).
    pub fn time_zone(tz: &str) -> Result<(), &'static str> {
        let plausible = !tz.is_empty()
            && tz.len() <= 64
            && tz
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
        if plausible {
            Ok(())
        } else {
            Err("must be an IANA time zone name")
        }
    }

    /// Days a conversation stays open after its consultation's end.
    pub fn message_retention_days(d: i32) -> Result<(), &'static str> {
        if (0..=365).contains(&d) {
            Ok(())
        } else {
            Err("must be between 0 and 365")
        }
    }

    /// The smallest cell an HR report may show.
    pub fn min_cohort(k: i32) -> Result<(), &'static str> {
        if (3..=1000).contains(&k) {
            Ok(())
        } else {
            Err("must be between 3 and 1000 (smaller cells would identify people)")
        }
    }

    /// Problems of a branding object: (field below `branding.`, reason).
    pub fn branding(b: &Branding) -> Vec<(&'static str, &'static str)> {
        let mut errs = Vec::new();
        if let Some(n) = &b.display_name
            && (n.trim().is_empty()
                || n.chars().count() > 80
                || !crate::http::text::is_single_line(n))
        {
            errs.push((
                "display_name",
                "must be 1-80 characters, no control characters or line breaks",
            ));
        }
        if let Some(c) = &b.primary_color
            && !valid_color(c)
        {
            errs.push(("primary_color", "must be #RRGGBB"));
        }
        // The URL as given is what is stored and served: it must already be in the parser's
        // form (no control characters or spaces the parser would strip or encode).
        if let Some(u) = &b.logo_url
            && !(u.len() <= 2048
                && !u.chars().any(|c| c.is_control() || c.is_whitespace())
                && url::Url::parse(u).is_ok_and(|u| u.scheme() == "https" && u.host().is_some()))
        {
            errs.push((
                "logo_url",
                "must be an https:// URL of at most 2048 characters",
            ));
        }
        errs
    }

    /// Lower-cased, de-duplicated e-mail domains, or the positions of the ones that are not
    /// domain names (with the reason).
    pub fn email_domains(domains: &[String]) -> Result<Vec<String>, Vec<(usize, String)>> {
        let mut clean: Vec<String> = Vec::new();
        let mut bad = Vec::new();
        for (i, d) in domains.iter().enumerate() {
            let d = d.trim().to_ascii_lowercase();
            if !valid_email_domain(&d) {
                bad.push((i, format!("{d:?} is not a domain name")));
            } else if !clean.contains(&d) {
                clean.push(d);
            }
        }
        if bad.is_empty() { Ok(clean) } else { Err(bad) }
    }
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
        let name = rules::name(&f.name).unwrap_or_else(|reason| {
            errs.push(spec_err("name", reason));
            String::new()
        });
        if let Err(reason) = rules::time_zone(&f.time_zone) {
            errs.push(spec_err("time_zone", reason));
        }
        if !(0..=100).contains(&f.allowance) {
            errs.push(spec_err("allowance", "must be between 0 and 100"));
        }
        if !(0..=168).contains(&f.late_cancel_hours) {
            errs.push(spec_err("late_cancel_hours", "must be between 0 and 168"));
        }
        let seats = f.seats.unwrap_or_else(|| f.plan.default_seats());
        if !(0..=MAX_SEATS).contains(&seats) {
            errs.push(spec_err(
                "seats",
                format!("must be between 0 and {MAX_SEATS}"),
            ));
        }
        if !matches!(f.status, TenantStatus::Active | TenantStatus::Suspended) {
            errs.push(spec_err(
                "status",
                "must be active or suspended (offboarding is done through the platform API)",
            ));
        }
        if let Err(reason) = rules::min_cohort(f.privacy.min_cohort) {
            errs.push(spec_err("privacy.min_cohort", reason));
        }
        if let Err(reason) = rules::message_retention_days(f.privacy.message_retention_days) {
            errs.push(spec_err("privacy.message_retention_days", reason));
        }
        let domains = rules::email_domains(&f.signup.allowed_email_domains).unwrap_or_else(|bad| {
            for (i, reason) in bad {
                errs.push(spec_err(
                    &format!("signup.allowed_email_domains[{i}]"),
                    reason,
                ));
            }
            Vec::new()
        });
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
        for (field, reason) in rules::branding(&f.branding) {
            errs.push(spec_err(&format!("branding.{field}"), reason));
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
            late_cancel_hours: f.late_cancel_hours,
            seats,
            min_cohort: f.privacy.min_cohort,
            message_retention_days: f.privacy.message_retention_days,
            allowed_email_domains: domains,
            web_origins: origins,
            branding: f.branding,
        })
    }
}

impl TenantSpec {
    /// The file form of this spec (what `serein tenants export` writes). Every field is
    /// explicit, seats included, so the file pins the state even if plan defaults change.
    pub fn to_file(&self) -> TenantFile {
        TenantFile {
            slug: Some(self.slug.clone()),
            name: self.name.clone(),
            plan: self.plan,
            status: self.status,
            locale: self.locale,
            time_zone: self.time_zone.clone(),
            allowance: self.allowance,
            late_cancel_hours: self.late_cancel_hours,
            seats: Some(self.seats),
            web_origins: self.web_origins.clone(),
            signup: SignupFile {
                allowed_email_domains: self.allowed_email_domains.clone(),
            },
            privacy: PrivacyFile {
                min_cohort: self.min_cohort,
                message_retention_days: self.message_retention_days,
            },
            branding: self.branding.clone(),
        }
    }
}

/// The API's name for a field the file model names (`privacy.min_cohort` → `min_cohort`,
/// `signup.allowed_email_domains[0]` → `allowed_email_domains[0]`).
pub fn api_field(file_field: &str) -> String {
    if file_field == "slug (file name)" {
        return "slug".to_owned();
    }
    file_field
        .strip_prefix("privacy.")
        .or_else(|| file_field.strip_prefix("signup."))
        .unwrap_or(file_field)
        .to_owned()
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
late_cancel_hours = 169
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
                "late_cancel_hours",
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
