//! Transaction identifiers: how a request or response is matched to its
//! transaction (RFC 3261 §17.1.3 for clients, §17.2.3 for servers).
//!
//! The endpoint fills a key from the parsed top Via and CSeq; this module
//! never parses a message.

use crate::sip::message::Method;
use rand::distr::Alphanumeric;
use rand::Rng;
use std::fmt;
use thiserror::Error;

/// The branch prefix that marks an RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Why a key could not be built from a branch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("the top Via has no branch parameter")]
    MissingBranch,
    #[error("branch {0:?} lacks the z9hG4bK magic cookie; use TransactionKey::rfc2543")]
    NoMagicCookie(String),
    #[error("the top Via has no sent-by")]
    MissingSentBy,
}

/// Identifies one transaction.
///
/// The method is stored normalised: an ACK maps to the INVITE transaction it
/// acknowledges (§17.2.3: "the method of the request that created the
/// transaction [is INVITE] ... except for ACK"), while a CANCEL keeps its own
/// key, with the same branch as the INVITE it cancels (§9.2), so it gets its
/// own server transaction and [`TransactionKey::cancel_target`] finds the
/// INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    id: KeyId,
    method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyId {
    /// §17.2.3: branch and sent-by of the top Via.
    Rfc3261 { branch: String, sent_by: String },
    /// §17.2.3, requests from RFC 2543 clients (no magic cookie): matched on
    /// Request-URI, From tag, Call-ID, CSeq number and top Via.
    Rfc2543 {
        request_uri: String,
        call_id: String,
        cseq: u32,
        from_tag: String,
        top_via: String,
    },
}

/// ACK belongs to the INVITE transaction (§17.2.3); every other method is its
/// own.
fn normalise(method: &Method) -> Method {
    match method {
        Method::Ack => Method::Invite,
        other => other.clone(),
    }
}

impl TransactionKey {
    /// Key of an RFC 3261 transaction (§17.1.3, §17.2.3): the `branch` and
    /// `sent-by` (host and port, as written) of the top Via, and the CSeq
    /// method. The host part of sent-by is compared case-insensitively, the
    /// branch exactly.
    ///
    /// Fails when the branch lacks the `z9hG4bK` magic cookie: such requests
    /// come from RFC 2543 clients and need [`TransactionKey::rfc2543`].
    pub fn new(branch: &str, sent_by: &str, method: &Method) -> Result<Self, KeyError> {
        let branch = branch.trim();
        let sent_by = sent_by.trim();
        if branch.is_empty() {
            return Err(KeyError::MissingBranch);
        }
        if !branch.starts_with(MAGIC_COOKIE) {
            return Err(KeyError::NoMagicCookie(branch.to_string()));
        }
        if sent_by.is_empty() {
            return Err(KeyError::MissingSentBy);
        }
        Ok(TransactionKey {
            id: KeyId::Rfc3261 {
                branch: branch.to_string(),
                sent_by: sent_by.to_ascii_lowercase(),
            },
            method: normalise(method),
        })
    }

    /// Key for a request from an RFC 2543 client (§17.2.3, the paragraphs
    /// after the magic-cookie rule): "the INVITE request matches a
    /// transaction if the Request-URI, To tag, From tag, Call-ID, CSeq, and
    /// top Via header field match". The To tag is left out: a retransmitted
    /// INVITE carries none, and the ACK for a non-2xx carries the tag of our
    /// own response, which the RFC then requires to match anyway. `cseq` is
    /// the CSeq number (the method is `method`, ACK normalised to INVITE as
    /// the RFC says "CSeq number (not method)"), `top_via` the raw top Via
    /// value.
    pub fn rfc2543(
        request_uri: &str,
        call_id: &str,
        cseq: u32,
        from_tag: &str,
        top_via: &str,
        method: &Method,
    ) -> Self {
        TransactionKey {
            id: KeyId::Rfc2543 {
                request_uri: request_uri.trim().to_string(),
                call_id: call_id.trim().to_string(),
                cseq,
                from_tag: from_tag.trim().to_string(),
                top_via: top_via.trim().to_string(),
            },
            method: normalise(method),
        }
    }

    /// A fresh branch for a request we send: the magic cookie plus 16 random
    /// alphanumerics, "unique across space and time" (§8.1.1.7).
    pub fn new_branch() -> String {
        let mut branch = String::with_capacity(MAGIC_COOKIE.len() + 16);
        branch.push_str(MAGIC_COOKIE);
        branch.extend(
            rand::rng()
                .sample_iter(Alphanumeric)
                .take(16)
                .map(char::from),
        );
        branch
    }

    /// The method of the transaction (INVITE for an ACK).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The branch, for RFC 3261 keys.
    pub fn branch(&self) -> Option<&str> {
        match &self.id {
            KeyId::Rfc3261 { branch, .. } => Some(branch),
            KeyId::Rfc2543 { .. } => None,
        }
    }

    /// Whether the key came from a magic-cookie branch.
    pub fn is_rfc3261(&self) -> bool {
        matches!(self.id, KeyId::Rfc3261 { .. })
    }

    /// For a CANCEL key, the key of the INVITE it cancels (§9.2: "the
    /// transaction being cancelled" is found by the §17.2.3 rules with the
    /// method taken as INVITE). `None` for any other method.
    pub fn cancel_target(&self) -> Option<TransactionKey> {
        (self.method == Method::Cancel).then(|| self.with_method(&Method::Invite))
    }

    /// The same identifier with another method (normalised).
    pub(crate) fn with_method(&self, method: &Method) -> TransactionKey {
        TransactionKey {
            id: self.id.clone(),
            method: normalise(method),
        }
    }

    /// Re-keys `self` to `method` without cloning when it already matches.
    pub(crate) fn into_method(mut self, method: &Method) -> TransactionKey {
        let m = normalise(method);
        if self.method != m {
            self.method = m;
        }
        self
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            KeyId::Rfc3261 { branch, sent_by } => {
                write!(f, "{} {branch}@{sent_by}", self.method)
            }
            KeyId::Rfc2543 { call_id, cseq, .. } => {
                write!(f, "{} rfc2543 {call_id} {cseq}", self.method)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_maps_to_invite_and_cancel_keeps_its_own_key() {
        let invite =
            TransactionKey::new("z9hG4bK776", "pc33.example.com:5060", &Method::Invite).unwrap();
        let ack = TransactionKey::new("z9hG4bK776", "PC33.example.com:5060", &Method::Ack).unwrap();
        let cancel =
            TransactionKey::new("z9hG4bK776", "pc33.example.com:5060", &Method::Cancel).unwrap();
        assert_eq!(invite, ack);
        assert_ne!(invite, cancel);
        assert_eq!(cancel.cancel_target(), Some(invite.clone()));
        assert_eq!(invite.cancel_target(), None);
        assert_eq!(ack.method(), &Method::Invite);
    }

    #[test]
    fn branch_and_sent_by_both_count() {
        let a = TransactionKey::new("z9hG4bKa", "h:5060", &Method::Bye).unwrap();
        let b = TransactionKey::new("z9hG4bKb", "h:5060", &Method::Bye).unwrap();
        let c = TransactionKey::new("z9hG4bKa", "h:5070", &Method::Bye).unwrap();
        let d = TransactionKey::new("z9hG4bKa", "h:5060", &Method::Options).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn missing_cookie_is_refused() {
        assert_eq!(
            TransactionKey::new("abc", "h", &Method::Invite),
            Err(KeyError::NoMagicCookie("abc".into()))
        );
        assert_eq!(
            TransactionKey::new("", "h", &Method::Invite),
            Err(KeyError::MissingBranch)
        );
        assert_eq!(
            TransactionKey::new("z9hG4bKx", " ", &Method::Invite),
            Err(KeyError::MissingSentBy)
        );
    }

    #[test]
    fn rfc2543_keys_match_ack_and_cancel() {
        let via = "SIP/2.0/UDP old.example.com";
        let inv = TransactionKey::rfc2543("sip:a@b", "c1", 7, "ft", via, &Method::Invite);
        let ack = TransactionKey::rfc2543("sip:a@b", "c1", 7, "ft", via, &Method::Ack);
        let cancel = TransactionKey::rfc2543("sip:a@b", "c1", 7, "ft", via, &Method::Cancel);
        let other = TransactionKey::rfc2543("sip:a@b", "c1", 8, "ft", via, &Method::Invite);
        assert_eq!(inv, ack);
        assert_eq!(cancel.cancel_target(), Some(inv.clone()));
        assert_ne!(inv, other);
        assert!(!inv.is_rfc3261());
        assert_eq!(inv.branch(), None);
    }

    #[test]
    fn new_branches_carry_the_cookie_and_differ() {
        let a = TransactionKey::new_branch();
        let b = TransactionKey::new_branch();
        assert!(a.starts_with(MAGIC_COOKIE));
        assert_eq!(a.len(), MAGIC_COOKIE.len() + 16);
        assert_ne!(a, b);
    }
}
