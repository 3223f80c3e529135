//! A loopback TCP proxy that injects network faults between a client and server-dev.
//!
//! It forwards bytes both ways and, on command, can:
//! - [`cut`](FaultProxy::cut_all) every live connection (both sockets closed at once);
//! - [`blackhole`](FaultProxy::blackhole_all) them: TCP stays open but nothing is forwarded in
//!   either direction, which is what a half-open connection looks like to both peers;
//! - add [latency](FaultProxy::set_latency) to every chunk, keeping order;
//! - [refuse](FaultProxy::refuse_for) new connections for a while (accepted, then closed at once).
//!
//! Tests start it with [`FaultProxy::start`]; dropping it stops the listener and every
//! connection it holds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What a proxied connection does with the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Blackhole,
    Cut,
}

/// Counters of what the proxy did, for test reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and forwarded.
    pub accepted: u64,
    /// Connections refused while refusing.
    pub refused: u64,
    /// Connections cut.
    pub cut: u64,
    /// Connections blackholed.
    pub blackholed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
    blackholed: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    upstream: Mutex<SocketAddr>,
    latency: Mutex<Duration>,
    refuse_until: Mutex<Option<Instant>>,
    connections: Mutex<Vec<watch::Sender<Mode>>>,
    counters: Counters,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Live connections only: a sender whose pumps have all ended is dropped from the list.
    fn live(&self) -> MutexGuard<'_, Vec<watch::Sender<Mode>>> {
        let mut connections = lock(&self.connections);
        connections.retain(|tx| !tx.is_closed());
        connections
    }
}

/// A running fault proxy. Dropping it stops it.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (any free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            latency: Mutex::new(Duration::ZERO),
            refuse_until: Mutex::new(None),
            connections: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let acceptor = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            acceptor,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Points new connections at another upstream (for example a restarted server).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = upstream;
    }

    /// Closes every live connection on both sides.
    pub fn cut_all(&self) -> usize {
        self.set_mode_all(Mode::Cut, &self.shared.counters.cut)
    }

    /// Stops forwarding on every live connection while keeping its TCP sockets open.
    pub fn blackhole_all(&self) -> usize {
        self.set_mode_all(Mode::Blackhole, &self.shared.counters.blackholed)
    }

    /// Delays every chunk forwarded from now on by `latency`, in order.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Refuses new connections for `duration`: they are accepted and closed at once.
    pub fn refuse_for(&self, duration: Duration) {
        *lock(&self.shared.refuse_until) = Some(Instant::now() + duration);
    }

    /// Accepts new connections again.
    pub fn stop_refusing(&self) {
        *lock(&self.shared.refuse_until) = None;
    }

    /// The number of connections currently open through the proxy.
    pub fn live_connections(&self) -> usize {
        self.shared.live().len()
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            cut: c.cut.load(Ordering::Relaxed),
            blackholed: c.blackholed.load(Ordering::Relaxed),
        }
    }

    fn set_mode_all(&self, mode: Mode, counter: &AtomicU64) -> usize {
        let live = self.shared.live();
        for tx in live.iter() {
            // send_replace: the pumps may not be waiting right now; they read the mode anyway.
            tx.send_replace(mode);
        }
        counter.fetch_add(live.len() as u64, Ordering::Relaxed);
        live.len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        for tx in self.shared.live().iter() {
            tx.send_replace(Mode::Cut);
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let refusing = lock(&shared.refuse_until).is_some_and(|until| Instant::now() < until);
        if refusing {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        let upstream_addr = *lock(&shared.upstream);
        let (mode_tx, mode_rx) = watch::channel(Mode::Forward);
        lock(&shared.connections).push(mode_tx);
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            // An upstream that is down looks to the client like a connection closed at once.
            let Ok(upstream) = TcpStream::connect(upstream_addr).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (upstream_read, upstream_write) = upstream.into_split();
            let up = pump(
                client_read,
                upstream_write,
                mode_rx.clone(),
                Arc::clone(&shared),
            );
            let down = pump(upstream_read, client_write, mode_rx, shared);
            // When either direction ends (EOF, error or cut), close both.
            tokio::select! {
                () = up => {}
                () = down => {}
            }
        });
    }
}

/// Copies one direction, honouring the mode and the latency; returns when the direction ends.
async fn pump(
    mut from: OwnedReadHalf,
    to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    shared: Arc<Shared>,
) {
    let (delayed_tx, delayed_rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = write_when_due(to, delayed_rx);
    tokio::pin!(writer);
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        tokio::select! {
            () = &mut writer => return,
            changed = mode.changed() => {
                if changed.is_err() || *mode.borrow() == Mode::Cut {
                    return;
                }
            }
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                match *mode.borrow() {
                    Mode::Forward => {}
                    Mode::Blackhole => continue,
                    Mode::Cut => return,
                }
                let due = Instant::now() + *lock(&shared.latency);
                if delayed_tx.send((due, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

async fn write_when_due(
    mut to: OwnedWriteHalf,
    mut chunks: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
) {
    while let Some((due, chunk)) = chunks.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes every byte back.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(msg).await?;
        let mut back = vec![0_u8; msg.len()];
        stream.read_exact(&mut back).await?;
        Ok(back)
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn forwards_both_ways() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut client, b"hello").await.unwrap(), b"hello");
        assert_eq!(proxy.stats().accepted, 1);
    }

    #[tokio::test]
    async fn cut_closes_the_client_side() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut client, b"x").await.unwrap();
        assert_eq!(proxy.cut_all(), 1);
        let mut buf = [0_u8; 1];
        let read = tokio::time::timeout(WAIT, client.read(&mut buf))
            .await
            .unwrap();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the client sees EOF or a reset: {read:?}"
        );
        assert_eq!(proxy.stats().cut, 1);
    }

    #[tokio::test]
    async fn blackhole_keeps_tcp_open_but_forwards_nothing() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut client, b"x").await.unwrap();
        assert_eq!(proxy.blackhole_all(), 1);
        client.write_all(b"lost").await.unwrap();
        let mut buf = [0_u8; 4];
        let read = tokio::time::timeout(Duration::from_millis(300), client.read(&mut buf)).await;
        assert!(
            read.is_err(),
            "nothing comes back and the socket is not closed: {read:?}"
        );
        assert_eq!(proxy.live_connections(), 1);
    }

    #[tokio::test]
    async fn latency_delays_in_order() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        proxy.set_latency(Duration::from_millis(100));
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let started = Instant::now();
        assert_eq!(round_trip(&mut client, b"abc").await.unwrap(), b"abc");
        // Delayed once on the way up and once on the way down.
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn refuses_then_accepts_again() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        proxy.refuse_for(Duration::from_secs(60));
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut buf = [0_u8; 1];
        let read = tokio::time::timeout(WAIT, refused.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert_eq!(proxy.stats().refused, 1);
        proxy.stop_refusing();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut client, b"ok").await.unwrap(), b"ok");
    }

    #[tokio::test]
    async fn drop_stops_every_connection() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut client, b"x").await.unwrap();
        let addr = proxy.addr();
        drop(proxy);
        let mut buf = [0_u8; 1];
        let read = tokio::time::timeout(WAIT, client.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // The listener is gone too (the port may be reused by the OS later, but not this soon).
        let reconnect = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap();
        if let Ok(mut stream) = reconnect {
            let read = tokio::time::timeout(WAIT, stream.read(&mut buf))
                .await
                .unwrap();
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        }
    }
}
