//! Typed views of header values (RFC 3261 §20, grammar in §25.1): Via,
//! name-addr (From, To, Contact, Route, Record-Route), Contact lists, CSeq,
//! media types, option-tag lists, and the scalar headers, plus the
//! convenience accessors on `Headers`, `Request` and `Response`.
//!
//! The message keeps header values raw; these parsers run on demand, so a
//! broken value costs the request a 400 (see `validate`), not a parse error.
//! They accept the linear whitespace the grammar allows around separators
//! (RFC 4475 `wsinv`) and nothing looser.

use crate::sip::message::{Headers, Method, Request, Response};
use crate::sip::parse::{is_token_char, parse_content_length};
use crate::sip::uri::{parse_port, Uri, UriError};
use std::fmt;
use thiserror::Error;

/// Why a header is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("malformed {header} header: {reason}")]
    Malformed {
        header: &'static str,
        reason: &'static str,
    },
    #[error("bad URI in {header} header: {source}")]
    BadUri {
        header: &'static str,
        source: UriError,
    },
    #[error("{0} value out of range")]
    OutOfRange(&'static str),
    #[error("more than one {0} header")]
    Duplicate(&'static str),
}

impl HeaderError {
    /// The same error, attributed to header `name`.
    pub fn in_header(self, name: &'static str) -> HeaderError {
        match self {
            HeaderError::Missing(_) => HeaderError::Missing(name),
            HeaderError::Malformed { reason, .. } => HeaderError::Malformed {
                header: name,
                reason,
            },
            HeaderError::BadUri { source, .. } => HeaderError::BadUri {
                header: name,
                source,
            },
            HeaderError::OutOfRange(_) => HeaderError::OutOfRange(name),
            HeaderError::Duplicate(_) => HeaderError::Duplicate(name),
        }
    }
}

/// A header parameter list: `;name=value;flag`. Values are kept as sent,
/// quoted strings with their quotes (`+sip.instance="<urn:uuid:…>"`).
pub type Params = Vec<(String, Option<String>)>;

fn find_param<'a>(params: &'a Params, name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &Params) -> fmt::Result {
    for (n, v) in params {
        write!(f, ";{n}")?;
        if let Some(v) = v {
            write!(f, "={v}")?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Cursor

/// A byte cursor over a header value. All the delimiters it looks for are
/// ASCII, so every position it stops at is a char boundary.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
    header: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str, header: &'static str) -> Self {
        Cursor { s, pos: 0, header }
    }
    fn err(&self, reason: &'static str) -> HeaderError {
        HeaderError::Malformed {
            header: self.header,
            reason,
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    /// `SWS c SWS`, as SLASH, SEMI, EQUAL, COMMA are defined.
    fn expect_sep(&mut self, c: u8, reason: &'static str) -> Result<(), HeaderError> {
        self.skip_ws();
        if !self.eat(c) {
            return Err(self.err(reason));
        }
        self.skip_ws();
        Ok(())
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or("")
    }
    fn token(&mut self, reason: &'static str) -> Result<&'a str, HeaderError> {
        let t = self.take_while(is_token_char);
        if t.is_empty() {
            Err(self.err(reason))
        } else {
            Ok(t)
        }
    }
    /// A quoted-string starting at the cursor; returns the raw text with
    /// quotes and the unescaped content.
    fn quoted(&mut self) -> Result<(&'a str, String), HeaderError> {
        let start = self.pos;
        if !self.eat(b'"') {
            return Err(self.err("expected quoted string"));
        }
        let mut text = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated quoted string")),
                Some(b'"') => {
                    text.push_str(self.s.get(run..self.pos).unwrap_or(""));
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    text.push_str(self.s.get(run..self.pos).unwrap_or(""));
                    match self.s.as_bytes().get(self.pos + 1) {
                        Some(&c) if c < 0x80 && c != b'\r' && c != b'\n' => {
                            text.push(c as char);
                            self.pos += 2;
                            run = self.pos;
                        }
                        _ => return Err(self.err("bad escape in quoted string")),
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
        Ok((self.s.get(start..self.pos).unwrap_or(""), text))
    }
    /// `*( SEMI generic-param )`, stopping at the end or (in lists) at a comma.
    fn params(&mut self) -> Result<Params, HeaderError> {
        let mut params = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None | Some(b',') => return Ok(params),
                Some(b';') => self.pos += 1,
                Some(_) => return Err(self.err("unexpected character before parameter")),
            }
            self.skip_ws();
            let name = self.token("empty parameter")?;
            self.skip_ws();
            let value = if self.eat(b'=') {
                self.skip_ws();
                if self.peek() == Some(b'"') {
                    Some(self.quoted()?.0.to_string())
                } else {
                    // gen-value = token / host / quoted-string
                    let v =
                        self.take_while(|c| is_token_char(c) || matches!(c, b':' | b'[' | b']'));
                    if v.is_empty() {
                        return Err(self.err("empty parameter value"));
                    }
                    Some(v.to_string())
                }
            } else {
                None
            };
            params.push((name.to_string(), value));
        }
    }
    /// After an element of a list: the end, or a comma and more.
    fn list_next(&mut self) -> Result<bool, HeaderError> {
        self.skip_ws();
        if self.at_end() {
            return Ok(false);
        }
        if !self.eat(b',') {
            return Err(self.err("expected comma"));
        }
        self.skip_ws();
        if self.at_end() {
            return Err(self.err("empty list element"));
        }
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// Via

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name and version, normalised: `SIP/2.0`.
    pub protocol: String,
    /// Transport, upper-cased: `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, …
    pub transport: String,
    /// sent-by host; IPv6 references keep their brackets.
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }
    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }
    /// RFC 3581: `None` without rport, `Some(None)` for a bare `;rport` (or an
    /// unreadable value), `Some(Some(port))` once filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(parse_port))
    }
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }
    /// `host[:port]` as sent.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
    /// True if the branch carries the RFC 3261 magic cookie (§8.1.1.7).
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }
    /// True if sent-by, `received` or `maddr` is the limited broadcast
    /// address (RFC 4475 `bcast`): never send a response there.
    pub fn is_broadcast(&self) -> bool {
        let b = "255.255.255.255";
        self.host == b || self.received() == Some(b) || self.param("maddr").flatten() == Some(b)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.protocol, self.transport, self.sent_by())?;
        write_params(f, &self.params)
    }
}

fn via_at(c: &mut Cursor<'_>) -> Result<Via, HeaderError> {
    // sent-protocol = protocol-name SLASH protocol-version SLASH transport
    let name = c.token("missing protocol name")?;
    c.expect_sep(b'/', "missing '/' in sent-protocol")?;
    let version = c.token("missing protocol version")?;
    c.expect_sep(b'/', "missing '/' in sent-protocol")?;
    let transport = c.token("missing transport")?;
    let before = c.pos;
    c.skip_ws();
    if c.pos == before {
        return Err(c.err("no whitespace before sent-by"));
    }
    // sent-by = host [ COLON port ]
    let host = if c.peek() == Some(b'[') {
        let h = c.take_while(|b| b != b']');
        if !c.eat(b']') {
            return Err(c.err("unterminated IPv6 reference"));
        }
        format!("{h}]")
    } else {
        c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            .to_string()
    };
    if !crate::sip::uri::valid_host(&host) {
        return Err(c.err("bad sent-by host"));
    }
    c.skip_ws();
    let port = if c.eat(b':') {
        c.skip_ws();
        let p = c.take_while(|b| b.is_ascii_digit());
        Some(parse_port(p).ok_or_else(|| c.err("bad sent-by port"))?)
    } else {
        None
    };
    let params = c.params()?;
    let mut protocol = String::with_capacity(name.len() + 1 + version.len());
    protocol.push_str(&name.to_ascii_uppercase());
    protocol.push('/');
    protocol.push_str(version);
    Ok(Via {
        protocol,
        transport: transport.to_ascii_uppercase(),
        host,
        port,
        params,
    })
}

/// Parses one Via header value holding one or more comma-separated vias.
pub fn parse_via_list(value: &str) -> Result<Vec<Via>, HeaderError> {
    let mut c = Cursor::new(value, "Via");
    c.skip_ws();
    let mut vias = Vec::with_capacity(1);
    loop {
        vias.push(via_at(&mut c)?);
        if !c.list_next()? {
            return Ok(vias);
        }
    }
}

// ---------------------------------------------------------------------------
// name-addr / addr-spec

/// From, To, Contact, Route, Record-Route, Refer-To… (RFC 3261 §20.10,
/// §20.20, §20.39). `display` is unquoted and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    /// Header parameters (after the URI, outside `<>`).
    pub params: Params,
}

impl NameAddr {
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }
}

impl fmt::Display for NameAddr {
    /// Always the name-addr form, so URI parameters stay URI parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            f.write_str("\"")?;
            for ch in d.chars() {
                if ch == '"' || ch == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{ch}")?;
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

fn name_addr_at(c: &mut Cursor<'_>) -> Result<NameAddr, HeaderError> {
    c.skip_ws();
    let header = c.header;
    let bad_uri = |source| HeaderError::BadUri { header, source };
    let display = if c.peek() == Some(b'"') {
        let (_, text) = c.quoted()?;
        c.skip_ws();
        if c.peek() != Some(b'<') {
            return Err(c.err("quoted display name without <URI>"));
        }
        Some(text)
    } else {
        // Display name as *(token LWS) if a '<' comes before any ';' ',' '"'.
        let rest = c.s.get(c.pos..).unwrap_or("");
        let stop = rest
            .bytes()
            .position(|b| matches!(b, b'<' | b';' | b',' | b'"'));
        match stop.and_then(|i| rest.as_bytes().get(i).map(|&b| (i, b))) {
            Some((i, b'<')) => {
                let d = rest.get(..i).unwrap_or("").trim_end_matches([' ', '\t']);
                // RFC 4475 baddn: "Bell, Alexander" unquoted is not tokens.
                if !d
                    .bytes()
                    .all(|b| is_token_char(b) || b == b' ' || b == b'\t')
                {
                    return Err(c.err("display name is neither tokens nor quoted"));
                }
                c.pos += i;
                if d.is_empty() {
                    None
                } else {
                    Some(d.to_string())
                }
            }
            _ => None,
        }
    };
    if c.eat(b'<') {
        let rest = c.s.get(c.pos..).unwrap_or("");
        let end = rest.find('>').ok_or_else(|| c.err("missing '>'"))?;
        // No trimming inside <>: RFC 4475 badaspec must fail.
        let uri = Uri::parse(rest.get(..end).unwrap_or("")).map_err(bad_uri)?;
        c.pos += end + 1;
        let params = c.params()?;
        return Ok(NameAddr {
            display,
            uri,
            params,
        });
    }
    // addr-spec: parameters after ';' are header parameters (§20.10), and a
    // URI with ',' '?' or ';' must be in <> (RFC 4475 regbadct).
    let rest = c.s.get(c.pos..).unwrap_or("");
    let end = rest.find([';', ',']).unwrap_or(rest.len());
    let text = rest.get(..end).unwrap_or("").trim_end_matches([' ', '\t']);
    if text.contains('?') {
        return Err(c.err("URI with headers must be enclosed in <>"));
    }
    let uri = Uri::parse(text).map_err(bad_uri)?;
    c.pos += end;
    let params = c.params()?;
    Ok(NameAddr {
        display: None,
        uri,
        params,
    })
}

/// Parses a single name-addr or addr-spec with header parameters.
pub fn parse_name_addr(value: &str) -> Result<NameAddr, HeaderError> {
    let mut c = Cursor::new(value, "name-addr");
    let na = name_addr_at(&mut c)?;
    c.skip_ws();
    if !c.at_end() {
        return Err(c.err("trailing characters"));
    }
    Ok(na)
}

/// Parses a comma-separated list of name-addrs (Contact, Route,
/// Record-Route), with each element's raw text (trimmed).
pub fn parse_name_addr_list_raw(value: &str) -> Result<Vec<(NameAddr, &str)>, HeaderError> {
    let mut c = Cursor::new(value, "name-addr");
    c.skip_ws();
    let mut out = Vec::with_capacity(1);
    if c.at_end() {
        return Err(c.err("empty list"));
    }
    loop {
        let start = c.pos;
        let na = name_addr_at(&mut c)?;
        let raw = value
            .get(start..c.pos)
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        out.push((na, raw));
        if !c.list_next()? {
            return Ok(out);
        }
    }
}

/// Parses a comma-separated list of name-addrs.
pub fn parse_name_addr_list(value: &str) -> Result<Vec<NameAddr>, HeaderError> {
    Ok(parse_name_addr_list_raw(value)?
        .into_iter()
        .map(|(n, _)| n)
        .collect())
}

/// The Contact header (RFC 3261 §20.10): `*` or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactValue {
    Star,
    Addrs(Vec<NameAddr>),
}

/// Parses one Contact header value. For registrar bindings, which must keep
/// the contact as sent, use `parse_contact_raw`.
pub fn parse_contact(value: &str) -> Result<ContactValue, HeaderError> {
    if value.trim() == "*" {
        return Ok(ContactValue::Star);
    }
    parse_name_addr_list(value)
        .map(ContactValue::Addrs)
        .map_err(|e| e.in_header("Contact"))
}

/// Each contact of one Contact header value with its raw text, e.g.
/// `<sip:a@b;transport=tcp>;+sip.instance="<urn:uuid:…>"`. `*` is an error
/// here (check for it with `parse_contact`).
pub fn parse_contact_raw(value: &str) -> Result<Vec<(NameAddr, &str)>, HeaderError> {
    parse_name_addr_list_raw(value).map_err(|e| e.in_header("Contact"))
}

// ---------------------------------------------------------------------------
// CSeq, media types, scalars

/// CSeq (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// `1*DIGIT` as a `u32`; `OutOfRange` past 2**32-1 (RFC 4475 scalar02).
fn parse_u32(s: &str, header: &'static str) -> Result<u32, HeaderError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::Malformed {
            header,
            reason: "not a decimal number",
        });
    }
    let mut n: u32 = 0;
    for b in s.bytes() {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u32::from(b - b'0')))
            .ok_or(HeaderError::OutOfRange(header))?;
    }
    Ok(n)
}

/// Parses `CSeq: 1*DIGIT LWS Method`. The number must fit 32 bits (§8.1.1.5).
pub fn parse_cseq(value: &str) -> Result<CSeq, HeaderError> {
    let mut c = Cursor::new(value, "CSeq");
    c.skip_ws();
    let digits = c.take_while(|b| b.is_ascii_digit());
    let seq = parse_u32(digits, "CSeq")?;
    let before = c.pos;
    c.skip_ws();
    if c.pos == before {
        return Err(c.err("no whitespace between number and method"));
    }
    let method = c.token("missing method")?;
    c.skip_ws();
    if !c.at_end() {
        return Err(c.err("trailing characters"));
    }
    Ok(CSeq {
        seq,
        method: Method::from_token(method),
    })
}

/// A media type (RFC 3261 §20.15): `type/subtype;params`, type and subtype
/// lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub mtype: String,
    pub subtype: String,
    pub params: Params,
}

impl MediaType {
    /// True for `type/subtype` (case-insensitive).
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }
    /// A parameter's value with quotes removed.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).flatten().map(|v| {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.mtype, self.subtype)?;
        write_params(f, &self.params)
    }
}

fn media_type_at(c: &mut Cursor<'_>) -> Result<MediaType, HeaderError> {
    c.skip_ws();
    let mtype = c.token("missing media type")?.to_ascii_lowercase();
    c.expect_sep(b'/', "missing '/' in media type")?;
    let subtype = c.token("missing media subtype")?.to_ascii_lowercase();
    let params = c.params()?;
    Ok(MediaType {
        mtype,
        subtype,
        params,
    })
}

/// Parses a Content-Type value.
pub fn parse_media_type(value: &str) -> Result<MediaType, HeaderError> {
    let mut c = Cursor::new(value, "Content-Type");
    let m = media_type_at(&mut c)?;
    if !c.at_end() {
        return Err(c.err("trailing characters"));
    }
    Ok(m)
}

/// Parses an Accept value: a possibly empty list of media ranges.
pub fn parse_accept(value: &str) -> Result<Vec<MediaType>, HeaderError> {
    let mut c = Cursor::new(value, "Accept");
    c.skip_ws();
    let mut out = Vec::new();
    if c.at_end() {
        return Ok(out);
    }
    loop {
        out.push(media_type_at(&mut c)?);
        if !c.list_next()? {
            return Ok(out);
        }
    }
}

/// Splits a comma-separated list of tokens (Require, Supported, Allow, …).
/// Empty elements are skipped.
pub fn split_tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(|t| t.trim()).filter(|t| !t.is_empty())
}

/// Call-ID = word [ "@" word ] (§25.1).
pub fn is_valid_call_id(v: &str) -> bool {
    fn word(w: &str) -> bool {
        !w.is_empty()
            && w.bytes().all(|b| {
                is_token_char(b)
                    || matches!(
                        b,
                        b'(' | b')'
                            | b'<'
                            | b'>'
                            | b':'
                            | b'\\'
                            | b'"'
                            | b'/'
                            | b'['
                            | b']'
                            | b'?'
                            | b'{'
                            | b'}'
                    )
            })
    }
    match v.split_once('@') {
        Some((a, b)) => word(a) && word(b),
        None => word(v),
    }
}

// ---------------------------------------------------------------------------
// Accessors

impl Headers {
    /// The Call-ID, checked against the grammar.
    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let v = self.get("Call-ID").ok_or(HeaderError::Missing("Call-ID"))?;
        if !is_valid_call_id(v) {
            return Err(HeaderError::Malformed {
                header: "Call-ID",
                reason: "not word[@word]",
            });
        }
        Ok(v)
    }
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        parse_cseq(self.get("CSeq").ok_or(HeaderError::Missing("CSeq"))?)
    }
    pub fn from(&self) -> Result<NameAddr, HeaderError> {
        parse_name_addr(self.get("From").ok_or(HeaderError::Missing("From"))?)
            .map_err(|e| e.in_header("From"))
    }
    pub fn to(&self) -> Result<NameAddr, HeaderError> {
        parse_name_addr(self.get("To").ok_or(HeaderError::Missing("To"))?)
            .map_err(|e| e.in_header("To"))
    }
    /// Every via of every Via line, topmost first.
    pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
        let mut out = Vec::new();
        for v in self.get_all("Via") {
            out.extend(parse_via_list(v)?);
        }
        if out.is_empty() {
            return Err(HeaderError::Missing("Via"));
        }
        Ok(out)
    }
    /// The topmost via.
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let v = self.get("Via").ok_or(HeaderError::Missing("Via"))?;
        parse_via_list(v)?
            .into_iter()
            .next()
            .ok_or(HeaderError::Missing("Via"))
    }
    /// All Contact lines together; `None` without Contact. `*` must stand
    /// alone (§10.2.2).
    pub fn contact(&self) -> Result<Option<ContactValue>, HeaderError> {
        let mut addrs = Vec::new();
        let mut star = false;
        let mut any = false;
        for v in self.get_all("Contact") {
            any = true;
            match parse_contact(v)? {
                ContactValue::Star => star = true,
                ContactValue::Addrs(a) => addrs.extend(a),
            }
        }
        match (any, star) {
            (false, _) => Ok(None),
            (true, true) if addrs.is_empty() && self.count("Contact") == 1 => {
                Ok(Some(ContactValue::Star))
            }
            (true, true) => Err(HeaderError::Malformed {
                header: "Contact",
                reason: "'*' mixed with other contacts",
            }),
            (true, false) => Ok(Some(ContactValue::Addrs(addrs))),
        }
    }
    /// Every contact of every Contact line with its raw text, as a registrar
    /// stores bindings (RFC 3261 §10.3 step 7). Empty without Contact; an
    /// error for `*` (check `contact()` first).
    pub fn contacts_raw(&self) -> Result<Vec<(NameAddr, &str)>, HeaderError> {
        let mut out = Vec::new();
        for v in self.get_all("Contact") {
            out.extend(parse_contact_raw(v)?);
        }
        Ok(out)
    }
    pub fn content_length(&self) -> Result<Option<usize>, HeaderError> {
        match self.get("Content-Length") {
            None => Ok(None),
            Some(v) => parse_content_length(v)
                .map(Some)
                .ok_or(HeaderError::Malformed {
                    header: "Content-Length",
                    reason: "not a non-negative number",
                }),
        }
    }
    pub fn content_type(&self) -> Result<Option<MediaType>, HeaderError> {
        self.get("Content-Type").map(parse_media_type).transpose()
    }
    /// Max-Forwards, 0 to 255 (§20.22).
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        match self.get("Max-Forwards") {
            None => Ok(None),
            Some(v) => {
                let n = parse_u32(v, "Max-Forwards")
                    .map_err(|_| HeaderError::OutOfRange("Max-Forwards"))?;
                u8::try_from(n)
                    .map(Some)
                    .map_err(|_| HeaderError::OutOfRange("Max-Forwards"))
            }
        }
    }
    /// Expires in seconds (§20.19); `OutOfRange` past 2**32-1.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.get("Expires")
            .map(|v| parse_u32(v, "Expires"))
            .transpose()
    }
    /// The option tags or tokens of every line of a list header such as
    /// Require, Supported or Allow.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(split_tokens)
    }
}

macro_rules! delegate_accessors {
    ($ty:ty) => {
        impl $ty {
            pub fn call_id(&self) -> Result<&str, HeaderError> {
                self.headers.call_id()
            }
            pub fn cseq(&self) -> Result<CSeq, HeaderError> {
                self.headers.cseq()
            }
            pub fn from(&self) -> Result<NameAddr, HeaderError> {
                self.headers.from()
            }
            pub fn to(&self) -> Result<NameAddr, HeaderError> {
                self.headers.to()
            }
            pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
                self.headers.vias()
            }
            pub fn top_via(&self) -> Result<Via, HeaderError> {
                self.headers.top_via()
            }
            pub fn contact(&self) -> Result<Option<ContactValue>, HeaderError> {
                self.headers.contact()
            }
            pub fn content_length(&self) -> Result<Option<usize>, HeaderError> {
                self.headers.content_length()
            }
            pub fn content_type(&self) -> Result<Option<MediaType>, HeaderError> {
                self.headers.content_type()
            }
            pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
                self.headers.max_forwards()
            }
            pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
                self.headers.expires()
            }
        }
    };
}

delegate_accessors!(Request);
delegate_accessors!(Response);

impl Request {
    /// The Request-URI, parsed.
    pub fn request_uri(&self) -> Result<Uri, UriError> {
        Uri::parse(&self.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Scheme;

    #[test]
    fn via_simple_and_params() {
        let v =
            parse_via_list("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=10.0.0.1")
                .unwrap();
        assert_eq!(v.len(), 1);
        let v = &v[0];
        assert_eq!(v.protocol, "SIP/2.0");
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("10.0.0.1"));
        assert_eq!(v.sent_by(), "192.0.2.1:5060");
        assert!(v.is_rfc3261_branch());
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=10.0.0.1"
        );
    }

    #[test]
    fn via_whitespace_and_lists() {
        // RFC 4475 wsinv, after folding.
        let v = parse_via_list(
            "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, "TCP");
        assert_eq!(v[0].host, "spindle.example.com");
        assert_eq!(v[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(v[1].host, "192.168.255.111");
        assert_eq!(v[1].branch(), Some("z9hG4bK30239"));
    }

    #[test]
    fn via_ipv6() {
        let v = parse_via_list("SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3;received=2001:db8::9:255;rport=5071").unwrap();
        assert_eq!(v[0].host, "[2001:db8::9:1]");
        assert_eq!(v[0].port, Some(5070));
        assert_eq!(v[0].received(), Some("2001:db8::9:255"));
        assert_eq!(v[0].rport(), Some(Some(5071)));
    }

    #[test]
    fn via_rejects_garbage() {
        for bad in [
            "",
            "SIP/2.0/UDP",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/2.0/UDP host;branch=",
            "SIP/2.0/UDP host,",
            "SIP/2.0/UDP host:70000",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDPhost",
        ] {
            assert!(parse_via_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn name_addr_forms() {
        let n = parse_name_addr(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com> ; tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.display.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(n.uri.user.as_deref(), Some("jdrosen"));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = parse_name_addr("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display.as_deref(), Some("caller"));
        let n = parse_name_addr("A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe").unwrap();
        assert_eq!(n.display.as_deref(), Some("A. Bell"));
        // §20.10: in addr-spec form the parameters belong to the header.
        let n = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(n.uri.params.is_empty());
        assert_eq!(n.param("unknownparam"), Some(None));
        let n = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert_eq!(n.uri.param("unknownparam"), Some(None));
        assert!(n.params.is_empty());
        let n = parse_name_addr("isbn:2983792873").unwrap();
        assert_eq!(n.uri.scheme, Scheme::Other("isbn".into()));
        let n = parse_name_addr("<sip:a@b>;+sip.instance=\"<urn:uuid:1234>\";expires=60").unwrap();
        assert_eq!(n.param("+sip.instance"), Some(Some("\"<urn:uuid:1234>\"")));
        assert_eq!(
            n.to_string(),
            "<sip:a@b>;+sip.instance=\"<urn:uuid:1234>\";expires=60"
        );
    }

    #[test]
    fn name_addr_rejects() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:a@b",
            "<sip:a@b> junk",
            "",
        ] {
            assert!(parse_name_addr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn contact_lists_and_raw() {
        let v =
            "\"A\" <sip:a@x;transport=tcp>;expires=60, sip:b@y ;q=0.5,<sip:c@z?Route=%3Csip:r%3E>";
        let list = parse_contact_raw(v).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].1, "\"A\" <sip:a@x;transport=tcp>;expires=60");
        assert_eq!(list[1].1, "sip:b@y ;q=0.5");
        assert_eq!(list[1].0.param("q"), Some(Some("0.5")));
        assert_eq!(list[2].0.uri.headers[0].1, "<sip:r>");
        assert_eq!(parse_contact(" * ").unwrap(), ContactValue::Star);
        assert!(parse_contact("<sip:a@b>,").is_err());
        let mut h = Headers::new();
        h.push("Contact", "<sip:a@x>;expires=60, <sip:b@y>");
        h.push("Contact", "<sip:c@z;transport=tcp>");
        let raw: Vec<&str> = h
            .contacts_raw()
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(
            raw,
            [
                "<sip:a@x>;expires=60",
                "<sip:b@y>",
                "<sip:c@z;transport=tcp>"
            ]
        );
    }

    #[test]
    fn cseq_and_scalars() {
        assert_eq!(
            parse_cseq("0009 INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
        assert_eq!(parse_cseq("4294967295 ACK").unwrap().seq, u32::MAX);
        assert_eq!(
            parse_cseq("36893488147419103232 REGISTER"),
            Err(HeaderError::OutOfRange("CSeq"))
        );
        assert!(parse_cseq("-1 INVITE").is_err());
        assert!(parse_cseq("1INVITE").is_err());
        assert!(parse_cseq("1 INVITE x").is_err());
        let mut h = Headers::new();
        h.push("Max-Forwards", "0068");
        h.push("Expires", "10000000000000000000000");
        assert_eq!(h.max_forwards(), Ok(Some(68)));
        assert!(h.expires().is_err());
        h.set("Max-Forwards", "300");
        assert!(h.max_forwards().is_err());
    }

    #[test]
    fn media_types() {
        let m = parse_media_type("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(m.is("multipart", "MIXED"));
        assert_eq!(m.param("boundary"), Some("7a9cbec02ceef655"));
        let a = parse_accept("application/sdp, application/pkcs7-mime, multipart/mixed").unwrap();
        assert_eq!(a.len(), 3);
        assert!(parse_accept("").unwrap().is_empty());
        assert!(parse_media_type("application").is_err());
    }

    #[test]
    fn call_ids() {
        assert!(is_valid_call_id(
            "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
        ));
        assert!(!is_valid_call_id(""));
        assert!(!is_valid_call_id("a b"));
        assert!(!is_valid_call_id("a@b@c"));
    }
}
