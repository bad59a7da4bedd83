//! Accounts and authorization: roles, password hashing, tokens, the extractors that declare each
//! route's rule, and login throttling.

pub mod accounts;
pub mod model;
pub mod password;
pub mod principal;
pub mod routes;
pub mod service;
pub mod throttle;
pub mod token;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use principal::{AdminUser, Principal, StaffUser};

/// What a user may do. Staff run the shop; admins also manage users; customers see their own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Staff,
    Customer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Customer => "customer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "staff" => Some(Role::Staff),
            "customer" => Some(Role::Customer),
            _ => None,
        }
    }

    /// Staff and admins work for the shop.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Admin | Role::Staff)
    }
}
