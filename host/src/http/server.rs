//! Accepting connections for the router, with the bounds a public listener needs: at most
//! `[http] max_connections` at once (the next waits in the kernel's backlog until one closes),
//! and a client must send a request's headers within `[http] header_timeout` — including the
//! next request on a kept-alive connection — or the connection is closed, so slow or idle
//! clients cannot hold the listener's capacity. Request bodies are bounded per route, long
//! answers (a consume that waits for records, an SSE stream) are not cut.
//!
//! At shutdown no new connection is accepted, each open one finishes the request it is serving
//! and closes, and `serve` returns once they have (bounded by the caller).

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The bounds of the listener (`[http]` in the host config).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionBounds {
    pub max_connections: u32,
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    bounds: ConnectionBounds,
    stop: CancellationToken,
) {
    let max = bounds.max_connections.max(1);
    let connections = Arc::new(Semaphore::new(max as usize));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // not a reason to stop serving.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(bounds.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
        });
    }
    // Every connection gives its permit back when it is done.
    let _ = connections.acquire_many(max).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn started(bounds: ConnectionBounds) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, app, bounds, stop.clone()));
        (address, stop)
    }

    #[tokio::test]
    async fn a_client_that_sends_no_headers_is_disconnected() {
        let (address, stop) = started(ConnectionBounds {
            max_connections: 4,
            header_timeout: Duration::from_millis(200),
        })
        .await;
        let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "the connection stayed open past the header timeout"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn connections_beyond_the_bound_wait_until_one_closes() {
        let (address, stop) = started(ConnectionBounds {
            max_connections: 1,
            header_timeout: Duration::from_secs(30),
        })
        .await;
        let request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        // The first connection holds the only place, idle.
        let holder = tokio::net::TcpStream::connect(address).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut second = tokio::net::TcpStream::connect(address).await.unwrap();
        second.write_all(request).await.unwrap();
        let mut head = [0u8; 12];
        let waited =
            tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut head)).await;
        assert!(
            waited.is_err(),
            "a second connection was served beside the first"
        );
        drop(holder);
        tokio::time::timeout(Duration::from_secs(5), second.read_exact(&mut head))
            .await
            .expect("served once the first closed")
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        stop.cancel();
    }
}
