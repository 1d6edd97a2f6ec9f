//! Self-service IVR: flow definitions from config (one flow per dialed
//! number), the sans-IO engine that walks a flow, one file per node kind, the
//! say-number rules (Mandarin and English), and opening hours.

pub mod engine;
pub mod flow;
pub mod hours;
pub mod nodes;
pub mod say;
