//! The 49 RFC 4475 torture messages sent to a running daemon over UDP and
//! TCP: valid requests are handled (a response, never 400), invalid ones are
//! rejected as the RFC says (or dropped where no response can be
//! addressed), responses are never answered, and the daemon still takes a
//! normal call afterwards.

mod support;

use hotline::sip::message::SipMessage;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{ServerOptions, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/rfc4475");

/// Where a stream must differ from a datagram (RFC 3261 §18.3): a body
/// shorter than Content-Length is "more to come" on TCP, and a message that
/// cannot be framed (no or several Content-Length) ends the connection with
/// a 400.
fn expected_tcp(name: &str) -> Option<Option<u16>> {
    match name {
        "clerr" | "baddn" => Some(None),
        "inv2543" => Some(Some(400)),
        _ => None,
    }
}

/// What the daemon must answer to each message: `None` = nothing.
fn expected() -> BTreeMap<&'static str, Option<u16>> {
    [
        // §3.1.1 valid: handled. INVITEs to numbers without a flow get 404;
        // requests carrying a To tag for a dialog we do not know get 481;
        // unknown methods 501; REGISTER without credentials a 401 challenge.
        ("wsinv", Some(481)),
        ("intmeth", Some(501)),
        ("esc01", Some(404)),
        ("escnull", Some(401)),
        ("esc02", Some(501)),
        ("lwsdisp", Some(200)),
        ("longreq", Some(404)),
        ("dblreq", Some(401)),
        ("semiuri", Some(200)),
        ("transports", Some(200)),
        ("mpart01", Some(405)),
        ("unreason", None),
        ("noreason", None),
        // §3.1.2 invalid: 400 (505 for a foreign version), or dropped.
        ("badinv01", Some(400)),
        ("clerr", Some(400)),
        ("ncl", Some(400)),
        ("scalar02", Some(400)),
        ("scalarlg", None),
        ("quotbal", Some(400)),
        ("ltgtruri", Some(400)),
        ("lwsruri", Some(400)),
        ("lwsstart", Some(400)),
        ("trws", Some(400)),
        ("escruri", Some(400)),
        ("baddate", Some(404)),
        ("regbadct", Some(400)),
        ("badaspec", Some(400)),
        ("baddn", Some(400)),
        ("badvers", Some(505)),
        ("mismatch01", Some(400)),
        ("mismatch02", Some(400)),
        ("bigcode", None),
        // §3.2 transaction layer.
        ("badbranch", Some(200)),
        // §3.3 application layer.
        ("insuf", Some(400)),
        ("unkscm", Some(416)),
        ("novelsc", Some(416)),
        ("unksm2", Some(400)),
        ("bext01", Some(420)),
        ("invut", Some(415)),
        ("regaut01", Some(401)),
        ("multi01", Some(400)),
        ("mcl01", Some(400)),
        ("bcast", None),
        // RFC 4475 §3.3.8: an endpoint processes Max-Forwards 0 as if positive.
        ("zeromf", Some(200)),
        ("cparam01", Some(401)),
        ("cparam02", Some(401)),
        ("regescrt", Some(401)),
        ("sdp01", Some(406)),
        // §3.4 RFC 2543 syntax still accepted.
        ("inv2543", Some(404)),
    ]
    .into_iter()
    .collect()
}

/// The final status of a response to the message with `call_id` (earlier
/// messages' responses, retransmitted until ACK, are ignored).
fn final_status(bytes: &[u8], call_id: &str) -> Option<u16> {
    match hotline::sip::parse::parse_message(bytes) {
        Ok(SipMessage::Response(r))
            if r.status >= 200 && r.headers.get("Call-ID").unwrap_or("") == call_id =>
        {
            Some(r.status)
        }
        _ => None,
    }
}

/// The Call-ID of a torture message, read loosely (some are broken on purpose).
fn call_id_of(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg);
    text.split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default()
}

/// Sends from `socks[0]`; a reply may come to any of `socks` (they are
/// bound at the sent-by ports the torture Vias name).
async fn send_udp(
    socks: &[UdpSocket],
    target: std::net::SocketAddr,
    msg: &[u8],
    call_id: &str,
) -> Vec<u16> {
    socks[0].send_to(msg, target).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut buf2 = vec![0u8; 65536];
    loop {
        let r = tokio::time::timeout(Duration::from_millis(300), async {
            tokio::select! {
                r = socks[0].recv_from(&mut buf) => r.map(|(n, _)| buf[..n].to_vec()),
                r = socks[1].recv_from(&mut buf2) => r.map(|(n, _)| buf2[..n].to_vec()),
            }
        })
        .await;
        match r {
            Ok(Ok(bytes)) => {
                if let Some(s) = final_status(&bytes, call_id) {
                    got.push(s);
                }
            }
            _ => return got,
        }
    }
}

async fn send_tcp(target: std::net::SocketAddr, msg: &[u8], call_id: &str) -> Vec<u16> {
    let mut stream = TcpStream::connect(target).await.unwrap();
    stream.write_all(msg).await.unwrap();
    let mut got = Vec::new();
    let mut buf = bytes::BytesMut::new();
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(300), stream.read_buf(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        while let Ok(hotline::sip::parse::Frame::Message(len)) =
            hotline::sip::parse::frame_stream(&buf)
        {
            let m = buf.split_to(len);
            if let Some(s) = final_status(&m, call_id) {
                got.push(s);
            }
        }
    }
    got
}

/// Messages whose Via sent-by names a host the daemon would answer to over
/// UDP without rport: give them the socket's port so the reply reaches us.
fn torture_server() -> ServerOptions {
    let dir = tempfile::tempdir().unwrap().keep();
    let _ = std::fs::copy(
        support::repo().join("config/flows/12333.toml"),
        dir.join("12333.toml"),
    );
    ServerOptions {
        flows_dir: Some(dir),
        ..Default::default()
    }
}

/// Sends every message over one transport to a fresh daemon and checks the
/// answers; then makes a normal call to the same daemon.
async fn run_all(transport: &str) {
    let ts = TestServer::start_with(torture_server()).await;
    // These Vias carry no rport, so replies go to the source address at the
    // sent-by port, which is 5060 for nearly all of them (RFC 3261 §18.2.2).
    let udp = if transport == "udp" {
        match (
            UdpSocket::bind("127.0.0.1:5060").await,
            UdpSocket::bind("127.0.0.1:5050").await,
        ) {
            (Ok(a), Ok(b)) => Some([a, b]),
            (a, b) => {
                eprintln!(
                    "skipping the UDP half: 127.0.0.1:5060 or :5050 is taken ({:?} {:?})",
                    a.err(),
                    b.err()
                );
                return;
            }
        }
    } else {
        None
    };
    let mut failures = Vec::new();
    for (name, want) in &expected() {
        let msg = std::fs::read(format!("{DIR}/{name}.dat")).unwrap();
        let call_id = call_id_of(&msg);
        let (got, want) = match &udp {
            Some(socks) => (send_udp(socks, ts.sip_udp(), &msg, &call_id).await, *want),
            None => (
                send_tcp(ts.sip_tcp(), &msg, &call_id).await,
                expected_tcp(name).unwrap_or(*want),
            ),
        };
        let ok = match want {
            None => got.is_empty(),
            Some(s) => got.first() == Some(&s),
        };
        if !ok {
            failures.push(format!(
                "{name} over {transport}: expected {want:?}, got {got:?}"
            ));
        }
        // Some messages share a branch and sent-by (cparam01/cparam02): let
        // every transaction end (64*T1) so each is new, as it would be when
        // sent by different clients at different times.
        tokio::time::sleep(Duration::from_secs(40)).await;
    }
    // Still a working daemon: a real call.
    let mut call = ts.phone().build().await.call("12333").await;
    call.wait_heard("welcome_12333", Duration::from_secs(30))
        .await;
    assert_eq!(call.bye().await, 200);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn every_torture_message_over_udp() {
    run_all("udp").await;
}

#[tokio::test(start_paused = true)]
async fn every_torture_message_over_tcp() {
    run_all("tcp").await;
}
