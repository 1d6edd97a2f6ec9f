//! Registrar tests: digest authentication and bindings together on REGISTER
//! sequences as softphones send them (baresip, Linphone), and the bindings'
//! persistence, which must survive a restart.
//!
//! Store tests run against SQLite (a file in a temporary directory, always)
//! and PostgreSQL (only when `HOTLINE_TEST_POSTGRES` holds a URL such as
//! `postgres://postgres@127.0.0.1:5432/test`; otherwise the PostgreSQL variant
//! says it was skipped), each PostgreSQL test in a fresh schema dropped at
//! the end — `tests/support/test_db.rs`, as for `tests/store.rs`.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hotline::sip::digest::{digest_response, ha1, Algorithm, AuthError, DigestRealm};
use hotline::sip::message::{Request, Response, SipMessage};
use hotline::sip::parse::parse_message;
use hotline::sip::registrar::{aor_of, Binding, RegisterError, Registrar, RegistrarConfig};
use hotline::sip::transport::{Peer, TransportKind};
use hotline::store::{Backend, Store};

#[macro_use]
#[path = "support/test_db.rs"]
mod test_db;
use test_db::{run, TestDb};

both_backends!(
    bindings_round_trip_every_field,
    save_updates_remove_and_remove_aor,
    baresip_registers_and_survives_restart,
);

// ------------------------------------------------------- a registrar shell --

const REALM: &str = "hotline";
const DOMAIN: &str = "127.0.0.1";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 9, 8, 0, 0).unwrap()
}

/// What the endpoint will do with a REGISTER, in miniature: authenticate,
/// check the user may act for the AOR, apply, persist, answer.
struct Shell {
    realm: DigestRealm,
    registrar: Registrar,
    store: Option<Store>,
    /// Stored HA1 per (user, base algorithm): never a password.
    credentials: HashMap<(String, Algorithm), String>,
    algorithms: Vec<Algorithm>,
}

impl Shell {
    fn new(store: Option<Store>, algorithms: &[Algorithm]) -> Shell {
        let mut credentials = HashMap::new();
        for n in 1001..=1004 {
            let user = n.to_string();
            let password = format!("demo{n}");
            for alg in [Algorithm::Md5, Algorithm::Sha256] {
                credentials.insert((user.clone(), alg), ha1(alg, &user, REALM, &password));
            }
        }
        Shell {
            realm: DigestRealm::new(REALM, b"test secret, kept across restarts".to_vec()),
            registrar: Registrar::new(RegistrarConfig::default()),
            store,
            credentials,
            algorithms: algorithms.to_vec(),
        }
    }

    async fn handle(&mut self, now: DateTime<Utc>, req: &Request, source: Peer) -> Response {
        let secs = u64::try_from(now.timestamp()).unwrap();
        let creds = &self.credentials;
        let auth = self.realm.verify_request(
            req,
            &self.algorithms,
            |user, realm, alg| {
                (realm == REALM)
                    .then(|| creds.get(&(user.to_string(), alg)).cloned())
                    .flatten()
            },
            secs,
        );
        let ok = match auth {
            Ok(ok) => ok,
            Err(e) if e.status() == 401 => {
                let mut resp = hotline::sip::message::response_to(req, 401, "Unauthorized");
                for v in self.realm.challenge(secs, e.stale(), &self.algorithms) {
                    resp.headers.push("WWW-Authenticate", v);
                }
                return resp;
            }
            Err(e) => return hotline::sip::message::response_to(req, e.status(), "Bad Request"),
        };
        let aor = match aor_of(req) {
            Ok(a) => a,
            Err(e) => return e.response(req),
        };
        // RFC 3261 §10.3 step 4: only the agent registers its own seat.
        if ok.user != aor {
            return hotline::sip::message::response_to(req, 403, "Forbidden");
        }
        match self.registrar.on_register(now, &aor, req, source) {
            Ok(outcome) => {
                if let Some(store) = &self.store {
                    store.apply_binding_changes(&outcome.changes).await.unwrap();
                }
                outcome.response(req)
            }
            Err(e) => e.response(req),
        }
    }
}

/// The REGISTER the Debian baresip 1.0.0 (libre 1.1.0) sends, as captured
/// (header order, Contact user, no `Supported`), from behind a NAT.
fn baresip_register(cseq: u32, expires: u32, authorization: Option<&str>) -> Request {
    let mut text = format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.23:5098;branch=z9hG4bK{cseq:x}e1db029ec4d3b;rport\r\n\
         Contact: <sip:1001-0x5615c0147510@192.168.1.23:5098>;expires={expires}\r\n\
         Max-Forwards: 70\r\n"
    );
    if let Some(a) = authorization {
        text.push_str(&format!("Authorization: {a}\r\n"));
    }
    text.push_str(&format!(
        "To: <sip:1001@{DOMAIN}>\r\n\
         From: <sip:1001@{DOMAIN}>;tag=cfa055fcc92c573a\r\n\
         Call-ID: 7f9a2589de93356d\r\n\
         CSeq: {cseq} REGISTER\r\n\
         User-Agent: baresip v1.0.0 (x86_64/linux)\r\n\
         Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,REFER\r\n\
         Content-Length: 0\r\n\r\n"
    ));
    match parse_message(text.as_bytes()).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

/// The response through the wire format and back, as the phone reads it.
fn on_the_wire(resp: &Response) -> Response {
    match parse_message(&resp.to_bytes()).unwrap() {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => unreachable!(),
    }
}

/// The auth-params of a challenge.
fn params(challenge: &str) -> HashMap<String, String> {
    let rest = challenge.strip_prefix("Digest ").unwrap();
    let mut out = HashMap::new();
    for part in rest.split(", ") {
        let (n, v) = part.split_once('=').unwrap();
        out.insert(n.to_string(), v.trim_matches('"').to_string());
    }
    out
}

/// What libre 1.1 (`sip/auth.c`) answers: MD5 only — a challenge with any
/// other algorithm makes it give up the whole registration ("Register:
/// Function not implemented", seen with the Debian package), hence `None` —
/// with its own cnonce, `qop=auth`, nc counting from 1, and no `algorithm`.
fn baresip_answer(resp: &Response, password: &str, nc: u32) -> Option<String> {
    let challenges: Vec<HashMap<String, String>> = resp
        .headers
        .get_all("WWW-Authenticate")
        .map(params)
        .collect();
    if challenges
        .iter()
        .any(|c| c.get("algorithm").is_some_and(|a| a != "MD5"))
    {
        return None;
    }
    let chosen = challenges.first()?;
    Some(libre_digest(
        &chosen["realm"],
        &chosen["nonce"],
        &chosen["opaque"],
        password,
        nc,
    ))
}

/// libre's Authorization value (parameter order as captured).
fn libre_digest(realm: &str, nonce: &str, opaque: &str, password: &str, nc: u32) -> String {
    let uri = format!("sip:{DOMAIN}");
    let nc = format!("{nc:08x}");
    let cnonce = "5ba1f6bc7e2d9dd3";
    let response = digest_response(
        Algorithm::Md5,
        &ha1(Algorithm::Md5, "1001", realm, password),
        nonce,
        Some(&nc),
        Some(cnonce),
        Some("auth"),
        "REGISTER",
        &uri,
    )
    .unwrap();
    format!(
        "Digest username=\"1001\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", opaque=\"{opaque}\", cnonce=\"{cnonce}\", qop=auth, nc={nc}"
    )
}

fn phone_source() -> Peer {
    // The NAT's public side: not what Via or Contact say.
    Peer {
        kind: TransportKind::Udp,
        addr: "198.51.100.20:61002".parse().unwrap(),
    }
}

// ------------------------------------------------------------------ tests --

fn binding(aor: &str, n: u8) -> Binding {
    Binding {
        aor: aor.to_string(),
        contact_uri: format!("sip:{aor}@192.168.1.{n}:5060;transport=udp"),
        raw_contact: format!(
            "\"坐席 {aor}\" <sip:{aor}@192.168.1.{n}:5060;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-0000000000{n:02}>\";reg-id=1;q=0.7"
        ),
        source: Peer {
            kind: if n.is_multiple_of(2) {
                TransportKind::Tcp
            } else {
                TransportKind::Udp
            },
            addr: format!("[2001:db8::{n}]:4{n:04}").parse().unwrap(),
        },
        expires_at: t0() + TimeDelta::milliseconds(3_600_123),
        call_id: format!("call-{n}@192.168.1.{n}"),
        cseq: u32::MAX - u32::from(n),
        q: Some(700),
        instance: Some(format!(
            "<urn:uuid:00000000-0000-4000-8000-0000000000{n:02}>"
        )),
        reg_id: Some(1),
        reachable: true,
    }
}

async fn bindings_round_trip_every_field(db: TestDb) {
    let store = db.open().await;
    assert!(store.load_bindings().await.unwrap().is_empty());
    let a = binding("1001", 1);
    let mut b = binding("1001", 2);
    b.q = None;
    b.instance = None;
    b.reg_id = None;
    store.save_binding(&a).await.unwrap();
    store.save_binding(&b).await.unwrap();
    let loaded = store.load_bindings().await.unwrap();
    assert_eq!(loaded, vec![a.clone(), b.clone()]);
    // Unique (aor, contact_uri) in the schema itself.
    let dup = format!(
        "INSERT INTO registrations (aor, contact_uri, raw_contact, source_addr, transport, \
         expires_at, call_id, cseq) VALUES ('1001', '{}', 'x', '1.2.3.4:5', 'udp', {}, 'c', 1)",
        a.contact_uri,
        match db.backend {
            Backend::Sqlite => "'2026-11-09T08:00:00.000000Z'",
            Backend::Postgres => "now()",
        }
    );
    assert!(db.try_exec(&dup).await.is_err());
    store.close().await;
}

async fn save_updates_remove_and_remove_aor(db: TestDb) {
    let store = db.open().await;
    let mut a = binding("1001", 1);
    store.save_binding(&a).await.unwrap();
    // A refresh from a new NAT mapping updates the row in place.
    a.source.addr = "198.51.100.9:1234".parse().unwrap();
    a.cseq = 7;
    a.expires_at = t0() + TimeDelta::seconds(60);
    store.save_binding(&a).await.unwrap();
    store.save_binding(&binding("1001", 2)).await.unwrap();
    store.save_binding(&binding("1002", 3)).await.unwrap();
    let loaded = store.load_bindings().await.unwrap();
    assert_eq!(loaded.len(), 3);
    assert_eq!(loaded[0], a);
    store.remove_binding("1001", &a.contact_uri).await.unwrap();
    store
        .remove_binding("1001", "sip:nobody@nowhere")
        .await
        .unwrap();
    assert_eq!(store.load_bindings().await.unwrap().len(), 2);
    assert_eq!(store.remove_aor_bindings("1001").await.unwrap(), 1);
    assert_eq!(store.remove_aor_bindings("1001").await.unwrap(), 0);
    let left = store.load_bindings().await.unwrap();
    assert_eq!(left, vec![binding("1002", 3)]);
    // A row this build cannot read is skipped, not fatal.
    db.exec(&format!(
        "UPDATE registrations SET transport = 'sctp' WHERE aor = '1002'; \
         INSERT INTO registrations (aor, contact_uri, raw_contact, source_addr, transport, \
         expires_at, call_id, cseq) VALUES ('1003', 'sip:x@y', '<sip:x@y>', '1.2.3.4:5', 'udp', \
         {}, 'c', 1)",
        match db.backend {
            Backend::Sqlite => "'2026-11-09T08:00:00.000000Z'",
            Backend::Postgres => "'2026-11-09T08:00:00Z'",
        }
    ))
    .await;
    let left = store.load_bindings().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].aor, "1003");
    assert_eq!(left[0].expires_at, t0());
    store.close().await;
}

/// baresip: REGISTER → 401 → REGISTER with Authorization → 200 listing its
/// contact, persisted; the daemon restarts; the refresh on a stale nonce,
/// a late out-of-order REGISTER and the unregister work against the
/// restored bindings.
async fn baresip_registers_and_survives_restart(db: TestDb) {
    let store = db.open().await;
    // libre 1.1 gives up on any SHA-256 challenge: the daemon has to offer
    // MD5 alone to these phones.
    let md5 = [Algorithm::Md5];
    let mut shell = Shell::new(Some(store.clone()), &md5);
    let now = t0();

    let first = baresip_register(33898, 600, None);
    let resp = on_the_wire(&shell.handle(now, &first, phone_source()).await);
    assert_eq!(resp.status, 401);
    let challenges: Vec<&str> = resp.headers.get_all("WWW-Authenticate").collect();
    assert_eq!(challenges.len(), 1);
    assert!(challenges[0].contains("algorithm=MD5"));

    let auth = baresip_answer(&resp, "demo1001", 1).unwrap();
    let second = baresip_register(33899, 600, Some(&auth));
    let resp = on_the_wire(&shell.handle(now, &second, phone_source()).await);
    assert_eq!(resp.status, 200, "{resp:?}");
    let contacts: Vec<&str> = resp.headers.get_all("Contact").collect();
    assert_eq!(
        contacts,
        ["<sip:1001-0x5615c0147510@192.168.1.23:5098>;expires=600"]
    );
    assert!(resp.headers.get("Date").is_some());
    let rung = shell.registrar.reachable_contacts("1001", now);
    assert_eq!(rung.len(), 1);
    assert_eq!(rung[0].source, phone_source());

    // Offered SHA-256 as well, this phone could not register at all.
    let mut both = Shell::new(None, &[Algorithm::Sha256, Algorithm::Md5]);
    let resp = both.handle(now, &first, phone_source()).await;
    assert_eq!(baresip_answer(&resp, "demo1001", 1), None);

    // Restart: a new registrar restored from a reopened store.
    store.close().await;
    let store = db.open().await;
    let mut shell = Shell::new(Some(store.clone()), &md5);
    assert!(shell
        .registrar
        .load(store.load_bindings().await.unwrap())
        .is_empty());
    let later = now + TimeDelta::seconds(400);
    assert!(shell.registrar.expire(later).is_empty());
    let b = shell.registrar.bindings("1001", later);
    assert_eq!(b.len(), 1);
    assert_eq!(
        b[0].raw_contact,
        "<sip:1001-0x5615c0147510@192.168.1.23:5098>;expires=600"
    );
    assert_eq!(b[0].source, phone_source());
    assert_eq!(b[0].remaining_secs(later), 200);

    // The phone refreshes with its old nonce, now stale (the nonce secret
    // is kept across the restart): it is told so, and answers the new
    // challenge without asking its user.
    let refresh = baresip_register(33900, 600, Some(&again(&auth, 2)));
    let resp = shell.handle(later, &refresh, phone_source()).await;
    assert_eq!(resp.status, 401);
    assert!(resp
        .headers
        .get_all("WWW-Authenticate")
        .all(|c| c.ends_with("stale=true")));
    let auth = baresip_answer(&resp, "demo1001", 1).unwrap();
    let refresh = baresip_register(33901, 600, Some(&auth));
    let resp = shell.handle(later, &refresh, phone_source()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers.get("Contact"),
        Some("<sip:1001-0x5615c0147510@192.168.1.23:5098>;expires=600")
    );
    let stored = store.load_bindings().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].cseq, 33901);

    // An older REGISTER of the same Call-ID arriving late changes nothing.
    let late = baresip_register(33900, 0, Some(&again(&auth, 2)));
    let resp = shell.handle(later, &late, phone_source()).await;
    assert_eq!(resp.status, 500);
    assert_eq!(shell.registrar.bindings("1001", later).len(), 1);

    // Unregister.
    let bye = baresip_register(33902, 0, Some(&again(&auth, 3)));
    let resp = shell.handle(later, &bye, phone_source()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers.get("Contact"), None);
    assert!(store.load_bindings().await.unwrap().is_empty());
    store.close().await;
}

/// The same credentials under the nonce of `previous` with another nc (a
/// phone reusing its nonce for the next request, as RFC 7616 §3.4 allows).
fn again(previous: &str, nc: u32) -> String {
    let get = |name: &str| {
        previous
            .split(", ")
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap()
            .trim_matches('"')
            .to_string()
    };
    libre_digest(REALM, &get("nonce"), &get("opaque"), "demo1001", nc)
}

/// Linphone registers with an instance id over TCP, another user's password
/// gets 401 again, another user's credentials for this AOR get 403, and its
/// second device beside it is a second binding.
#[tokio::test]
async fn linphone_and_wrong_credentials() {
    let mut shell = Shell::new(None, &[Algorithm::Sha256, Algorithm::Md5]);
    let now = t0();
    let source = Peer {
        kind: TransportKind::Tcp,
        addr: "10.8.0.14:52113".parse().unwrap(),
    };
    let register = |cseq: u32, user: &str, auth: Option<String>, contact: &str| {
        let mut text = format!(
            "REGISTER sip:{DOMAIN};transport=tcp SIP/2.0\r\n\
             Via: SIP/2.0/TCP 10.8.0.14:52113;alias;branch=z9hG4bK.{cseq}Xy;rport\r\n\
             From: <sip:{user}@{DOMAIN}>;tag=Qy~7v\r\n\
             To: sip:1002@{DOMAIN}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Call-ID: Zl4yIpdjKu\r\n\
             Max-Forwards: 70\r\n\
             Supported: replaces, outbound, gruu, path\r\n\
             Accept: application/sdp\r\n\
             Accept: text/plain\r\n\
             Accept: application/vnd.gsma.rcs-ft-http+xml\r\n\
             Contact: {contact}\r\n\
             Expires: 600\r\n\
             User-Agent: Linphone-Desktop/5.2.6 (belle-sip/5.2.98)\r\n"
        );
        if let Some(a) = auth {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        match parse_message(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    };
    let contact = "<sip:1002@10.8.0.14:52113;transport=tcp>;+sip.instance=\"<urn:uuid:5b6f7e1c-2d3a-4b9c-8e1f-0a2b3c4d5e6f>\";+org.linphone.specs=\"lime\";reg-id=1";
    let answer = |resp: &Response, user: &str, password: &str, nc: u32| {
        let c = resp
            .headers
            .get_all("WWW-Authenticate")
            .map(params)
            .next()
            .unwrap();
        assert_eq!(c["algorithm"], "SHA-256");
        let uri = format!("sip:{DOMAIN};transport=tcp");
        let nc = format!("{nc:08x}");
        let r = digest_response(
            Algorithm::Sha256,
            &ha1(Algorithm::Sha256, user, REALM, password),
            &c["nonce"],
            Some(&nc),
            Some("Zj3kfTr7"),
            Some("auth"),
            "REGISTER",
            &uri,
        )
        .unwrap();
        format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=SHA-256, opaque=\"{}\", username=\"{user}\", uri=\"{uri}\", response=\"{r}\", cnonce=\"Zj3kfTr7\", nc={nc}, qop=auth",
            c["nonce"], c["opaque"]
        )
    };

    let resp = shell
        .handle(now, &register(20, "1002", None, contact), source)
        .await;
    assert_eq!(resp.status, 401);
    let wrong = answer(&resp, "1002", "demo1003", 1);
    let resp = shell
        .handle(now, &register(21, "1002", Some(wrong), contact), source)
        .await;
    assert_eq!(resp.status, 401);
    // Agent 1003 with its own right password cannot register seat 1002.
    let other = answer(&resp, "1003", "demo1003", 1);
    let resp = shell
        .handle(now, &register(22, "1003", Some(other), contact), source)
        .await;
    assert_eq!(resp.status, 403);
    let challenge = shell
        .handle(now, &register(23, "1002", None, contact), source)
        .await;
    let good = answer(&challenge, "1002", "demo1002", 1);
    let resp = shell
        .handle(now, &register(24, "1002", Some(good), contact), source)
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers.get("Contact"),
        Some("<sip:1002@10.8.0.14:52113;transport=tcp>;+sip.instance=\"<urn:uuid:5b6f7e1c-2d3a-4b9c-8e1f-0a2b3c4d5e6f>\";+org.linphone.specs=\"lime\";reg-id=1;expires=600")
    );
    let b = &shell.registrar.bindings("1002", now)[0];
    assert_eq!(b.source, source);
    assert_eq!(b.raw_contact, contact);

    // A REGISTER asking for 30 s gets 423 with Min-Expires, once authenticated.
    let challenge = shell
        .handle(now, &register(25, "1002", None, contact), source)
        .await;
    let good = answer(&challenge, "1002", "demo1002", 1);
    let mut brief = register(26, "1002", Some(good), contact);
    brief.headers.set("Expires", "30");
    let resp = shell.handle(now, &brief, source).await;
    assert_eq!(resp.status, 423);
    assert_eq!(resp.headers.get("Min-Expires"), Some("60"));
}

/// The registrar's error type maps to the statuses the endpoint sends.
#[test]
fn error_statuses() {
    assert_eq!(RegisterError::BadRequest("x".into()).status(), 400);
    assert_eq!(
        RegisterError::IntervalTooBrief {
            requested: 1,
            min_expires: 60
        }
        .status(),
        423
    );
    assert_eq!(RegisterError::TooManyContacts { max: 1 }.status(), 403);
    assert_eq!(AuthError::Malformed("x").status(), 400);
    assert!(AuthError::StaleNonce.stale());
    assert!(!AuthError::InvalidNonce.stale());
}
