//! The media bridge: RTP relayed between a caller's leg and an agent's leg
//! through the daemon (the B2BUA's media path once an agent answers).
//!
//! [`spawn`] takes both legs' [`LegMedia`] (from [`MediaHandle::detach`] or
//! [`LegMedia::new`]) and starts **one task owning both sockets**. It wakes
//! when a socket is readable and forwards each packet as it arrives (no
//! 20 ms tick on the relay path, which would add up to 20 ms of delay): parse,
//! latch, map the header ([`OutStream`]), transcode the payload if needed,
//! one non-blocking `sendto` — no allocation, no lock, no `.await` per packet. A 20 ms
//! tick runs only while a side is fed generated audio (hold music, a
//! prompt). [`BridgeHandle::end`] stops the task and hands both legs back,
//! to be resumed as sessions ([`resume`]) with their stream continuing.
//!
//! What is relayed, from side A to side B:
//! - **Audio** (A's negotiated payload type): sent with B's audio payload
//!   type; PCMU<->PCMA transcoded byte by byte through a 256-entry table
//!   ([`g711::transcode_table`]) when the two sides negotiated different
//!   codecs. The header is written anew (12 bytes: CSRCs, header extensions
//!   and padding of the incoming packet are not carried over): B's own SSRC,
//!   sequence number and timestamp mapped by offset (see [`super::relay`]
//!   for the rules: RFC 3550 §5.1, RFC 3551 §4.1, RFC 7667 §3.6.2), the
//!   incoming marker bit kept, and set at every discontinuity.
//! - **RFC 4733 telephone-events**: forwarded with B's negotiated
//!   telephone-event payload type, sequence number and timestamp mapped like
//!   audio (all packets of an event keep the event's start timestamp, end
//!   retransmissions are forwarded as they come, RFC 4733 §2.5.1), payload
//!   untouched. If B negotiated no telephone-event they are not forwarded
//!   (B hears nothing of the digit unless A also left it in-band). Digits are
//!   reported either way ([`BridgeEvent::Digit`], once per event, by the
//!   leg's [`Rfc4733Receiver`]); in-band detection runs only if the leg had
//!   it on, and stops once the leg sends RFC 4733, as in the session.
//! - **Comfort noise** (PT 13, RFC 3389) is dropped: the other side may not
//!   have negotiated it, and with G.711 a gap in the stream is heard as
//!   silence; the next talkspurt starts with A's marker bit anyway.
//! - Anything else (other payload types, other streams, RTCP) is dropped.
//!
//! Hold ([`BridgeHandle::set_hold`], or `set_remote(side, None)` for the old
//! `c=0.0.0.0` hold): when A holds, nothing is sent to A, A's audio is not
//! relayed, and B hears the hold music (looped from the start on each hold;
//! silence frames if there is none) at 20 ms. On resume relaying starts
//! again, the first packet to each side with the marker bit. While either
//! side holds, neither side's RTP timeout runs (the held side answered
//! `recvonly`/`inactive` and may send nothing); it restarts from the resume.
//!
//! A prompt to one side ([`BridgeHandle::play`]) replaces what that side
//! hears (relayed audio or hold music) while it plays; then
//! [`BridgeEvent::PlaybackDone`].
//!
//! Live monitoring's whisper and barge ([`BridgeControl::add_voice`]): a
//! supervisor's voice is added (decoded, summed with saturation, encoded
//! again) to the audio relayed to the agent, or to both sides; see
//! [`super::voice_mix`]. Taps see what each side sent, without it.
//!
//! Symmetric RTP latching per side, exactly as in the session
//! ([`SymmetricLatch`]); packets of other streams are ignored.
//!
//! # Cost per bridged call
//! Per relayed packet: one `recvmmsg` (which also tells the socket is empty:
//! no `EAGAIN` read per wake-up, [`super::udp_batch`]), one `sendto`, two
//! reads of the clock (for the delay statistic) and a 160-byte copy or
//! table lookup; the task wakes once per readable socket (a burst of
//! packets is read in batches of four). Measured at 1,000 bridged calls
//! (100k packets/s in, SIPp on loopback): 2.0 system calls per relayed
//! packet (2.8 with `recvfrom` until `EAGAIN`), and some 80 % of the
//! daemon's CPU time is then the kernel's (loopback delivery and waking the
//! receiver). State: 6 KiB of receive buffers and 1,500 bytes to send from,
//! and two legs' state (latch, DTMF receivers, players, counters); a few
//! KiB per call, plus the sockets' kernel buffers. The tap, when attached,
//! copies each received audio payload into `Bytes` (one allocation per
//! frame, as in the session), as the recorder needs an owned frame.

use super::dtmf::inband::InbandDetector;
use super::dtmf::rfc4733::Rfc4733Receiver;
use super::dtmf::DtmfSource;
use super::events::Outbox;
use super::jitter::Jitter;
use super::latch::{SymmetricLatch, Verdict};
use super::media_threads::Spawner;
use super::player::Player;
use super::port_pool::RtpSocket;
use super::prompts::Prompt;
use super::relay::{OutStream, StreamStats};
use super::session::{
    detect_inband, tap_frame, LegMedia, ReceivedFrame, SessionClosed, FRAME_DURATION,
    PT_COMFORT_NOISE, RECV_BUF,
};
#[cfg(doc)]
use super::session::{resume, MediaHandle};
use super::tap::{TapEvent, Taps};
use super::udp_batch::RecvBatch;
use super::voice_mix::{Voice, Voices};
use super::{g711, rtp, Codec, FRAME_SAMPLES};
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

/// Capacity of the event channel to the call task.
pub const EVENT_CAPACITY: usize = 32;
/// Capacity of the command channel from the [`BridgeHandle`].
const COMMAND_CAPACITY: usize = 16;
/// At most this many datagrams are read from one socket per wake-up, so a
/// flood on one side cannot starve the other.
const MAX_READS_PER_WAKE: usize = 32;
/// How far ahead the timeout timer is set when no timeout runs.
const NO_TIMEOUT: Duration = Duration::from_secs(3600);

/// One of the two bridged legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Caller,
    Agent,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Agent,
            Side::Agent => Side::Caller,
        }
    }

    /// 0 for the caller, 1 for the agent: the index of per-side arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Side::Caller => 0,
            Side::Agent => 1,
        }
    }

    const BOTH: [Side; 2] = [Side::Caller, Side::Agent];
}

/// What the bridge task needs.
#[derive(Debug)]
pub struct BridgeConfig {
    pub caller: LegMedia,
    pub agent: LegMedia,
    /// What a side hears while the other holds (looped); `None`: silence.
    pub hold_music: Option<Arc<Prompt>>,
    /// RTP inactivity timeout for both sides while bridged; `None`: each
    /// leg's own (`SessionConfig::rtp_timeout`). The legs keep their own
    /// when handed back.
    pub rtp_timeout: Option<Duration>,
}

impl BridgeConfig {
    /// Both legs, no hold music, each leg's own RTP timeout.
    pub fn new(caller: LegMedia, agent: LegMedia) -> Self {
        BridgeConfig {
            caller,
            agent,
            hold_music: None,
            rtp_timeout: None,
        }
    }
}

/// What the bridge reports to the call task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEvent {
    /// `side` sent a digit (it is also forwarded, see the module docs).
    Digit {
        side: Side,
        digit: char,
        source: DtmfSource,
    },
    /// No RTP from `side` for its timeout while no side holds (once,
    /// re-armed when RTP flows again).
    RtpTimeout { side: Side },
    /// Frames to `side` now go to this address.
    RemoteLatched { side: Side, addr: SocketAddr },
    /// The prompt list played to `side` with `id` has been sent to the end.
    PlaybackDone { side: Side, id: u64 },
}

/// Counters for the packets one side sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideStats {
    /// Packets accepted from this side (its latched stream, a negotiated
    /// payload type), whether forwarded or not.
    pub received: u64,
    /// Of them, sent on to the other side.
    pub forwarded: u64,
    /// Of them, not sent on (hold, a prompt or hold music playing to the
    /// other side, comfort noise, no telephone-event on the other side,
    /// stale, a send error).
    pub dropped: u64,
    /// Sequence numbers skipped (lost, unless they came late), reordered
    /// packets, stale ones, among those that reached the relay.
    pub stream: StreamStats,
    /// The longest time from a packet's receipt to its forwarding.
    pub max_forward_delay: Duration,
    /// Audio packets a full tap (the recorder) could not take.
    pub tap_dropped: u64,
    /// The interarrival jitter of this side's audio (RFC 3550 §6.4.1), now.
    pub jitter: Duration,
}

/// Both sides' counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    pub caller: SideStats,
    pub agent: SideStats,
}

impl BridgeStats {
    pub fn side(&self, side: Side) -> &SideStats {
        match side {
            Side::Caller => &self.caller,
            Side::Agent => &self.agent,
        }
    }
}

#[derive(Debug)]
enum Command {
    SetHold(Side, bool),
    SetRemote(Side, Option<SocketAddr>),
    SetTap(Side, Option<mpsc::Sender<ReceivedFrame>>),
    AddTap(mpsc::Sender<TapEvent>),
    AddVoice(Voice),
    Play {
        side: Side,
        id: u64,
        prompts: Vec<Arc<Prompt>>,
    },
    Stats(oneshot::Sender<BridgeStats>),
    End(oneshot::Sender<(LegMedia, LegMedia)>),
}

/// A clonable control of a bridge for others than the call task that owns
/// it (live monitoring, the recording API): it cannot end the bridge.
#[derive(Debug, Clone)]
pub struct BridgeControl {
    commands: mpsc::Sender<Command>,
}

impl BridgeControl {
    /// See [`BridgeHandle::add_tap`].
    pub async fn add_tap(&self, tap: mpsc::Sender<TapEvent>) -> Result<(), SessionClosed> {
        self.commands
            .send(Command::AddTap(tap))
            .await
            .map_err(|_| SessionClosed)
    }

    /// Mixes a third party's voice into the audio relayed to the side(s)
    /// it is for ([`super::voice_mix`]), until its sender is dropped.
    pub async fn add_voice(&self, voice: Voice) -> Result<(), SessionClosed> {
        self.commands
            .send(Command::AddVoice(voice))
            .await
            .map_err(|_| SessionClosed)
    }
}

/// Controls one bridge task. Dropping it ends the task and closes both
/// legs' sockets; [`BridgeHandle::end`] hands the legs back instead.
#[derive(Debug)]
pub struct BridgeHandle {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    local_addrs: [SocketAddr; 2],
    spawner: Spawner,
}

impl BridgeHandle {
    /// Spawns at the bridge's thread (its recorder goes there).
    pub fn spawner(&self) -> &Spawner {
        &self.spawner
    }

    /// A control others may hold while this bridge runs.
    pub fn control(&self) -> BridgeControl {
        BridgeControl {
            commands: self.commands.clone(),
        }
    }

    /// Our RTP address on `side`'s leg.
    pub fn local_addr(&self, side: Side) -> SocketAddr {
        self.local_addrs[side.index()]
    }

    /// `side` put the call on hold (its re-INVITE says sendonly/inactive)
    /// or resumed it: while held nothing is sent to `side`, and the other
    /// side hears hold music instead of `side`'s audio.
    pub async fn set_hold(&self, side: Side, held: bool) -> Result<(), SessionClosed> {
        self.send(Command::SetHold(side, held)).await
    }

    /// A new remote address for `side` from a re-INVITE; `None` for hold
    /// with `0.0.0.0` (as [`set_hold`](Self::set_hold)). A different
    /// address drops the latch.
    pub async fn set_remote(
        &self,
        side: Side,
        remote: Option<SocketAddr>,
    ) -> Result<(), SessionClosed> {
        self.send(Command::SetRemote(side, remote)).await
    }

    /// Attaches (or detaches) the receiver of the audio frames `side`
    /// sends, in `side`'s codec (before any transcoding).
    pub async fn set_tap(
        &self,
        side: Side,
        tap: Option<mpsc::Sender<ReceivedFrame>>,
    ) -> Result<(), SessionClosed> {
        self.send(Command::SetTap(side, tap)).await
    }

    /// Attaches a tap that receives both sides' audio and their holds
    /// ([`TapEvent`]), until it is closed. The bridge never waits for it.
    pub async fn add_tap(&self, tap: mpsc::Sender<TapEvent>) -> Result<(), SessionClosed> {
        self.send(Command::AddTap(tap)).await
    }

    /// Plays `prompts` to `side` only, replacing what it hears while they
    /// play (and a list already playing to it); then
    /// [`BridgeEvent::PlaybackDone`].
    pub async fn play(
        &self,
        side: Side,
        id: u64,
        prompts: Vec<Arc<Prompt>>,
    ) -> Result<(), SessionClosed> {
        self.send(Command::Play { side, id, prompts }).await
    }

    /// The counters so far.
    pub async fn stats(&self) -> Result<BridgeStats, SessionClosed> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx)).await?;
        rx.await.map_err(|_| SessionClosed)
    }

    /// Stops the bridge and hands back (caller, agent), each leg's stream
    /// positioned after the last packet sent to it, ready for [`resume`].
    pub async fn end(self) -> Result<(LegMedia, LegMedia), SessionClosed> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::End(tx)).await?;
        let legs = rx.await.map_err(|_| SessionClosed)?;
        let _ = self.task.await;
        Ok(legs)
    }

    async fn send(&self, c: Command) -> Result<(), SessionClosed> {
        self.commands.send(c).await.map_err(|_| SessionClosed)
    }
}

/// Starts the bridge task for two legs.
pub fn spawn(cfg: BridgeConfig) -> (BridgeHandle, mpsc::Receiver<BridgeEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_CAPACITY);
    let now = Instant::now();
    let (caller_socket, caller) = Leg::new(cfg.caller, cfg.rtp_timeout, now);
    let (agent_socket, agent) = Leg::new(cfg.agent, cfg.rtp_timeout, now);
    // One thread owns both sockets (see super::media_threads).
    let agent_socket = agent_socket.rehome(caller_socket.home());
    let spawner = caller_socket.home().spawner();
    let sockets = [caller_socket, agent_socket];
    let local_addrs = [sockets[0].local_addr(), sockets[1].local_addr()];
    let bridge = Bridge {
        legs: [caller, agent],
        hold_music: cfg.hold_music,
        events: Outbox::new(ev_tx),
        rx_batch: RecvBatch::new(RECV_BUF),
        tx_buf: vec![0; RECV_BUF].into_boxed_slice(),
        pcm: Vec::with_capacity(RECV_BUF),
        rearm_timeouts: false,
        taps: Taps::default(),
        voices: Voices::default(),
    };
    let task = spawner.spawn(bridge.run(sockets, cmd_rx));
    (
        BridgeHandle {
            commands: cmd_tx,
            task,
            local_addrs,
            spawner,
        },
        ev_rx,
    )
}

/// One leg's state inside the bridge (its socket lives beside it).
#[derive(Debug)]
struct Leg {
    codec: Codec,
    audio_pt: u8,
    dtmf_pt: Option<u8>,
    inband: Option<InbandDetector>,
    /// The leg's own timeout, handed back at the end.
    own_timeout: Duration,
    rtp_timeout: Duration,
    tap: Option<mpsc::Sender<ReceivedFrame>>,
    held: bool,
    sdp_remote: Option<SocketAddr>,
    latch: SymmetricLatch,
    rfc4733: Rfc4733Receiver,
    /// The stream sent to this leg.
    out: OutStream,
    /// A prompt to this leg.
    player: Player,
    /// Hold music to this leg (while the other side holds).
    music: Player,
    silence: [u8; FRAME_SAMPLES],
    last_rx: Instant,
    timed_out: bool,
    /// Counters of the packets this leg sent.
    stats: SideStats,
    /// The jitter of its audio.
    jitter: Jitter,
}

impl Leg {
    fn new(leg: LegMedia, timeout: Option<Duration>, now: Instant) -> (RtpSocket, Leg) {
        let state = Leg {
            codec: leg.codec,
            audio_pt: leg.audio_pt,
            dtmf_pt: leg.dtmf_pt,
            inband: leg.inband_dtmf.then(InbandDetector::new),
            own_timeout: leg.rtp_timeout,
            rtp_timeout: timeout.unwrap_or(leg.rtp_timeout),
            tap: leg.tap,
            held: leg.held,
            sdp_remote: leg.sdp_remote,
            latch: leg.latch,
            rfc4733: leg.rfc4733,
            out: OutStream::new(leg.sender, leg.clock_at),
            player: Player::new(),
            music: Player::new(),
            silence: [g711::silence_byte(leg.codec); FRAME_SAMPLES],
            last_rx: now,
            timed_out: false,
            stats: SideStats::default(),
            jitter: Jitter::new(),
        };
        (leg.socket, state)
    }

    /// This side holds: nothing is sent to it, its audio is not relayed.
    fn holding(&self) -> bool {
        self.held || self.sdp_remote.is_none()
    }

    fn into_leg(self, socket: RtpSocket, now: Instant) -> LegMedia {
        LegMedia {
            socket,
            codec: self.codec,
            audio_pt: self.audio_pt,
            dtmf_pt: self.dtmf_pt,
            inband_dtmf: self.inband.is_some(),
            rtp_timeout: self.own_timeout,
            tap: self.tap,
            held: self.held,
            sdp_remote: self.sdp_remote,
            latch: self.latch,
            rfc4733: self.rfc4733,
            sender: self.out.finish(now),
            clock_at: now,
        }
    }
}

struct Bridge {
    legs: [Leg; 2],
    hold_music: Option<Arc<Prompt>>,
    events: Outbox<BridgeEvent>,
    rx_batch: RecvBatch,
    tx_buf: Box<[u8]>,
    pcm: Vec<i16>,
    /// A timed-out side sent RTP again: the timeout timer must be re-armed.
    rearm_timeouts: bool,
    /// The recorder's (and monitors') taps on both sides.
    taps: Taps,
    /// Monitors' voices mixed into what is relayed (whisper, barge).
    voices: Voices,
}

/// Sends one datagram at once, without waiting: one non-blocking `sendto`.
/// Not tokio's `try_send_to`, which fails without trying while the reactor
/// has not yet reported the socket writable (the first packets on a fresh
/// socket would be lost); a full socket buffer still fails (`WouldBlock`).
fn send_now(socket: &RtpSocket, datagram: &[u8], dest: SocketAddr) -> io::Result<usize> {
    socket2::SockRef::from(socket.socket()).send_to(datagram, &dest.into())
}

/// Waits for the generation tick, if there is one.
async fn next_tick(tick: &mut Option<Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Bridge {
    async fn run(mut self, sockets: [RtpSocket; 2], mut commands: mpsc::Receiver<Command>) {
        let mut tick: Option<Interval> = None;
        let mut deadline: Pin<Box<Sleep>> =
            Box::pin(tokio::time::sleep_until(self.next_deadline()));
        let ending = loop {
            if self.events.has_pending() {
                self.events.flush();
            }
            // The tick runs only while a side is fed generated audio; the
            // first one fires at once.
            match (tick.is_some(), self.generating_any()) {
                (false, true) => {
                    let mut t = tokio::time::interval(FRAME_DURATION);
                    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    tick = Some(t);
                }
                (true, false) => tick = None,
                _ => {}
            }
            tokio::select! {
                command = commands.recv() => match command {
                    None => break None,
                    Some(Command::End(reply)) => break Some(reply),
                    Some(c) => {
                        self.on_command(c);
                        deadline.as_mut().reset(self.next_deadline());
                    }
                },
                _ = next_tick(&mut tick) => self.on_tick(&sockets),
                r = sockets[0].socket().readable() => if r.is_ok() {
                    self.drain(Side::Caller, &sockets);
                },
                r = sockets[1].socket().readable() => if r.is_ok() {
                    self.drain(Side::Agent, &sockets);
                },
                _ = &mut deadline => {
                    self.check_timeouts(Instant::now());
                    deadline.as_mut().reset(self.next_deadline());
                }
            }
            if self.rearm_timeouts {
                self.rearm_timeouts = false;
                deadline.as_mut().reset(self.next_deadline());
            }
        };
        if let Some(reply) = ending {
            let now = Instant::now();
            let [caller_socket, agent_socket] = sockets;
            let [caller, agent] = self.legs;
            let _ = reply.send((
                caller.into_leg(caller_socket, now),
                agent.into_leg(agent_socket, now),
            ));
        }
    }

    fn leg(&self, side: Side) -> &Leg {
        &self.legs[side.index()]
    }

    fn leg_mut(&mut self, side: Side) -> &mut Leg {
        &mut self.legs[side.index()]
    }

    /// (from, to): the leg `from` and the other one.
    fn pair_mut(&mut self, from: Side) -> (&mut Leg, &mut Leg) {
        let [caller, agent] = &mut self.legs;
        match from {
            Side::Caller => (caller, agent),
            Side::Agent => (agent, caller),
        }
    }

    /// Is `side` fed generated audio (a prompt, or hold music because the
    /// other side holds) rather than relayed audio?
    fn generating(&self, side: Side) -> bool {
        let leg = self.leg(side);
        !leg.holding() && (leg.player.is_playing() || self.leg(side.other()).holding())
    }

    fn generating_any(&self) -> bool {
        Side::BOTH.iter().any(|&s| self.generating(s))
    }

    fn timeouts_run(&self) -> bool {
        !self.legs.iter().any(Leg::holding)
    }

    fn on_command(&mut self, command: Command) {
        let holding_before = [self.legs[0].holding(), self.legs[1].holding()];
        match command {
            Command::SetHold(side, held) => self.leg_mut(side).held = held,
            Command::SetRemote(side, remote) => {
                let leg = self.leg_mut(side);
                if remote != leg.sdp_remote {
                    leg.latch.reset();
                }
                leg.sdp_remote = remote;
            }
            Command::SetTap(side, tap) => self.leg_mut(side).tap = tap,
            Command::AddTap(tap) => {
                self.taps.add(tap);
                // The tap learns who holds already.
                let at = Instant::now();
                for side in Side::BOTH {
                    if self.leg(side).holding() {
                        self.taps.send(TapEvent::Hold {
                            side,
                            held: true,
                            at,
                        });
                    }
                }
            }
            Command::AddVoice(voice) => self.voices.add(voice),
            Command::Play { side, id, prompts } => {
                let leg = self.leg_mut(side);
                leg.player.start(id, prompts, leg.codec);
                if !leg.player.is_playing() {
                    self.events.emit(BridgeEvent::PlaybackDone { side, id });
                }
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
            Command::End(_) => {}
        }
        self.on_hold_change(holding_before);
    }

    /// Applies hold transitions: the holder's stream is interrupted (its
    /// next packet after the resume gets the marker), the other side's hold
    /// music starts or stops, and timeouts restart from a resume.
    fn on_hold_change(&mut self, before: [bool; 2]) {
        let now = Instant::now();
        let ran = !before.iter().any(|&h| h);
        for side in Side::BOTH {
            let holding = self.leg(side).holding();
            if holding == before[side.index()] {
                continue;
            }
            if !self.taps.is_empty() {
                self.taps.send(TapEvent::Hold {
                    side,
                    held: holding,
                    at: now,
                });
            }
            let music = self.hold_music.clone();
            let (holder, other) = self.pair_mut(side);
            if holding {
                holder.out.interrupt();
                match music {
                    Some(m) => other.music.start_looped(vec![m], other.codec),
                    None => other.music.stop(),
                }
            } else {
                other.music.stop();
            }
        }
        if !ran && self.timeouts_run() {
            for leg in &mut self.legs {
                leg.last_rx = now;
                leg.timed_out = false;
            }
        }
    }

    fn stats(&self) -> BridgeStats {
        let side = |s: Side| SideStats {
            // The mapping of `s`'s packets lives in the stream to the other.
            stream: self.leg(s.other()).out.stats(),
            jitter: self.leg(s).jitter.value(),
            ..self.leg(s).stats
        };
        BridgeStats {
            caller: side(Side::Caller),
            agent: side(Side::Agent),
        }
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + NO_TIMEOUT;
        if !self.timeouts_run() {
            return far;
        }
        self.legs
            .iter()
            .filter(|l| !l.timed_out)
            .map(|l| l.last_rx + l.rtp_timeout)
            .min()
            .unwrap_or(far)
    }

    fn check_timeouts(&mut self, now: Instant) {
        if !self.timeouts_run() {
            return;
        }
        for side in Side::BOTH {
            let leg = self.leg_mut(side);
            if !leg.timed_out && now - leg.last_rx >= leg.rtp_timeout {
                leg.timed_out = true;
                self.events.emit(BridgeEvent::RtpTimeout { side });
            }
        }
    }

    /// Reads what has arrived on `side`'s socket, forwarding as it goes:
    /// a batch per system call, until the socket says it is empty (no extra
    /// `EAGAIN` read per wake-up; see [`super::udp_batch`]).
    fn drain(&mut self, side: Side, sockets: &[RtpSocket; 2]) {
        // Moved out (no allocation) so the packets can borrow it.
        let mut batch = std::mem::replace(&mut self.rx_batch, RecvBatch::new(0));
        batch.drain(
            sockets[side.index()].socket(),
            MAX_READS_PER_WAKE,
            |datagram, src, now| self.on_datagram(side, datagram, src, now, sockets),
        );
        self.rx_batch = batch;
    }

    fn on_datagram(
        &mut self,
        from: Side,
        datagram: &[u8],
        src: SocketAddr,
        now: Instant,
        sockets: &[RtpSocket; 2],
    ) {
        let Ok(packet) = rtp::parse(datagram) else {
            return;
        };
        let to = from.other();
        let generating_to = self.generating(to);
        let Bridge {
            legs,
            events,
            tx_buf,
            pcm,
            rearm_timeouts,
            taps,
            voices,
            ..
        } = self;
        let [caller, agent] = legs;
        let (a, b) = match from {
            Side::Caller => (caller, agent),
            Side::Agent => (agent, caller),
        };
        let pt = packet.payload_type;
        let audio = pt == a.audio_pt;
        let dtmf = Some(pt) == a.dtmf_pt;
        match a
            .latch
            .on_packet(src, packet.ssrc, audio || dtmf || pt == PT_COMFORT_NOISE)
        {
            Verdict::Ignore => return,
            Verdict::Latched(addr) => events.emit(BridgeEvent::RemoteLatched { side: from, addr }),
            Verdict::Accept => {}
        }
        if a.timed_out {
            *rearm_timeouts = true;
        }
        a.last_rx = now;
        a.timed_out = false;
        a.stats.received += 1;

        if dtmf {
            // As in the session: a leg that sends RFC 4733 may leave the
            // tone in the audio too; stop listening in-band.
            a.inband = None;
            if let Some(digit) =
                a.rfc4733
                    .on_rtp(packet.ssrc, packet.timestamp, packet.marker, packet.payload)
            {
                events.emit(BridgeEvent::Digit {
                    side: from,
                    digit,
                    source: DtmfSource::Rfc4733,
                });
            }
        } else if audio {
            a.jitter.on_packet(now, packet.ssrc, packet.timestamp);
            tap_frame(&mut a.tap, &packet);
            if !taps.is_empty() {
                a.stats.tap_dropped += taps.send(TapEvent::Audio {
                    side: from,
                    at: now,
                    codec: a.codec,
                    ssrc: packet.ssrc,
                    timestamp: packet.timestamp,
                    payload: Bytes::copy_from_slice(packet.payload),
                });
            }
            if let Some(detector) = &mut a.inband {
                if let Some(digit) = detect_inband(detector, a.codec, pcm, packet.payload) {
                    events.emit(BridgeEvent::Digit {
                        side: from,
                        digit,
                        source: DtmfSource::Inband,
                    });
                }
            }
        }

        // Forward to the other side?
        let out_pt = match (audio, dtmf, b.dtmf_pt) {
            (true, _, _) => Some(b.audio_pt),
            (false, true, Some(pt)) => Some(pt),
            _ => None,
        };
        let destination = b.latch.destination(b.sdp_remote);
        let (Some(out_pt), Some(dest), false, false, false) =
            (out_pt, destination, a.holding(), b.holding(), generating_to)
        else {
            a.stats.dropped += 1;
            return;
        };
        let samples = audio.then_some(packet.payload.len() as u32);
        let Some(fwd) = b
            .out
            .relay(now, packet.ssrc, packet.sequence, packet.timestamp, samples)
        else {
            a.stats.dropped += 1;
            return;
        };
        let n = rtp::HEADER_LEN + packet.payload.len();
        b.out.sender().write_header_at(
            out_pt,
            fwd.marker || packet.marker,
            fwd.seq,
            fwd.timestamp,
            tx_buf,
        );
        let body = &mut tx_buf[rtp::HEADER_LEN..n];
        if audio && a.codec != b.codec {
            let table = g711::transcode_table(a.codec, b.codec);
            for (out, &code) in body.iter_mut().zip(packet.payload) {
                *out = table[usize::from(code)];
            }
        } else {
            body.copy_from_slice(packet.payload);
        }
        if audio && !voices.is_empty() {
            voices.pull();
            voices.mix_into(to, b.codec, body, pcm);
        }
        match send_now(&sockets[to.index()], &tx_buf[..n], dest) {
            Ok(_) => {
                a.stats.forwarded += 1;
                let delay = Instant::now() - now;
                if delay > a.stats.max_forward_delay {
                    a.stats.max_forward_delay = delay;
                }
            }
            // A full socket buffer or no route: the network's loss.
            Err(_) => a.stats.dropped += 1,
        }
    }

    /// Sends the next generated frame to each side that is fed one.
    fn on_tick(&mut self, sockets: &[RtpSocket; 2]) {
        let now = Instant::now();
        for side in Side::BOTH {
            if !self.generating(side) {
                continue;
            }
            let Bridge {
                legs,
                events,
                tx_buf,
                ..
            } = self;
            let leg = &mut legs[side.index()];
            let prompt = leg.player.is_playing();
            let frame = if prompt {
                leg.player.next_frame(leg.codec)
            } else {
                leg.music.next_frame(leg.codec)
            };
            let frame = frame.unwrap_or(&leg.silence);
            let n = leg.out.generate(now, leg.audio_pt, frame, tx_buf);
            if let Some(dest) = leg.latch.destination(leg.sdp_remote) {
                // A send error is the network's loss; the stream goes on.
                let _ = send_now(&sockets[side.index()], &tx_buf[..n], dest);
            }
            if prompt {
                leg.player.skip_finished(leg.codec);
                if !leg.player.is_playing() {
                    events.emit(BridgeEvent::PlaybackDone {
                        side,
                        id: leg.player.id,
                    });
                }
            } else {
                leg.music.skip_finished(leg.codec);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::session::{self, SessionConfig};
    use crate::media::testutil::{prompt, Peer};
    use tokio::net::UdpSocket;
    use tokio::time::timeout;

    const CALLER_SSRC: u32 = 0x1111_1111;
    const AGENT_SSRC: u32 = 0x2222_2222;

    async fn socket() -> RtpSocket {
        RtpSocket::unpooled(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap()
    }

    /// A leg towards `remote` (PCMU unless tweaked) whose stream is `ssrc`,
    /// starting at sequence 1000, timestamp 100,000.
    async fn leg(
        remote: SocketAddr,
        ssrc: u32,
        tweak: impl FnOnce(&mut SessionConfig),
    ) -> LegMedia {
        let mut cfg = SessionConfig::new(socket().await, Some(remote), Codec::Pcmu);
        cfg.inband_dtmf = false;
        tweak(&mut cfg);
        LegMedia::with_sender(cfg, rtp::RtpSender::with_initial(ssrc, 1000, 100_000))
    }

    fn pcma(c: &mut SessionConfig) {
        c.codec = Codec::Pcma;
        c.audio_pt = 8;
    }

    /// The caller's and the agent's softphones, and the bridge between them.
    struct Setup {
        caller: Peer,
        agent: Peer,
        bridge: BridgeHandle,
        events: mpsc::Receiver<BridgeEvent>,
    }

    impl Setup {
        async fn new(
            caller_tweak: impl FnOnce(&mut SessionConfig),
            agent_tweak: impl FnOnce(&mut SessionConfig),
            bridge_tweak: impl FnOnce(&mut BridgeConfig),
        ) -> Setup {
            let caller = Peer::new().await;
            let agent = Peer::new().await;
            let mut cfg = BridgeConfig::new(
                leg(caller.addr(), CALLER_SSRC, caller_tweak).await,
                leg(agent.addr(), AGENT_SSRC, agent_tweak).await,
            );
            bridge_tweak(&mut cfg);
            let (bridge, events) = spawn(cfg);
            Setup {
                caller,
                agent,
                bridge,
                events,
            }
        }

        async fn plain() -> Setup {
            Self::new(|_| {}, |_| {}, |_| {}).await
        }

        /// Our address on the caller's leg (where the caller sends).
        fn caller_leg(&self) -> SocketAddr {
            self.bridge.local_addr(Side::Caller)
        }

        fn agent_leg(&self) -> SocketAddr {
            self.bridge.local_addr(Side::Agent)
        }

        async fn next_event(&mut self) -> BridgeEvent {
            timeout(Duration::from_secs(120), self.events.recv())
                .await
                .expect("no event")
                .expect("event channel closed")
        }

        fn no_event(&mut self) {
            assert_eq!(self.events.try_recv().ok(), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn relays_both_ways_with_each_legs_ssrc_and_mapped_seq_and_ts() {
        let mut s = Setup::plain().await;
        let mut caller = rtp::RtpSender::with_initial(0xC0C0, 65_534, 7_000);
        let mut agent = rtp::RtpSender::with_initial(0xA0A0, 20, 900);

        // Caller → agent: the agent sees the agent leg's stream.
        let mut got = Vec::new();
        for i in 0..4u8 {
            if i == 2 {
                // One packet lost on the way in: the gap shows on the way out.
                caller.write(0, false, &[0; 1], &mut [0; 13]);
                caller.advance(FRAME_SAMPLES as u32);
                continue;
            }
            s.caller
                .send_payload(s.caller_leg(), &mut caller, 0, i == 0, &[i; FRAME_SAMPLES])
                .await;
            got.push(s.agent.recv().await);
        }
        assert_eq!(
            s.next_event().await,
            BridgeEvent::RemoteLatched {
                side: Side::Caller,
                addr: s.caller.addr()
            }
        );
        let heads: Vec<_> = got.iter().map(|p| (p.0, p.1, p.2, p.3, p.4)).collect();
        assert_eq!(
            heads,
            vec![
                (true, 0, 1000, 100_000, AGENT_SSRC),
                (false, 0, 1001, 100_160, AGENT_SSRC),
                (false, 0, 1003, 100_480, AGENT_SSRC),
            ]
        );
        assert_eq!(got[2].5, vec![3; FRAME_SAMPLES]);

        // Agent → caller: the caller sees the caller leg's stream.
        for i in 0..3u8 {
            s.agent
                .send_payload(s.agent_leg(), &mut agent, 0, false, &[i; FRAME_SAMPLES])
                .await;
            let (marker, pt, seq, ts, ssrc, payload) = s.caller.recv().await;
            assert_eq!((marker, pt, ssrc), (i == 0, 0, CALLER_SSRC));
            assert_eq!(seq, 1000 + u16::from(i));
            assert_eq!(ts, 100_000 + 160 * u32::from(i));
            assert_eq!(payload, vec![i; FRAME_SAMPLES]);
        }
        let stats = s.bridge.stats().await.unwrap();
        assert_eq!(
            (
                stats.caller.received,
                stats.caller.forwarded,
                stats.caller.dropped
            ),
            (3, 3, 0)
        );
        assert_eq!(stats.caller.stream.seq_gaps, 1);
        assert_eq!((stats.agent.received, stats.agent.forwarded), (3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn pcmu_caller_and_pcma_agent_are_transcoded_exactly() {
        let mut s = Setup::new(|_| {}, pcma, |_| {}).await;
        let all: Vec<u8> = (0..=255).collect();
        let mut linear = Vec::new();
        let (mut to_alaw, mut to_ulaw) = (Vec::new(), Vec::new());
        g711::decode(Codec::Pcmu, &all, &mut linear);
        g711::encode(Codec::Pcma, &linear, &mut to_alaw);
        linear.clear();
        g711::decode(Codec::Pcma, &all, &mut linear);
        g711::encode(Codec::Pcmu, &linear, &mut to_ulaw);

        let mut caller = rtp::RtpSender::new();
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, true, &all)
            .await;
        let (_, pt, _, _, _, payload) = s.agent.recv().await;
        assert_eq!(pt, 8);
        assert_eq!(payload, to_alaw);

        let mut agent = rtp::RtpSender::new();
        s.agent
            .send_payload(s.agent_leg(), &mut agent, 8, true, &all)
            .await;
        let (_, pt, _, ts, _, payload) = s.caller.recv().await;
        assert_eq!(pt, 0);
        assert_eq!(payload, to_ulaw);
        // A 256-sample frame moves the clock by 256 samples.
        s.agent
            .send_payload(s.agent_leg(), &mut agent, 8, false, &all)
            .await;
        assert_eq!(s.caller.recv().await.3, ts + 256);
        s.next_event().await;
    }

    #[tokio::test(start_paused = true)]
    async fn telephone_events_are_forwarded_with_the_other_sides_pt_and_reported() {
        let mut s = Setup::new(|c| c.dtmf_pt = Some(101), |a| a.dtmf_pt = Some(96), |_| {}).await;
        let mut caller = rtp::RtpSender::with_initial(5, 300, 40_000);
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, true, &[0xFF; FRAME_SAMPLES])
            .await;
        let (_, _, seq0, ts0, _, _) = s.agent.recv().await;
        let mut buf = [0u8; 32];
        let steps = [
            (160, false),
            (320, false),
            (480, true),
            (480, true),
            (480, true),
        ];
        for (dur, end) in steps {
            let n = caller.write_event(101, '7', dur, end, &mut buf).unwrap();
            s.caller
                .socket
                .send_to(&buf[..n], s.caller_leg())
                .await
                .unwrap();
        }
        for (i, (dur, end)) in steps.into_iter().enumerate() {
            let (marker, pt, seq, ts, ssrc, payload) = s.agent.recv().await;
            assert_eq!((pt, ssrc), (96, AGENT_SSRC));
            assert_eq!(marker, i == 0, "marker on the event's first packet only");
            assert_eq!(seq, seq0 + 1 + i as u16);
            // The event's start is the next frame's time.
            assert_eq!(ts, ts0 + 160);
            let d = dur.to_be_bytes();
            assert_eq!(payload, vec![7, if end { 0x8A } else { 10 }, d[0], d[1]]);
        }
        assert!(matches!(
            s.next_event().await,
            BridgeEvent::RemoteLatched { .. }
        ));
        assert_eq!(
            s.next_event().await,
            BridgeEvent::Digit {
                side: Side::Caller,
                digit: '7',
                source: DtmfSource::Rfc4733
            }
        );
        s.no_event();

        // An agent without telephone-event gets no events (the digit is
        // still reported).
        let mut s = Setup::new(|c| c.dtmf_pt = Some(101), |_| {}, |_| {}).await;
        let mut caller = rtp::RtpSender::new();
        for (dur, end) in [(160, false), (480, true)] {
            let n = caller.write_event(101, '#', dur, end, &mut buf).unwrap();
            s.caller
                .socket
                .send_to(&buf[..n], s.caller_leg())
                .await
                .unwrap();
        }
        s.next_event().await;
        assert_eq!(
            s.next_event().await,
            BridgeEvent::Digit {
                side: Side::Caller,
                digit: '#',
                source: DtmfSource::Rfc4733
            }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(s.agent.drain(), 0);
        let stats = s.bridge.stats().await.unwrap();
        assert_eq!((stats.caller.received, stats.caller.dropped), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn hold_plays_music_to_the_other_side_and_nothing_to_the_holder() {
        let music = prompt(40, 2, 0); // two frames, looped
        let s = Setup::new(|_| {}, |_| {}, |b| b.hold_music = Some(music)).await;
        let mut caller = rtp::RtpSender::new();
        let mut agent = rtp::RtpSender::new();
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, true, &[1; FRAME_SAMPLES])
            .await;
        s.agent.recv().await;
        s.agent
            .send_payload(s.agent_leg(), &mut agent, 0, true, &[2; FRAME_SAMPLES])
            .await;
        let (_, _, seq_before, ts_before, _, _) = s.caller.recv().await;

        // The agent holds: the caller hears music at 20 ms, the agent nothing.
        s.bridge.set_hold(Side::Agent, true).await.unwrap();
        let mut frames = Vec::new();
        let mut last_at = None;
        for _ in 0..5 {
            // The caller goes on talking, the agent's phone sends its own.
            s.caller
                .send_payload(s.caller_leg(), &mut caller, 0, false, &[1; FRAME_SAMPLES])
                .await;
            s.agent
                .send_payload(s.agent_leg(), &mut agent, 0, false, &[2; FRAME_SAMPLES])
                .await;
            let p = s.caller.recv().await;
            let now = Instant::now();
            if let Some(t) = last_at {
                assert_eq!(now - t, FRAME_DURATION);
            }
            last_at = Some(now);
            frames.push(p);
        }
        assert_eq!(s.agent.drain(), 0, "nothing to the holder");
        let payloads: Vec<u8> = frames.iter().map(|p| p.5[0]).collect();
        assert_eq!(payloads, vec![40, 41, 40, 41, 40]);
        assert!(frames[0].0, "music starts a talkspurt");
        for (i, p) in frames.iter().enumerate() {
            assert_eq!(p.4, CALLER_SSRC);
            assert_eq!(p.2, seq_before.wrapping_add(1 + i as u16));
            assert!(i == 0 || !p.0);
            if i > 0 {
                assert_eq!(p.3, frames[i - 1].3.wrapping_add(160));
            }
        }
        assert!(frames[0].3.wrapping_sub(ts_before) >= 160);

        // Resume: relaying again, first packet each way with the marker.
        s.bridge.set_hold(Side::Agent, false).await.unwrap();
        s.caller.drain();
        s.agent
            .send_payload(s.agent_leg(), &mut agent, 0, false, &[2; FRAME_SAMPLES])
            .await;
        let p = s.caller.recv().await;
        assert_eq!((p.0, p.5[0]), (true, 2));
        assert_eq!(p.2, frames[4].2.wrapping_add(1));
        assert!(p.3.wrapping_sub(frames[4].3) >= 160);
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, false, &[1; FRAME_SAMPLES])
            .await;
        let p = s.agent.recv().await;
        assert_eq!((p.0, p.5[0]), (true, 1));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(s.caller.drain(), 0, "no more music");

        // Old-style hold by the caller, without music: silence to the agent.
        let stats = s.bridge.stats().await.unwrap();
        assert_eq!(stats.caller.dropped, 5);
        s.bridge.set_remote(Side::Caller, None).await.unwrap();
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, false, &[1; FRAME_SAMPLES])
            .await;
        assert_eq!(s.agent.recv().await.5, vec![0x28; FRAME_SAMPLES]); // music
    }

    #[tokio::test(start_paused = true)]
    async fn detach_bridge_end_resume_keeps_each_legs_stream() {
        let caller = Peer::new().await;
        let agent = Peer::new().await;
        let start = |remote: SocketAddr| async move {
            let mut cfg = SessionConfig::new(socket().await, Some(remote), Codec::Pcmu);
            cfg.inband_dtmf = false;
            session::spawn(cfg)
        };
        let (caller_media, _ce) = start(caller.addr()).await;
        let (agent_media, _ae) = start(agent.addr()).await;
        // The IVR's silence frames to the caller.
        let (_, _, mut last_seq, mut last_ts, ssrc, _) = caller.recv().await;
        for _ in 0..3 {
            let p = caller.recv().await;
            (last_seq, last_ts) = (p.2, p.3);
        }
        let (_, _, _, _, agent_ssrc, _) = agent.recv().await;

        let caller_leg = caller_media.detach().await.unwrap();
        let agent_leg = agent_media.detach().await.unwrap();
        assert_eq!(caller_leg.ssrc(), ssrc);
        let (bridge, _events) = spawn(BridgeConfig::new(caller_leg, agent_leg));
        caller.drain();
        agent.drain();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            caller.drain() + agent.drain(),
            0,
            "nothing sent while nobody talks"
        );

        let mut talk = rtp::RtpSender::new();
        for i in 0..3u16 {
            agent
                .send_payload(
                    bridge.local_addr(Side::Agent),
                    &mut talk,
                    0,
                    false,
                    &[9; FRAME_SAMPLES],
                )
                .await;
            let (marker, _, seq, ts, s, payload) = caller.recv().await;
            assert_eq!((s, payload[0], marker), (ssrc, 9, i == 0));
            assert_eq!(seq, last_seq.wrapping_add(1));
            assert!(ts.wrapping_sub(last_ts) >= 160 && ts.wrapping_sub(last_ts) < 8000);
            (last_seq, last_ts) = (seq, ts);
        }
        let mut talk = rtp::RtpSender::new();
        caller
            .send_payload(
                bridge.local_addr(Side::Caller),
                &mut talk,
                0,
                false,
                &[5; FRAME_SAMPLES],
            )
            .await;
        assert_eq!(agent.recv().await.4, agent_ssrc);

        tokio::time::sleep(Duration::from_secs(1)).await;
        let (caller_leg, agent_leg) = bridge.end().await.unwrap();
        assert_eq!((caller_leg.ssrc(), agent_leg.ssrc()), (ssrc, agent_ssrc));
        assert_eq!(caller_leg.next_seq(), last_seq.wrapping_add(1));
        // Latched during the bridge: the caller's leg now sends to its source.
        assert_eq!(caller_leg.remote(), Some(caller.addr()));
        drop(agent_leg);

        // The survey: the caller's session again, same stream.
        let (survey, _events) = session::resume(caller_leg);
        let (marker, _, seq, ts, s, _) = caller.recv().await;
        assert_eq!((s, seq), (ssrc, last_seq.wrapping_add(1)));
        assert!(marker, "the resumed stream starts a talkspurt");
        // About a second later on the media clock.
        let gap = ts.wrapping_sub(last_ts);
        assert!((8000..=8400).contains(&gap), "{gap}");
        let (marker, _, seq2, ts2, _, _) = caller.recv().await;
        assert!(!marker);
        assert_eq!((seq2, ts2), (seq.wrapping_add(1), ts.wrapping_add(160)));
        survey.close().await;
    }

    #[tokio::test(start_paused = true)]
    async fn rtp_timeout_is_reported_per_side_and_not_while_held() {
        let mut s = Setup::new(
            |c| c.rtp_timeout = Duration::from_secs(60),
            |_| {},
            |b| b.rtp_timeout = Some(Duration::from_secs(5)),
        )
        .await;
        let started = Instant::now();
        let mut caller = rtp::RtpSender::new();
        // The caller keeps talking, the agent is silent.
        let (peer, to) = (&s.caller, s.caller_leg());
        let events = &mut s.events;
        let talk = async {
            for _ in 0..400 {
                peer.send_payload(to, &mut caller, 0, false, &[1; FRAME_SAMPLES])
                    .await;
                tokio::time::sleep(FRAME_DURATION).await;
            }
        };
        let mut got = Vec::new();
        let watch = async {
            while let Ok(Some(e)) = timeout(Duration::from_secs(7), events.recv()).await {
                got.push((e, Instant::now() - started));
            }
        };
        tokio::join!(talk, watch);
        let timeouts: Vec<_> = got
            .iter()
            .filter(|(e, _)| matches!(e, BridgeEvent::RtpTimeout { .. }))
            .collect();
        assert_eq!(timeouts.len(), 1, "{got:?}");
        assert_eq!(timeouts[0].0, BridgeEvent::RtpTimeout { side: Side::Agent });
        assert_eq!(timeouts[0].1, Duration::from_secs(5));

        // The leg keeps its own timeout when handed back.
        // On hold nothing times out; from the resume it counts again.
        s.bridge.set_hold(Side::Caller, true).await.unwrap();
        assert!(timeout(Duration::from_secs(60), s.events.recv())
            .await
            .is_err());
        s.bridge.set_hold(Side::Caller, false).await.unwrap();
        let resumed = Instant::now();
        let mut sides = vec![s.next_event().await, s.next_event().await];
        assert_eq!(Instant::now() - resumed, Duration::from_secs(5));
        sides.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(
            sides,
            vec![
                BridgeEvent::RtpTimeout { side: Side::Agent },
                BridgeEvent::RtpTimeout { side: Side::Caller }
            ]
        );
        let (c, _) = s.bridge.end().await.unwrap();
        assert_eq!(c.rtp_timeout, Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn taps_get_what_each_side_sent_in_its_codec() {
        let s = Setup::new(|_| {}, pcma, |_| {}).await;
        let (caller_tap, mut caller_frames) = mpsc::channel(8);
        let (agent_tap, mut agent_frames) = mpsc::channel(8);
        s.bridge
            .set_tap(Side::Caller, Some(caller_tap))
            .await
            .unwrap();
        s.bridge
            .set_tap(Side::Agent, Some(agent_tap))
            .await
            .unwrap();
        let mut caller = rtp::RtpSender::with_initial(77, 10, 1000);
        let mut agent = rtp::RtpSender::with_initial(88, 20, 2000);
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, true, &[0x11; FRAME_SAMPLES])
            .await;
        s.agent
            .send_payload(s.agent_leg(), &mut agent, 8, true, &[0x22; FRAME_SAMPLES])
            .await;
        // Comfort noise is neither tapped nor forwarded.
        s.caller
            .send_payload(
                s.caller_leg(),
                &mut caller,
                PT_COMFORT_NOISE,
                false,
                &[0x7F],
            )
            .await;
        s.caller
            .send_payload(
                s.caller_leg(),
                &mut caller,
                0,
                false,
                &[0x33; FRAME_SAMPLES],
            )
            .await;
        let recv = |rx: &mut mpsc::Receiver<ReceivedFrame>| {
            let f = rx.try_recv();
            f.map(|f| (f.ssrc, f.sequence, f.timestamp, f.marker, f.payload[0]))
        };
        s.agent.recv().await;
        s.agent.recv().await;
        s.caller.recv().await;
        assert_eq!(recv(&mut caller_frames), Ok((77, 10, 1000, true, 0x11)));
        assert_eq!(recv(&mut caller_frames), Ok((77, 12, 1161, false, 0x33)));
        assert!(recv(&mut caller_frames).is_err());
        assert_eq!(recv(&mut agent_frames), Ok((88, 20, 2000, true, 0x22)));
        assert_eq!(s.agent.drain(), 0, "comfort noise dropped");
        // A closed tap is detached; relaying goes on.
        drop(caller_frames);
        s.caller
            .send_payload(
                s.caller_leg(),
                &mut caller,
                0,
                false,
                &[0x44; FRAME_SAMPLES],
            )
            .await;
        let expected = g711::transcode_table(Codec::Pcmu, Codec::Pcma)[0x44];
        assert_eq!(s.agent.recv().await.5[0], expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_voice_is_mixed_into_what_the_agent_is_sent_only() {
        use crate::media::voice_mix::{Voice, VoiceTo};
        let s = Setup::plain().await;
        let (voice, v) = Voice::new(VoiceTo::Agent);
        s.bridge.control().add_voice(v).await.unwrap();
        let mut caller = rtp::RtpSender::with_initial(77, 10, 1000);
        let mut agent = rtp::RtpSender::with_initial(88, 20, 2000);
        let lin = |b: u8| g711::decode_sample(Codec::Pcmu, b);
        voice.send(vec![lin(0x11); FRAME_SAMPLES]).await.unwrap();
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, true, &[0x42; FRAME_SAMPLES])
            .await;
        let want = g711::encode_sample(Codec::Pcmu, lin(0x42).saturating_add(lin(0x11)));
        assert_eq!(s.agent.recv().await.5, vec![want; FRAME_SAMPLES]);
        voice.send(vec![lin(0x11); FRAME_SAMPLES]).await.unwrap();
        s.agent
            .send_payload(s.agent_leg(), &mut agent, 0, true, &[0x24; FRAME_SAMPLES])
            .await;
        assert_eq!(s.caller.recv().await.5, vec![0x24; FRAME_SAMPLES]);
        // The voice gone (what it had queued with it), the agent hears
        // the caller alone.
        drop(voice);
        for expect in [0x42, 0x42] {
            s.caller
                .send_payload(
                    s.caller_leg(),
                    &mut caller,
                    0,
                    false,
                    &[0x42; FRAME_SAMPLES],
                )
                .await;
            assert_eq!(s.agent.recv().await.5, vec![expect; FRAME_SAMPLES]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_tap_gets_both_sides_and_holds_in_order() {
        let s = Setup::new(|_| {}, pcma, |_| {}).await;
        let (tap, mut events) = mpsc::channel(16);
        s.bridge.add_tap(tap).await.unwrap();
        let mut caller = rtp::RtpSender::with_initial(77, 10, 1000);
        let mut agent = rtp::RtpSender::with_initial(88, 20, 2000);
        let t0 = Instant::now();
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, true, &[0x11; FRAME_SAMPLES])
            .await;
        s.agent.recv().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.agent
            .send_payload(s.agent_leg(), &mut agent, 8, true, &[0x22; FRAME_SAMPLES])
            .await;
        s.caller.recv().await;
        s.bridge.set_hold(Side::Agent, true).await.unwrap();
        s.bridge.stats().await.unwrap();
        let mut got = Vec::new();
        while let Ok(e) = events.try_recv() {
            got.push(e);
        }
        assert_eq!(got.len(), 3, "{got:?}");
        match &got[0] {
            TapEvent::Audio {
                side,
                at,
                codec,
                ssrc,
                timestamp,
                payload,
            } => {
                assert_eq!(
                    (*side, *codec, *ssrc, *timestamp),
                    (Side::Caller, Codec::Pcmu, 77, 1000)
                );
                assert_eq!(payload[..], [0x11; FRAME_SAMPLES]);
                assert!(*at >= t0 && *at < t0 + Duration::from_millis(5));
            }
            other => panic!("{other:?}"),
        }
        match &got[1] {
            TapEvent::Audio {
                side,
                at,
                codec,
                payload,
                ..
            } => {
                assert_eq!((*side, *codec), (Side::Agent, Codec::Pcma));
                assert_eq!(payload[0], 0x22, "the agent's own codec, not transcoded");
                assert!(*at >= t0 + Duration::from_millis(20));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            got[2],
            TapEvent::Hold {
                side: Side::Agent,
                held: true,
                ..
            }
        ));
        assert_eq!(s.bridge.stats().await.unwrap().caller.tap_dropped, 0);
        // A tap added while a side holds learns it at once.
        let (tap2, mut events2) = mpsc::channel(4);
        s.bridge.add_tap(tap2).await.unwrap();
        s.bridge.stats().await.unwrap();
        assert!(matches!(
            events2.try_recv(),
            Ok(TapEvent::Hold {
                side: Side::Agent,
                held: true,
                ..
            })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn foreign_streams_and_stale_packets_are_ignored() {
        let mut s = Setup::plain().await;
        let mut caller = rtp::RtpSender::with_initial(1, 100, 0);
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, false, &[1; FRAME_SAMPLES])
            .await;
        let (_, _, seq0, _, _, _) = s.agent.recv().await;
        s.next_event().await;

        // Another stream from another address: not forwarded, no latch.
        let stranger = Peer::new().await;
        stranger
            .send_payload(
                s.caller_leg(),
                &mut rtp::RtpSender::new(),
                0,
                false,
                &[6; FRAME_SAMPLES],
            )
            .await;
        // Garbage and RTCP.
        for junk in [&b"hello"[..], &[0x80, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]] {
            s.caller.socket.send_to(junk, s.caller_leg()).await.unwrap();
        }
        // An unknown payload type.
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 96, false, &[7; FRAME_SAMPLES])
            .await;
        // A packet far behind the stream.
        let mut old = rtp::RtpSender::with_initial(1, 100u16.wrapping_sub(500), 0);
        s.caller
            .send_payload(s.caller_leg(), &mut old, 0, false, &[8; FRAME_SAMPLES])
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(s.agent.drain(), 0);
        assert_eq!(stranger.drain(), 0);
        s.no_event();

        // The caller's phone restarts its stream: a new SSRC is followed
        // (marker), and a late packet of the old one is then stale.
        let mut restarted = rtp::RtpSender::with_initial(2, 5000, 0);
        s.caller
            .send_payload(
                s.caller_leg(),
                &mut restarted,
                0,
                false,
                &[9; FRAME_SAMPLES],
            )
            .await;
        let (marker, _, seq, _, _, payload) = s.agent.recv().await;
        assert!(marker);
        assert_eq!(payload[0], 9);
        // seq0 + 1 was the unknown payload type's, not forwarded.
        assert_eq!(seq, seq0.wrapping_add(1));
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, false, &[10; FRAME_SAMPLES])
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(s.agent.drain(), 0);
        let stats = s.bridge.stats().await.unwrap();
        assert_eq!(stats.caller.stream.stale, 2);
        assert_eq!(stats.caller.forwarded, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_to_one_side_replaces_what_it_hears() {
        let mut s = Setup::plain().await;
        s.bridge
            .play(Side::Agent, 3, vec![prompt(60, 2, 0)])
            .await
            .unwrap();
        let mut caller = rtp::RtpSender::new();
        let mut heard = Vec::new();
        for _ in 0..2 {
            s.caller
                .send_payload(s.caller_leg(), &mut caller, 0, false, &[1; FRAME_SAMPLES])
                .await;
            heard.push(s.agent.recv().await.5[0]);
        }
        assert_eq!(heard, vec![60, 61]);
        let mut got = vec![s.next_event().await, s.next_event().await];
        got.retain(|e| matches!(e, BridgeEvent::PlaybackDone { .. }));
        assert_eq!(
            got,
            vec![BridgeEvent::PlaybackDone {
                side: Side::Agent,
                id: 3
            }]
        );
        s.caller
            .send_payload(s.caller_leg(), &mut caller, 0, false, &[1; FRAME_SAMPLES])
            .await;
        let (marker, _, _, _, _, p) = s.agent.recv().await;
        assert_eq!((marker, p[0]), (true, 1));
        assert_eq!(s.caller.drain(), 0, "the caller heard nothing of it");
        s.bridge.play(Side::Caller, 4, vec![]).await.unwrap();
        assert_eq!(
            s.next_event().await,
            BridgeEvent::PlaybackDone {
                side: Side::Caller,
                id: 4
            }
        );
    }

    #[tokio::test]
    async fn dropping_the_handle_returns_both_ports() {
        use crate::media::port_pool::PortPool;
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31100, 31110).unwrap();
        let before = pool.available();
        let leg = |socket| LegMedia::new(SessionConfig::new(socket, None, Codec::Pcmu));
        let (bridge, _events) = spawn(BridgeConfig::new(
            leg(pool.allocate().unwrap()),
            leg(pool.allocate().unwrap()),
        ));
        assert_eq!(pool.available(), before - 2);
        drop(bridge);
        for _ in 0..100 {
            if pool.available() == before {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.available(), before);
    }
}
