//! TLS for `wss://`: a self-signed certificate made at start (rcgen), or PEM files.

use std::path::PathBuf;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Error, Result};

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TlsSetup {
    /// Generate a self-signed certificate for `localhost` and `127.0.0.1` at start.
    SelfSigned,
    /// Load a PEM certificate chain and a PEM private key.
    Files {
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key.
        key: PathBuf,
    },
    /// Use this DER certificate and PKCS#8 key (tests make one with [`self_signed`] and trust it).
    Der {
        /// DER certificate.
        cert: Vec<u8>,
        /// DER PKCS#8 private key.
        key: Vec<u8>,
    },
}

/// A self-signed certificate for `localhost` and `127.0.0.1`: `(cert DER, PKCS#8 key DER)`.
pub fn self_signed() -> Result<(Vec<u8>, Vec<u8>)> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let key = rcgen::generate_simple_self_signed(names).map_err(|e| Error::Tls {
        message: e.to_string(),
    })?;
    Ok((key.cert.der().to_vec(), key.signing_key.serialize_der()))
}

/// The same as [`self_signed`], PEM-encoded: `(certificate PEM, PKCS#8 key PEM)`, as
/// `--tls-cert` and `--tls-key` expect them.
pub fn self_signed_pem() -> Result<(String, String)> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let key = rcgen::generate_simple_self_signed(names).map_err(|e| Error::Tls {
        message: e.to_string(),
    })?;
    Ok((key.cert.pem(), key.signing_key.serialize_pem()))
}

/// The rustls crypto provider used by the server, named explicitly so that no process-wide
/// default has to be installed.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Makes or loads the certificate now, so that a bad key or file fails before the server
/// announces itself. A self-signed setup comes back as [`TlsSetup::Der`], keeping the
/// certificate it was checked with.
pub fn prepare(setup: TlsSetup) -> Result<TlsSetup> {
    let setup = match setup {
        TlsSetup::SelfSigned => {
            let (cert, key) = self_signed()?;
            TlsSetup::Der { cert, key }
        }
        other => other,
    };
    rustls_config(&setup)?;
    Ok(setup)
}

pub(crate) fn rustls_config(setup: &TlsSetup) -> Result<RustlsConfig> {
    let (certs, key) = match setup {
        TlsSetup::SelfSigned => {
            let (cert, key) = self_signed()?;
            (
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
        }
        TlsSetup::Der { cert, key } => (
            vec![CertificateDer::from(cert.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.clone())),
        ),
        TlsSetup::Files { cert, key } => {
            let tls_err = |what: &str, e: rustls::pki_types::pem::Error| Error::Tls {
                message: format!("{what}: {e}"),
            };
            let certs = CertificateDer::pem_file_iter(cert)
                .map_err(|e| tls_err("reading certificate", e))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| tls_err("parsing certificate", e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err("reading key", e))?;
            (certs, key)
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            message: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls {
            message: e.to_string(),
        })?;
    // WebSockets upgrade over HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}
