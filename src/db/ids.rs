//! Typed ids: a `TenantId` can never be passed where a `UserId` is expected.
//!
//! Ids are UUIDv7, made in the application so a row's id is known before insert (it is part of
//! the encryption AAD later) and so indexes stay append-friendly.

use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

typed_id!(
    /// A tenant (company).
    TenantId
);
typed_id!(
    /// A global user identity.
    UserId
);
typed_id!(
    /// A person's membership in one tenant.
    MembershipId
);
typed_id!(
    /// A login session (the refresh-token family; the `sid` claim).
    SessionId
);
typed_id!(
    /// An invitation to join a company (the first part of its token).
    InvitationId
);

impl TenantId {
    /// The platform tenant ("tenant zero"): requests on the platform host run in its context,
    /// so platform admins' sessions and mail are isolated from every company by the same
    /// row-level security. No Host resolves to it (its slug is reserved).
    pub const PLATFORM: Self = Self(Uuid::nil());

    pub fn is_platform(&self) -> bool {
        self.0.is_nil()
    }
}
