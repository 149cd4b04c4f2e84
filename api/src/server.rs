//! The HTTP/1.1 server the API (and a worker's operations endpoints) run on.
//!
//! `axum::serve` writes header names in lower case and offers no way to change
//! that. HTTP says names are case-insensitive, but clients that index a plain
//! dictionary by `Sec-WebSocket-Protocol` (Python gql 4) then miss the
//! negotiated sub-protocol, so names go out title-cased, as most servers send
//! them, and a WebSocket upgrade answers in the client's own spelling
//! ([`crate::ws`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// Serves `router` on `listener` until `shutdown` completes; then accepts no
/// more connections, lets requests in flight finish and returns. Upgraded
/// connections (WebSockets) are not waited for: they watch the shutdown
/// themselves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection holds a clone of `open_rx`; `closed()` completes once
    // they are all gone.
    let (open_tx, open_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let connection = serve_connection(stream, peer, router.clone(), stop_rx.clone());
                    let open = open_rx.clone();
                    tokio::spawn(async move {
                        connection.await;
                        drop(open);
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let mut request = request.map(Body::new);
            // The peer's address, as `into_make_service_with_connect_info` gives
            // it: the limit on failed authentications is kept per address.
            request.extensions_mut().insert(ConnectInfo(peer));
            async move {
                Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {}))
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.title_case_headers(true).preserve_header_case(true);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
    connection.as_mut().graceful_shutdown();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}
