//! hotline — a telephony daemon for public-service hotlines.
//!
//! Layers point one way: `call` uses `ivr`, `acd`, `media`, `sip`, `store`;
//! protocol code (`sip`, `media`) never reaches up into call logic; nothing
//! imports `http` but `server`/`main`.

pub mod acd;
pub mod call;
pub mod config;
mod deferred_start;
pub mod http;
pub mod ivr;
pub mod kpi;
pub mod lang;
pub mod media;
pub mod metrics;
pub mod qc;
pub mod recording;
pub mod reload;
pub mod server;
pub mod sip;
pub mod store;
pub mod web;
