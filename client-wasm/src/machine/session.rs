//! The one owner of the client's layers: the connection [`Machine`] and, once started, the
//! protocol v1 [`Rooms`] layer (feature `rooms`), behind one sans-IO surface in the style of
//! quinn-proto's `Connection`.
//!
//! A shell feeds it what happened with [`Session::handle`], time with
//! [`Session::handle_timeout`] (at [`Session::poll_timeout`], the earliest deadline of both
//! layers), and the user's calls with its methods. It then carries out every [`Io`] from
//! [`Session::poll_io`] until `None`, and hands every [`SessionEvent`] from
//! [`Session::poll_event`] to the application: two separate queues (the events a command
//! run brings reach theirs as the I/O is taken). The rooms layer's frames (hello, joins,
//! publishes, resends) reach the socket as user sends do, through the machine; no shell
//! decides how.
//!
//! **The protocol-frame rule**, the same in every shell: while the rooms layer runs, every
//! inbound text frame goes to it and none is reported as [`Event::Message`]. A protocol v1
//! frame becomes room events (or nothing, as a `pong`); any other text frame arrives as
//! [`RoomEvent::BadFrame`]. Binary frames are reported as
//! messages. Without the rooms layer every frame is a message (heartbeat pongs aside, see
//! [`Heartbeat`](super::Heartbeat)).
//!
//! ```
//! use ws_lifeline::machine::session::{Io, Session, SessionEvent};
//! use ws_lifeline::machine::{Config, Event, Input, Instant, Target};
//!
//! let mut s = Session::new(Config::default(), Target::Url("ws://127.0.0.1:9/".into()), 7, Instant(0)).unwrap();
//! let Some(Io::Open { conn, .. }) = s.poll_io() else { panic!() };
//! s.send(Instant(1), "queued until open".into()).unwrap();
//! s.handle(Instant(2), Input::SocketOpened { conn, protocol: String::new() });
//! let io: Vec<Io> = std::iter::from_fn(|| s.poll_io()).collect();
//! assert!(matches!(io[..], [Io::Transmit { .. }]));
//! assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e == SessionEvent::Connection(Event::Open)));
//! ```

use std::collections::VecDeque;

pub use super::Io;
#[cfg(feature = "persist")]
use super::rooms::outbox::{OutboxConfig, OutboxError, OutboxSnapshot};
#[cfg(feature = "rooms")]
use super::rooms::{PublishId, RawJson, RoomError, RoomEvent, Rooms, RoomsConfig};
#[cfg(feature = "rooms")]
use super::sorted_map::SortedMap;
use super::{Config, ConnId, Event, Input, Instant, Machine, Message, Sent, Target};
#[cfg(feature = "rooms")]
use crate::publish::{PublishFuture, Waiter};
use crate::{Error, Result};

/// What the application hears, in order, from [`Session::poll_event`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A connection event (open, close, reconnecting, errors, messages; see the module docs
    /// for which frames are messages).
    Connection(Event),
    /// A protocol v1 event: room messages, acks, recovery, presence.
    #[cfg(feature = "rooms")]
    Room(RoomEvent),
}

/// The client's layers behind one surface. See the [module docs](self).
#[derive(Debug)]
pub struct Session {
    machine: Machine,
    #[cfg(feature = "rooms")]
    rooms: Option<Rooms>,
    #[cfg(feature = "rooms")]
    rooms_config: RoomsConfig,
    /// Publishes whose outcome a [`PublishFuture`] awaits.
    #[cfg(feature = "rooms")]
    waiters: SortedMap<PublishId, Waiter>,
    events: VecDeque<SessionEvent>,
    /// The time of the last input or call: what the layers' output is stamped with.
    #[cfg_attr(not(feature = "rooms"), allow(dead_code))]
    now: Instant,
}

impl Session {
    /// A session whose first attempt starts at once; see [`Machine::new`].
    pub fn new(config: Config, target: Target, seed: u64, now: Instant) -> Result<Self> {
        Ok(Session {
            #[cfg(feature = "rooms")]
            rooms_config: config.rooms.clone(),
            machine: Machine::new(config, target, seed, now)?,
            #[cfg(feature = "rooms")]
            rooms: None,
            #[cfg(feature = "rooms")]
            waiters: SortedMap::new(),
            events: VecDeque::new(),
            now,
        })
    }

    /// The connection machine, for its state and counters.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The next I/O command, in order. Call it until `None` before taking the events: the
    /// machine's events reach the event queue (through the rooms layer) on the way.
    pub fn poll_io(&mut self) -> Option<Io> {
        self.pump_layer();
        while let Some(event) = self.machine.poll_event() {
            #[cfg(feature = "rooms")]
            let taken = (self.rooms.as_mut()).is_some_and(|r| r.handle_event(self.now, &event));
            #[cfg(not(feature = "rooms"))]
            let taken = false;
            if !taken {
                self.events.push_back(SessionEvent::Connection(event));
            }
            // Each event's room events follow it.
            self.pump_layer();
        }
        self.machine.poll_io()
    }

    /// The connection whose inbound frames a shell may report as messages itself, without
    /// [`handle`](Self::handle): as [`Machine::message_passthrough`], and never while the rooms
    /// layer runs (it reads every frame).
    pub fn message_passthrough(&self) -> Option<ConnId> {
        #[cfg(feature = "rooms")]
        if self.rooms.is_some() {
            return None;
        }
        self.machine.message_passthrough()
    }

    /// The next event for the application, in order.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due: the earliest deadline of the
    /// machine (retries, heartbeat, pacing) and the rooms layer (publish acks).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let machine = self.machine.poll_timeout();
        #[cfg(feature = "rooms")]
        if let Some(rooms) = self.rooms.as_ref().and_then(Rooms::poll_timeout) {
            return Some(machine.map_or(rooms, |m| m.min(rooms)));
        }
        machine
    }

    /// Runs everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.machine.handle_timeout(now);
        #[cfg(feature = "rooms")]
        if let Some(rooms) = self.rooms.as_mut() {
            rooms.handle_timeout(now);
            self.pump_layer();
        }
    }

    /// Feeds one thing that happened in the environment; see [`Machine::handle`].
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.now = now;
        self.machine.handle(now, input);
    }

    /// The shell could not hand a frame to the socket: reported as an [`Event::Error`].
    pub fn transmit_failed(&mut self, error: Error) {
        self.events
            .push_back(SessionEvent::Connection(Event::Error(error)));
    }

    /// Sends a message or queues it; see [`Machine::send`].
    pub fn send(&mut self, now: Instant, message: Message) -> Result<Sent> {
        self.now = now;
        self.machine.send(now, message)
    }

    /// For a shell that hands a `len`-byte frame to the socket itself: the socket to send it
    /// on when [`send`](Self::send) would transmit it now with nothing before it (the bytes
    /// are then counted as sent), else `None` and nothing changed.
    pub fn send_now(&mut self, now: Instant, len: usize) -> Option<ConnId> {
        let conn = self.machine.conn_id()?;
        self.now = now;
        self.machine.send_now(now, conn, len).then_some(conn)
    }

    /// Sends a frame at once, ahead of the queue; see [`Machine::send_preamble`].
    pub fn send_preamble(&mut self, now: Instant, message: Message) -> Result<()> {
        self.now = now;
        self.machine.send_preamble(now, message)
    }

    /// Closes for good; see [`Machine::close`].
    pub fn close(&mut self, now: Instant, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        self.now = now;
        self.machine.close(now, code, reason)
    }

    /// Connects again now; see [`Machine::reconnect`].
    pub fn reconnect(&mut self, now: Instant) {
        self.now = now;
        self.machine.reconnect(now);
    }

    /// Hands the rooms layer's frames to the machine (the path of user sends) and its events
    /// to the event queue.
    fn pump_layer(&mut self) {
        #[cfg(feature = "rooms")]
        if let Some(rooms) = self.rooms.as_mut() {
            while let Some(out) = rooms.poll_transmit() {
                // Bound to the current connection, never queued (see `Outgoing`): a refused
                // frame is redone by the layer after the next open.
                let _ = self.machine.send_outgoing(self.now, out);
            }
            while let Some(event) = rooms.poll_event() {
                if let Some((id, outcome)) = event.publish_outcome()
                    && let Some(waiter) = self.waiters.remove(&id)
                {
                    let _ = waiter.send(outcome);
                }
                self.events.push_back(SessionEvent::Room(event));
            }
        }
    }
}

#[cfg(feature = "rooms")]
impl Session {
    /// Sets the rooms layer's settings (at first those of [`Config::rooms`]), for a layer
    /// started later.
    pub fn set_rooms_config(&mut self, config: RoomsConfig) {
        self.rooms_config = config;
    }

    /// The rooms layer, if started.
    pub fn rooms(&self) -> Option<&Rooms> {
        self.rooms.as_ref()
    }

    /// Starts the protocol v1 layer, unless it runs: `lifeline.v1` is offered from the next
    /// attempt on (which also turns the default heartbeat on), and `hello` goes out on every
    /// open, at once if the socket is open.
    pub fn start_rooms(&mut self, now: Instant) {
        self.with_rooms(now, |_, _| ());
    }

    /// Runs `f` on the rooms layer (started on first use), then hands on its output.
    fn with_rooms<R>(&mut self, now: Instant, f: impl FnOnce(&mut Rooms, Instant) -> R) -> R {
        self.now = now;
        let (machine, config) = (&mut self.machine, &self.rooms_config);
        let rooms = self.rooms.get_or_insert_with(|| {
            // Also offered by an open the shell has not polled yet.
            machine.offer_protocol(protocol::SUBPROTOCOL);
            let mut rooms = Rooms::new(config.clone(), machine.random());
            if machine.state() == super::State::Open {
                rooms.handle_event(now, &Event::Open);
            }
            rooms
        });
        let out = f(rooms, now);
        self.pump_layer();
        out
    }

    /// Stops the rooms layer: no more hellos or rejoins, and every publish future fails with
    /// [`RoomError::Closed`]. The offered subprotocol stays.
    pub fn stop_rooms(&mut self) {
        self.rooms = None;
        self.waiters = SortedMap::new();
    }

    /// Joins `room` (starting the layer); see [`Rooms::join`].
    pub fn join(&mut self, now: Instant, room: &str) -> Result<(), RoomError> {
        self.with_rooms(now, |r, now| r.join(now, room))
    }

    /// Leaves `room`; see [`Rooms::leave`]. False if it was not joined.
    pub fn leave(&mut self, now: Instant, room: &str) -> bool {
        self.with_rooms(now, |r, now| r.leave(now, room))
    }

    /// Publishes JSON `data` to a joined room; see [`Rooms::publish`].
    pub fn publish(
        &mut self,
        now: Instant,
        room: &str,
        data: RawJson,
    ) -> Result<PublishId, RoomError> {
        self.with_rooms(now, |r, now| r.publish(now, room, data))
    }

    /// Publishes JSON `data` under an earlier layer's `id`; see [`Rooms::publish_as`].
    #[cfg(feature = "persist")]
    pub fn publish_as(
        &mut self,
        now: Instant,
        room: &str,
        data: RawJson,
        id: protocol::MsgId,
    ) -> Result<PublishId, RoomError> {
        self.with_rooms(now, |r, now| r.publish_as(now, room, data, id))
    }

    /// As [`publish`](Self::publish), with a future that settles on the publish's outcome.
    pub fn publish_future(
        &mut self,
        now: Instant,
        room: &str,
        data: RawJson,
    ) -> Result<PublishFuture, RoomError> {
        let id = self.publish(now, room, data)?;
        let (waiter, future) = PublishFuture::new(id);
        self.waiters.insert(id, waiter);
        Ok(future)
    }

    /// Asks for the room list; see [`Rooms::list_rooms`].
    pub fn list_rooms(&mut self, now: Instant) -> bool {
        self.with_rooms(now, |r, _| r.list_rooms())
    }
}

/// The persistent outbox (feature `persist`): see [`outbox`](super::rooms::outbox).
#[cfg(feature = "persist")]
impl Session {
    /// Turns the persistent outbox on, starting the rooms layer from `snapshot` (the last one
    /// a shell stored for this client) or, without one, from this session's own state.
    /// Restoring must come before the rooms layer starts (a join, a publish, `start_rooms`):
    /// the layer's first `hello` must already carry the stored publisher id and session.
    ///
    /// Errors: [`OutboxError::AlreadyStarted`], and those of [`Rooms::restore`].
    pub fn persist(
        &mut self,
        now: Instant,
        config: OutboxConfig,
        snapshot: Option<OutboxSnapshot>,
    ) -> Result<(), OutboxError> {
        self.now = now;
        let Some(snapshot) = snapshot else {
            self.with_rooms(now, |r, _| r.persist(config));
            return Ok(());
        };
        if self.rooms.is_some() {
            return Err(OutboxError::AlreadyStarted);
        }
        let mut rooms = Rooms::restore(self.rooms_config.clone(), config, snapshot, now)?;
        self.machine.offer_protocol(protocol::SUBPROTOCOL);
        if self.machine.state() == super::State::Open {
            rooms.handle_event(now, &Event::Open);
        }
        self.rooms = Some(rooms);
        self.pump_layer();
        Ok(())
    }

    /// The outbox's snapshot when it changed since the last call (see
    /// [`Rooms::poll_snapshot`]): a shell calls it after carrying out the I/O and stores what
    /// it gets. `None` while the outbox is off.
    pub fn poll_outbox(&mut self) -> Option<OutboxSnapshot> {
        self.rooms.as_mut().and_then(Rooms::poll_snapshot)
    }

    /// The shell has stored `snapshot`; see [`Rooms::outbox_stored`].
    pub fn outbox_stored(&mut self, now: Instant, snapshot: &OutboxSnapshot) {
        if self.rooms.is_some() {
            self.with_rooms(now, |r, _| r.outbox_stored(snapshot));
        }
    }

    /// The outbox's snapshot now; `None` while the outbox is off.
    pub fn outbox_snapshot(&self) -> Option<OutboxSnapshot> {
        self.rooms.as_ref().and_then(Rooms::snapshot)
    }

    /// Empties the outbox; see [`Rooms::clear_outbox`].
    pub fn clear_outbox(&mut self, now: Instant) {
        if self.rooms.is_some() {
            self.with_rooms(now, |r, _| r.clear_outbox());
        }
    }
}

#[cfg(all(test, feature = "rooms"))]
#[allow(clippy::unwrap_used)] // test code panics by design
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::machine::rooms::RoomError;

    fn open_session(rooms: bool) -> (Session, ConnId) {
        let target = Target::Url("ws://127.0.0.1:1/".into());
        let mut s = Session::new(Config::default(), target, 1, Instant(0)).unwrap();
        if rooms {
            s.set_rooms_config(RoomsConfig::default().ack_timeout(Duration::from_millis(500)));
            s.start_rooms(Instant(0));
        }
        let Some(Io::Open {
            conn, protocols, ..
        }) = s.poll_io()
        else {
            panic!("no open")
        };
        // Started before the open was carried out: it still offers protocol v1.
        assert_eq!(protocols.iter().any(|p| p == protocol::SUBPROTOCOL), rooms);
        let protocol = protocol::SUBPROTOCOL.to_owned();
        s.handle(Instant(1), Input::SocketOpened { conn, protocol });
        while s.poll_io().is_some() {}
        (s, conn)
    }

    fn frame(s: &mut Session, conn: ConnId, message: Message) -> Vec<SessionEvent> {
        s.handle(Instant(2), Input::SocketMessage { conn, message });
        while s.poll_io().is_some() {}
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn protocol_frames_are_room_events_while_the_rooms_layer_runs() {
        let (mut s, conn) = open_session(true);
        while s.poll_event().is_some() {}
        let welcome = r#"{"type":"welcome","session":"s","resumed":false,"name":"me"}"#;
        let events = frame(&mut s, conn, welcome.into());
        assert!(matches!(
            events.as_slice(),
            [SessionEvent::Room(RoomEvent::Welcome { .. })]
        ));
        let events = frame(&mut s, conn, "not protocol v1".into());
        assert!(matches!(
            events.as_slice(),
            [SessionEvent::Room(RoomEvent::BadFrame(_))]
        ));
        let events = frame(&mut s, conn, vec![1u8].into());
        assert_eq!(
            events,
            vec![SessionEvent::Connection(Event::Message(vec![1u8].into()))]
        );
    }

    #[test]
    fn every_frame_is_a_message_without_the_rooms_layer() {
        let (mut s, conn) = open_session(false);
        while s.poll_event().is_some() {}
        let welcome = r#"{"type":"welcome","session":"s","resumed":false,"name":"me"}"#;
        assert_eq!(
            frame(&mut s, conn, welcome.into()),
            vec![SessionEvent::Connection(Event::Message(welcome.into()))]
        );
    }

    #[test]
    fn the_rooms_layer_takes_its_settings_from_the_config() {
        let config = Config::default().rooms(RoomsConfig::default().max_unacked(1));
        let target = Target::Url("ws://127.0.0.1:1/".into());
        let mut s = Session::new(config, target, 1, Instant(0)).unwrap();
        s.join(Instant(0), "r").unwrap();
        let data = || RawJson::new("1").unwrap();
        s.publish(Instant(0), "r", data()).unwrap();
        assert_eq!(
            s.publish(Instant(0), "r", data()),
            Err(RoomError::TooManyUnacked { limit: 1 })
        );
    }

    #[test]
    fn io_and_events_are_separate_queues_and_a_left_socket_is_abandoned() {
        let (mut s, conn) = open_session(false);
        s.reconnect(Instant(2));
        let io: Vec<Io> = std::iter::from_fn(|| s.poll_io()).collect();
        assert!(
            matches!(io.as_slice(), [Io::Abandon { conn: c, .. }, Io::Open { .. }] if *c == conn)
        );
        let events: Vec<SessionEvent> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, SessionEvent::Connection(Event::Close(_))))
        );
        assert_eq!(s.poll_io(), None);
    }

    #[test]
    fn the_session_timeout_covers_publish_acks() {
        let (mut s, _) = open_session(true);
        s.join(Instant(1), "r").unwrap();
        let data = RawJson::new("1").unwrap();
        let mut future = Box::pin(s.publish_future(Instant(1), "r", data).unwrap());
        let due = s.poll_timeout().unwrap();
        assert!(due <= Instant(501), "the ack deadline is the session's");
        s.handle_timeout(Instant(501));
        assert!(std::iter::from_fn(|| s.poll_event()).any(|e| matches!(
            e,
            SessionEvent::Room(RoomEvent::PublishFailed {
                error: RoomError::PublishTimeout { .. },
                ..
            })
        )));
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(matches!(
            future.as_mut().poll(&mut cx),
            std::task::Poll::Ready(Err(RoomError::PublishTimeout { .. }))
        ));
    }
}

#[cfg(all(test, feature = "persist"))]
#[allow(clippy::unwrap_used)] // test code panics by design
mod persist_tests {
    use super::*;
    use crate::machine::rooms::outbox::{OutboxConfig, OutboxError};

    fn session() -> Session {
        let target = Target::Url("ws://127.0.0.1:1/".into());
        Session::new(Config::default(), target, 1, Instant(0)).unwrap()
    }

    /// Opens the pending attempt and answers its hello; returns the frames sent.
    fn open_and_welcome(s: &mut Session, session: &str) -> Vec<String> {
        let Some(Io::Open {
            conn, protocols, ..
        }) = s.poll_io()
        else {
            panic!("no open")
        };
        assert!(protocols.iter().any(|p| p == protocol::SUBPROTOCOL));
        let protocol = protocol::SUBPROTOCOL.to_owned();
        s.handle(Instant(1), Input::SocketOpened { conn, protocol });
        let welcome =
            format!(r#"{{"type":"welcome","session":"{session}","resumed":true,"name":"me"}}"#);
        let message = Message::Text(welcome);
        s.handle(Instant(2), Input::SocketMessage { conn, message });
        let mut sent = Vec::new();
        while let Some(io) = s.poll_io() {
            if let Io::Transmit { message, .. } = io {
                sent.push(message.as_text().unwrap().to_owned());
            }
        }
        sent
    }

    #[test]
    fn a_session_restored_from_a_snapshot_says_hello_as_the_old_one_and_resends() {
        let mut first = session();
        first
            .persist(Instant(0), OutboxConfig::default(), None)
            .unwrap();
        first.join(Instant(0), "r").unwrap();
        let data = RawJson::new("1").unwrap();
        let id = first.publish(Instant(0), "r", data).unwrap();
        let snapshot = first.poll_outbox().unwrap();
        assert_eq!(first.poll_outbox(), None, "unchanged");
        assert_eq!(first.outbox_snapshot(), Some(snapshot.clone()));

        let mut next = session();
        next.persist(Instant(0), OutboxConfig::default(), Some(snapshot.clone()))
            .unwrap();
        let sent = open_and_welcome(&mut next, "s1");
        let hello = format!(r#"{{"type":"hello","publisher":"{}"}}"#, snapshot.publisher);
        assert_eq!(sent[0], hello);
        assert!(sent[1].starts_with(r#"{"type":"join","room":"r""#));
        // Never welcomed before: no session was stored, so the resend waits for a store.
        assert_eq!(sent.len(), 2);
        let stored = next.poll_outbox().unwrap();
        assert_eq!(stored.session.as_deref(), Some("s1"));
        next.outbox_stored(Instant(3), &stored);
        let resend: Vec<Io> = std::iter::from_fn(|| next.poll_io()).collect();
        let frame = format!(r#"{{"type":"publish","room":"r","id":{id},"data":1}}"#);
        assert!(
            matches!(&resend[..], [Io::Transmit { message, .. }] if message.as_text() == Some(frame.as_str())),
            "{resend:?}"
        );
        assert_eq!(
            next.persist(Instant(3), OutboxConfig::default(), Some(stored)),
            Err(OutboxError::AlreadyStarted)
        );
        next.clear_outbox(Instant(4));
        assert!(next.poll_outbox().unwrap().publishes.is_empty());
    }
}
