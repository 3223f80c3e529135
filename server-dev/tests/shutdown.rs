//! Graceful shutdown: every WebSocket, `/ws` and test endpoints alike, gets close 1001 and
//! `serve` returns.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{Client, TestServer, WAIT, expect_close, open_config, try_connect};
use protocol::close;

#[tokio::test]
async fn shutdown_closes_every_websocket_with_1001() {
    let server = TestServer::start(open_config()).await;
    let mut a = Client::connect(&server, "ann").await;
    a.join("r").await;
    let mut b = Client::connect(&server, "bob").await;
    let mut echo = try_connect(&server.ws_url("/echo"), None).await.unwrap();
    let addr = server.addr;

    let readers = tokio::spawn(async move {
        let a = a.expect_close().await;
        let b = b.expect_close().await;
        let e = expect_close(&mut echo).await;
        [a, b, e].map(|f| u16::from(f.code))
    });
    // `stop` signals shutdown and waits for `serve` to return.
    server.stop().await;
    let codes = tokio::time::timeout(WAIT, readers).await.unwrap().unwrap();
    assert_eq!(codes, [close::GOING_AWAY; 3]);
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
