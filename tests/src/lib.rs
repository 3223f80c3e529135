//! Helpers for the cross-crate end-to-end tests.
#![deny(missing_docs)]

pub mod events;
pub mod fault_proxy;
pub mod members;
pub mod process;
pub mod redis;
pub mod server;
