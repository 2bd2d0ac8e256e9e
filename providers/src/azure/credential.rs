//! Where the ARM bearer token comes from: one small trait, implemented by the
//! `azure_identity` credentials (managed identity, workload identity, client secret,
//! Azure CLI) and by a static token for tests against the mock.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::{Secret, TokenCredential};

use crate::{CloudError, ErrorKind};

/// The scope of Azure Resource Manager tokens.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// A bearer token. Its `Debug` never shows the value, so it cannot end up in a log line.
#[derive(Clone)]
pub struct BearerToken(Secret);

impl BearerToken {
    pub fn new(token: impl Into<String>) -> Self {
        BearerToken(Secret::new(token.into()))
    }

    /// The value for the `Authorization` header; never log it.
    pub(crate) fn header_value(&self) -> String {
        format!("Bearer {}", self.0.secret())
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Supplies ARM tokens; implementations cache and refresh as they see fit.
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    async fn token(&self) -> Result<BearerToken, CloudError>;
}

/// A fixed token (tests, the mock, a token minted elsewhere).
#[derive(Clone)]
pub struct StaticToken(BearerToken);

impl StaticToken {
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(BearerToken::new(token))
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self) -> Result<BearerToken, CloudError> {
        Ok(self.0.clone())
    }
}

/// Any `azure_identity` credential (they cache tokens and refresh them before expiry).
#[derive(Debug, Clone)]
pub struct IdentityToken(Arc<dyn TokenCredential>);

impl IdentityToken {
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        IdentityToken(credential)
    }
}

#[async_trait]
impl TokenProvider for IdentityToken {
    async fn token(&self) -> Result<BearerToken, CloudError> {
        let token = self.0.get_token(&[ARM_SCOPE], None).await.map_err(|e| {
            // azure_core errors describe the failing step, never the secret.
            CloudError::new(ErrorKind::Permanent, "CredentialUnavailable", e.to_string())
        })?;
        Ok(BearerToken(token.token))
    }
}

/// Which credential the controller uses, as configured.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// IMDS / App Service managed identity; `client_id` picks a user-assigned identity.
    ManagedIdentity { client_id: Option<String> },
    /// AKS workload identity: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE` from the pod's environment.
    WorkloadIdentity,
    /// A service principal with a client secret.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: String,
    },
    /// `az account get-access-token` (a developer laptop).
    AzureCli,
    /// A fixed token (tests and the mock).
    Static(String),
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
            CredentialSource::WorkloadIdentity => f.write_str("WorkloadIdentity"),
            CredentialSource::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => f
                .debug_struct("ClientSecret")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            CredentialSource::AzureCli => f.write_str("AzureCli"),
            CredentialSource::Static(_) => f.write_str("Static(<redacted>)"),
        }
    }
}

impl CredentialSource {
    pub fn build(&self) -> Result<Arc<dyn TokenProvider>, CloudError> {
        let fail = |e: azure_core::Error| {
            CloudError::new(ErrorKind::Permanent, "CredentialUnavailable", e.to_string())
        };
        let credential: Arc<dyn TokenCredential> = match self {
            CredentialSource::Static(token) => {
                return Ok(Arc::new(StaticToken::new(token.clone())));
            }
            CredentialSource::ManagedIdentity { client_id } => {
                azure_identity::ManagedIdentityCredential::new(Some(
                    azure_identity::ManagedIdentityCredentialOptions {
                        user_assigned_id: client_id
                            .clone()
                            .map(azure_identity::UserAssignedId::ClientId),
                        ..Default::default()
                    },
                ))
                .map_err(fail)?
            }
            CredentialSource::WorkloadIdentity => {
                azure_identity::WorkloadIdentityCredential::new(None).map_err(fail)?
            }
            CredentialSource::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => azure_identity::ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(secret.clone()),
                None,
            )
            .map_err(fail)?,
            CredentialSource::AzureCli => {
                azure_identity::AzureCliCredential::new(None).map_err(fail)?
            }
        };
        Ok(Arc::new(IdentityToken::new(credential)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_never_show_in_debug_output() {
        let source = CredentialSource::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: "hunter2".into(),
        };
        assert!(!format!("{source:?}").contains("hunter2"));
        let provider = CredentialSource::Static("tok-123".into()).build().unwrap();
        assert!(!format!("{provider:?}").contains("tok-123"));
        let token = provider.token().await.unwrap();
        assert!(!format!("{token:?}").contains("tok-123"));
        assert_eq!(token.header_value(), "Bearer tok-123");
    }

    #[test]
    fn client_secret_credential_validates_its_input() {
        let err = CredentialSource::ClientSecret {
            tenant_id: "not a tenant!".into(),
            client_id: "c".into(),
            secret: "s".into(),
        }
        .build()
        .unwrap_err();
        assert_eq!(err.code, "CredentialUnavailable");
    }
}
