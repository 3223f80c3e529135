//! The persistent-outbox example of `client-wasm/README.md` (native, tokio): every snapshot is
//! written to a file, and the next run starts from it, so a publish made before a crash is
//! resent with its id. The README copies `run`.
//!
//! Checked (not run) by `cargo xtask test`'s native clippy step, and on its own with
//! `cargo check -p ws-lifeline --features native,persist --examples`. Its arguments are the
//! server's URL and the file.

// An example's output is its point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[cfg(not(target_arch = "wasm32"))]
async fn run(url: &str, file: std::path::PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    use ws_lifeline::Config;
    use ws_lifeline::machine::rooms::RoomEvent;
    use ws_lifeline::machine::rooms::outbox::{OutboxConfig, OutboxSnapshot};
    use ws_lifeline::native::{Client, ClientEvent};

    let text = std::fs::read_to_string(&file).ok();
    let last = text.as_deref().map(OutboxSnapshot::from_json).transpose()?;
    // Called before the client sends what a snapshot lets out.
    let save = move |s: &OutboxSnapshot| {
        if let Err(e) = std::fs::write(&file, s.to_json()) {
            eprintln!("outbox not saved: {e}");
        }
    };
    let outbox = OutboxConfig::default();
    let mut client = Client::connect_persistent(url, Config::default(), outbox, last, save)?;
    client.join("lobby")?;
    drop(client.publish("lobby", &"hello")?); // kept until acked, across restarts
    while let Some(event) = client.next_event().await {
        if let ClientEvent::Room(RoomEvent::OutboxDelivered { ids }) = event {
            println!("delivered from the last run: {ids:?}");
        }
    }
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let file = args.next().unwrap_or_else(|| "outbox.json".into());
    run(&url, file.into()).await
}

#[cfg(target_arch = "wasm32")]
fn main() {}
