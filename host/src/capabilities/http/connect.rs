//! Sending an agent's request to the one address the policy checked. wasmtime-wasi-http's
//! `default_send_request` resolves the URL's host again when it connects; between that lookup
//! and ours, a name whose DNS the agent's author controls could change from a public address to
//! a private one (DNS rebinding). So the connection is made here, to the checked address, with
//! TLS verified against the URL's host name as usual. The rest follows `default_send_request`:
//! rustls with the webpki roots, HTTP/1.1 through hyper, the request options' timeouts.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What the connection's driver reports when the exchange ends.
pub type Driver = Box<dyn Future<Output = Result<(), Error>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// The TLS client configuration, built once: loading the root store per request costs more
/// than many requests.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .unwrap_or_else(|_| {
                    // ring supports the default versions; this branch is unreachable in
                    // practice, and an empty config then fails every handshake cleanly.
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                }),
            )
        })
        .clone()
}

/// Sends `request` to `to`, which the policy checked for the URL's host.
pub async fn send_to(
    to: SocketAddr,
    mut request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(Response<WasiBody>, Driver), Error> {
    let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| {
        options
            .as_ref()
            .and_then(pick)
            .unwrap_or(Duration::from_secs(600))
    };
    let connect_timeout = timeout(|o| o.connect_timeout);
    let first_byte_timeout = timeout(|o| o.first_byte_timeout);
    let between_bytes_timeout = timeout(|o| o.between_bytes_timeout);
    let uri = request.uri().clone();
    let host = uri
        .host()
        .ok_or(Error::HttpRequestUriInvalid)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();

    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(to))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let stream: Box<dyn Stream> = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
        let name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => {
                rustls::pki_types::ServerName::try_from(host).map_err(Error::InvalidDnsNameError)?
            }
        };
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new()
            .handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The request line carries only the path: scheme and authority are for proxies.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    // The connection is driven while the response head is awaited, then handed back for the
    // body to be driven by whoever reads it.
    let mut conn = Box::pin(conn);
    let send = tokio::time::timeout(first_byte_timeout, sender.send_request(request));
    tokio::pin!(send);
    let mut conn_done = false;
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = send.as_mut().poll(cx) {
            return Poll::Ready(match result {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(e)) => Err(Error::from(e)),
                Err(_) => Err(Error::ConnectionReadTimeout),
            });
        }
        if !conn_done && let Poll::Ready(result) = conn.as_mut().poll(cx) {
            conn_done = true;
            if let Err(e) = result {
                return Poll::Ready(Err(Error::from(e)));
            }
        }
        Poll::Pending
    })
    .await?;
    let between = if between_bytes_timeout.is_zero() {
        Duration::from_nanos(1)
    } else {
        between_bytes_timeout
    };
    let mut interval = tokio::time::interval(between);
    interval.reset();
    let response = response.map(|incoming| {
        TimedBody {
            incoming,
            timeout: interval,
        }
        .boxed_unsync()
    });
    let driver: Driver = Box::new(async move {
        if conn_done {
            return Ok(());
        }
        conn.await.map_err(|e| {
            if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }
        })
    });
    Ok((response, driver))
}

/// A response body that fails when no frame arrives within the between-bytes timeout.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.timeout.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
