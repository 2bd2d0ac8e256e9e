//! Forwarding: `enableIPForwarding: true` on a node's NIC, written (conditionally, through
//! [`conditional::update`]) only when it is off. Uniform scale-set NICs cannot be written
//! directly in ARM; off there is an error naming the scale set's model as the place to fix.

use serde_json::json;

use super::arm::{ArmResponse, WrittenResource};
use super::conditional::{self, Round};
use super::models::{NETWORK_API_VERSION, NicView, VMSS_NIC_API_VERSION};
use super::provider::AzureProvider;
use super::{OP_NIC_READ, OP_NIC_WRITE, OP_VMSS_NIC_READ};
use crate::fence::WriteFence;
use crate::{CloudError, ErrorKind, ForwardingChange};

impl AzureProvider {
    pub(super) async fn enable_forwarding(
        &self,
        nic_id: &str,
        fence: &dyn WriteFence,
    ) -> Result<ForwardingChange, CloudError> {
        // A stale body costs nothing but a retry: the write is conditional on its etag.
        let mut seen = self.take_seen_nic(nic_id);
        let resource = WrittenResource {
            read_op: OP_NIC_READ,
            path: nic_id,
            api_version: NETWORK_API_VERSION,
        };
        conditional::update(
            &self.arm,
            OP_NIC_WRITE,
            resource,
            self.max_write_rounds,
            fence,
            || {
                let seen = seen.take();
                async move {
                    let resp = match seen {
                        Some(resp) => resp,
                        None => self.read_nic(nic_id).await?,
                    };
                    let view: NicView = resp.parse("network interface")?;
                    if view.properties.enable_ip_forwarding == Some(true) {
                        return Ok(Round::Done(ForwardingChange::AlreadyEnabled));
                    }
                    if is_scale_set_nic(nic_id) {
                        return Err(CloudError::new(
                            ErrorKind::Permanent,
                            "ScaleSetNicForwardingDisabled",
                            format!(
                                "{nic_id} belongs to a uniform scale set: set enableIPForwarding in the scale set's networkInterfaceConfigurations (ARM does not allow writing scale-set NICs directly)"
                            ),
                        ));
                    }
                    let mut body = resp.body;
                    body["properties"]["enableIPForwarding"] = json!(true);
                    Ok(Round::Write {
                        body,
                        etag: view.etag,
                        then: ForwardingChange::Enabled,
                    })
                }
            },
        )
        .await
    }

    async fn read_nic(&self, nic_id: &str) -> Result<ArmResponse, CloudError> {
        if is_scale_set_nic(nic_id) {
            self.arm
                .get(OP_VMSS_NIC_READ, nic_id, VMSS_NIC_API_VERSION)
                .await
        } else {
            self.arm.get(OP_NIC_READ, nic_id, NETWORK_API_VERSION).await
        }
    }
}

fn is_scale_set_nic(nic_id: &str) -> bool {
    nic_id
        .to_ascii_lowercase()
        .contains("/providers/microsoft.compute/virtualmachinescalesets/")
}
