use yew::prelude::*;

use super::{clock, hue};
use crate::state::{Line, LineKind, Status};

#[derive(Properties, PartialEq)]
pub(crate) struct ChatViewProps {
    /// Room name.
    pub(crate) room: AttrValue,
    /// The lines to show, in order.
    pub(crate) lines: Vec<Line>,
}

fn status_label(status: Status) -> (&'static str, &'static str, &'static str, &'static str) {
    // (css class, symbol, short word, long words for tooltips)
    match status {
        Status::Queued => (
            "queued",
            "◷",
            "queued",
            "queued: goes out when the connection is back",
        ),
        Status::Sent => (
            "sent",
            "✓",
            "sent",
            "sent, waiting for the server to confirm",
        ),
        Status::Acked => (
            "acked",
            "✓✓",
            "delivered",
            "delivered: the server confirmed it",
        ),
        Status::Delivered => (
            "delivered",
            "✓✓",
            "delivered",
            "delivered: typed before a reload, confirmed by the server once",
        ),
        Status::Failed => (
            "failed",
            "!",
            "not confirmed",
            "the server did not confirm it",
        ),
    }
}

fn line_html(line: &Line) -> Html {
    if line.kind == LineKind::Gap {
        return html! { <li key={line.key.clone()} class="gap" role="note">{ &line.text }</li> };
    }
    let style = format!("--hue: {}", hue(&line.from));
    let time = line.ts.map(clock).unwrap_or_default();
    let status = line.own.map(|own| {
        let (class, symbol, word, words) = status_label(own.status);
        html! {
            <span class={classes!("status", class)} title={words} data-status={class}>
                <span aria-hidden="true">{ symbol }</span>{ " " }{ word }
            </span>
        }
    });
    html! {
        <li key={line.key.clone()} class={classes!("line", line.own.is_some().then_some("own"))} {style}>
            <div class="meta">
                <span class="from">{ &line.from }</span>
                <time class="time">{ time }</time>
                { status }
            </div>
            <p class="text">{ &line.text }</p>
        </li>
    }
}

/// The messages of one room, oldest first; it scrolls to the newest one.
#[component]
pub(crate) fn ChatView(props: &ChatViewProps) -> Html {
    let list = use_node_ref();
    {
        let list = list.clone();
        use_effect_with((props.room.clone(), props.lines.len()), move |_| {
            if let Some(element) = list.cast::<web_sys::Element>() {
                element.set_scroll_top(element.scroll_height());
            }
        });
    }
    html! {
        <section class="chat" aria-label={format!("Messages in {}", props.room)}>
            <ol class="lines" ref={list} aria-live="polite" data-testid="messages" tabindex="0">
                if props.lines.is_empty() {
                    <li class="empty muted">{ "No messages yet. Say hi!" }</li>
                }
                { for props.lines.iter().map(line_html) }
            </ol>
        </section>
    }
}
