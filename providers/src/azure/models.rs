//! Typed read views of the Microsoft.Network / Microsoft.Compute JSON we consume
//! (api-version 2024-05-01: routeTable.json, networkInterface.json; Compute 2024-07-01).
//! Writes go back as the JSON we read with only our fields changed, so properties this
//! client does not know survive a read-modify-write untouched.

use serde::Deserialize;

pub const NETWORK_API_VERSION: &str = "2024-05-01";
pub const COMPUTE_API_VERSION: &str = "2024-07-01";
/// Scale-set VM network interfaces are served by Microsoft.Network at this version only.
pub const VMSS_NIC_API_VERSION: &str = "2018-10-01";

#[derive(Debug, Clone, Deserialize)]
pub struct RouteTableView {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub properties: RouteTableProps,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTableProps {
    #[serde(default)]
    pub routes: Vec<RouteView>,
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RouteView {
    pub name: String,
    #[serde(default)]
    pub properties: RouteProps,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteProps {
    #[serde(default)]
    pub address_prefix: Option<String>,
    #[serde(default)]
    pub next_hop_type: Option<String>,
    #[serde(default)]
    pub next_hop_ip_address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NicView {
    pub id: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub properties: NicProps,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NicProps {
    #[serde(default, rename = "enableIPForwarding")]
    pub enable_ip_forwarding: Option<bool>,
    #[serde(default, rename = "ipConfigurations")]
    pub ip_configurations: Vec<IpConfigView>,
    #[serde(default)]
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IpConfigView {
    #[serde(default)]
    pub properties: IpConfigProps,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpConfigProps {
    #[serde(default, rename = "privateIPAddress")]
    pub private_ip_address: Option<String>,
    #[serde(default, rename = "privateIPAddressVersion")]
    pub private_ip_address_version: Option<String>,
    #[serde(default)]
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VmView {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub properties: VmProps,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmProps {
    #[serde(default)]
    pub network_profile: NetworkProfile,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    #[serde(default)]
    pub network_interfaces: Vec<NicReference>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NicReference {
    pub id: String,
    #[serde(default)]
    pub properties: Option<NicReferenceProps>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NicReferenceProps {
    #[serde(default)]
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListView<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
}

/// The body of an `Azure-AsyncOperation` status URL.
#[derive(Debug, Clone, Deserialize)]
pub struct AsyncOperationView {
    pub status: String,
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}
