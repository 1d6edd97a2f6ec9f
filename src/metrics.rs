//! The daemon's Prometheus metrics (`GET /metrics`, text exposition format
//! 0.0.4). Counters and gauges kept by the call path are atomics in
//! [`Metrics`] (one per daemon, in the call context: relaxed adds, never a
//! lock, never a wait); the rest is read when scraped — the ACD's queues
//! and agents, the record writer's counters and backlog, the recordings
//! being written. [`render`] is pure.
//!
//! | metric | type | what |
//! |---|---|---|
//! | `hotline_calls_total` | counter | calls taken (INVITEs that became calls) |
//! | `hotline_calls_refused_total` | counter | INVITEs refused at `[sip] max_calls` (503) |
//! | `hotline_calls_active` | gauge | calls up now (citizens' and softphones') |
//! | `hotline_bridges_total` | counter | bridged agent calls ended |
//! | `hotline_rtp_packets_received_total{side}` | counter | audio and events received on bridged calls (`caller`, `agent`) |
//! | `hotline_rtp_packets_lost_total{side}` | counter | sequence gaps on bridged calls |
//! | `hotline_rtp_jitter_seconds{side}` | histogram | each bridged side's interarrival jitter (RFC 3550) at its end |
//! | `hotline_queue_waiting{queue}` | gauge | callers waiting or being offered |
//! | `hotline_queue_callbacks{queue}` | gauge | callback requests keeping a place |
//! | `hotline_queue_longest_wait_seconds{queue}` | gauge | the longest a caller now waiting has waited |
//! | `hotline_queue_staffed{queue}` | gauge | agents logged in and reachable |
//! | `hotline_agents{state}` | gauge | agents by state |
//! | `hotline_store_written_total` | counter | call records committed |
//! | `hotline_store_failed_attempts_total` | counter | write attempts that failed (retried or spooled) |
//! | `hotline_store_passes_total`, `hotline_store_pass_seconds_total` | counter | writer passes and their time (latency = rate of the second ÷ rate of the first) |
//! | `hotline_store_backlog` | gauge | messages queued for the writer |
//! | `hotline_store_spooled_rows_total`, `hotline_store_unspooled_rows_total` | counter | rows spooled to disk while the database could not be written, and rows written from the spool once it was back |
//! | `hotline_store_spool_rows` | gauge | rows waiting in the spool (0 when the database is healthy) |
//! | `hotline_recordings_active` | gauge | recordings being written (incl. finishing) |
//! | `hotline_media_thread_sockets{thread}` | gauge | RTP sockets at home on each media thread (absent without media threads) |
//! | `hotline_media_threads_realtime` | gauge | 1 when the media threads got real-time priority, 0 when refused or not asked for |

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::call::acd_service::AcdSnapshot;
use crate::store::WriterStats;

/// Upper bounds of the jitter histogram's buckets, in seconds.
pub const JITTER_BUCKETS: [f64; 7] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];

/// A histogram of durations with fixed buckets (cumulative when rendered).
#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket of [`JITTER_BUCKETS`], then +Inf (not cumulative here).
    counts: [AtomicU64; JITTER_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = JITTER_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(JITTER_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in JITTER_BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.counts[JITTER_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(
            out,
            "{name}_count{{{labels}}} {}",
            self.count.load(Ordering::Relaxed)
        );
    }
}

/// One bridged side's figures at the end of a bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideFigures {
    pub received: u64,
    pub lost: u64,
    pub jitter: Duration,
}

/// What the call path counts.
#[derive(Debug, Default)]
pub struct Metrics {
    calls_total: AtomicU64,
    calls_refused: AtomicU64,
    calls_active: AtomicI64,
    bridges_total: AtomicU64,
    /// Caller, agent.
    rtp_received: [AtomicU64; 2],
    rtp_lost: [AtomicU64; 2],
    jitter: [Histogram; 2],
}

/// A call counted in `hotline_calls_active` until dropped.
#[derive(Debug)]
pub struct ActiveCall<'a>(&'a Metrics);

impl Drop for ActiveCall<'_> {
    fn drop(&mut self) {
        self.0.calls_active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// A call is taken: counted, and active while the guard lives.
    pub fn call_started(&self) -> ActiveCall<'_> {
        self.calls_total.fetch_add(1, Ordering::Relaxed);
        self.calls_active.fetch_add(1, Ordering::Relaxed);
        ActiveCall(self)
    }

    pub fn call_refused(&self) {
        self.calls_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A bridge ended with these figures for its caller and agent sides.
    pub fn bridge_ended(&self, caller: SideFigures, agent: SideFigures) {
        self.bridges_total.fetch_add(1, Ordering::Relaxed);
        for (i, f) in [caller, agent].into_iter().enumerate() {
            self.rtp_received[i].fetch_add(f.received, Ordering::Relaxed);
            self.rtp_lost[i].fetch_add(f.lost, Ordering::Relaxed);
            if f.received > 1 {
                self.jitter[i].observe(f.jitter);
            }
        }
    }
}

/// What is read at scrape time besides [`Metrics`].
#[derive(Debug, Clone, Default)]
pub struct Scraped {
    /// `None` when the ACD does not answer (stopping).
    pub acd: Option<AcdSnapshot>,
    pub store: WriterStats,
    pub recordings_active: usize,
    /// `None` without media threads.
    pub media: Option<MediaScraped>,
}

/// The media threads at scrape time.
#[derive(Debug, Clone, Default)]
pub struct MediaScraped {
    /// RTP sockets at home on each thread.
    pub sockets: Vec<usize>,
    /// Real-time priority was taken.
    pub realtime: bool,
}

/// Escapes a label value (`\`, `"`, newline).
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The exposition text.
pub fn render(m: &Metrics, s: &Scraped) -> String {
    let mut o = String::with_capacity(4096);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    head(&mut o, "hotline_calls_total", "counter", "Calls taken.");
    let _ = writeln!(o, "hotline_calls_total {}", load(&m.calls_total));
    head(
        &mut o,
        "hotline_calls_refused_total",
        "counter",
        "INVITEs refused at the call limit (503).",
    );
    let _ = writeln!(o, "hotline_calls_refused_total {}", load(&m.calls_refused));
    head(&mut o, "hotline_calls_active", "gauge", "Calls up now.");
    let _ = writeln!(
        o,
        "hotline_calls_active {}",
        m.calls_active.load(Ordering::Relaxed).max(0)
    );
    head(
        &mut o,
        "hotline_bridges_total",
        "counter",
        "Bridged agent calls ended.",
    );
    let _ = writeln!(o, "hotline_bridges_total {}", load(&m.bridges_total));
    const SIDES: [&str; 2] = ["caller", "agent"];
    head(
        &mut o,
        "hotline_rtp_packets_received_total",
        "counter",
        "RTP packets received on bridged calls.",
    );
    for (i, side) in SIDES.iter().enumerate() {
        let _ = writeln!(
            o,
            "hotline_rtp_packets_received_total{{side=\"{side}\"}} {}",
            load(&m.rtp_received[i])
        );
    }
    head(
        &mut o,
        "hotline_rtp_packets_lost_total",
        "counter",
        "RTP sequence gaps on bridged calls.",
    );
    for (i, side) in SIDES.iter().enumerate() {
        let _ = writeln!(
            o,
            "hotline_rtp_packets_lost_total{{side=\"{side}\"}} {}",
            load(&m.rtp_lost[i])
        );
    }
    head(
        &mut o,
        "hotline_rtp_jitter_seconds",
        "histogram",
        "Interarrival jitter of each bridged side at its end (RFC 3550).",
    );
    for (i, side) in SIDES.iter().enumerate() {
        m.jitter[i].render(
            &mut o,
            "hotline_rtp_jitter_seconds",
            &format!("side=\"{side}\""),
        );
    }
    if let Some(acd) = &s.acd {
        head(
            &mut o,
            "hotline_queue_waiting",
            "gauge",
            "Callers waiting or being offered.",
        );
        for q in &acd.queues {
            let _ = writeln!(
                o,
                "hotline_queue_waiting{{queue=\"{}\"}} {}",
                label(&q.name),
                q.waiting
            );
        }
        head(
            &mut o,
            "hotline_queue_callbacks",
            "gauge",
            "Callback requests keeping a place.",
        );
        for q in &acd.queues {
            let _ = writeln!(
                o,
                "hotline_queue_callbacks{{queue=\"{}\"}} {}",
                label(&q.name),
                q.callbacks
            );
        }
        head(
            &mut o,
            "hotline_queue_longest_wait_seconds",
            "gauge",
            "The longest a caller now in the queue has waited.",
        );
        for q in &acd.queues {
            let _ = writeln!(
                o,
                "hotline_queue_longest_wait_seconds{{queue=\"{}\"}} {}",
                label(&q.name),
                q.longest_wait_ms as f64 / 1000.0
            );
        }
        head(
            &mut o,
            "hotline_queue_staffed",
            "gauge",
            "Agents logged in and reachable.",
        );
        for q in &acd.queues {
            let _ = writeln!(
                o,
                "hotline_queue_staffed{{queue=\"{}\"}} {}",
                label(&q.name),
                q.staffed
            );
        }
        head(&mut o, "hotline_agents", "gauge", "Agents by state.");
        let mut states: std::collections::BTreeMap<&str, usize> = crate::acd::AgentState::NAMES
            .into_iter()
            .map(|st| (st, 0))
            .collect();
        for a in &acd.agents {
            *states.entry(a.state).or_insert(0) += 1;
        }
        for (st, n) in states {
            let _ = writeln!(o, "hotline_agents{{state=\"{}\"}} {n}", label(st));
        }
    }
    let st = &s.store;
    let store_metrics: [(&str, &str, &str, f64); 9] = [
        (
            "hotline_store_written_total",
            "counter",
            "Call records committed.",
            st.written as f64,
        ),
        (
            "hotline_store_failed_attempts_total",
            "counter",
            "Store write attempts that failed (retried or spooled).",
            st.failed_attempts as f64,
        ),
        (
            "hotline_store_passes_total",
            "counter",
            "Record writer passes.",
            st.passes as f64,
        ),
        (
            "hotline_store_pass_seconds_total",
            "counter",
            "Time the record writer's passes took.",
            st.pass_micros as f64 / 1e6,
        ),
        (
            "hotline_store_backlog",
            "gauge",
            "Messages queued for the record writer.",
            st.backlog as f64,
        ),
        (
            "hotline_store_spooled_rows_total",
            "counter",
            "Rows spooled to disk because the database could not be written.",
            st.spooled as f64,
        ),
        (
            "hotline_store_unspooled_rows_total",
            "counter",
            "Spooled rows written to the database once it was back.",
            st.unspooled as f64,
        ),
        (
            "hotline_store_spool_rows",
            "gauge",
            "Rows waiting in the spool for the database (0 when it is healthy).",
            st.spool_pending as f64,
        ),
        (
            "hotline_recordings_active",
            "gauge",
            "Recordings being written.",
            s.recordings_active as f64,
        ),
    ];
    for (name, kind, help, value) in store_metrics {
        head(&mut o, name, kind, help);
        let _ = writeln!(o, "{name} {value}");
    }
    if let Some(media) = &s.media {
        head(
            &mut o,
            "hotline_media_thread_sockets",
            "gauge",
            "RTP sockets at home on each media thread.",
        );
        for (i, n) in media.sockets.iter().enumerate() {
            let _ = writeln!(o, "hotline_media_thread_sockets{{thread=\"{i}\"}} {n}");
        }
        head(
            &mut o,
            "hotline_media_threads_realtime",
            "gauge",
            "1 when the media threads run at real-time priority (SCHED_RR), 0 when refused or not asked for.",
        );
        let _ = writeln!(
            o,
            "hotline_media_threads_realtime {}",
            u8::from(media.realtime)
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::acd_service::QueueView;

    fn value<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn counts_render_as_prometheus_text() {
        let m = Metrics::new();
        let a = m.call_started();
        let b = m.call_started();
        drop(a);
        m.call_refused();
        m.bridge_ended(
            SideFigures {
                received: 1500,
                lost: 3,
                jitter: Duration::from_millis(4),
            },
            SideFigures {
                received: 1490,
                lost: 0,
                jitter: Duration::from_millis(30),
            },
        );
        let s = Scraped {
            acd: Some(AcdSnapshot {
                agents: Vec::new(),
                queues: vec![QueueView {
                    name: "12345".into(),
                    strategy: "longest_idle",
                    waiting: 2,
                    callbacks: 1,
                    staffed: 3,
                    longest_wait_ms: 41_500,
                }],
            }),
            store: WriterStats {
                written: 7,
                backlog: 4,
                passes: 2,
                pass_micros: 1500,
                ..Default::default()
            },
            recordings_active: 5,
            media: Some(MediaScraped {
                sockets: vec![4, 2],
                realtime: true,
            }),
        };
        let t = render(&m, &s);
        assert_eq!(
            value(&t, r#"hotline_media_thread_sockets{thread="1"}"#),
            Some("2")
        );
        assert_eq!(value(&t, "hotline_media_threads_realtime"), Some("1"));
        assert!(!render(&m, &Scraped::default()).contains("hotline_media_"));
        assert_eq!(value(&t, "hotline_calls_total"), Some("2"));
        assert_eq!(value(&t, "hotline_calls_active"), Some("1"));
        assert_eq!(value(&t, "hotline_calls_refused_total"), Some("1"));
        assert_eq!(
            value(&t, r#"hotline_rtp_packets_lost_total{side="caller"}"#),
            Some("3")
        );
        assert_eq!(
            value(&t, r#"hotline_rtp_packets_received_total{side="agent"}"#),
            Some("1490")
        );
        // 4 ms is in the 5 ms bucket (cumulative from there), 30 ms in 50 ms.
        assert_eq!(
            value(
                &t,
                r#"hotline_rtp_jitter_seconds_bucket{side="caller",le="0.002"}"#
            ),
            Some("0")
        );
        assert_eq!(
            value(
                &t,
                r#"hotline_rtp_jitter_seconds_bucket{side="caller",le="0.005"}"#
            ),
            Some("1")
        );
        assert_eq!(
            value(
                &t,
                r#"hotline_rtp_jitter_seconds_bucket{side="agent",le="0.02"}"#
            ),
            Some("0")
        );
        assert_eq!(
            value(
                &t,
                r#"hotline_rtp_jitter_seconds_bucket{side="agent",le="+Inf"}"#
            ),
            Some("1")
        );
        assert_eq!(
            value(&t, r#"hotline_rtp_jitter_seconds_sum{side="agent"}"#),
            Some("0.03")
        );
        assert_eq!(
            value(&t, r#"hotline_queue_waiting{queue="12345"}"#),
            Some("2")
        );
        assert_eq!(
            value(&t, r#"hotline_queue_longest_wait_seconds{queue="12345"}"#),
            Some("41.5")
        );
        assert_eq!(value(&t, r#"hotline_agents{state="ready"}"#), Some("0"));
        assert_eq!(value(&t, "hotline_store_backlog"), Some("4"));
        assert_eq!(
            value(&t, "hotline_store_pass_seconds_total"),
            Some("0.0015")
        );
        assert_eq!(value(&t, "hotline_recordings_active"), Some("5"));
        // Every series has its TYPE line.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(t.contains(&format!("# TYPE {base} ")), "{l}");
        }
        drop(b);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
