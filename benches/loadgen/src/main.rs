//! Load generator for `cargo xtask bench server` (see BENCHMARKS.md).
//!
//! Speaks the protocol-v1 subset every measured server understands (`join`, `publish`, and
//! reading `joined`, `message`, batches) and runs one workload against one server, or against
//! several instances of one (repeated `--url`: each room's members alternate between them, the
//! fan-out publisher is on the first, so messages cross between instances; repeated `--pid`:
//! the CPU is summed over them, the RSS is the first's):
//!
//! - `idle`: `--conns` connections, each joined to one of `--rooms` rooms (`--rooms 0`: none,
//!   connected only); reports the server's
//!   RSS growth per connection (`VmRSS` of `--pid`, before and after, once the traffic of the
//!   joins has drained).
//! - `fanout`: `--conns` subscribers in one room and one publisher that keeps at most
//!   `--window` publications undelivered; reports deliveries per second and the
//!   publish-to-receive latency (p50/p99/p999).
//! - `chat`: `--conns` connections in `--rooms` rooms, each publishing `--rate` messages per
//!   second; reports the server's CPU (from `/proc/PID/stat`) and the latency.
//!
//! Every phase is bounded in time. Prints one JSON object on stdout.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Clone)]
struct Args {
    urls: Vec<String>,
    pids: Vec<u32>,
    workload: String,
    conns: usize,
    rooms: usize,
    window: u64,
    rate: f64,
    secs: f64,
    payload: usize,
    setup_secs: f64,
    label: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        urls: Vec::new(),
        pids: Vec::new(),
        workload: String::new(),
        conns: 100,
        rooms: 1,
        window: 100,
        rate: 1.0,
        secs: 10.0,
        payload: 100,
        setup_secs: 60.0,
        label: "server".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < args.len() {
        let v = args[i + 1].clone();
        let num = |v: &str| -> f64 { v.parse().expect("numeric option value") };
        match args[i].as_str() {
            "--url" => a.urls.push(v),
            "--pid" => a.pids.push(num(&v) as u32),
            "--workload" => a.workload = v,
            "--conns" => a.conns = num(&v) as usize,
            // 0: connect without joining.
            "--rooms" => a.rooms = num(&v) as usize,
            "--window" => a.window = (num(&v) as u64).max(1),
            "--rate" => a.rate = num(&v),
            "--secs" => a.secs = num(&v),
            "--payload" => a.payload = num(&v) as usize,
            "--setup-secs" => a.setup_secs = num(&v),
            "--label" => a.label = v,
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    assert!(!a.urls.is_empty(), "--url is required");
    a
}

impl Args {
    /// Which URL member `i` connects to: a room's members (`i`, `i + rooms`, ...) alternate
    /// between the URLs, so every room spans every instance.
    fn url_index(&self, i: usize) -> usize {
        (i / self.rooms.max(1)) % self.urls.len()
    }

    /// The process whose RSS the idle workload measures.
    fn first_pid(&self) -> u32 {
        self.pids.first().copied().unwrap_or(0)
    }

    /// utime + stime of every `--pid`, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        self.pids.iter().map(|pid| cpu_ticks(*pid)).sum()
    }
}

/// The fields of a server frame the load generator reads; everything else is skipped.
#[derive(Debug, Deserialize)]
struct Ev<'a> {
    #[serde(rename = "type", borrow)]
    ty: &'a str,
    #[serde(default)]
    data: Option<Stamp>,
}

/// What our publications carry: the send time in µs since the run's epoch, and a sequence.
#[derive(Debug, Deserialize)]
struct Stamp {
    #[serde(default)]
    t: u64,
    #[serde(default)]
    s: u64,
}

/// Calls `f` for each message in a text frame (one object, or a batch array).
fn for_each_event(text: &str, mut f: impl FnMut(&Ev<'_>)) {
    if text.starts_with('[') {
        if let Ok(evs) = serde_json::from_str::<Vec<Ev<'_>>>(text) {
            evs.iter().for_each(f);
        }
    } else if let Ok(ev) = serde_json::from_str::<Ev<'_>>(text) {
        f(&ev);
    }
}

/// Shared counters and the latency histogram of one run.
struct Shared {
    epoch: Instant,
    urls: Vec<String>,
    joined: AtomicUsize,
    failed: AtomicUsize,
    closed: AtomicUsize,
    frames: AtomicU64,
    deliveries: AtomicU64,
    /// Deliveries counted by the URL the receiver is connected to.
    deliveries_by_url: Vec<AtomicU64>,
    /// Only deliveries inside the measured window are recorded.
    measuring: AtomicBool,
    stop: AtomicBool,
    hist: Mutex<Histogram<u64>>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

async fn connect(url: &str) -> Option<Ws> {
    let mut req = url.into_client_request().ok()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("lifeline.v1"),
    );
    // Small buffers: 10,000 clients live in this one process.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let connecting = tokio_tungstenite::connect_async_with_config(req, Some(config), true);
    match tokio::time::timeout(Duration::from_secs(30), connecting).await {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

fn join_frame(room: &str) -> Message {
    Message::text(format!(r#"{{"type":"join","room":"{room}"}}"#))
}

fn publish_frame(room: &str, id: u64, t: u64, pad: &str) -> Message {
    Message::text(format!(
        r#"{{"type":"publish","room":"{room}","id":{id},"data":{{"t":{t},"s":{id},"p":"{pad}"}}}}"#
    ))
}

/// Reads one frame; records deliveries of our publications. Returns false when the socket ended.
fn on_frame(
    shared: &Shared,
    url_index: usize,
    msg: Message,
    joined: &mut bool,
    last_seq: Option<&AtomicU64>,
) -> bool {
    let text = match msg {
        Message::Text(t) => t,
        Message::Close(_) => return false,
        _ => return true,
    };
    shared.frames.fetch_add(1, Ordering::Relaxed);
    let now = shared.now_us();
    let measuring = shared.measuring.load(Ordering::Relaxed);
    let mut samples: Vec<u64> = Vec::new();
    for_each_event(text.as_str(), |ev| match ev.ty {
        "joined" if !*joined => {
            *joined = true;
            shared.joined.fetch_add(1, Ordering::Relaxed);
        }
        "message" => {
            if let Some(stamp) = &ev.data
                && stamp.t > 0
            {
                if let Some(last) = last_seq {
                    last.fetch_max(stamp.s, Ordering::Relaxed);
                }
                if measuring {
                    shared.deliveries.fetch_add(1, Ordering::Relaxed);
                    samples.push(now.saturating_sub(stamp.t).max(1));
                }
            }
        }
        _ => {}
    });
    if !samples.is_empty()
        && let Some(count) = shared.deliveries_by_url.get(url_index)
    {
        count.fetch_add(samples.len() as u64, Ordering::Relaxed);
    }
    if !samples.is_empty()
        && let Ok(mut h) = shared.hist.lock()
    {
        for s in samples {
            let _ = h.record(s);
        }
    }
    true
}

/// A member: joins `room`, then reads until stopped; with `publish_every`, also publishes.
async fn member(
    shared: Arc<Shared>,
    url_index: usize,
    room: String,
    last_seq: Option<Arc<AtomicU64>>,
    publish_every: Option<Duration>,
    pad: Arc<str>,
    mut permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let Some(mut ws) = connect(&shared.urls[url_index]).await else {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // An empty room name: connect only, join nothing (idle connections without rooms).
    let mut joined = room.is_empty();
    if joined {
        shared.joined.fetch_add(1, Ordering::Relaxed);
        permit.take();
    } else if ws.send(join_frame(&room)).await.is_err() {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let period = publish_every.unwrap_or(Duration::from_secs(3600));
    // Created when measuring starts, with a random phase that spreads the chat mix's
    // publications over the period.
    let mut tick: Option<tokio::time::Interval> = None;
    let mut id = 0u64;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let measuring = shared.measuring.load(Ordering::Relaxed);
        if publish_every.is_some() && measuring && tick.is_none() {
            let phase = period.mul_f64(fastrand::f64());
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick = Some(t);
        }
        let next_tick = async {
            match tick.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(msg)) => {
                    if !on_frame(&shared, url_index, msg, &mut joined, last_seq.as_deref()) {
                        shared.closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    if joined {
                        // Frees a handshake slot in `setup`.
                        permit.take();
                    }
                }
                _ => {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            },
            _ = next_tick, if measuring => {
                id += 1;
                if ws.send(publish_frame(&room, id, shared.now_us(), &pad)).await.is_err() {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Connects `n` members over `rooms` rooms (at most 256 handshakes at a time) and waits,
/// bounded, until every one has joined. Returns the setup time.
async fn setup(
    shared: &Arc<Shared>,
    args: &Args,
    n: usize,
    last: &[Arc<AtomicU64>],
    publish_every: Option<Duration>,
    pad: &Arc<str>,
) -> Result<f64, String> {
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    for i in 0..n {
        // The permit is held until the member has joined (or ended), which bounds the
        // handshakes in flight.
        let permit = tokio::time::timeout(
            Duration::from_secs_f64(args.setup_secs),
            gate.clone().acquire_owned(),
        )
        .await
        .map_err(|_| format!("setup stalled after {i} connections"))?
        .map_err(|e| e.to_string())?;
        let room = if args.rooms == 0 {
            String::new()
        } else {
            format!("room-{}", i % args.rooms)
        };
        let url_index = args.url_index(i);
        tokio::spawn(member(
            shared.clone(),
            url_index,
            room,
            last.get(i).cloned(),
            publish_every,
            pad.clone(),
            Some(permit),
        ));
        if started.elapsed().as_secs_f64() > args.setup_secs {
            return Err(format!(
                "setup exceeded {} s after {i} connections",
                args.setup_secs
            ));
        }
    }
    while shared.joined.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < n {
        if started.elapsed().as_secs_f64() > args.setup_secs {
            return Err(format!(
                "setup exceeded {} s: {} of {n} joined, {} failed, {} closed",
                args.setup_secs,
                shared.joined.load(Ordering::Relaxed),
                shared.failed.load(Ordering::Relaxed),
                shared.closed.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if shared.failed.load(Ordering::Relaxed) > 0 {
        return Err(format!(
            "{} connections failed",
            shared.failed.load(Ordering::Relaxed)
        ));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Waits until no frame has arrived for `quiet` (bounded by `max`): the joins' pushes drained.
async fn settle(shared: &Shared, quiet: Duration, max: Duration) {
    let end = Instant::now() + max;
    let mut last = shared.frames.load(Ordering::Relaxed);
    while Instant::now() < end {
        tokio::time::sleep(quiet).await;
        let now = shared.frames.load(Ordering::Relaxed);
        if now == last {
            return;
        }
        last = now;
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after it are space-separated.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; `after` starts at field 3.
    get(11) + get(12)
}

fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn latency_json(shared: &Shared) -> serde_json::Value {
    let h = shared
        .hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| new_hist());
    serde_json::json!({
        "samples": h.len(),
        "p50_us": h.value_at_quantile(0.5),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds are valid")
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let shared = Arc::new(Shared {
        urls: args.urls.clone(),
        deliveries_by_url: args.urls.iter().map(|_| AtomicU64::new(0)).collect(),
        epoch: Instant::now(),
        joined: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
        frames: AtomicU64::new(0),
        deliveries: AtomicU64::new(0),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        hist: Mutex::new(new_hist()),
    });
    let pad: Arc<str> = "x".repeat(args.payload.saturating_sub(40)).into();
    let rss_before = rss_kb(args.first_pid());
    let mut out = serde_json::json!({
        "label": args.label,
        "workload": args.workload,
        "conns": args.conns,
        "rooms": args.rooms,
        "instances": args.urls.len(),
    });
    let result = match args.workload.as_str() {
        "idle" => idle(&shared, &args, &pad, rss_before).await,
        "fanout" => fanout(&shared, &args, &pad).await,
        "chat" => chat(&shared, &args, &pad).await,
        other => Err(format!("unknown workload {other}")),
    };
    shared.stop.store(true, Ordering::Relaxed);
    match result {
        Ok(fields) => {
            if let (Some(o), Some(f)) = (out.as_object_mut(), fields.as_object()) {
                o.extend(f.clone());
            }
        }
        Err(e) => out["error"] = serde_json::Value::String(e),
    }
    out["closed_by_server"] = shared.closed.load(Ordering::Relaxed).into();
    out["deliveries_by_url"] = shared
        .deliveries_by_url
        .iter()
        .map(|d| d.load(Ordering::Relaxed))
        .collect::<Vec<_>>()
        .into();
    #[allow(clippy::print_stdout)]
    {
        println!("{out}");
    }
    // Exiting closes every socket at once; no need to wait for 10,000 close handshakes.
    std::process::exit(0);
}

async fn idle(
    shared: &Arc<Shared>,
    args: &Args,
    pad: &Arc<str>,
    rss_before: u64,
) -> Result<serde_json::Value, String> {
    let setup_s = setup(shared, args, args.conns, &[], None, pad).await?;
    settle(shared, Duration::from_millis(1000), Duration::from_secs(60)).await;
    let rss_after = rss_kb(args.first_pid());
    let per_conn = (rss_after.saturating_sub(rss_before) * 1024) as f64 / args.conns as f64;
    Ok(serde_json::json!({
        "setup_s": setup_s,
        "frames_during_setup": shared.frames.load(Ordering::Relaxed),
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "rss_per_conn_bytes": per_conn.round(),
    }))
}

async fn fanout(
    shared: &Arc<Shared>,
    args: &Args,
    pad: &Arc<str>,
) -> Result<serde_json::Value, String> {
    let last: Vec<Arc<AtomicU64>> = (0..args.conns)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let room = "room-0".to_string();
    let setup_s = setup(
        shared,
        &Args {
            rooms: 1,
            ..args.clone()
        },
        args.conns,
        &last,
        None,
        pad,
    )
    .await?;
    settle(shared, Duration::from_millis(500), Duration::from_secs(30)).await;

    let mut publisher = connect(&args.urls[0])
        .await
        .ok_or("publisher could not connect")?;
    publisher
        .send(join_frame(&room))
        .await
        .map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = publisher.split();
    // Drain the publisher's own frames (acks, its copy of each message) in the background.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });

    let cpu0 = args.cpu_ticks();
    let own0 = cpu_ticks(std::process::id());
    shared.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let run = Duration::from_secs_f64(args.secs);
    let mut seq = 0u64;
    while started.elapsed() < run {
        let min_last = last
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        if seq - min_last >= args.window {
            tokio::time::sleep(Duration::from_micros(200)).await;
            continue;
        }
        seq += 1;
        let frame = publish_frame(&room, seq, shared.now_us(), pad);
        tx.send(frame)
            .await
            .map_err(|e| format!("publisher: {e}"))?;
    }
    // Let the last window arrive (bounded), then stop counting.
    let tail = Instant::now();
    while last
        .iter()
        .map(|l| l.load(Ordering::Relaxed))
        .min()
        .unwrap_or(0)
        < seq
        && tail.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shared.measuring.store(false, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let cpu_s = args.cpu_ticks().saturating_sub(cpu0) as f64 / clock_ticks_per_sec();
    // The generator shares the 2 cores: when it is near 100% it, not the server, may be the limit.
    let own_s = (cpu_ticks(std::process::id()) - own0) as f64 / clock_ticks_per_sec();
    drain.abort();
    // Subscribers still short of the last publication when the bounded tail ended.
    let behind = last
        .iter()
        .filter(|l| l.load(Ordering::Relaxed) < seq)
        .count();
    let deliveries = shared.deliveries.load(Ordering::Relaxed);
    Ok(serde_json::json!({
        "setup_s": setup_s,
        "publishes": seq,
        "subscribers_behind_at_end": behind,
        "deliveries": deliveries,
        // Setup's frames included (a few per subscriber): deliveries per frame shows batching.
        "frames": shared.frames.load(Ordering::Relaxed),
        "secs": secs,
        "deliveries_per_s": (deliveries as f64 / secs).round(),
        "server_cpu_s": cpu_s,
        "server_cpu_pct": (cpu_s / secs * 100.0).round(),
        "loadgen_cpu_pct": (own_s / secs * 100.0).round(),
        "latency": latency_json(shared),
    }))
}

async fn chat(
    shared: &Arc<Shared>,
    args: &Args,
    pad: &Arc<str>,
) -> Result<serde_json::Value, String> {
    let every = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let setup_s = setup(shared, args, args.conns, &[], Some(every), pad).await?;
    settle(shared, Duration::from_millis(500), Duration::from_secs(30)).await;
    // Members publish while `measuring` is set.
    let cpu0 = args.cpu_ticks();
    let own0 = cpu_ticks(std::process::id());
    let started = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let cpu_s = args.cpu_ticks().saturating_sub(cpu0) as f64 / clock_ticks_per_sec();
    // The generator shares the 2 cores: when it is near 100% it, not the server, may be the limit.
    let own_s = (cpu_ticks(std::process::id()) - own0) as f64 / clock_ticks_per_sec();
    let deliveries = shared.deliveries.load(Ordering::Relaxed);
    let members_per_room = args.conns as f64 / args.rooms.max(1) as f64;
    Ok(serde_json::json!({
        "setup_s": setup_s,
        "secs": secs,
        "deliveries": deliveries,
        "deliveries_per_s": (deliveries as f64 / secs).round(),
        "expected_deliveries_per_s": (args.conns as f64 * args.rate * members_per_room).round(),
        "server_cpu_s": cpu_s,
        "server_cpu_pct": (cpu_s / secs * 100.0).round(),
        "loadgen_cpu_pct": (own_s / secs * 100.0).round(),
        "rss_kb": rss_kb(args.first_pid()),
        "latency": latency_json(shared),
    }))
}
