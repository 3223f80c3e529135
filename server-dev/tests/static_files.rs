//! `--static-dir`: the built demo is served on the same port, with an index.html fallback for
//! client-side routes, next to `/ws` and `/api`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{TestServer, http};
use server_dev::Config;

#[tokio::test]
async fn serves_files_with_index_fallback() {
    let dir = std::env::temp_dir().join(format!("server-dev-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(dir.join("assets/app.js"), "console.log(1)").unwrap();

    let server = TestServer::start(Config::default().static_dir(&dir)).await;
    assert_eq!(
        http(server.addr, "GET", "/", None).await,
        (200, "<h1>demo</h1>".to_string())
    );
    assert_eq!(
        http(server.addr, "GET", "/assets/app.js", None).await,
        (200, "console.log(1)".to_string())
    );
    assert_eq!(
        http(server.addr, "GET", "/room/lobby", None).await,
        (200, "<h1>demo</h1>".to_string()),
        "client-side route falls back to index.html"
    );
    let (status, body) = http(server.addr, "GET", "/api/health", None).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
