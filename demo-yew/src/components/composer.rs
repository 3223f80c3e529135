use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub(crate) struct ComposerProps {
    /// Room name, for the label.
    pub(crate) room: AttrValue,
    /// Called with the text to send.
    pub(crate) on_send: Callback<String>,
    /// True while offline: messages are queued, and the placeholder says so.
    pub(crate) queued: bool,
}

/// The message field: Enter sends, Shift+Enter starts a new line.
#[component]
pub(crate) fn Composer(props: &ComposerProps) -> Html {
    let input = use_node_ref();
    let send = {
        let input = input.clone();
        let on_send = props.on_send.clone();
        move || {
            if let Some(input) = input.cast::<HtmlTextAreaElement>() {
                let text = input.value();
                let text = text.trim();
                if !text.is_empty() {
                    on_send.emit(text.to_owned());
                    input.set_value("");
                }
                let _ = input.focus();
            }
        }
    };
    let onkeydown = {
        let send = send.clone();
        Callback::from(move |event: KeyboardEvent| {
            if event.key() == "Enter" && !event.shift_key() && !event.is_composing() {
                event.prevent_default();
                send();
            }
        })
    };
    let onsubmit = Callback::from(move |event: SubmitEvent| {
        event.prevent_default();
        send();
    });
    let placeholder = if props.queued {
        format!("Message #{} (sent once reconnected)", props.room)
    } else {
        format!("Message #{}", props.room)
    };
    html! {
        <form class="composer" {onsubmit}>
            <label for="composer-input" class="visually-hidden">
                { format!("Message to {}", props.room) }
            </label>
            <textarea id="composer-input" ref={input} rows="1" maxlength="2000"
                {placeholder} {onkeydown} enterkeyhint="send" />
            <button type="submit" class="primary" aria-label="Send">{ "Send" }</button>
        </form>
    }
}
