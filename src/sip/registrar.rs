//! The registrar core (RFC 3261 §10.3): bindings of contact addresses to
//! each agent's address-of-record, as their softphones REGISTER them.
//!
//! Sans-IO: `on_register(now, aor, request, source)` applies one REGISTER
//! that the endpoint has already authenticated (digest, `sip::digest`) and
//! authorised (the user may act for the AOR, §10.3 steps 3–4), and returns the
//! headers of the 200 and the binding changes for the store — or the error
//! response to send. Time is the wall clock, passed in; nothing here sleeps.
//!
//! Each binding keeps the Contact exactly as sent (with `transport=` and
//! `+sip.instance`, which re-formatting loses, see DEPENDENCIES.md), and
//! where the REGISTER really came from (`source`: the socket address and
//! transport it arrived on, i.e. what `received`/`rport` describe): calls to
//! the agent go there, through the NAT binding the REGISTER opened.
//!
//! Binding identity: by contact URI, compared as RFC 3261 §19.1.4 says
//! (scheme and host case-insensitive, user case-sensitive, parameters in any
//! order, case-insensitive) — a little stricter than §19.1.4, which ignores
//! a parameter present in only one URI. A contact with `+sip.instance`
//! also replaces the binding of the same instance and `reg-id` (RFC 5626 §6),
//! so a softphone whose address changed does not leave a dead binding behind
//! to be rung.
//!
//! Policy choices (each quoted where applied):
//! - an out-of-order REGISTER (same Call-ID, CSeq not higher than stored)
//!   fails as a whole with 500, changing nothing (§10.3 steps 6–7 and the
//!   all-or-nothing rule that ends step 7);
//! - more live contacts than `max_contacts_per_aor` → 403 Forbidden, changing
//!   nothing. Not 503: the condition is policy, not overload, and a 503
//!   invites the phone to retry at once or fail over (§21.5.4). The agent
//!   unregisters a contact, or waits for one to expire;
//! - reachability (from the endpoint's OPTIONS keep-alives) is not stored:
//!   after a restart, and whenever a REGISTER refreshes a binding (which
//!   re-opens its NAT path), the contact counts as reachable again.
//!
//! How the endpoint drives it, per REGISTER: `DigestRealm::verify_request`
//! (401 with `challenge(…, err.stale(), …)` on failure); `aor_of(req)`, 404
//! for an unknown extension, 403 unless the authenticated user is the AOR;
//! `on_register(now, aor, req, peer)` with the peer the request came from;
//! on `Ok`, `Store::apply_binding_changes(&outcome.changes)` then
//! `outcome.response(req)`, on `Err`, `err.response(req)` (both get a To
//! tag). At start-up: `load(store.load_bindings())`, then `expire(now)`;
//! after that, `expire` at `next_expiry()`, its removals to the store too.

use crate::sip::headers::{ContactValue, HeaderError, NameAddr, Params};
use crate::sip::message::{response_to, Request, Response};
use crate::sip::transport::Peer;
use crate::sip::uri::{Scheme, Uri};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use thiserror::Error;

/// Registrar limits (seconds, contacts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shorter requests get 423 with `Min-Expires` (§10.3 step 7). At most
    /// 3600: §10.3 allows 423 only for requests under one hour.
    pub min_expires: u32,
    /// Longer requests are granted this (§10.3 step 7: the registrar MAY
    /// choose an expiration less than the requested one).
    pub max_expires: u32,
    /// Used when neither the contact nor the request says (§10.3 step 7).
    pub default_expires: u32,
    /// Live bindings per AOR.
    pub max_contacts_per_aor: usize,
    /// Live bindings, over all AORs, whose REGISTER came from one IP
    /// address (a NAT'd office shares one; a stolen password does not get
    /// to bind thousands of contacts).
    pub max_bindings_per_source: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts_per_aor: 5,
            max_bindings_per_source: 1000,
        }
    }
}

impl RegistrarConfig {
    /// The same settings made consistent: `1 ≤ min ≤ 3600`, `max ≥ min`,
    /// `min ≤ default ≤ max`, at least one contact.
    fn normalized(mut self) -> Self {
        self.min_expires = self.min_expires.clamp(1, 3600);
        self.max_expires = self.max_expires.max(self.min_expires);
        self.default_expires = self
            .default_expires
            .clamp(self.min_expires, self.max_expires);
        self.max_contacts_per_aor = self.max_contacts_per_aor.max(1);
        self.max_bindings_per_source = self.max_bindings_per_source.max(1);
        self
    }
}

/// One contact bound to an AOR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The address-of-record: the agent's user/extension.
    pub aor: String,
    /// The contact URI as sent, without `<>`: `sip:1001@10.0.0.5:5060;transport=udp`.
    pub contact_uri: String,
    /// The whole Contact value as sent, display name and parameters included.
    pub raw_contact: String,
    /// Where the REGISTER came from, and on which transport: calls go here.
    pub source: Peer,
    pub expires_at: DateTime<Utc>,
    /// Call-ID and CSeq of the REGISTER that last wrote the binding (§10.3 step 7).
    pub call_id: String,
    pub cseq: u32,
    /// `q` in thousandths (0–1000), if given.
    pub q: Option<u16>,
    /// `+sip.instance` without its quotes (`<urn:uuid:…>`), if given (RFC 5626).
    pub instance: Option<String>,
    /// `reg-id`, if given (RFC 5626).
    pub reg_id: Option<u32>,
    /// False while the endpoint's keep-alives get no answer.
    pub reachable: bool,
}

impl Binding {
    /// Not yet expired at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }

    /// Seconds left, rounded up (0 once expired).
    pub fn remaining_secs(&self, now: DateTime<Utc>) -> u32 {
        let ms = (self.expires_at - now).num_milliseconds();
        if ms <= 0 {
            0
        } else {
            u32::try_from(ms.saturating_add(999) / 1000).unwrap_or(u32::MAX)
        }
    }

    /// `q`, with an absent one counted as 1.0.
    pub fn q_or_default(&self) -> u16 {
        self.q.unwrap_or(1000)
    }

    /// The Contact value for a 200 (§10.3 step 8): the URI as sent, the
    /// header parameters as sent except `expires`, then `expires=remaining`.
    pub fn contact_for_response(&self, now: DateTime<Utc>) -> String {
        let mut out = format!("<{}>", self.contact_uri);
        if let Ok(na) = crate::sip::headers::parse_name_addr(&self.raw_contact) {
            push_params(&mut out, &na.params, "expires");
        }
        out.push_str(&format!(";expires={}", self.remaining_secs(now)));
        out
    }

    fn key(&self) -> Option<String> {
        crate::sip::headers::parse_name_addr(&self.raw_contact)
            .ok()
            .map(|na| uri_key(&na.uri))
    }
}

fn push_params(out: &mut String, params: &Params, except: &str) {
    for (n, v) in params {
        if n.eq_ignore_ascii_case(except) {
            continue;
        }
        out.push(';');
        out.push_str(n);
        if let Some(v) = v {
            out.push('=');
            out.push_str(v);
        }
    }
}

/// Why a binding went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReason {
    /// `expires=0` for this contact.
    Unregistered,
    /// `Contact: *` with `Expires: 0`.
    Wildcard,
    /// Its time ran out.
    Expired,
    /// A contact of the same `+sip.instance`/`reg-id` took its place.
    Replaced,
    /// Dropped on `load` to honour `max_contacts_per_aor`.
    OverLimit,
    /// Dropped on `load`: its stored Contact no longer parses.
    Invalid,
    /// Its user was taken out of `[[registrar.users]]` by a reload.
    UserRemoved,
}

/// A binding that is gone: the store deletes `(aor, contact_uri)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedBinding {
    pub aor: String,
    pub contact_uri: String,
    pub reason: RemoveReason,
}

/// What a REGISTER did, for the store (apply in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingChange {
    Added(Binding),
    Refreshed(Binding),
    Removed(RemovedBinding),
}

/// A REGISTER that succeeded: the 200's extra headers (every current
/// binding as `Contact: <…>;expires=N`, and `Date`, §10.3 step 8) and the
/// changes to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome {
    pub headers: Vec<(String, String)>,
    pub changes: Vec<BindingChange>,
}

impl RegisterOutcome {
    /// The 200 for `req` (the endpoint adds the To tag).
    pub fn response(&self, req: &Request) -> Response {
        let mut resp = response_to(req, 200, "OK");
        for (n, v) in &self.headers {
            resp.headers.push(n.clone(), v.clone());
        }
        resp
    }
}

/// A REGISTER that fails; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegisterError {
    /// A header the registrar needs is missing or broken, or `*` is misused.
    #[error("bad REGISTER: {0}")]
    BadRequest(String),
    /// §10.3 step 7: the requested interval is under the minimum.
    #[error("expiration of {requested}s is under the minimum {min_expires}s")]
    IntervalTooBrief { requested: u32, min_expires: u32 },
    /// More live contacts than allowed for one AOR.
    #[error("more than {max} contacts for one AOR")]
    TooManyContacts { max: usize },
    /// More live bindings from one source address than allowed.
    #[error("more than {max} bindings from {address}")]
    TooManyFromSource {
        max: usize,
        address: std::net::IpAddr,
    },
    /// §10.3 steps 6–7: same Call-ID, CSeq not higher than the binding's.
    #[error("out-of-order REGISTER: CSeq {cseq} not above {stored} for Call-ID {call_id}")]
    OutOfOrder {
        call_id: String,
        cseq: u32,
        stored: u32,
    },
}

impl RegisterError {
    pub fn status(&self) -> u16 {
        match self {
            RegisterError::BadRequest(_) => 400,
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::TooManyContacts { .. } => 403,
            RegisterError::TooManyFromSource { .. } => 403,
            RegisterError::OutOfOrder { .. } => 500,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            RegisterError::BadRequest(_) => "Bad Request",
            RegisterError::IntervalTooBrief { .. } => "Interval Too Brief",
            RegisterError::TooManyContacts { .. } => "Too Many Contacts",
            RegisterError::TooManyFromSource { .. } => "Too Many Registrations From This Address",
            RegisterError::OutOfOrder { .. } => "Out Of Order Request",
        }
    }

    /// Headers the error response must carry: `Min-Expires` on 423 (§20.23).
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            RegisterError::IntervalTooBrief { min_expires, .. } => {
                vec![("Min-Expires".into(), min_expires.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The error response for `req` (the endpoint adds the To tag).
    pub fn response(&self, req: &Request) -> Response {
        let mut resp = response_to(req, self.status(), self.reason());
        for (n, v) in self.headers() {
            resp.headers.push(n, v);
        }
        resp
    }
}

fn bad(e: impl std::fmt::Display) -> RegisterError {
    RegisterError::BadRequest(e.to_string())
}

/// The AOR a REGISTER is for: the user part of the To URI (§10.3 step 5).
/// Whether it exists (404) and whether the authenticated user may act for
/// it (403) is the endpoint's decision.
pub fn aor_of(req: &Request) -> Result<String, RegisterError> {
    let to = req.to().map_err(bad)?;
    if !to.uri.is_sip() {
        return Err(bad("To is not a SIP URI"));
    }
    match to.uri.user {
        Some(u) if !u.is_empty() => Ok(u),
        _ => Err(bad("To URI has no user part")),
    }
}

/// A comparison key for a contact URI (RFC 3261 §19.1.4): scheme, host and
/// parameters case-insensitive, user and password case-sensitive (escapes
/// are already decoded by the parser), parameters and headers in any order.
fn uri_key(uri: &Uri) -> String {
    let mut params: Vec<String> = uri
        .params
        .iter()
        .map(|(n, v)| match v {
            Some(v) => format!("{}={}", n.to_ascii_lowercase(), v.to_ascii_lowercase()),
            None => n.to_ascii_lowercase(),
        })
        .collect();
    params.sort();
    let mut headers: Vec<String> = uri
        .headers
        .iter()
        .map(|(n, v)| format!("{}={}", n.to_ascii_lowercase(), v))
        .collect();
    headers.sort();
    format!(
        "{}:{}:{}@{}:{}|{}|{}",
        uri.scheme.as_str(),
        uri.user.as_deref().unwrap_or(""),
        uri.password.as_deref().unwrap_or(""),
        uri.host.to_ascii_lowercase(),
        uri.port.map(|p| p.to_string()).unwrap_or_default(),
        params.join(";"),
        headers.join("&"),
    )
}

/// The URI text of a contact value as sent: inside the first `<…>` outside
/// a quoted display name, or (addr-spec form) up to the first `;`, whose
/// parameters belong to the header (§20.10).
fn contact_uri_text(raw: &str) -> &str {
    let b = raw.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => {
                let rest = raw.get(i + 1..).unwrap_or("");
                return rest.find('>').and_then(|e| rest.get(..e)).unwrap_or(rest);
            }
            b';' if !quoted => break,
            _ => {}
        }
        i += 1;
    }
    raw.get(..i).unwrap_or(raw).trim()
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (k, d) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .enumerate()
    {
        thousandths += u16::from(d - b'0') * [100, 10, 1][k];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// `delta-seconds` saturating at 2³²−1 (RFC 3261 §20.19 allows large values).
fn parse_delta_seconds(v: &str) -> Option<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.bytes()
            .try_fold(0u32, |n, b| {
                n.checked_mul(10)?.checked_add(u32::from(b - b'0'))
            })
            .unwrap_or(u32::MAX),
    )
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// One contact of a REGISTER, read and checked.
struct ContactReq {
    uri_text: String,
    raw: String,
    key: String,
    /// Requested seconds (0 = remove).
    requested: u32,
    q: Option<u16>,
    instance: Option<String>,
    reg_id: Option<u32>,
}

fn read_contact(
    na: &NameAddr,
    raw: &str,
    header_expires: Option<u32>,
    default: u32,
) -> Result<ContactReq, RegisterError> {
    if !matches!(na.uri.scheme, Scheme::Sip | Scheme::Sips) {
        return Err(bad("contact is not a sip: or sips: URI"));
    }
    // §10.3 step 7: the contact's expires parameter, else the Expires
    // header, else the local default.
    let requested = match na.param("expires") {
        Some(Some(v)) => parse_delta_seconds(v).ok_or_else(|| bad("bad expires parameter"))?,
        Some(None) => return Err(bad("expires parameter without a value")),
        None => header_expires.unwrap_or(default),
    };
    let q = match na.param("q") {
        Some(Some(v)) => Some(parse_q(v).ok_or_else(|| bad("bad q parameter"))?),
        Some(None) => return Err(bad("q parameter without a value")),
        None => None,
    };
    let instance = match na.param("+sip.instance") {
        Some(Some(v)) => Some(unquote(v).to_string()),
        _ => None,
    };
    let reg_id = match na.param("reg-id") {
        Some(Some(v)) => Some(
            parse_delta_seconds(v)
                .filter(|&n| n > 0 && n < u32::MAX)
                .ok_or_else(|| bad("bad reg-id parameter"))?,
        ),
        Some(None) => return Err(bad("reg-id parameter without a value")),
        None => None,
    };
    Ok(ContactReq {
        uri_text: contact_uri_text(raw).to_string(),
        raw: raw.to_string(),
        key: uri_key(&na.uri),
        requested,
        q,
        instance,
        reg_id,
    })
}

/// A binding with its comparison key, as the registrar keeps it.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    binding: Binding,
}

/// The bindings of every AOR.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    aors: HashMap<String, Vec<Entry>>,
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Registrar {
        Registrar {
            config: config.normalized(),
            aors: HashMap::new(),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Applies one authenticated REGISTER for `aor` (RFC 3261 §10.3 steps
    /// 6–8). `source` is where the request came from: its transport and the
    /// address the datagram or connection really came from. All or nothing:
    /// on error no binding changed (§10.3: "The binding updates MUST be
    /// committed … if and only if all binding updates and additions
    /// succeed").
    pub fn on_register(
        &mut self,
        now: DateTime<Utc>,
        aor: &str,
        req: &Request,
        source: Peer,
    ) -> Result<RegisterOutcome, RegisterError> {
        let call_id = req.call_id().map_err(bad)?.to_string();
        let cseq = req.cseq().map_err(bad)?.seq;
        let contact = req.contact().map_err(bad)?;
        let header_expires = match req.expires() {
            Ok(v) => v,
            // §20.19: a huge value is no error; the maximum applies.
            Err(HeaderError::OutOfRange(_)) => Some(u32::MAX),
            Err(e) => return Err(bad(e)),
        };

        // Whatever has run out is gone before this request is looked at
        // (committed, and reported, only if the request succeeds).
        let (before, expired): (Vec<Entry>, Vec<Entry>) = self
            .aors
            .get(aor)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .partition(|e| e.binding.is_live(now));
        let mut changes: Vec<BindingChange> = expired
            .into_iter()
            .map(|e| {
                BindingChange::Removed(RemovedBinding {
                    aor: aor.to_string(),
                    contact_uri: e.binding.contact_uri,
                    reason: RemoveReason::Expired,
                })
            })
            .collect();

        let after = match contact {
            // §10.3 step 8 with no Contact: a query; nothing changes.
            None => before.clone(),
            Some(ContactValue::Star) => {
                // §10.3 step 6: "*" only with Expires 0 (and alone, which
                // `contact()` checks), else 400.
                if header_expires != Some(0) {
                    return Err(bad("Contact '*' needs Expires: 0"));
                }
                // "…it MUST remove the binding only if the CSeq in the
                // request is higher than the value stored for that binding.
                // Otherwise, the update MUST be aborted and the request fails."
                for e in &before {
                    check_order(&e.binding, &call_id, cseq)?;
                }
                for e in &before {
                    changes.push(BindingChange::Removed(RemovedBinding {
                        aor: aor.to_string(),
                        contact_uri: e.binding.contact_uri.clone(),
                        reason: RemoveReason::Wildcard,
                    }));
                }
                self.aors.remove(aor);
                return Ok(self.outcome(aor, now, changes));
            }
            Some(ContactValue::Addrs(_)) => {
                let list = req.headers.contacts_raw().map_err(bad)?;
                let mut wanted = Vec::with_capacity(list.len());
                for (na, raw) in &list {
                    wanted.push(read_contact(
                        na,
                        raw,
                        header_expires,
                        self.config.default_expires,
                    )?);
                }
                // §10.3 step 7: "If and only if the requested expiration
                // interval is greater than zero AND smaller than one hour AND
                // less than a registrar-configured minimum, the registrar MAY
                // reject the registration with a response of 423".
                if let Some(c) = wanted
                    .iter()
                    .find(|c| c.requested > 0 && c.requested < self.config.min_expires)
                {
                    return Err(RegisterError::IntervalTooBrief {
                        requested: c.requested,
                        min_expires: self.config.min_expires,
                    });
                }
                self.apply(
                    now,
                    aor,
                    &before,
                    wanted,
                    &call_id,
                    cseq,
                    source,
                    &mut changes,
                )?
            }
        };

        if after.is_empty() {
            self.aors.remove(aor);
        } else {
            self.aors.insert(aor.to_string(), after);
        }
        Ok(self.outcome(aor, now, changes))
    }

    /// Fails if the request would leave more than `max_bindings_per_source`
    /// live bindings from `source`'s address, counting every AOR; a request
    /// that does not add to that count (a refresh) always passes, even if
    /// the limit was lowered below what is bound.
    fn check_source_limit(
        &self,
        now: DateTime<Utc>,
        aor: &str,
        before: &[Entry],
        after: &[Entry],
        source: Peer,
    ) -> Result<(), RegisterError> {
        let ip = source.addr.ip();
        let from_ip = |entries: &[Entry]| {
            entries
                .iter()
                .filter(|e| e.binding.source.addr.ip() == ip)
                .count()
        };
        let (mine_before, mine_after) = (from_ip(before), from_ip(after));
        if mine_after <= mine_before {
            return Ok(());
        }
        // Bounded by the configured users: only they get this far.
        let others: usize = self
            .aors
            .iter()
            .filter(|(a, _)| a.as_str() != aor)
            .flat_map(|(_, entries)| entries)
            .filter(|e| e.binding.is_live(now) && e.binding.source.addr.ip() == ip)
            .count();
        let max = self.config.max_bindings_per_source;
        if others + mine_after > max {
            return Err(RegisterError::TooManyFromSource { max, address: ip });
        }
        Ok(())
    }

    /// §10.3 step 7 for each contact, on a tentative copy; committed by
    /// the caller only if every contact succeeded.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        now: DateTime<Utc>,
        aor: &str,
        before: &[Entry],
        wanted: Vec<ContactReq>,
        call_id: &str,
        cseq: u32,
        source: Peer,
        changes: &mut Vec<BindingChange>,
    ) -> Result<Vec<Entry>, RegisterError> {
        let mut after: Vec<Entry> = before.to_vec();
        // Bindings this request already wrote: the CSeq rule compares with
        // the state before the request, not with itself.
        let mut written: Vec<bool> = vec![false; after.len()];
        let mut removed: HashMap<String, RemoveReason> = HashMap::new();
        for c in wanted {
            let matches: Vec<usize> = after
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.key == c.key
                        || (c.instance.is_some()
                            && e.binding.instance == c.instance
                            && e.binding.reg_id == c.reg_id)
                })
                .map(|(i, _)| i)
                .collect();
            // "If the Call-ID value in the existing binding differs from the
            // Call-ID value in the request, the binding MUST be removed if the
            // expiration time is zero and updated otherwise. If they are the
            // same, the registrar compares the CSeq value. If the value is
            // higher than that of the existing binding, it MUST update or
            // remove the binding as above. If not, the update MUST be aborted
            // and the request fails."
            for &i in &matches {
                if !written[i] {
                    check_order(&after[i].binding, call_id, cseq)?;
                }
            }
            for &i in matches.iter().rev() {
                let old = after.remove(i);
                written.remove(i);
                let reason = if c.requested == 0 {
                    RemoveReason::Unregistered
                } else {
                    RemoveReason::Replaced
                };
                removed.insert(old.binding.contact_uri, reason);
            }
            if c.requested == 0 {
                continue;
            }
            let granted = c.requested.min(self.config.max_expires);
            removed.remove(&c.uri_text);
            after.push(Entry {
                key: c.key,
                binding: Binding {
                    aor: aor.to_string(),
                    contact_uri: c.uri_text,
                    raw_contact: c.raw,
                    source,
                    expires_at: now + TimeDelta::seconds(i64::from(granted)),
                    call_id: call_id.to_string(),
                    cseq,
                    q: c.q,
                    instance: c.instance,
                    reg_id: c.reg_id,
                    reachable: true,
                },
            });
            written.push(true);
        }
        if after.len() > self.config.max_contacts_per_aor {
            return Err(RegisterError::TooManyContacts {
                max: self.config.max_contacts_per_aor,
            });
        }
        self.check_source_limit(now, aor, before, &after, source)?;
        // Changes as the store sees them, keyed by (aor, contact_uri).
        for e in before {
            if !after
                .iter()
                .any(|a| a.binding.contact_uri == e.binding.contact_uri)
            {
                changes.push(BindingChange::Removed(RemovedBinding {
                    aor: aor.to_string(),
                    contact_uri: e.binding.contact_uri.clone(),
                    reason: removed
                        .get(&e.binding.contact_uri)
                        .copied()
                        .unwrap_or(RemoveReason::Replaced),
                }));
            }
        }
        for (a, w) in after.iter().zip(&written) {
            if !w {
                continue;
            }
            let existed = before
                .iter()
                .any(|e| e.binding.contact_uri == a.binding.contact_uri);
            changes.push(if existed {
                BindingChange::Refreshed(a.binding.clone())
            } else {
                BindingChange::Added(a.binding.clone())
            });
        }
        Ok(after)
    }

    /// The 200's headers: every live binding with its remaining time (§10.3
    /// step 8: "MUST contain Contact header field values enumerating all
    /// current bindings … MUST feature an 'expires' parameter"), and a Date
    /// ("SHOULD include a Date header field").
    fn outcome(
        &self,
        aor: &str,
        now: DateTime<Utc>,
        changes: Vec<BindingChange>,
    ) -> RegisterOutcome {
        let mut headers: Vec<(String, String)> = self
            .bindings(aor, now)
            .into_iter()
            .map(|b| ("Contact".to_string(), b.contact_for_response(now)))
            .collect();
        headers.push((
            "Date".to_string(),
            now.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ));
        RegisterOutcome { headers, changes }
    }

    fn sweep_aor(&mut self, aor: &str, now: DateTime<Utc>) -> Vec<RemovedBinding> {
        let mut gone = Vec::new();
        if let Some(list) = self.aors.get_mut(aor) {
            list.retain(|e| {
                let live = e.binding.is_live(now);
                if !live {
                    gone.push(RemovedBinding {
                        aor: aor.to_string(),
                        contact_uri: e.binding.contact_uri.clone(),
                        reason: RemoveReason::Expired,
                    });
                }
                live
            });
            if list.is_empty() {
                self.aors.remove(aor);
            }
        }
        gone
    }

    /// Removes every binding of `aor` (its user is no longer configured).
    pub fn remove_aor(&mut self, aor: &str) -> Vec<RemovedBinding> {
        self.aors
            .remove(aor)
            .into_iter()
            .flatten()
            .map(|e| RemovedBinding {
                aor: aor.to_string(),
                contact_uri: e.binding.contact_uri,
                reason: RemoveReason::UserRemoved,
            })
            .collect()
    }

    /// Removes every binding that has run out by `now`.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<RemovedBinding> {
        let aors: Vec<String> = self.aors.keys().cloned().collect();
        aors.iter().flat_map(|a| self.sweep_aor(a, now)).collect()
    }

    /// When the next binding runs out: the endpoint's wake-up for `expire`.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.aors
            .values()
            .flatten()
            .map(|e| e.binding.expires_at)
            .min()
    }

    /// The live bindings of `aor`, in registration order.
    pub fn bindings(&self, aor: &str, now: DateTime<Utc>) -> Vec<&Binding> {
        self.aors
            .get(aor)
            .into_iter()
            .flatten()
            .map(|e| &e.binding)
            .filter(|b| b.is_live(now))
            .collect()
    }

    /// The contacts to ring for `aor`: live and reachable, highest `q`
    /// first, then the most recently refreshed.
    pub fn reachable_contacts(&self, aor: &str, now: DateTime<Utc>) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .bindings(aor, now)
            .into_iter()
            .filter(|b| b.reachable)
            .collect();
        v.sort_by(|a, b| {
            b.q_or_default()
                .cmp(&a.q_or_default())
                .then(b.expires_at.cmp(&a.expires_at))
        });
        v
    }

    /// Every live binding: what the endpoint sends keep-alives to.
    pub fn live_bindings(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Binding> {
        self.aors
            .values()
            .flatten()
            .map(|e| &e.binding)
            .filter(move |b| b.is_live(now))
    }

    /// AORs with at least one binding (live or not yet swept).
    pub fn aors(&self) -> impl Iterator<Item = &str> {
        self.aors.keys().map(String::as_str)
    }

    /// Keep-alives to `contact_uri` (as in `Binding::contact_uri`) went
    /// unanswered: it is offered no calls. False if there is no such binding.
    pub fn mark_unreachable(&mut self, aor: &str, contact_uri: &str) -> bool {
        self.set_reachable(aor, contact_uri, false)
    }

    /// A keep-alive was answered again.
    pub fn mark_reachable(&mut self, aor: &str, contact_uri: &str) -> bool {
        self.set_reachable(aor, contact_uri, true)
    }

    fn set_reachable(&mut self, aor: &str, contact_uri: &str, reachable: bool) -> bool {
        match self
            .aors
            .get_mut(aor)
            .and_then(|l| l.iter_mut().find(|e| e.binding.contact_uri == contact_uri))
        {
            Some(e) => {
                e.binding.reachable = reachable;
                true
            }
            None => false,
        }
    }

    /// Restores bindings read from the store after a restart (reachable
    /// until keep-alives say otherwise). A binding whose contact is already
    /// bound replaces it; per AOR the latest-expiring
    /// `max_contacts_per_aor` are kept and the others returned, for the
    /// store to delete. Expired ones go at the next `expire`.
    pub fn load(&mut self, bindings: impl IntoIterator<Item = Binding>) -> Vec<RemovedBinding> {
        let mut dropped = Vec::new();
        for mut b in bindings {
            let Some(key) = b.key() else {
                dropped.push(RemovedBinding {
                    aor: b.aor,
                    contact_uri: b.contact_uri,
                    reason: RemoveReason::Invalid,
                });
                continue;
            };
            b.reachable = true;
            let list = self.aors.entry(b.aor.clone()).or_default();
            list.retain(|e| e.key != key);
            list.push(Entry { key, binding: b });
        }
        let max = self.config.max_contacts_per_aor;
        for (aor, list) in self.aors.iter_mut() {
            if list.len() > max {
                list.sort_by_key(|e| std::cmp::Reverse(e.binding.expires_at));
                for e in list.drain(max..) {
                    dropped.push(RemovedBinding {
                        aor: aor.clone(),
                        contact_uri: e.binding.contact_uri,
                        reason: RemoveReason::OverLimit,
                    });
                }
            }
        }
        dropped
    }
}

/// The Call-ID/CSeq rule of §10.3 steps 6 and 7.
fn check_order(b: &Binding, call_id: &str, cseq: u32) -> Result<(), RegisterError> {
    if b.call_id == call_id && cseq <= b.cseq {
        return Err(RegisterError::OutOfOrder {
            call_id: call_id.to_string(),
            cseq,
            stored: b.cseq,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Headers, Method};
    use crate::sip::transport::TransportKind;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 9, 8, 0, 0).unwrap()
    }

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    fn udp(addr: &str) -> Peer {
        Peer {
            kind: TransportKind::Udp,
            addr: addr.parse().unwrap(),
        }
    }

    const SRC: &str = "203.0.113.7:40123";

    fn reg(call_id: &str, cseq: u32, contacts: &[&str], expires: Option<&str>) -> Request {
        let mut h = Headers::new();
        h.push(
            "Via",
            "SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bKx;rport=40123;received=203.0.113.7",
        );
        h.push("From", "<sip:1001@hotline.test>;tag=a1");
        h.push("To", "<sip:1001@hotline.test>");
        h.push("Call-ID", call_id);
        h.push("CSeq", format!("{cseq} REGISTER"));
        for c in contacts {
            h.push("Contact", *c);
        }
        if let Some(e) = expires {
            h.push("Expires", e);
        }
        Request {
            method: Method::Register,
            uri: "sip:hotline.test".into(),
            headers: h,
            body: Default::default(),
        }
    }

    fn registrar() -> Registrar {
        Registrar::new(RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            max_contacts_per_aor: 3,
            max_bindings_per_source: 4,
        })
    }

    fn contacts(o: &RegisterOutcome) -> Vec<&str> {
        o.headers
            .iter()
            .filter(|(n, _)| n == "Contact")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn ok(r: &mut Registrar, now: DateTime<Utc>, req: &Request) -> RegisterOutcome {
        r.on_register(now, "1001", req, udp(SRC)).unwrap()
    }

    #[test]
    fn register_keeps_raw_contact_and_source() {
        let mut r = registrar();
        let c = "\"Agent 1001\" <sip:1001@192.168.1.5:5060;transport=udp>;+sip.instance=\"<urn:uuid:0bc6b2a1-0000-4000-8000-000000001001>\";reg-id=1;q=0.8";
        let o = ok(&mut r, t0(), &reg("c1", 1, &[c], Some("300")));
        let b = &r.bindings("1001", t0())[0];
        assert_eq!(b.raw_contact, c);
        assert_eq!(b.contact_uri, "sip:1001@192.168.1.5:5060;transport=udp");
        assert_eq!(b.source, udp(SRC));
        assert_eq!(
            b.instance.as_deref(),
            Some("<urn:uuid:0bc6b2a1-0000-4000-8000-000000001001>")
        );
        assert_eq!(b.reg_id, Some(1));
        assert_eq!(b.q, Some(800));
        assert_eq!(b.expires_at, t0() + secs(300));
        assert_eq!((b.call_id.as_str(), b.cseq), ("c1", 1));
        assert_eq!(
            contacts(&o),
            ["<sip:1001@192.168.1.5:5060;transport=udp>;+sip.instance=\"<urn:uuid:0bc6b2a1-0000-4000-8000-000000001001>\";reg-id=1;q=0.8;expires=300"]
        );
        assert!(o
            .headers
            .contains(&("Date".into(), "Mon, 09 Nov 2026 08:00:00 GMT".into())));
        assert!(matches!(&o.changes[..], [BindingChange::Added(_)]));
        let resp = o.response(&reg("c1", 1, &[c], Some("300")));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.headers.count("Contact"), 1);
    }

    #[test]
    fn expires_param_over_header_over_default_and_max() {
        let mut r = registrar();
        let o = ok(
            &mut r,
            t0(),
            &reg(
                "c1",
                1,
                &[
                    "<sip:a@10.0.0.1>;expires=120",
                    "<sip:b@10.0.0.2>",
                    "<sip:c@10.0.0.3>;expires=99999",
                ],
                Some("200"),
            ),
        );
        assert_eq!(
            contacts(&o),
            [
                "<sip:a@10.0.0.1>;expires=120",
                "<sip:b@10.0.0.2>;expires=200",
                "<sip:c@10.0.0.3>;expires=3600"
            ]
        );
        let mut r = registrar();
        let o = ok(&mut r, t0(), &reg("c1", 1, &["<sip:a@10.0.0.1>"], None));
        assert_eq!(contacts(&o), ["<sip:a@10.0.0.1>;expires=600"]);
        // A value beyond 2^32-1 is granted the maximum, not refused.
        let o = ok(
            &mut r,
            t0(),
            &reg("c1", 2, &["<sip:a@10.0.0.1>"], Some("99999999999999")),
        );
        assert_eq!(contacts(&o), ["<sip:a@10.0.0.1>;expires=3600"]);
    }

    #[test]
    fn too_brief_is_423_with_min_expires_and_changes_nothing() {
        let mut r = registrar();
        ok(&mut r, t0(), &reg("c1", 1, &["<sip:a@10.0.0.1>"], None));
        let e = r
            .on_register(
                t0(),
                "1001",
                &reg(
                    "c1",
                    2,
                    &["<sip:a@10.0.0.1>", "<sip:b@10.0.0.2>;expires=30"],
                    None,
                ),
                udp(SRC),
            )
            .unwrap_err();
        assert_eq!(
            e,
            RegisterError::IntervalTooBrief {
                requested: 30,
                min_expires: 60
            }
        );
        let resp = e.response(&reg("c1", 2, &[], None));
        assert_eq!(
            (resp.status, resp.reason.as_str()),
            (423, "Interval Too Brief")
        );
        assert_eq!(resp.headers.get("Min-Expires"), Some("60"));
        assert_eq!(r.bindings("1001", t0()).len(), 1);
        assert_eq!(r.bindings("1001", t0())[0].expires_at, t0() + secs(600));
    }

    #[test]
    fn query_lists_current_bindings_with_remaining_time() {
        let mut r = registrar();
        ok(
            &mut r,
            t0(),
            &reg("c1", 1, &["<sip:a@10.0.0.1>"], Some("300")),
        );
        let o = ok(&mut r, t0() + secs(100), &reg("q", 1, &[], None));
        assert_eq!(contacts(&o), ["<sip:a@10.0.0.1>;expires=200"]);
        assert!(o.changes.is_empty());
        // A query for an AOR with nothing bound: 200 with no Contact.
        let o = r
            .on_register(t0(), "1002", &reg("q", 1, &[], None), udp(SRC))
            .unwrap();
        assert!(contacts(&o).is_empty());
    }

    #[test]
    fn expires_zero_removes_one() {
        let mut r = registrar();
        ok(
            &mut r,
            t0(),
            &reg("c1", 1, &["<sip:a@10.0.0.1>", "<sip:b@10.0.0.2>"], None),
        );
        let o = ok(
            &mut r,
            t0(),
            &reg("c1", 2, &["<sip:a@10.0.0.1>;expires=0"], None),
        );
        assert_eq!(contacts(&o), ["<sip:b@10.0.0.2>;expires=600"]);
        assert_eq!(
            o.changes,
            [BindingChange::Removed(RemovedBinding {
                aor: "1001".into(),
                contact_uri: "sip:a@10.0.0.1".into(),
                reason: RemoveReason::Unregistered
            })]
        );
        // Via the Expires header, and of a contact not bound: no change.
        let o = ok(
            &mut r,
            t0(),
            &reg(
                "c1",
                3,
                &["<sip:b@10.0.0.2>", "<sip:zz@10.0.0.9>"],
                Some("0"),
            ),
        );
        assert!(contacts(&o).is_empty());
        assert_eq!(o.changes.len(), 1);
        assert!(r.aors().next().is_none());
    }

    #[test]
    fn star_rules() {
        let mut r = registrar();
        ok(
            &mut r,
            t0(),
            &reg("c1", 1, &["<sip:a@10.0.0.1>", "<sip:b@10.0.0.2>"], None),
        );
        // §10.3 step 6: "*" needs Expires 0 and must stand alone.
        for req in [
            reg("c1", 2, &["*"], None),
            reg("c1", 2, &["*"], Some("60")),
            reg("c1", 2, &["*", "<sip:a@10.0.0.1>"], Some("0")),
            reg("c1", 2, &["*, <sip:a@10.0.0.1>"], Some("0")),
        ] {
            let e = r.on_register(t0(), "1001", &req, udp(SRC)).unwrap_err();
            assert_eq!(e.status(), 400, "{e}");
        }
        assert_eq!(r.bindings("1001", t0()).len(), 2);
        // Same Call-ID, CSeq not higher: the whole request fails.
        let e = r
            .on_register(t0(), "1001", &reg("c1", 1, &["*"], Some("0")), udp(SRC))
            .unwrap_err();
        assert_eq!(e.status(), 500);
        assert_eq!(r.bindings("1001", t0()).len(), 2);
        let o = ok(&mut r, t0(), &reg("other", 1, &["*"], Some("0")));
        assert!(contacts(&o).is_empty());
        assert_eq!(o.changes.len(), 2);
        assert!(o.changes.iter().all(|c| matches!(
            c,
            BindingChange::Removed(RemovedBinding {
                reason: RemoveReason::Wildcard,
                ..
            })
        )));
        assert!(r.bindings("1001", t0()).is_empty());
    }

    #[test]
    fn call_id_and_cseq_ordering() {
        let mut r = registrar();
        ok(&mut r, t0(), &reg("c1", 5, &["<sip:a@10.0.0.1>"], None));
        // Same Call-ID, lower or equal CSeq: aborted, nothing changes.
        for cseq in [4, 5] {
            let e = r
                .on_register(
                    t0() + secs(10),
                    "1001",
                    &reg("c1", cseq, &["<sip:a@10.0.0.1>;expires=0"], None),
                    udp(SRC),
                )
                .unwrap_err();
            assert_eq!(
                e,
                RegisterError::OutOfOrder {
                    call_id: "c1".into(),
                    cseq,
                    stored: 5
                }
            );
        }
        assert_eq!(r.bindings("1001", t0()).len(), 1);
        // Higher CSeq updates; a different Call-ID (a rebooted phone) updates
        // whatever its CSeq.
        let o = ok(
            &mut r,
            t0() + secs(10),
            &reg("c1", 6, &["<sip:a@10.0.0.1>"], None),
        );
        assert!(matches!(&o.changes[..], [BindingChange::Refreshed(b)] if b.cseq == 6));
        let o = ok(
            &mut r,
            t0() + secs(20),
            &reg("c2", 1, &["<sip:a@10.0.0.1>"], Some("100")),
        );
        assert!(matches!(&o.changes[..], [BindingChange::Refreshed(b)] if b.call_id == "c2"));
        // The same contact twice in one request is not "out of order" with itself.
        let o = ok(
            &mut r,
            t0() + secs(20),
            &reg(
                "c2",
                2,
                &["<sip:a@10.0.0.1>", "<sip:a@10.0.0.1>;expires=200"],
                None,
            ),
        );
        assert_eq!(contacts(&o), ["<sip:a@10.0.0.1>;expires=200"]);
    }

    #[test]
    fn contact_uris_compare_as_rfc3261_says() {
        let mut r = registrar();
        ok(
            &mut r,
            t0(),
            &reg("c1", 1, &["<sip:a@Host.Example;transport=UDP;lr>"], None),
        );
        // Scheme, host and parameters case-insensitive, parameters in any
        // order. The text as sent is the store's key, so a new spelling is
        // a removal and an addition there.
        let o = ok(
            &mut r,
            t0(),
            &reg("c1", 2, &["<SIP:a@host.example;lr;transport=udp>"], None),
        );
        assert!(
            matches!(
                &o.changes[..],
                [BindingChange::Removed(_), BindingChange::Added(_)]
            ),
            "{:?}",
            o.changes
        );
        assert_eq!(r.bindings("1001", t0()).len(), 1);
        // In addr-spec form the parameters belong to the header (§20.10):
        // another URI.
        ok(
            &mut r,
            t0(),
            &reg("c1", 3, &["sip:a@host.example;lr;transport=udp"], None),
        );
        assert_eq!(r.bindings("1001", t0()).len(), 2);
        ok(
            &mut r,
            t0(),
            &reg("c1", 4, &["sip:a@host.example;expires=0"], None),
        );
        // The user part is case-sensitive; an explicit default port differs.
        ok(
            &mut r,
            t0(),
            &reg(
                "c1",
                5,
                &[
                    "<sip:A@host.example;lr;transport=udp>",
                    "<sip:a@host.example:5060;lr;transport=udp>",
                ],
                None,
            ),
        );
        assert_eq!(r.bindings("1001", t0()).len(), 3);
    }

    #[test]
    fn instance_and_reg_id_replace_old_address() {
        let mut r = registrar();
        let inst = "+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-000000000001>\"";
        ok(
            &mut r,
            t0(),
            &reg(
                "c1",
                1,
                &[&format!("<sip:1001@192.168.1.5:5060>;{inst};reg-id=1")],
                None,
            ),
        );
        // The phone moved to another address (new DHCP lease), rebooted.
        let o = ok(
            &mut r,
            t0() + secs(5),
            &reg(
                "c9",
                1,
                &[&format!("<sip:1001@192.168.1.77:5060>;{inst};reg-id=1")],
                None,
            ),
        );
        let b = r.bindings("1001", t0() + secs(5));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].contact_uri, "sip:1001@192.168.1.77:5060");
        assert!(o.changes.iter().any(|c| matches!(c, BindingChange::Removed(RemovedBinding { reason: RemoveReason::Replaced, contact_uri, .. }) if contact_uri == "sip:1001@192.168.1.5:5060")));
        // Another reg-id (a second flow) is a second binding.
        ok(
            &mut r,
            t0() + secs(5),
            &reg(
                "c9",
                2,
                &[&format!(
                    "<sip:1001@192.168.1.77:5062;transport=tcp>;{inst};reg-id=2"
                )],
                None,
            ),
        );
        assert_eq!(r.bindings("1001", t0() + secs(5)).len(), 2);
    }

    #[test]
    fn bindings_per_source_address_are_limited_across_aors_and_refreshes_pass() {
        let mut r = registrar(); // 4 per source address
        const OTHER_PORT: &str = "203.0.113.7:40999";
        const ELSEWHERE: &str = "198.51.100.1:5060";
        // (aor, call-id, cseq, contacts, source, admitted?), in order.
        type Step<'a> = (&'a str, &'a str, u32, &'a [&'a str], &'a str, bool);
        let steps: &[Step] = &[
            (
                "1001",
                "a",
                1,
                &["<sip:a@10.0.0.1>", "<sip:b@10.0.0.1>"],
                SRC,
                true,
            ),
            // The address counts, whatever the port.
            ("1002", "b", 1, &["<sip:c@10.0.0.1>"], OTHER_PORT, true),
            // Another address does not count.
            ("1003", "c", 1, &["<sip:d@10.0.0.9>"], ELSEWHERE, true),
            // 3 bound from 203.0.113.7: two more at once are one too many,
            // and nothing of the request is kept (checked below).
            (
                "1004",
                "d",
                1,
                &["<sip:e@10.0.0.1>", "<sip:f@10.0.0.1>"],
                SRC,
                false,
            ),
            ("1004", "d", 2, &["<sip:e@10.0.0.1>"], SRC, true),
            // At the limit: a refresh of what is bound passes, a new one
            // fails (moving 1003's binding here would add one).
            (
                "1001",
                "a",
                2,
                &["<sip:a@10.0.0.1>", "<sip:b@10.0.0.1>"],
                SRC,
                true,
            ),
            ("1003", "c", 2, &["<sip:g@10.0.0.1>"], SRC, false),
            // Unregistering frees a place.
            ("1002", "b", 2, &["<sip:c@10.0.0.1>;expires=0"], SRC, true),
            ("1003", "c", 3, &["<sip:g@10.0.0.1>"], SRC, true),
        ];
        for (i, &(aor, call_id, cseq, contacts, src, admitted)) in steps.iter().enumerate() {
            let result = r.on_register(t0(), aor, &reg(call_id, cseq, contacts, None), udp(src));
            assert_eq!(result.is_ok(), admitted, "step {i}: {result:?}");
            if let Err(e) = result {
                assert_eq!(
                    e,
                    RegisterError::TooManyFromSource {
                        max: 4,
                        address: "203.0.113.7".parse().unwrap()
                    }
                );
                assert_eq!(e.status(), 403);
                assert_eq!(e.reason(), "Too Many Registrations From This Address");
            }
            if i == 3 {
                assert!(r.bindings("1004", t0()).is_empty());
            }
        }
        assert_eq!(r.bindings("1003", t0()).len(), 2);
        // Expired bindings do not count.
        let later = t0() + secs(601);
        let req = reg("b", 3, &["<sip:h@10.0.0.1>"], None);
        r.on_register(later, "1002", &req, udp(SRC)).unwrap();
    }

    #[test]
    fn too_many_contacts_is_403_and_atomic() {
        let mut r = registrar();
        ok(
            &mut r,
            t0(),
            &reg("c1", 1, &["<sip:a@10.0.0.1>", "<sip:b@10.0.0.2>"], None),
        );
        let e = r
            .on_register(
                t0(),
                "1001",
                &reg("c2", 1, &["<sip:c@10.0.0.3>", "<sip:d@10.0.0.4>"], None),
                udp(SRC),
            )
            .unwrap_err();
        assert_eq!(e, RegisterError::TooManyContacts { max: 3 });
        assert_eq!(e.status(), 403);
        assert_eq!(r.bindings("1001", t0()).len(), 2);
        // Removing one while adding two in the same request fits.
        ok(
            &mut r,
            t0(),
            &reg(
                "c2",
                2,
                &[
                    "<sip:a@10.0.0.1>;expires=0",
                    "<sip:c@10.0.0.3>",
                    "<sip:d@10.0.0.4>",
                ],
                None,
            ),
        );
        assert_eq!(r.bindings("1001", t0()).len(), 3);
        // Refreshing at the cap is fine.
        ok(&mut r, t0(), &reg("c2", 3, &["<sip:c@10.0.0.3>"], None));
        // Expired bindings make room.
        ok(
            &mut r,
            t0() + secs(601),
            &reg("c3", 1, &["<sip:e@10.0.0.5>"], None),
        );
        assert_eq!(r.bindings("1001", t0() + secs(601)).len(), 1);
    }

    #[test]
    fn bad_requests() {
        let mut r = registrar();
        for (req, why) in [
            (
                reg("c1", 1, &["<sip:a@10.0.0.1>;expires=soon"], None),
                "expires",
            ),
            (reg("c1", 1, &["<sip:a@10.0.0.1>;q=2"], None), "q"),
            (reg("c1", 1, &["<sip:a@10.0.0.1>;reg-id=0"], None), "reg-id"),
            (reg("c1", 1, &["<mailto:a@example.com>"], None), "scheme"),
            (reg("c1", 1, &["<sip:a@10.0.0.1"], None), "syntax"),
            (reg("c1", 1, &["<sip:a@10.0.0.1>"], Some("soon")), "Expires"),
        ] {
            let e = r.on_register(t0(), "1001", &req, udp(SRC)).unwrap_err();
            assert_eq!(e.status(), 400, "{why}: {e}");
        }
        let mut req = reg("c1", 1, &["<sip:a@10.0.0.1>"], None);
        req.headers.remove("CSeq");
        assert_eq!(
            r.on_register(t0(), "1001", &req, udp(SRC))
                .unwrap_err()
                .status(),
            400
        );
        assert!(r.aors().next().is_none());
    }

    #[test]
    fn expire_and_next_expiry() {
        let mut r = registrar();
        ok(
            &mut r,
            t0(),
            &reg(
                "c1",
                1,
                &[
                    "<sip:a@10.0.0.1>;expires=60",
                    "<sip:b@10.0.0.2>;expires=120",
                ],
                None,
            ),
        );
        assert_eq!(r.next_expiry(), Some(t0() + secs(60)));
        assert!(r.expire(t0() + secs(59)).is_empty());
        // Exactly at the expiry time the binding is gone.
        assert_eq!(r.bindings("1001", t0() + secs(60)).len(), 1);
        let gone = r.expire(t0() + secs(60));
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (gone[0].contact_uri.as_str(), gone[0].reason),
            ("sip:a@10.0.0.1", RemoveReason::Expired)
        );
        assert_eq!(r.next_expiry(), Some(t0() + secs(120)));
        // A REGISTER sweeps its AOR first and reports it.
        let o = ok(&mut r, t0() + secs(500), &reg("q", 1, &[], None));
        assert!(matches!(
            &o.changes[..],
            [BindingChange::Removed(RemovedBinding {
                reason: RemoveReason::Expired,
                ..
            })]
        ));
        assert_eq!(r.next_expiry(), None);
    }

    #[test]
    fn reachability_and_order() {
        let mut r = registrar();
        ok(
            &mut r,
            t0(),
            &reg(
                "c1",
                1,
                &[
                    "<sip:a@10.0.0.1>;q=0.5",
                    "<sip:b@10.0.0.2>",
                    "<sip:c@10.0.0.3>;q=0.9",
                ],
                None,
            ),
        );
        let order = |r: &Registrar| {
            r.reachable_contacts("1001", t0())
                .iter()
                .map(|b| b.contact_uri.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(&r),
            ["sip:b@10.0.0.2", "sip:c@10.0.0.3", "sip:a@10.0.0.1"]
        );
        assert!(r.mark_unreachable("1001", "sip:b@10.0.0.2"));
        assert!(!r.mark_unreachable("1001", "sip:nobody@10.0.0.2"));
        assert_eq!(order(&r), ["sip:c@10.0.0.3", "sip:a@10.0.0.1"]);
        assert_eq!(r.bindings("1001", t0()).len(), 3);
        assert!(r.mark_reachable("1001", "sip:b@10.0.0.2"));
        assert_eq!(order(&r).len(), 3);
        // A refresh makes it reachable again.
        r.mark_unreachable("1001", "sip:a@10.0.0.1");
        ok(
            &mut r,
            t0(),
            &reg("c1", 2, &["<sip:a@10.0.0.1>;q=0.5"], None),
        );
        assert_eq!(order(&r).len(), 3);
        assert_eq!(r.live_bindings(t0()).count(), 3);
        assert!(r.reachable_contacts("1001", t0() + secs(600)).is_empty());
    }

    #[test]
    fn load_restores_and_caps() {
        let mut r = registrar();
        ok(
            &mut r,
            t0(),
            &reg(
                "c1",
                1,
                &[
                    "<sip:a@10.0.0.1>;expires=100",
                    "<sip:b@10.0.0.2>;expires=200",
                    "<sip:c@10.0.0.3>;expires=300",
                ],
                None,
            ),
        );
        let mut saved: Vec<Binding> = r.bindings("1001", t0()).into_iter().cloned().collect();
        let mut extra = saved[0].clone();
        extra.contact_uri = "sip:d@10.0.0.4".into();
        extra.raw_contact = "<sip:d@10.0.0.4>".into();
        extra.expires_at = t0() + secs(50);
        saved.push(extra);
        let mut fresh = registrar();
        let dropped = fresh.load(saved);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].contact_uri, "sip:d@10.0.0.4");
        assert_eq!(fresh.bindings("1001", t0()).len(), 3);
        // The CSeq rule holds across the restart.
        assert_eq!(
            fresh
                .on_register(
                    t0(),
                    "1001",
                    &reg("c1", 1, &["<sip:a@10.0.0.1>"], None),
                    udp(SRC)
                )
                .unwrap_err()
                .status(),
            500
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.055"), Some(55));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q(""), None);
        assert_eq!(
            contact_uri_text("\"A <b>\" <sip:a@b;transport=tcp>;expires=1"),
            "sip:a@b;transport=tcp"
        );
        assert_eq!(contact_uri_text("sip:a@b ;expires=1"), "sip:a@b");
        assert_eq!(
            contact_uri_text("<sip:a@b>;+sip.instance=\"<urn:x>\""),
            "sip:a@b"
        );
        assert_eq!(aor_of(&reg("c", 1, &[], None)).unwrap(), "1001");
        assert_eq!(
            RegistrarConfig {
                min_expires: 0,
                max_expires: 10,
                default_expires: 99999,
                max_contacts_per_aor: 0,
                max_bindings_per_source: 0,
            }
            .normalized(),
            RegistrarConfig {
                min_expires: 1,
                max_expires: 10,
                default_expires: 10,
                max_contacts_per_aor: 1,
                max_bindings_per_source: 1,
            }
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Register {
            contacts: Vec<(u8, Option<u32>)>,
            header: Option<u32>,
            call: u8,
            cseq: u32,
            star: bool,
        },
        Advance(u32),
        Expire,
        Unreachable(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let expires = prop_oneof![
            Just(None),
            Just(Some(0)),
            (1u32..100).prop_map(Some),
            (100u32..5000).prop_map(Some)
        ];
        prop_oneof![
            4 => (
                proptest::collection::vec((0u8..8, expires.clone()), 0..6),
                expires,
                0u8..3,
                0u32..20,
                proptest::bool::weighted(0.1),
            )
                .prop_map(|(contacts, header, call, cseq, star)| Op::Register { contacts, header, call, cseq, star }),
            2 => (0u32..2000).prop_map(Op::Advance),
            1 => Just(Op::Expire),
            1 => (0u8..8).prop_map(Op::Unreachable),
        ]
    }

    fn contact_text(i: u8, e: Option<u32>) -> String {
        // Contacts 6 and 7 share an instance: they replace each other.
        let mut s = match i {
            6 | 7 => format!("<sip:1001@10.0.0.{i}>;+sip.instance=\"<urn:uuid:x>\";reg-id=1"),
            _ => format!("<sip:1001@10.0.0.{i}:5060;transport=udp>"),
        };
        if let Some(e) = e {
            s.push_str(&format!(";expires={e}"));
        }
        s
    }

    proptest! {
        /// Random REGISTER sequences: no panic, never more bindings than the
        /// cap, nothing expired handed out, every 200 lists exactly the live
        /// bindings, and the change stream keeps a store in step.
        #[test]
        fn random_sequences(ops in proptest::collection::vec(op(), 1..60)) {
            let mut r = registrar();
            let mut now = t0();
            let mut store: HashMap<(String, String), Binding> = HashMap::new();
            for op in ops {
                match op {
                    Op::Register { contacts, header, call, cseq, star } => {
                        let texts: Vec<String> = if star {
                            vec!["*".into()]
                        } else {
                            contacts.iter().map(|(i, e)| contact_text(*i, *e)).collect()
                        };
                        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                        let h = header.map(|h| h.to_string());
                        let req = reg(&format!("call{call}"), cseq, &refs, h.as_deref());
                        match r.on_register(now, "1001", &req, udp(SRC)) {
                            Ok(o) => {
                                let live = r.bindings("1001", now);
                                prop_assert_eq!(o.headers.iter().filter(|(n, _)| n == "Contact").count(), live.len());
                                for (n, v) in &o.headers {
                                    if n == "Contact" {
                                        let e: u32 = v.rsplit("expires=").next().unwrap().parse().unwrap();
                                        prop_assert!((1..=3600).contains(&e), "{}", v);
                                    }
                                }
                                for c in o.changes {
                                    match c {
                                        BindingChange::Added(b) | BindingChange::Refreshed(b) => {
                                            store.insert((b.aor.clone(), b.contact_uri.clone()), b);
                                        }
                                        BindingChange::Removed(g) => {
                                            prop_assert!(store.remove(&(g.aor, g.contact_uri)).is_some());
                                        }
                                    }
                                }
                            }
                            Err(e) => prop_assert!([400, 423, 403, 500].contains(&e.status())),
                        }
                    }
                    Op::Advance(s) => now += secs(i64::from(s)),
                    Op::Expire => {
                        for g in r.expire(now) {
                            prop_assert!(store.remove(&(g.aor, g.contact_uri)).is_some());
                        }
                    }
                    Op::Unreachable(i) => {
                        let uri = contact_text(i, None);
                        r.mark_unreachable("1001", contact_uri_text(&uri));
                    }
                }
                let live = r.bindings("1001", now);
                prop_assert!(live.len() <= 3);
                prop_assert!(live.iter().all(|b| b.expires_at > now));
                prop_assert!(r.reachable_contacts("1001", now).iter().all(|b| b.expires_at > now && b.reachable));
                // The store holds exactly the bindings not yet swept.
                let all: Vec<&Binding> = r.aors.values().flatten().map(|e| &e.binding).collect();
                prop_assert_eq!(all.len(), store.len());
                for b in all {
                    let s = store.get(&(b.aor.clone(), b.contact_uri.clone()));
                    prop_assert!(s.is_some());
                    let s = s.unwrap();
                    prop_assert_eq!(s.expires_at, b.expires_at);
                    prop_assert_eq!(&s.raw_contact, &b.raw_contact);
                }
            }
        }
    }
}
