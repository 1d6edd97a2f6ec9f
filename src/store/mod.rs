//! Persistence: call records and (later) queue events and QC data, in SQLite
//! (embedded default) or PostgreSQL, with migrations per backend. Records are
//! handed to a writer task over a bounded channel, never written on the call
//! or media path.

pub mod records;

pub use records::{CallRecord, Disposition, HangupBy};

/// A value bound to, or read from, a parameterized look-up query.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Text(String),
}
