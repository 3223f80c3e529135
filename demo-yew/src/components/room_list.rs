use protocol::RoomInfo;
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// A room you are in, as the sidebar shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinedRoom {
    /// Room name.
    pub(crate) name: String,
    /// Messages not seen yet.
    pub(crate) unread: u32,
}

#[derive(Properties, PartialEq)]
pub(crate) struct RoomListProps {
    /// Rooms you are in.
    pub(crate) joined: Vec<JoinedRoom>,
    /// Every room on the server.
    pub(crate) all: Vec<RoomInfo>,
    /// The selected room.
    pub(crate) selected: Option<String>,
    /// Selects a joined room.
    pub(crate) on_select: Callback<String>,
    /// Joins (or creates) a room.
    pub(crate) on_join: Callback<String>,
    /// Leaves a room.
    pub(crate) on_leave: Callback<String>,
}

/// Your rooms with unread counts, the live list of all rooms, and a field to join any room.
#[component]
pub(crate) fn RoomList(props: &RoomListProps) -> Html {
    let input = use_node_ref();
    let onsubmit = {
        let input = input.clone();
        let on_join = props.on_join.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            if let Some(input) = input.cast::<HtmlInputElement>() {
                let name = input.value().trim().to_owned();
                if !name.is_empty() {
                    on_join.emit(name);
                    input.set_value("");
                }
            }
        })
    };
    let joined = props.joined.iter().map(|room| {
        let selected = props.selected.as_deref() == Some(room.name.as_str());
        let onclick = {
            let on_select = props.on_select.clone();
            let name = room.name.clone();
            Callback::from(move |_: MouseEvent| on_select.emit(name.clone()))
        };
        let onleave = {
            let on_leave = props.on_leave.clone();
            let name = room.name.clone();
            Callback::from(move |_: MouseEvent| on_leave.emit(name.clone()))
        };
        let unread = (room.unread > 0).then(|| {
            html! {
                <span class="badge" aria-label={format!("{} unread", room.unread)}>
                    { room.unread.min(99) }
                </span>
            }
        });
        html! {
            <li key={room.name.clone()} class={classes!("room", selected.then_some("selected"))}>
                <button class="room-button" onclick={onclick}
                    aria-current={selected.then_some("true")}
                    data-room={room.name.clone()}>
                    <span class="hash" aria-hidden="true">{ "#" }</span>
                    <span class="room-name">{ &room.name }</span>
                    { unread }
                </button>
                <button class="icon leave" onclick={onleave} title={format!("Leave {}", room.name)}
                    aria-label={format!("Leave {}", room.name)}>{ "×" }</button>
            </li>
        }
    });
    let all = props.all.iter().map(|info| {
        let member = props.joined.iter().any(|room| room.name == info.room);
        let onclick = {
            let on_join = props.on_join.clone();
            let name = info.room.clone();
            Callback::from(move |_: MouseEvent| on_join.emit(name.clone()))
        };
        let people = if info.members == 1 { "1 person".to_owned() } else {
            format!("{} people", info.members)
        };
        html! {
            <li key={info.room.clone()}>
                <button class="directory-entry" {onclick} data-room={info.room.clone()}
                    aria-label={format!("{} {}, {}", if member { "Open" } else { "Join" }, info.room, people)}>
                    <span class="room-name">{ format!("#{}", info.room) }</span>
                    <span class="count" data-testid="member-count" title={people.clone()}>{ info.members }</span>
                </button>
            </li>
        }
    });
    html! {
        <nav class="rooms" aria-label="Rooms">
            <h2 id="my-rooms">{ "Your rooms" }</h2>
            if props.joined.is_empty() {
                <p class="muted small">{ "Join a room to start chatting." }</p>
            }
            <ul class="room-list" aria-labelledby="my-rooms" data-testid="joined-rooms">{ for joined }</ul>
            <form class="join" {onsubmit}>
                <label for="join-room" class="small">{ "Join or create a room" }</label>
                <div class="join-row">
                    <input id="join-room" ref={input} type="text" maxlength="64"
                        placeholder="room name" autocomplete="off" />
                    <button type="submit">{ "Join" }</button>
                </div>
            </form>
            <h2 id="all-rooms">{ "All rooms" }</h2>
            if props.all.is_empty() {
                <p class="muted small">{ "No rooms yet." }</p>
            }
            <ul class="directory" aria-labelledby="all-rooms" data-testid="all-rooms">{ for all }</ul>
        </nav>
    }
}
