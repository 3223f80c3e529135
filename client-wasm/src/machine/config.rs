//! [`Config`]: every knob of the client, with documented defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Message;

/// Decides whether a close code stops reconnecting.
pub type TerminalRule = Arc<dyn Fn(u16) -> bool + Send + Sync>;
/// Builds the `n`-th heartbeat ping (n counts from 1 per client).
pub type PingBuilder = Arc<dyn Fn(u64) -> Message + Send + Sync>;
/// Recognises a heartbeat pong among inbound text frames.
pub type PongMatcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The default terminal-close rule: 1008 (policy violation) and 4400–4499 (the application
/// range that mirrors HTTP 4xx) stop reconnecting; every other code is retried. That includes
/// 1013 (try again later: a full server, a slow reader, or a sender that stayed above the rate
/// limit while the server throttled it) and 1009 (the rooms layer fails the publish that was too
/// large, so the retry does not meet it again).
///
/// ```
/// use ws_lifeline::machine::default_terminal;
/// assert!(default_terminal(1008) && default_terminal(4403));
/// assert!(!default_terminal(1013) && !default_terminal(1009) && !default_terminal(1006));
/// ```
pub fn default_terminal(code: u16) -> bool {
    code == protocol::close::POLICY || (4400..=4499).contains(&code)
}

/// The default ping: protocol v1's `{"type":"ping","id":N}`.
pub fn default_ping(id: u64) -> Message {
    let mut text = String::from(r#"{"type":"ping","id":"#);
    super::json::push_u64(&mut text, id);
    text.push('}');
    Message::Text(text)
}

/// The default pong matcher: a protocol v1 `{"type":"pong",...}` frame.
pub fn default_is_pong(text: &str) -> bool {
    // Cheap pre-check so ordinary messages are not parsed twice.
    super::url::find(text.as_bytes(), b"pong").is_some() && is_pong_message(text)
}

/// A hand-written matcher (see `pong.rs`) that gives the same answers as the protocol
/// decoder, so the raw build needs no JSON decoder at all.
fn is_pong_message(text: &str) -> bool {
    super::pong::is_pong(text)
}

/// Reconnect backoff: exponential with full jitter above a floor.
///
/// Retry `n` (from 1) waits a delay drawn uniformly from `[min, min(max, min · factorⁿ)]`.
/// The floor keeps a server that refuses at once from causing a tight loop; the jitter
/// spreads clients out after a server restart. With `min` zero every delay is zero.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// Lower bound of every delay. Default: 1 s.
    pub min: Duration,
    /// Upper bound of every delay. Default: 30 s.
    pub max: Duration,
    /// Growth of the upper bound per attempt. Default: 2.0.
    pub factor: f64,
    /// Give up after this many failed retries in a row (`None`: never). Default: `None`.
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
            factor: 2.0,
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The upper bound of the delay before retry `attempt` (from 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let min = self.min.as_secs_f64() * 1000.0;
        let max = (self.max.as_secs_f64() * 1000.0).max(min);
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let exp = i32::try_from(attempt).unwrap_or(i32::MAX).min(1024);
        let ceiling = (min * factor.powi(exp)).min(max);
        Duration::from_millis(ceiling.max(0.0) as u64)
    }
}

/// When the heartbeat runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeartbeatMode {
    /// Only on connections where the server selected protocol v1
    /// ([`protocol::SUBPROTOCOL`], `lifeline.v1`): such a server answers pings. Any other
    /// server may never send a frame while healthy (a quiet feed), so timing it out would cut
    /// it again and again, and a ping it does not understand may be echoed or rejected.
    Auto,
    /// On every connection, whatever the protocol: the user knows the server answers
    /// [`Heartbeat::ping`] (or sends often enough).
    On,
}

/// The application-level heartbeat. Browsers cannot send ping frames, so the client sends a
/// text ping every `interval`; any inbound frame counts as a sign of life.
///
/// [`Config::default()`] holds a heartbeat in [`HeartbeatMode::Auto`]: it runs only when
/// protocol v1 was negotiated. A heartbeat the user sets ([`Config::heartbeat`], any
/// `heartbeat_*`, [`Config::ping`] or [`Config::is_pong`] setter, or
/// `Heartbeat::default()`) is [`HeartbeatMode::On`] and runs on every connection.
///
/// A ping that gets no inbound frame at all within `timeout` marks the connection half-open:
/// it is closed with [`protocol::close::HEARTBEAT_TIMEOUT`] (4000) and reconnected. Deadlines
/// come from timestamps, and a deadline checked by a timer that fired late (a throttled
/// background tab) first gets one fresh ping and a new deadline, so throttling cannot cause
/// a false timeout.
#[derive(Clone)]
#[non_exhaustive]
pub struct Heartbeat {
    /// Time between pings. Default: 25 s.
    pub interval: Duration,
    /// How long a ping may go without any inbound frame. Default: 10 s.
    pub timeout: Duration,
    /// The ping frame. Default: [`default_ping`], `{"type":"ping","id":N}`.
    pub ping: PingBuilder,
    /// Which inbound text frames are pongs. Default: [`default_is_pong`].
    pub is_pong: PongMatcher,
    /// Also report pongs as [`Event::Message`](super::Event::Message). Default: false.
    pub surface_pongs: bool,
    /// When it runs. Default: [`HeartbeatMode::On`]; [`Config::default()`]'s is
    /// [`HeartbeatMode::Auto`].
    pub mode: HeartbeatMode,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_secs(25),
            timeout: Duration::from_secs(10),
            ping: Arc::new(default_ping),
            is_pong: Arc::new(default_is_pong),
            surface_pongs: false,
            mode: HeartbeatMode::On,
        }
    }
}

impl fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat")
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("surface_pongs", &self.surface_pongs)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Client configuration. Build it from [`Config::default()`] with the setters.
///
/// ```
/// use std::time::Duration;
/// use ws_lifeline::Config;
///
/// let config = Config::default()
///     .protocols(["lifeline.v1"])
///     .backoff_max(Duration::from_secs(10))
///     .max_attempts(Some(20))
///     .heartbeat_interval(Duration::from_secs(15));
/// assert_eq!(config.backoff.max, Duration::from_secs(10));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Subprotocols offered to the server. Default: none.
    pub protocols: Vec<String>,
    /// Reconnect backoff. Default: see [`Backoff`].
    pub backoff: Backoff,
    /// How long an attempt (URL provider plus opening handshake) may take. Default: 10 s.
    pub connect_timeout: Duration,
    /// How long `close()` waits for the peer's reply to its close frame; then the socket is
    /// dropped and a 1006 close reported (as a browser does when the closing handshake times
    /// out), so a half-open peer cannot hold the client in `Closing`. Default: 2 s.
    pub close_timeout: Duration,
    /// A connection must stay open this long before the attempt counter resets, so a server
    /// that accepts and drops at once still sees growing delays. Default: 5 s.
    pub min_uptime: Duration,
    /// Close codes that stop reconnecting. Default: [`default_terminal`] (1008, 4400–4499).
    pub terminal_close: TerminalRule,
    /// The heartbeat; `None` turns it off. Default: a [`Heartbeat::default()`] in
    /// [`HeartbeatMode::Auto`], which runs only where protocol v1 (`lifeline.v1`) was
    /// negotiated, so a quiet server that speaks no protocol is never cut.
    pub heartbeat: Option<Heartbeat>,
    /// Most messages the outbound queue holds. Default: 1024.
    pub queue_max_messages: usize,
    /// Most bytes the outbound queue holds. Default: 1 MiB.
    pub queue_max_bytes: usize,
    /// Above this many bytes of `bufferedAmount`, sends are queued and the queue is flushed as
    /// the socket drains. Default: 1 MiB.
    pub high_water_mark: u64,
    /// How often `bufferedAmount` is polled while above the high-water mark. Default: 50 ms.
    pub drain_poll: Duration,
    /// The protocol v1 layer's settings, used when it starts (feature `rooms`). Default:
    /// [`RoomsConfig::default()`](super::rooms::RoomsConfig).
    #[cfg(feature = "rooms")]
    pub rooms: super::rooms::RoomsConfig,
    /// Shared mode (browser, feature `shared`): this client is one tab's side of a socket that
    /// every tab of the site shares. Default: off.
    #[cfg(feature = "shared")]
    pub share: Option<Share>,
}

/// Shared mode's settings (feature `shared`): see the field `share` of [`Config`].
#[cfg(feature = "shared")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Share {
    /// The shared socket's name: the site's clients with the same name, subprotocols and
    /// settings share one socket (a URL provider stays in its tab; the hub asks one of them).
    pub name: String,
    /// Where the page serves the npm package's `shared.js` (the `ws-lifeline/shared` entry,
    /// with the package's other files beside it), resolved against the page's URL. Default:
    /// `/ws-lifeline/shared.js`.
    pub module: String,
}

#[cfg(feature = "shared")]
impl Share {
    /// Shared mode under `name`, with the package served at `/ws-lifeline/`.
    pub fn new(name: impl Into<String>) -> Self {
        Share {
            name: name.into(),
            module: "/ws-lifeline/shared.js".to_owned(),
        }
    }

    /// Where the page serves the package's `shared.js`.
    pub fn module(mut self, url: impl Into<String>) -> Self {
        self.module = url.into();
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            protocols: Vec::new(),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            min_uptime: Duration::from_secs(5),
            terminal_close: Arc::new(default_terminal),
            heartbeat: Some(Heartbeat {
                mode: HeartbeatMode::Auto,
                ..Heartbeat::default()
            }),
            queue_max_messages: 1024,
            queue_max_bytes: 1 << 20,
            high_water_mark: 1 << 20,
            drain_poll: Duration::from_millis(50),
            #[cfg(feature = "rooms")]
            rooms: super::rooms::RoomsConfig::default(),
            #[cfg(feature = "shared")]
            share: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut config = f.debug_struct("Config");
        #[cfg(feature = "rooms")]
        config.field("rooms", &self.rooms);
        #[cfg(feature = "shared")]
        config.field("share", &self.share);
        config
            .field("protocols", &self.protocols)
            .field("backoff", &self.backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("min_uptime", &self.min_uptime)
            .field("heartbeat", &self.heartbeat)
            .field("queue_max_messages", &self.queue_max_messages)
            .field("queue_max_bytes", &self.queue_max_bytes)
            .field("high_water_mark", &self.high_water_mark)
            .field("drain_poll", &self.drain_poll)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Turns shared mode on (feature `shared`; see the field `share`).
    #[cfg(feature = "shared")]
    pub fn share(mut self, share: Share) -> Self {
        self.share = Some(share);
        self
    }

    /// Sets the subprotocols to offer.
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the protocol v1 layer's settings.
    #[cfg(feature = "rooms")]
    pub fn rooms(mut self, rooms: super::rooms::RoomsConfig) -> Self {
        self.rooms = rooms;
        self
    }

    /// Adds `protocol` to the offered subprotocols unless it is there.
    pub(crate) fn offer_protocol(&mut self, protocol: &str) {
        if !self.protocols.iter().any(|p| p == protocol) {
            self.protocols.push(protocol.to_owned());
        }
    }

    /// Sets the whole backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the smallest reconnect delay.
    pub fn backoff_min(mut self, min: Duration) -> Self {
        self.backoff.min = min;
        self
    }

    /// Sets the largest reconnect delay.
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.backoff.max = max;
        self
    }

    /// Sets the growth factor of the delay ceiling (values below 1 count as 1).
    pub fn backoff_factor(mut self, factor: f64) -> Self {
        self.backoff.factor = factor;
        self
    }

    /// Sets how many failed retries in a row lead to [`Event::GaveUp`](super::Event::GaveUp).
    pub fn max_attempts(mut self, max: Option<u32>) -> Self {
        self.backoff.max_attempts = max;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long `close()` waits for the peer's close reply.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets the uptime after which the attempt counter resets.
    pub fn min_uptime(mut self, uptime: Duration) -> Self {
        self.min_uptime = uptime;
        self
    }

    /// Sets which close codes stop reconnecting.
    ///
    /// ```
    /// use ws_lifeline::Config;
    /// // Also stop on 4001, keep the default set.
    /// let config = Config::default()
    ///     .terminal_close(|code| code == 4001 || ws_lifeline::machine::default_terminal(code));
    /// # let _ = config;
    /// ```
    pub fn terminal_close(mut self, rule: impl Fn(u16) -> bool + Send + Sync + 'static) -> Self {
        self.terminal_close = Arc::new(rule);
        self
    }

    /// Turns the heartbeat off.
    pub fn no_heartbeat(mut self) -> Self {
        self.heartbeat = None;
        self
    }

    /// Sets the whole heartbeat (`None` turns it off).
    pub fn heartbeat(mut self, heartbeat: Option<Heartbeat>) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// The heartbeat as the user configures it: on with defaults if it was off, and
    /// [`HeartbeatMode::On`], since configuring it says the server answers pings.
    fn configured_heartbeat(&mut self) -> &mut Heartbeat {
        let heartbeat = self.heartbeat.get_or_insert_with(Heartbeat::default);
        heartbeat.mode = HeartbeatMode::On;
        heartbeat
    }

    /// Sets the ping interval (turning the heartbeat on, on every connection).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.configured_heartbeat().interval = interval;
        self
    }

    /// Sets the pong timeout (turning the heartbeat on, on every connection).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.configured_heartbeat().timeout = timeout;
        self
    }

    /// Sets the ping frame builder (turning the heartbeat on, on every connection).
    pub fn ping(mut self, ping: impl Fn(u64) -> Message + Send + Sync + 'static) -> Self {
        self.configured_heartbeat().ping = Arc::new(ping);
        self
    }

    /// Sets the pong matcher (turning the heartbeat on, on every connection).
    pub fn is_pong(mut self, is_pong: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.configured_heartbeat().is_pong = Arc::new(is_pong);
        self
    }

    /// Reports pongs as messages too (keeping the heartbeat's mode; on with defaults if it
    /// was off).
    pub fn surface_pongs(mut self, surface: bool) -> Self {
        self.heartbeat
            .get_or_insert_with(Heartbeat::default)
            .surface_pongs = surface;
        self
    }

    /// Sets the queue bounds.
    pub fn queue_limits(mut self, max_messages: usize, max_bytes: usize) -> Self {
        self.queue_max_messages = max_messages;
        self.queue_max_bytes = max_bytes;
        self
    }

    /// Sets the high-water mark of `bufferedAmount`.
    pub fn high_water_mark(mut self, bytes: u64) -> Self {
        self.high_water_mark = bytes;
        self
    }

    /// Sets how often `bufferedAmount` is polled while draining.
    pub fn drain_poll(mut self, every: Duration) -> Self {
        self.drain_poll = every;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::pong;
    use super::*;

    #[test]
    fn default_is_pong_agrees_with_the_protocol_decoder() {
        let frames = [
            r#"{"type":"pong","id":1}"#,
            r#"{"id":7,"type":"pong"}"#,
            r#"{"type":"pong","id":1,"extra":[1,{"a":null}]}"#,
            r#" {"type":"pong","id":18446744073709551615} "#,
            r#"{"type":"pong"}"#,
            r#"{"type":"pong","id":-1}"#,
            r#"{"type":"pong","id":1.5}"#,
            r#"{"type":"pong","id":"1"}"#,
            r#"{"type":"pong","id":1}x"#,
            r#"{"type":"Pong","id":1}"#,
            r#"{"type":"ping","id":1}"#,
            r#"{"type":"message","room":"pong","offset":1,"from":"a","data":"pong","ts":0}"#,
            r#"[{"type":"pong","id":1}]"#,
            r#"["pong",1]"#,
            r#"["pong",1,2]"#,
            r#"["pong"]"#,
            r#""pong""#,
            "pong",
            "",
        ];
        for text in frames {
            let protocol = text.contains("pong")
                && matches!(
                    serde_json::from_str::<protocol::ServerMsg>(text),
                    Ok(protocol::ServerMsg::Pong { .. })
                );
            assert_eq!(default_is_pong(text), protocol, "{text}");
        }
    }

    fn decoder_says_pong(text: &str) -> bool {
        matches!(
            serde_json::from_str::<protocol::ServerMsg>(text),
            Ok(protocol::ServerMsg::Pong { .. })
        )
    }

    #[test]
    fn pong_matcher_edge_cases_agree_with_the_protocol_decoder() {
        let nested = |depth: usize| {
            format!(
                r#"{{"type":"pong","id":1,"x":{}0{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        let mut frames: Vec<String> = [
            r#"{"typ\u0065":"p\u006fng","id":1}"#,
            r#"{"type":"pong","type":"pong","id":1}"#,
            r#"{"type":"pong","id":1,"id":2}"#,
            r#"{"type":{"pong":null},"id":1}"#,
            r#"{"type":"pong","id":18446744073709551616}"#,
            r#"{"type":"pong","id":-0}"#,
            r#"{"type":"pong","id":0}"#,
            r#"{"type":"pong","id":01}"#,
            r#"{"type":"pong","id":1e2}"#,
            r#"{"type":"pong","id":1,"x":1e400}"#,
            r#"{"type":"pong","id":1,"x":-1e308}"#,
            r#"{"type":"pong","id":1,"x":1e-400}"#,
            r#"{"type":"pong","id":1,"x":0e99999999999999999999}"#,
            r#"{"type":"pong","id":1,"x":1.5e99999999999999999999}"#,
            r#"{"type":"pong","id":1,"x":"\ud800"}"#,
            r#"{"type":"pong","id":1,"x":"\ud83d\ude00"}"#,
            r#"{"type":"pong","id":1,"x":"\x"}"#,
            "{\"type\":\"pong\",\"id\":1,\"x\":\"\t\"}",
            r#"{"type":"pong","id":1,}"#,
            r#"{"type":"pong","id":1 "x":2}"#,
            r#"["pong",1,]"#,
            r#"[ "pong" , 7 ]"#,
            r#"["pong","1"]"#,
            r#"{"type":"pong","id":1,"x":[1,2,{"a":[true,false,null]}]}"#,
            r#"{"type":"pong","id":1,"x":tru}"#,
            r#"{"type":"pong","id":1,"x":1.}"#,
            r#"{"type":"pong","id":1,"x":-}"#,
            r#"{"type":"pong","id":1,"x":.5}"#,
            r#"{"type":"pong","id":1,"x":1E+2}"#,
            "\u{a0}{\"type\":\"pong\",\"id\":1}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for depth in [120, 125, 126, 127, 128] {
            frames.push(nested(depth));
        }
        for text in &frames {
            assert_eq!(pong::is_pong(text), decoder_says_pong(text), "{text}");
        }
    }

    /// proptest is a native dev-dependency only.
    #[cfg(not(target_arch = "wasm32"))]
    mod props {
        use super::super::super::pong;
        use super::decoder_says_pong;
        use proptest::prelude::*;

        /// Pieces of frames: enough structure to build pongs, near-pongs and junk.
        fn token() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "{",
                "}",
                "[",
                "]",
                ",",
                ":",
                " ",
                "\"type\"",
                "\"pong\"",
                "\"id\"",
                "\"typ\\u0065\"",
                "\"p\\u006fng\"",
                "\"ping\"",
                "\"x\"",
                "1",
                "0",
                "-1",
                "1.5",
                "1e2",
                "007",
                "18446744073709551615",
                "18446744073709551616",
                "null",
                "true",
                "\"\"",
                "\"\\\"\"",
            ])
        }

        /// A well-formed object drawn from likely keys and values, in any order.
        fn object() -> impl Strategy<Value = String> {
            let key = prop::sample::select(vec!["type", "id", "x", "typ\\u0065", "ID"]);
            let value = prop::sample::select(vec![
                "\"pong\"",
                "\"Pong\"",
                "1",
                "-1",
                "0",
                "1.0",
                "2e0",
                "\"1\"",
                "null",
                "[1,{}]",
                "{\"type\":\"pong\"}",
                "18446744073709551615",
                "18446744073709551616",
                "1e999",
            ]);
            prop::collection::vec((key, value), 0..5).prop_map(|entries| {
                let fields: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            })
        }

        proptest::proptest! {
            #[test]
            fn pong_matcher_agrees_with_the_protocol_decoder_on_token_soup(
                tokens in prop::collection::vec(token(), 0..16)
            ) {
                let text = tokens.concat();
                proptest::prop_assert_eq!(pong::is_pong(&text), decoder_says_pong(&text), "{}", text);
            }

            #[test]
            fn pong_matcher_agrees_with_the_protocol_decoder_on_objects(text in object()) {
                proptest::prop_assert_eq!(pong::is_pong(&text), decoder_says_pong(&text), "{}", text);
            }

            #[test]
            fn pong_matcher_agrees_with_the_protocol_decoder_on_any_text(text in "\\PC{0,40}") {
                proptest::prop_assert_eq!(pong::is_pong(&text), decoder_says_pong(&text), "{}", text);
            }
        }
    }
}
