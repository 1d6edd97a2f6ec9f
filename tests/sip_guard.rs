//! The SIP source guard end to end: a flood from one socket is answered up
//! to its burst, then dropped and banned, while other sources (a softphone
//! registering, a probe) go on; repeated wrong passwords ban the address;
//! `GET /api/bans` lists both. The softphone limits: calls per user and
//! per address, registrations per address (refused with 403, no ban).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::agent::AgentPhone;
use support::http::HttpClient;
use support::{ServerOptions, TestServer, Transport};
use tokio::net::UdpSocket;

fn options() -> ServerOptions {
    ServerOptions {
        // 127.0.0.1 is not a trunk here: it is guarded.
        trunks: vec!["192.0.2.1/32".into()],
        extra_toml:
            "[sip.guard]\nrate_per_sec = 20\nburst = 40\nmax_failures = 3\nban_secs = 300\n".into(),
        ..Default::default()
    }
}

fn options_request(server: SocketAddr, local: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:12345@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKflood{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:scan@{local}>;tag={n}\r\nTo: <sip:12345@{server}>\r\n\
         Call-ID: flood-{n}-{local}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Responses `sock` gets within `within`.
async fn responses(sock: &UdpSocket, within: Duration) -> usize {
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while let Ok(Ok(_)) = tokio::time::timeout(within, sock.recv_from(&mut buf)).await {
        n += 1;
    }
    n
}

async fn probe(server: SocketAddr) -> usize {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let req = options_request(server, sock.local_addr().unwrap(), 0);
    sock.send_to(req.as_bytes(), server).await.unwrap();
    responses(&sock, Duration::from_millis(500)).await
}

async fn bans(ts: &TestServer) -> Vec<serde_json::Value> {
    let r = HttpClient::new(ts.server.http).get("/api/bans").await;
    assert_eq!(r.status, 200);
    r.json()["bans"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_flood_is_cut_to_its_burst_and_banned_while_others_go_on() {
    let ts = TestServer::start_with(options()).await;
    let server = ts.sip_udp();
    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = flood.local_addr().unwrap();
    for n in 0..1000 {
        flood
            .send_to(options_request(server, local, n).as_bytes(), server)
            .await
            .unwrap();
    }
    let answered = responses(&flood, Duration::from_secs(1)).await;
    assert!(
        (40..=60).contains(&answered),
        "{answered} of 1000 answered: the burst of 40 and what 20/s refills"
    );
    let list = bans(&ts).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["ip"], "127.0.0.1");
    assert_eq!(list[0]["port"], local.port());
    assert_eq!(list[0]["reason"], "flood");
    assert!(list[0]["dropped"].as_u64().unwrap() >= 800, "{list:?}");
    assert!(list[0]["remaining_secs"].as_u64().unwrap() > 290);
    // The banned socket hears nothing more.
    flood
        .send_to(options_request(server, local, 5000).as_bytes(), server)
        .await
        .unwrap();
    assert_eq!(responses(&flood, Duration::from_millis(500)).await, 0);
    // Everyone else goes on: a probe from another port, a softphone.
    assert_eq!(probe(server).await, 1);
    let mut phone = AgentPhone::new(server, Transport::Udp, "1001").await;
    assert_eq!(phone.register().await, 200);
    ts.shutdown().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_ban_the_address() {
    let ts = TestServer::start_with(options()).await;
    let server = ts.sip_udp();
    for attempt in 1..=3 {
        let mut guesser = AgentPhone::new(server, Transport::Udp, "1001")
            .await
            .with_password("guess-123");
        let status = guesser.register().await;
        assert!(
            status == 401 || status == 403,
            "attempt {attempt}: {status}"
        );
    }
    // The address is banned on every port.
    assert_eq!(probe(server).await, 0, "banned: no answer");
    let list = bans(&ts).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["port"], serde_json::Value::Null);
    assert_eq!(list[0]["reason"], "failures");
    assert!(list[0]["dropped"].as_u64().unwrap() >= 1);
    ts.shutdown().await;
}

#[tokio::test]
async fn softphone_calls_are_limited_per_user_and_per_address_and_come_back() {
    let ts = TestServer::start_with(ServerOptions {
        sip_toml: "max_calls_per_user = 2\nmax_calls_per_source = 3\n".into(),
        ..options()
    })
    .await;
    let server = ts.sip_udp();
    let mut a = AgentPhone::new(server, Transport::Udp, "1001").await;
    let mut b = AgentPhone::new(server, Transport::Udp, "1002").await;
    let first = a.invite("12345").await.expect("a final response");
    assert_eq!(first.status, 200);
    let second = a.invite("12345").await.expect("a final response");
    assert_eq!(second.status, 200);
    let r = a.invite("12345").await.expect("a final response");
    assert_eq!(
        (r.status, r.reason.as_str()),
        (403, "Too Many Calls From This User")
    );
    let third = b.invite("12345").await.expect("a final response");
    assert_eq!(third.status, 200, "1002 has its own count");
    let r = b.invite("12345").await.expect("a final response");
    assert_eq!(
        (r.status, r.reason.as_str()),
        (403, "Too Many Calls From This Address")
    );
    // A call that ends gives its place back.
    assert_eq!(a.bye_placed(&first).await, Some(200));
    let mut again = None;
    for _ in 0..20 {
        let r = b.invite("12345").await.expect("a final response");
        if r.status == 200 {
            again = Some(r);
            break;
        }
        // The call task may not have ended yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a place came back after the BYE");
    // Refusals are policy: the address is not banned for them.
    assert!(bans(&ts).await.is_empty());
    ts.shutdown().await;
}

#[tokio::test]
async fn registrations_from_one_address_are_limited_across_users() {
    let ts = TestServer::start_with(ServerOptions {
        registrar_toml: "max_bindings_per_source = 1\n".into(),
        ..options()
    })
    .await;
    let server = ts.sip_udp();
    let mut a = AgentPhone::new(server, Transport::Udp, "1001").await;
    let mut b = AgentPhone::new(server, Transport::Udp, "1002").await;
    assert_eq!(a.register().await, 200);
    assert_eq!(a.register().await, 200, "a refresh passes at the limit");
    assert_eq!(b.register().await, 403, "a second binding from 127.0.0.1");
    assert_eq!(a.unregister().await, 200);
    assert_eq!(b.register().await, 200, "the place came back");
    assert!(bans(&ts).await.is_empty());
    ts.shutdown().await;
}
