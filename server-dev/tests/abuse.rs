//! What one client, or one hostile host, can and cannot do to the server, at its default limits
//! unless a test says why not. Covers:
//! - a client that sends 500 frames at once is slowed down (flow control), not closed: every
//!   one is answered, in order;
//! - connections above the per-IP cap get HTTP 503 before the upgrade, other addresses and
//!   connections already open are served, and closing connections frees slots;
//! - 2,000 connections from one address: at most the cap are accepted, the rest refused, and a
//!   normal client still works;
//! - `/api/login` above the per-IP rate gets 429 with `Retry-After`; other addresses do not;
//! - a panic in one connection's task ends that connection only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Client, TestServer, WAIT, assert_queues_within_budget, field, health, http, request};
use futures::{SinkExt, StreamExt};
use protocol::{ClientMsg, ServerMsg};
use server_dev::Config;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Another loopback address than the flood's 127.0.0.1: the server sees a second client host.
const OTHER_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Default limits; no tickets, which are not what these tests are about.
fn defaults() -> Config {
    Config::default().no_auth(true)
}

async fn tcp_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Opens `/ws` from the address `from`; Err carries the HTTP status of a refused upgrade.
async fn ws_from(
    server: &TestServer,
    from: IpAddr,
    name: &str,
) -> Result<WebSocketStream<TcpStream>, u16> {
    let stream = tcp_from(from, server.addr).await;
    let url = server.ws_url(&format!("/ws?name={name}"));
    let handshake = tokio_tungstenite::client_async(request(&url, None), stream);
    match tokio::time::timeout(WAIT, handshake)
        .await
        .expect("handshake")
    {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(other) => panic!("handshake failed: {other}"),
    }
}

/// Checks that `ws` is served: a ping gets its pong.
async fn ping_pong<S>(ws: &mut WebSocketStream<S>, id: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ping = serde_json::to_string(&ClientMsg::<protocol::Data>::Ping { id }).unwrap();
    ws.send(Message::text(ping)).await.unwrap();
    common::raw_until(
        ws,
        |m| matches!(m, ServerMsg::Pong { id: got } if *got == id),
    )
    .await;
}

/// Closes every socket, a few at a time, each bounded.
async fn close_all<S>(sockets: Vec<WebSocketStream<S>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    futures::stream::iter(sockets)
        .for_each_concurrent(32, |mut ws| async move {
            let _ = tokio::time::timeout(WAIT, ws.close(None)).await;
        })
        .await;
}

#[tokio::test]
async fn five_hundred_frames_at_once_are_all_answered_in_order_at_the_default_rate() {
    let server = TestServer::start(defaults()).await;
    let client = Client::connect(&server, "eager").await;
    let (mut tx, mut rx) = client.ws.split();
    let started = Instant::now();
    let send = async {
        for id in 1..=500u64 {
            let ping = serde_json::to_string(&ClientMsg::<protocol::Data>::Ping { id }).unwrap();
            tx.feed(Message::text(ping)).await.unwrap();
        }
        tx.flush().await.unwrap();
    };
    let receive = async {
        let mut pongs = Vec::new();
        while pongs.len() < 500 {
            let frame = tokio::time::timeout(WAIT, rx.next())
                .await
                .expect("a frame within WAIT")
                .expect("open")
                .expect("no error");
            match frame {
                Message::Text(t) => {
                    for msg in protocol::decode_server_frame(t.as_str()).unwrap() {
                        if let ServerMsg::Pong { id } = msg {
                            pongs.push(id);
                        }
                    }
                }
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
        pongs
    };
    let ((), pongs) = tokio::join!(send, receive);
    let took = started.elapsed();
    assert_eq!(pongs, (1..=500).collect::<Vec<_>>());
    // Burst 100, then 50/s: (500 - 100) / 50 = 8 s if throttled; well under a second if not.
    assert!(took >= Duration::from_secs(7), "throttled: {took:?}");
    let mut ws = tx.reunite(rx).unwrap();
    ping_pong(&mut ws, 501).await;
    ws.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn per_ip_cap_refuses_with_503_serves_others_and_frees_slots_on_close() {
    // A cap of 4 instead of 256: the test is about the cap, not the count.
    let cap = 4;
    let server = TestServer::start(defaults().max_connections_per_ip(cap)).await;
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut open = Vec::new();
    for i in 0..cap {
        open.push(ws_from(&server, local, &format!("a{i}")).await.unwrap());
    }
    for i in 0..3 {
        let refused = ws_from(&server, local, &format!("x{i}")).await;
        assert_eq!(refused.err(), Some(503));
    }
    // Another address is served, and so are the connections already open.
    let mut other = ws_from(&server, OTHER_HOST, "other").await.unwrap();
    ping_pong(&mut other, 1).await;
    ping_pong(&mut open[0], 2).await;

    // Closing two frees two slots (once the server has seen them go).
    close_all(open.drain(..2).collect()).await;
    let mut reopened = Vec::new();
    for round in 0..200 {
        match ws_from(&server, local, &format!("b{round}")).await {
            Ok(ws) => reopened.push(ws),
            Err(status) => {
                assert_eq!(status, 503);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if reopened.len() == 2 {
            break;
        }
    }
    assert_eq!(reopened.len(), 2, "two slots freed");
    assert_eq!(ws_from(&server, local, "y").await.err(), Some(503));
    ping_pong(&mut reopened[1], 3).await;
    open.extend(reopened);
    open.push(other);
    close_all(open).await;
    server.stop().await;
}

#[tokio::test]
async fn two_thousand_connections_from_one_ip_at_defaults() {
    let server = TestServer::start(defaults()).await;
    let cap = Config::default().max_connections_per_ip;
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..2000)
        .map(|i| {
            let server = &server;
            async move { ws_from(server, local, &format!("h{i}")).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for result in results {
        match result {
            Ok(ws) => accepted.push(ws),
            Err(503) => refused += 1,
            Err(status) => panic!("unexpected status {status}"),
        }
    }
    assert!(accepted.len() <= cap, "{} > {cap}", accepted.len());
    assert_eq!(accepted.len(), cap, "nothing else holds a slot");
    assert_eq!(refused, 2000 - accepted.len());
    // What the accepted connections hold: sessions only once they say hello, and no queue.
    let h = health(server.addr).await;
    assert!(
        field(&h, "sessions") <= defaults().max_sessions as u64,
        "{h}"
    );
    assert_queues_within_budget(&h, &defaults());

    // A normal client (another host) works meanwhile, and so does one of the flood's.
    let mut normal = ws_from(&server, OTHER_HOST, "normal").await.unwrap();
    ping_pong(&mut normal, 1).await;
    ping_pong(&mut accepted[0], 2).await;
    accepted.push(normal);
    close_all(accepted).await;
    println!(
        "2,000 handshakes and the checks took {:?}",
        started.elapsed()
    );
    server.stop().await;
}

/// `POST /api/login` from the address `from`; returns the status and the response head
/// (lowercase).
async fn login_from(from: IpAddr, to: SocketAddr, name: &str) -> (u16, String) {
    let body = format!(r#"{{"name":"{name}"}}"#);
    let stream = tcp_from(from, to).await;
    let (status, head, _) =
        common::http_on(stream, to, "POST", "/api/login", Some(&body), "").await;
    (status, head)
}

#[tokio::test]
async fn logins_above_the_per_ip_rate_get_429_with_retry_after() {
    let server = TestServer::start(Config::default()).await;
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let burst = Config::default().login_burst as usize;
    for i in 0..burst {
        assert_eq!(
            login_from(local, server.addr, &format!("u{i}")).await.0,
            200
        );
    }
    // The bucket refills at 5/s, so a few more may pass while these run; not many.
    let mut limited = None;
    for i in 0..10 {
        let (status, head) = login_from(local, server.addr, &format!("v{i}")).await;
        if status == 429 {
            limited = Some(head);
            break;
        }
        assert_eq!(status, 200);
    }
    let head = limited.expect("a 429 within 10 logins past the burst");
    let retry_after = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .expect("Retry-After")
        .trim()
        .parse::<u64>()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    // Per address: another host logs in.
    assert_eq!(login_from(OTHER_HOST, server.addr, "other").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_panic_in_one_connection_ends_that_connection_only() {
    let server = TestServer::start(defaults().test_endpoints(true)).await;
    let mut ann = Client::connect(&server, "ann").await;
    ann.join("r").await;
    let mut bob = Client::connect(&server, "bob").await;
    bob.join("r").await;
    let mut doomed = Client::connect(&server, "doomed").await;
    doomed.join("r").await;
    let members = |names: &'static [&'static str]| move |m: &ServerMsg| matches!(m, ServerMsg::Presence { members, .. } if members == names);
    ann.until(members(&["ann", "bob", "doomed"])).await;

    doomed.send_text(r#"{"type":"test_panic"}"#).await;
    // The connection ends without a close frame.
    assert_eq!(common::until_end(&mut doomed.ws).await, None);
    // The hub forgot it: the room's members see it leave.
    ann.until(members(&["ann", "bob"])).await;

    // The others keep working, and new connections are accepted.
    let publish = ClientMsg::Publish {
        room: "r".into(),
        id: 1,
        data: "still here".into(),
    };
    ann.send(&publish).await;
    bob.until(|m| matches!(m, ServerMsg::Message { data, .. } if data == "still here"))
        .await;
    let mut carl = Client::connect(&server, "carl").await;
    carl.send(&ClientMsg::Ping { id: 9 }).await;
    carl.until(|m| matches!(m, ServerMsg::Pong { id: 9 })).await;
    let (status, _) = http(server.addr, "GET", "/api/health", None).await;
    assert_eq!(status, 200);
    for c in [ann, bob, carl] {
        let mut ws = c.ws;
        ws.close(None).await.unwrap();
    }
    server.stop().await;
}
