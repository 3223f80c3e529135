//! The Yew example of `client-wasm/README.md`: connect, show the connection state, join a
//! typed room, publish and await the ack. The README copies the `app` module.
//!
//! Checked (not run) by `cargo xtask test`'s wasm32 clippy step, and on its own with
//! `cargo check --target wasm32-unknown-unknown -p ws-lifeline --features yew --examples`.

#[cfg(target_arch = "wasm32")]
mod app {
    use serde::{Deserialize, Serialize};
    use ws_lifeline::yew::{Endpoint, Status, use_lifeline, use_room};
    use ws_lifeline::{Config, State};
    use yew::prelude::*;

    /// What this app publishes to a room and reads back from it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Chat {
        text: String,
    }

    fn connection(status: &Status) -> String {
        match (status.state, status.reconnecting) {
            (State::Reconnecting, Some(wait)) => {
                format!("retry {} in {:?}", wait.attempt, wait.delay)
            }
            (state, _) if status.offline => format!("{state:?} (offline)"),
            (state, _) => format!("{state:?}"),
        }
    }

    #[component]
    pub(crate) fn App() -> Html {
        // Rooms need a protocol v1 server (server-dev, or one that follows docs/PROTOCOL.md).
        let config = Config::default().protocols([ws_lifeline::protocol::SUBPROTOCOL]);
        let lifeline = use_lifeline(Endpoint::url("wss://example.com/ws"), config);
        let lobby = use_room::<Chat>(&lifeline, "lobby");
        let outcome = use_state(String::new);

        let onclick = {
            let lobby = lobby.clone();
            let outcome = outcome.clone();
            Callback::from(move |_: MouseEvent| {
                let chat = Chat {
                    text: "hello".into(),
                };
                // Queued while disconnected and resent until acknowledged.
                match lobby.publish(&chat) {
                    Ok(ack) => {
                        let outcome = outcome.clone();
                        yew::platform::spawn_local(async move {
                            outcome.set(match ack.await {
                                Ok(ack) => format!("acked at offset {}", ack.offset),
                                Err(error) => format!("not delivered: {error}"),
                            });
                        });
                    }
                    Err(error) => outcome.set(format!("not sent: {error}")),
                }
            })
        };

        html! {
            <>
                <p>{ connection(lifeline.status()) }</p>
                // (epoch, offset) is unique; offsets alone start again after a server restart.
                <ul>{ for lobby.messages().iter().map(|m| html! {
                    <li key={format!("{}:{}", m.epoch, m.offset)}>{ format!("{}: {}", m.from, m.data.text) }</li>
                }) }</ul>
                <button {onclick} disabled={!lobby.joined()}>{ "Say hello" }</button>
                <p>{ (*outcome).clone() }</p>
            </>
        }
    }
}

#[cfg(target_arch = "wasm32")]
use app::App;

fn main() {
    #[cfg(target_arch = "wasm32")]
    yew::Renderer::<App>::new().render();
}
