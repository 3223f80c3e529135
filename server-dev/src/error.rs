//! The crate's error type.

/// What can go wrong when starting or running the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding or serving the socket failed.
    #[error("i/o error: {message}")]
    Io {
        /// The underlying error, as text (kept `Clone + PartialEq`).
        message: String,
    },
    /// The TLS certificate or key could not be made or loaded.
    #[error("tls setup failed: {message}")]
    Tls {
        /// What failed.
        message: String,
    },
    /// The storage engine could not be opened or read (see [`crate::Config::engine`]).
    #[error("storage engine: {message}")]
    Storage {
        /// What failed.
        message: String,
    },
    /// `--tls-cert` was given without `--tls-key`, or the other way round.
    #[error("--tls-cert and --tls-key must be given together")]
    TlsPairIncomplete,
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::Io {
            message: err.to_string(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
