//! SIP transports: UDP and TCP listeners on one address.

use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    /// Reliable transports switch off retransmission timers (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp)
    }

    /// The token used in Via (`SIP/2.0/UDP`).
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }
}

/// Where a message came from or goes to: transport and remote address. For
/// TCP the endpoint keeps one connection per remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub kind: TransportKind,
    pub addr: SocketAddr,
}
