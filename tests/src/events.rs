//! Waiting on a native client's events.

use std::time::Duration;

use tokio::time::timeout;
use ws_lifeline::native::{Client, ClientEvent};

/// Every event of `client` until `done` matches one, which is included; panics, showing what
/// was seen, if none does within `limit`.
pub async fn until(
    client: &mut Client,
    limit: Duration,
    mut done: impl FnMut(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let wait = async {
        while let Some(event) = client.next_event().await {
            let last = done(&event);
            seen.push(event);
            if last {
                return;
            }
        }
    };
    let finished = timeout(limit, wait).await;
    assert!(finished.is_ok(), "timed out; saw {seen:?}");
    seen
}
