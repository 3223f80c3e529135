//! The top-level components: login first, then the chat.

use std::rc::Rc;

use yew::prelude::*;

use crate::components::{
    ChatView, Composer, ConnectionBar, JoinedRoom, Login, PresenceList, RoomList,
};
use crate::hooks::{Chat, RoomLink, use_chat};
use crate::state::Action;

const NAME_KEY: &str = "ws-lifeline-demo-name";
const TITLE: &str = "ws-lifeline chat";

fn remembered_name() -> Option<String> {
    let storage = web_sys::window()?.session_storage().ok()??;
    storage.get_item(NAME_KEY).ok()?
}

fn remember_name(name: &str) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|window| window.session_storage()) {
        // Only a convenience for reloads; a browser that refuses storage still works.
        let _ = storage.set_item(NAME_KEY, name);
    }
}

/// A logged-in user: the name and the first ticket (each later connect fetches its own).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Session {
    pub(crate) name: String,
    /// `None` after a reload: the first connect fetches one too.
    pub(crate) ticket: Option<String>,
}

/// The app: the login screen until a ticket is in hand, then the chat.
#[component]
pub(crate) fn App() -> Html {
    // A reload goes straight back to the chat of the name this tab logged in with, even
    // while the server is down, so the persistent outbox can show what was left unsent.
    let session =
        use_state(|| remembered_name().map(|name| Rc::new(Session { name, ticket: None })));
    let busy = use_state(|| false);
    let error = use_state(|| None::<AttrValue>);
    let on_login = {
        let session = session.clone();
        let busy = busy.clone();
        let error = error.clone();
        Callback::from(move |name: String| {
            let session = session.clone();
            let busy = busy.clone();
            let error = error.clone();
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match crate::api::login(&name).await {
                    Ok(ticket) => {
                        remember_name(&name);
                        error.set(None);
                        session.set(Some(Rc::new(Session {
                            name,
                            ticket: Some(ticket.ticket),
                        })));
                    }
                    Err(message) => error.set(Some(message.into())),
                }
                busy.set(false);
            });
        })
    };
    html! {
        <div class="app" data-app-ready="true">
            if let Some(session) = (*session).clone() {
                <ChatApp {session} />
            } else {
                <Login {on_login} busy={*busy} error={(*error).clone()}
                    name={remembered_name().map(AttrValue::from)} />
            }
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct ChatAppProps {
    session: Rc<Session>,
}

/// The chat: connection bar, rooms, messages, composer and presence.
#[component]
fn ChatApp(props: &ChatAppProps) -> Html {
    let Chat {
        state,
        publish,
        join,
        leave,
        retry: on_retry,
        lifeline,
        rooms,
    } = use_chat(props.session.clone());
    let drawer = use_state(|| false);
    let dispatch = |make: fn(String) -> Action| {
        let state = state.dispatcher();
        let drawer = drawer.clone();
        Callback::from(move |room: String| {
            drawer.set(false);
            state.dispatch(make(room));
        })
    };
    let on_select = dispatch(Action::Select);
    let on_join = {
        let join = join.clone();
        let drawer = drawer.clone();
        Callback::from(move |room: String| {
            drawer.set(false);
            join.emit(room);
        })
    };
    let on_dismiss = {
        let state = state.dispatcher();
        Callback::from(move |()| state.dispatch(Action::DismissRecovery))
    };
    let on_dismiss_error = {
        let state = state.dispatcher();
        Callback::from(move |_: MouseEvent| state.dispatch(Action::DismissError))
    };
    let close_drawer = {
        let drawer = drawer.clone();
        Callback::from(move |_: MouseEvent| drawer.set(false))
    };
    let close_on_escape = {
        let drawer = drawer.clone();
        Callback::from(move |event: KeyboardEvent| {
            if event.key() == "Escape" && *drawer {
                drawer.set(false);
            }
        })
    };
    let toggle_drawer = {
        let drawer = drawer.clone();
        Callback::from(move |_: MouseEvent| drawer.set(!*drawer))
    };
    let joined: Vec<JoinedRoom> = state
        .rooms
        .iter()
        .map(|room| JoinedRoom {
            name: room.name.clone(),
            unread: room.unread,
        })
        .collect();
    let unread_elsewhere: u32 = state.rooms.iter().map(|room| room.unread).sum();
    use_effect_with(unread_elsewhere, |unread| {
        // Unread messages show in the tab title too, as chat apps do.
        if let Some(document) = web_sys::window().and_then(|window| window.document()) {
            let title = match unread {
                0 => TITLE.to_owned(),
                n => format!("({n}) {TITLE}"),
            };
            document.set_title(&title);
        }
    });
    let selected = state.selected_room();
    let main = match selected {
        Some(room) => {
            let name = AttrValue::from(room.name.clone());
            html! {
                <>
                    <header class="room-header">
                        <h2>{ format!("#{}", room.name) }</h2>
                        <span class="muted small" data-testid="room-members">
                            { match room.members.len() {
                                1 => "1 person here".to_owned(),
                                n => format!("{n} people here"),
                            } }
                        </span>
                    </header>
                    <ChatView room={name.clone()} lines={room.lines().cloned().collect::<Vec<_>>()} />
                    <Composer room={name.clone()} on_send={publish.clone()}
                        queued={!state.connection.is_connected()} />
                </>
            }
        }
        None => html! {
            <div class="welcome">
                <h2>{ format!("Welcome, {}!", state.me) }</h2>
                <p class="muted">{ "Join a room from the list, or create one by name." }</p>
                <div class="quick-rooms">
                    { for ["lobby", "random", "rust"].into_iter().map(|room| {
                        let join = on_join.clone();
                        html! {
                            <button onclick={move |_: MouseEvent| join.emit(room.to_owned())}>
                                { format!("#{room}") }
                            </button>
                        }
                    }) }
                </div>
            </div>
        },
    };
    let presence = selected.map(|room| {
        html! {
            <PresenceList room={room.name.clone()} members={room.members.clone()}
                me={state.me.clone()} />
        }
    });
    let links = state.rooms.iter().map(|room| {
        html! {
            <RoomLink key={room.name.clone()} room={room.name.clone()} lifeline={lifeline.clone()}
                dispatch={state.dispatcher()} rooms={rooms.clone()} />
        }
    });
    html! {
        <div class={classes!("shell", (*drawer).then_some("drawer-open"))} onkeydown={close_on_escape}>
            // Room memberships render nothing; their own container keeps Yew's keyed diff
            // from remounting (leaving and rejoining) a room when another is added.
            <div class="room-links" hidden=true>{ for links }</div>
            <header class="topbar">
                <button class="icon menu" onclick={toggle_drawer}
                    aria-expanded={if *drawer { "true" } else { "false" }}
                    aria-controls="sidebar" aria-label="Rooms">
                    { "☰" }
                    if unread_elsewhere > 0 { <span class="badge dot-badge"></span> }
                </button>
                <span class="brand">{ "ws-lifeline" }<span class="muted">{ " chat" }</span></span>
                <span class="me" title="Your display name">{ &state.me }</span>
            </header>
            <ConnectionBar connection={state.connection.clone()} recovery={state.recovery.clone()}
                {on_retry} {on_dismiss} />
            if let Some(error) = &state.error {
                <div class="notice error" role="alert">
                    <span>{ error }</span>
                    <button class="icon" aria-label="Dismiss" onclick={on_dismiss_error}>{ "×" }</button>
                </div>
            }
            <div class={classes!("layout", (!state.connection.is_connected()).then_some("stale"))}>
                if *drawer {
                    <div class="backdrop" onclick={close_drawer} aria-hidden="true"></div>
                }
                <div id="sidebar" class="sidebar">
                    <RoomList {joined} all={state.room_list.clone()} selected={state.selected.clone()}
                        {on_select} {on_join} on_leave={leave} />
                </div>
                <main class="main">{ main }</main>
                { presence }
            </div>
        </div>
    }
}
