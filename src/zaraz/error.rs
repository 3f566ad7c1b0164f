//! The Zaraz sync's error enum and its mapping to an HTTP status and a stable code. Every message
//! names what to fix (the variable, the trigger, the Cloudflare answer); none carries a secret.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ZarazError {
    /// A setting the sync needs is absent.
    #[error("{variable} is not set: the Zaraz sync needs it")]
    NotConfigured { variable: &'static str },
    /// Cloudflare answered 401/403: the token is wrong, expired or lacks the Zaraz permission.
    #[error("Cloudflare rejected CLOUDFLARE_API_TOKEN (HTTP {status}): check the token and that it has the Zaraz Edit or Zaraz Admin permission on this zone")]
    Unauthorized { status: u16 },
    /// Cloudflare failed or refused in a way a retry here does not fix.
    #[error("Cloudflare Zaraz API: {0}")]
    Cloudflare(String),
    /// The sync ran out of attempts or re-plans and restored (or could not restore) the
    /// configuration it started from; the full report rides along for the caller.
    #[error("{message}")]
    Failed { message: String, report: Box<Value> },
    /// Someone else kept editing what the sync touches: it stopped rather than overwrite them.
    #[error("concurrent edit: {0}")]
    Conflict(String),
    /// Writing would send secret variables without their values to a zone known to wipe them.
    #[error("refusing to write: secret variable(s) {} would be sent without their value (the export that carries it is unavailable, e.g. in the preview workflow) and this zone may wipe such secrets; sync in the realtime workflow, or state that the zone keeps them with POST /admin/zaraz/secret-handling {{\"keeps_secrets\": true}}", .variables.join(", "))]
    SecretsAtRisk { variables: Vec<String> },
    /// The checkpoint store could not be read, and what it remembers decides whether writing is safe.
    #[error("the store holding the Zaraz checkpoint is unavailable: {0}")]
    Store(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ZarazError {
    pub fn status(&self) -> u16 {
        match self {
            ZarazError::NotConfigured { .. } | ZarazError::Store(_) => 503,
            ZarazError::Unauthorized { .. } | ZarazError::Cloudflare(_) | ZarazError::Failed { .. } => 502,
            ZarazError::Conflict(_) | ZarazError::SecretsAtRisk { .. } => 409,
            ZarazError::InvalidRequest(_) => 400,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ZarazError::NotConfigured { .. } => "not_configured",
            ZarazError::Unauthorized { .. } => "cloudflare_unauthorized",
            ZarazError::Cloudflare(_) | ZarazError::Failed { .. } => "cloudflare_error",
            ZarazError::Conflict(_) => "conflict",
            ZarazError::SecretsAtRisk { .. } => "secrets_at_risk",
            ZarazError::Store(_) => "store_unavailable",
            ZarazError::InvalidRequest(_) => "invalid_request",
        }
    }

    /// The sync report of a failed run (chunks, verification, rollback), when there is one.
    pub fn report(&self) -> Option<&Value> {
        match self {
            ZarazError::Failed { report, .. } => Some(report),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases: Vec<(ZarazError, u16, &str)> = vec![
            (ZarazError::NotConfigured { variable: "CLOUDFLARE_ZONE_ID" }, 503, "not_configured"),
            (ZarazError::Unauthorized { status: 403 }, 502, "cloudflare_unauthorized"),
            (ZarazError::Cloudflare("x".into()), 502, "cloudflare_error"),
            (ZarazError::Conflict("x".into()), 409, "conflict"),
            (ZarazError::InvalidRequest("x".into()), 400, "invalid_request"),
            (ZarazError::SecretsAtRisk { variables: vec!["a".into()] }, 409, "secrets_at_risk"),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status(), e.code()), (status, code), "{e}");
        }
        assert!(ZarazError::Unauthorized { status: 401 }.to_string().contains("CLOUDFLARE_API_TOKEN"));
        assert!(ZarazError::NotConfigured { variable: "CLOUDFLARE_ZONE_ID" }.to_string().contains("CLOUDFLARE_ZONE_ID"));
    }
}
