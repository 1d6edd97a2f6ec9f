//! Assembles the daemon: loads prompts and flows (rejecting a bad config
//! before anything listens), opens the store, starts the record writer, the
//! SIP endpoint, the call manager and the HTTP server, and stops them in
//! order: new calls refused, calls ended, records flushed, store closed.

use crate::call::{run_manager, CallContext};
use crate::config::Config;
use crate::ivr::flow::{load_flows, FlowSet};
use crate::media::media_threads::{MediaThreads, Priority};
use crate::media::port_pool::PortPool;
use crate::media::prompts::PromptStore;
use crate::sip::acl::Acl;
use crate::sip::endpoint::{self, EndpointConfig, SipHandle};
use crate::sip::transaction::TimerConfig;
use crate::store::writer::{spawn_spooling_writer, RecordSink};
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// The call rate the transaction table is sized to sustain (the target is
/// 800 calls/s; measured with `bench/run.sh ivr-cps`).
const SUSTAINED_CALLS_PER_SEC: usize = 1_200;

/// Cap on live SIP transactions. Besides the calls in progress, every
/// finished call leaves two transactions that must linger for 64*T1 = 32 s
/// over UDP: its INVITE in Accepted (RFC 6026 §7.1, Timer L) and its BYE in
/// Completed (RFC 3261 §17.2.2, Timer J). At R calls/s that is 64 * R
/// entries, which `max_calls * 8` alone does not cover (with the shipped
/// 4,000 calls it held about 500 calls/s; the bench's 1,200 calls/s step
/// got 503 from a full table while the CPU was half idle).
fn max_transactions(max_calls: usize) -> usize {
    let linger = 2 * 32 * SUSTAINED_CALLS_PER_SEC;
    max_calls * 8 + 1024 + linger
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error("prompts: {0}")]
    Prompts(String),
    #[error("flows:\n{0}")]
    Flows(String),
    #[error("database {url}: {message}")]
    Store { url: String, message: String },
    #[error("agent queue: {0}")]
    Acd(String),
    #[error("record spool {path}: {source}")]
    Spool {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("RTP ports: {0}")]
    Ports(String),
    #[error("starting the media threads: {0}")]
    MediaThreads(std::io::Error),
    #[error("SIP listen on {addr}: {source}")]
    SipBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP listen on {addr}: {source}")]
    HttpBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Loads prompts and flows as `serve` would, without starting anything.
pub fn load_media_and_flows(cfg: &Config) -> Result<(Arc<PromptStore>, Arc<FlowSet>), StartError> {
    let prompts =
        PromptStore::load(&cfg.prompts_dir).map_err(|e| StartError::Prompts(e.to_string()))?;
    let flows = load_flows(
        &cfg.flows_dir,
        &|lang, name| prompts.contains(lang, name),
        &|sql| crate::store::check_lookup_sql(sql).map_err(|e| e.to_string()),
    )
    .map_err(|errs| {
        StartError::Flows(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let mut problems = Vec::new();
    for flow in flows.flows() {
        for node in flow.nodes.values() {
            if let crate::ivr::nodes::NodeKind::Queue(q) = &node.kind {
                if !cfg.acd.queues.iter().any(|c| c.name == q.queue) {
                    problems.push(format!(
                        "{}: nodes.{}.queue: no queue {:?} in [[acd.queues]] of {}",
                        flow.file.display(),
                        node.id,
                        q.queue,
                        cfg.file.display()
                    ));
                }
            }
        }
    }
    for lang in crate::lang::Lang::ALL {
        for name in crate::call::CALL_PROMPTS {
            if !prompts.contains(lang, name) {
                problems.push(format!(
                    "{}: prompt {name:?} is missing (the agent queue plays it)",
                    cfg.prompts_dir.join(lang.code()).display()
                ));
            }
        }
    }
    for (i, q) in cfg.acd.queues.iter().enumerate() {
        for lang in crate::lang::Lang::ALL {
            if !prompts.contains(lang, &q.hold_music) {
                problems.push(format!(
                    "{}: acd.queues[{i}].hold_music: no prompt {:?} in {}",
                    cfg.file.display(),
                    q.hold_music,
                    cfg.prompts_dir.join(lang.code()).display()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(StartError::Flows(problems.join("\n")));
    }
    Ok((Arc::new(prompts), Arc::new(flows)))
}

/// The media threads (crate::media::media_threads), and what they got of
/// the real-time priority they asked for, in the log.
fn start_media_threads(rtp: &crate::config::RtpConfig) -> Result<MediaThreads, StartError> {
    let threads = MediaThreads::start(rtp.media_threads, rtp.realtime_priority, rtp.media_nap)
        .map_err(StartError::MediaThreads)?;
    match threads.priority() {
        Priority::Realtime(p) => info!(
            threads = threads.count(),
            priority = p,
            "media threads started, real-time (SCHED_RR)"
        ),
        Priority::Normal => info!(
            threads = threads.count(),
            "media threads started, normal priority (rtp.realtime_priority = 0)"
        ),
        Priority::Refused { asked, error } => tracing::warn!(
            threads = threads.count(),
            asked,
            %error,
            "media threads run at normal priority: real-time priority refused \
             (run as root, grant CAP_SYS_NICE, or LimitRTPRIO= under systemd)"
        ),
    }
    Ok(threads)
}

/// A running daemon.
pub struct Server {
    pub sip_udp: Option<SocketAddr>,
    pub sip_tcp: Option<SocketAddr>,
    pub http: SocketAddr,
    pub store: Store,
    sip: SipHandle,
    /// Agents' reachability from the registrar, until the ACD takes it.
    records: RecordSink,
    /// Stops the endpoint and the HTTP server.
    shutdown: CancellationToken,
    /// Tells calls still up to hang up (BYE, `interrupted` record).
    calls_stop: CancellationToken,
    calls: TaskTracker,
    writer: tokio::task::JoinHandle<()>,
    endpoint_task: tokio::task::JoinHandle<()>,
    /// Writes registration changes; ends when the endpoint does.
    registration_writer: tokio::task::JoinHandle<()>,
    acd: crate::call::acd_service::AcdHandle,
    acd_task: tokio::task::JoinHandle<()>,
    recordings: crate::recording::Recordings,
    /// The daily QC sampling run; ends on `shutdown`.
    qc_sampling: tokio::task::JoinHandle<()>,
    /// Where a reload puts new flows, prompts and queue settings.
    ctx: Arc<CallContext>,
    /// Where a reload puts the agents' names and teams (QC pages).
    web: Arc<crate::web::WebContext>,
    /// The configuration the daemon started with (what a reload cannot
    /// change is compared with it).
    running: Config,
}

impl Server {
    pub async fn start(cfg: Config) -> Result<Server, StartError> {
        let running = cfg.clone();
        let (prompts, flows) = load_media_and_flows(&cfg)?;
        info!(prompts = prompts.len(), "prompts loaded");
        let store_error = |message: String| StartError::Store {
            url: redact_url(&cfg.database_url),
            message,
        };
        // PostgreSQL that does not answer: start anyway (crate::deferred_start).
        let (store, deferred) = match Store::open(&cfg.database_url).await {
            Ok(store) => (store, false),
            // Only a PostgreSQL store opens unreachable; SQLite's error stands.
            Err(e) if e.is_unavailable() => {
                match Store::open_unreachable(&cfg.database_url).await {
                    Ok(store) => {
                        tracing::warn!(url = %redact_url(&cfg.database_url), error = %e,
                        "the database does not answer: taking calls without it; records and events wait in the spool, and what a start reads is read when it answers");
                        (store, true)
                    }
                    Err(_) => return Err(store_error(e.to_string())),
                }
            }
            Err(e) => return Err(store_error(e.to_string())),
        };
        if cfg.seed_demo && !deferred {
            let n = store.seed_demo().await.map_err(|e| StartError::Store {
                url: redact_url(&cfg.database_url),
                message: format!("seeding the demo accounts: {e}"),
            })?;
            info!(
                accounts = n,
                "demo accounts present (database.seed_demo = true)"
            );
        }
        // While the database cannot be written, records wait on disk here.
        let spool_dir = cfg.data_dir.join("spool");
        let (records, writer) =
            spawn_spooling_writer(store.clone(), 10_000, &spool_dir).map_err(|source| {
                StartError::Spool {
                    path: spool_dir.clone(),
                    source,
                }
            })?;
        // Recordings a killed daemon left half-written play again.
        let repaired = if deferred {
            0
        } else {
            crate::recording::maintenance::repair_interrupted(&store, &cfg.data_dir)
                .await
                .map_err(|e| store_error(format!("repairing interrupted recordings: {e}")))?
        };
        if repaired > 0 {
            tracing::warn!(recordings = repaired, "interrupted recordings repaired");
        }
        let recordings = crate::recording::Recordings::new(
            cfg.recording.clone(),
            cfg.data_dir.clone(),
            records.clone(),
        );
        let live = crate::call::live::LiveCalls::default();
        let mut ports = PortPool::new(cfg.rtp.bind, cfg.rtp.port_low, cfg.rtp.port_high)
            .map_err(|e| StartError::Ports(e.to_string()))?;
        if cfg.rtp.media_threads > 0 {
            let threads = start_media_threads(&cfg.rtp)?;
            ports = ports.with_media_threads(threads);
        }
        let shutdown = CancellationToken::new();
        let calls_stop = CancellationToken::new();
        let (incoming_tx, incoming_rx) = mpsc::channel(1024);
        let ep_cfg = EndpointConfig {
            listen: cfg.sip.listen,
            advertised: cfg.sip.advertised,
            udp: cfg.sip.udp,
            tcp: cfg.sip.tcp,
            user_agent: cfg.sip.user_agent.clone(),
            max_message_bytes: cfg.sip.max_message_bytes,
            max_transactions: max_transactions(cfg.sip.max_calls),
            timers: TimerConfig::default(),
            registrar: cfg.registrar.clone(),
            guard: cfg.sip.guard.clone(),
        };
        let bindings = if deferred {
            Vec::new()
        } else {
            store
                .load_bindings()
                .await
                .map_err(|e| store_error(format!("loading registrations: {e}")))?
        };
        info!(bindings = bindings.len(), "registrations restored");
        let (changes_tx, mut changes_rx) =
            mpsc::channel::<Vec<crate::sip::registrar::BindingChange>>(1024);
        let registration_store = store.clone();
        let registration_writer = tokio::spawn(async move {
            // One writer, so changes land in the order they happened.
            while let Some(changes) = changes_rx.recv().await {
                if let Err(e) = registration_store.apply_binding_changes(&changes).await {
                    tracing::warn!(error = %e, "registration changes not stored");
                }
            }
        });
        let (presence_tx, presence_rx) = mpsc::channel(1024);
        let registrations = crate::sip::endpoint::RegistrarState {
            bindings,
            changes: changes_tx,
            presence: Some(presence_tx),
        };
        let (sip, endpoint_task) = endpoint::start(
            ep_cfg,
            Acl::new(cfg.sip.trunks.clone()),
            registrations,
            incoming_tx,
            shutdown.clone(),
        )
        .await
        .map_err(|source| StartError::SipBind {
            addr: cfg.sip.listen,
            source,
        })?;
        let clock = match cfg.clock_start {
            Some(t) => crate::call::WallClock::starting_at(t),
            None => crate::call::WallClock::system(),
        };
        let agent_states = if deferred {
            Vec::new()
        } else {
            store
                .load_agent_states()
                .await
                .map_err(|e| store_error(format!("loading agent states: {e}")))?
        };
        for w in &cfg.warnings {
            tracing::warn!("{w}");
        }
        // Stored callback requests come back at their place (only with a
        // trunk to place them through).
        let stored_callbacks = match &cfg.sip.outbound {
            Some(_) if !deferred => store
                .open_callbacks()
                .await
                .map_err(|e| store_error(format!("loading callback requests: {e}")))?,
            _ => Vec::new(),
        };
        let (due_callbacks, later_callbacks) =
            crate::call::callback::split_due(&stored_callbacks, clock.now());
        let (callback_tx, callback_rx) = mpsc::channel(256);
        let (acd, acd_task) = crate::call::acd_service::spawn(
            &cfg.acd,
            agent_states,
            due_callbacks,
            records.clone(),
            clock.clone(),
            callback_tx,
        )
        .map_err(|e| StartError::Acd(e.to_string()))?;
        // The registrar's word on agents' softphones goes to the ACD.
        let presence_acd = acd.clone();
        let mut presence_rx = presence_rx;
        tokio::spawn(async move {
            while let Some(p) = presence_rx.recv().await {
                presence_acd.presence(p.aor, p.reachable).await;
            }
        });
        // Calls and monitor legs: shutdown drains both.
        let calls = TaskTracker::new();
        let ctx = Arc::new(CallContext {
            sip: sip.clone(),
            prompts: crate::reload::Live::new(prompts),
            flows: crate::reload::Live::new(flows),
            store: store.clone(),
            records: records.clone(),
            ports: Arc::new(ports),
            rtp: cfg.rtp.clone(),
            answer_delay: cfg.sip.answer_delay,
            shutdown: calls_stop.clone(),
            data_dir: cfg.data_dir.clone(),
            clock,
            acd: acd.clone(),
            queues: crate::reload::Live::new(Arc::new(crate::call::queue_configs(&cfg.acd))),
            consults: Default::default(),
            outbound: cfg.sip.outbound.clone(),
            callback_retry: crate::reload::Live::new(Arc::new(crate::call::callback_retry(
                &cfg.acd,
            ))),
            recordings: recordings.clone(),
            live: live.clone(),
            monitors: crate::call::monitor::Monitors::new(
                cfg.registrar
                    .users
                    .iter()
                    .filter(|u| u.monitor)
                    .map(|u| u.user.clone()),
                calls.clone(),
            ),
            metrics: Default::default(),
        });
        tokio::spawn(crate::recording::maintenance::run_retention(
            store.clone(),
            records.clone(),
            cfg.data_dir.clone(),
            cfg.recording.retention_days,
            ctx.clock.clone(),
            shutdown.clone(),
        ));
        let qc_sampling = tokio::spawn(crate::qc::sample_schedule::run_scheduled(
            store.clone(),
            cfg.qc.sampling.clone(),
            ctx.clock.clone(),
            shutdown.clone(),
        ));
        match &cfg.sip.outbound {
            Some(t) => info!(trunk = %t.address, "callbacks go out through the outbound trunk"),
            None => info!("no [sip.outbound] trunk: callbacks are disabled"),
        }
        for (request, wait) in later_callbacks {
            tokio::spawn(crate::call::callback::schedule_retry(
                ctx.clone(),
                request,
                wait,
            ));
        }
        tokio::spawn(crate::call::callback::run_dialer(ctx.clone(), callback_rx));
        if deferred {
            tokio::spawn(crate::deferred_start::catch_up(
                crate::deferred_start::Deferred {
                    store: store.clone(),
                    sip: sip.clone(),
                    acd: acd.clone(),
                    ctx: ctx.clone(),
                    seed_demo: cfg.seed_demo,
                    callbacks: cfg.sip.outbound.is_some(),
                    stop: shutdown.clone(),
                },
            ));
        }
        let monitor = crate::call::monitor::MonitorHandle::new(ctx.clone());
        tokio::spawn(run_manager(
            ctx.clone(),
            incoming_rx,
            cfg.sip.max_calls,
            cfg.sip.call_limits,
            calls.clone(),
        ));

        let listener = tokio::net::TcpListener::bind(cfg.http_listen)
            .await
            .map_err(|source| StartError::HttpBind {
                addr: cfg.http_listen,
                source,
            })?;
        let http = listener
            .local_addr()
            .map_err(|source| StartError::HttpBind {
                addr: cfg.http_listen,
                source,
            })?;
        let web = std::sync::Arc::new(
            crate::web::WebContext::new(&cfg.qc, &cfg.acd).with_report(&cfg.report),
        );
        let wallboard = crate::web::wallboard_hub::Wallboard::new(
            acd.clone(),
            store.clone(),
            ctx.clock.clone(),
            web.kpi,
            Duration::from_secs(cfg.qc.web.wallboard_refresh_secs.into()),
            cfg.qc.web.wallboard_max_streams as usize,
            shutdown.clone(),
        );
        tokio::spawn(wallboard.clone().run());
        let router = crate::http::router(crate::http::AppState {
            store: store.clone(),
            acd: acd.clone(),
            data_dir: cfg.data_dir.clone(),
            api_tokens: crate::http::ApiTokens::new(&cfg.api_tokens),
            live: live.clone(),
            monitor,
            web: web.clone(),
            calls: ctx.clone(),
            wallboard,
            event_streams: crate::http::event_stream::stream_slots(),
            stop: shutdown.clone(),
        });
        let http_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await;
        });
        info!(%http, "HTTP listening");
        let local = sip.local.clone();
        Ok(Server {
            sip_udp: local.udp,
            sip_tcp: local.tcp,
            http,
            store,
            sip,
            records,
            shutdown,
            calls_stop,
            calls,
            writer,
            endpoint_task,
            registration_writer,
            acd,
            acd_task,
            recordings,
            qc_sampling,
            ctx,
            web,
            running,
        })
    }

    /// Applies a new configuration (SIGHUP): the flows and prompts, the
    /// agents and queues, and the softphone users, loaded and checked as at
    /// start. On any error nothing changes. New calls get the new flows and
    /// prompts; calls up keep theirs, their place in a queue and their
    /// agent (see `acd::distributor::reconfigure` for what happens to
    /// agents and queues taken out). Settings only read at start that
    /// differ are listed in the report (and logged).
    pub async fn reload(&self, new: &Config) -> Result<crate::reload::ReloadReport, StartError> {
        let (prompts, flows) = load_media_and_flows(new)?;
        new.acd
            .validate()
            .map_err(|e| StartError::Acd(e.to_string()))?;
        let restart_needed = crate::reload::needs_restart(&self.running, new);
        // The users first: one taken out loses its registrations before
        // the agents' are looked up. A new realm or algorithm needs a
        // restart (the digest state is the endpoint's), and so do the users
        // hashed for it.
        let users_apply = !restart_needed.contains(&crate::reload::REGISTRAR);
        let bindings_removed = if users_apply {
            self.ctx.monitors.set_allowed(
                new.registrar
                    .users
                    .iter()
                    .filter(|u| u.monitor)
                    .map(|u| u.user.clone()),
            );
            self.sip.set_users(new.registrar.users.clone()).await
        } else {
            0
        };
        // The ACD takes a registration only for an agent added or given a
        // new extension: only those are looked up.
        let mut registered = std::collections::HashMap::new();
        for a in &new.acd.agents {
            if self
                .acd
                .agent_for_extension(&a.extension)
                .is_some_and(|id| id.0 == a.id)
            {
                continue;
            }
            let live = !self.sip.contacts(&a.extension).await.is_empty();
            registered.insert(a.extension.clone(), live);
        }
        let acd = self
            .acd
            .reconfigure(new.acd.clone(), registered)
            .await
            .map_err(|e| StartError::Acd(e.to_string()))?
            .map_err(|e| StartError::Acd(e.to_string()))?;
        self.ctx
            .queues
            .set(Arc::new(crate::call::queue_configs(&new.acd)));
        self.ctx
            .callback_retry
            .set(Arc::new(crate::call::callback_retry(&new.acd)));
        self.web
            .agents
            .set(Arc::new(crate::web::agent_names(&new.acd)));
        let report = crate::reload::ReloadReport {
            prompts: prompts.len(),
            flows: flows.len(),
            users: users_apply.then_some(new.registrar.users.len()),
            bindings_removed,
            acd,
            restart_needed,
        };
        self.ctx.prompts.set(prompts);
        self.ctx.flows.set(flows);
        info!(
            prompts = report.prompts,
            flows = report.flows,
            users = ?report.users,
            "configuration reloaded: new calls get these flows and prompts; calls up keep theirs"
        );
        if !report.restart_needed.is_empty() {
            tracing::warn!(sections = %report.restart_needed.join(", "),
                "changed settings that are read at start only: they take effect at the next restart");
        }
        Ok(report)
    }

    /// The SIP endpoint's handle (to ring agents, look up their contacts).
    pub fn sip(&self) -> SipHandle {
        self.sip.clone()
    }

    /// The agent queue (for tests and the API).
    pub fn acd(&self) -> crate::call::acd_service::AcdHandle {
        self.acd.clone()
    }

    /// RTP sockets at home on each media thread now; `None` without media
    /// threads (`rtp.media_threads = 0`).
    pub fn media_thread_sockets(&self) -> Option<Vec<usize>> {
        self.ctx
            .ports
            .media_threads()
            .map(MediaThreads::sockets_per_thread)
    }

    /// Waits until every record submitted so far is in the database.
    pub async fn flush_records(&self) {
        self.records.flush().await;
    }

    /// Stops taking calls (503), lets calls in progress run for up to
    /// `drain`, ends the rest, flushes records and closes the store.
    pub async fn shutdown(self, drain: Duration) {
        info!(?drain, "shutting down");
        self.sip.drain().await;
        self.calls.close();
        if tokio::time::timeout(drain, self.calls.wait())
            .await
            .is_err()
        {
            info!("drain deadline reached; ending the remaining calls");
        }
        // Calls still up get BYE and an interrupted record; the endpoint
        // keeps running meanwhile so the BYEs leave.
        self.calls_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.calls.wait()).await;
        // Recordings of the calls that ended are finished and their rows queued.
        if !self.recordings.wait(Duration::from_secs(10)).await {
            tracing::warn!(
                "recordings still being written at shutdown; they are repaired at the next start"
            );
        }
        // A round trip through the ACD: the events of the calls that just
        // ended are in the writer's queue after it.
        let _ = self.acd.snapshot().await;
        self.shutdown.cancel();
        // The daily QC sampling stops (a run is saved whole or not at all).
        let _ = tokio::time::timeout(Duration::from_secs(5), self.qc_sampling).await;
        // The endpoint's end drops the registrations' sender; the writer
        // then stores what is queued and ends.
        let _ = self.endpoint_task.await;
        let _ = self.registration_writer.await;
        self.records.close().await;
        let _ = self.writer.await;
        self.acd_task.abort();
        self.store.close().await;
        info!("stopped");
    }
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the 800 calls/s target, with every call of the shipped limit up,
    /// the table holds each finished call's INVITE and BYE for their 32 s
    /// (Timers L and J at T1 = 500 ms) besides the live calls' own.
    #[test]
    fn transaction_table_holds_lingering_transactions_at_the_target_rate() {
        let t1 = TimerConfig::default().t1;
        let linger_secs = (t1 * 64).as_secs() as usize;
        assert_eq!(linger_secs, 32);
        let max_calls = 4000;
        let needed = max_calls * 2 + 2 * linger_secs * 800;
        assert!(max_transactions(max_calls) >= needed);
        // Still a bound: a flood cannot grow the table without limit.
        assert!(max_transactions(max_calls) < 200_000);
    }
}
