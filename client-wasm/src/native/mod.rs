//! The native shell (feature `native`): the same [`Session`] and [`Client`] API as in the
//! browser, driven by tokio and tokio-tungstenite.
//!
//! One driver task owns the sockets and the timer; each socket has a reader task that feeds
//! frames back to it. User calls lock the shared core, act on it and wake the driver.
//! Dropping the [`Client`] stops the driver and every socket task (their TCP connections
//! close).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ws_lifeline::machine::rooms::RoomEvent;
//! use ws_lifeline::native::{Client, ClientEvent};
//! use ws_lifeline::Config;
//!
//! let mut client = Client::connect("ws://127.0.0.1:8080/ws", Config::default())?;
//! client.join("lobby")?;
//! let ack = client.publish("lobby", &"hello")?.await?; // resolves on the server's ack
//! println!("offset {}", ack.offset);
//! while let Some(event) = client.next_event().await {
//!     if let ClientEvent::Room(RoomEvent::Message(m)) = event {
//!         println!("{}: {}", m.from, m.data);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use futures::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::ClientRequestBuilder;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::client::{Backend, Provider};
pub use crate::client::{Client, ClientHandle};
#[cfg(feature = "persist")]
use crate::machine::rooms::outbox::{OutboxConfig, OutboxError, OutboxSnapshot};
use crate::machine::session::{Io, Session};
use crate::machine::{CloseInfo, ConnId, Input, Instant, Target};
use crate::{Config, Error, Message, Result};

/// What a [`Client`] reports, in order: connection events and room events. While the rooms
/// layer runs (always, in this shell) text frames arrive as room events, never as messages;
/// see [`crate::machine::session`].
pub use crate::machine::session::SessionEvent as ClientEvent;

struct Core {
    session: Session,
    events: mpsc::UnboundedSender<ClientEvent>,
    /// Where the outbox's snapshots go, called by the driver.
    #[cfg(feature = "persist")]
    store: Option<StoreFn>,
}

/// The application's store of outbox snapshots.
#[cfg(feature = "persist")]
type StoreFn = Box<dyn FnMut(&OutboxSnapshot) + Send>;

struct Shared {
    core: Mutex<Core>,
    provider: Option<Provider>,
    wake: Notify,
    origin: tokio::time::Instant,
    /// The `Client` is gone; its handles do nothing.
    dropped: AtomicBool,
}

impl Shared {
    fn now(&self) -> Instant {
        Instant(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the session, then wakes the driver to carry out what it decided.
    fn act<R>(&self, f: impl FnOnce(&mut Session, Instant) -> R) -> R {
        let now = self.now();
        let out = f(&mut self.lock().session, now);
        self.wake.notify_one();
        out
    }
}

/// The native side of a [`ClientHandle`](crate::ClientHandle): `None` once the client is gone.
#[derive(Clone)]
pub(crate) struct WeakHost(Weak<Shared>);

impl WeakHost {
    pub(crate) fn act<R>(&self, f: impl FnOnce(&mut Session, Instant) -> R) -> Option<R> {
        let shared = self.0.upgrade()?;
        (!shared.dropped.load(Ordering::Relaxed)).then(|| shared.act(f))
    }
}

/// The native side of a [`Client`]: the driver task and the channel events arrive on. Dropping
/// it stops the driver and every socket task (their TCP connections close).
pub(crate) struct Host {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<ClientEvent>,
    driver: JoinHandle<()>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shared.dropped.store(true, Ordering::Relaxed);
        // The driver owns the socket tasks; aborting it drops them, which aborts them too.
        self.driver.abort();
    }
}

impl Host {
    pub(crate) fn act<R>(&self, f: impl FnOnce(&mut Session, Instant) -> R) -> R {
        self.shared.act(f)
    }

    pub(crate) fn downgrade(&self) -> WeakHost {
        WeakHost(Arc::downgrade(&self.shared))
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&Session) -> R) -> R {
        f(&self.shared.lock().session)
    }

    /// A session on this shell's seed and clock, whose time starts when [`run`](Self::run)
    /// starts the driver.
    pub(crate) fn new_session(config: Config, target: Target) -> Result<Session> {
        Session::new(config, target, seed(), Instant(0))
    }

    /// Starts the driver of `session`. Natively the rooms layer runs from the start: protocol
    /// v1 from the first attempt on.
    pub(crate) fn run(mut session: Session, provider: Option<Provider>) -> Host {
        session.start_rooms(Instant(0));
        let origin = tokio::time::Instant::now();
        let (tx, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                session,
                events: tx,
                #[cfg(feature = "persist")]
                store: None,
            }),
            provider,
            wake: Notify::new(),
            origin,
            dropped: AtomicBool::new(false),
        });
        let driver = tokio::spawn(drive(Arc::clone(&shared)));
        Host {
            shared,
            events,
            driver,
        }
    }
}

/// Events of the native [`Client`]; the rest of its API is the browser's.
impl Client {
    /// The driver's side: natively every client has its own session.
    fn native_host(&mut self) -> &mut Host {
        match &mut self.backend {
            Backend::Local(host) => host,
        }
    }

    /// The next event; `None` once the client has stopped.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.native_host().events.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_next_event(&mut self) -> Option<ClientEvent> {
        self.native_host().events.try_recv().ok()
    }
}

/// Per-process random keys: a different jitter seed (and publisher id) for every client.
fn seed() -> u64 {
    std::hash::BuildHasher::hash_one(
        &std::collections::hash_map::RandomState::new(),
        std::process::id(),
    )
}

/// The persistent outbox (feature `persist`): see
/// [`outbox`](crate::machine::rooms::outbox). This shell stores nothing itself: the
/// application takes [`outbox_snapshot`](Client::outbox_snapshot) and keeps it where the next
/// process finds it.
#[cfg(feature = "persist")]
impl Client {
    /// As [`connect`](Self::connect), with the persistent outbox on: restored from `snapshot`
    /// (the last one `store` was given by an earlier client) when given. The driver calls
    /// `store` with every changed snapshot before it sends what the change lets out; `store`
    /// returns once the snapshot is kept (written to a file, for example). Must be called
    /// inside a tokio runtime.
    ///
    /// Errors: [`OutboxError::Client`] with [`Error::InvalidUrl`], and those of
    /// [`Rooms::restore`](crate::machine::rooms::Rooms::restore).
    pub fn connect_persistent(
        url: &str,
        config: Config,
        outbox: OutboxConfig,
        snapshot: Option<OutboxSnapshot>,
        store: impl FnMut(&OutboxSnapshot) + Send + 'static,
    ) -> Result<Client, OutboxError> {
        let mut session = Host::new_session(config, Target::Url(url.to_owned()))?;
        session.persist(Instant(0), outbox, snapshot)?;
        let host = Host::run(session, None);
        // A driver run before this line sends no publish in a session no stored snapshot
        // names (a restored session is stored already); its snapshot is taken on the next.
        host.shared.lock().store = Some(Box::new(store));
        host.shared.wake.notify_one();
        let client = Client {
            backend: Backend::Local(host),
        };
        Ok(client)
    }
}

enum Out {
    Frame(Message),
    Close(u16, String),
}

/// A task the driver started; dropping it aborts the task.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A socket task and its writer queue; dropping it aborts the task (closing TCP).
struct Socket {
    tx: mpsc::UnboundedSender<Out>,
    buffered: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn drive(shared: Arc<Shared>) {
    let (input_tx, mut inputs) = mpsc::unbounded_channel::<Input>();
    let mut io_state = IoState {
        sockets: HashMap::new(),
        resolving: None,
        provider: shared.provider.clone(),
        inputs: input_tx,
    };
    loop {
        let (io, deadline) = {
            let mut core = shared.lock();
            #[cfg(feature = "persist")]
            let Core {
                session,
                events,
                store,
            } = &mut *core;
            #[cfg(not(feature = "persist"))]
            let Core { session, events } = &mut *core;
            #[allow(unused_mut)] // extended with the persist feature
            let mut io: Vec<Io> = std::iter::from_fn(|| session.poll_io()).collect();
            #[cfg(feature = "persist")]
            if let Some(store) = store.as_mut() {
                // Stored before the I/O runs: publishes wait for a snapshot naming their
                // session, and this lets them out.
                while let Some(snapshot) = session.poll_outbox() {
                    store(&snapshot);
                    session.outbox_stored(shared.now(), &snapshot);
                    io.extend(std::iter::from_fn(|| session.poll_io()));
                }
            }
            while let Some(event) = session.poll_event() {
                let _ = events.send(event);
            }
            (io, session.poll_timeout())
        };
        for io in io {
            io_state.execute(io);
        }
        let sleep = async {
            match deadline {
                Some(at) => {
                    let at = shared.origin + std::time::Duration::from_millis(at.0);
                    tokio::time::sleep_until(at).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            input = inputs.recv() => {
                // The driver holds a sender, so the channel never closes.
                let Some(input) = input else { return };
                let now = shared.now();
                let mut core = shared.lock();
                core.session.handle(now, input);
                // Take what else has arrived, so a burst costs one wake-up.
                while let Ok(input) = inputs.try_recv() {
                    core.session.handle(now, input);
                }
            }
            () = shared.wake.notified() => {}
            () = sleep => {
                let now = shared.now();
                shared.lock().session.handle_timeout(now);
            }
        }
    }
}

/// What the driver's I/O holds: the sockets, the URL provider's run, the way back in.
struct IoState {
    sockets: HashMap<ConnId, Socket>,
    /// The provider's run for the latest attempt; an older one is dropped with it.
    resolving: Option<Task>,
    provider: Option<Provider>,
    inputs: mpsc::UnboundedSender<Input>,
}

impl IoState {
    fn execute(&mut self, io: Io) {
        match io {
            Io::ResolveUrl { conn } => {
                let (provider, inputs) = (self.provider.clone(), self.inputs.clone());
                self.resolving = Some(Task(tokio::spawn(async move {
                    let result = match provider {
                        Some(provider) => provider().await,
                        // Only a client made with a provider asks for one.
                        None => Err("no URL provider".to_owned()),
                    };
                    let _ = inputs.send(Input::UrlResolved { conn, result });
                })));
            }
            Io::Open {
                conn,
                url,
                protocols,
            } => {
                // The session has moved on from every earlier socket.
                self.sockets.clear();
                let (tx, rx) = mpsc::unbounded_channel();
                let buffered = Arc::new(AtomicU64::new(0));
                let task = tokio::spawn(run_socket(
                    conn,
                    url,
                    protocols,
                    rx,
                    Arc::clone(&buffered),
                    self.inputs.clone(),
                ));
                self.sockets.insert(conn, Socket { tx, buffered, task });
            }
            Io::Transmit { conn, message } => {
                if let Some(s) = self.sockets.get(&conn) {
                    s.buffered
                        .fetch_add(message.len() as u64, Ordering::Relaxed);
                    let _ = s.tx.send(Out::Frame(message));
                }
            }
            Io::Close { conn, code, reason } => {
                if let Some(s) = self.sockets.get(&conn) {
                    let _ = s.tx.send(Out::Close(code, reason));
                }
            }
            Io::Abandon { conn, .. } => {
                self.sockets.remove(&conn);
            }
            Io::PollBuffered { conn } => {
                if let Some(s) = self.sockets.get(&conn) {
                    let amount = s.buffered.load(Ordering::Relaxed);
                    let _ = self.inputs.send(Input::BufferedAmount { conn, amount });
                }
            }
        }
    }
}

async fn run_socket(
    conn: ConnId,
    url: String,
    protocols: Vec<String>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    buffered: Arc<AtomicU64>,
    inputs: mpsc::UnboundedSender<Input>,
) {
    let request = url.parse::<Uri>().map(|uri| {
        let builder = ClientRequestBuilder::new(uri);
        protocols
            .into_iter()
            .fold(builder, ClientRequestBuilder::with_sub_protocol)
    });
    let connected = match request {
        Ok(request) => tokio_tungstenite::connect_async(request).await,
        Err(e) => Err(e.into()),
    };
    let (ws, response) = match connected {
        Ok(ok) => ok,
        Err(e) => {
            let error = Error::Platform {
                message: e.to_string(),
            };
            let _ = inputs.send(Input::OpenFailed { conn, error });
            return;
        }
    };
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _ = inputs.send(Input::SocketOpened { conn, protocol });
    let (mut sink, mut stream) = ws.split();
    let info = loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Frame(m)) => {
                    let len = m.len() as u64;
                    let frame = match m {
                        Message::Text(t) => tungstenite::Message::text(t),
                        Message::Binary(b) => tungstenite::Message::binary(b),
                    };
                    let sent = sink.send(frame).await;
                    buffered.fetch_sub(len.min(buffered.load(Ordering::Relaxed)), Ordering::Relaxed);
                    if let Err(e) = sent {
                        let _ = inputs.send(Input::SocketError { conn });
                        break CloseInfo::abnormal(e.to_string());
                    }
                }
                Some(Out::Close(code, reason)) => {
                    // The reply arrives below; the session gives up on it after `close_timeout`.
                    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                    let _ = sink.send(tungstenite::Message::Close(Some(frame))).await;
                }
                // The driver dropped this socket.
                None => return,
            },
            msg = stream.next() => match msg {
                Some(Ok(tungstenite::Message::Text(t))) => {
                    let message = Message::Text(t.as_str().to_owned());
                    let _ = inputs.send(Input::SocketMessage { conn, message });
                }
                Some(Ok(tungstenite::Message::Binary(b))) => {
                    let message = Message::Binary(b.to_vec());
                    let _ = inputs.send(Input::SocketMessage { conn, message });
                }
                Some(Ok(tungstenite::Message::Close(frame))) => {
                    // tungstenite queues the close reply; flush it.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sink.close()).await;
                    break CloseInfo::clean(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                // Pings are answered by tungstenite on the next read or write.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = inputs.send(Input::SocketError { conn });
                    break CloseInfo::abnormal(e.to_string());
                }
                None => break CloseInfo::abnormal(""),
            },
        }
    };
    let _ = inputs.send(Input::SocketClosed { conn, info });
}
