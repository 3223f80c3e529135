//! Connects the chat state to the server through the library's Yew hooks.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ws_lifeline::yew::{
    Endpoint, OutboxConfig, OutboxSnapshot, RoomEvent, Status, UseLifeline, UseRoom, use_lifeline,
    use_outbox_delivered, use_room_events, use_room_with,
};
use ws_lifeline::{Config, Share, State as ClientState};
use yew::prelude::*;

use crate::app::Session;
use crate::state::{Action, Connection, State};

/// What a chat message carries in `publish.data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChatText {
    /// The text.
    pub(crate) text: String,
}

/// The rooms' handles, so the composer can publish through the room's hook.
pub(crate) type Rooms = Rc<RefCell<BTreeMap<String, UseRoom<ChatText>>>>;

/// What the chat screen gets from its connection.
pub(crate) struct Chat {
    /// The state, as a reducer.
    pub(crate) state: UseReducerHandle<State>,
    /// The connection, for the per-room links.
    pub(crate) lifeline: UseLifeline,
    /// Where the per-room links register their handles.
    pub(crate) rooms: Rooms,
    /// Publishes a text to the selected room.
    pub(crate) publish: Callback<String>,
    /// Joins (or creates) a room.
    pub(crate) join: Callback<String>,
    /// Leaves a room.
    pub(crate) leave: Callback<String>,
    /// Reconnects at once ("retry now").
    pub(crate) retry: Callback<()>,
}

/// The connection bar's view of the client status.
fn connection(status: &Status) -> Connection {
    if status.offline {
        return Connection::Offline;
    }
    if status.gave_up || status.state == ClientState::Closed {
        let reason = match (&status.last_close, &status.last_error) {
            (Some(close), _) if !close.reason.is_empty() => {
                format!("the server closed with {} ({})", close.code, close.reason)
            }
            (Some(close), _) => format!("the server closed with {}", close.code),
            // The client never started: the outbox's store (IndexedDB) could not be read.
            (None, Some(error)) if !status.gave_up && status.opens == 0 => {
                format!("the client could not start: {error}")
            }
            (None, _) => "too many failed attempts".to_owned(),
        };
        return Connection::GaveUp { reason };
    }
    match (status.state, status.reconnecting) {
        (ClientState::Open, _) => Connection::Connected,
        (ClientState::Reconnecting, Some(wait)) => Connection::Reconnecting {
            attempt: wait.attempt,
            at_ms: wait.started_ms + wait.delay.as_secs_f64() * 1000.0,
        },
        _ => Connection::Connecting { attempt: 1 },
    }
}

/// The persistent outbox's store: one per user and server, so a reload resends what this
/// user typed here and nobody else's.
fn outbox_store(session: &Session) -> String {
    let host = web_sys::window()
        .and_then(|window| window.location().host().ok())
        .unwrap_or_default();
    format!("demo:{}@{host}", session.name)
}

/// What a restored outbox holds, as the reducer takes it: a message whose data is not a chat
/// text (another client's) shows as its JSON.
fn restored(snapshot: &OutboxSnapshot) -> Action {
    Action::Restored {
        rooms: snapshot
            .rooms
            .iter()
            .map(|room| room.room.clone())
            .collect(),
        publishes: snapshot
            .publishes
            .iter()
            .map(|publish| {
                let text = serde_json::from_str::<ChatText>(&publish.data)
                    .map_or_else(|_| publish.data.clone(), |chat| chat.text);
                (publish.room.clone(), publish.id, text)
            })
            .collect(),
        publisher: snapshot.publisher.clone(),
    }
}

/// The URL of every attempt: the login's ticket first (none after a reload), then a fresh
/// ticket per attempt (tickets are one-time, so a reconnect cannot reuse the last one).
fn endpoint(session: &Session) -> Endpoint {
    let first = RefCell::new(session.ticket.clone());
    let name = session.name.clone();
    Endpoint::provider(move || {
        let first = first.borrow_mut().take();
        let name = name.clone();
        async move {
            let ticket = match first {
                Some(ticket) => ticket,
                None => crate::api::login(&name).await?.ticket,
            };
            crate::api::ws_url(&ticket)
        }
    })
}

/// The chat state of `session`, kept up to date by its connection.
#[hook]
pub(crate) fn use_chat(session: Rc<Session>) -> Chat {
    let state = use_reducer(|| State::new(session.name.clone()));
    // Shared mode: all of this user's tabs talk through one socket (the npm package's
    // `ws-lifeline/shared` entry, which trunk copies to `/ws-lifeline/`).
    let config = Config::default()
        .protocols([protocol::SUBPROTOCOL])
        .backoff_min(Duration::from_millis(500))
        .backoff_max(Duration::from_secs(10))
        .share(Share::new(format!("demo-chat:{}", session.name)));
    let lifeline = use_lifeline(
        endpoint(&session).persist(outbox_store(&session), OutboxConfig::default()),
        config,
    );
    let rooms: Rooms = use_mut_ref(BTreeMap::new);

    {
        // What the last page left unsent shows as queued until the client resends it.
        let dispatch = state.dispatcher();
        let lifeline = lifeline.clone();
        use_effect_with(lifeline.restored_outbox().is_some(), move |restored_now| {
            if *restored_now && let Some(snapshot) = lifeline.restored_outbox() {
                dispatch.dispatch(restored(&snapshot));
            }
        });
    }
    {
        let dispatch = state.dispatcher();
        use_outbox_delivered(
            &lifeline,
            Callback::from(move |ids: Vec<ws_lifeline::yew::PublishId>| {
                dispatch.dispatch(Action::OutboxDelivered(
                    ids.into_iter().map(|id| id.0).collect(),
                ));
            }),
        );
    }

    {
        let dispatch = state.dispatcher();
        use_effect_with(connection(lifeline.status()), move |connection| {
            dispatch.dispatch(Action::Connection(connection.clone()));
        });
    }
    {
        // The room list is pushed on every membership change; ask for it on every open.
        let lifeline = lifeline.clone();
        let opens = lifeline.status().opens;
        use_effect_with(opens, move |opens| {
            if *opens > 0 {
                lifeline.list_rooms();
            }
        });
    }
    {
        let dispatch = state.dispatcher();
        use_room_events(
            &lifeline,
            Callback::from(move |event| match event {
                RoomEvent::Welcome { name, .. } => dispatch.dispatch(Action::Welcome { name }),
                RoomEvent::Rooms(rooms) => dispatch.dispatch(Action::RoomList(rooms)),
                RoomEvent::ServerError { message, .. } => {
                    dispatch.dispatch(Action::Error(format!("The server said: {message}")))
                }
                _ => {}
            }),
        );
    }

    let publish = {
        let state = state.clone();
        let rooms = rooms.clone();
        let lifeline = lifeline.clone();
        Callback::from(move |text: String| {
            let Some(name) = state.selected.clone() else {
                return;
            };
            let Some(room) = rooms.borrow().get(&name).cloned() else {
                return;
            };
            match room.publish(&ChatText { text: text.clone() }) {
                Ok(ack) => {
                    // The status comes from the room events; the future is not needed.
                    let id = ack.id().0;
                    drop(ack);
                    let sent = lifeline.live_state() == ClientState::Open;
                    state.dispatch(Action::Publish {
                        room: name,
                        id,
                        text,
                        sent,
                    });
                }
                Err(error) => state.dispatch(Action::Error(format!("Not sent: {error}"))),
            }
        })
    };
    let join = {
        let state = state.dispatcher();
        Callback::from(move |room: String| state.dispatch(Action::Join(room)))
    };
    let leave = {
        let state = state.dispatcher();
        Callback::from(move |room: String| state.dispatch(Action::Leave(room)))
    };
    let retry = {
        let lifeline = lifeline.clone();
        Callback::from(move |()| lifeline.reconnect())
    };
    Chat {
        state,
        lifeline,
        rooms,
        publish,
        join,
        leave,
        retry,
    }
}

#[derive(Properties, PartialEq)]
pub(crate) struct RoomLinkProps {
    /// The connection.
    pub(crate) lifeline: UseLifeline,
    /// The room to be in while this component is mounted.
    pub(crate) room: AttrValue,
    /// Where room events go.
    pub(crate) dispatch: UseReducerDispatcher<State>,
    /// Where the room's handle is registered.
    pub(crate) rooms: Rooms,
}

/// Membership of one room: mounted while the user is in it, it joins (and rejoins after
/// every reconnect) through `use_room_with`, feeds the reducer, and leaves on unmount.
#[component]
pub(crate) fn RoomLink(props: &RoomLinkProps) -> Html {
    let name = props.room.to_string();
    let on_event = {
        let dispatch = props.dispatch.clone();
        Callback::from(move |event: RoomEvent| {
            let action = match event {
                RoomEvent::Joined { room, .. } => Action::Joined {
                    room,
                    recovered: true,
                },
                RoomEvent::Recovery {
                    room, recovered, ..
                } => Action::Joined { room, recovered },
                RoomEvent::Message(message) => {
                    // Data from other clients that is not a chat text is shown as its JSON.
                    let text = match message.decode::<ChatText>() {
                        Ok(chat) => chat.data.text,
                        Err(_) => message.data.to_string(),
                    };
                    let key = match (&message.publisher, message.id) {
                        (Some(publisher), Some(id)) => format!("{publisher}:{id}"),
                        _ => format!("{}:{}", message.epoch, message.offset),
                    };
                    Action::Message {
                        room: message.room,
                        offset: message.offset,
                        key,
                        from: message.from,
                        text,
                        ts: message.ts,
                    }
                }
                RoomEvent::Presence { room, members } => Action::Presence { room, members },
                RoomEvent::Acked { id, offset, .. } => Action::Acked { id: id.0, offset },
                RoomEvent::PublishFailed { id, error, .. } => Action::Failed {
                    id: id.0,
                    reason: format!("Not delivered: {error}"),
                },
                _ => return,
            };
            dispatch.dispatch(action);
        })
    };
    let room = use_room_with::<ChatText>(&props.lifeline, &name, on_event);
    {
        let rooms = props.rooms.clone();
        use_effect_with(name, move |name| {
            rooms.borrow_mut().insert(name.clone(), room);
            let name = name.clone();
            move || {
                rooms.borrow_mut().remove(&name);
            }
        });
    }
    Html::default()
}
