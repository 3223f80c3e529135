use yew::prelude::*;

use super::hue;

#[derive(Properties, PartialEq)]
pub(crate) struct PresenceProps {
    /// Room name.
    pub(crate) room: AttrValue,
    /// Display names, sorted.
    pub(crate) members: Vec<String>,
    /// Your own name, marked as "you".
    pub(crate) me: AttrValue,
}

/// Who is in the selected room.
#[component]
pub(crate) fn PresenceList(props: &PresenceProps) -> Html {
    let count = props.members.len();
    html! {
        <aside class="presence" aria-label={format!("People in {}", props.room)}>
            <h2>{ format!("Here now · {count}") }</h2>
            <ul class="members" data-testid="presence">
                { for props.members.iter().map(|name| {
                    let style = format!("--hue: {}", hue(name));
                    html! {
                        <li key={name.clone()} class="member" {style}>
                            <span class="dot" aria-hidden="true"></span>
                            <span class="member-name">{ name }</span>
                            if *name == *props.me { <span class="muted">{ " (you)" }</span> }
                        </li>
                    }
                }) }
            </ul>
        </aside>
    }
}
