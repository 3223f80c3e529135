//! `server-dev`: the rooms server for ws-lifeline.
//!
//! It speaks protocol v1 (see `docs/PROTOCOL.md` and the `lifeline-protocol` crate) on `/ws`,
//! hands out one-time login tickets on `POST /api/login`, serves a built demo as static files,
//! and, with [`Config::test_endpoints`], the endpoints the library's browser tests drive.
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /ws` | protocol v1 (`lifeline.v1`): origin check (403), connection caps server-wide and per IP (503), ticket (401) before the upgrade |
//! | `POST /api/login` | `{name}` → `{ticket, expires_in_ms}`: a one-time ticket for `/ws?ticket=`; per IP rate limited (429 with `Retry-After`) |
//! | `GET /api/health` | `{status, connections, connections_opened, rooms}` and the hub's accounted memory (history bytes, sessions, dedupe ids, room list, queued items, queued bytes now, at peak and of the fullest connection) |
//! | `/echo`, `/close`, `/drop`, `/silent`, `/reject` | test endpoints, only with [`Config::test_endpoints`] |
//! | `POST /test/cut?name=&mode=drop\|silence` | test endpoint: cuts the client's `/ws` connections, `{cut}` |
//! | anything else | files of [`Config::static_dir`], with an `index.html` fallback |
//!
//! Rooms (epochs, offsets, history) and sessions (dedupe state) are kept by a storage engine,
//! [`Config::engine`]: in memory, or in one SQLite file that a restart or a `kill -9` does not
//! lose (see `docs/ENGINES.md`).
//!
//! Each connection has a bounded outbound queue, in items ([`Config::queue_capacity`]) and
//! bytes ([`Config::queue_conn_bytes`]); a peer that lets it fill is closed with 1013 (the
//! slow-consumer rule) and never stalls a room. All queues together are bounded in bytes too
//! ([`Config::queue_total_bytes`]): above it the connection with the most queued is closed
//! with 1013. What is queued leaves in batch frames (JSON arrays, up to
//! [`Config::batch_max_bytes`]); a lone message leaves as itself. A message longer than
//! [`Config::write_frame_size`] is written as several WebSocket frames (RFC 6455
//! fragmentation), which keeps what an idle connection holds small.
//!
//! A connection that sends above the rate limit is read more slowly (TCP backpressure slows
//! it down) and only closed, with 1013, when it stays throttled for
//! [`Config::rate_abuse_window`]. A panic in a connection's task ends that connection only;
//! build with `--profile server` (unwinding) rather than `--release` (which aborts).
//!
//! The crate is a library so that tests can run the real server on a loopback port:
//!
//! ```no_run
//! # async fn run() -> server_dev::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = server_dev::Config::default().test_endpoints(true);
//! // Runs until the future completes, then closes every WebSocket with 1001.
//! server_dev::serve(listener, config, None, std::future::pending()).await
//! # }
//! ```
#![deny(missing_docs)]

mod auth;
mod bench;
mod config;
pub mod conn;
mod engine;
mod error;
mod hub;
mod per_ip;
mod queue;
mod rate;
mod routes;
mod server;
mod test_endpoints;
pub mod tls;
mod upgrade;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

pub use config::Config;
pub use engine::EngineKind;
pub use error::{Error, Result};
pub use routes::app;
pub use server::serve;
pub use tls::TlsSetup;

/// Shared state of one server: configuration, hub, tickets and the shutdown signal.
///
/// Cloning is cheap; every clone is the same server.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: Config,
    hub: hub::Hub,
    tickets: Mutex<auth::Tickets>,
    shutdown: watch::Sender<bool>,
    /// Live WebSockets of every endpoint, so that shutdown can wait for their close.
    live: watch::Sender<usize>,
    /// WebSockets accepted since start, every endpoint: tests count reconnects with it.
    opened: AtomicU64,
    /// Live `/ws` connections, for the connection cap.
    ws_conns: AtomicUsize,
    /// Live `/ws` connections per client address, for the per-IP cap.
    ws_per_ip: Mutex<per_ip::ConnCounts>,
    /// Login token buckets per client address.
    logins: Mutex<per_ip::LoginLimiter>,
    /// Warnings of refused upgrades and logins, rate-limited per kind.
    refusal_logs: Mutex<RefusalLogs>,
    anon: AtomicU64,
}

/// A refusal before the upgrade or at login. Its warning is rate-limited: a flood from one
/// host would otherwise write a log line per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalLog {
    /// The per-IP connection cap.
    PerIp,
    /// The server-wide connection cap.
    Server,
    /// The per-IP login rate.
    Login,
}

#[derive(Debug, Default)]
struct RefusalLogs {
    per_ip: engine::LimitLog,
    server: engine::LimitLog,
    login: engine::LimitLog,
}

impl AppState {
    /// Creates the state of a server with `config`, opening its [`Config::engine`].
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the engine's store cannot be opened or read.
    pub fn new(config: Config) -> Result<Self> {
        let tickets = auth::Tickets::new(config.ticket_ttl, config.max_tickets);
        let hub = hub::Hub::new(&config).map_err(|err| Error::Storage {
            message: err.message,
        })?;
        let logins = per_ip::LoginLimiter::new(config.login_rate_per_sec, config.login_burst);
        Ok(Self {
            inner: Arc::new(Shared {
                config,
                hub,
                tickets: Mutex::new(tickets),
                shutdown: watch::channel(false).0,
                live: watch::channel(0).0,
                opened: AtomicU64::new(0),
                ws_conns: AtomicUsize::new(0),
                ws_per_ip: Mutex::new(per_ip::ConnCounts::default()),
                logins: Mutex::new(logins),
                refusal_logs: Mutex::default(),
                anon: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration this server runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Starts shutdown: every WebSocket is closed with 1001 (going away).
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        // `/ws` connections wait on their hub entry, not on the signal, so an idle one
        // holds a single waiter for every way it can be told to end.
        self.inner.hub.shutdown();
    }

    /// Waits until every WebSocket has finished.
    pub async fn connections_closed(&self) {
        let mut live = self.inner.live.subscribe();
        // Err means the sender is gone, which cannot happen while `self` holds it.
        let _ = live.wait_for(|n| *n == 0).await;
    }

    /// Number of live WebSockets, test endpoints included.
    pub fn live_connections(&self) -> usize {
        *self.inner.live.borrow()
    }

    /// Number of WebSockets accepted since start, test endpoints included.
    pub fn opened_connections(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub(crate) fn hub(&self) -> &hub::Hub {
        &self.inner.hub
    }

    /// Registers a live WebSocket until the returned guard drops.
    pub(crate) fn track(&self) -> LiveGuard {
        self.inner.live.send_modify(|n| *n += 1);
        self.inner.opened.fetch_add(1, Ordering::Relaxed);
        LiveGuard {
            state: self.clone(),
        }
    }

    /// Reserves a `/ws` slot for a client at `ip` (`None`: address unknown, only the
    /// server-wide cap applies), or says which cap is reached.
    pub(crate) fn reserve_ws(&self, ip: Option<per_ip::IpKey>) -> Result<WsSlot, Refused> {
        let config = &self.inner.config;
        let cap = config.max_connections_per_ip;
        let ip = ip.filter(|_| cap > 0);
        // Held across both checks, so that the two counts move together.
        let mut per_ip = lock(&self.inner.ws_per_ip);
        if let Some(ip) = ip
            && !per_ip.below(ip, cap)
        {
            return Err(Refused::PerIp);
        }
        let max = config.max_connections;
        self.inner
            .ws_conns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| Refused::Server)?;
        if let Some(ip) = ip {
            per_ip.add(ip);
        }
        Ok(WsSlot {
            state: self.clone(),
            ip,
        })
    }

    /// Takes a login token for `ip`, or tells how long until the next one.
    pub(crate) fn check_login(&self, ip: per_ip::IpKey) -> std::result::Result<(), Duration> {
        lock(&self.inner.logins).check(ip, tokio::time::Instant::now())
    }

    /// Counts a refusal of this kind; when a warning is due, the refusals since the last one.
    pub(crate) fn refusal_log(&self, refusal: RefusalLog) -> Option<u64> {
        let mut logs = lock(&self.inner.refusal_logs);
        let log = match refusal {
            RefusalLog::PerIp => &mut logs.per_ip,
            RefusalLog::Server => &mut logs.server,
            RefusalLog::Login => &mut logs.login,
        };
        log.hit(std::time::Instant::now())
    }

    pub(crate) fn next_anon(&self) -> u64 {
        self.inner.anon.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Counts one live WebSocket while it exists.
#[derive(Debug)]
pub(crate) struct LiveGuard {
    state: AppState,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.state
            .inner
            .live
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Which cap refused a `/ws` connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// [`Config::max_connections`].
    Server,
    /// [`Config::max_connections_per_ip`].
    PerIp,
}

/// One reserved `/ws` connection slot.
#[derive(Debug)]
pub(crate) struct WsSlot {
    state: AppState,
    ip: Option<per_ip::IpKey>,
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            lock(&self.state.inner.ws_per_ip).remove(ip);
        }
        self.state.inner.ws_conns.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Locks `mutex`, also after a panic elsewhere while it was held: these tables stay
/// consistent at every step, and one panicking request must not fail every later one.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `bytes` random bytes from the thread's CSPRNG, as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let b: u8 = rand::random();
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Completes once `flag` is true (or its sender is gone); holds no borrow across awaits.
pub(crate) async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await.map(|_| ());
}
