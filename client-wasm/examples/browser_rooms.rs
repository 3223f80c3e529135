//! The browser example without Yew of `client-wasm/README.md`: connect, join a room, publish
//! and await the ack, then read the room's messages. The README copies `run`.
//!
//! Checked (not run) by `cargo xtask test`'s wasm32 clippy step, and on its own with
//! `cargo check --target wasm32-unknown-unknown -p ws-lifeline --examples`.

#[cfg(target_arch = "wasm32")]
async fn run() -> Result<(), Box<dyn std::error::Error>> {
    use futures::StreamExt;
    use ws_lifeline::machine::rooms::RoomEvent;
    use ws_lifeline::{Client, Config};

    let config = Config::default().protocols([ws_lifeline::protocol::SUBPROTOCOL]);
    let client = Client::connect("wss://example.com/ws", config)?;
    client.join("lobby")?;
    let ack = client.publish("lobby", &"hello")?.await?; // resolves on the server's ack
    let mut texts = vec![format!("acked at offset {}", ack.offset)];
    let mut events = client.room_events();
    while let Some(event) = events.next().await {
        match event {
            RoomEvent::Message(m) => match m.decode::<String>() {
                Ok(m) => texts.push(format!("{}: {}", m.from, m.data)),
                Err(bad) => texts.push(format!("not a string: {}", bad.raw)),
            },
            RoomEvent::Recovery {
                recovered: false, ..
            } => texts.push("some messages are lost".into()),
            _ => {}
        }
    }
    Ok(())
}

fn main() {
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(async {
        let _ = run().await;
    });
}
