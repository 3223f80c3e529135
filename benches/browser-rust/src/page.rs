//! The functions `benches/browser/page.html` calls. Each mirrors the page's own `receive` and
//! `send` for the JS clients: same clock (`performance.now()`), same start and stop points,
//! same 120 s limit. The client is dropped (closing its socket) once the figure is taken.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::channel::oneshot;
use futures::future::{Either, select};
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::prelude::*;
use ws_lifeline::typed::DecodeError;
use ws_lifeline::{Client, Config, Event};

use crate::{Delivered, Payload, Publish, PublishData, Report};

/// The page's limit for one client's run.
const TIMEOUT_MS: u32 = 120_000;

/// As the page configures the JS API: sends must not wait in (or overflow) the outbound queue,
/// since the bare socket has none.
fn config() -> Config {
    Config::default()
        .protocols(["lifeline.v1"])
        .no_heartbeat()
        .high_water_mark(1 << 30)
        .queue_limits(1 << 20, 1 << 30)
}

/// `performance.now()`, the clock the page times the other clients with.
#[derive(Clone)]
struct Clock(web_sys::Performance);

impl Clock {
    fn new() -> Result<Self, JsValue> {
        web_sys::window()
            .and_then(|w| w.performance())
            .map(Clock)
            .ok_or_else(|| JsError::new("no window.performance").into())
    }

    fn now(&self) -> f64 {
        self.0.now()
    }
}

/// What a run resolves to, as the page's JS runs do.
struct Measured {
    ms: f64,
    count: u64,
    server_us: Option<u64>,
}

impl Measured {
    fn to_js(&self) -> Result<JsValue, JsValue> {
        let object = js_sys::Object::new();
        let set = |key: &str, value: JsValue| js_sys::Reflect::set(&object, &key.into(), &value);
        set("ms", self.ms.into())?;
        set("count", (self.count as f64).into())?;
        if let Some(us) = self.server_us {
            set("server_us", (us as f64).into())?;
        }
        Ok(object.into())
    }
}

type Outcome = Result<Measured, String>;

/// The sending half of a run's result, used once by whichever callback finishes the run.
struct Finish(RefCell<Option<oneshot::Sender<Outcome>>>);

impl Finish {
    fn new() -> (Self, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        (Finish(RefCell::new(Some(tx))), rx)
    }

    fn with(&self, outcome: Outcome) {
        if let Some(tx) = self.0.borrow_mut().take() {
            let _ = tx.send(outcome);
        }
    }
}

/// Waits for a run's result or the page's time limit.
async fn outcome(rx: oneshot::Receiver<Outcome>, what: &str) -> Result<JsValue, JsValue> {
    let failed = |why: &str| -> JsValue { JsError::new(&format!("{what}: {why}")).into() };
    match select(rx, TimeoutFuture::new(TIMEOUT_MS)).await {
        Either::Left((Ok(Ok(measured)), _)) => measured.to_js(),
        Either::Left((Ok(Err(error)), _)) => Err(failed(&error)),
        Either::Left((Err(_), _)) => Err(failed("the client went away")),
        Either::Right(_) => Err(failed("timed out")),
    }
}

fn js_error(error: ws_lifeline::Error) -> JsValue {
    JsError::new(&error.to_string()).into()
}

/// Receives `n` events from `url` (`/bench/send`): ms from connecting to the `n`th event
/// delivered as a [`Delivered<Payload>`].
#[wasm_bindgen]
pub async fn rust_receive(url: String, n: u32) -> Result<JsValue, JsValue> {
    let clock = Clock::new()?;
    let (finish, rx) = Finish::new();
    let t0 = clock.now();
    let client = Client::connect(&url, config()).map_err(js_error)?;
    let count = Cell::new(0u64);
    let _messages =
        client.on_message(
            move |message: Result<Delivered<Payload>, DecodeError>| match message {
                Ok(event) if event.kind == "message" => {
                    count.set(count.get() + 1);
                    if count.get() == u64::from(n) {
                        finish.with(Ok(Measured {
                            ms: clock.now() - t0,
                            count: count.get(),
                            server_us: None,
                        }));
                    }
                }
                Ok(_) => {}
                Err(error) => finish.with(Err(error.to_string())),
            },
        );
    let result = outcome(rx, "receive ws-lifeline-rust").await;
    drop(client);
    result
}

/// Sends `n` publish frames to `url` (`/bench/recv`) from the `open` event: ms from the first
/// send to the server's report that it counted `n`.
#[wasm_bindgen]
pub async fn rust_send(url: String, n: u32) -> Result<JsValue, JsValue> {
    let clock = Clock::new()?;
    let (finish, rx) = Finish::new();
    let finish = Rc::new(finish);
    let t0 = Rc::new(Cell::new(0.0));
    let client = Client::connect(&url, config()).map_err(js_error)?;
    let _report = client.on_message({
        let (clock, finish, t0) = (clock.clone(), Rc::clone(&finish), Rc::clone(&t0));
        move |message: Result<Delivered<Report>, DecodeError>| match message {
            Ok(event) if event.kind == "message" && event.data.received >= u64::from(n) => {
                finish.with(Ok(Measured {
                    ms: clock.now() - t0.get(),
                    count: event.data.received,
                    server_us: Some(event.data.elapsed_us),
                }));
            }
            Ok(_) => {}
            Err(error) => finish.with(Err(error.to_string())),
        }
    });
    let _open = client.on_event({
        let handle = client.handle();
        let pad = "x".repeat(60);
        let started = Cell::new(false);
        move |event| {
            if !matches!(event, Event::Open) || started.replace(true) {
                return;
            }
            t0.set(clock.now());
            for i in 1..=u64::from(n) {
                let publish = Publish {
                    kind: "publish",
                    room: "bench",
                    id: i,
                    data: PublishData { seq: i, pad: &pad },
                };
                if let Err(error) = handle.send_json(&publish) {
                    finish.with(Err(format!("send {i}: {error}")));
                    return;
                }
            }
        }
    });
    let result = outcome(rx, "send ws-lifeline-rust").await;
    drop(client);
    result
}
