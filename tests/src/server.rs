//! A `server-dev` running in this process on a loopback port, and a small protocol v1 client,
//! for cross-crate tests.
//!
//! ```no_run
//! # async fn run() {
//! use lifeline_tests::server::{ProtoClient, RunningServer};
//! let server = RunningServer::start(server_dev::Config::default().no_auth(true)).await.unwrap();
//! let mut client = ProtoClient::connect(&server.ws_url("/ws?name=ann")).await.unwrap();
//! client.send(&protocol::ClientMsg::Ping { id: 1 }).await.unwrap();
//! server.stop().await;
//! # }
//! ```

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use protocol::{ClientMsg, ServerMsg, Since};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long helpers wait for anything before giving up.
pub const WAIT: Duration = Duration::from_secs(5);

/// A server serving in a task of the current runtime until [`RunningServer::stop`] or drop.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<server_dev::Result<()>>>,
}

impl RunningServer {
    /// Starts on `127.0.0.1:0`.
    pub async fn start(config: server_dev::Config) -> io::Result<Self> {
        Self::start_at("127.0.0.1:0".parse().map_err(io::Error::other)?, config).await
    }

    /// Starts on `addr`, e.g. the address of a server that was just stopped (a restart).
    pub async fn start_at(addr: SocketAddr, config: server_dev::Config) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server_dev::serve(listener, config, None, async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR{path_and_query}`.
    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    /// Shuts down (every WebSocket gets 1001) and waits, bounded, for the server to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(WAIT, task).await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What a [`ProtoClient`] call can fail with.
#[derive(Debug)]
pub enum ClientError {
    /// The WebSocket failed.
    Ws(tungstenite::Error),
    /// Nothing arrived within [`WAIT`].
    Timeout,
    /// The connection ended; the close frame, if there was one.
    Closed(Option<u16>),
    /// A frame did not decode as protocol v1.
    Decode(String),
}

impl From<tungstenite::Error> for ClientError {
    fn from(err: tungstenite::Error) -> Self {
        ClientError::Ws(err)
    }
}

/// A protocol v1 client that unpacks batch frames.
#[derive(Debug)]
pub struct ProtoClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pending: VecDeque<ServerMsg>,
    frames: usize,
}

impl ProtoClient {
    /// Connects, offering the `lifeline.v1` subprotocol.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        let mut req = url.into_client_request()?;
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(protocol::SUBPROTOCOL),
        );
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| ClientError::Timeout)??;
        Ok(Self {
            ws,
            pending: VecDeque::new(),
            frames: 0,
        })
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &ClientMsg) -> Result<(), ClientError> {
        let text = serde_json::to_string(msg).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// Sends `hello` (resuming `session` if given); returns the welcome's session token and
    /// whether it was resumed.
    pub async fn hello(&mut self, session: Option<String>) -> Result<(String, bool), ClientError> {
        self.send(&ClientMsg::Hello {
            session,
            publisher: None,
        })
        .await?;
        match self
            .until(|m| matches!(m, ServerMsg::Welcome { .. }))
            .await?
        {
            ServerMsg::Welcome {
                session, resumed, ..
            } => Ok((session, resumed)),
            other => Err(ClientError::Decode(format!("not a welcome: {other:?}"))),
        }
    }

    /// Sends `join` for `room` (recovering from `since` if given); returns the `joined` answer.
    pub async fn join(
        &mut self,
        room: &str,
        since: Option<Since>,
    ) -> Result<ServerMsg, ClientError> {
        self.send(&ClientMsg::Join {
            room: room.into(),
            since,
        })
        .await?;
        self.until(|m| matches!(m, ServerMsg::Joined { .. })).await
    }

    /// Number of data frames received so far (a batch counts once).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The next message, unpacking batches.
    pub async fn next_msg(&mut self) -> Result<ServerMsg, ClientError> {
        loop {
            if let Some(msg) = self.pending.pop_front() {
                return Ok(msg);
            }
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .map_err(|_| ClientError::Timeout)?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    self.frames += 1;
                    let msgs = protocol::decode_server_frame(text.as_str())
                        .map_err(|e| ClientError::Decode(format!("{e}: {}", text.as_str())))?;
                    self.pending.extend(msgs);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(ClientError::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err.into()),
                None => return Err(ClientError::Closed(None)),
            }
        }
    }

    /// Reads until a message matches `pred` (at most 100 000 messages); returns it.
    pub async fn until(
        &mut self,
        pred: impl Fn(&ServerMsg) -> bool,
    ) -> Result<ServerMsg, ClientError> {
        Ok(self.until_with_before(pred).await?.0)
    }

    /// Reads until a message matches `pred` (at most 100 000 messages); returns it and the
    /// messages read before it.
    pub async fn until_with_before(
        &mut self,
        pred: impl Fn(&ServerMsg) -> bool,
    ) -> Result<(ServerMsg, Vec<ServerMsg>), ClientError> {
        let mut before = Vec::new();
        for _ in 0..100_000 {
            let msg = self.next_msg().await?;
            if pred(&msg) {
                return Ok((msg, before));
            }
            before.push(msg);
        }
        Err(ClientError::Timeout)
    }
}
