//! Settings of consultations: the Jitsi deployment that hosts video and audio calls.

use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigError, Settings};

/// A Jitsi Meet deployment with JWT authentication (prosody `token` auth): the three settings
/// come together or not at all.
#[derive(Debug, Clone)]
pub struct Jitsi {
    /// `JITSI_DOMAIN`: the meeting host, e.g. `meet.example.com` (also the tokens' `sub`).
    pub domain: String,
    /// `JITSI_APP_ID`: the tokens' `iss` (prosody `app_id`).
    pub app_id: String,
    /// `JITSI_APP_SECRET`: the HS256 key shared with prosody (`app_secret`), 32 bytes or more.
    pub app_secret: SecretString,
    /// `JITSI_AUDIENCE`: the tokens' `aud` (default `jitsi`).
    pub audience: String,
}

/// Validated consultation settings.
#[derive(Debug, Clone, Default)]
pub struct ConsultationsConfig {
    /// `None`: video is not configured, `GET /consultations/{id}/video` answers 503
    /// `video_unconfigured`.
    pub jitsi: Option<Jitsi>,
}

fn host(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("must be a host name, e.g. meet.example.com".into())
    }
}

fn word(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        Ok(s.to_owned())
    } else {
        Err("must be 1–128 visible ASCII characters".into())
    }
}

impl ConsultationsConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let domain = s.opt("JITSI_DOMAIN", host)?;
        let app_id = s.opt("JITSI_APP_ID", word)?;
        let app_secret = s.secret("JITSI_APP_SECRET");
        let audience = s.get("JITSI_AUDIENCE", "jitsi".to_owned(), word)?;
        let jitsi = match (domain, app_id, app_secret) {
            (None, None, None) => None,
            (Some(domain), Some(app_id), Some(app_secret)) => {
                if app_secret.expose_secret().len() < 32 {
                    return Err(ConfigError {
                        name: "JITSI_APP_SECRET".into(),
                        reason: "must be at least 32 bytes (HS256 key)".into(),
                    });
                }
                Some(Jitsi {
                    domain,
                    app_id,
                    app_secret,
                    audience,
                })
            }
            (d, i, _) => {
                let missing = if d.is_none() {
                    "JITSI_DOMAIN"
                } else if i.is_none() {
                    "JITSI_APP_ID"
                } else {
                    "JITSI_APP_SECRET"
                };
                return Err(ConfigError {
                    name: missing.into(),
                    reason: "JITSI_DOMAIN, JITSI_APP_ID and JITSI_APP_SECRET go together".into(),
                });
            }
        };
        Ok(Self { jitsi })
    }
}
