//! The HTTP client EC2 mutations go through: the SDK's own client has no place for a
//! socket-level check, so mutations use this one, whose every connection is a
//! [`GatedIo`] (TLS runs on top of it, so each TLS record is checked too). Reads keep the
//! SDK's default client: a deposed leader may still look.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::body::SdkBody;
use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::fence::socket::{GatedIo, WriteGate};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// TCP connections wrapped in the gate.
#[derive(Clone)]
struct GatedTcp {
    tcp: TcpConnector,
    gate: WriteGate,
}

impl tower_service::Service<Uri> for GatedTcp {
    type Response = GatedIo<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.tcp.call(uri);
        let gate = self.gate.clone();
        Box::pin(async move { Ok(GatedIo::new(connecting.await?, gate)) })
    }
}

/// An SDK [`HttpClient`] whose connections write only while their [`WriteGate`] is open.
#[derive(Clone)]
pub struct GatedHttpClient {
    client: Client<HttpsConnector<GatedTcp>, SdkBody>,
}

impl std::fmt::Debug for GatedHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatedHttpClient")
    }
}

impl GatedHttpClient {
    pub fn new(gate: WriteGate, connect_timeout: Duration) -> std::io::Result<Self> {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(GatedTcp { tcp, gate });
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(GatedHttpClient { client })
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
