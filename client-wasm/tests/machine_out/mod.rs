//! The sans-IO tests' view of a machine's two output queues.

use ws_lifeline::machine::{Event, Io, Machine};

/// One output of the machine as these tests record it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Out {
    Io(Io),
    Event(Event),
}

/// The machine's next output in the order a shell takes it: I/O first, then events.
pub(crate) fn poll(m: &mut Machine) -> Option<Out> {
    m.poll_io()
        .map(Out::Io)
        .or_else(|| m.poll_event().map(Out::Event))
}
