//! Request and response types of the auth routes, and their validation.
//!
//! Every request type rejects unknown fields. Passwords and tokens are `SecretString`s from the
//! moment they are parsed, so they cannot reach a log by `Debug`.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::db::{SessionId, TenantId, UserId};
use crate::error::{AppError, FieldError};
use crate::rbac::Role;

/// A normalised e-mail address (trimmed, lower case, plausible shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let e = raw.trim().to_lowercase();
        let ok = e.len() <= 254
            && !e.chars().any(|c| c.is_whitespace() || c.is_control())
            && match e.rsplit_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !local.contains('@')
                        && local.len() <= 64
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                        && !domain.contains('@')
                }
                None => false,
            };
        // What the mailer will accept, too (a sign-up must never fail later at sending).
        if ok && e.parse::<lettre::Address>().is_ok() {
            Ok(Self(e))
        } else {
            Err(AppError::Validation(vec![FieldError {
                field: "email".into(),
                reason: "is not a valid e-mail address".into(),
            }]))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(schema_with = crate::http::openapi::new_password_schema)]
    pub password: SecretString,
    /// One line, at most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub display_name: Option<String>,
    /// `en` or `fr`; defaults to the tenant's locale.
    #[serde(default)]
    #[schema(pattern = "^(en|fr)$")]
    pub locale: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(schema_with = crate::http::openapi::secret_schema)]
    pub password: SecretString,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginTotpRequest {
    #[schema(schema_with = crate::http::openapi::secret_schema)]
    pub mfa_token: SecretString,
    /// A 6-digit code from the authenticator app …
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::optional_secret_schema)]
    pub code: Option<SecretString>,
    /// … or one of the recovery codes.
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::optional_secret_schema)]
    pub recovery_code: Option<SecretString>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(schema_with = crate::http::openapi::secret_schema)]
    pub refresh_token: SecretString,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    /// Any string: the answer is 202 whatever it is (nothing tells whether it has an account).
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[schema(schema_with = crate::http::openapi::secret_schema)]
    pub token: SecretString,
    /// The new password (8–128 characters, checked after the token).
    #[schema(schema_with = crate::http::openapi::secret_schema)]
    pub password: SecretString,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    #[schema(schema_with = crate::http::openapi::secret_schema)]
    pub token: SecretString,
    /// The password chosen at sign-up (proves the account is the reader's own).
    #[schema(schema_with = crate::http::openapi::secret_schema)]
    pub password: SecretString,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpSetupRequest {
    /// The current password (required with an access token).
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::optional_secret_schema)]
    pub password: Option<SecretString>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCodeRequest {
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::optional_secret_schema)]
    pub code: Option<SecretString>,
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::optional_secret_schema)]
    pub recovery_code: Option<SecretString>,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// Always `authenticated`.
    pub status: &'static str,
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque; single use: each refresh returns a new one.
    pub refresh_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub refresh_expires_at: OffsetDateTime,
    pub session_id: SessionId,
}

/// The password step succeeded; complete with `POST /auth/login/totp`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequiredResponse {
    /// Always `mfa_required`.
    pub status: &'static str,
    pub mfa_token: String,
    pub expires_in: u64,
}

/// Accepted without telling whether the address is known.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub status: &'static str,
    pub detail: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeUser {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub locale: String,
    pub email_verified: bool,
    pub totp_enabled: bool,
    /// The person's picture (`PUT /me/avatar`), served at this path; absent without one.
    pub avatar_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeMembership {
    pub department: Option<String>,
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub user: MeUser,
    pub tenant_id: TenantId,
    /// The host this session belongs to.
    pub host: String,
    pub roles: Vec<Role>,
    pub session_id: SessionId,
    /// Absent on the platform host.
    pub membership: Option<MeMembership>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// `otpauth://totp/…` for authenticator apps.
    pub otpauth_uri: String,
    /// The same secret in base32, for manual entry.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnabledResponse {
    /// Ten single-use recovery codes, shown once.
    pub recovery_codes: Vec<String>,
}

/// Parse a locale name.
pub fn parse_locale(raw: Option<&str>) -> Result<Option<crate::tenants::model::Locale>, AppError> {
    use crate::tenants::model::Locale;
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some("en") => Ok(Some(Locale::En)),
        Some("fr") => Ok(Some(Locale::Fr)),
        Some(_) => Err(AppError::invalid("locale", "must be en or fr")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Alice@Acme.Test ").unwrap().as_str(),
            "alice@acme.test"
        );
        assert_eq!(Email::parse("a@acme.test").unwrap().domain(), "acme.test");
        for bad in [
            "",
            "a",
            "a@b",
            "@acme.test",
            "a@.acme.test",
            "a b@acme.test",
            "a@acme..test",
            "a@b@acme.test",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
