//! Reconnect and detection latency of ws-lifeline's native shell (BENCHMARKS.md, section 3).
//!
//! server-dev runs in this process on loopback; the client reaches it through the loopback
//! fault proxy of the e2e tests crate.
//!
//! - reconnect: the proxy refuses new connections and cuts the live one; after 300 ms it
//!   accepts again. Measured: from accepting again to the client's `open`, with the backoff at
//!   its minimum (zero: every retry starts at once).
//! - detection: the proxy blackholes the live connection (TCP stays up, nothing is forwarded).
//!   Measured: from the blackhole to the client's `close`, with a 1 s heartbeat interval and a
//!   1 s timeout.
//!
//! Usage: latency [--trials N] [--backoff-min-ms MS] (default 0: every retry at once).
//! Prints one JSON object on stdout.

use std::time::{Duration, Instant};

use lifeline_tests::fault_proxy::FaultProxy;

use ws_lifeline::native::{Client, ClientEvent};
use ws_lifeline::{Config, Event};

/// Waits (bounded) for the first connection event that `pick` accepts. The last few errors
/// on the way are kept in `seen`, for the report of a failed trial.
async fn wait_for(
    client: &mut Client,
    limit: Duration,
    seen: &mut Vec<String>,
    pick: impl Fn(&Event) -> bool,
) -> bool {
    seen.clear();
    tokio::time::timeout(limit, async {
        while let Some(event) = client.next_event().await {
            if let ClientEvent::Connection(e) = &event {
                if pick(e) {
                    return true;
                }
                if let Event::Error(error) = e {
                    if seen.len() == 4 {
                        seen.remove(0);
                    }
                    seen.push(error.to_string());
                }
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

/// The kernel's count of connections dropped at a full listen queue (Linux; 0 elsewhere).
/// A dropped SYN costs the client a retransmit (1 s, then 3 s, 7 s), which is what a failed
/// trial needs told apart from a slow client.
fn listen_drops() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/netstat") else {
        return 0;
    };
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenDrops")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

fn summary(samples: &mut [f64]) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let median = if samples.is_empty() {
        0.0
    } else {
        samples[samples.len() / 2]
    };
    serde_json::json!({
        "trials": samples.len(),
        "median_ms": (median * 1000.0).round() / 1000.0,
        "max_ms": (samples.last().copied().unwrap_or(0.0) * 1000.0).round() / 1000.0,
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let trials: usize = args
        .iter()
        .position(|a| a == "--trials")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--trials takes a number"))
        .unwrap_or(20);
    let backoff_min_ms: u64 = args
        .iter()
        .position(|a| a == "--backoff-min-ms")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--backoff-min-ms takes a number"))
        .unwrap_or(0);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let server_addr = listener.local_addr().expect("local address");
    let config = server_dev::Config::default()
        .no_auth(true)
        .rate_limit(0.0, 1.0);
    tokio::spawn(server_dev::serve(
        listener,
        config,
        None,
        std::future::pending(),
    ));
    let proxy = FaultProxy::start(server_addr)
        .await
        .expect("start the fault proxy");

    let config = Config::default()
        .protocols([ws_lifeline::protocol::SUBPROTOCOL])
        .backoff_min(Duration::from_millis(backoff_min_ms))
        // Each trial starts from a fresh retry counter: a connection that stayed up 200 ms
        // resets it (the default 5 s would let the backoff grow from trial to trial).
        .min_uptime(Duration::from_millis(200))
        .heartbeat_interval(Duration::from_secs(1))
        .heartbeat_timeout(Duration::from_secs(1));
    let url = format!("ws://{}/ws", proxy.addr());
    let mut client = Client::connect(&url, config).expect("valid url");
    let mut seen = Vec::new();
    assert!(
        wait_for(
            &mut client,
            Duration::from_secs(10),
            &mut seen,
            |e| matches!(e, Event::Open)
        )
        .await,
        "the client did not open"
    );

    let drops_at_start = listen_drops();
    let mut reconnect = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..trials {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.refuse_for(Duration::from_secs(3600));
        proxy.cut_all();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Drop what the cut produced (close, retries) before the clock starts.
        while client.try_next_event().is_some() {}
        let accepting = Instant::now();
        proxy.stop_refusing();
        if wait_for(&mut client, Duration::from_secs(10), &mut seen, |e| {
            matches!(e, Event::Open)
        })
        .await
        {
            reconnect.push(accepting.elapsed().as_secs_f64() * 1000.0);
            eprintln!(
                "reconnect trial: {:.1} ms",
                accepting.elapsed().as_secs_f64() * 1000.0
            );
        } else {
            errors.push(format!(
                "reconnect: no open within 10 s ({:?}, kernel listen drops so far {}, last errors {seen:?})",
                proxy.stats(),
                listen_drops() - drops_at_start
            ));
        }
    }

    let mut detection = Vec::new();
    for _ in 0..trials {
        // Settle on a fresh connection (past min_uptime), then blackhole it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while client.try_next_event().is_some() {}
        let started = Instant::now();
        proxy.blackhole_all();
        if wait_for(&mut client, Duration::from_secs(10), &mut seen, |e| {
            matches!(e, Event::Close(_))
        })
        .await
        {
            detection.push(started.elapsed().as_secs_f64() * 1000.0);
        } else {
            errors.push(format!(
                "detection: no close within 10 s (last errors {seen:?})"
            ));
        }
        if !wait_for(&mut client, Duration::from_secs(10), &mut seen, |e| {
            matches!(e, Event::Open)
        })
        .await
        {
            errors.push(format!(
                "detection: no reopen within 10 s (last errors {seen:?})"
            ));
        }
    }

    let out = serde_json::json!({
        "shell": "native",
        "backoff_min_ms": backoff_min_ms,
        "reconnect_after_accepting": summary(&mut reconnect),
        "detection_after_blackhole": summary(&mut detection),
        "errors": errors,
        "proxy": format!("{:?}", proxy.stats()),
        "kernel_listen_drops": listen_drops() - drops_at_start,
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{out}");
    }
    std::process::exit(0);
}
