//! The cloud flags shared by `run` and `plan`, and building the provider from them.

use std::sync::Arc;

use anyhow::{Context, bail};
use ipnet::IpNet;

use cni_cloud_providers::CloudProvider;
use cni_cloud_providers::aws::{AwsConfig, AwsProvider};
use cni_cloud_providers::azure::credential::CredentialSource;
use cni_cloud_providers::azure::{AzureConfig, AzureProvider};
use cni_cloud_providers::pacing::PacingConfig;

use crate::reconcile::ReconcilerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloudKind {
    Aws,
    Azure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AzureCredential {
    /// Workload identity when its token file is present, else managed identity.
    Auto,
    ManagedIdentity,
    WorkloadIdentity,
    /// AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET from the environment.
    ClientSecret,
    AzureCli,
}

/// Parse one CIDR; host bits must be clear (a typo there usually means a wrong prefix).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let part = text.trim();
    let net: IpNet = part
        .parse()
        .map_err(|_| format!("{part:?} is not a CIDR (e.g. 10.244.0.0/16 or fd00:10:244::/56)"))?;
    if net.trunc() != net {
        return Err(format!(
            "{part:?} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

#[derive(Debug, Clone, clap::Args)]
pub struct CloudArgs {
    /// Which cloud's route tables to program.
    #[arg(long, env = "CNI_CLOUD_CLOUD", value_enum)]
    pub cloud: CloudKind,
    /// The cluster's name: AWS tables and instances carry kubernetes.io/cluster/<name>;
    /// on Azure it is the default route-name prefix.
    #[arg(long, env = "CNI_CLOUD_CLUSTER_NAME")]
    pub cluster_name: String,
    /// The cluster's pod CIDRs (kube-controller-manager --cluster-cidr), comma separated.
    #[arg(long, env = "CNI_CLOUD_CLUSTER_CIDRS", value_delimiter = ',', value_parser = parse_cidr, required = true)]
    pub cluster_cidrs: Vec<IpNet>,
    /// Route tables to manage, comma separated. AWS: rtb-… ids (default: every table
    /// tagged kubernetes.io/cluster/<name>). Azure (required): full ARM ids or
    /// <resource group>/<name>.
    #[arg(long, env = "CNI_CLOUD_ROUTE_TABLES", value_delimiter = ',')]
    pub route_tables: Vec<String>,
    /// Routes per table (per family on AWS); default: the cloud's default quota (AWS 50,
    /// Azure 400). Set it to your raised quota.
    #[arg(long, env = "CNI_CLOUD_ROUTE_LIMIT")]
    pub route_limit: Option<u32>,
    /// Share of the account's API rate limits this controller may use (0 < share ≤ 1).
    #[arg(long, env = "CNI_CLOUD_API_SHARE", default_value_t = 1.0)]
    pub api_share: f64,
    /// AWS region (default: AWS_REGION).
    #[arg(long, env = "CNI_CLOUD_AWS_REGION")]
    pub aws_region: Option<String>,
    /// EC2 endpoint override (a mock or a VPC endpoint).
    #[arg(long, env = "CNI_CLOUD_AWS_ENDPOINT")]
    pub aws_endpoint: Option<String>,
    /// Azure subscription (default: taken from the route table ids).
    #[arg(long, env = "CNI_CLOUD_AZURE_SUBSCRIPTION_ID")]
    pub azure_subscription_id: Option<String>,
    /// ARM endpoint.
    #[arg(
        long,
        env = "CNI_CLOUD_AZURE_ENDPOINT",
        default_value = "https://management.azure.com"
    )]
    pub azure_endpoint: String,
    /// Azure route-name prefix that marks this cluster's routes (default: the cluster name).
    #[arg(long, env = "CNI_CLOUD_AZURE_ROUTE_PREFIX")]
    pub azure_route_prefix: Option<String>,
    /// Where the Azure token comes from.
    #[arg(long, env = "CNI_CLOUD_AZURE_CREDENTIAL", value_enum, default_value_t = AzureCredential::Auto)]
    pub azure_credential: AzureCredential,
    /// Run the controller's pacing and retry delays this many times faster: only for a
    /// time-scaled mock cloud in tests; production leaves it at 1.
    #[arg(long, env = "CNI_CLOUD_TIME_SCALE", default_value_t = 1.0, hide = true)]
    pub time_scale: f64,
    /// Deletion guard: hold back a pass deleting more than this share of our routes…
    #[arg(long, env = "CNI_CLOUD_GUARD_SHARE", default_value_t = 0.5)]
    pub guard_share: f64,
    /// …and more than this many routes, unless the node list is complete.
    #[arg(long, env = "CNI_CLOUD_GUARD_MIN", default_value_t = 5)]
    pub guard_min: usize,
    /// How long discovered route tables and node → interface lookups are trusted before
    /// they are read again (each node's entry expires at its own 0.75–1.25 × this, so
    /// refreshes spread out). Shorter: a replaced instance is found sooner, at more reads.
    #[arg(long, env = "CNI_CLOUD_DISCOVERY_TTL", default_value = "10m", value_parser = crate::kube::args::parse_duration)]
    pub discovery_ttl: std::time::Duration,
}

impl CloudArgs {
    pub fn reconciler_config(&self, dry_run: bool) -> anyhow::Result<ReconcilerConfig> {
        let config = ReconcilerConfig {
            cluster_cidrs: self.cluster_cidrs.clone(),
            guard_share: self.guard_share,
            guard_min: self.guard_min,
            dry_run,
            discovery_ttl: self.discovery_ttl,
            ..Default::default()
        };
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    fn pacing(&self) -> PacingConfig {
        PacingConfig {
            share: self.api_share,
            time_scale: self.time_scale,
        }
    }

    pub async fn provider(&self) -> anyhow::Result<Arc<dyn CloudProvider>> {
        if self.cluster_name.trim().is_empty() {
            bail!("--cluster-name (CNI_CLOUD_CLUSTER_NAME) must not be empty");
        }
        self.pacing().validate().map_err(anyhow::Error::msg)?;
        match self.cloud {
            CloudKind::Aws => {
                let region = self
                    .aws_region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .filter(|r| !r.is_empty())
                    .context(
                        "no AWS region: set --aws-region, CNI_CLOUD_AWS_REGION or AWS_REGION",
                    )?;
                let mut config = AwsConfig::new(&self.cluster_name, region);
                config.endpoint = self.aws_endpoint.clone();
                config.table_ids = self.route_tables.clone();
                if let Some(limit) = self.route_limit {
                    config.route_limit = limit;
                }
                config.pacing = self.pacing();
                config.retry = config.retry.scaled(self.time_scale);
                let provider = AwsProvider::new(config).await?;
                Ok(Arc::new(provider))
            }
            CloudKind::Azure => {
                if self.route_tables.is_empty() {
                    bail!(
                        "Azure needs --route-tables (CNI_CLOUD_ROUTE_TABLES): the route tables of the node subnets"
                    );
                }
                let subscription = match &self.azure_subscription_id {
                    Some(s) => s.clone(),
                    None => subscription_of(&self.route_tables).context(
                        "no Azure subscription: give full route table ids or --azure-subscription-id",
                    )?,
                };
                let prefix = self
                    .azure_route_prefix
                    .clone()
                    .unwrap_or_else(|| self.cluster_name.clone());
                let mut config =
                    AzureConfig::new(&subscription, self.route_tables.clone(), &prefix);
                config.endpoint = self.azure_endpoint.clone();
                if let Some(limit) = self.route_limit {
                    config.route_limit = limit;
                }
                config.pacing = self.pacing();
                config.retry = config.retry.scaled(self.time_scale);
                let tokens = self.azure_credential_source()?.build()?;
                Ok(Arc::new(AzureProvider::new(config, tokens)?))
            }
        }
    }

    fn azure_credential_source(&self) -> anyhow::Result<CredentialSource> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(match self.azure_credential {
            AzureCredential::Auto if env("AZURE_FEDERATED_TOKEN_FILE").is_some() => {
                CredentialSource::WorkloadIdentity
            }
            AzureCredential::Auto | AzureCredential::ManagedIdentity => {
                CredentialSource::ManagedIdentity {
                    client_id: env("AZURE_CLIENT_ID"),
                }
            }
            AzureCredential::WorkloadIdentity => CredentialSource::WorkloadIdentity,
            AzureCredential::ClientSecret => CredentialSource::ClientSecret {
                tenant_id: env("AZURE_TENANT_ID").context("AZURE_TENANT_ID is not set")?,
                client_id: env("AZURE_CLIENT_ID").context("AZURE_CLIENT_ID is not set")?,
                secret: env("AZURE_CLIENT_SECRET").context("AZURE_CLIENT_SECRET is not set")?,
            },
            AzureCredential::AzureCli => CredentialSource::AzureCli,
        })
    }
}

/// The subscription of the first full ARM id in the list.
fn subscription_of(tables: &[String]) -> Option<String> {
    tables.iter().find_map(|t| {
        let mut segs = t.trim().trim_start_matches('/').split('/');
        match (segs.next(), segs.next()) {
            (Some(s), Some(sub)) if s.eq_ignore_ascii_case("subscriptions") && !sub.is_empty() => {
                Some(sub.to_owned())
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_lists_are_validated() {
        assert_eq!(
            parse_cidr(" fd00:10:244::/56").unwrap(),
            "fd00:10:244::/56".parse::<IpNet>().unwrap()
        );
        assert!(
            parse_cidr("10.244.0.1/16")
                .unwrap_err()
                .contains("10.244.0.0/16")
        );
        assert!(parse_cidr("banana").is_err());
    }

    #[test]
    fn subscription_comes_from_full_ids() {
        let ids = vec![
            "rg/rt".to_owned(),
            "/subscriptions/abc/resourceGroups/rg/providers/Microsoft.Network/routeTables/x"
                .to_owned(),
        ];
        assert_eq!(subscription_of(&ids).as_deref(), Some("abc"));
        assert_eq!(subscription_of(&ids[..1]), None);
    }
}
