//! Bearer tokens → roles. A fund-office token may do everything; a hospital token only touches
//! its own hospital's cases and pre-checks. No or unknown token → UNAUTHENTICATED; another
//! hospital's data → PERMISSION_DENIED.

use super::config::TokenConfig;
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    FundOffice,
    Hospital(String),
}

impl Role {
    /// Whether this role may read or write the data of `hospital_id`.
    pub fn may_access(&self, hospital_id: &str) -> bool {
        match self {
            Role::FundOffice => true,
            Role::Hospital(own) => own == hospital_id,
        }
    }

    /// PERMISSION_DENIED unless [`Role::may_access`].
    pub fn check(&self, hospital_id: &str) -> Result<(), Status> {
        if self.may_access(hospital_id) {
            return Ok(());
        }
        Err(super::errors::coded(
            tonic::Code::PermissionDenied,
            "HOSPITAL_NOT_PERMITTED",
            format!("this token may not access hospital {hospital_id:?}"),
        ))
    }
}

/// Token → role, shared by every interceptor.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Arc<HashMap<String, Role>>);

impl Tokens {
    pub fn from_config(tokens: &[TokenConfig]) -> Tokens {
        let map = tokens
            .iter()
            .map(|t| {
                let role = match &t.hospital_id {
                    Some(h) if t.role == "hospital" => Role::Hospital(h.clone()),
                    _ => Role::FundOffice,
                };
                (t.token.clone(), role)
            })
            .collect();
        Tokens(Arc::new(map))
    }
}

/// Reads `authorization: Bearer <token>` and puts the [`Role`] into the request's extensions.
pub fn interceptor(tokens: Tokens) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let Some(token) = header.strip_prefix("Bearer ").map(str::trim) else {
            return Err(super::errors::coded(
                tonic::Code::Unauthenticated,
                "TOKEN_MISSING",
                "a bearer token is required (authorization: Bearer <token>)",
            ));
        };
        let Some(role) = tokens.0.get(token).cloned() else {
            return Err(super::errors::coded(tonic::Code::Unauthenticated, "TOKEN_UNKNOWN", "the bearer token is not known"));
        };
        request.extensions_mut().insert(role);
        Ok(request)
    }
}

/// The caller's role (set by the interceptor).
pub fn role<T>(request: &Request<T>) -> Result<Role, Status> {
    request.extensions().get::<Role>().cloned().ok_or_else(|| Status::unauthenticated("no role"))
}
