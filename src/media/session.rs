//! The per-call RTP session task: the media path of one call leg.
//!
//! [`spawn`] starts one task per call that owns the call's [`RtpSocket`]. It
//! sends one 20 ms G.711 frame per tick — the playing prompt's next frame,
//! or a silence frame when idle, so NAT bindings and the far end's jitter
//! buffer stay fed — and reads what the caller sends: RFC 4733 events and
//! in-band tones become [`MediaEvent::Digit`], received audio frames can be
//! handed to a recorder or bridge through the tap ([`ReceivedFrame`]).
//! The call task drives it through a [`MediaHandle`] and hears back on a
//! bounded [`MediaEvent`] channel. Dropping the handle ends the task, which
//! drops the socket and so returns its port to the pool.
//!
//! Symmetric RTP (RFC 4961; "comedia"): frames go to the address in the SDP
//! until the first valid RTP packet arrives; from then on to that packet's
//! source ([`MediaEvent::RemoteLatched`]), which is how callers behind NAT
//! hear us. Later packets from another source are accepted, and re-latched
//! to, only if they carry the latched stream's SSRC (a NAT rebinding); other
//! streams are ignored, so a stray sender cannot steal the call's audio.
//!
//! Hold: while held (`set_hold(true)`, or `set_remote(None)` for old-style
//! `c=0.0.0.0` hold) nothing is sent, playback pauses where it is, the RTP
//! timestamp keeps advancing (RFC 3550 §5.1) and the next packet after the
//! hold carries the marker bit (RFC 3551 §4.1). The RTP inactivity timeout
//! does not run while held.
//!
//! # Cost per call (for the 2,000-calls-on-one-core budget)
//!
//! Everything happens on the 20 ms tick: the task wakes 50 times a second
//! and never per received packet. On each tick it drains the socket with
//! one `recvmmsg` ([`super::udp_batch`]: no syscall at all when the reactor
//! has not reported the socket readable, and none to learn it is empty),
//! then sends one frame with one `sendto`. With the caller sending 50
//! packets/s that is about 50 `sendto` + 50 `recvmmsg`
//! = **~100 syscalls per call per second** (200k/s for 2,000 calls), plus
//! the runtime's shared `epoll_wait`, amortised over all calls. No
//! allocation per packet (fixed send and receive buffers, a reused PCM
//! buffer; the tap, when attached, copies the payload into `Bytes`), no
//! locks, no logging, no disk. The heaviest per-packet work is the in-band
//! DTMF detector (Goertzel over 160 samples); it is optional and switched
//! off as soon as the caller sends RFC 4733 events. Further savings if
//! needed: `connect()` the socket once latched (no route lookup per send),
//! or `sendmmsg`/`recvmmsg` over many calls from one task.

use super::dtmf::inband::InbandDetector;
use super::dtmf::rfc4733::Rfc4733Receiver;
use super::dtmf::DtmfSource;
use super::events::Outbox;
use super::latch::{SymmetricLatch, Verdict};
use super::player::Player;
use super::port_pool::RtpSocket;
use super::prompts::Prompt;
use super::udp_batch::{self, Drained, RecvBatch};
use super::{g711, rtp, Codec, FRAME_SAMPLES};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// One frame's duration.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// A late tick is caught up frame by frame up to this many frames behind;
/// beyond, the 20 ms grid restarts from now.
const MAX_CATCH_UP: u32 = 3;
/// Capacity of the event channel to the call task.
pub const EVENT_CAPACITY: usize = 32;
/// Capacity of the command channel from the [`MediaHandle`].
const COMMAND_CAPACITY: usize = 16;
/// At most this many datagrams are read per tick (a flood cannot starve
/// the sender; the rest wait for the next tick or are dropped by the kernel).
const MAX_READS_PER_TICK: usize = 16;
/// Receive buffer: a UDP payload on an Ethernet path.
pub(crate) const RECV_BUF: usize = 1500;
/// Comfort noise (RFC 3389), a payload type a peer may send between talkspurts.
pub(crate) const PT_COMFORT_NOISE: u8 = 13;

/// What the session task needs to run.
#[derive(Debug)]
pub struct SessionConfig {
    pub socket: RtpSocket,
    /// Where to send until the caller's first packet (from the SDP).
    pub remote: Option<SocketAddr>,
    pub codec: Codec,
    /// Payload type to send and receive the codec with (usually its static one).
    pub audio_pt: u8,
    /// Negotiated telephone-event payload type (RFC 4733), if any.
    pub dtmf_pt: Option<u8>,
    /// Run the in-band DTMF detector on received audio (needed for gateways
    /// that send tones in the audio; switched off once RFC 4733 is seen).
    pub inband_dtmf: bool,
    /// No RTP for this long (and not on hold) → [`MediaEvent::RtpTimeout`].
    pub rtp_timeout: Duration,
    /// Receives a copy of each received audio frame (recorder, bridge).
    pub tap: Option<mpsc::Sender<ReceivedFrame>>,
    /// Start on hold (e.g. the offer was `sendonly` or `inactive`).
    pub held: bool,
}

impl SessionConfig {
    /// A config with the codec's static payload type, no telephone-event,
    /// in-band detection on, a 30 s RTP timeout and no tap.
    pub fn new(socket: RtpSocket, remote: Option<SocketAddr>, codec: Codec) -> Self {
        SessionConfig {
            socket,
            remote,
            codec,
            audio_pt: codec.payload_type(),
            dtmf_pt: None,
            inband_dtmf: true,
            rtp_timeout: Duration::from_secs(30),
            tap: None,
            held: false,
        }
    }

    /// A config from an offer/answer result; starts held when the answer
    /// says we do not send (RFC 3264 §6.1: recvonly or inactive).
    pub fn negotiated(socket: RtpSocket, n: &super::sdp::Negotiated) -> Self {
        SessionConfig {
            audio_pt: n.audio_pt,
            dtmf_pt: n.dtmf_pt,
            held: !n.direction.sends(),
            ..Self::new(socket, n.remote_rtp, n.codec)
        }
    }
}

/// What the session reports to the call task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The prompt list started with `play(id, ..)` has been sent to the end
    /// (reported right after its last frame). Lists that are replaced or
    /// stopped report nothing.
    PlaybackDone {
        id: u64,
    },
    Digit {
        digit: char,
        source: DtmfSource,
    },
    /// No RTP received for the configured time while not on hold (once,
    /// re-armed when RTP flows again).
    RtpTimeout,
    /// Frames now go to this address (the source of the caller's RTP).
    RemoteLatched(SocketAddr),
}

/// A received audio frame, as handed to the tap: the G.711 payload of the
/// negotiated codec, with its RTP header fields (for reordering/gap fill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFrame {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// The session task has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("media session has ended")]
pub struct SessionClosed;

#[derive(Debug)]
enum Command {
    Play { id: u64, prompts: Vec<Arc<Prompt>> },
    StopPlayback,
    SetRemote(Option<SocketAddr>),
    SetHold(bool),
    SetTap(Option<mpsc::Sender<ReceivedFrame>>),
    Detach(oneshot::Sender<LegMedia>),
    Close,
}

/// Controls one session task. Dropping it ends the task.
#[derive(Debug)]
pub struct MediaHandle {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    local_addr: SocketAddr,
}

impl MediaHandle {
    /// Our RTP address (for the SDP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Plays `prompts` one after another, replacing whatever was playing;
    /// reports [`MediaEvent::PlaybackDone`] with `id` after the last frame.
    pub async fn play(&self, id: u64, prompts: Vec<Arc<Prompt>>) -> Result<(), SessionClosed> {
        self.send(Command::Play { id, prompts }).await
    }

    /// Stops playback (silence follows); no `PlaybackDone` for it.
    pub async fn stop_playback(&self) -> Result<(), SessionClosed> {
        self.send(Command::StopPlayback).await
    }

    /// A new remote address from a re-INVITE; `None` for hold with
    /// `0.0.0.0`. A different address drops the latch (the next packet
    /// latches again).
    pub async fn set_remote(&self, remote: Option<SocketAddr>) -> Result<(), SessionClosed> {
        self.send(Command::SetRemote(remote)).await
    }

    /// While held, nothing is sent and playback pauses.
    pub async fn set_hold(&self, held: bool) -> Result<(), SessionClosed> {
        self.send(Command::SetHold(held)).await
    }

    /// Attaches (or detaches) the receiver of received audio frames.
    pub async fn set_tap(
        &self,
        tap: Option<mpsc::Sender<ReceivedFrame>>,
    ) -> Result<(), SessionClosed> {
        self.send(Command::SetTap(tap)).await
    }

    /// Stops the session task and hands back its socket and RTP state, so
    /// that the leg can be bridged ([`super::bridge::spawn`]) and later run
    /// again ([`resume`]) with the same SSRC and continuous sequence numbers
    /// and timestamps. A prompt that was playing is dropped (no
    /// `PlaybackDone`), and so are events not yet delivered.
    pub async fn detach(self) -> Result<LegMedia, SessionClosed> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Detach(tx)).await?;
        let leg = rx.await.map_err(|_| SessionClosed)?;
        let _ = self.task.await;
        Ok(leg)
    }

    /// Ends the task and waits until it is gone (its socket closed and the
    /// port back in the pool).
    pub async fn close(self) {
        let _ = self.commands.send(Command::Close).await;
        let _ = self.task.await;
    }

    async fn send(&self, c: Command) -> Result<(), SessionClosed> {
        self.commands.send(c).await.map_err(|_| SessionClosed)
    }
}

/// Starts the RTP session task for one call.
pub fn spawn(cfg: SessionConfig) -> (MediaHandle, mpsc::Receiver<MediaEvent>) {
    resume(LegMedia::new(cfg))
}

/// Starts a session task for a leg that was detached or bridged (e.g. the
/// caller's leg after the agent hung up, for the survey): same socket, same
/// outgoing stream (SSRC; sequence numbers continue, the timestamp has run on
/// with the clock), same latch, hold state and tap. The first packet carries
/// the marker bit (RFC 3551 §4.1). The RTP timeout counts from now.
pub fn resume(leg: LegMedia) -> (MediaHandle, mpsc::Receiver<MediaEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_CAPACITY);
    let local_addr = leg.socket.local_addr();
    let spawner = leg.socket.home().spawner();
    let session = Session::new(leg, ev_tx);
    let task = spawner.spawn(session.run(cmd_rx));
    (
        MediaHandle {
            commands: cmd_tx,
            task,
            local_addr,
        },
        ev_rx,
    )
}

/// One call leg's media state outside a running task: its socket, what was
/// negotiated, its latch, hold state, tap and outgoing RTP stream. Made
/// from a [`SessionConfig`] ([`LegMedia::new`]), handed back by
/// [`MediaHandle::detach`] and by the bridge's `end`, and run again by
/// [`resume`] or bridged by [`super::bridge::spawn`]: the leg keeps its SSRC
/// and its sequence numbers and timestamps go on from where they were, so
/// the far end sees one stream across IVR, bridge and survey.
#[derive(Debug)]
pub struct LegMedia {
    pub(crate) socket: RtpSocket,
    pub(crate) codec: Codec,
    pub(crate) audio_pt: u8,
    pub(crate) dtmf_pt: Option<u8>,
    /// The in-band detector is on (configured, and no RFC 4733 seen yet).
    pub(crate) inband_dtmf: bool,
    pub(crate) rtp_timeout: Duration,
    pub(crate) tap: Option<mpsc::Sender<ReceivedFrame>>,
    pub(crate) held: bool,
    pub(crate) sdp_remote: Option<SocketAddr>,
    pub(crate) latch: SymmetricLatch,
    pub(crate) rfc4733: Rfc4733Receiver,
    /// Our outgoing stream; its timestamp is the media clock at `clock_at`.
    pub(crate) sender: rtp::RtpSender,
    pub(crate) clock_at: Instant,
}

impl LegMedia {
    /// A leg that has not run yet (a fresh stream with random SSRC,
    /// sequence number and timestamp, RFC 3550 §5.1).
    pub fn new(cfg: SessionConfig) -> Self {
        Self::with_sender(cfg, rtp::RtpSender::new())
    }

    /// As [`LegMedia::new`] with a chosen outgoing stream (tests).
    pub fn with_sender(cfg: SessionConfig, sender: rtp::RtpSender) -> Self {
        LegMedia {
            socket: cfg.socket,
            codec: cfg.codec,
            audio_pt: cfg.audio_pt,
            dtmf_pt: cfg.dtmf_pt,
            inband_dtmf: cfg.inband_dtmf,
            rtp_timeout: cfg.rtp_timeout,
            tap: cfg.tap,
            held: cfg.held,
            sdp_remote: cfg.remote,
            latch: SymmetricLatch::new(),
            rfc4733: Rfc4733Receiver::new(),
            sender,
            clock_at: Instant::now(),
        }
    }

    /// Our RTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr()
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Our outgoing stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.sender.ssrc()
    }

    /// The sequence number of the next packet we send.
    pub fn next_seq(&self) -> u16 {
        self.sender.next_seq()
    }

    /// Where we send: the latched source of the peer's RTP, else the SDP's.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.latch.destination(self.sdp_remote)
    }

    pub fn is_held(&self) -> bool {
        self.held
    }

    /// A new remote address from a re-INVITE (see [`MediaHandle::set_remote`]).
    pub fn set_remote(&mut self, remote: Option<SocketAddr>) {
        if remote != self.sdp_remote {
            self.latch.reset();
        }
        self.sdp_remote = remote;
    }

    pub fn set_hold(&mut self, held: bool) {
        self.held = held;
    }

    pub fn set_tap(&mut self, tap: Option<mpsc::Sender<ReceivedFrame>>) {
        self.tap = tap;
    }
}

/// Hands a received audio frame to the tap: a bounded channel, never waited
/// on; a full channel loses the frame, a closed one detaches the tap.
pub(crate) fn tap_frame(
    tap: &mut Option<mpsc::Sender<ReceivedFrame>>,
    packet: &rtp::RtpPacket<'_>,
) {
    if let Some(sender) = tap {
        let frame = ReceivedFrame {
            ssrc: packet.ssrc,
            sequence: packet.sequence,
            timestamp: packet.timestamp,
            marker: packet.marker,
            payload: Bytes::copy_from_slice(packet.payload),
        };
        if let Err(TrySendError::Closed(_)) = sender.try_send(frame) {
            *tap = None;
        }
    }
}

/// Runs the in-band detector over one received audio payload.
pub(crate) fn detect_inband(
    detector: &mut InbandDetector,
    codec: Codec,
    pcm: &mut Vec<i16>,
    payload: &[u8],
) -> Option<char> {
    pcm.clear();
    g711::decode(codec, payload, pcm);
    detector.process(pcm)
}

struct Session {
    socket: RtpSocket,
    codec: Codec,
    audio_pt: u8,
    dtmf_pt: Option<u8>,
    sender: rtp::RtpSender,
    sdp_remote: Option<SocketAddr>,
    latch: SymmetricLatch,
    held: bool,
    /// The next packet starts a talkspurt (marker bit, RFC 3551 §4.1).
    talkspurt: bool,
    player: Player,
    silence: [u8; FRAME_SAMPLES],
    rfc4733: Rfc4733Receiver,
    inband: Option<InbandDetector>,
    pcm: Vec<i16>,
    tap: Option<mpsc::Sender<ReceivedFrame>>,
    last_rx: Instant,
    timed_out: bool,
    rtp_timeout: Duration,
    events: Outbox<MediaEvent>,
    tx_buf: [u8; rtp::HEADER_LEN + FRAME_SAMPLES],
    /// Taken out while a datagram in it is handled (see `receive`).
    rx_batch: RecvBatch,
}

impl Session {
    fn new(leg: LegMedia, events: mpsc::Sender<MediaEvent>) -> Self {
        // The media clock ran on while the leg was detached (RFC 3550 §5.1).
        let mut sender = leg.sender;
        let elapsed = Instant::now() - leg.clock_at;
        sender.advance(samples_in(elapsed));
        Session {
            socket: leg.socket,
            codec: leg.codec,
            audio_pt: leg.audio_pt,
            dtmf_pt: leg.dtmf_pt,
            sender,
            sdp_remote: leg.sdp_remote,
            latch: leg.latch,
            held: leg.held,
            talkspurt: true,
            player: Player::new(),
            silence: [g711::silence_byte(leg.codec); FRAME_SAMPLES],
            rfc4733: leg.rfc4733,
            inband: leg.inband_dtmf.then(InbandDetector::new),
            pcm: Vec::with_capacity(RECV_BUF),
            tap: leg.tap,
            last_rx: Instant::now(),
            timed_out: false,
            rtp_timeout: leg.rtp_timeout,
            events: Outbox::new(events),
            tx_buf: [0; rtp::HEADER_LEN + FRAME_SAMPLES],
            rx_batch: RecvBatch::new(RECV_BUF),
        }
    }

    /// The leg's state, to be bridged or resumed. The sender's timestamp is
    /// that of the next tick's frame, i.e. the media clock now.
    fn into_leg(self) -> LegMedia {
        LegMedia {
            socket: self.socket,
            codec: self.codec,
            audio_pt: self.audio_pt,
            dtmf_pt: self.dtmf_pt,
            inband_dtmf: self.inband.is_some(),
            rtp_timeout: self.rtp_timeout,
            tap: self.tap,
            held: self.held,
            sdp_remote: self.sdp_remote,
            latch: self.latch,
            rfc4733: self.rfc4733,
            sender: self.sender,
            clock_at: Instant::now(),
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(FRAME_DURATION);
        // A fixed 20 ms grid (`Burst`): a tick that comes late is followed
        // at once by the ones it missed, so the stream keeps 50 packets/s and
        // stays in step with its timestamps (which advance 160 per packet).
        // `Delay` pushed every later tick back and never made up: streams
        // drifted below 50 packets/s under load and the far end's jitter
        // buffer ran dry (measured at 2,000 calls: 40 packets/s, p99 gap
        // 140 ms; with the grid 50.0 packets/s, p99 37 ms). A stall longer
        // than `MAX_CATCH_UP` frames is not caught up in a burst that would
        // overflow jitter buffers: the grid restarts from now (the missed
        // frames look like loss, the timestamp still runs on).
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                // Commands first, so `play` takes effect on the next frame.
                biased;
                command = commands.recv() => match command {
                    None | Some(Command::Close) => break,
                    Some(Command::Detach(reply)) => {
                        let _ = reply.send(self.into_leg());
                        return;
                    }
                    Some(c) => self.on_command(c),
                },
                at = tick.tick() => {
                    if Instant::now().saturating_duration_since(at) > FRAME_DURATION * MAX_CATCH_UP {
                        tick.reset();
                    }
                    self.on_tick().await
                }
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Play { id, prompts } => {
                self.player.start(id, prompts, self.codec);
                if !self.player.is_playing() {
                    self.events.emit(MediaEvent::PlaybackDone { id });
                }
            }
            Command::StopPlayback => self.player.stop(),
            Command::SetRemote(remote) => {
                if remote != self.sdp_remote {
                    self.latch.reset();
                    if self.sdp_remote.is_none() {
                        self.resume();
                    }
                }
                self.sdp_remote = remote;
            }
            Command::SetHold(held) => {
                if self.held && !held {
                    self.resume();
                }
                self.held = held;
            }
            Command::SetTap(tap) => self.tap = tap,
            Command::Close | Command::Detach(_) => {}
        }
    }

    /// Back from hold: the inactivity timeout starts again from now.
    fn resume(&mut self) {
        self.last_rx = Instant::now();
        self.timed_out = false;
    }

    fn on_hold(&self) -> bool {
        self.held || self.sdp_remote.is_none()
    }

    async fn on_tick(&mut self) {
        self.events.flush();
        let now = Instant::now();
        self.receive(now);

        // RTP inactivity (not while held).
        if !self.on_hold() && !self.timed_out && now - self.last_rx >= self.rtp_timeout {
            self.timed_out = true;
            self.events.emit(MediaEvent::RtpTimeout);
        }

        let destination = if self.on_hold() {
            None
        } else {
            self.latch.destination(self.sdp_remote)
        };
        if let Some(addr) = destination {
            let frame = match self.player.next_frame(self.codec) {
                Some(frame) => frame,
                None => &self.silence,
            };
            let n = self
                .sender
                .write(self.audio_pt, self.talkspurt, frame, &mut self.tx_buf);
            self.talkspurt = false;
            // A send error (e.g. no route) is the network's loss; RTP goes on.
            let _ = self.socket.socket().send_to(&self.tx_buf[..n], addr).await;
            if self.player.is_playing() {
                self.player.skip_finished(self.codec);
                if !self.player.is_playing() {
                    let id = self.player.id;
                    self.events.emit(MediaEvent::PlaybackDone { id });
                }
            }
        } else {
            self.talkspurt = true;
        }
        // RFC 3550 §5.1: the clock runs whether or not we sent.
        self.sender.advance(FRAME_SAMPLES as u32);
    }

    /// Reads what has arrived since the last tick.
    fn receive(&mut self, now: Instant) {
        // Moved out (no allocation: an empty box takes its place) so that
        // the packets can borrow it while `self` is updated.
        let mut batch = std::mem::replace(&mut self.rx_batch, RecvBatch::new(0));
        // Not `RecvBatch::drain`: `on_datagram` needs `self`, which owns the
        // socket.
        for _ in 0..MAX_READS_PER_TICK.div_ceil(udp_batch::BATCH) {
            let drained = batch.recv(self.socket.socket());
            for (datagram, src) in batch.datagrams() {
                self.on_datagram(datagram, src, now);
            }
            // An error (ICMP reported on the socket, etc.): read on.
            if let Ok(Drained::Empty) = drained {
                break;
            }
        }
        self.rx_batch = batch;
    }

    fn on_datagram(&mut self, datagram: &[u8], src: SocketAddr, now: Instant) {
        let Ok(packet) = rtp::parse(datagram) else {
            return;
        };
        let pt = packet.payload_type;
        let ours = pt == self.audio_pt || Some(pt) == self.dtmf_pt || pt == PT_COMFORT_NOISE;
        match self.latch.on_packet(src, packet.ssrc, ours) {
            Verdict::Ignore => return,
            Verdict::Latched(addr) => self.events.emit(MediaEvent::RemoteLatched(addr)),
            Verdict::Accept => {}
        }
        self.last_rx = now;
        self.timed_out = false;

        if Some(pt) == self.dtmf_pt {
            // A caller that sends RFC 4733 may also leave the tone in the
            // audio: stop listening in-band so a digit is not seen twice.
            self.inband = None;
            if let Some(digit) =
                self.rfc4733
                    .on_packet(packet.ssrc, packet.timestamp, packet.payload)
            {
                self.events.emit(MediaEvent::Digit {
                    digit,
                    source: DtmfSource::Rfc4733,
                });
            }
        } else if pt == self.audio_pt {
            // Tap point for a recorder or bridge.
            tap_frame(&mut self.tap, &packet);
            if let Some(detector) = &mut self.inband {
                if let Some(digit) =
                    detect_inband(detector, self.codec, &mut self.pcm, packet.payload)
                {
                    self.events.emit(MediaEvent::Digit {
                        digit,
                        source: DtmfSource::Inband,
                    });
                }
            }
        }
    }
}

/// The number of 8 kHz samples in `d` (the G.711 media clock).
pub(crate) fn samples_in(d: Duration) -> u32 {
    (d.as_micros() / 125) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::port_pool::PortPool;
    use crate::media::testutil::{prompt, Peer};
    use tokio::net::UdpSocket;
    use tokio::time::timeout;

    async fn start(
        remote: Option<SocketAddr>,
        tweak: impl FnOnce(&mut SessionConfig),
    ) -> (MediaHandle, mpsc::Receiver<MediaEvent>) {
        let socket = RtpSocket::unpooled(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let mut cfg = SessionConfig::new(socket, remote, Codec::Pcmu);
        // The DTMF detectors are another engineer's work in progress.
        cfg.inband_dtmf = false;
        tweak(&mut cfg);
        spawn(cfg)
    }

    async fn next_event(events: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
        timeout(Duration::from_secs(120), events.recv())
            .await
            .expect("no event")
            .expect("event channel closed")
    }

    #[tokio::test(start_paused = true)]
    async fn plays_prompts_frame_by_frame_then_silence() {
        let peer = Peer::new().await;
        let (media, mut events) = start(Some(peer.addr()), |_| {}).await;
        media
            .play(7, vec![prompt(1, 3, 0), prompt(10, 1, 40)])
            .await
            .unwrap();

        let mut expected: Vec<Vec<u8>> = (1..=3).map(|b| vec![b; FRAME_SAMPLES]).collect();
        expected.push(vec![10; FRAME_SAMPLES]);
        let mut padded = vec![0x11; 40];
        padded.resize(FRAME_SAMPLES, 0xFF); // last frame padded with PCMU silence
        expected.push(padded);

        let first = peer.recv().await;
        let (_, pt, seq0, ts0, ssrc, _) = first;
        assert_eq!(pt, 0);
        assert!(first.0, "marker on the first packet");
        let mut received = vec![first.5];
        let mut last_at = Instant::now();
        for i in 1..expected.len() {
            assert_eq!(events.try_recv().ok(), None, "PlaybackDone too early");
            let (marker, _, seq, ts, s, payload) = peer.recv().await;
            assert!(!marker);
            assert_eq!(seq, seq0.wrapping_add(i as u16));
            assert_eq!(ts, ts0.wrapping_add(160 * i as u32));
            assert_eq!(s, ssrc);
            // 20 ms apart.
            assert_eq!(Instant::now() - last_at, FRAME_DURATION);
            last_at = Instant::now();
            received.push(payload);
        }
        assert_eq!(received, expected);
        assert_eq!(
            next_event(&mut events).await,
            MediaEvent::PlaybackDone { id: 7 }
        );

        // Idle: silence frames, same stream, no marker.
        let (marker, _, seq, ts, _, payload) = peer.recv().await;
        assert!(!marker);
        assert_eq!((seq, ts), (seq0.wrapping_add(5), ts0.wrapping_add(800)));
        assert_eq!(payload, vec![0xFF; FRAME_SAMPLES]);

        // A new prompt after silence continues the stream without a marker.
        media.play(8, vec![prompt(50, 1, 0)]).await.unwrap();
        let (marker, _, seq, _, _, payload) = peer.recv().await;
        assert!(!marker);
        assert_eq!(seq, seq0.wrapping_add(6));
        assert_eq!(payload, vec![50; FRAME_SAMPLES]);
        assert_eq!(
            next_event(&mut events).await,
            MediaEvent::PlaybackDone { id: 8 }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn play_replaces_stop_silences_and_empty_list_is_done_at_once() {
        let peer = Peer::new().await;
        let (media, mut events) = start(Some(peer.addr()), |_| {}).await;
        media.play(1, vec![prompt(1, 5, 0)]).await.unwrap();
        assert_eq!(peer.recv().await.5, vec![1; FRAME_SAMPLES]);
        media.play(2, vec![prompt(100, 1, 0)]).await.unwrap();
        assert_eq!(peer.recv().await.5, vec![100; FRAME_SAMPLES]);
        // Only the list that finished reports.
        assert_eq!(
            next_event(&mut events).await,
            MediaEvent::PlaybackDone { id: 2 }
        );

        media.play(3, vec![prompt(1, 5, 0)]).await.unwrap();
        assert_eq!(peer.recv().await.5, vec![1; FRAME_SAMPLES]);
        media.stop_playback().await.unwrap();
        assert_eq!(peer.recv().await.5, vec![0xFF; FRAME_SAMPLES]);

        media.play(4, vec![]).await.unwrap();
        assert_eq!(
            next_event(&mut events).await,
            MediaEvent::PlaybackDone { id: 4 }
        );
        assert_eq!(events.try_recv().ok(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn latches_to_the_callers_source_and_follows_its_ssrc_only() {
        let sdp_peer = Peer::new().await; // the address in the SDP (behind NAT)
        let (media, mut events) = start(Some(sdp_peer.addr()), |_| {}).await;
        sdp_peer.recv().await;

        // The caller's packets come from elsewhere (its NAT's public side).
        let nat = Peer::new().await;
        let mut caller = rtp::RtpSender::new();
        nat.send_rtp(media.local_addr(), &mut caller, 0).await;
        assert_eq!(
            next_event(&mut events).await,
            MediaEvent::RemoteLatched(nat.addr())
        );
        nat.recv().await;
        sdp_peer.drain();
        nat.recv().await;
        assert_eq!(sdp_peer.drain(), 0, "still sending to the SDP address");

        // Another stream from a third address is ignored.
        let stranger = Peer::new().await;
        stranger
            .send_rtp(media.local_addr(), &mut rtp::RtpSender::new(), 0)
            .await;
        nat.recv().await;
        nat.recv().await;
        assert_eq!(stranger.drain(), 0);
        assert_eq!(events.try_recv().ok(), None);

        // The caller's own stream from a new port (NAT rebinding): re-latch.
        let rebound = Peer::new().await;
        rebound.send_rtp(media.local_addr(), &mut caller, 0).await;
        assert_eq!(
            next_event(&mut events).await,
            MediaEvent::RemoteLatched(rebound.addr())
        );
        rebound.recv().await;

        // A re-INVITE with a new address drops the latch.
        let moved = Peer::new().await;
        media.set_remote(Some(moved.addr())).await.unwrap();
        moved.recv().await;
    }

    #[tokio::test(start_paused = true)]
    async fn rtp_timeout_fires_once_and_not_while_held() {
        let peer = Peer::new().await;
        let started = Instant::now();
        let (media, mut events) = start(Some(peer.addr()), |c| {
            c.rtp_timeout = Duration::from_secs(30);
        })
        .await;
        assert_eq!(next_event(&mut events).await, MediaEvent::RtpTimeout);
        let waited = Instant::now() - started;
        assert!(
            waited >= Duration::from_secs(30) && waited <= Duration::from_millis(30_040),
            "{waited:?}"
        );
        // Once only.
        assert!(timeout(Duration::from_secs(60), events.recv())
            .await
            .is_err());

        // RTP again re-arms it; then silence for 30 s fires again.
        peer.send_rtp(media.local_addr(), &mut rtp::RtpSender::new(), 0)
            .await;
        assert!(matches!(
            next_event(&mut events).await,
            MediaEvent::RemoteLatched(_)
        ));
        let rearmed = Instant::now();
        assert_eq!(next_event(&mut events).await, MediaEvent::RtpTimeout);
        assert!(Instant::now() - rearmed >= Duration::from_millis(29_960));

        // On hold: no timeout, however long; resumed: counts from the resume.
        media.set_hold(true).await.unwrap();
        peer.send_rtp(media.local_addr(), &mut rtp::RtpSender::new(), 0)
            .await;
        assert!(timeout(Duration::from_secs(300), events.recv())
            .await
            .is_err());
        media.set_hold(false).await.unwrap();
        let resumed = Instant::now();
        assert_eq!(next_event(&mut events).await, MediaEvent::RtpTimeout);
        assert!(Instant::now() - resumed >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn hold_sends_nothing_pauses_playback_and_marks_the_resume() {
        let peer = Peer::new().await;
        let (media, mut events) = start(Some(peer.addr()), |_| {}).await;
        media.play(1, vec![prompt(1, 3, 0)]).await.unwrap();
        let (_, _, seq0, ts0, _, p) = peer.recv().await;
        assert_eq!(p, vec![1; FRAME_SAMPLES]);
        media.set_hold(true).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(peer.drain(), 0);
        media.set_hold(false).await.unwrap();
        let (marker, _, seq, ts, _, p) = peer.recv().await;
        assert!(marker, "first packet after the hold starts a talkspurt");
        assert_eq!(seq, seq0.wrapping_add(1));
        // The clock ran on: about 1 s (8000 samples) later.
        let gap = ts.wrapping_sub(ts0);
        assert!((8000..=8320).contains(&gap), "{gap}");
        assert_eq!(p, vec![2; FRAME_SAMPLES], "playback resumed where it was");

        // Old-style hold: set_remote(None) also stops sending.
        media.set_remote(None).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(peer.drain(), 0);
        media.set_remote(Some(peer.addr())).await.unwrap();
        assert_eq!(peer.recv().await.5, vec![3; FRAME_SAMPLES]);
        assert_eq!(
            next_event(&mut events).await,
            MediaEvent::PlaybackDone { id: 1 }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tap_gets_received_audio_frames() {
        let peer = Peer::new().await;
        let (tap_tx, mut tap_rx) = mpsc::channel(8);
        let (media, _events) = start(Some(peer.addr()), |c| c.tap = Some(tap_tx)).await;
        let mut caller = rtp::RtpSender::with_initial(99, 500, 1000);
        peer.send_rtp(media.local_addr(), &mut caller, 0).await;
        // Comfort noise is not audio for the tap.
        peer.send_rtp(media.local_addr(), &mut caller, PT_COMFORT_NOISE)
            .await;
        peer.send_rtp(media.local_addr(), &mut caller, 0).await;
        let a = timeout(Duration::from_secs(1), tap_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let b = timeout(Duration::from_secs(1), tap_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.ssrc, a.sequence, a.timestamp), (99, 500, 1000));
        assert_eq!((b.sequence, b.timestamp), (502, 1320));
        assert_eq!(&a.payload[..], &[0xFF; FRAME_SAMPLES]);
        media.set_tap(None).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn garbage_datagrams_are_ignored() {
        let peer = Peer::new().await;
        let (media, mut events) = start(Some(peer.addr()), |_| {}).await;
        for junk in [
            &b""[..],
            b"\x80",
            b"hello world!!",
            &[0x80, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            peer.socket.send_to(junk, media.local_addr()).await.unwrap();
        }
        // Unknown payload types do not latch either.
        peer.send_rtp(media.local_addr(), &mut rtp::RtpSender::new(), 96)
            .await;
        peer.recv().await;
        peer.recv().await;
        assert_eq!(events.try_recv().ok(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn negotiated_config_follows_the_answer() {
        use crate::media::sdp::{Direction, Negotiated};
        let peer = Peer::new().await;
        let socket = RtpSocket::unpooled(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let n = Negotiated {
            codec: Codec::Pcma,
            audio_pt: 8,
            remote_rtp: Some(peer.addr()),
            dtmf_pt: None,
            direction: Direction::RecvOnly,
            remote_direction: Direction::SendOnly,
        };
        let mut cfg = SessionConfig::negotiated(socket, &n);
        cfg.inband_dtmf = false;
        assert!(cfg.held);
        let (media, _events) = spawn(cfg);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(peer.drain(), 0, "held: nothing sent");
        media.set_hold(false).await.unwrap();
        let (marker, pt, _, _, _, payload) = peer.recv().await;
        assert!(marker);
        assert_eq!(pt, 8);
        assert_eq!(payload, vec![0xD5; FRAME_SAMPLES]);
    }

    #[tokio::test]
    async fn closing_or_dropping_the_handle_returns_the_port() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 31000, 31010).unwrap();
        let before = pool.available();
        let (media, _events) = spawn(SessionConfig::new(
            pool.allocate().unwrap(),
            None,
            Codec::Pcma,
        ));
        assert_eq!(pool.available(), before - 1);
        media.close().await;
        assert_eq!(pool.available(), before);

        let (media, _events) = spawn(SessionConfig::new(
            pool.allocate().unwrap(),
            None,
            Codec::Pcma,
        ));
        drop(media);
        for _ in 0..100 {
            if pool.available() == before {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.available(), before);
    }

    #[tokio::test(start_paused = true)]
    #[ignore = "needs dtmf module"]
    async fn digits_from_rfc4733_and_inband() {
        let peer = Peer::new().await;
        let (media, mut events) = start(Some(peer.addr()), |c| {
            c.dtmf_pt = Some(101);
            c.inband_dtmf = true;
        })
        .await;
        let mut caller = rtp::RtpSender::new();
        let mut buf = [0u8; 32];
        for (dur, end) in [
            (160, false),
            (320, false),
            (640, true),
            (640, true),
            (640, true),
        ] {
            let n = caller.write_event(101, '5', dur, end, &mut buf).unwrap();
            peer.socket
                .send_to(&buf[..n], media.local_addr())
                .await
                .unwrap();
            tokio::time::sleep(FRAME_DURATION).await;
        }
        let mut digits = Vec::new();
        while let Ok(Some(e)) = timeout(Duration::from_millis(200), events.recv()).await {
            if let MediaEvent::Digit { digit, source } = e {
                digits.push((digit, source));
            }
        }
        assert_eq!(digits, vec![('5', DtmfSource::Rfc4733)]);

        // In-band: 770 Hz + 1336 Hz ("5") for 100 ms, as a gateway sends it.
        let (media, mut events) = start(Some(peer.addr()), |c| c.inband_dtmf = true).await;
        let mut caller = rtp::RtpSender::new();
        for frame in 0..5 {
            let pcm: Vec<i16> = (0..FRAME_SAMPLES)
                .map(|i| {
                    let t = (frame * FRAME_SAMPLES + i) as f64 / 8000.0;
                    let tau = std::f64::consts::TAU;
                    (6000.0 * ((tau * 770.0 * t).sin() + (tau * 1336.0 * t).sin())) as i16
                })
                .collect();
            let mut enc = Vec::new();
            g711::encode(Codec::Pcmu, &pcm, &mut enc);
            let mut buf = [0u8; 200];
            let n = caller.write(0, frame == 0, &enc, &mut buf);
            caller.advance(FRAME_SAMPLES as u32);
            peer.socket
                .send_to(&buf[..n], media.local_addr())
                .await
                .unwrap();
            tokio::time::sleep(FRAME_DURATION).await;
        }
        let mut digits = Vec::new();
        while let Ok(Some(e)) = timeout(Duration::from_millis(300), events.recv()).await {
            if let MediaEvent::Digit { digit, source } = e {
                digits.push((digit, source));
            }
        }
        assert_eq!(digits, vec![('5', DtmfSource::Inband)]);
    }
}
