//! A load check of the media bridge, run by hand:
//!
//! ```text
//! cargo run --release --example bridge_load -- [pairs] [seconds] [transcoded%] [harness threads]
//! ```
//!
//! Bridges `pairs` caller/agent pairs (default 500) on 127.0.0.1 for
//! `seconds` (default 10), both directions sending a 160-byte G.711 frame
//! every 20 ms (sends spread evenly over the 20 ms), `transcoded%` of the
//! pairs (default 50) PCMU caller / PCMA agent. Prints packets sent and
//! received, loss, the forward delay percentiles (receive time at the far
//! socket minus send time, both taken in this harness, so they include the
//! harness's own scheduling), the bridges' own counters, the CPU time of the
//! bridge runtime's threads and of the harness's, and the resident memory
//! per bridged call.
//!
//! The bridges run on their own 2-thread tokio runtime (`bridge-*` threads),
//! the harness on another (`harness-*`, 1 thread unless told), so their CPU
//! time can be told apart. The harness costs about as much CPU as the
//! bridges (it too wakes once per packet); on a shared 2-core machine it
//! falls behind well before the bridges do, and then the measured delay is
//! its own backlog: check that the wall time printed is close to `seconds`.

use hotline::media::bridge::{self, BridgeConfig, BridgeHandle, Side};
use hotline::media::port_pool::RtpSocket;
use hotline::media::rtp::{self, RtpSender};
use hotline::media::session::{LegMedia, SessionConfig};
use hotline::media::Codec;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Histogram of delays in 10 µs buckets up to 100 ms.
const BUCKET_NS: u64 = 10_000;
const BUCKETS: usize = 10_000;

struct Stream {
    /// Send time (ns since `base`) of packet i, 0 if not sent.
    sent_at: Vec<AtomicU64>,
    sent: AtomicU64,
    received: AtomicU64,
}

struct Shared {
    base: Instant,
    histogram: Vec<AtomicU64>,
    max_ns: AtomicU64,
}

fn thread_cpu(prefix: &str) -> Duration {
    // utime + stime of this process's threads whose name starts with `prefix`.
    let ticks_per_s = 100; // USER_HZ on Linux
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // After "pid (comm) ": state is field 0; utime 11, stime 12.
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        ticks += utime + stime;
    }
    Duration::from_millis(ticks * 1000 / ticks_per_s)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(hist: &[u64], total: u64, p: f64) -> Duration {
    let want = ((total as f64) * p).ceil() as u64;
    let mut seen = 0;
    for (i, &n) in hist.iter().enumerate() {
        seen += n;
        if seen >= want {
            return Duration::from_nanos((i as u64 + 1) * BUCKET_NS);
        }
    }
    Duration::from_nanos(BUCKETS as u64 * BUCKET_NS)
}

async fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind")
}

/// Receives one direction's packets and records their delays.
async fn receive(socket: Arc<UdpSocket>, stream: Arc<Stream>, shared: Arc<Shared>) {
    let mut buf = [0u8; 1500];
    let mut first_seq: Option<u16> = None;
    loop {
        let Ok((n, _)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let at = shared.base.elapsed().as_nanos() as u64;
        let Ok(p) = rtp::parse(&buf[..n]) else {
            continue;
        };
        let first = *first_seq.get_or_insert(p.sequence);
        let index = usize::from(p.sequence.wrapping_sub(first));
        let Some(sent) = stream.sent_at.get(index).map(|s| s.load(Ordering::Relaxed)) else {
            continue;
        };
        if sent == 0 {
            continue;
        }
        stream.received.fetch_add(1, Ordering::Relaxed);
        let delay = at.saturating_sub(sent);
        let bucket = ((delay / BUCKET_NS) as usize).min(BUCKETS - 1);
        shared.histogram[bucket].fetch_add(1, Ordering::Relaxed);
        shared.max_ns.fetch_max(delay, Ordering::Relaxed);
    }
}

struct Direction {
    from: Arc<UdpSocket>,
    to: SocketAddr,
    sender: RtpSender,
    pt: u8,
    stream: Arc<Stream>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pairs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let transcoded: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(50);
    let packets = (seconds * 50) as usize;

    let bridges_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bridge-rt")
        .enable_all()
        .build()
        .unwrap();
    let harness_threads: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
    let harness_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(harness_threads)
        .thread_name("harness-rt")
        .enable_all()
        .build()
        .unwrap();
    let shared = Arc::new(Shared {
        base: Instant::now(),
        histogram: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        max_ns: AtomicU64::new(0),
    });

    let rss_before = rss_kib();
    // Set up: both ends' sockets in the harness, both legs in the bridge.
    let (handles, mut directions) = harness_rt.block_on(async {
        let mut handles: Vec<BridgeHandle> = Vec::new();
        let mut directions = Vec::new();
        for i in 0..pairs {
            let caller = Arc::new(bind().await);
            let agent = Arc::new(bind().await);
            let agent_codec = if i * 100 < transcoded * pairs {
                Codec::Pcma
            } else {
                Codec::Pcmu
            };
            let leg = |remote: SocketAddr, codec: Codec| async move {
                let socket = RtpSocket::unpooled(bind().await).unwrap();
                let mut cfg = SessionConfig::new(socket, Some(remote), codec);
                cfg.inband_dtmf = false;
                LegMedia::new(cfg)
            };
            let caller_leg = leg(caller.local_addr().unwrap(), Codec::Pcmu).await;
            let agent_leg = leg(agent.local_addr().unwrap(), agent_codec).await;
            let cfg = BridgeConfig::new(caller_leg, agent_leg);
            let (handle, events) = {
                let _enter = bridges_rt.enter();
                bridge::spawn(cfg)
            };
            // Nobody reads the events; the bridge never waits on them.
            std::mem::forget(events);
            for (from, to, pt) in [
                (caller.clone(), handle.local_addr(Side::Caller), 0),
                (
                    agent.clone(),
                    handle.local_addr(Side::Agent),
                    agent_codec.payload_type(),
                ),
            ] {
                let stream = Arc::new(Stream {
                    sent_at: (0..packets).map(|_| AtomicU64::new(0)).collect(),
                    sent: AtomicU64::new(0),
                    received: AtomicU64::new(0),
                });
                // The far end of this direction receives.
                let far = if Arc::ptr_eq(&from, &caller) {
                    agent.clone()
                } else {
                    caller.clone()
                };
                tokio::spawn(receive(far, stream.clone(), shared.clone()));
                directions.push(Direction {
                    from,
                    to,
                    sender: RtpSender::new(),
                    pt,
                    stream,
                });
            }
            handles.push(handle);
        }
        (handles, directions)
    });
    let setup_rss = rss_kib().saturating_sub(rss_before);

    let cpu_bridge_0 = thread_cpu("bridge-rt");
    let cpu_harness_0 = thread_cpu("harness-rt");
    let started = Instant::now();
    // Send: every millisecond one twentieth of the streams, so that each
    // stream sends every 20 ms and the load is even.
    harness_rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let payload = [0x55u8; 160];
        let mut buf = [0u8; 200];
        for round in 0..packets * 20 {
            tick.tick().await;
            let slot = round % 20;
            let index = round / 20;
            for d in directions.iter_mut().skip(slot).step_by(20) {
                let n = d.sender.write(d.pt, index == 0, &payload, &mut buf);
                d.sender.advance(160);
                let at = shared.base.elapsed().as_nanos() as u64;
                d.stream.sent_at[index].store(at.max(1), Ordering::Relaxed);
                if d.from.send_to(&buf[..n], d.to).await.is_ok() {
                    d.stream.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Let the last packets arrive.
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let wall = started.elapsed();
    let cpu_bridge = thread_cpu("bridge-rt") - cpu_bridge_0;
    let cpu_harness = thread_cpu("harness-rt") - cpu_harness_0;

    let stats = bridges_rt.block_on(async {
        let mut total = (0u64, 0u64, 0u64, 0u64, Duration::ZERO);
        for h in &handles {
            let s = h.stats().await.unwrap();
            for side in [s.caller, s.agent] {
                total.0 += side.received;
                total.1 += side.forwarded;
                total.2 += side.dropped;
                total.3 += side.stream.seq_gaps;
                total.4 = total.4.max(side.max_forward_delay);
            }
        }
        total
    });

    let sent: u64 = directions
        .iter()
        .map(|d| d.stream.sent.load(Ordering::Relaxed))
        .sum();
    let received: u64 = directions
        .iter()
        .map(|d| d.stream.received.load(Ordering::Relaxed))
        .sum();
    let hist: Vec<u64> = shared
        .histogram
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    println!(
        "pairs {pairs}, {seconds} s ({:.1} s wall), {}% transcoded PCMU<->PCMA",
        wall.as_secs_f64(),
        transcoded
    );
    println!(
        "harness: sent {sent}, received {received}, lost {} ({:.4}%)",
        sent.saturating_sub(received),
        100.0 * sent.saturating_sub(received) as f64 / sent.max(1) as f64
    );
    println!(
        "forward delay (harness send -> far socket receive): p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        percentile(&hist, received, 0.50),
        percentile(&hist, received, 0.99),
        percentile(&hist, received, 0.999),
        Duration::from_nanos(shared.max_ns.load(Ordering::Relaxed)),
    );
    println!(
        "bridges: received {}, forwarded {}, dropped {}, seq gaps {}, max in-task delay {:?}",
        stats.0, stats.1, stats.2, stats.3, stats.4
    );
    println!(
        "CPU: bridge runtime {:.2} s ({:.1}% of one core), harness {:.2} s; process total {:.2} s",
        cpu_bridge.as_secs_f64(),
        100.0 * cpu_bridge.as_secs_f64() / wall.as_secs_f64(),
        cpu_harness.as_secs_f64(),
        thread_cpu("").as_secs_f64()
    );
    println!(
        "memory: RSS +{setup_rss} KiB for {pairs} pairs ({:.1} KiB per bridged call, harness sockets and send-time tables included)",
        setup_rss as f64 / pairs as f64
    );
    drop(handles);
}
