//! URIs as SIP meets them (RFC 3261 §19.1, §25.1): `sip:`/`sips:` URIs with
//! user info, IPv4/IPv6/host names, ports, parameters and headers; `tel:` URIs
//! (RFC 3966); and any other scheme kept opaque, so that validation can answer
//! 416 Unsupported URI Scheme instead of 400.
//!
//! Escaped characters (`%HH`) in the user, password, parameters and headers are
//! decoded when parsing, as RFC 3261 §19.1.4 treats `%6C` and `l` as equal;
//! `Display` escapes again whatever the grammar does not allow unescaped, so
//! `Uri::parse(&uri.to_string()) == Ok(uri)`.

use std::fmt;
use thiserror::Error;

/// Why a URI does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UriError {
    #[error("empty URI")]
    Empty,
    #[error("missing or malformed scheme")]
    BadScheme,
    #[error("malformed user info")]
    BadUserInfo,
    #[error("malformed host")]
    BadHost,
    #[error("malformed port")]
    BadPort,
    #[error("malformed URI parameter")]
    BadParam,
    #[error("malformed URI header")]
    BadHeader,
    #[error("malformed %-escape")]
    BadEscape,
    #[error("character not allowed in URI")]
    BadChar,
}

/// The URI scheme. `sip`, `sips` and `tel` are compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other syntactically valid scheme, lower-cased.
    Other(String),
}

impl Scheme {
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A parsed URI.
///
/// * `sip`/`sips`: every field as its name says; `host` keeps the brackets of
///   an IPv6 reference (`[2001:db8::1]`) so that `host:port` stays readable.
/// * `tel`: `user` is the number (`+1-201-555-0123`), `host` is empty.
/// * other schemes: `host` holds everything after `scheme:` unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
    pub headers: Vec<(String, String)>,
}

// Character classes of RFC 3261 §25.1.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}
fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}
fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}
fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}
fn is_header_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// Percent-decodes `s`, checking that every unescaped byte satisfies `allowed`.
/// The decoded text must be UTF-8 (a `%00` is fine: RFC 4475 `escnull`).
fn unescape(s: &str, allowed: fn(u8) -> bool) -> Result<String, UriError> {
    let bytes = s.as_bytes();
    if !bytes.contains(&b'%') {
        return if bytes.iter().all(|&b| allowed(b)) {
            Ok(s.to_string())
        } else {
            Err(UriError::BadChar)
        };
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|&c| hex_val(c));
            let lo = bytes.get(i + 2).and_then(|&c| hex_val(c));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(UriError::BadEscape),
            }
            i += 3;
        } else if allowed(b) {
            out.push(b);
            i += 1;
        } else {
            return Err(UriError::BadChar);
        }
    }
    String::from_utf8(out).map_err(|_| UriError::BadEscape)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Writes `s`, escaping every byte that `allowed` rejects (`allowed` only
/// accepts ASCII, so runs of allowed bytes are valid UTF-8 on their own).
fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str, allowed: fn(u8) -> bool) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !allowed(b) {
            if start < i {
                f.write_str(std::str::from_utf8(&bytes[start..i]).unwrap_or(""))?;
            }
            let esc = [b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]];
            f.write_str(std::str::from_utf8(&esc).unwrap_or(""))?;
            start = i + 1;
        }
    }
    if start < bytes.len() {
        f.write_str(std::str::from_utf8(&bytes[start..]).unwrap_or(""))?;
    }
    Ok(())
}

fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// host = hostname / IPv4address / IPv6reference (§25.1). Underscores are
/// tolerated in host names (seen in the wild), nothing else.
pub(crate) fn valid_host(h: &str) -> bool {
    let b = h.as_bytes();
    match b.first() {
        None => false,
        Some(b'[') => {
            b.len() > 2
                && b[b.len() - 1] == b']'
                && b[1..b.len() - 1]
                    .iter()
                    .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
                && b[1..b.len() - 1].contains(&b':')
        }
        Some(_) => b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')),
    }
}

fn parse_params(s: &str) -> Result<Vec<(String, Option<String>)>, UriError> {
    // `s` starts after the first ';'.
    let mut params = Vec::new();
    for p in s.split(';') {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        if name.is_empty() {
            return Err(UriError::BadParam);
        }
        let name = unescape(name, is_param_char).map_err(|_| UriError::BadParam)?;
        let value = match value {
            Some(v) => Some(unescape(v, is_param_char).map_err(|_| UriError::BadParam)?),
            None => None,
        };
        params.push((name, value));
    }
    Ok(params)
}

fn parse_headers(s: &str) -> Result<Vec<(String, String)>, UriError> {
    let mut headers = Vec::new();
    if s.is_empty() {
        return Ok(headers);
    }
    for h in s.split('&') {
        let (name, value) = h.split_once('=').ok_or(UriError::BadHeader)?;
        if name.is_empty() {
            return Err(UriError::BadHeader);
        }
        let name = unescape(name, is_header_char).map_err(|_| UriError::BadHeader)?;
        let value = unescape(value, is_header_char).map_err(|_| UriError::BadHeader)?;
        headers.push((name, value));
    }
    Ok(headers)
}

impl Uri {
    /// Parses a URI (RFC 3261 §19.1.1 for sip/sips, RFC 3966 for tel). No
    /// surrounding whitespace is allowed: RFC 4475 `badaspec` and `lwsruri`
    /// must fail.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        let (scheme, rest) = s.split_once(':').ok_or(UriError::BadScheme)?;
        if !is_scheme(scheme) {
            return Err(UriError::BadScheme);
        }
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme.to_ascii_lowercase())
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => Self::parse_sip(scheme, rest),
            Scheme::Tel => Self::parse_tel(rest),
            Scheme::Other(_) => {
                if rest.is_empty()
                    || rest
                        .bytes()
                        .any(|b| b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b'"'))
                {
                    return Err(UriError::BadChar);
                }
                Ok(Uri {
                    scheme,
                    user: None,
                    password: None,
                    host: rest.to_string(),
                    port: None,
                    params: Vec::new(),
                    headers: Vec::new(),
                })
            }
        }
    }

    fn parse_sip(scheme: Scheme, rest: &str) -> Result<Uri, UriError> {
        // userinfo ends at the first '@': the user part may itself hold
        // ';', '?' and ',' (RFC 4475 `intmeth`, `semiuri`), never a raw '@'.
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(UriError::BadUserInfo);
                }
                let u = unescape(u, is_user_char).map_err(|e| match e {
                    UriError::BadEscape => e,
                    _ => UriError::BadUserInfo,
                })?;
                let p = match p {
                    Some(p) => Some(unescape(p, is_password_char).map_err(|e| match e {
                        UriError::BadEscape => e,
                        _ => UriError::BadUserInfo,
                    })?),
                    None => None,
                };
                (Some(u), p)
            }
        };
        let (hostport, headers) = match hostpart.split_once('?') {
            Some((hp, h)) => (hp, parse_headers(h)?),
            None => (hostpart, Vec::new()),
        };
        let (hostport, params) = match hostport.split_once(';') {
            Some((hp, p)) => (hp, parse_params(p)?),
            None => (hostport, Vec::new()),
        };
        let (host, port) = if hostport.starts_with('[') {
            let end = hostport.find(']').ok_or(UriError::BadHost)?;
            let (h, p) = hostport.split_at(end + 1);
            match p {
                "" => (h, None),
                _ => (h, Some(p.strip_prefix(':').ok_or(UriError::BadHost)?)),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !valid_host(host) {
            return Err(UriError::BadHost);
        }
        let port = match port {
            None => None,
            Some(p) => Some(parse_port(p).ok_or(UriError::BadPort)?),
        };
        Ok(Uri {
            scheme,
            user,
            password,
            host: host.to_string(),
            port,
            params,
            headers,
        })
    }

    fn parse_tel(rest: &str) -> Result<Uri, UriError> {
        let (number, params) = match rest.split_once(';') {
            Some((n, p)) => (n, parse_params(p)?),
            None => (rest, Vec::new()),
        };
        // RFC 3966 §3: global numbers start with '+', local ones are digits,
        // DTMF digits and visual separators.
        let ok = !number.is_empty()
            && number.bytes().all(|b| {
                b.is_ascii_hexdigit() || matches!(b, b'+' | b'*' | b'#' | b'-' | b'.' | b'(' | b')')
            });
        if !ok {
            return Err(UriError::BadUserInfo);
        }
        Ok(Uri {
            scheme: Scheme::Tel,
            user: Some(number.to_string()),
            password: None,
            host: String::new(),
            port: None,
            params,
            headers: Vec::new(),
        })
    }

    /// A URI parameter by name (case-insensitive): `None` if absent,
    /// `Some(None)` for a flag such as `;lr`, `Some(Some(v))` for `;name=v`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The user part of a sip/sips URI, or the number of a tel URI.
    pub fn user_or_number(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// True for `sip:` and `sips:`.
    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// The host without the brackets of an IPv6 reference.
    pub fn host_unbracketed(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

/// Parses a port: 1 to 5 digits, at most 65535.
pub(crate) fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme.as_str())?;
        f.write_str(":")?;
        match self.scheme {
            Scheme::Other(_) => return f.write_str(&self.host),
            Scheme::Tel => {
                f.write_str(self.user.as_deref().unwrap_or(""))?;
            }
            Scheme::Sip | Scheme::Sips => {
                if let Some(user) = &self.user {
                    write_escaped(f, user, is_user_char)?;
                    if let Some(pw) = &self.password {
                        f.write_str(":")?;
                        write_escaped(f, pw, is_password_char)?;
                    }
                    f.write_str("@")?;
                }
                f.write_str(&self.host)?;
                if let Some(port) = self.port {
                    write!(f, ":{port}")?;
                }
            }
        }
        for (name, value) in &self.params {
            f.write_str(";")?;
            write_escaped(f, name, is_param_char)?;
            if let Some(v) = value {
                f.write_str("=")?;
                write_escaped(f, v, is_param_char)?;
            }
        }
        for (i, (name, value)) in self.headers.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            write_escaped(f, name, is_header_char)?;
            f.write_str("=")?;
            write_escaped(f, value, is_header_char)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_sip() {
        let u = Uri::parse("sip:alice@example.com:5070;transport=tcp;lr").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.param("maddr"), None);
        assert_eq!(u.to_string(), "sip:alice@example.com:5070;transport=tcp;lr");
    }

    #[test]
    fn ipv6_and_no_user() {
        let u = Uri::parse("sips:[2001:db8::1]:5061").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, None);
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.host_unbracketed(), "2001:db8::1");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.to_string(), "sips:[2001:db8::1]:5061");
        assert!(Uri::parse("sip:[::1").is_err());
        assert!(Uri::parse("sip:[::1]x").is_err());
        assert_eq!(Uri::parse("sip:[::1]").unwrap().host, "[::1]");
    }

    #[test]
    fn escaped_user_is_decoded() {
        // RFC 4475 esc01.
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(u.user.as_deref(), Some("sips:user@example.com"));
        assert_eq!(u.host, "example.net");
        assert_eq!(u.to_string(), "sip:sips%3Auser%40example.com@example.net");
        let u =
            Uri::parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        assert_eq!(u.user.as_deref(), Some("caller"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.param("name"), Some(Some("value%41")));
        // escnull: %00 is legal.
        let u = Uri::parse("sip:null-%00-null@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("null-\0-null"));
        assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
        assert_eq!(Uri::parse("sip:a%4@x"), Err(UriError::BadEscape));
        assert_eq!(Uri::parse("sip:a%ZZ@x"), Err(UriError::BadEscape));
    }

    #[test]
    fn unusual_user_and_password() {
        // RFC 4475 intmeth.
        let s = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let u = Uri::parse(s).unwrap();
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.host, "example.com");
        assert_eq!(u.to_string(), s);
        // semiuri: the ';' belongs to the user part.
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u@example.net"));
        assert!(u.params.is_empty());
    }

    #[test]
    fn headers_in_uri() {
        let u = Uri::parse("sip:user@example.com?Route=%3Csip:example.com%3E&Subject=hi").unwrap();
        assert_eq!(
            u.headers,
            vec![
                ("Route".into(), "<sip:example.com>".into()),
                ("Subject".into(), "hi".into())
            ]
        );
        assert_eq!(
            u.to_string(),
            "sip:user@example.com?Route=%3Csip:example.com%3E&Subject=hi"
        );
    }

    #[test]
    fn tel_and_other_schemes() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user_or_number(), Some("+1-201-555-0123"));
        assert_eq!(u.host, "");
        assert_eq!(u.param("phone-context"), Some(Some("example.com")));
        assert_eq!(
            u.to_string(),
            "tel:+1-201-555-0123;phone-context=example.com"
        );
        let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert_eq!(u.scheme, Scheme::Other("nobodyknowsthisscheme".into()));
        let u = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(u.scheme, Scheme::Other("soap.beep".into()));
        assert_eq!(u.to_string(), "soap.beep://192.0.2.103:3002");
        assert_eq!(Uri::parse("SIP:x@Y").unwrap().scheme, Scheme::Sip);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "<sip:user@example.com>",
            " sip:t.watson@example.org",
            "sip:t.watson@example.org ",
            "sip:user@example.com; lr",
            "sip:",
            "sip:@host",
            "sip:host:99999",
            "sip:host:",
            "sip:host;;",
            "sip:ho st",
            "sip:host?Route",
            "1sip:host",
            "tel:",
            "tel:12 34",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn arb_uri() -> impl Strategy<Value = Uri> {
        let param = ("\\PC{1,8}", proptest::option::of("\\PC{0,8}"));
        let header = ("\\PC{1,8}", "\\PC{0,8}");
        (
            prop_oneof![Just(Scheme::Sip), Just(Scheme::Sips)],
            proptest::option::of(("\\PC{1,10}", proptest::option::of("\\PC{0,6}"))),
            prop_oneof![
                "[a-z0-9][a-z0-9.-]{0,15}",
                Just("[2001:db8::1]".to_string())
            ],
            proptest::option::of(any::<u16>()),
            proptest::collection::vec(param, 0..4),
            proptest::collection::vec(header, 0..3),
        )
            .prop_map(|(scheme, ui, host, port, params, headers)| {
                let (user, password) = match ui {
                    Some((u, p)) => (Some(u), p),
                    None => (None, None),
                };
                Uri {
                    scheme,
                    user,
                    password,
                    host,
                    port,
                    params,
                    headers,
                }
            })
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(u in arb_uri()) {
            let text = u.to_string();
            prop_assert_eq!(Uri::parse(&text), Ok(u), "{}", text);
        }

        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = Uri::parse(&s);
        }
    }
}
