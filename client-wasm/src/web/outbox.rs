//! The browser store of the persistent outbox (feature `persist`): each store name keeps the
//! last [`OutboxSnapshot`] in IndexedDB (through [rexie](https://docs.rs/rexie)), written
//! after every run of the client that changed it, in order. See
//! [`outbox`](crate::machine::rooms::outbox) for what a snapshot holds and why publishes wait
//! for one to be stored.
//!
//! ```no_run
//! # async fn run() -> Result<(), ws_lifeline::machine::rooms::outbox::OutboxError> {
//! use ws_lifeline::machine::rooms::outbox::OutboxConfig;
//! use ws_lifeline::{Client, Config};
//!
//! // Restores what the last page left in the store "chat" (resent once connected).
//! let client =
//!     Client::connect_persistent("wss://example.com/ws", Config::default(), OutboxConfig::default(), "chat")
//!         .await?;
//! client.join("lobby").ok();
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::rc::{Rc, Weak};

use futures::TryFutureExt;
use rexie::{ObjectStore, Rexie, TransactionMode};
use wasm_bindgen::JsValue;

use super::{Host, Inner, now};
use crate::client::{Backend, Client, Provider, UrlFuture};
use crate::machine::Target;
use crate::machine::rooms::outbox::{OutboxConfig, OutboxError, OutboxSnapshot};
use crate::{Config, Error, Event};

/// The IndexedDB database of every store name, and its object store.
const DATABASE: &str = "ws-lifeline-outbox";
const SNAPSHOTS: &str = "snapshots";

fn store_error(e: rexie::Error) -> OutboxError {
    OutboxError::Store {
        message: e.to_string(),
    }
}

/// One store name's place in IndexedDB. The database closes when the last write that holds it
/// is done and its client is gone.
pub(crate) struct OutboxStore {
    db: Option<Rexie>,
    key: JsValue,
}

impl Drop for OutboxStore {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            db.close();
        }
    }
}

impl OutboxStore {
    async fn open(name: &str) -> Result<OutboxStore, OutboxError> {
        let db = Rexie::builder(DATABASE)
            .version(1)
            .add_object_store(ObjectStore::new(SNAPSHOTS))
            .build()
            .await
            .map_err(store_error)?;
        Ok(OutboxStore {
            db: Some(db),
            key: JsValue::from_str(name),
        })
    }

    fn db(&self) -> Result<&Rexie, OutboxError> {
        self.db.as_ref().ok_or_else(|| OutboxError::Store {
            message: "closed".into(),
        })
    }

    async fn load(&self) -> Result<Option<OutboxSnapshot>, OutboxError> {
        let tx = (self.db()?)
            .transaction(&[SNAPSHOTS], TransactionMode::ReadOnly)
            .map_err(store_error)?;
        let store = tx.store(SNAPSHOTS).map_err(store_error)?;
        let value = store.get(self.key.clone()).await.map_err(store_error)?;
        match value.and_then(|v| v.as_string()) {
            Some(text) => OutboxSnapshot::from_json(&text).map(Some),
            None => Ok(None),
        }
    }

    async fn save(&self, snapshot: &OutboxSnapshot) -> Result<(), OutboxError> {
        let tx = (self.db()?)
            .transaction(&[SNAPSHOTS], TransactionMode::ReadWrite)
            .map_err(store_error)?;
        let store = tx.store(SNAPSHOTS).map_err(store_error)?;
        // As JSON text: the format of docs/PROTOCOL.md, readable by the JS side too.
        let value = JsValue::from_str(&snapshot.to_json());
        store
            .put(&value, Some(&self.key))
            .await
            .map_err(store_error)?;
        let done = tx.done().await.map_err(store_error)?;
        if done.is_committed() {
            Ok(())
        } else {
            Err(OutboxError::Store {
                message: "the write was aborted".into(),
            })
        }
    }
}

/// The snapshot the store `name` holds (what the next [`Client::connect_persistent`] on it
/// restores), for example to show the publishes a previous page left unacknowledged.
///
/// Errors: [`OutboxError::Store`], [`OutboxError::Decode`].
pub async fn stored_outbox(name: &str) -> Result<Option<OutboxSnapshot>, OutboxError> {
    OutboxStore::open(name).await?.load().await
}

/// The persistent outbox of the browser [`Client`].
impl Client {
    /// As [`connect`](Self::connect), with the persistent outbox on, kept in IndexedDB under
    /// `store` (one name per client, for example per URL): restored from what the last
    /// client on `store` left there, and written after every change. Publishes go out once a
    /// snapshot naming their session is written.
    ///
    /// Errors: [`OutboxError::Store`] when IndexedDB cannot be opened or read,
    /// [`OutboxError::Client`] with [`Error::InvalidUrl`], and those of
    /// [`Rooms::restore`](crate::machine::rooms::Rooms::restore) for what the store holds.
    pub async fn connect_persistent(
        url: &str,
        config: Config,
        outbox: OutboxConfig,
        store: &str,
    ) -> Result<Client, OutboxError> {
        Client::start_persistent(config, Target::Url(url.to_owned()), None, outbox, store).await
    }

    /// As [`with_url_provider`](Self::with_url_provider) (a URL computed before every
    /// attempt, for example with a one-time ticket), with the persistent outbox of
    /// [`connect_persistent`](Self::connect_persistent) kept under `store`.
    ///
    /// Errors: [`OutboxError::Store`] when IndexedDB cannot be opened or read, and those of
    /// [`Rooms::restore`](crate::machine::rooms::Rooms::restore) for what the store holds.
    pub async fn with_url_provider_persistent<F, Fut, E>(
        config: Config,
        outbox: OutboxConfig,
        store: &str,
        provider: F,
    ) -> Result<Client, OutboxError>
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<String, E>> + 'static,
        E: fmt::Display + 'static,
    {
        let provider: Provider =
            Rc::new(move || -> UrlFuture { Box::pin(provider().map_err(|e| e.to_string())) });
        Client::start_persistent(config, Target::Provider, Some(provider), outbox, store).await
    }

    async fn start_persistent(
        config: Config,
        target: Target,
        provider: Option<Provider>,
        outbox: OutboxConfig,
        store: &str,
    ) -> Result<Client, OutboxError> {
        #[cfg(feature = "shared")]
        if let Some(share) = config.share.clone() {
            return Client::start_shared_persistent(config, share, target, provider, outbox, store)
                .await;
        }
        let store = OutboxStore::open(store).await?;
        let snapshot = store.load().await?;
        let mut session = Host::new_session(config, target)?;
        session.persist(now(), outbox, snapshot)?;
        let host = Host::run(session, provider);
        // Before the first run, which `run` put in a microtask.
        *host.inner.outbox_store.borrow_mut() = Some(Rc::new(store));
        Ok(Client {
            backend: Backend::Local(host),
        })
    }

    /// Shared mode with the persistent outbox: the hub keeps the outbox in `store` (it restores
    /// and resends what an earlier hub left there); this tab reads what the store held, for
    /// [`outbox_snapshot`](Client::outbox_snapshot).
    #[cfg(feature = "shared")]
    async fn start_shared_persistent(
        config: Config,
        share: crate::Share,
        target: Target,
        provider: Option<Provider>,
        outbox: OutboxConfig,
        store: &str,
    ) -> Result<Client, OutboxError> {
        let restored = stored_outbox(store).await?;
        let client = super::shared::SharedTab::client(super::shared::SharedStart {
            config,
            share,
            target,
            provider,
            persist: Some((store.to_owned(), outbox)),
            restored,
        })?;
        Ok(client)
    }
}

impl Inner {
    /// Writes the outbox's snapshot if it changed; once written, tells the session (which may
    /// let publishes out). A failed write is reported as an [`Event::Error`].
    pub(super) fn store_outbox(this: &Rc<Inner>) {
        let Some(store) = this.outbox_store.borrow().clone() else {
            return;
        };
        let Some(snapshot) = this.session.borrow_mut().poll_outbox() else {
            return;
        };
        let weak: Weak<Inner> = Rc::downgrade(this);
        // Spawned in order, so their transactions are created, and so commit, in order.
        wasm_bindgen_futures::spawn_local(async move {
            let saved = store.save(&snapshot).await;
            let Some(inner) = weak.upgrade().filter(|i| !i.disposed.get()) else {
                return;
            };
            match saved {
                Ok(()) => Inner::act(&inner, |s, now| s.outbox_stored(now, &snapshot)),
                Err(e) => {
                    let event = Event::Error(Error::Platform {
                        message: e.to_string(),
                    });
                    Inner::dispatch(&inner, &inner.subscribers, &event);
                }
            }
        });
    }
}
