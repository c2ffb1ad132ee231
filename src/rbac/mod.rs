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
