//! Running the app on a listener, with or without TLS, until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tracing::{info, warn};

use crate::tls::{TlsSetup, rustls_config};
use crate::{AppState, Config, Result, app};

/// Serves `config` on `listener` until `shutdown` completes, then closes every WebSocket with
/// 1001 (going away), waits up to [`Config::shutdown_grace`] for them, and returns.
///
/// Sets [`Config::own_port`] from the listener, so the server's own origin is allowed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mut config: Config,
    tls: Option<TlsSetup>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    config.own_port = Some(addr.port());
    config.tls = tls.is_some();
    let grace = config.shutdown_grace;
    let state = AppState::new(config)?;
    let router = app(state.clone());
    let sweeper = tokio::spawn(state.hub().clone().sweep_until(state.shutdown_signal()));
    // Commits the durable engine's writes; acks wait for it (a no-op for the memory engine).
    let syncer = tokio::spawn(state.hub().clone().sync_until(state.shutdown_signal()));
    // Brings every instance's publishes in, for a shared engine.
    let fan_in = match &state.config().engine {
        crate::EngineKind::Redis(url) => Some(tokio::spawn(crate::engine::redis::fan_in_until(
            url.clone(),
            state.hub().clone(),
            state.shutdown_signal(),
        ))),
        _ => None,
    };

    let on_shutdown = {
        let state = state.clone();
        async move {
            shutdown.await;
            info!("shutting down: closing every WebSocket with 1001");
            state.begin_shutdown();
        }
    };
    match tls {
        None => {
            // TCP_NODELAY: frames are already batched; Nagle would only add delayed-ACK stalls.
            let listener = listener.tap_io(|tcp| {
                if let Err(err) = tcp.set_nodelay(true) {
                    warn!("cannot set TCP_NODELAY: {err}");
                }
            });
            // The peer's address, for the per-IP limits.
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, service)
                .with_graceful_shutdown(on_shutdown)
                .await?;
        }
        Some(setup) => {
            let tls_config = rustls_config(&setup)?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                on_shutdown.await;
                stopper.graceful_shutdown(Some(grace));
            });
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls_config)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            axum_server::from_tcp(listener.into_std()?)?
                .acceptor(acceptor)
                .handle(handle)
                .serve(router.into_make_service_with_connect_info::<SocketAddr>())
                .await?;
        }
    }
    // Reached after the signal: the WebSockets are closing; wait for them, bounded.
    state.begin_shutdown();
    if tokio::time::timeout(grace, state.connections_closed())
        .await
        .is_err()
    {
        warn!(
            live = state.live_connections(),
            "shutdown grace elapsed with WebSockets open"
        );
    }
    sweeper.abort();
    if let Some(fan_in) = fan_in {
        fan_in.abort();
    }
    // What is still owed is committed (bounded: a disk that hangs does not hold the exit).
    if tokio::time::timeout(grace, syncer).await.is_err() {
        warn!("shutdown grace elapsed with writes not committed");
    }
    Ok(())
}
