//! The inbound call in an agent queue: joining (or being refused), hold
//! music and announcements ([`QueueWait`]), break-out keys, the ACD's
//! signals, and leaving the queue when the caller hangs up.

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::InboundCall;
use crate::acd::CallId;
use crate::call::acd_service::{QueueSignal, SIGNAL_CAPACITY};
use crate::call::queue_wait::{QueueWait, WaitAction};
use crate::store::HangupBy;

pub(super) use crate::call::queue_wait::QUEUE_PLAY_BIT;

/// A caller's place in a queue, as the call task holds it.
pub(super) struct Queued {
    pub name: String,
    pub wait: QueueWait,
    pub signals: mpsc::Receiver<QueueSignal>,
    pub joined: Instant,
}

/// The next ACD signal, or never when the call is not queued.
pub(super) async fn next_signal(queued: &mut Option<Queued>) -> Option<QueueSignal> {
    match queued {
        Some(q) => q.signals.recv().await,
        None => std::future::pending().await,
    }
}

impl InboundCall {
    fn acd_call(&self) -> CallId {
        CallId(self.record.call_id.clone())
    }

    /// Puts the call in `queue`. False when the queue refused it (full, no
    /// agents, unknown): the flow's overflow follows.
    pub(super) async fn join_queue(
        &mut self,
        queue: &str,
        priority: i32,
        intro: Option<&str>,
    ) -> bool {
        self.record.queue = Some(queue.to_string());
        self.reached_queue = true;
        self.queues = self.ctx.queues.now();
        let Some(config) = self.queues.get(queue).cloned() else {
            warn!(queue, "flow names a queue that does not exist");
            return false;
        };
        let (tx, rx) = mpsc::channel(SIGNAL_CAPACITY);
        let joined = Instant::now();
        let position = match self
            .ctx
            .acd
            .join(self.acd_call(), queue, priority, tx)
            .await
        {
            Ok(Ok(position)) => position,
            Ok(Err(refused)) => {
                info!(queue, reason = ?refused.reason, "queue refused the call");
                self.record.acd.wait_ms = Some(0);
                return false;
            }
            Err(e) => {
                warn!(queue, error = %e, "no agent queue");
                return false;
            }
        };
        info!(queue, priority, position, "caller queued");
        let lang = self.ivr.as_ref().map(|i| i.language()).unwrap_or_default();
        let mut wait = QueueWait::new(&config, lang);
        let actions = wait.start_after(position, intro);
        self.queued = Some(Queued {
            name: queue.to_string(),
            wait,
            signals: rx,
            joined,
        });
        self.perform_wait(actions).await;
        true
    }

    /// The caller leaves the queue (hung up, or the call ends otherwise).
    pub(super) async fn leave_queue(&mut self) {
        if let Some(q) = self.queued.take() {
            self.abandoned_in_queue = true;
            self.record.acd.wait_ms = Some(q.joined.elapsed().as_millis() as i64);
            self.ctx.acd.caller_left(self.acd_call()).await;
            debug!(queue = %q.name, "left the queue");
        }
    }

    /// Stops waiting (the ACD already knows) and notes the wait.
    fn stop_waiting(&mut self) {
        if let Some(q) = self.queued.take() {
            self.record.acd.wait_ms = Some(q.joined.elapsed().as_millis() as i64);
        }
    }

    pub(super) async fn on_queue_signal(&mut self, signal: QueueSignal) {
        match signal {
            QueueSignal::Announce {
                position,
                estimated_wait,
            } => {
                let actions = match self.queued.as_mut() {
                    Some(q) => q.wait.on_announce(position, estimated_wait),
                    None => Vec::new(),
                };
                self.perform_wait(actions).await;
            }
            QueueSignal::Timeout { reason } => {
                info!(
                    reason = reason.as_str(),
                    "left the queue for the flow's overflow"
                );
                self.stop_waiting();
                let now = Instant::now();
                let actions = match self.ivr.as_mut() {
                    Some(ivr) => ivr.on_queue_unavailable(now),
                    None => Vec::new(),
                };
                self.perform(actions).await;
            }
            QueueSignal::Offer {
                agent,
                extension,
                ring_timeout,
            } => self.offer_to_agent(agent, extension, ring_timeout).await,
            QueueSignal::CancelOffer { agent } => self.cancel_offer(&agent).await,
        }
    }

    pub(super) async fn on_queue_playback_done(&mut self, id: u64) {
        if self.closing == Some(id) {
            self.closing = None;
            let reason = self.record.hangup_reason.clone();
            self.hangup(HangupBy::System, &reason).await;
            return;
        }
        let actions = match self.queued.as_mut() {
            Some(q) => q.wait.on_playback_done(id),
            None => Vec::new(),
        };
        self.perform_wait(actions).await;
    }

    pub(super) async fn on_queue_digit(&mut self, digit: char) {
        let actions = match self.queued.as_mut() {
            Some(q) => q.wait.on_digit(digit),
            None => Vec::new(),
        };
        self.perform_wait(actions).await;
    }

    async fn perform_wait(&mut self, actions: Vec<WaitAction>) {
        for action in actions {
            match action {
                WaitAction::Play { id, prompts } => {
                    let lang = self.ivr.as_ref().map(|i| i.language()).unwrap_or_default();
                    self.play(id, lang, &prompts).await;
                }
                WaitAction::BreakoutVoicemail => {
                    info!("caller chose to leave a voice message");
                    self.cancel_all_offers().await;
                    self.ctx.acd.breakout_voicemail(self.acd_call()).await;
                    self.stop_waiting();
                    let now = Instant::now();
                    let actions = match self.ivr.as_mut() {
                        Some(ivr) => ivr.on_queue_voicemail(now),
                        None => Vec::new(),
                    };
                    Box::pin(self.perform(actions)).await;
                }
                WaitAction::RequestCallback => Box::pin(self.request_callback()).await,
            }
        }
    }

    /// A callback on the calling number, keeping the caller's place; then a
    /// confirmation and goodbye.
    async fn request_callback(&mut self) {
        self.cancel_all_offers().await;
        let number = self.record.caller.clone();
        match self.ctx.acd.request_callback(self.acd_call(), number).await {
            Ok(()) => {
                info!("callback requested; the request keeps the caller's place");
                self.stop_waiting();
                self.record.hangup_reason = "callback_requested".into();
                self.play_closing("callback_confirmed").await;
            }
            Err(e) => {
                // E.g. an anonymous caller: no number to call back. The
                // caller stays in the queue.
                info!(error = %e, "callback refused; caller keeps waiting");
                let lang = self.ivr.as_ref().map(|i| i.language()).unwrap_or_default();
                if let Some(q) = self.queued.as_mut() {
                    q.wait = QueueWait::new(&self.queues[&q.name], lang);
                    let actions = q.wait.start(1);
                    self.perform_wait(actions).await;
                }
            }
        }
    }

    /// Plays `prompt`, then the call ends (reason as set in the record).
    pub(super) async fn play_closing(&mut self, prompt: &str) {
        let id = QUEUE_PLAY_BIT | (1 << 61);
        self.closing = Some(id);
        let lang = self.ivr.as_ref().map(|i| i.language()).unwrap_or_default();
        self.play(id, lang, &[prompt.to_string()]).await;
    }
}
