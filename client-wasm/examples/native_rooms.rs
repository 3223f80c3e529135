//! The native (tokio) example of `client-wasm/README.md`: connect, join a room, publish and
//! await the ack, then print the room's messages. The README copies `run`.
//!
//! Checked (not run) by `cargo xtask test`'s native clippy step, and on its own with
//! `cargo check -p ws-lifeline --features native --examples`. Its argument is the server's URL.

// An example's output is its point.
#![allow(clippy::print_stdout)]

#[cfg(not(target_arch = "wasm32"))]
async fn run(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    use ws_lifeline::Config;
    use ws_lifeline::machine::rooms::RoomEvent;
    use ws_lifeline::native::{Client, ClientEvent};

    let config = Config::default().protocols([ws_lifeline::protocol::SUBPROTOCOL]);
    let mut client = Client::connect(url, config)?;
    client.join("lobby")?;
    let ack = client.publish("lobby", &"hello")?.await?; // resolves on the server's ack
    println!("acked at offset {}", ack.offset);
    while let Some(event) = client.next_event().await {
        match event {
            ClientEvent::Room(RoomEvent::Message(m)) => println!("{}: {}", m.from, m.data),
            ClientEvent::Connection(event) => println!("{event:?}"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1);
    run(url.as_deref().unwrap_or("ws://127.0.0.1:8080/ws")).await
}

#[cfg(target_arch = "wasm32")]
fn main() {}
