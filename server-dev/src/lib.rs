//! server-dev: the rooms server for ws-lifeline.
#![deny(missing_docs)]
