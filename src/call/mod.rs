//! Calls: one task per call owning its legs. The manager takes each
//! `IncomingCall` from the SIP endpoint, enforces the call limit (503 when
//! full) and spawns the call's task; the task answers, runs the IVR over the
//! media session, and on hang-up hands its record to the store's writer.

pub mod acd_service;
pub mod agent_leg;
pub mod call_limits;
pub mod callback;
pub mod feature_codes;
pub mod inbound;
pub mod live;
pub mod monitor;
pub mod offer_answer;
pub mod queue_wait;
pub mod ringing;
pub mod survey;

use crate::config::RtpConfig;
use crate::ivr::flow::FlowSet;
use crate::media::port_pool::PortPool;
use crate::media::prompts::PromptStore;
use crate::sip::endpoint::{IncomingCall, SipHandle};
use crate::sip::message::response_to;
use crate::store::writer::RecordSink;
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// Prompts the call layer plays itself (queue announcements, the survey,
/// feature-code confirmations), checked at start like the flows' prompts.
pub const CALL_PROMPTS: &[&str] = &[
    "queue_position_is",
    "callers_ahead",
    "one_caller_ahead",
    "transferring",
    "queue_wait_is",
    "minute",
    "minutes",
    "queue_thanks_waiting",
    "queue_breakout_options",
    "callback_confirmed",
    "callback_intro",
    "callback_citizen_unreachable",
    "satisfaction_survey",
    "survey_thanks",
    "goodbye",
    "agent_logged_in",
    "agent_logged_out",
    "agent_paused",
    "agent_ready",
    "agent_not_agent",
    "agent_busy_state",
    "feature_invalid",
];

/// Everything a call task needs, shared by all calls.
/// Queue name → its settings (personal queues included).
pub type QueueConfigs = std::collections::HashMap<String, crate::acd::QueueConfig>;

/// The queue settings calls look up, from an ACD config.
pub fn queue_configs(acd: &crate::acd::AcdConfig) -> QueueConfigs {
    acd.with_personal_queues()
        .queues
        .into_iter()
        .map(|q| (q.name.clone(), q))
        .collect()
}

/// Delays between a callback's attempts, from an ACD config.
pub fn callback_retry(acd: &crate::acd::AcdConfig) -> Vec<Duration> {
    acd.settings
        .callback_retry_minutes
        .iter()
        .map(|&m| Duration::from_secs(u64::from(m) * 60))
        .collect()
}

pub struct CallContext {
    pub sip: SipHandle,
    /// Replaced by a reload (SIGHUP); a call takes both once, at its start.
    pub prompts: crate::reload::Live<PromptStore>,
    pub flows: crate::reload::Live<FlowSet>,
    pub store: Store,
    pub records: RecordSink,
    pub ports: Arc<PortPool>,
    pub rtp: RtpConfig,
    /// Ring this long (180) before answering.
    pub answer_delay: Duration,
    /// Fired when the daemon stops: calls end with a BYE and an
    /// `interrupted` record.
    pub shutdown: CancellationToken,
    /// Voice messages and (later) recordings go under this folder.
    pub data_dir: PathBuf,
    /// Wall-clock time for records and opening hours.
    pub clock: WallClock,
    /// The agent queue.
    pub acd: acd_service::AcdHandle,
    /// Queues' settings (hold music, break-out keys, survey), by name, as
    /// of the last reload.
    pub queues: crate::reload::Live<QueueConfigs>,
    /// Consultation calls agents placed from their softphones, by Call-ID,
    /// while bridged to another agent: an attended transfer (REFER with
    /// Replaces) asks the call task for its agent leg here.
    pub consults: Consults,
    /// The trunk callbacks go out through; `None`: no callbacks.
    pub outbound: Option<crate::config::OutboundTrunk>,
    /// Delays between a callback's failed attempts (then it is given up),
    /// as of the last reload.
    pub callback_retry: crate::reload::Live<Vec<Duration>>,
    /// Recording of agent calls.
    pub recordings: crate::recording::Recordings,
    /// Agents' bridged calls, for the recording API and live monitoring.
    pub live: live::LiveCalls,
    /// Live monitors running, and who may dial the monitor codes.
    pub monitors: monitor::Monitors,
    /// What `/metrics` reports of the calls.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// See [`CallContext::consults`]. A std mutex: held only to insert, remove
/// or clone a sender, never across an await.
pub type Consults = Arc<
    std::sync::Mutex<
        std::collections::HashMap<String, tokio::sync::mpsc::Sender<inbound::Handover>>,
    >,
>;

/// The wall clock calls use. Normally the system clock; pinned to a start
/// time (then advancing with tokio's clock) for tests and demos, so that
/// opening hours can be tried at any hour.
#[derive(Clone, Debug)]
pub struct WallClock {
    pinned: Option<(DateTime<Utc>, Instant)>,
}

impl WallClock {
    pub fn system() -> Self {
        WallClock { pinned: None }
    }

    /// A clock that reads `start` now and advances with tokio time.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        WallClock {
            pinned: Some((start, Instant::now())),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self.pinned {
            None => Utc::now(),
            Some((start, at)) => {
                start + chrono::Duration::from_std(at.elapsed()).unwrap_or_default()
            }
        }
    }
}

/// Takes incoming calls until the endpoint's channel closes.
pub async fn run_manager(
    ctx: Arc<CallContext>,
    mut incoming: mpsc::Receiver<IncomingCall>,
    max_calls: usize,
    per_softphone: call_limits::CallLimitConfig,
    tracker: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(max_calls));
    let softphone_limits = call_limits::CallLimits::new(per_softphone);
    while let Some(call) = incoming.recv().await {
        let slot = match softphone_limits.admit(
            !call.trunk.is_empty(),
            call.user.as_deref(),
            call.peer.addr.ip(),
        ) {
            Ok(slot) => slot,
            Err(refusal) => {
                warn!(
                    call_id = call.request.call_id().unwrap_or(""),
                    from = %call.peer.addr,
                    error = %refusal,
                    "softphone call limit reached; 403"
                );
                ctx.metrics.call_refused();
                refuse(&ctx, &call, 403, refusal.reason(), None).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(
                call_id = call.request.call_id().unwrap_or(""),
                "call limit reached; 503"
            );
            ctx.metrics.call_refused();
            refuse(&ctx, &call, 503, "Service Unavailable", Some(5)).await;
            continue;
        };
        let ctx = ctx.clone();
        tracker.spawn(async move {
            let metrics = ctx.metrics.clone();
            let active = metrics.call_started();
            inbound::run(ctx, call).await;
            drop(active);
            drop((permit, slot));
        });
    }
}

/// Answers an INVITE that will not be taken with `status`, and forgets
/// its dialog.
async fn refuse(
    ctx: &CallContext,
    call: &IncomingCall,
    status: u16,
    reason: &str,
    retry_after: Option<u32>,
) {
    let mut resp = response_to(&call.request, status, reason);
    resp.set_to_tag(&crate::sip::endpoint::new_tag());
    if let Some(secs) = retry_after {
        resp.headers.push("Retry-After", secs.to_string());
    }
    ctx.sip.respond(call.key.clone(), resp).await;
    ctx.sip
        .end_dialog(call.request.call_id().unwrap_or("").to_string())
        .await;
}
