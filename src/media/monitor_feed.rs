//! The media of a live monitor's leg (同步监听, silent listen): what a
//! supervisor hears of an agent's bridged call.
//!
//! [`spawn`] takes the supervisor leg's [`LegMedia`] and the receiving end
//! of a tap on the agent's bridge ([`super::bridge::BridgeControl::add_tap`])
//! and starts one task that, every 20 ms, mixes what each side of the call
//! sent since ([`Mixer`]: G.711 decoded, summed with saturation) and sends
//! it to the supervisor in the leg's own negotiated codec and stream (SSRC,
//! sequence numbers, timestamps advancing 160 a frame). A side that sent
//! nothing (or holds) adds silence; with neither, the supervisor hears
//! silence frames, so its jitter buffer and NAT binding stay fed.
//!
//! What the supervisor sends is read (to latch symmetric RTP, as in the
//! session). Listening, it is dropped: neither party of the call hears it.
//! Whispering or barging in, its audio is decoded and offered to the
//! bridge's voice ([`super::voice_mix`]; never waited on: a full voice
//! loses the frame), which mixes it into what the agent, or both sides,
//! are sent.
//!
//! The bridge never waits on the tap (a full tap loses frames there); this
//! task reads it as it comes and buffers at most [`MAX_BUFFERED`] samples a
//! side (older ones are dropped, so a side that sends faster than 50
//! packets/s cannot build up delay). The task ends when the tap closes
//! (the bridge ended) — [`FeedEnd::TapClosed`] —, when the supervisor's
//! phone has sent no RTP for the leg's RTP timeout (it vanished without a
//! BYE) — [`FeedEnd::SupervisorSilent`] —, or when `stop` fires.

use std::collections::VecDeque;
use std::io;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::bridge::Side;
use super::latch::Verdict;
use super::sdp::Negotiated;
use super::session::{LegMedia, FRAME_DURATION, PT_COMFORT_NOISE, RECV_BUF};
use super::tap::TapEvent;
use super::voice_mix::{push_bounded, VoiceTx};
use super::{g711, rtp, FRAME_SAMPLES};

/// At most this many samples (60 ms) wait per side; beyond, the oldest go.
pub const MAX_BUFFERED: usize = 3 * FRAME_SAMPLES;
/// At most this many datagrams are read from the supervisor per tick.
const MAX_READS_PER_TICK: usize = 16;
/// A late tick is caught up frame by frame up to this many frames behind.
const MAX_CATCH_UP: u32 = 3;

/// Why the feed stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnd {
    /// The tap closed: the bridged call is over.
    TapClosed,
    /// `stop` fired (the supervisor hung up, or the daemon stops).
    Stopped,
    /// No RTP from the supervisor for the leg's RTP timeout (not on hold).
    SupervisorSilent,
}

/// Both sides' decoded audio waiting to be mixed.
#[derive(Debug, Default)]
pub struct Mixer {
    sides: [VecDeque<i16>; 2],
    held: [bool; 2],
    scratch: Vec<i16>,
}

impl Mixer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one tap event: audio is decoded and queued for its side
    /// (while the side holds it is dropped); a hold empties the side.
    pub fn push(&mut self, event: &TapEvent) {
        match event {
            TapEvent::Audio {
                side,
                codec,
                payload,
                ..
            } => {
                let i = side.index();
                if self.held[i] {
                    return;
                }
                self.scratch.clear();
                g711::decode(*codec, payload, &mut self.scratch);
                push_bounded(&mut self.sides[i], &self.scratch, MAX_BUFFERED);
            }
            TapEvent::Hold { side, held, .. } => {
                let i = side.index();
                self.held[i] = *held;
                if *held {
                    self.sides[i].clear();
                }
            }
            // Another monitor's voice is not on this tap.
            TapEvent::Voice { .. } => {}
        }
    }

    /// Samples waiting on `side`.
    pub fn buffered(&self, side: Side) -> usize {
        self.sides[side.index()].len()
    }

    /// The next 20 ms: both sides' next samples summed with saturation, a
    /// side with nothing waiting counting as silence.
    pub fn next_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) {
        let [caller, agent] = &mut self.sides;
        for s in out.iter_mut() {
            let a = caller.pop_front().unwrap_or(0);
            let b = agent.pop_front().unwrap_or(0);
            *s = a.saturating_add(b);
        }
    }
}

/// Where what the supervisor says goes, whispering or barging in.
#[derive(Debug)]
pub struct SupervisorVoice {
    /// Into the bridge, mixed into what the agent (or both) hear.
    pub bridge: VoiceTx,
    /// Into the call's recording, if it is recorded
    /// ([`crate::recording::RecorderControl::voice_tap`]).
    pub recording: Option<mpsc::Sender<TapEvent>>,
}

/// Starts the feed task for the supervisor's leg `leg`, mixing what `tap`
/// receives, until the tap closes or `stop` fires; what the supervisor says
/// goes to `voice` if given (whisper, barge), else nowhere. A new
/// offer/answer on the leg (the supervisor's phone holds, resumes or moves:
/// a re-INVITE) comes on `media` and applies from the next frame. The
/// leg's socket is closed (its port back in the pool) when the task ends.
pub fn spawn(
    leg: LegMedia,
    tap: mpsc::Receiver<TapEvent>,
    voice: Option<SupervisorVoice>,
    media: watch::Receiver<Negotiated>,
    stop: CancellationToken,
) -> JoinHandle<FeedEnd> {
    let spawner = leg.socket.home().spawner();
    spawner.spawn(Feed::new(leg, voice).run(tap, media, stop))
}

struct Feed {
    leg: LegMedia,
    mixer: Mixer,
    pcm: [i16; FRAME_SAMPLES],
    encoded: Vec<u8>,
    tx_buf: [u8; rtp::HEADER_LEN + FRAME_SAMPLES],
    rx_buf: Box<[u8]>,
    talkspurt: bool,
    voice: Option<SupervisorVoice>,
    last_rx: Instant,
}

impl Feed {
    fn new(leg: LegMedia, voice: Option<SupervisorVoice>) -> Self {
        Feed {
            leg,
            mixer: Mixer::new(),
            pcm: [0; FRAME_SAMPLES],
            encoded: Vec::with_capacity(FRAME_SAMPLES),
            tx_buf: [0; rtp::HEADER_LEN + FRAME_SAMPLES],
            rx_buf: vec![0; RECV_BUF].into_boxed_slice(),
            talkspurt: true,
            voice,
            last_rx: Instant::now(),
        }
    }

    async fn run(
        mut self,
        mut tap: mpsc::Receiver<TapEvent>,
        mut media: watch::Receiver<Negotiated>,
        stop: CancellationToken,
    ) -> FeedEnd {
        let mut media_open = true;
        // The leg's media clock ran on since it was made.
        let elapsed = Instant::now() - self.leg.clock_at;
        self.leg.sender.advance(super::session::samples_in(elapsed));
        let mut tick = tokio::time::interval(FRAME_DURATION);
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return FeedEnd::Stopped,
                ev = tap.recv() => match ev {
                    Some(ev) => self.mixer.push(&ev),
                    None => return FeedEnd::TapClosed,
                },
                changed = media.changed(), if media_open => match changed {
                    Ok(()) => {
                        let n = media.borrow_and_update().clone();
                        self.renegotiated(&n);
                    }
                    Err(_) => media_open = false,
                },
                at = tick.tick() => {
                    if Instant::now().saturating_duration_since(at) > FRAME_DURATION * MAX_CATCH_UP {
                        tick.reset();
                    }
                    if !self.on_tick().await {
                        return FeedEnd::SupervisorSilent;
                    }
                }
            }
        }
    }

    /// The leg's new offer/answer: codec, where to send, hold (RFC 3264
    /// §8.4: while the supervisor's phone holds, nothing is sent to it and
    /// its silence is no timeout).
    fn renegotiated(&mut self, n: &Negotiated) {
        let held = n.remote_rtp.is_none() || !n.direction.sends();
        if n.remote_rtp != self.leg.sdp_remote {
            self.leg.latch.reset();
        }
        if self.leg.held && !held {
            self.last_rx = Instant::now();
            self.talkspurt = true;
        }
        self.leg.codec = n.codec;
        self.leg.audio_pt = n.audio_pt;
        self.leg.dtmf_pt = n.dtmf_pt;
        self.leg.sdp_remote = n.remote_rtp;
        self.leg.held = held;
        tracing::debug!(held, remote = ?n.remote_rtp, codec = n.codec.name(), "monitor leg renegotiated");
    }

    /// One frame to the supervisor; false once it has been silent for the
    /// RTP timeout.
    async fn on_tick(&mut self) -> bool {
        let now = Instant::now();
        self.drain_supervisor(now);
        if !self.leg.held && now - self.last_rx >= self.leg.rtp_timeout {
            return false;
        }
        self.mixer.next_frame(&mut self.pcm);
        let destination = if self.leg.held {
            None
        } else {
            self.leg.latch.destination(self.leg.sdp_remote)
        };
        if let Some(addr) = destination {
            self.encoded.clear();
            g711::encode(self.leg.codec, &self.pcm, &mut self.encoded);
            let n = self.leg.sender.write(
                self.leg.audio_pt,
                self.talkspurt,
                &self.encoded,
                &mut self.tx_buf,
            );
            self.talkspurt = false;
            // A send error is the network's loss; the feed goes on.
            let _ = self
                .leg
                .socket
                .socket()
                .send_to(&self.tx_buf[..n], addr)
                .await;
        } else {
            self.talkspurt = true;
        }
        // RFC 3550 §5.1: the clock runs whether or not we sent.
        self.leg.sender.advance(FRAME_SAMPLES as u32);
        true
    }

    /// Reads what the supervisor sent (latching its source); its audio goes
    /// to the voice, if any.
    fn drain_supervisor(&mut self, now: Instant) {
        for _ in 0..MAX_READS_PER_TICK {
            match self.leg.socket.socket().try_recv_from(&mut self.rx_buf) {
                Ok((len, src)) => {
                    let Ok(packet) = rtp::parse(&self.rx_buf[..len]) else {
                        continue;
                    };
                    let pt = packet.payload_type;
                    let ours = pt == self.leg.audio_pt
                        || Some(pt) == self.leg.dtmf_pt
                        || pt == PT_COMFORT_NOISE;
                    match self.leg.latch.on_packet(src, packet.ssrc, ours) {
                        Verdict::Ignore => continue,
                        Verdict::Latched(addr) => tracing::debug!(%addr, "monitor leg latched"),
                        Verdict::Accept => {}
                    }
                    self.last_rx = now;
                    if pt != self.leg.audio_pt {
                        continue;
                    }
                    if let Some(voice) = &mut self.voice {
                        let mut pcm = Vec::with_capacity(packet.payload.len());
                        g711::decode(self.leg.codec, packet.payload, &mut pcm);
                        if let Some(rec) = &voice.recording {
                            let event = TapEvent::Voice {
                                at: now,
                                pcm: pcm.as_slice().into(),
                            };
                            if let Err(mpsc::error::TrySendError::Closed(_)) = rec.try_send(event) {
                                voice.recording = None;
                            }
                        }
                        if let Err(mpsc::error::TrySendError::Closed(_)) =
                            voice.bridge.try_send(pcm)
                        {
                            self.voice = None;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::port_pool::RtpSocket;
    use crate::media::sdp::Direction;
    use crate::media::session::SessionConfig;
    use crate::media::Codec;
    use bytes::Bytes;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::net::UdpSocket;

    fn audio(side: Side, byte: u8, len: usize) -> TapEvent {
        TapEvent::Audio {
            side,
            at: Instant::now(),
            codec: Codec::Pcmu,
            ssrc: 1,
            timestamp: 0,
            payload: Bytes::from(vec![byte; len]),
        }
    }

    fn ulaw(byte: u8) -> i16 {
        g711::decode_sample(Codec::Pcmu, byte)
    }

    fn negotiated(remote: SocketAddr, codec: Codec, direction: Direction) -> Negotiated {
        Negotiated {
            codec,
            audio_pt: codec.payload_type(),
            remote_rtp: Some(remote),
            dtmf_pt: None,
            direction,
            remote_direction: Direction::SendRecv,
        }
    }

    /// A leg whose offer/answer never changes (the sender is gone at once).
    fn fixed_media(remote: SocketAddr, codec: Codec) -> watch::Receiver<Negotiated> {
        watch::channel(negotiated(remote, codec, Direction::SendRecv)).1
    }

    #[test]
    fn mixes_both_sides_with_saturation_and_silence_for_a_missing_side() {
        let mut m = Mixer::new();
        m.push(&audio(Side::Caller, 0x42, FRAME_SAMPLES));
        m.push(&audio(Side::Agent, 0x24, FRAME_SAMPLES));
        let mut out = [0; FRAME_SAMPLES];
        m.next_frame(&mut out);
        let want = ulaw(0x42).saturating_add(ulaw(0x24));
        assert!(out.iter().all(|&s| s == want), "{:?}", &out[..4]);
        // Only the caller: the agent's side is silence.
        m.push(&audio(Side::Caller, 0x42, FRAME_SAMPLES));
        m.next_frame(&mut out);
        assert!(out.iter().all(|&s| s == ulaw(0x42)));
        // Nothing: silence.
        m.next_frame(&mut out);
        assert!(out.iter().all(|&s| s == 0));
        // Two loud samples of one sign saturate.
        m.push(&audio(Side::Caller, 0x00, 1));
        m.push(&audio(Side::Agent, 0x00, 1));
        m.next_frame(&mut out);
        assert_eq!(out[0], i16::MIN);
        m.push(&audio(Side::Caller, 0x80, 1));
        m.push(&audio(Side::Agent, 0x80, 1));
        m.next_frame(&mut out);
        assert_eq!(out[0], i16::MAX);
    }

    #[test]
    fn a_side_buffers_at_most_60_ms_and_a_hold_empties_it() {
        let mut m = Mixer::new();
        for _ in 0..10 {
            m.push(&audio(Side::Agent, 0x24, FRAME_SAMPLES));
        }
        assert_eq!(m.buffered(Side::Agent), MAX_BUFFERED);
        m.push(&TapEvent::Hold {
            side: Side::Agent,
            held: true,
            at: Instant::now(),
        });
        assert_eq!(m.buffered(Side::Agent), 0);
        m.push(&audio(Side::Agent, 0x24, FRAME_SAMPLES));
        assert_eq!(m.buffered(Side::Agent), 0, "dropped while held");
        m.push(&TapEvent::Hold {
            side: Side::Agent,
            held: false,
            at: Instant::now(),
        });
        m.push(&audio(Side::Agent, 0x24, FRAME_SAMPLES));
        assert_eq!(m.buffered(Side::Agent), FRAME_SAMPLES);
    }

    #[tokio::test(start_paused = true)]
    async fn a_supervisor_that_sends_nothing_for_the_rtp_timeout_ends_the_feed() {
        let supervisor = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let socket = RtpSocket::unpooled(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let mut cfg =
            SessionConfig::new(socket, Some(supervisor.local_addr().unwrap()), Codec::Pcmu);
        cfg.rtp_timeout = Duration::from_secs(2);
        let (_tap_tx, tap_rx) = mpsc::channel(64);
        let started = Instant::now();
        let feed = spawn(
            LegMedia::new(cfg),
            tap_rx,
            None,
            fixed_media(supervisor.local_addr().unwrap(), Codec::Pcmu),
            CancellationToken::new(),
        );
        let end = tokio::time::timeout(Duration::from_secs(10), feed)
            .await
            .expect("the feed ends")
            .unwrap();
        assert_eq!(end, FeedEnd::SupervisorSilent);
        assert!(started.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test]
    async fn sends_the_mix_every_20_ms_drops_what_the_supervisor_sends_and_ends_with_the_tap() {
        let supervisor = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let socket = RtpSocket::unpooled(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let ours = socket.local_addr();
        let cfg = SessionConfig::new(socket, Some(supervisor.local_addr().unwrap()), Codec::Pcma);
        let (tap_tx, tap_rx) = mpsc::channel(64);
        let feed = spawn(
            LegMedia::new(cfg),
            tap_rx,
            None,
            fixed_media(supervisor.local_addr().unwrap(), Codec::Pcma),
            CancellationToken::new(),
        );
        // The supervisor talks; nobody gets it (nothing to assert but no
        // crash), and the feed latches to it.
        let mut pkt = [0u8; rtp::HEADER_LEN + FRAME_SAMPLES];
        let n = rtp::RtpSender::new().write(8, true, &[0x11; FRAME_SAMPLES], &mut pkt);
        supervisor.send_to(&pkt[..n], ours).await.unwrap();
        let mut buf = [0u8; 1500];
        let mut mixed = 0;
        for _ in 0..50 {
            tap_tx
                .send(audio(Side::Caller, 0x42, FRAME_SAMPLES))
                .await
                .unwrap();
            tap_tx
                .send(audio(Side::Agent, 0x24, FRAME_SAMPLES))
                .await
                .unwrap();
            let (len, _) =
                tokio::time::timeout(Duration::from_secs(2), supervisor.recv_from(&mut buf))
                    .await
                    .expect("a frame")
                    .unwrap();
            let p = rtp::parse(&buf[..len]).unwrap();
            assert_eq!(p.payload_type, 8);
            assert_eq!(p.payload.len(), FRAME_SAMPLES);
            let expect = audio_codec_algorithms::encode_alaw(ulaw(0x42).saturating_add(ulaw(0x24)));
            if p.payload.iter().all(|&b| b == expect) {
                mixed += 1;
            }
        }
        assert!(mixed > 10, "mixed frames: {mixed}");
        drop(tap_tx);
        let end = tokio::time::timeout(Duration::from_secs(2), feed)
            .await
            .expect("the feed ends")
            .unwrap();
        assert_eq!(end, FeedEnd::TapClosed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_supervisor_on_hold_is_sent_nothing_and_its_silence_is_no_timeout() {
        let supervisor = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = supervisor.local_addr().unwrap();
        let socket = RtpSocket::unpooled(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
        let mut cfg = SessionConfig::new(socket, Some(to), Codec::Pcmu);
        cfg.rtp_timeout = Duration::from_secs(2);
        let (media_tx, media_rx) = watch::channel(negotiated(to, Codec::Pcmu, Direction::SendRecv));
        let (_tap_tx, tap_rx) = mpsc::channel(64);
        let feed = spawn(
            LegMedia::new(cfg),
            tap_rx,
            None,
            media_rx,
            CancellationToken::new(),
        );
        let mut buf = [0u8; 1500];
        let (len, _) = tokio::time::timeout(Duration::from_secs(1), supervisor.recv_from(&mut buf))
            .await
            .expect("a frame before the hold")
            .unwrap();
        assert_eq!(rtp::parse(&buf[..len]).unwrap().payload_type, 0);
        // The phone holds (its re-INVITE: sendonly, our answer recvonly).
        media_tx
            .send(negotiated(to, Codec::Pcmu, Direction::RecvOnly))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        while supervisor.try_recv_from(&mut buf).is_ok() {}
        // 5 s on hold, silent: no frame to it, and the feed goes on.
        let quiet =
            tokio::time::timeout(Duration::from_secs(5), supervisor.recv_from(&mut buf)).await;
        assert!(quiet.is_err(), "nothing is sent to a held phone");
        assert!(!feed.is_finished(), "silence while held is no timeout");
        // Resumed, now with PCMA: frames come again, in the new codec.
        media_tx
            .send(negotiated(to, Codec::Pcma, Direction::SendRecv))
            .unwrap();
        let (len, _) = tokio::time::timeout(Duration::from_secs(1), supervisor.recv_from(&mut buf))
            .await
            .expect("frames after resume")
            .unwrap();
        assert_eq!(rtp::parse(&buf[..len]).unwrap().payload_type, 8);
        // And the RTP timeout counts from the resume: 2 s later it ends.
        let end = tokio::time::timeout(Duration::from_secs(10), feed)
            .await
            .expect("the feed ends")
            .unwrap();
        assert_eq!(end, FeedEnd::SupervisorSilent);
    }
}
