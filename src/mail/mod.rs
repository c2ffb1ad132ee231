//! Transactional e-mail (outbox + worker). The outbox, templates and worker arrive with the
//! mail branch; this file fixes the interface the rest of the code calls.

use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::db::TenantId;
use crate::error::AppError;
use crate::tenants::model::Locale;

/// What to send; rendered by templates in the recipient's locale.
#[derive(Debug, Clone)]
pub enum Message {
    VerifyEmail {
        link: String,
    },
    PasswordReset {
        link: String,
        expires_in_minutes: u32,
    },
    AccountLocked {
        until: OffsetDateTime,
        reset_link: String,
    },
    Invitation {
        link: String,
        tenant_name: String,
        inviter_name: Option<String>,
        expires_in_days: u32,
    },
    AccountExists {
        login_link: String,
        reset_link: String,
    },
}

/// Queue a message in the caller's transaction (sent only if it commits).
pub async fn enqueue(
    _conn: &mut PgConnection,
    _tenant: TenantId,
    _to: &str,
    _locale: Locale,
    _message: &Message,
    _now: OffsetDateTime,
) -> Result<(), AppError> {
    Err(AppError::Internal("mail outbox not merged yet".into()))
}
