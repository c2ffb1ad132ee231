//! Roles. Casbin decides *may this role do this action on this kind of resource*; row-level
//! security decides *which rows*. This module holds the closed set of roles shared by both.

use serde::{Deserialize, Serialize};

pub mod enforcer;
pub use enforcer::{Decision, Rbac};

/// The five roles of DESIGN §2. The set is closed: role names reach SQL only through
/// [`Role::as_str`], which is why they can be placed in the request's context statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PlatformAdmin,
    TenantAdmin,
    Hr,
    Practitioner,
    Employee,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::Hr,
        Role::Practitioner,
        Role::Employee,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::Hr => "hr",
            Role::Practitioner => "practitioner",
            Role::Employee => "employee",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Roles are read from the database typed (`roles AS "roles: Vec<Role>"`): the columns are
/// `text`/`text[]` closed by CHECK constraints, decoded here. A name outside the five is a
/// decode error — refused and logged where the query fails — never silently dropped.
impl sqlx::Type<sqlx::Postgres> for Role {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl sqlx::postgres::PgHasArrayType for Role {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
    }

    fn array_compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Role {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let name = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Role::parse(name).ok_or_else(|| {
            tracing::error!(role = %name.chars().take(40).collect::<String>(), "unknown role read from the database");
            format!("unknown role `{}`", name.chars().take(40).collect::<String>()).into()
        })
    }
}

/// Role names for a `text[]` parameter.
pub fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}
