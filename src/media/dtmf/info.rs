//! DTMF in SIP INFO bodies: `application/dtmf-relay` (`Signal=5`) and
//! `application/dtmf` (`5`).
//!
//! Neither format has an RFC of its own; both are de-facto conventions
//! (Cisco's `application/dtmf-relay`, and the bare-digit `application/dtmf`),
//! carried in INFO requests as RFC 6086 "legacy INFO usage". What phones send
//! in practice, and what this parser therefore accepts:
//!
//! ```text
//! Content-Type: application/dtmf-relay
//!
//! Signal=5
//! Duration=160
//! ```
//!
//! - keys are compared case-insensitively (`signal=5`, `SIGNAL = 5`), blanks
//!   around keys and values are ignored, lines end in CRLF or bare LF;
//! - the signal is one of `0`-`9`, `*`, `#`, `A`-`D` (either case), or the
//!   RFC 4733 event number `10`/`11`/`12`-`15` that some phones send for
//!   `*`/`#`/`A`-`D`;
//! - `Duration` and any other key are ignored: one INFO is one key press;
//! - `application/dtmf` carries the same signal as the whole body.
//!
//! The content type is compared case-insensitively and its parameters
//! (`;charset=...`) are ignored. Anything else gives `None`: the body comes
//! from the network and is never trusted to be well formed.

/// Bodies longer than this are not DTMF (a real one is ~25 bytes).
const MAX_BODY: usize = 1024;

/// The digit carried by an INFO body of `content_type`, if any.
pub fn parse_info_body(content_type: &str, body: &[u8]) -> Option<char> {
    if body.len() > MAX_BODY {
        return None;
    }
    let body = std::str::from_utf8(body).ok()?;
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        parse_relay(body)
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        parse_signal(body)
    } else {
        None
    }
}

/// The `Signal=` line of an `application/dtmf-relay` body. A body with two
/// `Signal` lines is ambiguous and rejected.
fn parse_relay(body: &str) -> Option<char> {
    let mut found = None;
    for line in body.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("signal") {
            if found.is_some() {
                return None;
            }
            found = Some(parse_signal(value)?);
        }
    }
    found
}

/// One signal: a digit character or an RFC 4733 event number (§3.2 table:
/// 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`).
fn parse_signal(value: &str) -> Option<char> {
    let value = value.trim();
    let mut chars = value.chars();
    let first = chars.next()?;
    if chars.next().is_none() {
        return match first {
            '0'..='9' | '*' | '#' | 'A'..='D' => Some(first),
            'a'..='d' => Some(first.to_ascii_uppercase()),
            _ => None,
        };
    }
    // Multi-character: only the event numbers 10..=15 make sense.
    match value {
        "10" => Some('*'),
        "11" => Some('#'),
        "12" => Some('A'),
        "13" => Some('B'),
        "14" => Some('C'),
        "15" => Some('D'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "application/dtmf-relay";

    #[test]
    fn relay_canonical_body() {
        assert_eq!(
            parse_info_body(RELAY, b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            parse_info_body(RELAY, b"Signal=5\r\nDuration=160"),
            Some('5')
        );
        assert_eq!(
            parse_info_body(RELAY, b"Duration=250\nSignal=9\n"),
            Some('9')
        );
    }

    #[test]
    fn relay_keys_case_insensitive_and_whitespace_tolerant() {
        assert_eq!(parse_info_body(RELAY, b"signal=1\r\n"), Some('1'));
        assert_eq!(
            parse_info_body(RELAY, b"SIGNAL = 2 \r\nDURATION = 100\r\n"),
            Some('2')
        );
        assert_eq!(parse_info_body(RELAY, b"  Signal\t=\t3\r\n"), Some('3'));
        assert_eq!(
            parse_info_body(RELAY, b"\r\n\r\nSignal=4\r\n\r\n"),
            Some('4')
        );
    }

    #[test]
    fn relay_star_pound_and_letters() {
        assert_eq!(
            parse_info_body(RELAY, b"Signal=*\r\nDuration=160"),
            Some('*')
        );
        assert_eq!(
            parse_info_body(RELAY, b"Signal=#\r\nDuration=160"),
            Some('#')
        );
        assert_eq!(parse_info_body(RELAY, b"Signal=A"), Some('A'));
        assert_eq!(parse_info_body(RELAY, b"Signal=d"), Some('D'));
    }

    #[test]
    fn relay_event_numbers() {
        assert_eq!(
            parse_info_body(RELAY, b"Signal=10\r\nDuration=160"),
            Some('*')
        );
        assert_eq!(
            parse_info_body(RELAY, b"Signal=11\r\nDuration=160"),
            Some('#')
        );
        assert_eq!(parse_info_body(RELAY, b"Signal=12"), Some('A'));
        assert_eq!(parse_info_body(RELAY, b"Signal=15"), Some('D'));
        assert_eq!(
            parse_info_body(RELAY, b"Signal=16"),
            None,
            "flash is not a digit"
        );
    }

    #[test]
    fn content_type_case_and_parameters() {
        let body = b"Signal=7\r\nDuration=160";
        assert_eq!(parse_info_body("Application/DTMF-Relay", body), Some('7'));
        assert_eq!(
            parse_info_body("application/dtmf-relay; charset=utf-8", body),
            Some('7')
        );
        assert_eq!(
            parse_info_body("  application/dtmf-relay  ", body),
            Some('7')
        );
        assert_eq!(parse_info_body("application/dtmf-relayx", body), None);
        assert_eq!(parse_info_body("text/plain", body), None);
        assert_eq!(parse_info_body("", body), None);
    }

    #[test]
    fn plain_dtmf_body() {
        assert_eq!(parse_info_body("application/dtmf", b"5"), Some('5'));
        assert_eq!(parse_info_body("application/dtmf", b"5\r\n"), Some('5'));
        assert_eq!(parse_info_body("APPLICATION/DTMF;x=y", b" # "), Some('#'));
        assert_eq!(parse_info_body("application/dtmf", b"*"), Some('*'));
        assert_eq!(parse_info_body("application/dtmf", b"11"), Some('#'));
        assert_eq!(parse_info_body("application/dtmf", b"b"), Some('B'));
    }

    #[test]
    fn garbage_is_none() {
        for body in [
            &b""[..],
            b"Signal=",
            b"Signal=55",
            b"Signal=x",
            b"Signal 5",
            b"Duration=160",
            b"Signal=1\r\nSignal=2",
            b"Signal=\xff",
            b"\xff\xfe\x00",
            b"Signal=-1",
            b"Signal=+",
        ] {
            assert_eq!(parse_info_body(RELAY, body), None, "{body:?}");
        }
        for body in [&b""[..], b"55", b"E", b"Signal=5", b"\x00"] {
            assert_eq!(parse_info_body("application/dtmf", body), None, "{body:?}");
        }
        assert_eq!(parse_info_body(RELAY, &[b'5'; 2000]), None);
    }
}
