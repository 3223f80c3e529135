use gloo_timers::callback::Interval;
use yew::prelude::*;

use crate::state::{Connection, Recovery};

#[derive(Properties, PartialEq)]
pub(crate) struct ConnectionBarProps {
    /// The connection.
    pub(crate) connection: Connection,
    /// Set after a reconnect.
    pub(crate) recovery: Option<Recovery>,
    /// "Retry now".
    pub(crate) on_retry: Callback<()>,
    /// Closes the recovery notice.
    pub(crate) on_dismiss: Callback<()>,
}

/// Seconds left until `at_ms`, rounded up, never negative.
fn seconds_until(at_ms: f64, now_ms: f64) -> u64 {
    let left = ((at_ms - now_ms) / 1000.0).ceil();
    if left.is_finite() && left > 0.0 {
        left as u64
    } else {
        0
    }
}

/// The connection state in words and colour, "retry now", and what a reconnect recovered.
#[component]
pub(crate) fn ConnectionBar(props: &ConnectionBarProps) -> Html {
    let now = use_state(js_sys::Date::now);
    {
        // Only a countdown needs a clock; the interval is dropped (and cleared) with the state.
        let now = now.setter();
        let counting = matches!(props.connection, Connection::Reconnecting { .. });
        use_effect_with(counting, move |counting| {
            now.set(js_sys::Date::now());
            let interval =
                counting.then(|| Interval::new(250, move || now.set(js_sys::Date::now())));
            move || drop(interval)
        });
    }
    let retry = {
        let on_retry = props.on_retry.clone();
        html! {
            <button class="retry" onclick={move |_: MouseEvent| on_retry.emit(())}>
                { "Retry now" }
            </button>
        }
    };
    let (class, words, action) = match &props.connection {
        Connection::Idle => ("connecting", "Starting…".to_owned(), None),
        Connection::Connecting { attempt } if *attempt <= 1 => {
            ("connecting", "Connecting…".to_owned(), None)
        }
        Connection::Connecting { attempt } => (
            "connecting",
            format!("Connecting… (attempt {attempt})"),
            None,
        ),
        Connection::Connected => ("connected", "Connected".to_owned(), None),
        Connection::Reconnecting { attempt, at_ms } => {
            let seconds = seconds_until(*at_ms, *now);
            (
                "reconnecting",
                format!("Connection lost. Reconnecting in {seconds} s (attempt {attempt})"),
                Some(retry),
            )
        }
        Connection::Offline => (
            "offline",
            "You are offline. Messages are queued and sent when the network is back.".to_owned(),
            None,
        ),
        Connection::GaveUp { reason } => (
            "gave-up",
            format!("Gave up reconnecting: {reason}"),
            Some(retry),
        ),
    };
    let notice = props.recovery.as_ref().filter(|_| props.connection.is_connected()).map(|recovery| {
        let on_dismiss = props.on_dismiss.clone();
        let dismiss = html! {
            <button class="icon" aria-label="Dismiss" onclick={move |_: MouseEvent| on_dismiss.emit(())}>
                { "×" }
            </button>
        };
        if recovery.lost.is_empty() {
            let rooms = if recovery.recovered.is_empty() {
                String::new()
            } else {
                format!(" in {}", hash_list(&recovery.recovered))
            };
            html! {
                <div class="notice ok" role="status" data-testid="recovery">
                    <span>{ format!("Reconnected. Missed messages recovered{rooms}.") }</span>
                    { dismiss }
                </div>
            }
        } else {
            html! {
                <div class="notice warn" role="alert" data-testid="recovery">
                    <span>{ format!(
                        "Reconnected, but missed messages could not be recovered in {}: the \
                         server lost its history (was it restarted?).",
                        hash_list(&recovery.lost)
                    ) }</span>
                    { dismiss }
                </div>
            }
        }
    });
    html! {
        <>
            <div class={classes!("connection", class)} role="status" aria-live="polite"
                data-testid="connection" data-state={class}>
                <span class="light" aria-hidden="true"></span>
                <span class="words">{ words }</span>
                { action }
            </div>
            { notice }
        </>
    }
}

fn hash_list(rooms: &[String]) -> String {
    rooms
        .iter()
        .map(|room| format!("#{room}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_rounds_up_and_stops_at_zero() {
        assert_eq!(seconds_until(10_000.0, 7_500.0), 3);
        assert_eq!(seconds_until(10_000.0, 10_000.0), 0);
        assert_eq!(seconds_until(10_000.0, 12_000.0), 0);
        assert_eq!(seconds_until(f64::NAN, 0.0), 0);
    }
}
