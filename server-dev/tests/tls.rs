//! `wss://`: the handshake with a self-signed certificate generated at start, which the test
//! client trusts explicitly (no "accept any certificate" shortcut).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::sync::Arc;

use common::{TestServer, WAIT, open_config, raw_until, request};
use futures::SinkExt;
use protocol::{ClientMsg, ServerMsg};
use server_dev::TlsSetup;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn wss_handshake_with_a_generated_certificate() {
    let (cert, key) = server_dev::tls::self_signed().unwrap();
    let setup = TlsSetup::Der {
        cert: cert.clone(),
        key,
    };
    check_wss(setup, cert).await;
}

/// `--tls-cert/--tls-key`: PEM files on disk.
#[tokio::test]
async fn wss_handshake_with_pem_files() {
    let (cert_pem, key_pem) = server_dev::tls::self_signed_pem().unwrap();
    let dir = std::env::temp_dir().join(format!("server-dev-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .unwrap()
        .to_vec();
    let setup = TlsSetup::Files {
        cert: cert_path,
        key: key_path,
    };
    check_wss(setup, der).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn check_wss(setup: TlsSetup, cert: Vec<u8>) {
    let server = TestServer::start_with(open_config(), Some(setup)).await;

    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(cert)).unwrap();
    let tls = ClientConfig::builder_with_provider(server_dev::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(tls));

    for host in ["localhost", "127.0.0.1"] {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let name = ServerName::try_from(host.to_string()).unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        let url = format!("wss://{host}:{}/ws?name=tls", server.addr.port());
        let (ws, resp) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(request(&url, None), stream),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(resp.status().as_u16(), 101);
        let mut ws = ws;
        let ping = serde_json::to_string(&ClientMsg::<protocol::Data>::Ping { id: 5 }).unwrap();
        ws.send(Message::text(ping)).await.unwrap();
        raw_until(&mut ws, |m| *m == ServerMsg::Pong { id: 5 }).await;
        ws.close(None).await.unwrap();
    }

    // A client that does not trust the certificate fails the handshake.
    let untrusting = ClientConfig::builder_with_provider(server_dev::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("localhost".to_string()).unwrap();
    assert!(
        TlsConnector::from(Arc::new(untrusting))
            .connect(name, tcp)
            .await
            .is_err()
    );
    server.stop().await;
}
