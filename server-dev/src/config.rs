//! Server configuration: every limit with its default.

use std::path::PathBuf;
use std::time::Duration;

use crate::EngineKind;

/// Everything `server-dev` can be told. Built with [`Config::default`] and the setters, or from
/// the command line by `main.rs`.
///
/// ```
/// use std::time::Duration;
/// let config = server_dev::Config::default()
///     .test_endpoints(true)
///     .heartbeat(Duration::from_millis(200), Duration::from_millis(200));
/// assert!(config.test_endpoints);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Serve `/echo`, `/close`, `/drop`, `/silent`, `/reject` and `POST /test/cut`. Default: off.
    pub test_endpoints: bool,
    /// Serve `/bench/send` and `/bench/recv` for the benchmark harness. Default: off.
    pub bench_endpoints: bool,
    /// Accept `/ws` without a ticket (name from `?name=`, else `anon-N`). Default: off.
    pub no_auth: bool,
    /// Allowed `Origin` values (exact match). Empty: the trunk dev origins
    /// `http://127.0.0.1:8081` and `http://localhost:8081`. The server's own origin is always
    /// allowed (see [`Config::own_port`]). Requests without `Origin` (non-browser clients) pass.
    pub allowed_origins: Vec<String>,
    /// The bound port, which makes `http(s)://127.0.0.1:PORT` and `http(s)://localhost:PORT`
    /// allowed origins. Set by [`crate::serve`]. Default: none.
    pub own_port: Option<u16>,
    /// Whether the server is reached over TLS (changes the own origin's scheme). Default: false.
    pub tls: bool,
    /// Directory served as static files with an `index.html` fallback. Default: none.
    pub static_dir: Option<PathBuf>,
    /// Largest WebSocket message accepted, in bytes; above it the connection closes with 1009.
    /// Default: 64 KiB.
    pub max_message_size: usize,
    /// Largest WebSocket frame accepted, in bytes. Default: 64 KiB.
    pub max_frame_size: usize,
    /// tungstenite read buffer per connection, in bytes: what tungstenite asks for per read,
    /// and what the buffer starts at. A larger frame grows the buffer to fit, up to
    /// [`Self::max_frame_size`]. Default: 64 B. The buffer is held (and zero-filled) for the
    /// connection's whole life, so every byte of it counts per idle connection. On `/ws` the
    /// socket under tungstenite reads up to 4 KiB at once and keeps the rest only until it is
    /// taken, so a small buffer costs copies, not syscalls. The test and bench endpoints read
    /// at least 4 KiB at a time. tungstenite's own default is 128 KiB.
    pub read_buffer_size: usize,
    /// tungstenite write buffer per connection of the test endpoints, in bytes. `/ws` writes
    /// each frame straight through and gathers one flush's worth only while it is written.
    /// Default: 8 KiB.
    pub write_buffer_size: usize,
    /// Largest frame `/ws` writes, in bytes; a longer message leaves as several frames
    /// (RFC 6455 §5.4), which clients reassemble. tungstenite's write buffer keeps the
    /// capacity of the largest frame it has written for the connection's whole life, so this
    /// bounds what an idle connection holds after a long room list or batch. Default: 256 B.
    pub write_frame_size: usize,
    /// Most simultaneous WebSocket connections; above it the upgrade gets 503. Default: 1024.
    pub max_connections: usize,
    /// Most rooms one connection may join (`error{too_many_rooms}` above). Default: 32.
    pub max_rooms_per_conn: usize,
    /// Most rooms (with members or retained history) the hub keeps. Default: 10 000.
    pub max_rooms: usize,
    /// Outbound queue length per connection, in queued items; a peer whose queue is full is
    /// closed with 1013 (slow consumer). Default: 256.
    pub queue_capacity: usize,
    /// Largest batch frame (JSON array) the writer builds from queued messages. Default: 16 KiB.
    pub batch_max_bytes: usize,
    /// Token bucket refill rate: frames per second per connection; above it the connection
    /// is read more slowly (see [`Self::rate_abuse_window`]). 0 disables it. Default: 50.
    pub rate_per_sec: f64,
    /// Token bucket size: the burst of frames allowed. Default: 100.
    pub rate_burst: f64,
    /// Interval between protocol Ping frames. Default: 15 s.
    pub heartbeat_interval: Duration,
    /// A peer that sends nothing for `heartbeat_interval + pong_timeout` is dropped.
    /// Default: 10 s.
    pub pong_timeout: Duration,
    /// How long a login ticket stays valid. Default: 30 s.
    pub ticket_ttl: Duration,
    /// Most unused tickets held at once (older ones are dropped). Default: 10 000.
    pub max_tickets: usize,
    /// Messages of history kept per room for recovery. Default: 1000.
    pub history_len: usize,
    /// Oldest history entry kept, by age. Default: 5 minutes.
    pub history_max_age: Duration,
    /// Recent message ids remembered per session for deduplication. Default: 1024.
    pub dedupe_ids: usize,
    /// How long a session survives its last connection (for `hello{session}`). Default: 2 min.
    pub session_ttl: Duration,
    /// Most sessions kept; the longest-detached ones go first. Default: 10 000.
    pub max_sessions: usize,
    /// How long shutdown waits for connections to finish their close handshake. Default: 2 s.
    pub shutdown_grace: Duration,
    /// How long `/silent` holds a connection at most. Default: 10 minutes.
    pub silent_hold: Duration,

    // Abuse limits: throttling, per-IP caps and the login rate.
    /// A connection above the rate limit is read more slowly (TCP backpressure slows the
    /// sender); only one kept throttled for this long without a break gets
    /// `error{rate_limited}` and close 1013. Zero: never closed, only throttled. Default: 30 s,
    /// above the ≈19 s the client library's largest backlog (1024 unacknowledged publishes,
    /// `hello` and 32 joins, resent at once after a reconnect) takes at the default rate.
    pub rate_abuse_window: Duration,
    /// Most simultaneous `/ws` connections from one IP address (IPv6: one /64); above it the
    /// upgrade gets 503. 0: no per-IP cap. Default: 256, a quarter of
    /// [`Self::max_connections`], so that no single host can take every slot, while many
    /// users behind one NAT (and a test suite on loopback) still fit.
    pub max_connections_per_ip: usize,
    /// `POST /api/login` token bucket refill per IP address, logins per second; above it the
    /// answer is 429 with `Retry-After`. 0 disables the limit. Default: 5.
    pub login_rate_per_sec: f64,
    /// `POST /api/login` token bucket size per IP address. Default: 20.
    pub login_burst: f64,
    // Memory bounds of the hub (history bytes, room-list pushes).
    /// Bytes of history (encoded `message` frames plus bookkeeping) kept per room, oldest
    /// evicted first. Default: 4 MiB: 1000 messages (`history_len`) of 4 KiB, or 64 of the
    /// largest size.
    pub history_room_bytes: usize,
    /// Bytes of history kept across all rooms, oldest publication evicted first. Default:
    /// 64 MiB: sixteen full rooms; without it 10 000 rooms of 1000 messages of 64 KiB could
    /// hold 640 GB.
    pub history_total_bytes: usize,
    /// Bytes a connection's outbound queue may hold (frames queued and not yet taken by its
    /// writer; the shared room list and presence snapshots count in `room_list_bytes`
    /// instead); a connection whose queue would pass it is closed with 1013 (slow consumer).
    /// Above half of it nothing more is read from the connection until its writer catches
    /// up, so its own joins do not pass it while a room's replay fits in that half.
    /// Default: 8 MiB: twice a room's full replay (`history_room_bytes`, 4 MiB), so that a
    /// join is read while up to one replay waits and still fits; a batch frame (16 KiB) and
    /// a message (64 KiB) are small beside it.
    pub queue_conn_bytes: usize,
    /// Bytes all outbound queues together may hold, counting a frame once per queue it waits
    /// in; when an item would pass it, the connections with the most bytes queued are closed
    /// with 1013 until it fits (never one whose queue is only its own join's replay, while
    /// another holds bytes). Never below `queue_conn_bytes`. Default: 256 MiB: 32 connections
    /// at their full budget, or a 64 KiB message to each of the 1024 connections four times
    /// over; without it 1024 connections × 8 MiB could hold 8 GiB.
    pub queue_total_bytes: usize,
    /// Shortest interval between two room-list pushes (the latest state wins); zero pushes
    /// every change at once. Default: 1 s.
    pub rooms_push_interval: Duration,
    /// Publish ids remembered across all sessions; above it the longest-detached sessions
    /// with dedupe state are forgotten. Default: 1 Mi ids (about 30 to 50 MB at 30 to 50 B
    /// an id): without it 10 000 sessions of 1024 ids could hold 300 to 500 MB. Attached
    /// sessions are never forgotten, so the connections alone (1024 × 1024 ids) can fill
    /// it, but not pass it.
    pub max_dedupe_entries: usize,
    /// Where rooms (epochs, offsets, history) and sessions (dedupe state) are kept: in memory
    /// (lost on restart), in a SQLite file (an acked publish survives a restart or a
    /// `kill -9`) or in Redis, shared by several instances (see `docs/ENGINES.md`). Default:
    /// [`EngineKind::Memory`].
    pub engine: EngineKind,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            test_endpoints: false,
            bench_endpoints: false,
            no_auth: false,
            allowed_origins: Vec::new(),
            own_port: None,
            tls: false,
            static_dir: None,
            max_message_size: 64 * 1024,
            max_frame_size: 64 * 1024,
            read_buffer_size: 64,
            write_buffer_size: 8 * 1024,
            write_frame_size: 256,
            max_connections: 1024,
            max_rooms_per_conn: 32,
            max_rooms: 10_000,
            queue_capacity: 256,
            batch_max_bytes: 16 * 1024,
            rate_per_sec: 50.0,
            rate_burst: 100.0,
            heartbeat_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            ticket_ttl: Duration::from_secs(30),
            max_tickets: 10_000,
            history_len: 1000,
            history_max_age: Duration::from_secs(300),
            dedupe_ids: 1024,
            session_ttl: Duration::from_secs(120),
            max_sessions: 10_000,
            shutdown_grace: Duration::from_secs(2),
            silent_hold: Duration::from_secs(600),

            // Abuse limits.
            rate_abuse_window: Duration::from_secs(30),
            max_connections_per_ip: 256,
            login_rate_per_sec: 5.0,
            login_burst: 20.0,

            // Memory bounds of the hub.
            history_room_bytes: 4 * 1024 * 1024,
            history_total_bytes: 64 * 1024 * 1024,
            queue_conn_bytes: 8 * 1024 * 1024,
            queue_total_bytes: 256 * 1024 * 1024,
            rooms_push_interval: Duration::from_secs(1),
            max_dedupe_entries: 1024 * 1024,
            engine: EngineKind::Memory,
        }
    }
}

impl Config {
    /// Turns the test endpoints on or off.
    pub fn test_endpoints(mut self, on: bool) -> Self {
        self.test_endpoints = on;
        self
    }
    /// Turns the benchmark endpoints on or off.
    pub fn bench_endpoints(mut self, on: bool) -> Self {
        self.bench_endpoints = on;
        self
    }
    /// Turns ticket authentication off (`true`) or on.
    pub fn no_auth(mut self, on: bool) -> Self {
        self.no_auth = on;
        self
    }
    /// Adds an allowed origin.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }
    /// Sets the server's own port (its origin is then allowed).
    pub fn own_port(mut self, port: u16) -> Self {
        self.own_port = Some(port);
        self
    }
    /// Serves this directory as static files.
    pub fn static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.static_dir = Some(dir.into());
        self
    }
    /// Sets the largest accepted message and frame, in bytes.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self.max_frame_size = bytes;
        self
    }
    /// Sets the connection cap.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }
    /// Sets the per-connection room cap.
    pub fn max_rooms_per_conn(mut self, n: usize) -> Self {
        self.max_rooms_per_conn = n;
        self
    }
    /// Sets how many rooms the server keeps at most.
    pub fn max_rooms(mut self, n: usize) -> Self {
        self.max_rooms = n;
        self
    }
    /// Sets tungstenite's read and write buffer sizes per connection, in bytes.
    pub fn buffers(mut self, read: usize, write: usize) -> Self {
        self.read_buffer_size = read;
        self.write_buffer_size = write;
        self
    }
    /// Sets the largest frame `/ws` writes, in bytes (at least 1).
    pub fn write_frame_size(mut self, n: usize) -> Self {
        self.write_frame_size = n.max(1);
        self
    }
    /// Sets the outbound queue length per connection.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }
    /// Sets the largest batch frame, in bytes.
    pub fn batch_max_bytes(mut self, bytes: usize) -> Self {
        self.batch_max_bytes = bytes;
        self
    }
    /// Sets the token bucket: `per_sec` refill and `burst` size.
    pub fn rate_limit(mut self, per_sec: f64, burst: f64) -> Self {
        self.rate_per_sec = per_sec;
        self.rate_burst = burst;
        self
    }
    /// Sets the heartbeat interval (at least 1 ms) and the pong timeout.
    pub fn heartbeat(mut self, interval: Duration, pong_timeout: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(1));
        self.pong_timeout = pong_timeout;
        self
    }
    /// Sets the ticket lifetime.
    pub fn ticket_ttl(mut self, ttl: Duration) -> Self {
        self.ticket_ttl = ttl;
        self
    }
    /// Sets how many unused tickets are held at once (at least 1).
    pub fn max_tickets(mut self, max: usize) -> Self {
        self.max_tickets = max.max(1);
        self
    }
    /// Sets the room history bounds: at most `len` messages, none older than `max_age`.
    pub fn history(mut self, len: usize, max_age: Duration) -> Self {
        self.history_len = len;
        self.history_max_age = max_age;
        self
    }
    /// Sets how many recent ids each session remembers for deduplication.
    pub fn dedupe_ids(mut self, n: usize) -> Self {
        self.dedupe_ids = n;
        self
    }
    /// Sets how long a detached session is kept, and how many sessions at most.
    pub fn sessions(mut self, ttl: Duration, max: usize) -> Self {
        self.session_ttl = ttl;
        self.max_sessions = max;
        self
    }

    // Abuse limits.
    /// Sets how long a connection may stay throttled by the rate limit before it is closed
    /// with 1013 (zero: never).
    pub fn rate_abuse_window(mut self, window: Duration) -> Self {
        self.rate_abuse_window = window;
        self
    }
    /// Sets the most `/ws` connections from one IP address (0: no per-IP cap).
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.max_connections_per_ip = n;
        self
    }
    /// Sets the per-IP login token bucket: `per_sec` refill (0 disables it) and `burst` size.
    pub fn login_rate_limit(mut self, per_sec: f64, burst: f64) -> Self {
        self.login_rate_per_sec = per_sec;
        self.login_burst = burst;
        self
    }

    // Memory bounds of the hub.
    /// Sets the history byte budgets: per room and across all rooms.
    pub fn history_bytes(mut self, per_room: usize, total: usize) -> Self {
        self.history_room_bytes = per_room;
        self.history_total_bytes = total;
        self
    }
    /// Sets the outbound queue byte budgets: per connection and across all connections
    /// (raised to at least `per_conn`).
    pub fn queue_bytes(mut self, per_conn: usize, total: usize) -> Self {
        self.queue_conn_bytes = per_conn;
        self.queue_total_bytes = total.max(per_conn);
        self
    }
    /// Sets the shortest interval between two room-list pushes.
    pub fn rooms_push_interval(mut self, interval: Duration) -> Self {
        self.rooms_push_interval = interval;
        self
    }
    /// Sets how many publish ids all sessions together remember at most.
    pub fn max_dedupe_entries(mut self, n: usize) -> Self {
        self.max_dedupe_entries = n;
        self
    }

    /// Sets the storage engine.
    pub fn engine(mut self, engine: EngineKind) -> Self {
        self.engine = engine;
        self
    }

    /// Whether a request with this `Origin` may open a WebSocket on `/ws`.
    ///
    /// With [`Config::test_endpoints`] on, any loopback origin (`http(s)://127.0.0.1:*`,
    /// `http(s)://localhost:*`, `http(s)://[::1]:*`) is allowed too: browser test runners serve
    /// their pages from random ports.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        if self.test_endpoints && is_loopback_origin(origin) {
            return true;
        }
        if let Some(port) = self.own_port {
            let scheme = if self.tls { "https" } else { "http" };
            if origin == format!("{scheme}://127.0.0.1:{port}")
                || origin == format!("{scheme}://localhost:{port}")
            {
                return true;
            }
        }
        if self.allowed_origins.is_empty() {
            return origin == "http://127.0.0.1:8081" || origin == "http://localhost:8081";
        }
        self.allowed_origins.iter().any(|allowed| allowed == origin)
    }
}

/// `http(s)://` + a loopback host + an optional numeric port, and nothing else.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let port = ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .find_map(|host| rest.strip_prefix(host));
    match port {
        Some("") => true,
        Some(p) => p.strip_prefix(':').is_some_and(|n| {
            !n.is_empty() && n.len() <= 5 && n.bytes().all(|b| b.is_ascii_digit())
        }),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_only_in_test_mode() {
        let test = Config::default().test_endpoints(true);
        let prod = Config::default();
        for ok in [
            "http://127.0.0.1:5173",
            "http://localhost:9",
            "https://[::1]:443",
            "http://localhost",
        ] {
            assert!(test.origin_allowed(ok), "{ok}");
        }
        assert!(!prod.origin_allowed("http://127.0.0.1:5173"));
        for bad in [
            "http://127.0.0.1.evil.example",
            "http://localhost.evil:80",
            "http://localhost:80/x",
            "http://localhost:",
            "ftp://localhost:1",
            "http://evil.example",
        ] {
            assert!(!test.origin_allowed(bad), "{bad}");
        }
    }
}
