//! The HTTP client EC2 mutations go through: the SDK's own client has no place for a
//! socket-level check, so mutations use this one, whose every connection is a
//! [`crate::fence::socket::GatedIo`] (TLS runs on top of it, so each TLS record is checked too). Reads keep the
//! SDK's default client: a deposed leader may still look.

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::body::SdkBody;

use crate::fence::socket::{GatedClient, Proxies, WriteGate, gated_client};

/// An SDK [`HttpClient`] whose connections write only while their [`WriteGate`] is open.
#[derive(Clone)]
pub struct GatedHttpClient {
    client: GatedClient<SdkBody>,
}

impl std::fmt::Debug for GatedHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatedHttpClient")
    }
}

impl GatedHttpClient {
    pub fn new(gate: WriteGate, connect_timeout: Duration) -> std::io::Result<Self> {
        Ok(GatedHttpClient {
            client: gated_client(gate, connect_timeout, Proxies::None)?,
        })
    }
}

impl HttpClient for GatedHttpClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for GatedHttpClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        HttpConnectorFuture::new(async move {
            let response = sent.await.map_err(|e| ConnectorError::io(e.into()))?;
            Response::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}
