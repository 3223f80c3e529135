//! `server-dev` binary: parses flags, binds, prints the listening line, serves until Ctrl-C
//! or SIGTERM.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use server_dev::{Config, TlsSetup};

/// The ws-lifeline development server.
#[derive(Debug, Parser)]
#[command(name = "server-dev", version, about)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind; 0 picks a free port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Serve this directory (e.g. the built demo in dist/) with an index.html fallback.
    #[arg(long, value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Enable /echo, /close, /drop, /silent, /reject and POST /test/cut (no origin or ticket
    /// checks), and let /ws accept any loopback origin (browser test runners use random ports).
    #[arg(long)]
    test_endpoints: bool,
    /// Enable /bench/send and /bench/recv for `cargo xtask bench` (no origin or ticket checks).
    #[arg(long)]
    bench_endpoints: bool,
    /// Accept /ws without a ticket (name from ?name=, else anon-N).
    #[arg(long)]
    no_auth: bool,
    /// Allowed Origin for /ws, exact match; repeatable. Default: the trunk dev origins
    /// http://127.0.0.1:8081 and http://localhost:8081. The server's own origin is always allowed.
    #[arg(long, value_name = "ORIGIN")]
    allowed_origin: Vec<String>,
    /// Serve https/wss with a self-signed certificate generated at start.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
    /// PEM certificate chain for https/wss (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for https/wss (with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest message and frame accepted, in bytes (above: close 1009).
    #[arg(long, default_value_t = 64 * 1024)]
    max_message_size: usize,
    /// Most simultaneous /ws connections (above: HTTP 503).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Most rooms one connection may join.
    #[arg(long, default_value_t = 32)]
    max_rooms_per_conn: usize,
    /// Most rooms the server keeps (with members or with retained history).
    #[arg(long, default_value_t = 10_000)]
    max_rooms: usize,
    /// tungstenite read buffer per connection, in bytes (grows to fit a larger frame).
    #[arg(long, default_value_t = 64)]
    read_buffer_size: usize,
    /// tungstenite write buffer per connection of the test endpoints, in bytes.
    #[arg(long, default_value_t = 8 * 1024)]
    write_buffer_size: usize,
    /// Largest frame /ws writes, in bytes; longer messages leave as several frames.
    #[arg(long, default_value_t = 256)]
    write_frame_size: usize,
    /// Outbound queue length per connection (full: close 1013, slow consumer).
    #[arg(long, default_value_t = 256)]
    queue_capacity: usize,
    /// Largest batch frame in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    batch_max_bytes: usize,
    /// Frames per second read per connection (token bucket refill): above it reading slows
    /// down; 0 disables the limit.
    #[arg(long, default_value_t = 50.0)]
    rate_limit: f64,
    /// Token bucket size (burst).
    #[arg(long, default_value_t = 100.0)]
    rate_burst: f64,
    /// Interval between protocol Ping frames, in ms.
    #[arg(long, default_value_t = 15_000)]
    heartbeat_interval_ms: u64,
    /// Silence allowed after a heartbeat interval before the peer is dropped, in ms.
    #[arg(long, default_value_t = 10_000)]
    pong_timeout_ms: u64,
    /// Lifetime of a login ticket, in ms.
    #[arg(long, default_value_t = 30_000)]
    ticket_ttl_ms: u64,
    /// Most unused login tickets held (above: the one closest to expiry is dropped).
    #[arg(long, default_value_t = 10_000)]
    max_tickets: usize,
    /// Messages of history kept per room.
    #[arg(long, default_value_t = 1000)]
    history_len: usize,
    /// Oldest history kept, in seconds.
    #[arg(long, default_value_t = 300)]
    history_max_age_secs: u64,
    /// Recent message ids remembered per session for deduplication.
    #[arg(long, default_value_t = 1024)]
    dedupe_ids: usize,
    /// How long a session outlives its last connection, in seconds.
    #[arg(long, default_value_t = 120)]
    session_ttl_secs: u64,
    /// Most sessions kept.
    #[arg(long, default_value_t = 10_000)]
    max_sessions: usize,

    // Abuse limits.
    /// How long a connection may stay throttled by the rate limit (reads slowed to the rate)
    /// before it is closed with 1013, in ms; 0: never closed, only throttled.
    #[arg(long, default_value_t = 30_000)]
    rate_abuse_window_ms: u64,
    /// Most simultaneous /ws connections from one IP address, IPv6 by /64 (above: HTTP 503);
    /// 0: no per-IP cap.
    #[arg(long, default_value_t = 256)]
    max_connections_per_ip: usize,
    /// Logins per second allowed per IP address on /api/login (above: HTTP 429 with
    /// Retry-After); 0 disables the limit.
    #[arg(long, default_value_t = 5.0)]
    login_rate_limit: f64,
    /// Login token bucket size per IP address (burst).
    #[arg(long, default_value_t = 20.0)]
    login_burst: f64,
    // Memory bounds of the hub.
    /// Bytes of history kept per room (oldest evicted first).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    history_room_bytes: usize,
    /// Bytes of history kept across all rooms (oldest publication evicted first).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    history_total_bytes: usize,
    /// Bytes a connection's outbound queue may hold (above: close 1013, slow consumer; above
    /// half: the connection is not read until its writer catches up); the default fits a
    /// room's full replay (--history-room-bytes) twice.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    queue_conn_bytes: usize,
    /// Bytes all outbound queues may hold together (above: the connections with the most
    /// queued are closed with 1013); at least --queue-conn-bytes.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    queue_total_bytes: usize,
    /// Shortest interval between two room-list pushes, in ms; 0 pushes every change.
    #[arg(long, default_value_t = 1000)]
    rooms_push_interval_ms: u64,
    /// Publish ids remembered across all sessions (longest-detached sessions go first).
    #[arg(long, default_value_t = 1024 * 1024)]
    max_dedupe_entries: usize,
    /// Where rooms and sessions are kept: `memory` (lost on restart), `sqlite:PATH` (one
    /// file; an acked publish survives a restart or a kill -9) or `redis://HOST:PORT` (shared
    /// by every instance started on that Redis).
    #[arg(
        long,
        default_value = "memory",
        value_name = "memory|sqlite:PATH|redis://HOST:PORT"
    )]
    engine: server_dev::EngineKind,
}

impl Args {
    fn config(&self) -> Config {
        let mut config = Config::default()
            .test_endpoints(self.test_endpoints)
            .bench_endpoints(self.bench_endpoints)
            .no_auth(self.no_auth)
            .max_message_size(self.max_message_size)
            .max_connections(self.max_connections)
            .max_rooms_per_conn(self.max_rooms_per_conn)
            .max_rooms(self.max_rooms)
            .buffers(self.read_buffer_size, self.write_buffer_size)
            .write_frame_size(self.write_frame_size)
            .queue_capacity(self.queue_capacity)
            .batch_max_bytes(self.batch_max_bytes)
            .rate_limit(self.rate_limit, self.rate_burst)
            .heartbeat(
                Duration::from_millis(self.heartbeat_interval_ms),
                Duration::from_millis(self.pong_timeout_ms),
            )
            .ticket_ttl(Duration::from_millis(self.ticket_ttl_ms))
            .max_tickets(self.max_tickets)
            .history(
                self.history_len,
                Duration::from_secs(self.history_max_age_secs),
            )
            .dedupe_ids(self.dedupe_ids)
            .sessions(
                Duration::from_secs(self.session_ttl_secs),
                self.max_sessions,
            )
            // Abuse limits.
            .rate_abuse_window(Duration::from_millis(self.rate_abuse_window_ms))
            .max_connections_per_ip(self.max_connections_per_ip)
            .login_rate_limit(self.login_rate_limit, self.login_burst)
            // Memory bounds of the hub.
            .history_bytes(self.history_room_bytes, self.history_total_bytes)
            .queue_bytes(self.queue_conn_bytes, self.queue_total_bytes)
            .rooms_push_interval(Duration::from_millis(self.rooms_push_interval_ms))
            .max_dedupe_entries(self.max_dedupe_entries)
            .engine(self.engine.clone());
        for origin in &self.allowed_origin {
            config = config.allow_origin(origin.clone());
        }
        if let Some(dir) = &self.static_dir {
            config = config.static_dir(dir.clone());
        }
        config
    }

    fn tls(&self) -> Option<TlsSetup> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSetup::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ if self.tls_self_signed => Some(TlsSetup::SelfSigned),
            _ => None,
        }
    }
}

/// Registers the Ctrl-C and SIGTERM handlers now (before the listening line is printed, so a
/// supervisor's early SIGTERM is never fatal) and returns the future that completes on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    #[cfg(panic = "abort")]
    tracing::warn!(
        "built with panic = \"abort\": a panic in one connection ends the whole server; \
         build with `--profile server` (see Cargo.toml)"
    );
    let listener = match tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("cannot bind {}:{}: {err}", args.host, args.port);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => {
            tracing::error!("no local address: {err}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(err) => {
            tracing::error!("cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    let tls = match args.tls().map(server_dev::tls::prepare).transpose() {
        Ok(tls) => tls,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The one stdout line; xtask and test runners parse it for the port.
    #[allow(clippy::print_stdout)]
    {
        println!("server-dev listening on {scheme}://{addr}");
    }
    let _ = std::io::stdout().flush();
    match server_dev::serve(listener, args.config(), tls, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_onto_the_config() {
        let args = Args::try_parse_from([
            "server-dev",
            "--port",
            "0",
            "--test-endpoints",
            "--no-auth",
            "--allowed-origin",
            "https://a.example",
            "--allowed-origin",
            "https://b.example",
            "--max-message-size",
            "1000",
            "--rate-limit",
            "0",
            "--heartbeat-interval-ms",
            "250",
            "--pong-timeout-ms",
            "500",
            "--ticket-ttl-ms",
            "1500",
            "--max-tickets",
            "12",
            "--max-rooms",
            "7",
            "--history-room-bytes",
            "1000",
            "--history-total-bytes",
            "5000",
            "--queue-conn-bytes",
            "2000",
            "--queue-total-bytes",
            "9000",
            "--rooms-push-interval-ms",
            "250",
            "--max-dedupe-entries",
            "99",
            "--engine",
            "sqlite:data/rooms.db",
        ])
        .unwrap();
        assert_eq!((args.host.as_str(), args.port), ("127.0.0.1", 0));
        let c = args.config();
        assert!(c.test_endpoints && c.no_auth);
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!((c.max_message_size, c.max_frame_size), (1000, 1000));
        assert_eq!(c.rate_per_sec, 0.0);
        assert_eq!(c.heartbeat_interval, Duration::from_millis(250));
        assert_eq!(c.pong_timeout, Duration::from_millis(500));
        assert_eq!(c.ticket_ttl, Duration::from_millis(1500));
        assert_eq!(c.max_tickets, 12);
        assert_eq!(c.max_rooms, 7);
        assert_eq!((c.history_room_bytes, c.history_total_bytes), (1000, 5000));
        assert_eq!((c.queue_conn_bytes, c.queue_total_bytes), (2000, 9000));
        assert_eq!(c.rooms_push_interval, Duration::from_millis(250));
        assert_eq!(c.max_dedupe_entries, 99);
        assert_eq!(
            c.engine,
            server_dev::EngineKind::Sqlite("data/rooms.db".into())
        );
        assert!(args.tls().is_none());
        let defaults = Args::try_parse_from(["server-dev"]).unwrap().config();
        assert_eq!(defaults.engine, server_dev::EngineKind::Memory);
        assert_eq!(
            defaults.max_tickets,
            server_dev::Config::default().max_tickets
        );
        let config_defaults = server_dev::Config::default();
        assert_eq!(
            (defaults.queue_conn_bytes, defaults.queue_total_bytes),
            (
                config_defaults.queue_conn_bytes,
                config_defaults.queue_total_bytes
            )
        );
        assert!(Args::try_parse_from(["server-dev", "--engine", "redis"]).is_err());
    }

    #[test]
    fn abuse_limit_flags_map_onto_the_config() {
        let c = Args::try_parse_from([
            "server-dev",
            "--rate-abuse-window-ms",
            "1500",
            "--max-connections-per-ip",
            "3",
            "--login-rate-limit",
            "0.5",
            "--login-burst",
            "2",
        ])
        .unwrap()
        .config();
        assert_eq!(c.rate_abuse_window, Duration::from_millis(1500));
        assert_eq!(c.max_connections_per_ip, 3);
        assert_eq!((c.login_rate_per_sec, c.login_burst), (0.5, 2.0));
        let d = Args::try_parse_from(["server-dev"]).unwrap().config();
        let defaults = server_dev::Config::default();
        assert_eq!(d.rate_abuse_window, defaults.rate_abuse_window);
        assert_eq!(d.max_connections_per_ip, defaults.max_connections_per_ip);
        assert_eq!(
            (d.login_rate_per_sec, d.login_burst),
            (defaults.login_rate_per_sec, defaults.login_burst)
        );
    }

    #[test]
    fn defaults_are_safe_and_tls_flags_pair_up() {
        let c = Args::try_parse_from(["server-dev"]).unwrap().config();
        assert!(!c.test_endpoints && !c.no_auth);
        assert_eq!(c.max_message_size, 64 * 1024);
        assert!(Args::try_parse_from(["server-dev", "--tls-cert", "c.pem"]).is_err());
        assert!(
            Args::try_parse_from([
                "server-dev",
                "--tls-self-signed",
                "--tls-cert",
                "c",
                "--tls-key",
                "k"
            ])
            .is_err()
        );
        let files =
            Args::try_parse_from(["server-dev", "--tls-cert", "c", "--tls-key", "k"]).unwrap();
        assert!(matches!(files.tls(), Some(TlsSetup::Files { .. })));
    }
}
