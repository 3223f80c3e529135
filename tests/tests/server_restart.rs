//! A server restart loses room history, and the protocol says so instead of leaving a gap.
//!
//! Covers: after a restart on the same port, rejoining with the old epoch and offset gets
//! `joined{recovered:false, resume_after:0}` with a new epoch and, with nothing published in
//! it yet, nothing replayed, and the old session is not resumed; the helper client unpacks
//! batch frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lifeline_tests::server::{ProtoClient, RunningServer};
use protocol::{ClientMsg, ServerMsg, Since};

fn config() -> server_dev::Config {
    server_dev::Config::default().no_auth(true)
}

#[tokio::test]
async fn restart_changes_the_epoch_and_recovery_reports_the_loss() {
    let server = RunningServer::start(config()).await.unwrap();
    let addr = server.addr();
    let mut a = ProtoClient::connect(&server.ws_url("/ws?name=ann"))
        .await
        .unwrap();
    let (session, _) = a.hello(None).await.unwrap();
    let ServerMsg::Joined { epoch, .. } = a.join("r", None).await.unwrap() else {
        unreachable!()
    };
    for id in 1..=3 {
        let publish = ClientMsg::Publish {
            room: "r".into(),
            id,
            data: serde_json::json!(id),
        };
        a.send(&publish).await.unwrap();
    }
    a.until(|m| matches!(m, ServerMsg::Message { offset: 3, .. }))
        .await
        .unwrap();

    server.stop().await;
    // The client sees the server go away with 1001.
    let gone = a.until(|_| false).await;
    assert!(
        matches!(
            gone,
            Err(lifeline_tests::server::ClientError::Closed(Some(1001)))
        ),
        "{gone:?}"
    );

    let server = RunningServer::start_at(addr, config()).await.unwrap();
    let mut a = ProtoClient::connect(&server.ws_url("/ws?name=ann"))
        .await
        .unwrap();
    let (_, resumed) = a.hello(Some(session)).await.unwrap();
    assert!(!resumed, "the old session is not resumed");
    let since = Some(Since {
        epoch: epoch.clone(),
        offset: 2,
    });
    let joined = a.join("r", since).await.unwrap();
    match joined {
        ServerMsg::Joined {
            epoch: new_epoch,
            offset,
            recovered,
            resume_after,
            ..
        } => {
            assert_ne!(new_epoch, epoch);
            assert_eq!((offset, recovered, resume_after), (0, false, Some(0)));
        }
        _ => unreachable!(),
    }
    a.send(&ClientMsg::Ping { id: 9 }).await.unwrap();
    let next = a
        .until(|m| !matches!(m, ServerMsg::Presence { .. } | ServerMsg::Rooms { .. }))
        .await;
    assert_eq!(next.unwrap(), ServerMsg::Pong { id: 9 }, "nothing replayed");
    assert!(a.frames() >= 1);
    server.stop().await;
}
