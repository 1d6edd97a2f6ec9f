//! Real calls over 127.0.0.1 to an in-process daemon, as a citizen makes
//! them: menus, digit collection, look-up and readback, timeouts and retries
//! (on paused tokio time), CANCEL, hang-ups from either side, and the call
//! record read back from the database.

mod support;

use std::time::Duration;
use support::{ServerOptions, TestServer};

const S: Duration = Duration::from_secs(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Expected readback of 12,345.67 yuan in Mandarin.
const BALANCE_ZH: &[&str] = &[
    "balance_is",
    "num_1",
    "num_10000",
    "num_2_liang",
    "num_1000",
    "num_3",
    "num_100",
    "num_4",
    "num_10",
    "num_5",
    "yuan",
    "num_6",
    "jiao",
    "num_7",
    "fen",
];

/// Language by `lang_key`, main menu 1 (balance), the ID keyed with `#`:
/// returns once the PIN is asked for.
async fn to_pin_prompt(call: &mut support::Call, lang_key: &str, id: &str) {
    call.wait_heard("choose_language", secs(30)).await;
    call.press(lang_key).await;
    call.wait_heard("menu_12333_main", secs(30)).await;
    call.press("1").await;
    call.wait_heard("enter_id", secs(30)).await;
    call.press(&format!("{id}#")).await;
    call.wait_heard("enter_pin", secs(30)).await;
}

#[tokio::test(start_paused = true)]
async fn balance_self_service_in_mandarin() {
    let ts = TestServer::start().await;
    let mut call = ts.phone().build().await.call("12333").await;
    to_pin_prompt(&mut call, "1", "110101199003071234").await;
    call.press("123456#").await;
    let heard = call.wait_heard("last_paid_is", secs(60)).await;
    let heard_all = call.wait_heard("month", secs(30)).await;
    let start = heard
        .iter()
        .position(|n| n == "balance_is")
        .expect("balance_is heard");
    assert_eq!(
        &heard_all[start..start + BALANCE_ZH.len()],
        BALANCE_ZH,
        "heard {heard_all:?}"
    );
    // last paid: 2026年10月
    let lp = heard_all.iter().position(|n| n == "last_paid_is").unwrap();
    assert!(heard_all.len() >= lp + 8, "heard {heard_all:?}");
    assert_eq!(
        &heard_all[lp + 1..lp + 8],
        &["num_2", "num_0", "num_2", "num_6", "year", "num_10", "month"],
        "heard {heard_all:?}"
    );
    assert!(
        call.heard()
            .iter()
            .filter(|p| !p.ends_with("choose_language"))
            .all(|p| p.starts_with("zh/")),
        "{:?}",
        call.heard()
    );
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.dialed, "12333");
    assert_eq!(rec.caller, "13800138000");
    assert_eq!(rec.self_service_result.as_deref(), Some("balance_read"));
    assert_eq!(rec.disposition.as_str(), "self_served");
    assert_eq!(rec.hangup_by.as_str(), "caller");
    assert_eq!(rec.hangup_reason, "bye");
    assert_eq!(rec.codec.as_deref(), Some("PCMU"));
    assert_eq!(rec.language.as_deref(), Some("zh"));
    assert!(rec.answered_at.is_some() && rec.duration_ms > 0);
    assert!(!rec.ivr_path.is_empty());
    // The PIN is never stored.
    assert!(!format!("{rec:?}").contains("123456"), "{rec:?}");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn english_caller_with_id_ending_in_x_and_pcma() {
    let ts = TestServer::start().await;
    let mut call = ts
        .phone()
        .codecs(&[8, 101])
        .build()
        .await
        .call("12333")
        .await;
    to_pin_prompt(&mut call, "2", "11010119851212002*").await;
    call.press("654321#").await;
    call.wait_heard("last_paid_is", secs(60)).await;
    // The greeting and the language menu come before the choice.
    let heard = call.heard();
    let after: Vec<&String> = heard
        .iter()
        .skip_while(|p| !p.ends_with("choose_language"))
        .skip(1)
        .collect();
    assert!(
        after.len() > 5 && after.iter().all(|p| p.starts_with("en/")),
        "{heard:?}"
    );
    let names = call.heard_names();
    let b = names.iter().position(|n| n == "balance_is").unwrap();
    assert_eq!(
        &names[b..b + 3],
        &["balance_is", "num_1", "yuan"],
        "{names:?}"
    );
    let call_id = call.call_id.clone();
    call.bye().await;
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.codec.as_deref(), Some("PCMA"));
    assert_eq!(rec.language.as_deref(), Some("en"));
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wrong_pin_three_times_ends_politely() {
    let ts = TestServer::start().await;
    let mut call = ts.phone().build().await.call("12333").await;
    to_pin_prompt(&mut call, "1", "110101199003071234").await;
    for attempt in 1..=3 {
        call.press("000000#").await;
        if attempt < 3 {
            call.wait_heard_times("wrong_pin", attempt, secs(30)).await;
            call.wait_heard_times("enter_pin", attempt + 1, secs(30))
                .await;
        }
    }
    assert!(
        call.wait_bye(secs(60)).await,
        "daemon hangs up after three wrong PINs"
    );
    let names = call.heard_names();
    assert_eq!(
        names.iter().filter(|n| *n == "wrong_pin").count(),
        2,
        "{names:?}"
    );
    let t = names
        .iter()
        .position(|n| n == "too_many_attempts")
        .expect("too_many_attempts");
    assert_eq!(
        names.get(t + 1).map(String::as_str),
        Some("goodbye"),
        "{names:?}"
    );
    assert!(!names.contains(&"balance_is".to_string()));
    let rec = ts.record(&call.call_id).await;
    assert_eq!(rec.self_service_result.as_deref(), Some("pin_failed"));
    assert_eq!(rec.hangup_by.as_str(), "system");
    assert!(!format!("{rec:?}").contains("000000"));
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn menu_timeouts_repeat_then_end_the_call() {
    let ts = TestServer::start().await;
    let mut call = ts.phone().build().await.call("12333").await;
    call.wait_heard("choose_language", secs(30)).await;
    call.press("1").await;
    call.wait_heard("menu_12333_main", secs(30)).await;
    // Say nothing: the menu says "no input" and repeats, then gives up.
    assert!(call.wait_bye(secs(300)).await, "daemon ends a silent call");
    let names = call.heard_names();
    assert!(
        names.iter().filter(|n| *n == "no_input").count() >= 2,
        "{names:?}"
    );
    assert!(
        names.iter().filter(|n| *n == "menu_12333_main").count() >= 3,
        "{names:?}"
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("goodbye"),
        "{names:?}"
    );
    let rec = ts.record(&call.call_id).await;
    assert_eq!(rec.hangup_by.as_str(), "system");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn invalid_key_gets_the_invalid_prompt_and_star_repeats() {
    let ts = TestServer::start().await;
    let mut call = ts.phone().build().await.call("12333").await;
    call.wait_heard("choose_language", secs(30)).await;
    call.press("1").await;
    call.wait_heard("menu_12333_main", secs(30)).await;
    call.press("7").await;
    call.wait_heard("invalid_input", secs(30)).await;
    call.pump(secs(12)).await;
    call.press("*").await;
    call.pump(secs(12)).await;
    let names = call.heard_names();
    assert!(
        names.iter().filter(|n| *n == "menu_12333_main").count() >= 3,
        "{names:?}"
    );
    call.bye().await;
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn digits_by_sip_info_drive_the_menu() {
    let ts = TestServer::start().await;
    let mut call = ts.phone().build().await.call("12333").await;
    call.wait_heard("choose_language", secs(30)).await;
    assert_eq!(call.info_digit('1').await, 200);
    call.wait_heard("menu_12333_main", secs(30)).await;
    assert_eq!(call.info_digit('2').await, 200);
    call.wait_heard("opening_hours", secs(30)).await;
    call.bye().await;
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn caller_hangs_up_mid_prompt() {
    let ts = TestServer::start().await;
    let mut call = ts.phone().build().await.call("12333").await;
    call.pump(Duration::from_millis(700)).await;
    assert!(!call.packets().is_empty(), "audio was flowing");
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.disposition.as_str(), "abandoned_in_ivr");
    assert_eq!(rec.hangup_by.as_str(), "caller");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn silent_rtp_is_hung_up_and_recorded() {
    let ts = TestServer::start_with(ServerOptions {
        rtp_timeout_secs: 5,
        ..Default::default()
    })
    .await;
    let mut call = ts.phone().build().await.call("12333").await;
    call.pump(S).await;
    call.mute_rtp(true).await;
    assert!(
        call.wait_bye(secs(30)).await,
        "daemon hangs up a call whose RTP stopped"
    );
    let rec = ts.record(&call.call_id).await;
    assert_eq!(rec.hangup_reason, "rtp_timeout");
    assert_eq!(rec.hangup_by.as_str(), "system");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_before_answer_gets_487_and_a_record() {
    let ts = TestServer::start_with(ServerOptions {
        answer_delay_ms: 3000,
        ..Default::default()
    })
    .await;
    let mut phone = ts.phone().build().await;
    let body = phone.offer_sdp();
    let branch = "z9hG4bKcancel1";
    let invite = phone.invite_text("12333", "cancel-1@test", branch, "ft1", 1, &body);
    phone.send_raw(invite.clone()).await;
    phone.expect_response(&[180], secs(5)).await;
    // CANCEL: same Request-URI, Call-ID, From, To, CSeq number and branch.
    let cancel = invite
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let cancel = format!("{}\r\n\r\n", cancel.split("\r\n\r\n").next().unwrap())
        .replace(
            &format!("Content-Length: {}", body.len()),
            "Content-Length: 0",
        )
        .replace("Content-Type: application/sdp\r\n", "");
    phone.send_raw(cancel).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let r = phone.expect_response(&[200, 487], secs(5)).await;
        got.push((r.status, r.headers.get("CSeq").unwrap_or("").to_string()));
    }
    got.sort();
    assert_eq!(
        got,
        vec![(200, "1 CANCEL".to_string()), (487, "1 INVITE".to_string())]
    );
    let rec = ts.record("cancel-1@test").await;
    assert_eq!(rec.sip_status, 487);
    assert_eq!(rec.hangup_reason, "cancel");
    assert_eq!(rec.hangup_by.as_str(), "caller");
    assert!(rec.answered_at.is_none());
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn invite_without_sdp_gets_an_offer_and_the_ack_answers() {
    let ts = TestServer::start().await;
    let phone = ts.phone().no_sdp().build().await;
    let (status, call) = phone.try_call("12333").await;
    assert_eq!(status, 200);
    let mut call = call.unwrap();
    assert!(String::from_utf8_lossy(&call.answer.body).contains("m=audio"));
    call.wait_heard("welcome_12333", secs(30)).await;
    call.bye().await;
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn no_common_codec_gets_488() {
    let ts = TestServer::start().await;
    let (status, _) = ts
        .phone()
        .codecs(&[18])
        .build()
        .await
        .try_call("12333")
        .await;
    assert_eq!(status, 488);
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn untrusted_source_is_challenged_and_gets_no_call() {
    // Not a trunk: the INVITE must be an agent's softphone, so it is
    // challenged (digest, like REGISTER); without credentials no call.
    let ts = TestServer::start_with(ServerOptions {
        trunks: vec!["192.0.2.1/32".into()],
        ..Default::default()
    })
    .await;
    let (status, call) = ts.phone().build().await.try_call("12333").await;
    assert_eq!(status, 401);
    assert!(call.is_none());
    ts.server.flush_records().await;
    assert_eq!(ts.server.store.count_call_records().await.unwrap(), 0);
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn hold_and_resume_by_reinvite() {
    let ts = TestServer::start().await;
    let mut call = ts.phone().build().await.call("12333").await;
    call.pump(S).await;
    let offer = call.answer_offer_with("a=sendonly");
    let r = call
        .request("INVITE", "Content-Type: application/sdp\r\n", &offer)
        .await;
    assert_eq!(r.status, 200);
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(body.contains("a=recvonly"), "{body}");
    let before = call.packets().len();
    call.pump(secs(2)).await;
    assert!(
        call.packets().len() <= before + 2,
        "no audio is sent to a caller who holds"
    );
    let offer = call.answer_offer_with("a=sendrecv");
    let r = call
        .request("INVITE", "Content-Type: application/sdp\r\n", &offer)
        .await;
    assert_eq!(r.status, 200);
    let body2 = String::from_utf8_lossy(&r.body).to_string();
    assert!(body2.contains("a=sendrecv"), "{body2}");
    let o1 = body
        .lines()
        .find(|l| l.starts_with("o="))
        .unwrap()
        .to_string();
    let o2 = body2
        .lines()
        .find(|l| l.starts_with("o="))
        .unwrap()
        .to_string();
    assert_ne!(o1, o2, "a changed SDP has a new version");
    let before = call.packets().len();
    call.pump(secs(1)).await;
    assert!(call.packets().len() >= before + 40, "audio resumes");
    call.bye().await;
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_call_over_tcp() {
    let ts = TestServer::start().await;
    let mut call = ts
        .phone()
        .tcp(ts.sip_tcp())
        .build()
        .await
        .call("12333")
        .await;
    call.wait_heard("choose_language", secs(30)).await;
    assert_eq!(call.bye().await, 200);
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn options_and_unknown_methods() {
    let ts = TestServer::start().await;
    let mut phone = ts.phone().build().await;
    let local = phone.local_addr();
    let srv = ts.sip_udp();
    phone
        .send_raw(format!(
            "OPTIONS sip:12333@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKopt1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=1\r\nTo: <sip:12333@{srv}>\r\nCall-ID: opt1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
    let r = phone.expect_response(&[200], secs(2)).await;
    assert!(r.headers.get("Allow").unwrap().contains("INVITE"));
    assert!(r.headers.get("Accept").unwrap().contains("application/sdp"));
    phone
        .send_raw(format!(
            "FOOBAR sip:12333@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKfoo1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=1\r\nTo: <sip:12333@{srv}>\r\nCall-ID: foo1\r\nCSeq: 1 FOOBAR\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
    phone.expect_response(&[501], secs(2)).await;
    phone
        .send_raw(format!(
            "BYE sip:12333@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbye1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=1\r\nTo: <sip:12333@{srv}>;tag=nope\r\nCall-ID: nocall\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
    phone.expect_response(&[481], secs(2)).await;
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unknown_number_without_default_flow_gets_404() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        support::repo().join("config/flows/12333.toml"),
        dir.path().join("12333.toml"),
    )
    .unwrap();
    let ts = TestServer::start_with(ServerOptions {
        flows_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    let (status, _) = ts.phone().build().await.try_call("99999").await;
    assert_eq!(status, 404);
    ts.shutdown().await;
}

fn at(time: &str) -> ServerOptions {
    ServerOptions {
        extra_toml: format!("[clock]\nstart = \"{time}\"\n"),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn after_hours_12345_takes_a_voice_message() {
    let ts = TestServer::start_with(at("2026-11-23T22:30:00+08:00")).await;
    let mut call = ts.phone().build().await.call("12345").await;
    call.wait_heard("beep", secs(60)).await;
    call.pump(secs(3)).await;
    call.press("#").await;
    assert!(
        call.wait_bye(secs(30)).await,
        "the daemon thanks and hangs up"
    );
    let names = call.heard_names();
    assert_eq!(
        names,
        [
            "welcome_12345",
            "after_hours",
            "voicemail_prompt",
            "beep",
            "thank_you"
        ],
        "{names:?}"
    );
    let rec = ts.record(&call.call_id).await;
    assert_eq!(rec.disposition.as_str(), "voice_message");
    assert_eq!(rec.self_service_result.as_deref(), Some("after_hours"));
    let ms = rec.voice_message_ms.expect("message length");
    // From the end of the beep to the # (the beep is recognised before it ends).
    assert!((2500..=3400).contains(&ms), "recorded {ms} ms");
    let rel = rec.voice_message.expect("message file");
    assert!(rel.starts_with("recordings/2026/11/2"), "{rel}");
    let reader = hound::WavReader::open(ts.dir.path().join(&rel)).expect("a playable WAV");
    assert_eq!(reader.spec().sample_rate, 8000);
    assert_eq!(reader.spec().channels, 1);
    assert_eq!(reader.len() as i64, ms * 8);
    // Listed among the recordings, with its checksum.
    let rows = ts
        .server
        .store
        .recordings(hotline::store::RecordingFilter {
            call_id: Some(call.call_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.kind, hotline::store::RecordingKind::VoiceMessage);
    assert_eq!(row.path, rel);
    assert_eq!(row.duration_ms, Some(ms));
    let bytes = std::fs::read(ts.dir.path().join(&rel)).unwrap();
    assert_eq!(row.size_bytes, Some(bytes.len() as i64));
    use sha2::Digest;
    assert_eq!(
        row.sha256.as_deref(),
        Some(hex::encode(sha2::Sha256::digest(&bytes)).as_str())
    );
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn open_hours_12345_goes_to_the_queue_and_a_hangup_keeps_the_message() {
    let ts = TestServer::start_with(at("2026-11-23T10:00:00+08:00")).await;
    let mut call = ts.phone().build().await.call("12345").await;
    call.wait_heard("beep", secs(60)).await;
    call.pump(secs(2)).await;
    let names = call.heard_names();
    assert_eq!(
        names,
        [
            "welcome_12345",
            "transfer_to_agent",
            "queue_unavailable",
            "voicemail_prompt",
            "beep"
        ],
        "{names:?}"
    );
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.queue.as_deref(), Some("12345"));
    assert_eq!(rec.disposition.as_str(), "voice_message");
    assert_eq!(rec.hangup_by.as_str(), "caller");
    assert!(rec.voice_message_ms.unwrap() >= 1500, "{rec:?}");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn inband_tones_from_a_gateway_drive_the_menu() {
    let ts = TestServer::start().await;
    // A gateway offering no telephone-event: tones come in the audio.
    let mut call = ts.phone().codecs(&[8]).build().await.call("12333").await;
    call.wait_heard("choose_language", secs(30)).await;
    call.press_inband("1").await;
    call.wait_heard("menu_12333_main", secs(30)).await;
    call.press_inband("2").await;
    call.wait_heard("opening_hours", secs(30)).await;
    call.bye().await;
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_200_never_acknowledged_is_retransmitted_then_hung_up() {
    // This raw phone sends no RTP: keep the RTP timeout out of the way.
    let ts = TestServer::start_with(ServerOptions {
        rtp_timeout_secs: 120,
        ..Default::default()
    })
    .await;
    let mut phone = ts.phone().build().await;
    let body = phone.offer_sdp();
    let invite = phone.invite_text("12333", "noack-1@test", "z9hG4bKnoack1", "ft9", 1, &body);
    phone.send_raw(invite).await;
    let start = tokio::time::Instant::now();
    let mut oks = Vec::new();
    let mut bye = None;
    while start.elapsed() < secs(40) {
        match phone.recv(secs(40)).await {
            Some(hotline::sip::SipMessage::Response(r)) if r.status == 200 => {
                oks.push(start.elapsed())
            }
            Some(hotline::sip::SipMessage::Request(r)) if r.method == hotline::sip::Method::Bye => {
                bye = Some(start.elapsed());
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    // RFC 3261 §13.3.1.4: T1, doubling up to T2, for 64*T1; then BYE.
    let gaps: Vec<u128> = oks.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    assert!(oks.len() >= 8, "2xx retransmissions: {oks:?}");
    assert_eq!(&gaps[..4], &[500, 1000, 2000, 4000], "{gaps:?}");
    assert!(gaps[4..].iter().all(|g| *g == 4000), "{gaps:?}");
    let bye = bye.expect("BYE after the ACK timeout");
    assert!(bye >= secs(32) && bye < secs(34), "BYE at {bye:?}");
    let rec = ts.record("noack-1@test").await;
    assert_eq!(rec.hangup_reason, "no_ack");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn rtp_is_paced_and_numbered_like_a_phone_expects() {
    let ts = TestServer::start().await;
    let mut call = ts.phone().build().await.call("12333").await;
    call.pump(secs(3)).await;
    let packets = call.packets();
    let arrivals = call.arrivals();
    assert!(packets.len() >= 140, "{} packets in 3 s", packets.len());
    let (_, _, ssrc, marker) = packets[0];
    assert!(
        marker,
        "the first packet of the stream has the marker bit (RFC 3551 §4.1)"
    );
    for w in packets.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "sequence numbers step by one"
        );
        assert_eq!(
            w[1].1,
            w[0].1.wrapping_add(160),
            "timestamps step by 160 (20 ms)"
        );
        assert_eq!(w[1].2, ssrc, "one SSRC");
        assert!(!w[1].3, "no marker mid-stream");
    }
    for w in arrivals.windows(2) {
        assert_eq!(w[1] - w[0], Duration::from_millis(20), "20 ms spacing");
    }
    call.bye().await;
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn rtp_goes_back_where_it_comes_from() {
    let ts = TestServer::start().await;
    let mut call = ts.phone().behind_nat().build().await.call("12333").await;
    call.wait_heard("welcome_12333", secs(30)).await;
    call.bye().await;
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn calls_over_the_limit_get_503_and_a_freed_place_is_reused() {
    let ts = TestServer::start_with(ServerOptions {
        max_calls: 1,
        ..Default::default()
    })
    .await;
    let mut first = ts.phone().build().await.call("12333").await;
    first.pump(S).await;
    let (status, _) = ts.phone().build().await.try_call("12333").await;
    assert_eq!(status, 503);
    first.bye().await;
    // The place is free once the first call's task has ended.
    let mut status = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (s, call) = ts.phone().build().await.try_call("12333").await;
        status = s;
        if let Some(call) = call {
            call.bye().await;
            break;
        }
    }
    assert_eq!(status, 200);
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_refuses_new_calls_and_ends_calls_still_up() {
    let ts = TestServer::start().await;
    let sip = ts.sip_udp();
    let prompts = ts.prompts.clone();
    let mut call = ts.phone().build().await.call("12333").await;
    call.pump(S).await;
    let call_id = call.call_id.clone();
    let db = ts.database_url.clone();
    let stopping = tokio::spawn(ts.shutdown_with_drain(secs(5)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While draining, a new call is refused.
    let late = support::PhoneBuilder::new(sip, prompts).build().await;
    let (status, _) = late.try_call("12333").await;
    assert_eq!(status, 503);
    // The call up is ended by the daemon after the drain time.
    assert!(call.wait_bye(secs(30)).await, "BYE at shutdown");
    let _dir = stopping.await.unwrap();
    // Every record was flushed before the daemon stopped.
    let store = hotline::store::Store::open(&db).await.unwrap();
    let rec = store
        .call_record(&call_id)
        .await
        .unwrap()
        .expect("record written at shutdown");
    assert_eq!(rec.disposition.as_str(), "interrupted");
    assert_eq!(rec.hangup_reason, "shutdown");
    store.close().await;
}
