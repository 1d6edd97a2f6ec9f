//! Test helpers for the media tasks: a UDP peer on 127.0.0.1 that sends and
//! receives RTP, and prompts with recognisable bytes.

use super::prompts::Prompt;
use super::{rtp, FRAME_SAMPLES};
use crate::lang::Lang;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// A prompt whose PCMU bytes are `frames` frames of recognisable bytes
/// (`first + i` in frame i), plus `tail` bytes of a last, unpadded frame.
pub fn prompt(first: u8, frames: usize, tail: usize) -> Arc<Prompt> {
    let mut bytes = Vec::new();
    for i in 0..frames {
        bytes.extend(std::iter::repeat_n(first + i as u8, FRAME_SAMPLES));
    }
    bytes.extend(std::iter::repeat_n(0x11, tail));
    let len = bytes.len();
    Arc::new(Prompt {
        name: format!("test_{first}"),
        lang: Lang::En,
        samples: vec![0i16; len].into(),
        pcmu: bytes.into(),
        pcma: vec![0xD5; len].into(),
    })
}

pub struct Peer {
    pub socket: UdpSocket,
}

impl Peer {
    pub async fn new() -> Self {
        Peer {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// The next RTP packet: (marker, pt, seq, ts, ssrc, payload).
    pub async fn recv(&self) -> (bool, u8, u16, u32, u32, Vec<u8>) {
        let mut buf = [0u8; 1500];
        let (n, _) = timeout(Duration::from_secs(5), self.socket.recv_from(&mut buf))
            .await
            .expect("no RTP within 5 s")
            .unwrap();
        let p = rtp::parse(&buf[..n]).unwrap();
        (
            p.marker,
            p.payload_type,
            p.sequence,
            p.timestamp,
            p.ssrc,
            p.payload.to_vec(),
        )
    }

    pub fn drain(&self) -> usize {
        let mut buf = [0u8; 1500];
        let mut n = 0;
        while self.socket.try_recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    }

    pub async fn send_rtp(&self, to: SocketAddr, sender: &mut rtp::RtpSender, pt: u8) {
        let mut buf = [0u8; 200];
        let n = sender.write(pt, false, &[0xFF; FRAME_SAMPLES], &mut buf);
        sender.advance(FRAME_SAMPLES as u32);
        self.socket.send_to(&buf[..n], to).await.unwrap();
    }
}

impl Peer {
    /// Sends one packet with `payload` (then advances the sender's clock by
    /// the payload's length, one sample per G.711 byte).
    pub async fn send_payload(
        &self,
        to: SocketAddr,
        sender: &mut rtp::RtpSender,
        pt: u8,
        marker: bool,
        payload: &[u8],
    ) {
        let mut buf = [0u8; 1500];
        let n = sender.write(pt, marker, payload, &mut buf);
        sender.advance(payload.len() as u32);
        self.socket.send_to(&buf[..n], to).await.unwrap();
    }
}
