//! The HTTP surface: `/ws`, `/api/login`, `/api/health`, test endpoints and static files.

use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::per_ip::ClientIp;
use crate::upgrade::WsUpgrade;
use crate::{AppState, RefusalLog, Refused, auth, bench, conn, test_endpoints};

/// Builds the router of a server with `state`.
///
/// ```
/// let state = server_dev::AppState::new(server_dev::Config::default())?;
/// let router: axum::Router = server_dev::app(state);
/// # let _ = router;
/// # Ok::<(), server_dev::Error>(())
/// ```
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/health", get(health))
        .route("/api/login", post(login))
        .layer(middleware::from_fn_with_state(state.clone(), cors));
    let mut router = Router::new().route("/ws", any(ws)).merge(api);
    if state.config().test_endpoints {
        router = router.merge(test_endpoints::router(&state));
    }
    if state.config().bench_endpoints {
        router = router.merge(bench::router());
    }
    if let Some(dir) = &state.config().static_dir {
        let index = dir.join("index.html");
        router = router.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)));
    }
    // Log the path only: the query may hold a ticket.
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
        tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())
    });
    router.layer(trace).with_state(state)
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    connections: usize,
    /// WebSockets accepted since start: a test can tell one connection from a reconnect.
    connections_opened: u64,
    rooms: usize,
    /// What the hub holds for clients, so tests can assert memory budgets.
    #[serde(flatten)]
    memory: crate::hub::Memory,
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        connections: state.live_connections(),
        connections_opened: state.opened_connections(),
        rooms: state.hub().room_count(),
        memory: state.hub().memory(),
    })
}

#[derive(Debug, Deserialize)]
struct LoginRequest {
    name: String,
}

#[derive(Debug, Serialize)]
struct LoginResponse {
    ticket: String,
    expires_in_ms: u64,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    // Before anything else, so that a flood of bad requests costs as little as good ones.
    if let Some(ip) = ip
        && let Err(wait) = state.check_login(ip)
    {
        if let Some(hits) = state.refusal_log(RefusalLog::Login) {
            warn!(?ip, hits, "login refused: rate limit");
        }
        // Whole seconds, rounded up (RFC 9110 §10.2.3).
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let retry = HeaderValue::from(secs.max(1));
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry)],
            "too many logins from this address",
        )
            .into_response();
    }
    let Ok(Json(req)) = body else {
        return (StatusCode::BAD_REQUEST, "expected JSON {\"name\": ...}").into_response();
    };
    if !auth::valid_name(&req.name) {
        info!("login refused: invalid name");
        return (
            StatusCode::BAD_REQUEST,
            "name: 1 to 32 characters, no control characters",
        )
            .into_response();
    }
    let mut tickets = crate::lock(&state.inner.tickets);
    let ticket = tickets.issue(req.name, Instant::now());
    let expires_in_ms = u64::try_from(tickets.ttl().as_millis()).unwrap_or(u64::MAX);
    Json(LoginResponse {
        ticket,
        expires_in_ms,
    })
    .into_response()
}

/// CORS for `/api/*` (and `/test/cut`), so a page on an allowed origin (e.g. trunk's dev
/// server, or with test endpoints any loopback origin) can call them.
pub(crate) async fn cors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| state.config().origin_allowed(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        h.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    resp
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    ticket: Option<String>,
    name: Option<String>,
}

/// `/ws`: origin check (403), connection caps (503), ticket (401), then the upgrade.
async fn ws(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    upgrade: WsUpgrade,
) -> Response {
    let config = state.config();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .map(|o| config.origin_allowed(o))
            .unwrap_or(false);
        if !allowed {
            warn!(origin = ?origin, "ws refused: origin not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    let slot = match state.reserve_ws(ip) {
        Ok(slot) => slot,
        Err(Refused::Server) => {
            if let Some(hits) = state.refusal_log(RefusalLog::Server) {
                warn!(
                    max = config.max_connections,
                    hits, "ws refused: connection cap reached"
                );
            }
            return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
        }
        Err(Refused::PerIp) => {
            if let Some(hits) = state.refusal_log(RefusalLog::PerIp) {
                warn!(
                    ?ip,
                    max = config.max_connections_per_ip,
                    hits,
                    "ws refused: per-IP connection cap reached"
                );
            }
            let body = "too many connections from this address";
            return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        }
    };
    let name = if config.no_auth {
        match q.name {
            Some(name) if auth::valid_name(&name) => name,
            _ => format!("anon-{}", state.next_anon()),
        }
    } else {
        let redeemed = q
            .ticket
            .as_deref()
            .and_then(|ticket| crate::lock(&state.inner.tickets).redeem(ticket, Instant::now()));
        match redeemed {
            Some(name) => name,
            None => {
                // The ticket itself is never logged.
                warn!(
                    had_ticket = q.ticket.is_some(),
                    "ws refused: missing, used or expired ticket"
                );
                return (StatusCode::UNAUTHORIZED, "missing, used or expired ticket")
                    .into_response();
            }
        }
    };
    if !upgrade.offers(protocol::SUBPROTOCOL) {
        info!(
            "ws client did not offer subprotocol {}",
            protocol::SUBPROTOCOL
        );
    }
    let guard = state.track();
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_frame_size))
        .read_buffer_size(config.read_buffer_size)
        // Every frame goes straight to the socket wrapper, which gathers a flush's worth.
        .write_buffer_size(0);
    upgrade.on_upgrade(protocol::SUBPROTOCOL, ws_config, move |socket| {
        conn::spawn_socket(socket, state, name, (guard, slot));
    })
}
