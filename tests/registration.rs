//! Agents' softphones registering with the daemon over real UDP: digest
//! challenge and answer (MD5 and SHA-256, computed here independently of the
//! daemon's code), refusals, and bindings that survive a restart.

mod support;

use hotline::sip::message::{Response, SipMessage};
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::time::Duration;
use support::{ServerOptions, TestServer};
use tokio::net::UdpSocket;

fn h(alg: &str, s: &str) -> String {
    match alg {
        "SHA-256" => hex::encode(Sha256::digest(s.as_bytes())),
        _ => hex::encode(Md5::digest(s.as_bytes())),
    }
}

fn param(challenge: &str, name: &str) -> String {
    let start = challenge.find(&format!("{name}=")).unwrap() + name.len() + 1;
    let rest = &challenge[start..];
    if let Some(q) = rest.strip_prefix('"') {
        q[..q.find('"').unwrap()].to_string()
    } else {
        rest.split([',', ' ']).next().unwrap().to_string()
    }
}

struct Softphone {
    sock: UdpSocket,
    server: std::net::SocketAddr,
    cseq: u32,
    call_id: String,
}

impl Softphone {
    async fn new(server: std::net::SocketAddr) -> Softphone {
        Softphone {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            cseq: 0,
            call_id: format!("reg-{:x}@test", rand::random::<u64>()),
        }
    }

    async fn register(&mut self, user: &str, contact: bool, auth: Option<String>) -> Response {
        self.cseq += 1;
        let local = self.sock.local_addr().unwrap();
        let srv = self.server;
        let contact = if contact {
            format!("Contact: <sip:{user}@{local};transport=udp>;+sip.instance=\"<urn:uuid:0001>\"\r\nExpires: 600\r\n")
        } else {
            String::new()
        };
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "REGISTER sip:{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{:x};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{srv}>;tag=a{}\r\nTo: <sip:{user}@{srv}>\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n{contact}{auth}Content-Length: 0\r\n\r\n",
            rand::random::<u64>(),
            self.cseq,
            self.call_id,
            self.cseq
        );
        self.sock.send_to(msg.as_bytes(), srv).await.unwrap();
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) =
                tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
                    .await
                    .expect("a response")
                    .unwrap();
            if let Ok(SipMessage::Response(r)) = hotline::sip::parse::parse_message(&buf[..n]) {
                if r.status >= 200 {
                    return r;
                }
            }
        }
    }

    /// REGISTER, answer the challenge for `alg` with `password`.
    async fn register_with(
        &mut self,
        user: &str,
        password: &str,
        alg: &str,
        contact: bool,
    ) -> Response {
        let challenge = self.register(user, contact, None).await;
        assert_eq!(challenge.status, 401);
        let www = challenge
            .headers
            .get_all("WWW-Authenticate")
            .find(|c| c.contains(&format!("algorithm={alg}")))
            .unwrap_or_else(|| panic!("a {alg} challenge"))
            .to_string();
        let realm = param(&www, "realm");
        let nonce = param(&www, "nonce");
        let opaque = param(&www, "opaque");
        let uri = format!("sip:{}", self.server);
        let ha1 = h(alg, &format!("{user}:{realm}:{password}"));
        let ha2 = h(alg, &format!("REGISTER:{uri}"));
        let cnonce = "0a4f113b";
        let response = h(alg, &format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
        let auth = format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={alg}, cnonce=\"{cnonce}\", opaque=\"{opaque}\", qop=auth, nc=00000001"
        );
        self.register(user, contact, Some(auth)).await
    }
}

#[tokio::test]
async fn softphones_register_with_digest_and_bindings_survive_a_restart() {
    // A database that outlives the first daemon's folder.
    let keep = tempfile::tempdir().unwrap();
    let db = std::env::var("HOTLINE_TEST_DATABASE")
        .unwrap_or_else(|_| format!("sqlite:{}", keep.path().join("hotline.db").display()));
    let first = TestServer::start_with(ServerOptions {
        database: Some(db.clone()),
        ..Default::default()
    })
    .await;
    let mut phone = Softphone::new(first.sip_udp()).await;

    // No credentials: a challenge per configured algorithm, SHA-256 first.
    let r = phone.register("1001", true, None).await;
    assert_eq!(r.status, 401);
    let challenges: Vec<&str> = r.headers.get_all("WWW-Authenticate").collect();
    assert!(
        challenges[0].contains("algorithm=SHA-256") && challenges[1].contains("algorithm=MD5"),
        "{challenges:?}"
    );

    // SHA-256 (RFC 8760): bound, the 200 lists the contact.
    let ok = phone
        .register_with("1001", "demo1001", "SHA-256", true)
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let contact = ok.headers.get("Contact").unwrap();
    assert!(
        contact.contains(";transport=udp") && contact.contains("expires="),
        "{contact}"
    );

    // Wrong password, someone else's extension, an unknown extension.
    assert_eq!(
        phone
            .register_with("1001", "wrong", "MD5", true)
            .await
            .status,
        401
    );
    let mut other = Softphone::new(first.sip_udp()).await;
    let r = other.register_with("1002", "demo1002", "MD5", true).await;
    assert_eq!(r.status, 200, "MD5 works too");
    assert_eq!(
        other
            .register_with("1003", "demo1003", "MD5", true)
            .await
            .status,
        401,
        "no such user"
    );

    // Restart on the same database: the binding is still there.
    first.shutdown().await;
    let second = TestServer::start_with(ServerOptions {
        database: Some(db),
        ..Default::default()
    })
    .await;
    let mut again = Softphone::new(second.sip_udp()).await;
    let r = again.register_with("1001", "demo1001", "MD5", false).await;
    assert_eq!(r.status, 200);
    let contacts: Vec<&str> = r.headers.get_all("Contact").collect();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert!(
        contacts[0].contains("+sip.instance"),
        "raw contact kept: {contacts:?}"
    );

    second.shutdown().await;
}
