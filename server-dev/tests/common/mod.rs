//! Shared helpers: a real server on 127.0.0.1:0 and a tokio-tungstenite client.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use protocol::{ClientMsg, ServerMsg};
use server_dev::{Config, TlsSetup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(5);

/// A server running in this process until `stop` (or drop).
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<server_dev::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        Self::start_with(config, None).await
    }

    pub async fn start_with(config: Config, tls: Option<TlsSetup>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server_dev::serve(listener, config, tls, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Signals shutdown and waits (bounded) for `serve` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("serve returns")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// No auth and test endpoints on; every limit at its default.
pub fn open_config() -> Config {
    Config::default().no_auth(true).test_endpoints(true)
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A protocol v1 client.
pub struct Client {
    pub ws: Ws,
    /// Messages of a batch frame not consumed yet.
    pending: std::collections::VecDeque<ServerMsg>,
}

pub fn request(
    url: &str,
    origin: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(protocol::SUBPROTOCOL),
    );
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    req
}

/// Opens a WebSocket; Err carries the HTTP status of a refused upgrade.
pub async fn try_connect(url: &str, origin: Option<&str>) -> Result<Ws, u16> {
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request(url, origin)))
        .await
        .expect("handshake within WAIT")
    {
        Ok((ws, resp)) => {
            if url.contains("/ws") {
                assert_eq!(
                    resp.headers()
                        .get("sec-websocket-protocol")
                        .map(|v| v.to_str().unwrap()),
                    Some(protocol::SUBPROTOCOL)
                );
            }
            Ok(ws)
        }
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(other) => panic!("handshake failed: {other}"),
    }
}

impl Client {
    pub async fn connect(server: &TestServer, name: &str) -> Self {
        let ws = try_connect(&server.ws_url(&format!("/ws?name={name}")), None)
            .await
            .unwrap();
        Self::from_ws(ws)
    }

    pub fn from_ws(ws: Ws) -> Self {
        Self {
            ws,
            pending: Default::default(),
        }
    }

    /// The next message, from a buffered batch or a new frame.
    pub async fn next_msg(&mut self) -> ServerMsg {
        for _ in 0..1000 {
            if let Some(msg) = self.pending.pop_front() {
                return msg;
            }
            let msgs = self.next_msgs().await;
            self.pending.extend(msgs);
        }
        panic!("only empty batches");
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_text(&serde_json::to_string(msg).unwrap()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next data frame as raw text (pings are answered by tungstenite and skipped).
    pub async fn next_frame(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within WAIT")
                .expect("stream open")
                .expect("no error");
            match msg {
                Message::Text(t) => return t.as_str().to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Messages of the next frame (one, or several for a batch).
    pub async fn next_msgs(&mut self) -> Vec<ServerMsg> {
        protocol::decode_server_frame(&self.next_frame().await).unwrap()
    }

    /// Reads until a message matches `pred`, returning it and everything read before it.
    pub async fn until(
        &mut self,
        pred: impl Fn(&ServerMsg) -> bool,
    ) -> (ServerMsg, Vec<ServerMsg>) {
        let mut before = Vec::new();
        for _ in 0..10_000 {
            let msg = self.next_msg().await;
            if pred(&msg) {
                return (msg, before);
            }
            before.push(msg);
        }
        panic!("no matching message; got {before:?}");
    }

    /// Sends `hello` (resuming `session` if given) and returns the welcome's session token and
    /// whether it was resumed.
    pub async fn hello(&mut self, session: Option<String>) -> (String, bool) {
        self.send(&ClientMsg::Hello {
            session,
            publisher: None,
        })
        .await;
        match self
            .until(|m| matches!(m, ServerMsg::Welcome { .. }))
            .await
            .0
        {
            ServerMsg::Welcome {
                session, resumed, ..
            } => (session, resumed),
            _ => unreachable!(),
        }
    }

    pub async fn join(&mut self, room: &str) -> ServerMsg {
        self.send(&ClientMsg::Join {
            room: room.into(),
            since: None,
        })
        .await;
        self.until(|m| matches!(m, ServerMsg::Joined { .. }))
            .await
            .0
    }

    /// Reads until the close frame and returns it; fails on an error or an end without one.
    pub async fn expect_close(&mut self) -> CloseFrame {
        expect_close(&mut self.ws).await
    }
}

/// Reads (bounded) until a close frame.
pub async fn expect_close<S>(ws: &mut WebSocketStream<S>) -> CloseFrame
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for _ in 0..100_000 {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close within WAIT");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                // Keep polling so tungstenite sends its close reply and the handshake ends.
                let _ =
                    tokio::time::timeout(WAIT, async { while ws.next().await.is_some() {} }).await;
                return frame;
            }
            Some(Ok(Message::Close(None))) => panic!("close without code"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => panic!("error before close frame: {err}"),
            None => panic!("stream ended without close frame"),
        }
    }
    panic!("no close frame");
}

/// A minimal HTTP/1.1 request; returns status and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let (status, _, body) = http_full(addr, method, path, body, "").await;
    (status, body)
}

/// Like [`http`], with extra header lines (each ending in CRLF) and the response head.
pub async fn http_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra_headers: &str,
) -> (u16, String, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    http_on(stream, addr, method, path, body, extra_headers).await
}

/// [`http_full`] over a connection already made (for example from a chosen local address).
pub async fn http_on(
    mut stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra_headers: &str,
) -> (u16, String, String) {
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// Reads until the connection ends: its close frame, or `None` when it ended without one
/// (a dropped connection).
pub async fn until_end<S>(ws: &mut WebSocketStream<S>) -> Option<Option<CloseFrame>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return Some(frame),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .unwrap()
}

/// A client whose socket has a tiny receive buffer, so the server's writes block soon after it
/// stops reading.
pub async fn connect_small_window(server: &TestServer, name: &str) -> WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let url = server.ws_url(&format!("/ws?name={name}"));
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(request(&url, None), stream),
    )
    .await
    .unwrap()
    .unwrap();
    ws
}

/// Reads (bounded) until a message matching `pred` from a raw stream.
pub async fn raw_until<S>(ws: &mut WebSocketStream<S>, pred: impl Fn(&ServerMsg) -> bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for _ in 0..10_000 {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg
            && protocol::decode_server_frame(t.as_str())
                .unwrap()
                .iter()
                .any(&pred)
        {
            return;
        }
    }
    panic!("no matching message");
}

/// `/api/health`'s JSON.
pub async fn health(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = http(addr, "GET", "/api/health", None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A numeric field of `/api/health`'s JSON.
pub fn field(health: &serde_json::Value, name: &str) -> u64 {
    health[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {health}"))
}

/// Asserts that the queued bytes in `h` are within `config`'s budgets.
pub fn assert_queues_within_budget(h: &serde_json::Value, config: &Config) {
    assert!(
        field(h, "queued_bytes") <= config.queue_total_bytes as u64,
        "{h}"
    );
    assert!(
        field(h, "queued_bytes_peak") <= config.queue_total_bytes as u64,
        "{h}"
    );
    assert!(
        field(h, "queued_bytes_conn_max") <= config.queue_conn_bytes as u64,
        "{h}"
    );
}
