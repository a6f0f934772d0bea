//! The TCP adapter: accepts sockets and runs one connection task each.

mod connection;
mod handshake;
mod writer;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::broker::BrokerShared;

pub(crate) async fn accept_loop(
    shared: Arc<BrokerShared>,
    listener: TcpListener,
    _guard: mpsc::Sender<()>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.connections.load(Ordering::Relaxed) >= shared.config.limits.max_connections {
            tracing::warn!(%peer, "connection limit reached; refusing");
            drop(socket);
            continue;
        }
        let Some(guard) = shared.task_guard() else {
            break;
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.connections.fetch_add(1, Ordering::Relaxed);
            connection::serve(shared.clone(), socket, peer).await;
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            drop(guard);
        });
    }
    tracing::debug!("listener stopped");
}
