use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub(crate) struct LoginProps {
    /// Called with the trimmed display name.
    pub(crate) on_login: Callback<String>,
    /// True while the login request is in flight.
    pub(crate) busy: bool,
    /// Why the last login failed.
    pub(crate) error: Option<AttrValue>,
    /// The name used last time in this tab, if any.
    pub(crate) name: Option<AttrValue>,
}

/// Picks a display name.
#[component]
pub(crate) fn Login(props: &LoginProps) -> Html {
    let input = use_node_ref();
    let onsubmit = {
        let input = input.clone();
        let on_login = props.on_login.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            if let Some(input) = input.cast::<HtmlInputElement>() {
                let name = input.value().trim().to_owned();
                if !name.is_empty() {
                    on_login.emit(name);
                }
            }
        })
    };
    html! {
        <main class="login">
            <form class="login-card" {onsubmit} aria-describedby="login-help">
                <h1>{ "ws-lifeline chat" }</h1>
                <p id="login-help" class="muted">
                    { "A chat that survives server restarts, flaky Wi-Fi and sleeping laptops. \
                       Pick a name to start." }
                </p>
                <label for="login-name">{ "Display name" }</label>
                <input id="login-name" ref={input} name="name" type="text" required=true
                    maxlength="32" autocomplete="nickname" autofocus=true
                    placeholder="e.g. ada" disabled={props.busy}
                    value={props.name.clone()} />
                <button type="submit" class="primary" disabled={props.busy}>
                    { if props.busy { "Signing in…" } else { "Start chatting" } }
                </button>
                if let Some(error) = &props.error {
                    <p class="form-error" role="alert">{ error.clone() }</p>
                }
            </form>
        </main>
    }
}
