//! Yew hooks: `use_lifeline` and `use_room`.
//!
//! They arrive with the browser shell; this module is declared so the `yew` feature builds.
