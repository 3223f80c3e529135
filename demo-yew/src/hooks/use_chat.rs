//! Connects the chat state to the server through the ws-lifeline hooks.

use std::rc::Rc;

use yew::prelude::*;

use crate::app::Session;
use crate::state::{Action, State};

/// What the chat screen gets from its connection.
pub(crate) struct Chat {
    /// The state, as a reducer.
    pub(crate) state: UseReducerHandle<State>,
    /// Publishes a text to the selected room.
    pub(crate) publish: Callback<String>,
    /// Joins (or creates) a room.
    pub(crate) join: Callback<String>,
    /// Leaves a room.
    pub(crate) leave: Callback<String>,
    /// Reconnects at once ("retry now").
    pub(crate) retry: Callback<()>,
}

/// The chat state of `session`, kept up to date by its connection.
#[hook]
pub(crate) fn use_chat(session: Rc<Session>) -> Chat {
    let state = use_reducer(|| State::new(session.name.clone()));
    let next_id = use_mut_ref(|| 0u64);
    let publish = {
        let state = state.clone();
        Callback::from(move |text: String| {
            let Some(room) = state.selected.clone() else {
                return;
            };
            let id = {
                let mut next = next_id.borrow_mut();
                *next += 1;
                *next
            };
            state.dispatch(Action::Publish {
                room,
                id,
                text,
                sent: false,
            });
        })
    };
    let join = {
        let state = state.dispatcher();
        Callback::from(move |room: String| state.dispatch(Action::Join(room)))
    };
    let leave = {
        let state = state.dispatcher();
        Callback::from(move |room: String| state.dispatch(Action::Leave(room)))
    };
    let retry = Callback::from(|()| {});
    Chat {
        state,
        publish,
        join,
        leave,
        retry,
    }
}
