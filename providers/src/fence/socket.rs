//! The fence at the socket: a stream that refuses to write once the write deadline has
//! passed. The check in [`super::within`] runs when the request future is polled; the bytes
//! leave later, from the HTTP client's connection task. A process stopped in between (a GC
//! pause, a frozen VM, CPU starvation) would send the request the moment it resumes, however
//! long ago its lease lapsed. Checking the clock in `poll_write` itself leaves only the
//! instructions between that check and the `write(2)` call.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

/// The deadline a gated stream writes by, shared by every connection of one client.
///
/// A provider arms it from its fence before every mutating attempt. One provider serves one
/// fence (the controller's lease), so the last deadline armed is every attempt's deadline.
#[derive(Debug, Clone, Default)]
pub struct WriteGate {
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl WriteGate {
    /// Allow writes until `deadline`; `None` closes the gate.
    pub fn arm(&self, deadline: Option<Instant>) {
        *self.deadline.lock().expect("write gate") = deadline;
    }

    pub fn is_open(&self) -> bool {
        self.deadline
            .lock()
            .expect("write gate")
            .is_some_and(|d| Instant::now() < d)
    }

    fn refuse() -> io::Error {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "write fence: the leader lease's write deadline has passed",
        )
    }
}

/// A connection whose writes pass the [`WriteGate`] first; reads are untouched.
#[derive(Debug)]
pub struct GatedIo<T> {
    inner: T,
    gate: WriteGate,
}

impl<T> GatedIo<T> {
    pub fn new(inner: T, gate: WriteGate) -> Self {
        GatedIo { inner, gate }
    }
}

impl<T: Read + Unpin> Read for GatedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for GatedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.gate.is_open() {
            return Poll::Ready(Err(WriteGate::refuse()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.gate.is_open() {
            return Poll::Ready(Err(WriteGate::refuse()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for GatedIo<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// TCP connections wrapped in the gate, tunnelled through an HTTP proxy (`CONNECT`) where
/// the proxy rules say so for an `https` destination.
#[derive(Clone)]
pub struct GatedTcp {
    tcp: TcpConnector,
    gate: WriteGate,
    proxy: Option<Arc<Matcher>>,
}

impl GatedTcp {
    fn direct(&self) -> GatedTcp {
        GatedTcp {
            proxy: None,
            ..self.clone()
        }
    }
}

impl tower_service::Service<Uri> for GatedTcp {
    type Response = GatedIo<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let via = (uri.scheme() == Some(&http::uri::Scheme::HTTPS))
            .then(|| self.proxy.as_ref()?.intercept(&uri))
            .flatten();
        if let Some(via) = via {
            if via.uri().scheme() != Some(&http::uri::Scheme::HTTP) {
                // The matcher keeps a proxy URL's credentials apart (`basic_auth`): this
                // URI carries none.
                let proxy = via.uri().clone();
                return Box::pin(async move {
                    Err(
                        format!("proxy {proxy}: only http:// proxies (CONNECT) are supported")
                            .into(),
                    )
                });
            }
            // Every byte of the CONNECT and of what it carries passes the gate too.
            let mut tunnel = Tunnel::new(via.uri().clone(), self.direct());
            if let Some(auth) = via.basic_auth() {
                tunnel = tunnel.with_auth(auth.clone());
            }
            return Box::pin(async move {
                std::future::poll_fn(|cx| tunnel.poll_ready(cx)).await?;
                Ok(tunnel.call(uri).await?)
            });
        }
        let connecting = self.tcp.call(uri);
        let gate = self.gate.clone();
        Box::pin(async move { Ok(GatedIo::new(connecting.await?, gate)) })
    }
}

/// Which destinations a gated client reaches through a proxy.
#[derive(Clone, Default)]
pub enum Proxies {
    /// Always direct (the AWS SDK's own client does the same unless configured).
    #[default]
    None,
    /// `HTTPS_PROXY` / `ALL_PROXY` and `NO_PROXY` from the environment, as reqwest reads
    /// them for the requests it carries: writes take the same way as reads.
    FromEnv,
    /// These rules (tests).
    Rules(Arc<Matcher>),
}

/// A hyper client over [`GatedTcp`] (TLS on top for `https`, so each record is checked).
pub type GatedClient<B> = Client<HttpsConnector<GatedTcp>, B>;

/// A client whose every connection writes only while `gate` is open.
pub fn gated_client<B>(
    gate: WriteGate,
    connect_timeout: Duration,
    proxies: Proxies,
) -> io::Result<GatedClient<B>>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(GatedTcp {
            tcp,
            gate,
            proxy: match proxies {
                Proxies::None => None,
                Proxies::FromEnv => Some(Arc::new(Matcher::from_env())),
                Proxies::Rules(rules) => Some(rules),
            },
        });
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(https))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    async fn write(
        io: &mut GatedIo<TokioIo<tokio::io::DuplexStream>>,
        bytes: &[u8],
    ) -> io::Result<usize> {
        std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, bytes)).await
    }

    #[tokio::test]
    async fn writes_pass_before_the_deadline_and_are_refused_after_it() {
        let (ours, mut peer) = tokio::io::duplex(64);
        let gate = WriteGate::default();
        let mut io = GatedIo::new(TokioIo::new(ours), gate.clone());

        assert!(
            write(&mut io, b"x").await.is_err(),
            "a gate never armed is closed"
        );
        gate.arm(Some(Instant::now() + Duration::from_secs(5)));
        assert_eq!(write(&mut io, b"early").await.unwrap(), 5);
        gate.arm(Some(Instant::now() - Duration::from_millis(1)));
        let refused = write(&mut io, b"late").await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        gate.arm(None);
        assert!(write(&mut io, b"late").await.is_err());
        drop(io);

        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"early", "nothing past the deadline reached the peer");
    }

    /// A proxy that records what reaches it and answers 403 to a CONNECT.
    async fn recording_proxy() -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut got = vec![0u8; 1024];
            let n = tokio::time::timeout(Duration::from_millis(500), conn.read(&mut got))
                .await
                .map_or(0, |r| r.unwrap_or(0));
            got.truncate(n);
            if n > 0 {
                use tokio::io::AsyncWriteExt;
                let _ = conn.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
            }
            got
        });
        (url, seen)
    }

    async fn put_through(
        gate: WriteGate,
        proxy: &str,
    ) -> Result<(), hyper_util::client::legacy::Error> {
        let rules = Matcher::builder().https(proxy.to_owned()).build();
        let client = gated_client::<http_body_util::Full<bytes::Bytes>>(
            gate,
            Duration::from_secs(2),
            Proxies::Rules(Arc::new(rules)),
        )
        .unwrap();
        let req = http::Request::put("https://management.example.invalid/x")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
            .unwrap();
        client.request(req).await.map(|_| ())
    }

    #[tokio::test]
    async fn https_writes_tunnel_through_the_proxy_and_the_gate_covers_the_connect() {
        let open = WriteGate::default();
        open.arm(Some(Instant::now() + Duration::from_secs(30)));
        let (url, seen) = recording_proxy().await;
        assert!(put_through(open, &url).await.is_err(), "the proxy refused");
        let got = String::from_utf8(seen.await.unwrap()).unwrap();
        assert!(
            got.starts_with("CONNECT management.example.invalid:443 HTTP/1.1\r\n"),
            "{got:?}"
        );

        let (url, seen) = recording_proxy().await;
        assert!(put_through(WriteGate::default(), &url).await.is_err());
        assert!(
            seen.await.unwrap().is_empty(),
            "a closed gate sends not even the CONNECT"
        );
    }

    #[tokio::test]
    async fn an_unsupported_proxy_is_refused_without_its_credentials_in_the_error() {
        let open = WriteGate::default();
        open.arm(Some(Instant::now() + Duration::from_secs(30)));
        let err = put_through(open, "https://user:s3cret@proxy.example.invalid:3128")
            .await
            .unwrap_err();
        let text = format!("{err:?} {}", crate::error::error_chain(&err));
        assert!(text.contains("only http:// proxies"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
