//! A daemon that started while its PostgreSQL database did not answer.
//!
//! A hotline must answer citizens even when the database server is late
//! after a power cut or down for maintenance. So [`crate::server::Server::start`]
//! does not give up when PostgreSQL does not answer: it opens the store
//! without connecting ([`Store::open_unreachable`]), takes calls at once,
//! and the records, queue events and agent states wait in the spool (the
//! writer spools until the database answers, then applies the migrations,
//! writes the spool in order and writes directly again).
//!
//! What a start reads from the database is read here, once it answers
//! ([`catch_up`]), instead of at start:
//! - the demo accounts are seeded (`database.seed_demo`);
//! - recordings a killed daemon left half-written are repaired;
//! - the softphones' registrations come back (an AOR that registered
//!   meanwhile keeps its new registration), so agents are rung without
//!   waiting for their phones' next REGISTER;
//! - the agents' stored states (ready, paused with its reason) come back
//!   to the agents still logged out;
//! - stored callback requests come back at their place, or are scheduled
//!   for their retry time.
//!
//! Until then: agents log in by registering (`login_on_register`), by
//! feature code or the API; IVR look-ups fail as the flow says (its
//! `on_error`); the QC pages and the records API answer 503; `/readyz` is
//! 503. Each step that fails is logged and the rest go on.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::call::acd_service::AcdHandle;
use crate::call::CallContext;
use crate::sip::endpoint::SipHandle;
use crate::store::Store;

/// How long one look at the database may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two looks.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the catch-up needs of the running daemon.
pub(crate) struct Deferred {
    pub store: Store,
    pub sip: SipHandle,
    pub acd: AcdHandle,
    pub ctx: Arc<CallContext>,
    pub seed_demo: bool,
    /// Callbacks are restored only with a trunk to place them through.
    pub callbacks: bool,
    pub stop: CancellationToken,
}

/// Waits until the database answers (or `stop`), then reads what the start
/// could not (see the module header).
pub(crate) async fn catch_up(d: Deferred) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match tokio::time::timeout(PROBE_TIMEOUT, d.store.ping()).await {
            Ok(Ok(())) => break,
            Ok(Err(e)) => tracing::debug!(error = %e, "the database does not answer yet"),
            Err(_) => tracing::debug!("the database does not answer yet (timeout)"),
        }
        tokio::select! {
            _ = d.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    info!("the database answers: reading what the start could not");
    if d.seed_demo {
        match d.store.seed_demo().await {
            Ok(n) => info!(
                accounts = n,
                "demo accounts present (database.seed_demo = true)"
            ),
            Err(e) => warn!(error = %e, "demo accounts not seeded"),
        }
    }
    match crate::recording::maintenance::repair_interrupted(&d.store, &d.ctx.data_dir).await {
        Ok(0) => {}
        Ok(n) => warn!(recordings = n, "interrupted recordings repaired"),
        Err(e) => warn!(error = %e, "interrupted recordings not repaired"),
    }
    match d.store.load_bindings().await {
        Ok(b) => d.sip.load_bindings(b).await,
        Err(e) => warn!(error = %e, "registrations not restored"),
    }
    match d.store.load_agent_states().await {
        Ok(rows) => {
            let _ = d.acd.restore_states(rows).await;
        }
        Err(e) => warn!(error = %e, "agents' states not restored"),
    }
    if d.callbacks {
        match d.store.open_callbacks().await {
            Ok(rows) => {
                let (due, later) = crate::call::callback::split_due(&rows, d.ctx.clock.now());
                let restored = due.len() + later.len();
                for request in due {
                    let call = request.call.clone();
                    if let Err(e) = d.acd.add_callback(request).await {
                        warn!(call = %call, error = %e, "stored callback request not restored");
                    }
                }
                for (request, wait) in later {
                    tokio::spawn(crate::call::callback::schedule_retry(
                        d.ctx.clone(),
                        request,
                        wait,
                    ));
                }
                info!(callbacks = restored, "stored callback requests restored");
            }
            Err(e) => warn!(error = %e, "callback requests not restored"),
        }
    }
    info!("start-up reads done: the daemon runs as if the database had answered at start");
}
