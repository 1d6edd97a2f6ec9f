//! SIP (RFC 3261): message model, parser, URIs, typed headers, validation of
//! incoming requests, sans-IO transactions and dialogs, and the async shell
//! (transports and the endpoint) that drives them.
//!
//! Everything except `transport` and `endpoint` is pure protocol code: no
//! sockets, no sleeps, testable with plain values.

pub mod acl;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod headers;
pub mod keepalive;
pub mod message;
pub mod outbound;
pub mod parse;
pub mod presence;
pub mod registrar;
pub mod source_guard;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validate;

pub use message::{Header, Headers, Method, Request, Response, SipMessage};
