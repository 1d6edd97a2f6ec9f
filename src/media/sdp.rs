//! SDP (RFC 4566) parsing and the RFC 3264 offer/answer model for one audio
//! stream of G.711 plus RFC 4733 telephone-events.
//!
//! The parser is lenient the way real phones need: CRLF or bare LF line
//! ends, unknown and malformed attribute lines ignored, `a=rtpmap`/`fmtp`
//! and direction attributes at session or media level, several `m=` lines,
//! `c=IN IP6`, old-style hold `c=IN IP4 0.0.0.0` (RFC 3264 §8.4), and
//! non-UTF-8 bytes (e.g. a GBK session name) replaced rather than rejected.
//! Only an unusable `m=` or `c=` line is an error. It never panics on input.
//!
//! Re-INVITEs (RFC 3264 §8): keep one [`SdpSession`] per call. It keeps the
//! origin's session id, and bumps the version only when the body changes:
//! "the "o=" line of the new SDP MUST be identical to that in the previous
//! SDP, except that the version in the origin field MUST increment by one
//! from the previous SDP. If the version in the origin line does not
//! increment, the SDP MUST be identical to the SDP with that version number."

use super::Codec;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// Bodies larger than this are refused (a real offer is under 2 KiB).
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// At most this many `m=` lines are accepted.
pub const MAX_MEDIA: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    #[error("SDP body larger than {MAX_SDP_LEN} bytes")]
    TooLarge,
    #[error("more than {MAX_MEDIA} m= lines")]
    TooManyMedia,
    #[error("malformed m= line {line}: {text:?}")]
    BadMedia { line: usize, text: String },
    #[error("malformed c= line {line}: {text:?}")]
    BadConnection { line: usize, text: String },
    #[error("no m= line")]
    NoMedia,
    /// No audio stream with a codec we support: the call answers 488.
    #[error("no common audio codec")]
    NoCommonCodec,
}

impl SdpError {
    /// The SIP status for an INVITE whose SDP gave this error: 400 for a
    /// malformed body, 488 Not Acceptable Here (RFC 3261 §21.4.26) when it
    /// is well-formed but offers nothing we can use.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::NoCommonCodec | SdpError::NoMedia => 488,
            _ => 400,
        }
    }
}

/// Media direction attribute (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_attr(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer takes to an offer in this direction, when we
    /// are willing to both send and receive (RFC 3264 §6.1: sendonly →
    /// recvonly, recvonly → sendonly, inactive → inactive).
    pub fn reversed(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// `o=` (RFC 4566 §5.2). Ids are kept as text: phones send values that do
/// not fit a u64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: String,
    pub address: String,
}

/// `c=` (RFC 4566 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `IP4` or `IP6`.
    pub addr_type: String,
    /// The address as written, without a `/ttl` suffix.
    pub address: String,
}

impl Connection {
    /// The address as an IP, if it is a literal (hostnames are not resolved).
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// Old-style hold: `0.0.0.0` (RFC 3264 §8.4; RFC 2543) or `::`.
    pub fn is_hold(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// `a=rtpmap:<pt> <name>/<rate>[/<channels>]` (RFC 4566 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

/// `a=fmtp:<pt> <params>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub payload_type: u8,
    pub params: String,
}

/// One `m=` section, with session-level defaults already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `image`, ...
    pub media: String,
    pub port: u16,
    pub proto: String,
    /// The formats that are payload type numbers (RTP media).
    pub formats: Vec<u8>,
    /// The format list as written (kept to echo in a rejected m= line).
    pub fmt_list: String,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<Fmtp>,
    /// Media-level direction, else session-level, else sendrecv.
    pub direction: Direction,
    /// Media-level `c=`, else session-level.
    pub connection: Option<Connection>,
    pub ptime: Option<u32>,
}

impl MediaDescription {
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// Whether this is RTP audio we could carry (`RTP/AVP`; SRTP profiles
    /// are not supported).
    fn is_rtp_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio") && self.proto.eq_ignore_ascii_case("RTP/AVP")
    }

    /// The codec payload type `pt` stands for: a static type (RFC 3551 §6)
    /// unless an rtpmap says otherwise, or a dynamic type mapped by name.
    fn codec_of(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(m) => {
                if m.clock_rate != 8000 || m.channels.is_some_and(|c| c != 1) {
                    None
                } else if m.encoding.eq_ignore_ascii_case("PCMU") {
                    Some(Codec::Pcmu)
                } else if m.encoding.eq_ignore_ascii_case("PCMA") {
                    Some(Codec::Pcma)
                } else {
                    None
                }
            }
            None => match pt {
                0 => Some(Codec::Pcmu),
                8 => Some(Codec::Pcma),
                _ => None,
            },
        }
    }

    /// The payload type of `telephone-event/8000` (RFC 4733 §7.1.1), if offered.
    fn telephone_event_pt(&self) -> Option<u8> {
        self.formats.iter().copied().find(|&pt| {
            self.rtpmap(pt).is_some_and(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000
            })
        })
    }

    /// Where to send RTP: `None` when there is no usable address or the
    /// peer holds with `0.0.0.0`.
    fn rtp_addr(&self) -> Option<SocketAddr> {
        let c = self.connection.as_ref()?;
        let ip = c.ip()?;
        if ip.is_unspecified() || self.port == 0 {
            return None;
        }
        Some(SocketAddr::new(ip, self.port))
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    pub origin: Option<Origin>,
    pub session_name: String,
    pub connection: Option<Connection>,
    /// Session-level direction attribute, if any.
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Parses an SDP body (RFC 4566 §5), leniently (see the module docs).
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        if body.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge);
        }
        let text = String::from_utf8_lossy(body);
        let mut sdp = SessionDescription::default();
        // Session-level rtpmap/fmtp (seen from some phones) apply to every m=.
        let mut session_maps = Vec::new();
        let mut session_fmtps = Vec::new();
        let mut media_dirs: Vec<Option<Direction>> = Vec::new();

        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let current = sdp.media.last_mut();
            match kind.trim() {
                "o" if current.is_none() => sdp.origin = parse_origin(value),
                "s" if current.is_none() => sdp.session_name = value.to_string(),
                "c" => {
                    let c = parse_connection(value).ok_or_else(|| SdpError::BadConnection {
                        line: line_no,
                        text: line.chars().take(100).collect(),
                    })?;
                    match current {
                        Some(m) => m.connection = Some(c),
                        None => sdp.connection = Some(c),
                    }
                }
                "m" => {
                    if sdp.media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooManyMedia);
                    }
                    let m = parse_media(value).ok_or_else(|| SdpError::BadMedia {
                        line: line_no,
                        text: line.chars().take(100).collect(),
                    })?;
                    sdp.media.push(m);
                    media_dirs.push(None);
                }
                "a" => {
                    let (name, arg) = match value.split_once(':') {
                        Some((n, a)) => (n.trim(), Some(a.trim())),
                        None => (value, None),
                    };
                    match (name, arg) {
                        ("rtpmap", Some(arg)) => {
                            if let Some(map) = parse_rtpmap(arg) {
                                match current {
                                    Some(m) => m.rtpmaps.push(map),
                                    None => session_maps.push(map),
                                }
                            }
                        }
                        ("fmtp", Some(arg)) => {
                            if let Some(f) = parse_fmtp(arg) {
                                match current {
                                    Some(m) => m.fmtps.push(f),
                                    None => session_fmtps.push(f),
                                }
                            }
                        }
                        ("ptime", Some(arg)) => {
                            if let (Some(m), Ok(p)) = (current, arg.parse()) {
                                m.ptime = Some(p);
                            }
                        }
                        (name, None) => {
                            if let Some(d) = Direction::from_attr(name) {
                                match media_dirs.last_mut() {
                                    Some(slot) => *slot = Some(d),
                                    None => sdp.direction = Some(d),
                                }
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }

        for (m, dir) in sdp.media.iter_mut().zip(media_dirs) {
            m.direction = dir.or(sdp.direction).unwrap_or_default();
            if m.connection.is_none() {
                m.connection = sdp.connection.clone();
            }
            for map in &session_maps {
                if m.rtpmap(map.payload_type).is_none() {
                    m.rtpmaps.push(map.clone());
                }
            }
            for f in &session_fmtps {
                if !m.fmtps.iter().any(|x| x.payload_type == f.payload_type) {
                    m.fmtps.push(f.clone());
                }
            }
        }
        Ok(sdp)
    }
}

fn parse_origin(v: &str) -> Option<Origin> {
    let f: Vec<&str> = v.split_whitespace().collect();
    if f.len() < 6 {
        return None;
    }
    Some(Origin {
        username: f[0].to_string(),
        session_id: f[1].to_string(),
        session_version: f[2].to_string(),
        address: f[5].to_string(),
    })
}

fn parse_connection(v: &str) -> Option<Connection> {
    let mut f = v.split_whitespace();
    let _net = f.next()?;
    let addr_type = f.next()?.to_ascii_uppercase();
    let addr = f.next()?;
    // Multicast `/ttl[/count]` suffixes are dropped (RFC 4566 §5.7).
    let address = addr.split('/').next().unwrap_or(addr).to_string();
    if address.is_empty() {
        return None;
    }
    Some(Connection { addr_type, address })
}

fn parse_media(v: &str) -> Option<MediaDescription> {
    let mut f = v.split_whitespace();
    let media = f.next()?.to_string();
    // `<port>/<number of ports>` (RFC 4566 §5.14): only the base port matters.
    let port_field = f.next()?;
    let port = port_field.split('/').next()?.parse().ok()?;
    let proto = f.next()?.to_string();
    let fmts: Vec<&str> = f.collect();
    Some(MediaDescription {
        media,
        port,
        proto,
        formats: fmts.iter().filter_map(|s| s.parse().ok()).collect(),
        fmt_list: fmts.join(" "),
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        direction: Direction::default(),
        connection: None,
        ptime: None,
    })
}

fn parse_rtpmap(arg: &str) -> Option<RtpMap> {
    let (pt, rest) = arg.split_once(char::is_whitespace)?;
    let payload_type = pt.trim().parse().ok()?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.trim().to_string();
    let clock_rate = parts.next()?.trim().parse().ok()?;
    let channels = parts.next().and_then(|c| c.trim().parse().ok());
    Some(RtpMap {
        payload_type,
        encoding,
        clock_rate,
        channels,
    })
}

fn parse_fmtp(arg: &str) -> Option<Fmtp> {
    let (pt, params) = arg.split_once(char::is_whitespace)?;
    Some(Fmtp {
        payload_type: pt.trim().parse().ok()?,
        params: params.trim().to_string(),
    })
}

/// Our side of the media: address, RTP port, and the `o=` line's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub ip: IpAddr,
    pub port: u16,
    pub session_id: u64,
    pub session_version: u64,
}

impl LocalMedia {
    /// A random session id (RFC 4566 §5.2 leaves its choice to us), kept
    /// below 2^63 for peers that parse it as a signed number.
    pub fn new(ip: IpAddr, port: u16) -> Self {
        let session_id = rand::random::<u64>() >> 1;
        LocalMedia {
            ip,
            port,
            session_id,
            session_version: session_id,
        }
    }
}

/// What an offer/answer exchange settled for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// The payload type to send the codec with (its static type, unless the
    /// peer mapped it to a dynamic one).
    pub audio_pt: u8,
    /// `None` when there is nowhere to send (held with `0.0.0.0`).
    pub remote_rtp: Option<SocketAddr>,
    /// The telephone-event/8000 payload type, if both sides have it.
    pub dtmf_pt: Option<u8>,
    /// Our direction.
    pub direction: Direction,
    /// The peer's direction for the stream.
    pub remote_direction: Direction,
}

/// Our answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub sdp: String,
    pub codec: Codec,
    pub audio_pt: u8,
    pub remote_rtp: Option<SocketAddr>,
    pub dtmf_pt: Option<u8>,
    /// Our direction as answered.
    pub direction: Direction,
    pub remote_direction: Direction,
}

impl Answer {
    pub fn negotiated(&self) -> Negotiated {
        Negotiated {
            codec: self.codec,
            audio_pt: self.audio_pt,
            remote_rtp: self.remote_rtp,
            dtmf_pt: self.dtmf_pt,
            direction: self.direction,
            remote_direction: self.remote_direction,
        }
    }
}

/// Answers `offer` (RFC 3264 §6): the answer has as many `m=` lines as the
/// offer, in the same order. The first audio stream with a codec in
/// `supported` is accepted with a single codec — the first of the offer's
/// list we support, since the offerer's order is its preference (§6.1) —
/// plus telephone-event/8000 when offered; every other stream is rejected
/// with port 0 (§6). `supported` is the set of codecs this line allows.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    supported: &[Codec],
) -> Result<Answer, SdpError> {
    if offer.media.is_empty() {
        return Err(SdpError::NoMedia);
    }
    // (index of the accepted m= line, codec, its pt, dtmf pt)
    let chosen = offer.media.iter().enumerate().find_map(|(i, m)| {
        // A port of 0 in an offer is a stream already disabled (§8.2).
        if m.port == 0 || !m.is_rtp_audio() {
            return None;
        }
        let (pt, codec) = m.formats.iter().find_map(|&pt| {
            m.codec_of(pt)
                .filter(|c| supported.contains(c))
                .map(|c| (pt, c))
        })?;
        Some((i, codec, pt, m.telephone_event_pt()))
    });
    let Some((index, codec, audio_pt, dtmf_pt)) = chosen else {
        return Err(SdpError::NoCommonCodec);
    };
    let accepted = &offer.media[index];
    let remote_direction = accepted.direction;
    let direction = remote_direction.reversed();

    let mut sdp = session_header(local);
    for (i, m) in offer.media.iter().enumerate() {
        if i == index {
            audio_section(
                &mut sdp,
                local.port,
                &[(audio_pt, codec)],
                dtmf_pt,
                direction,
            );
        } else {
            // §6: "To reject an offered stream, the port number in the
            // corresponding stream in the answer MUST be set to zero."
            let fmts = if m.fmt_list.is_empty() {
                "0"
            } else {
                &m.fmt_list
            };
            let _ = write!(sdp, "m={} 0 {} {}\r\n", m.media, m.proto, fmts);
        }
    }
    Ok(Answer {
        sdp,
        codec,
        audio_pt,
        remote_rtp: accepted.rtp_addr(),
        dtmf_pt,
        direction,
        remote_direction,
    })
}

/// An offer of one sendrecv audio stream with `codecs` (our preference
/// order) and telephone-event on `dtmf_pt`, for an INVITE that came without
/// SDP (the offer goes in our 200 OK, the answer comes in the ACK).
pub fn offer(local: &LocalMedia, codecs: &[Codec], dtmf_pt: u8) -> String {
    let mut sdp = session_header(local);
    let list: Vec<(u8, Codec)> = codecs.iter().map(|&c| (c.payload_type(), c)).collect();
    audio_section(
        &mut sdp,
        local.port,
        &list,
        Some(dtmf_pt),
        Direction::SendRecv,
    );
    sdp
}

/// Reads the answer to an offer we made with [`offer`]: the first active
/// audio stream, its first codec among `offered`, its telephone-event type.
pub fn accept_answer(
    answer_sdp: &SessionDescription,
    offered: &[Codec],
) -> Result<Negotiated, SdpError> {
    if answer_sdp.media.is_empty() {
        return Err(SdpError::NoMedia);
    }
    answer_sdp
        .media
        .iter()
        .filter(|m| m.port != 0 && m.is_rtp_audio())
        .find_map(|m| {
            let (audio_pt, codec) = m.formats.iter().find_map(|&pt| {
                m.codec_of(pt)
                    .filter(|c| offered.contains(c))
                    .map(|c| (pt, c))
            })?;
            Some(Negotiated {
                codec,
                audio_pt,
                remote_rtp: m.rtp_addr(),
                dtmf_pt: m.telephone_event_pt(),
                // We offered sendrecv, so ours is the reverse of theirs.
                direction: m.direction.reversed(),
                remote_direction: m.direction,
            })
        })
        .ok_or(SdpError::NoCommonCodec)
}

fn ip_words(ip: IpAddr) -> (&'static str, String) {
    match ip {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    }
}

fn session_header(local: &LocalMedia) -> String {
    let (kind, addr) = ip_words(local.ip);
    format!(
        "v=0\r\no=hotline {} {} IN {kind} {addr}\r\ns=hotline\r\nc=IN {kind} {addr}\r\nt=0 0\r\n",
        local.session_id, local.session_version
    )
}

fn audio_section(
    sdp: &mut String,
    port: u16,
    codecs: &[(u8, Codec)],
    dtmf_pt: Option<u8>,
    direction: Direction,
) {
    let _ = write!(sdp, "m=audio {port} RTP/AVP");
    for (pt, _) in codecs {
        let _ = write!(sdp, " {pt}");
    }
    if let Some(pt) = dtmf_pt {
        let _ = write!(sdp, " {pt}");
    }
    sdp.push_str("\r\n");
    for (pt, c) in codecs {
        let _ = write!(sdp, "a=rtpmap:{pt} {}/8000\r\n", c.name());
    }
    if let Some(pt) = dtmf_pt {
        // RFC 4733 §7.1.1: events 0-15 are the DTMF digits.
        let _ = write!(
            sdp,
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\n"
        );
    }
    let _ = write!(sdp, "a=ptime:20\r\na={}\r\n", direction.as_str());
}

/// The SDP state of one call, across the initial exchange and re-INVITEs:
/// same `o=` session id throughout, version bumped only when our SDP changes
/// (RFC 3264 §8, quoted in the module docs).
#[derive(Debug, Clone)]
pub struct SdpSession {
    local: LocalMedia,
    last: Option<String>,
}

impl SdpSession {
    pub fn new(local: LocalMedia) -> Self {
        SdpSession { local, last: None }
    }

    pub fn local(&self) -> &LocalMedia {
        &self.local
    }

    /// Moves our media to another address or port (the next SDP changes).
    pub fn set_local_addr(&mut self, ip: IpAddr, port: u16) {
        self.local.ip = ip;
        self.local.port = port;
    }

    /// Answers an offer (initial or re-INVITE), see [`answer`].
    pub fn answer(
        &mut self,
        offer: &SessionDescription,
        supported: &[Codec],
    ) -> Result<Answer, SdpError> {
        let mut a = answer(offer, &self.local, supported)?;
        if self.changed(&a.sdp) {
            self.local.session_version = self.local.session_version.wrapping_add(1);
            a = answer(offer, &self.local, supported)?;
        }
        self.last = Some(a.sdp.clone());
        Ok(a)
    }

    /// Makes an offer (initial, or in a re-INVITE of ours), see [`offer`].
    pub fn offer(&mut self, codecs: &[Codec], dtmf_pt: u8) -> String {
        let mut body = offer(&self.local, codecs, dtmf_pt);
        if self.changed(&body) {
            self.local.session_version = self.local.session_version.wrapping_add(1);
            body = offer(&self.local, codecs, dtmf_pt);
        }
        self.last = Some(body.clone());
        body
    }

    /// Whether `body` (rendered with the current version) differs from the
    /// SDP we sent last; the first SDP keeps the initial version.
    fn changed(&self, body: &str) -> bool {
        self.last.as_deref().is_some_and(|last| last != body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const BOTH: &[Codec] = &[Codec::Pcmu, Codec::Pcma];

    fn local() -> LocalMedia {
        LocalMedia {
            ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
            port: 20000,
            session_id: 42,
            session_version: 7,
        }
    }

    fn parse(s: &str) -> SessionDescription {
        SessionDescription::parse(s.as_bytes()).unwrap()
    }

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    /// Linphone 5 (opus, speex, G.711, three telephone-event rates, video).
    const LINPHONE: &str = "v=0\r\n\
o=alice 2366 3390 IN IP4 192.168.1.20\r\n\
s=Talk\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
a=record:off\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n\
m=video 9078 RTP/AVP 96 97\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 H264/90000\r\n\
a=fmtp:97 profile-level-id=42801F\r\n\
a=rtcp-fb:* trr-int 1000\r\n";

    /// Zoiper 5: opus first, G.722, LF-only line ends.
    const ZOIPER: &str = "v=0\n\
o=Z 0 1 IN IP4 192.168.0.105\n\
s=Z\n\
c=IN IP4 192.168.0.105\n\
t=0 0\n\
m=audio 52184 RTP/AVP 106 9 98 101 0 8 3\n\
a=rtpmap:106 opus/48000/2\n\
a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1\n\
a=rtpmap:98 telephone-event/48000\n\
a=fmtp:98 0-16\n\
a=rtpmap:101 telephone-event/8000\n\
a=fmtp:101 0-16\n\
a=sendrecv\n\
a=rtcp-mux\n";

    /// Asterisk (chan_pjsip) with PCMA preferred.
    const ASTERISK: &str = "v=0\r\n\
o=- 1669210123 1669210125 IN IP4 10.0.0.5\r\n\
s=Asterisk\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
m=audio 17044 RTP/AVP 8 0 3 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:3 GSM/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

    /// baresip 1.0 with opus and G.711.
    const BARESIP: &str = "v=0\r\n\
o=- 1733458043 2016148451 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 10154 RTP/AVP 96 0 8 101\r\n\
b=AS:96\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:1405291541 cname:4b63c3a7-c3b5-4b7c-b7e0-5e0c0ba1c0d4\r\n\
a=rtcp-rsize\r\n\
a=ptime:20\r\n";

    /// SIPp 3.6 uac default scenario, as sent (LF only from the XML).
    const SIPP: &str = "v=0\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\n\
s=-\n\
c=IN IP4 127.0.0.1\n\
t=0 0\n\
m=audio 6000 RTP/AVP 0\n\
a=rtpmap:0 PCMU/8000\n";

    /// A PCMA-only trunk gateway, media-level c=, no telephone-event.
    const GATEWAY_PCMA: &str = "v=0\r\n\
o=CiscoSystemsSIP-GW-UserAgent 5432 1234 IN IP4 10.1.1.1\r\n\
s=SIP Call\r\n\
t=0 0\r\n\
m=audio 16384 RTP/AVP 8\r\n\
c=IN IP4 10.1.1.2\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=ptime:20\r\n";

    #[test]
    fn linphone_gets_pcmu_and_te_8000_and_video_rejected() {
        let offer = parse(LINPHONE);
        assert_eq!(offer.media.len(), 2);
        assert_eq!(
            offer.media[0].formats,
            vec![96, 97, 98, 0, 8, 18, 101, 99, 100]
        );
        let a = answer(&offer, &local(), BOTH).unwrap();
        assert_eq!(
            (a.codec, a.audio_pt, a.dtmf_pt),
            (Codec::Pcmu, 0, Some(100))
        );
        assert_eq!(a.remote_rtp, addr("192.168.1.20:7078"));
        assert_eq!(
            a.sdp,
            "v=0\r\no=hotline 42 7 IN IP4 203.0.113.5\r\ns=hotline\r\n\
c=IN IP4 203.0.113.5\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 0 100\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-15\r\n\
a=ptime:20\r\na=sendrecv\r\n\
m=video 0 RTP/AVP 96 97\r\n"
        );
    }

    #[test]
    fn zoiper_lf_only() {
        let a = answer(&parse(ZOIPER), &local(), BOTH).unwrap();
        assert_eq!(
            (a.codec, a.audio_pt, a.dtmf_pt),
            (Codec::Pcmu, 0, Some(101))
        );
        assert_eq!(a.remote_rtp, addr("192.168.0.105:52184"));
        assert_eq!(a.direction, Direction::SendRecv);
    }

    #[test]
    fn asterisk_preference_order_wins_over_ours() {
        let a = answer(&parse(ASTERISK), &local(), BOTH).unwrap();
        assert_eq!(
            (a.codec, a.audio_pt, a.dtmf_pt),
            (Codec::Pcma, 8, Some(101))
        );
        assert!(a.sdp.contains("m=audio 20000 RTP/AVP 8 101\r\n"));
        // With PCMA not allowed on this line, PCMU.
        let a = answer(&parse(ASTERISK), &local(), &[Codec::Pcmu]).unwrap();
        assert_eq!(a.codec, Codec::Pcmu);
    }

    #[test]
    fn baresip() {
        let offer = parse(BARESIP);
        assert_eq!(offer.media[0].ptime, Some(20));
        let a = answer(&offer, &local(), BOTH).unwrap();
        assert_eq!((a.codec, a.dtmf_pt), (Codec::Pcmu, Some(101)));
        assert_eq!(a.remote_rtp, addr("127.0.0.1:10154"));
    }

    #[test]
    fn sipp_default_scenario() {
        let a = answer(&parse(SIPP), &local(), BOTH).unwrap();
        assert_eq!((a.codec, a.dtmf_pt), (Codec::Pcmu, None));
        assert_eq!(a.remote_rtp, addr("127.0.0.1:6000"));
        assert!(a.sdp.contains("m=audio 20000 RTP/AVP 0\r\n"));
        assert!(!a.sdp.contains("telephone-event"));
    }

    #[test]
    fn pcma_only_gateway_with_media_level_connection() {
        let a = answer(&parse(GATEWAY_PCMA), &local(), BOTH).unwrap();
        assert_eq!((a.codec, a.audio_pt, a.dtmf_pt), (Codec::Pcma, 8, None));
        assert_eq!(a.remote_rtp, addr("10.1.1.2:16384"));
        // PCMU-only line: nothing in common.
        let e = answer(&parse(GATEWAY_PCMA), &local(), &[Codec::Pcmu]).unwrap_err();
        assert_eq!(e, SdpError::NoCommonCodec);
    }

    #[test]
    fn g729_only_is_no_common_codec_488() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n";
        let e = answer(&parse(offer), &local(), BOTH).unwrap_err();
        assert_eq!(e, SdpError::NoCommonCodec);
        assert_eq!(e.sip_status(), 488);
    }

    #[test]
    fn srtp_only_and_no_media_are_refused() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.9\r\nm=audio 5000 RTP/SAVP 0\r\n";
        assert_eq!(
            answer(&parse(offer), &local(), BOTH),
            Err(SdpError::NoCommonCodec)
        );
        assert_eq!(
            answer(&parse("v=0\r\ns=-\r\n"), &local(), BOTH),
            Err(SdpError::NoMedia)
        );
    }

    #[test]
    fn rtpmap_names_count_not_static_numbers() {
        // PCMA on a dynamic type; a static number remapped to something else.
        let offer = "v=0\nc=IN IP4 10.0.0.9\nm=audio 5000 RTP/AVP 0 97\n\
a=rtpmap:0 G726-32/8000\na=rtpmap:97 pcma/8000\n";
        let a = answer(&parse(offer), &local(), BOTH).unwrap();
        assert_eq!((a.codec, a.audio_pt), (Codec::Pcma, 97));
        assert!(a
            .sdp
            .contains("m=audio 20000 RTP/AVP 97\r\na=rtpmap:97 PCMA/8000\r\n"));
    }

    #[test]
    fn second_audio_stream_and_disabled_streams_are_rejected_in_order() {
        let offer = "v=0\nc=IN IP4 10.0.0.9\n\
m=audio 0 RTP/AVP 0\n\
m=image 6000 udptl t38\n\
m=audio 5000 RTP/AVP 8\n\
m=audio 5002 RTP/AVP 0\n";
        let a = answer(&parse(offer), &local(), BOTH).unwrap();
        let ms: Vec<&str> = a.sdp.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            ms,
            [
                "m=audio 0 RTP/AVP 0",
                "m=image 0 udptl t38",
                "m=audio 20000 RTP/AVP 8",
                "m=audio 0 RTP/AVP 0"
            ]
        );
        assert_eq!(a.remote_rtp, addr("10.0.0.9:5000"));
    }

    #[test]
    fn hold_offers() {
        // Old style (RFC 3264 §8.4): c=0.0.0.0, no direction.
        let old = "v=0\r\no=- 1 2 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 0\r\n";
        let a = answer(&parse(old), &local(), BOTH).unwrap();
        assert_eq!(a.remote_rtp, None);
        assert!(parse(old).connection.unwrap().is_hold());
        // Modern: sendonly at session level → we answer recvonly.
        let send_only = "v=0\r\nc=IN IP4 10.0.0.9\r\na=sendonly\r\nm=audio 5000 RTP/AVP 0\r\n";
        let a = answer(&parse(send_only), &local(), BOTH).unwrap();
        assert_eq!(
            (a.direction, a.remote_direction),
            (Direction::RecvOnly, Direction::SendOnly)
        );
        assert!(a.sdp.ends_with("a=recvonly\r\n"));
        assert_eq!(a.remote_rtp, addr("10.0.0.9:5000"));
        // Media level overrides session level.
        let inactive =
            "v=0\r\nc=IN IP4 10.0.0.9\r\na=sendonly\r\nm=audio 5000 RTP/AVP 0\r\na=inactive\r\n";
        let a = answer(&parse(inactive), &local(), BOTH).unwrap();
        assert_eq!(a.direction, Direction::Inactive);
        let recv_only = "v=0\r\nc=IN IP4 10.0.0.9\r\nm=audio 5000 RTP/AVP 0\r\na=recvonly\r\n";
        let a = answer(&parse(recv_only), &local(), BOTH).unwrap();
        assert_eq!(a.direction, Direction::SendOnly);
    }

    #[test]
    fn ipv6_connection() {
        let offer = "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 0\r\n";
        let a = answer(&parse(offer), &local(), BOTH).unwrap();
        assert_eq!(a.remote_rtp, addr("[2001:db8::1]:5000"));
        let mut l = local();
        l.ip = "2001:db8::5".parse().unwrap();
        let a = answer(&parse(offer), &l, BOTH).unwrap();
        assert!(a.sdp.contains("c=IN IP6 2001:db8::5\r\n"));
    }

    #[test]
    fn session_level_rtpmap_and_odd_lines_are_tolerated() {
        let offer = "\u{feff}v=0\r\n\
o=- 1 1 IN IP4 10.0.0.9\r\n\
s=\u{4e2d}\u{6587}\r\n\
garbage line\r\n\
\r\n\
x=unknown\r\n\
a=rtpmap:97 PCMA/8000\r\n\
a=rtpmap:bad\r\n\
c=IN IP4 224.2.1.1/127\r\n\
m=audio 5000/2 RTP/AVP 97  \r\n\
a=fmtp\r\n\
a=ptime:x\r\n";
        let sdp = parse(offer);
        assert_eq!(sdp.session_name, "\u{4e2d}\u{6587}");
        assert_eq!(sdp.media[0].port, 5000);
        let a = answer(&sdp, &local(), BOTH).unwrap();
        assert_eq!((a.codec, a.audio_pt), (Codec::Pcma, 97));
        assert_eq!(a.remote_rtp, addr("224.2.1.1:5000"));
        // Non-UTF-8 (GBK) bytes in s= do not stop parsing.
        let mut gbk = b"v=0\r\ns=\xd6\xd0\xce\xc4\r\nc=IN IP4 10.0.0.9\r\n".to_vec();
        gbk.extend_from_slice(b"m=audio 5000 RTP/AVP 0\r\n");
        assert!(answer(&SessionDescription::parse(&gbk).unwrap(), &local(), BOTH).is_ok());
    }

    #[test]
    fn malformed_m_and_c_lines_are_errors() {
        let e = SessionDescription::parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n").unwrap_err();
        assert!(matches!(e, SdpError::BadMedia { line: 2, .. }));
        assert_eq!(e.sip_status(), 400);
        let e = SessionDescription::parse(b"v=0\r\nc=IN IP4\r\n").unwrap_err();
        assert!(matches!(e, SdpError::BadConnection { line: 2, .. }));
        let many = "m=audio 1 RTP/AVP 0\n".repeat(MAX_MEDIA + 1);
        assert_eq!(
            SessionDescription::parse(many.as_bytes()),
            Err(SdpError::TooManyMedia)
        );
    }

    #[test]
    fn offer_then_accept_answer() {
        let o = offer(&local(), &[Codec::Pcma, Codec::Pcmu], 101);
        assert!(o.contains(
            "m=audio 20000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
        ));
        // The peer answers our offer: it must pick from it.
        let peer = LocalMedia {
            ip: "10.0.0.9".parse().unwrap(),
            port: 4000,
            session_id: 1,
            session_version: 1,
        };
        let a = answer(&parse(&o), &peer, BOTH).unwrap();
        assert_eq!(a.codec, Codec::Pcma);
        let n = accept_answer(&parse(&a.sdp), &[Codec::Pcma, Codec::Pcmu]).unwrap();
        assert_eq!(
            n,
            Negotiated {
                codec: Codec::Pcma,
                audio_pt: 8,
                remote_rtp: addr("10.0.0.9:4000"),
                dtmf_pt: Some(101),
                direction: Direction::SendRecv,
                remote_direction: Direction::SendRecv,
            }
        );
        // An answer with a codec we did not offer.
        assert_eq!(
            accept_answer(&parse(SIPP), &[Codec::Pcma]),
            Err(SdpError::NoCommonCodec)
        );
        // An answer that rejected the stream.
        let rejected = "v=0\r\nc=IN IP4 10.0.0.9\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(
            accept_answer(&parse(rejected), BOTH),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn reinvite_keeps_session_id_and_bumps_version_only_on_change() {
        let mut s = SdpSession::new(local());
        let first = s.answer(&parse(ASTERISK), BOTH).unwrap();
        assert!(first.sdp.contains("o=hotline 42 7 "));
        // Session refresh with the same offer: identical SDP, same version.
        let again = s.answer(&parse(ASTERISK), BOTH).unwrap();
        assert_eq!(again.sdp, first.sdp);
        // Hold: our direction changes → version 8, same session id.
        let hold = ASTERISK.replace("a=sendrecv", "a=sendonly");
        let held = s.answer(&parse(&hold), BOTH).unwrap();
        assert!(held.sdp.contains("o=hotline 42 8 "));
        assert!(held.sdp.contains("a=recvonly"));
        // A refused re-offer (488) leaves the state alone.
        assert!(s.answer(&parse(GATEWAY_PCMA), &[Codec::Pcmu]).is_err());
        let resumed = s.answer(&parse(ASTERISK), BOTH).unwrap();
        assert!(resumed.sdp.contains("o=hotline 42 9 "));
        // New port → new version.
        s.set_local_addr(local().ip, 20002);
        let moved = s.answer(&parse(ASTERISK), BOTH).unwrap();
        assert!(moved.sdp.contains("o=hotline 42 10 ") && moved.sdp.contains("m=audio 20002 "));
        assert_eq!(s.local().session_id, 42);
    }

    #[test]
    fn new_local_media_has_random_id_below_2_63() {
        let l = LocalMedia::new(local().ip, 1);
        assert!(l.session_id < 1 << 63);
        assert_eq!(l.session_version, l.session_id);
    }

    /// Lines that look like SDP, shuffled and mutated.
    fn sdp_like() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("v=0".to_string()),
            "o=[ -~]{0,40}",
            "c=IN IP[46] [0-9a-f.:/]{0,20}",
            "m=(audio|video) [0-9/]{0,7} RTP/AVP( [0-9]{1,3}){0,6}",
            "a=(rtpmap|fmtp|ptime):[ -~]{0,20}",
            "a=(sendonly|recvonly|inactive|sendrecv)",
            "[ -~]{0,30}",
        ];
        (
            proptest::collection::vec(line, 0..12),
            prop_oneof![Just("\n"), Just("\r\n")],
        )
            .prop_map(|(lines, sep)| lines.join(sep))
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(sdp) = SessionDescription::parse(&data) {
                let _ = answer(&sdp, &local(), BOTH);
                let _ = accept_answer(&sdp, BOTH);
            }
        }

        #[test]
        fn sdp_like_input_never_panics_and_answers_reparse(text in sdp_like()) {
            if let Ok(sdp) = SessionDescription::parse(text.as_bytes()) {
                if let Ok(a) = answer(&sdp, &local(), BOTH) {
                    let ours = SessionDescription::parse(a.sdp.as_bytes()).unwrap();
                    prop_assert_eq!(ours.media.len(), sdp.media.len());
                    let n = accept_answer(&ours, BOTH).unwrap();
                    prop_assert_eq!(n.codec, a.codec);
                }
            }
        }
    }
}
