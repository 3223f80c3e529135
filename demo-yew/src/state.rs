//! The whole chat state as a reducer.
//!
//! Every change the app sees (a connection state, a server push, a click) becomes an [`Action`],
//! and [`State::apply`] folds it in. Nothing here touches the browser, so the logic is tested
//! natively with `cargo test -p demo-yew`.

use std::collections::BTreeMap;
use std::rc::Rc;

use protocol::{Offset, RoomInfo};
use yew::Reducible;

/// What the connection bar shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Connection {
    /// Nothing started yet.
    Idle,
    /// Opening a socket; `attempt` counts from 1 since the last successful connection.
    Connecting {
        /// Attempt number.
        attempt: u32,
    },
    /// Open and greeted by the server.
    Connected,
    /// Waiting before the next attempt.
    Reconnecting {
        /// The attempt that comes next.
        attempt: u32,
        /// When it comes: milliseconds since the Unix epoch (the browser's `Date.now()`).
        at_ms: f64,
    },
    /// The browser says it has no network; the client waits for the `online` event.
    Offline,
    /// The client stopped retrying.
    GaveUp {
        /// Why, in words.
        reason: String,
    },
}

impl Connection {
    /// True when messages can go out right now.
    pub(crate) fn is_connected(&self) -> bool {
        matches!(self, Connection::Connected)
    }
}

/// Where one of your own messages is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Kept by the client until a connection is up.
    Queued,
    /// Written to the socket, not yet acknowledged.
    Sent,
    /// The server accepted it and gave it an offset.
    Acked,
    /// Typed on an earlier page (restored from the persistent outbox after a reload) and now
    /// confirmed by the server, once.
    Delivered,
    /// The client gave up on it (for example an ack timeout).
    Failed,
}

/// One of your own messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Own {
    /// The id the app gave the publish.
    pub(crate) id: u64,
    /// Where it is.
    pub(crate) status: Status,
}

/// What a line in the chat is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// A chat message.
    Chat,
    /// A marker: the history before this point could not be recovered.
    Gap,
}

/// One line of a room's chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// Chat message or marker.
    pub(crate) kind: LineKind,
    /// Display name of the sender.
    pub(crate) from: String,
    /// The text.
    pub(crate) text: String,
    /// Server time of publication in ms since the Unix epoch; `None` until delivered.
    pub(crate) ts: Option<u64>,
    /// Set on your own messages.
    pub(crate) own: Option<Own>,
    /// Unique among a room's lines, across server restarts: Yew's list key.
    pub(crate) key: String,
}

/// Position of a delivered line: the room's history generation (it changes whenever the server
/// lost the history, so offsets may start over), then the offset.
pub(crate) type Key = (u32, Offset);

/// A room you are in.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Room {
    /// Room name.
    pub(crate) name: String,
    /// Delivered lines in offset order.
    pub(crate) delivered: BTreeMap<Key, Line>,
    /// Your messages not delivered back yet, in send order.
    pub(crate) pending: Vec<(Option<Offset>, Line)>,
    /// Who is in the room, as the server last said.
    pub(crate) members: Vec<String>,
    /// Messages that arrived while another room was selected.
    pub(crate) unread: u32,
    /// True while the server has confirmed the membership on the current connection.
    pub(crate) joined: bool,
    /// True once the room was joined on some connection; a later join is a rejoin.
    ever_joined: bool,
    /// History generation: bumped when a rejoin could not recover the gap.
    generation: u32,
}

impl Room {
    fn new(name: String) -> Self {
        Room {
            name,
            ..Room::default()
        }
    }

    /// Every line to show, delivered ones first (in offset order), then your pending ones.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &Line> {
        self.delivered
            .values()
            .chain(self.pending.iter().map(|(_, line)| line))
    }

    fn own_by_id(&mut self, id: u64) -> Option<&mut Line> {
        self.pending
            .iter_mut()
            .map(|(_, line)| line)
            .chain(self.delivered.values_mut())
            .find(|line| line.own.is_some_and(|own| own.id == id))
    }
}

/// What happened to missed messages after the last reconnect.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Recovery {
    /// Rooms whose missed messages were all replayed.
    pub(crate) recovered: Vec<String>,
    /// Rooms whose history was lost (for example on a server restart): there may be a gap.
    pub(crate) lost: Vec<String>,
}

/// The app state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct State {
    /// Your display name, as the server knows it.
    pub(crate) me: String,
    /// The connection as the bar shows it.
    pub(crate) connection: Connection,
    /// Successful connections so far.
    pub(crate) connections: u32,
    /// Every room on the server with its member count.
    pub(crate) room_list: Vec<RoomInfo>,
    /// The rooms you are in, in the order you joined them.
    pub(crate) rooms: Vec<Room>,
    /// The room shown in the chat view.
    pub(crate) selected: Option<String>,
    /// Set after a reconnect, until dismissed.
    pub(crate) recovery: Option<Recovery>,
    /// The last problem worth telling the user about, until dismissed.
    pub(crate) error: Option<String>,
    /// The publisher id of the messages restored from an earlier page: one of them coming back
    /// (`publisher:id`) replaces its pending line even when its ack was not heard here (in
    /// shared mode, the hub that resent it hears the ack).
    pub(crate) restored_publisher: Option<String>,
}

/// Everything that changes [`State`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// The connection changed.
    Connection(Connection),
    /// The server greeted us (again) under this name.
    Welcome {
        /// The name the server knows us by.
        name: String,
    },
    /// The server pushed the room list.
    RoomList(Vec<RoomInfo>),
    /// The user asks to join (or create) a room; it is selected at once.
    Join(String),
    /// The server confirmed a join.
    Joined {
        /// Room name.
        room: String,
        /// False when missed messages could not be replayed.
        recovered: bool,
    },
    /// The user left a room.
    Leave(String),
    /// The user selected a room.
    Select(String),
    /// A message was delivered in a room.
    Message {
        /// Room name.
        room: String,
        /// Its offset in the room.
        offset: Offset,
        /// The key that names it across server restarts (offsets start over in a new epoch):
        /// `publisher:id` from a server that stamps them, else `epoch:offset`.
        key: String,
        /// Display name of the sender.
        from: String,
        /// The text.
        text: String,
        /// Server time, ms since the Unix epoch.
        ts: u64,
    },
    /// The user published a message with this id.
    Publish {
        /// Room name.
        room: String,
        /// The id the app gave it.
        id: u64,
        /// The text.
        text: String,
        /// Whether it went to the socket at once (else it is queued).
        sent: bool,
    },
    /// The server acknowledged a publish.
    Acked {
        /// The publish id.
        id: u64,
        /// Where it landed in its room.
        offset: Offset,
    },
    /// The client restored what an earlier page left in its persistent outbox: the rooms it
    /// was in and its unacknowledged messages, which the client resends.
    Restored {
        /// The rooms, in the order the client lists them.
        rooms: Vec<String>,
        /// The messages: room, publish id and text, in publish order.
        publishes: Vec<(String, u64, String)>,
        /// Their publisher id.
        publisher: String,
    },
    /// The server acknowledged these messages restored from an earlier page.
    OutboxDelivered(Vec<u64>),
    /// A publish failed.
    Failed {
        /// The publish id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// The server pushed who is in a room.
    Presence {
        /// Room name.
        room: String,
        /// Display names, sorted.
        members: Vec<String>,
    },
    /// Something went wrong that the user should know about.
    Error(String),
    /// The user closed the recovery notice.
    DismissRecovery,
    /// The user closed the error.
    DismissError,
}

impl State {
    /// A fresh state for the user `me`.
    pub(crate) fn new(me: impl Into<String>) -> Self {
        State {
            me: me.into(),
            connection: Connection::Idle,
            connections: 0,
            room_list: Vec::new(),
            rooms: Vec::new(),
            selected: None,
            recovery: None,
            error: None,
            restored_publisher: None,
        }
    }

    /// The room called `name`, if you are in it.
    pub(crate) fn room(&self, name: &str) -> Option<&Room> {
        self.rooms.iter().find(|room| room.name == name)
    }

    fn room_mut(&mut self, name: &str) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|room| room.name == name)
    }

    /// The selected room.
    pub(crate) fn selected_room(&self) -> Option<&Room> {
        self.selected.as_deref().and_then(|name| self.room(name))
    }

    /// Folds one action into the state.
    pub(crate) fn apply(&mut self, action: Action) {
        match action {
            Action::Connection(connection) => self.set_connection(connection),
            Action::Welcome { name } => self.me = name,
            Action::RoomList(list) => self.room_list = list,
            Action::Join(name) => self.join(name),
            Action::Joined { room, recovered } => self.joined(&room, recovered),
            Action::Leave(name) => {
                self.rooms.retain(|room| room.name != name);
                if self.selected.as_deref() == Some(name.as_str()) {
                    self.selected = self.rooms.first().map(|room| room.name.clone());
                }
            }
            Action::Select(name) => {
                if let Some(room) = self.room_mut(&name) {
                    room.unread = 0;
                    self.selected = Some(name);
                }
            }
            Action::Message {
                room,
                offset,
                key,
                from,
                text,
                ts,
            } => self.message(&room, offset, key, from, text, ts),
            Action::Publish {
                room,
                id,
                text,
                sent,
            } => {
                let from = self.me.clone();
                if let Some(room) = self.room_mut(&room) {
                    let status = if sent { Status::Sent } else { Status::Queued };
                    let line = Line {
                        kind: LineKind::Chat,
                        from,
                        text,
                        ts: None,
                        own: Some(Own { id, status }),
                        key: format!("p{id}"),
                    };
                    room.pending.push((None, line));
                }
            }
            Action::Acked { id, offset } => self.acked(id, offset),
            Action::Restored {
                rooms,
                publishes,
                publisher,
            } => {
                self.restored_publisher = Some(publisher);
                self.restored(rooms, publishes);
            }
            Action::OutboxDelivered(ids) => {
                for id in ids {
                    self.set_status(id, Status::Delivered, |status| status != Status::Failed);
                }
            }
            Action::Failed { id, reason } => {
                // A publish of a room already left is nobody's concern any more.
                if self.set_status(id, Status::Failed, |status| status != Status::Acked) {
                    self.error = Some(reason);
                }
            }
            Action::Presence { room, members } => {
                if let Some(room) = self.room_mut(&room) {
                    room.members = members;
                }
            }
            Action::Error(message) => self.error = Some(message),
            Action::DismissRecovery => self.recovery = None,
            Action::DismissError => self.error = None,
        }
    }

    fn set_connection(&mut self, connection: Connection) {
        if connection == Connection::Connected && !self.connection.is_connected() {
            self.connections += 1;
            // The client sends what it queued (and resends what was not acknowledged) as
            // soon as the connection is up.
            for room in &mut self.rooms {
                for (_, line) in &mut room.pending {
                    if let Some(own) = line.own.as_mut().filter(|own| own.status == Status::Queued)
                    {
                        own.status = Status::Sent;
                    }
                }
            }
            if self.connections > 1 {
                // A reconnect: the rejoins that follow fill in the outcome.
                self.recovery = Some(Recovery::default());
            }
        }
        if !connection.is_connected() {
            for room in &mut self.rooms {
                room.joined = false;
            }
        }
        self.connection = connection;
    }

    fn join(&mut self, name: String) {
        let name = name.trim().to_owned();
        if !protocol::valid_room_name(&name) {
            self.error =
                Some("A room name has 1 to 64 characters and no control characters.".into());
            return;
        }
        if self.room(&name).is_none() {
            self.rooms.push(Room::new(name.clone()));
        }
        self.apply(Action::Select(name));
    }

    fn restored(&mut self, rooms: Vec<String>, publishes: Vec<(String, u64, String)>) {
        let first = rooms.first().cloned();
        for room in rooms {
            self.join(room);
        }
        for (room, id, text) in publishes {
            let sent = self.connection.is_connected();
            self.apply(Action::Publish {
                room,
                id,
                text,
                sent,
            });
        }
        if let Some(first) = first {
            self.apply(Action::Select(first));
        }
    }

    fn joined(&mut self, name: &str, recovered: bool) {
        let Some(room) = self.room_mut(name) else {
            return;
        };
        let rejoin = room.ever_joined;
        room.joined = true;
        room.ever_joined = true;
        if !rejoin {
            return;
        }
        if !recovered {
            room.generation += 1;
            let marker = Line {
                kind: LineKind::Gap,
                from: String::new(),
                text: "The server lost this room's history here: messages sent while you were away may \
                       be missing."
                    .into(),
                ts: None,
                own: None,
                key: format!("g{}", room.generation),
            };
            room.delivered.insert((room.generation, 0), marker);
            // Offsets of the lost history mean nothing now; keep waiting for the acks only.
            for (offset, _) in &mut room.pending {
                *offset = None;
            }
        }
        match self.recovery.as_mut() {
            // After a reconnect: part of what the reconnect recovered.
            Some(recovery) => {
                let list = if recovered {
                    &mut recovery.recovered
                } else {
                    &mut recovery.lost
                };
                if !list.iter().any(|room| room == name) {
                    list.push(name.to_owned());
                }
            }
            // The client rejoined on its own to fill a gap: only a failure is news.
            None if !recovered => {
                self.error = Some(format!("Some messages in #{name} could not be recovered."));
            }
            None => {}
        }
    }

    fn message(
        &mut self,
        name: &str,
        offset: Offset,
        unique: String,
        from: String,
        text: String,
        ts: u64,
    ) {
        let selected = self.selected.as_deref() == Some(name);
        let me = self.me.clone();
        let restored_id = self
            .restored_publisher
            .as_ref()
            .and_then(|publisher| unique.strip_prefix(&format!("{publisher}:")))
            .and_then(|id| id.parse::<u64>().ok());
        let Some(room) = self.room_mut(name) else {
            return;
        };
        let key = (room.generation, offset);
        let unique = format!("m{unique}");
        // A repeated list key would make Yew's keyed diff panic ("duplicate key detected").
        if room.delivered.contains_key(&key) || room.delivered.values().any(|l| l.key == unique) {
            return;
        }
        // Our own message coming back: it leaves the pending list.
        let own = room
            .pending
            .iter()
            .position(|(acked_at, line)| {
                *acked_at == Some(offset)
                    || (restored_id.is_some() && line.own.map(|own| own.id) == restored_id)
            })
            .map(|index| room.pending.remove(index))
            .and_then(|(_, line)| line.own);
        if own.is_none() && from != me && !selected {
            room.unread += 1;
        }
        let line = Line {
            kind: LineKind::Chat,
            from,
            text,
            ts: Some(ts),
            own,
            key: unique,
        };
        room.delivered.insert(key, line);
    }

    fn acked(&mut self, id: u64, offset: Offset) {
        for room in &mut self.rooms {
            let Some(index) = room
                .pending
                .iter()
                .position(|(_, line)| line.own.is_some_and(|own| own.id == id))
            else {
                continue;
            };
            let own = Own {
                id,
                status: Status::Acked,
            };
            match room.delivered.get_mut(&(room.generation, offset)) {
                // The broadcast came first: mark that line as ours.
                Some(line) => {
                    line.own = Some(own);
                    room.pending.remove(index);
                }
                None => {
                    if let Some((at, line)) = room.pending.get_mut(index) {
                        *at = Some(offset);
                        line.own = Some(own);
                    }
                }
            }
            return;
        }
    }

    /// Moves your message `id` to `to` if `when` allows; false if no room has it.
    fn set_status(&mut self, id: u64, to: Status, when: impl Fn(Status) -> bool) -> bool {
        for room in &mut self.rooms {
            if let Some(line) = room.own_by_id(id) {
                if let Some(own) = line.own.as_mut().filter(|own| when(own.status)) {
                    own.status = to;
                }
                return true;
            }
        }
        false
    }
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        next.apply(action);
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: &str, offset: Offset, from: &str, text: &str) -> Action {
        Action::Message {
            room: room.into(),
            offset,
            key: format!("e1:{offset}"),
            from: from.into(),
            text: text.into(),
            ts: 1_700_000_000_000 + offset,
        }
    }

    fn texts(state: &State, room: &str) -> Vec<String> {
        state
            .room(room)
            .unwrap()
            .lines()
            .map(|line| line.text.clone())
            .collect()
    }

    fn connected(me: &str, rooms: &[&str]) -> State {
        let mut state = State::new(me);
        state.apply(Action::Connection(Connection::Connecting { attempt: 1 }));
        state.apply(Action::Connection(Connection::Connected));
        for room in rooms {
            state.apply(Action::Join((*room).into()));
            state.apply(Action::Joined {
                room: (*room).into(),
                recovered: true,
            });
        }
        state
    }

    #[test]
    fn messages_stay_in_offset_order_without_duplicates() {
        let mut state = connected("ann", &["lobby"]);
        state.apply(msg("lobby", 2, "bob", "two"));
        state.apply(msg("lobby", 1, "bob", "one"));
        state.apply(msg("lobby", 2, "bob", "two again"));
        state.apply(msg("lobby", 3, "bob", "three"));
        assert_eq!(texts(&state, "lobby"), ["one", "two", "three"]);
    }

    #[test]
    fn lines_keep_unique_keys_when_a_restart_starts_offsets_over() {
        let mut state = connected("ann", &["lobby"]);
        state.apply(msg("lobby", 1, "bob", "one"));
        state.apply(msg("lobby", 2, "bob", "two"));
        // The server restarted: the new epoch numbers from 1 again.
        state.apply(Action::Joined {
            room: "lobby".into(),
            recovered: false,
        });
        for (offset, key, text) in [(1, "e2:1", "three"), (2, "e2:2", "four")] {
            state.apply(Action::Message {
                room: "lobby".into(),
                offset,
                key: key.into(),
                from: "bob".into(),
                text: text.into(),
                ts: 0,
            });
        }
        let room = state.room("lobby").unwrap();
        let keys: Vec<&str> = room.lines().map(|l| l.key.as_str()).collect();
        let unique: std::collections::BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
        assert_eq!(
            texts(&state, "lobby")
                .into_iter()
                .filter(|t| !t.starts_with("The server"))
                .collect::<Vec<_>>(),
            ["one", "two", "three", "four"]
        );
    }

    #[test]
    fn messages_for_rooms_not_joined_are_ignored() {
        let mut state = connected("ann", &["lobby"]);
        state.apply(msg("elsewhere", 1, "bob", "hi"));
        assert!(state.room("elsewhere").is_none());
        assert_eq!(state.rooms.len(), 1);
    }

    #[test]
    fn own_message_goes_queued_sent_acked_and_is_shown_once() {
        let mut state = connected("ann", &["lobby"]);
        state.apply(Action::Connection(Connection::Offline));
        state.apply(Action::Publish {
            room: "lobby".into(),
            id: 1,
            text: "hello".into(),
            sent: false,
        });
        let status = |state: &State| {
            state
                .room("lobby")
                .unwrap()
                .lines()
                .find_map(|line| line.own)
                .unwrap()
                .status
        };
        assert_eq!(status(&state), Status::Queued);
        state.apply(Action::Connection(Connection::Connected));
        assert_eq!(status(&state), Status::Sent);
        state.apply(Action::Acked { id: 1, offset: 4 });
        assert_eq!(status(&state), Status::Acked);
        state.apply(msg("lobby", 4, "ann", "hello"));
        assert_eq!(texts(&state, "lobby"), ["hello"]);
        assert_eq!(status(&state), Status::Acked);
        assert!(state.room("lobby").unwrap().pending.is_empty());
    }

    #[test]
    fn broadcast_before_ack_is_merged_with_the_pending_line() {
        let mut state = connected("ann", &["lobby"]);
        state.apply(Action::Publish {
            room: "lobby".into(),
            id: 7,
            text: "hi".into(),
            sent: true,
        });
        state.apply(msg("lobby", 1, "ann", "hi"));
        state.apply(Action::Acked { id: 7, offset: 1 });
        let room = state.room("lobby").unwrap();
        assert!(room.pending.is_empty());
        assert_eq!(texts(&state, "lobby"), ["hi"]);
        let own = room.lines().next().unwrap().own.unwrap();
        assert_eq!(
            own,
            Own {
                id: 7,
                status: Status::Acked
            }
        );
    }

    #[test]
    fn queued_messages_count_as_sent_once_connected() {
        let mut state = connected("ann", &["lobby"]);
        state.apply(Action::Connection(Connection::Offline));
        state.apply(Action::Publish {
            room: "lobby".into(),
            id: 1,
            text: "a".into(),
            sent: false,
        });
        state.apply(Action::Connection(Connection::Connecting { attempt: 1 }));
        assert_eq!(
            state.room("lobby").unwrap().pending[0]
                .1
                .own
                .unwrap()
                .status,
            Status::Queued
        );
        state.apply(Action::Connection(Connection::Connected));
        assert_eq!(
            state.room("lobby").unwrap().pending[0]
                .1
                .own
                .unwrap()
                .status,
            Status::Sent
        );
    }

    #[test]
    fn sent_does_not_downgrade_an_ack_and_failure_is_reported() {
        let mut state = connected("ann", &["lobby"]);
        state.apply(Action::Publish {
            room: "lobby".into(),
            id: 1,
            text: "a".into(),
            sent: true,
        });
        state.apply(Action::Acked { id: 1, offset: 1 });
        state.apply(Action::Connection(Connection::Offline));
        state.apply(Action::Connection(Connection::Connected));
        let own = state.room("lobby").unwrap().pending[0].1.own.unwrap();
        assert_eq!(own.status, Status::Acked);
        state.apply(Action::Publish {
            room: "lobby".into(),
            id: 2,
            text: "b".into(),
            sent: true,
        });
        state.apply(Action::Failed {
            id: 2,
            reason: "no ack".into(),
        });
        let own = state.room("lobby").unwrap().pending[1].1.own.unwrap();
        assert_eq!(own.status, Status::Failed);
        assert_eq!(state.error.as_deref(), Some("no ack"));
        state.apply(Action::DismissError);
        state.apply(Action::Failed {
            id: 99,
            reason: "left the room".into(),
        });
        assert_eq!(
            state.error, None,
            "a failure of an unknown publish is not shown"
        );
    }

    #[test]
    fn unread_counts_only_other_peoples_messages_in_other_rooms() {
        let mut state = connected("ann", &["a", "b"]);
        assert_eq!(state.selected.as_deref(), Some("b"));
        state.apply(msg("a", 1, "bob", "x"));
        state.apply(msg("a", 2, "bob", "y"));
        state.apply(msg("a", 3, "ann", "mine from another tab"));
        state.apply(msg("b", 1, "bob", "seen"));
        assert_eq!(state.room("a").unwrap().unread, 2);
        assert_eq!(state.room("b").unwrap().unread, 0);
        state.apply(Action::Select("a".into()));
        assert_eq!(state.room("a").unwrap().unread, 0);
        assert_eq!(state.selected.as_deref(), Some("a"));
    }

    #[test]
    fn join_validates_trims_and_selects() {
        let mut state = connected("ann", &[]);
        state.apply(Action::Join("  general ".into()));
        assert_eq!(state.selected.as_deref(), Some("general"));
        state.apply(Action::Join("".into()));
        assert!(state.error.is_some());
        state.apply(Action::Join("x".repeat(65)));
        assert_eq!(state.rooms.len(), 1);
        state.apply(Action::DismissError);
        state.apply(Action::Join("general".into()));
        assert_eq!(state.rooms.len(), 1);
        assert!(state.error.is_none());
    }

    #[test]
    fn leaving_the_selected_room_selects_another() {
        let mut state = connected("ann", &["a", "b"]);
        state.apply(Action::Leave("b".into()));
        assert_eq!(state.selected.as_deref(), Some("a"));
        state.apply(Action::Leave("a".into()));
        assert_eq!(state.selected, None);
    }

    #[test]
    fn reconnect_reports_recovered_rooms() {
        let mut state = connected("ann", &["a", "b"]);
        assert_eq!(
            state.recovery, None,
            "the first connection is not a reconnect"
        );
        state.apply(Action::Connection(Connection::Reconnecting {
            attempt: 1,
            at_ms: 5.0,
        }));
        assert!(!state.room("a").unwrap().joined);
        state.apply(Action::Connection(Connection::Connecting { attempt: 1 }));
        state.apply(Action::Connection(Connection::Connected));
        assert_eq!(state.recovery, Some(Recovery::default()));
        state.apply(Action::Joined {
            room: "a".into(),
            recovered: true,
        });
        state.apply(Action::Joined {
            room: "b".into(),
            recovered: true,
        });
        let recovery = state.recovery.clone().unwrap();
        assert_eq!(recovery.recovered, ["a", "b"]);
        assert!(recovery.lost.is_empty());
        assert_eq!(state.connections, 2);
        state.apply(Action::DismissRecovery);
        assert_eq!(state.recovery, None);
    }

    #[test]
    fn a_rejoin_without_a_reconnect_is_not_reported_as_one() {
        // The client rejoins by itself to fill a gap it noticed in the offsets.
        let mut state = connected("ann", &["a"]);
        state.apply(Action::Joined {
            room: "a".into(),
            recovered: true,
        });
        assert_eq!(state.recovery, None);
        assert_eq!(state.error, None);
        state.apply(Action::Joined {
            room: "a".into(),
            recovered: false,
        });
        assert_eq!(state.recovery, None);
        assert!(state.error.as_deref().is_some_and(|e| e.contains("#a")));
    }

    #[test]
    fn lost_history_is_marked_and_offsets_may_start_over() {
        let mut state = connected("ann", &["a"]);
        state.apply(msg("a", 1, "bob", "old one"));
        state.apply(msg("a", 2, "bob", "old two"));
        state.apply(Action::Connection(Connection::Reconnecting {
            attempt: 1,
            at_ms: 0.0,
        }));
        state.apply(Action::Connection(Connection::Connected));
        state.apply(Action::Joined {
            room: "a".into(),
            recovered: false,
        });
        assert_eq!(state.recovery.as_ref().unwrap().lost, ["a"]);
        // A restarted server starts the room over at offset 1 (of a new epoch): nothing old is
        // replaced.
        state.apply(Action::Message {
            room: "a".into(),
            offset: 1,
            key: "e2:1".into(),
            from: "bob".into(),
            text: "new one".into(),
            ts: 0,
        });
        let lines: Vec<_> = state.room("a").unwrap().lines().cloned().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2].kind, LineKind::Gap);
        assert_eq!(lines[3].text, "new one");
    }

    #[test]
    fn connection_states_are_kept_for_the_bar() {
        let mut state = State::new("ann");
        assert_eq!(state.connection, Connection::Idle);
        state.apply(Action::Connection(Connection::GaveUp {
            reason: "closed 1008".into(),
        }));
        assert!(!state.connection.is_connected());
        state.apply(Action::Welcome {
            name: "ann#2".into(),
        });
        assert_eq!(state.me, "ann#2");
    }

    #[test]
    fn presence_and_room_list_replace_the_old_ones() {
        let mut state = connected("ann", &["a"]);
        state.apply(Action::Presence {
            room: "a".into(),
            members: vec!["ann".into(), "bob".into()],
        });
        state.apply(Action::Presence {
            room: "a".into(),
            members: vec!["ann".into()],
        });
        assert_eq!(state.room("a").unwrap().members, ["ann"]);
        let list = vec![RoomInfo {
            room: "a".into(),
            members: 1,
        }];
        state.apply(Action::RoomList(list.clone()));
        assert_eq!(state.room_list, list);
    }

    #[test]
    fn reducer_returns_a_new_state() {
        let state = Rc::new(State::new("ann"));
        let next = state.clone().reduce(Action::Join("a".into()));
        assert!(state.rooms.is_empty());
        assert_eq!(next.rooms.len(), 1);
    }

    #[test]
    fn restored_messages_show_queued_then_delivered_once() {
        let mut state = State::new("ann");
        state.apply(Action::Restored {
            rooms: vec!["lobby".into(), "rust".into()],
            publishes: vec![
                ("lobby".into(), 7, "one".into()),
                ("lobby".into(), 8, "two".into()),
            ],
            publisher: "0123456789abcdef".into(),
        });
        assert_eq!(state.selected.as_deref(), Some("lobby"));
        assert_eq!(state.rooms.len(), 2);
        let statuses = |state: &State| -> Vec<Status> {
            state
                .room("lobby")
                .unwrap()
                .lines()
                .filter_map(|line| line.own.map(|own| own.status))
                .collect()
        };
        assert_eq!(statuses(&state), [Status::Queued, Status::Queued]);
        state.apply(Action::Connection(Connection::Connected));
        state.apply(Action::Joined {
            room: "lobby".into(),
            recovered: true,
        });
        state.apply(Action::Acked { id: 7, offset: 4 });
        state.apply(Action::Acked { id: 8, offset: 5 });
        state.apply(Action::OutboxDelivered(vec![7, 8]));
        state.apply(msg("lobby", 4, "ann", "one"));
        state.apply(msg("lobby", 5, "ann", "two"));
        assert_eq!(texts(&state, "lobby"), ["one", "two"]);
        assert_eq!(statuses(&state), [Status::Delivered, Status::Delivered]);
    }
}
