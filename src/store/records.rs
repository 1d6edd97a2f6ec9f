//! The call detail record: one row per call.

use chrono::{DateTime, Utc};

/// How the call ended up, from the center's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// The caller was served by self-service and the call ended in the IVR.
    SelfServed,
    /// The caller hung up in the IVR before being served.
    AbandonedInIvr,
    /// The call was handed to the agent queue and left it without an
    /// agent (timeout, no agents) or is still being handled by the flow.
    ToQueue,
    /// An agent answered the call.
    Answered,
    /// The caller hung up while waiting in the agent queue.
    AbandonedInQueue,
    /// The caller asked to be called back (the request keeps its place).
    CallbackRequested,
    /// The caller left a voice message.
    VoiceMessage,
    /// The call was refused before answer (ACL, busy, no codec, shutting down…).
    Rejected,
    /// The daemon stopped with the call up.
    Interrupted,
    /// A supervisor's live-monitor leg (listen, whisper, barge), not a
    /// citizen's call: left out of the center's call figures.
    Monitor,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::SelfServed => "self_served",
            Disposition::AbandonedInIvr => "abandoned_in_ivr",
            Disposition::ToQueue => "to_queue",
            Disposition::Answered => "answered",
            Disposition::AbandonedInQueue => "abandoned_in_queue",
            Disposition::CallbackRequested => "callback_requested",
            Disposition::VoiceMessage => "voice_message",
            Disposition::Rejected => "rejected",
            Disposition::Interrupted => "interrupted",
            Disposition::Monitor => "monitor",
        }
    }

    /// Inverse of [`Disposition::as_str`].
    pub fn parse(s: &str) -> Option<Disposition> {
        Some(match s {
            "self_served" => Disposition::SelfServed,
            "abandoned_in_ivr" => Disposition::AbandonedInIvr,
            "to_queue" => Disposition::ToQueue,
            "answered" => Disposition::Answered,
            "abandoned_in_queue" => Disposition::AbandonedInQueue,
            "callback_requested" => Disposition::CallbackRequested,
            "voice_message" => Disposition::VoiceMessage,
            "rejected" => Disposition::Rejected,
            "interrupted" => Disposition::Interrupted,
            "monitor" => Disposition::Monitor,
            _ => return None,
        })
    }

    /// Every variant, for tests and reports.
    pub const ALL: [Disposition; 10] = [
        Disposition::SelfServed,
        Disposition::AbandonedInIvr,
        Disposition::ToQueue,
        Disposition::Answered,
        Disposition::AbandonedInQueue,
        Disposition::CallbackRequested,
        Disposition::VoiceMessage,
        Disposition::Rejected,
        Disposition::Interrupted,
        Disposition::Monitor,
    ];
}

/// Which side ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupBy {
    Caller,
    Agent,
    System,
}

impl HangupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupBy::Caller => "caller",
            HangupBy::Agent => "agent",
            HangupBy::System => "system",
        }
    }

    /// Inverse of [`HangupBy::as_str`].
    pub fn parse(s: &str) -> Option<HangupBy> {
        Some(match s {
            "caller" => HangupBy::Caller,
            "agent" => HangupBy::Agent,
            "system" => HangupBy::System,
            _ => return None,
        })
    }

    /// Every variant, for tests and reports.
    pub const ALL: [HangupBy; 3] = [HangupBy::Caller, HangupBy::Agent, HangupBy::System];
}

/// One call. Times are wall-clock (UTC); durations are measured on the tokio
/// clock and added to the arrival time, so they stay consistent under test.
/// Digits collected as secret (PINs) never appear here.
///
/// The store keeps times to the microsecond (finer parts are truncated) and
/// treats `call_id` as unique: inserting the same `call_id` again is a no-op.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    /// Caller's number or user part of the From URI.
    pub caller: String,
    /// Dialed number: the user part of the Request-URI (or To).
    pub dialed: String,
    pub arrived_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    /// From answer to end, in milliseconds (0 if never answered).
    pub duration_ms: i64,
    /// IVR node ids visited, in order.
    pub ivr_path: Vec<String>,
    /// Outcome of self-service, e.g. `balance_read`, `pin_failed`.
    pub self_service_result: Option<String>,
    pub disposition: Disposition,
    pub hangup_by: HangupBy,
    /// Why, e.g. `bye`, `cancel`, `rtp_timeout`, `flow_end`, `no_codec`, `acl`.
    pub hangup_reason: String,
    /// Final SIP status sent to the caller (200 for answered calls).
    pub sip_status: u16,
    /// `PCMU` / `PCMA` once negotiated.
    pub codec: Option<String>,
    /// The language the call ended in.
    pub language: Option<String>,
    /// The queue the call was handed to, if any.
    pub queue: Option<String>,
    /// The caller's voice message: its file, relative to the data folder.
    pub voice_message: Option<String>,
    /// Its length in milliseconds.
    pub voice_message_ms: Option<i64>,
    /// What happened in the agent queue (all `None` for calls that never
    /// reached one).
    pub acd: QueueOutcome,
}

/// The agent-queue part of a call record.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueOutcome {
    /// The agent who took the call (the last one, after transfers).
    pub agent: Option<String>,
    /// Time in the queue before an agent answered (or until the caller left).
    pub wait_ms: Option<i64>,
    /// Agents rung for the call.
    pub offers: Option<i64>,
    /// Connected to an agent, holds included.
    pub talk_ms: Option<i64>,
    /// Of the talk time, on hold.
    pub hold_ms: Option<i64>,
    /// The agent's after-call work; written when the wrap-up ends.
    pub wrap_up_ms: Option<i64>,
    /// Where the agent transferred the call.
    pub transfer_target: Option<String>,
    /// The caller's survey score, 1-5.
    pub survey_score: Option<i64>,
}
