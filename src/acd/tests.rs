//! Scenario tests of the ACD, sans-IO: every instant is one
//! `Instant::now()` plus a number of seconds.

use std::time::Duration;

use tokio::time::Instant;

use super::*;

pub(super) struct H {
    pub acd: Acd,
    pub t0: Instant,
    pub now: Instant,
    pub events: Vec<QueueEvent>,
}

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(super) fn c(s: &str) -> CallId {
    CallId::from(s)
}

pub(super) fn a(s: &str) -> AgentId {
    AgentId::from(s)
}

impl H {
    pub fn new(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> H {
        Self::with(AcdSettings::default(), queues, agents)
    }

    pub fn with(settings: AcdSettings, queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> H {
        let acd = Acd::new(&AcdConfig {
            settings,
            queues,
            agents,
        })
        .unwrap();
        let t0 = Instant::now();
        H {
            acd,
            t0,
            now: t0,
            events: Vec::new(),
        }
    }

    /// The commands since the last call, events kept aside; invariants
    /// checked.
    pub fn out(&mut self) -> Vec<AcdCommand> {
        self.acd.check_invariants().unwrap();
        let mut v = Vec::new();
        for cmd in self.acd.drain_commands() {
            match cmd {
                AcdCommand::Event(e) => self.events.push(e),
                other => v.push(other),
            }
        }
        v
    }

    /// Moves the clock to t0 + `s` seconds, running the timers due.
    pub fn at(&mut self, s: u64) -> Vec<AcdCommand> {
        let now = self.t0 + secs(s);
        assert!(now >= self.now, "time goes forward");
        self.now = now;
        while let Some(d) = self.acd.deadline() {
            if d > now {
                break;
            }
            self.acd.on_timer(now);
            assert!(
                self.acd.deadline().is_none_or(|d| d > now),
                "on_timer left a due timer"
            );
        }
        self.out()
    }

    pub fn login(&mut self, agents: &[&str]) -> Vec<AcdCommand> {
        for id in agents {
            self.acd.agent_login(self.now, &a(id)).unwrap();
        }
        self.out()
    }

    pub fn call(&mut self, call: &str, queue: &str, priority: i32) -> Vec<AcdCommand> {
        self.acd
            .add_call(self.now, c(call), queue, priority)
            .unwrap();
        self.out()
    }

    pub fn result(&mut self, call: &str, agent: &str, r: OfferResult) -> Vec<AcdCommand> {
        self.acd
            .offer_result(self.now, &c(call), &a(agent), r)
            .unwrap();
        self.out()
    }

    pub fn end(&mut self, call: &str) -> Vec<AcdCommand> {
        self.acd
            .call_ended(self.now, &c(call), EndedBy::Caller)
            .unwrap();
        self.out()
    }

    pub fn state(&self, agent: &str) -> &AgentState {
        self.acd.agent(&a(agent)).unwrap().state()
    }

    pub fn kinds(&self, kind: EventKind) -> Vec<&QueueEvent> {
        self.events.iter().filter(|e| e.kind == kind).collect()
    }
}

fn offer(call: &str, agent: &str, ring: u64) -> AcdCommand {
    AcdCommand::Offer {
        call: c(call),
        agent: a(agent),
        extension: agent.to_string(),
        ring_timeout: secs(ring),
    }
}

fn cancel(call: &str, agent: &str) -> AcdCommand {
    AcdCommand::CancelOffer {
        call: c(call),
        agent: a(agent),
    }
}

fn connected(call: &str, agent: &str) -> AcdCommand {
    AcdCommand::Connected {
        call: c(call),
        agent: a(agent),
    }
}

fn queue(name: &str, strategy: Strategy) -> QueueConfig {
    let mut q = QueueConfig::new(name);
    q.strategy = strategy;
    q.announce_every_secs = 0;
    q.max_wait_secs = 0;
    q
}

fn agents(ids: &[&str], queues: &[&str], wrap: u64) -> Vec<AgentConfig> {
    ids.iter()
        .map(|id| {
            let mut c = AgentConfig::new(id, queues);
            c.wrap_up_secs = wrap;
            c
        })
        .collect()
}

/// Takes the one offer in `cmds`: (call, agent).
fn offered(cmds: &[AcdCommand]) -> Vec<(String, String)> {
    cmds.iter()
        .filter_map(|c| match c {
            AcdCommand::Offer { call, agent, .. } => Some((call.0.clone(), agent.0.clone())),
            _ => None,
        })
        .collect()
}

fn handled(h: &mut H, call: &str) -> String {
    let cmds = h.call(call, "q", 0);
    let o = offered(&cmds);
    assert_eq!(o.len(), 1, "{cmds:?}");
    let agent = o[0].1.clone();
    h.result(call, &agent, OfferResult::Answered);
    h.end(call);
    agent
}

#[test]
fn longest_idle_counts_from_the_last_call_end() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001", "1002", "1003"], &["q"], 0),
    );
    h.login(&["1001", "1002", "1003"]);
    assert_eq!(
        h.call("c1", "q", 0),
        [offer("c1", "1001", 15)],
        "ties: lower id"
    );
    h.result("c1", "1001", OfferResult::Answered);
    assert_eq!(h.call("c2", "q", 0), [offer("c2", "1002", 15)]);
    h.result("c2", "1002", OfferResult::Answered);
    h.at(10);
    h.end("c2");
    h.at(20);
    h.end("c1");
    h.at(30);
    // 1003 idle since its login (0), 1002 since 10, 1001 since 20.
    assert_eq!(handled(&mut h, "c3"), "1003");
    h.at(40);
    assert_eq!(handled(&mut h, "c4"), "1002");
    h.at(50);
    assert_eq!(handled(&mut h, "c5"), "1001");
}

#[test]
fn round_robin_fewest_calls_and_skill_level_orders() {
    let ids = ["1001", "1002", "1003"];
    let mut h = H::new(
        vec![queue("q", Strategy::RoundRobin)],
        agents(&ids, &["q"], 0),
    );
    h.login(&ids);
    let order: Vec<String> = (0..5).map(|i| handled(&mut h, &format!("c{i}"))).collect();
    assert_eq!(order, ["1001", "1002", "1003", "1001", "1002"]);

    let mut h = H::new(
        vec![queue("q", Strategy::FewestCalls)],
        agents(&ids, &["q"], 0),
    );
    h.login(&["1001"]);
    handled(&mut h, "a");
    handled(&mut h, "b");
    h.login(&["1002", "1003"]);
    h.at(5);
    handled(&mut h, "c");
    // 1001: 2 calls; 1002: 1 call now; 1003: none.
    assert_eq!(handled(&mut h, "d"), "1003");
    assert_eq!(h.acd.agent(&a("1001")).unwrap().calls_today(), 2);
    h.acd.reset_daily_counts();
    h.at(6);
    // All at 0 calls now: longest idle (1001 ended its last call at 0).
    assert_eq!(handled(&mut h, "e"), "1001");

    let mut q = queue("q", Strategy::SkillLevel);
    q.skills.insert("pension".into(), 2);
    let mut ag = agents(&["1001", "1002", "1003", "1004"], &["q"], 0);
    for (cfg, level) in ag.iter_mut().zip([2, 5, 3, 1]) {
        cfg.skills.insert("pension".into(), level);
    }
    let mut h = H::new(vec![q], ag);
    h.login(&["1001", "1002", "1003", "1004"]);
    assert_eq!(
        h.acd.queue("q").unwrap().members().len(),
        3,
        "1004 lacks the level"
    );
    let mut order = Vec::new();
    for call in ["x", "y", "z", "w"] {
        let o = offered(&h.call(call, "q", 0));
        if let Some((_, agent)) = o.first() {
            order.push(agent.clone());
            h.result(call, agent, OfferResult::Answered);
        }
    }
    assert_eq!(order, ["1002", "1003", "1001"], "1004 is never offered");
    assert!(matches!(
        h.acd.entry(&c("w")).unwrap().state(),
        EntryState::Waiting { .. }
    ));
}

#[test]
fn ring_all_rings_everyone_and_connects_one() {
    let ids = ["1001", "1002", "1003"];
    let mut h = H::new(vec![queue("q", Strategy::RingAll)], agents(&ids, &["q"], 0));
    h.login(&ids);
    let cmds = h.call("c1", "q", 0);
    assert_eq!(offered(&cmds).len(), 3);
    h.at(2);
    let cmds = h.result("c1", "1003", OfferResult::Busy);
    assert!(cmds.is_empty(), "the others still ring: {cmds:?}");
    let cmds = h.result("c1", "1002", OfferResult::Answered);
    assert_eq!(cmds, [cancel("c1", "1001"), connected("c1", "1002")]);
    assert!(matches!(h.state("1001"), AgentState::Ready { .. }));
    assert_eq!(h.acd.agent(&a("1001")).unwrap().misses(), 0, "not a miss");
    assert_eq!(h.acd.agent(&a("1003")).unwrap().misses(), 1);
    assert_eq!(
        h.acd
            .offer_result(h.now, &c("c1"), &a("1001"), OfferResult::Answered),
        Err(AcdError::NotOffered {
            call: c("c1"),
            agent: a("1001")
        }),
        "a late answer after the CANCEL is refused: the call task hangs that leg up"
    );
}

#[test]
fn ring_no_answer_goes_to_the_next_agent_and_misses_pause() {
    let settings = AcdSettings {
        max_missed_offers: 2,
        ..AcdSettings::default()
    };
    let mut h = H::with(
        settings,
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001", "1002"], &["q"], 0),
    );
    h.login(&["1001", "1002"]);
    assert_eq!(h.call("c1", "q", 0), [offer("c1", "1001", 15)]);
    assert_eq!(h.at(14), []);
    assert_eq!(h.at(15), [cancel("c1", "1001"), offer("c1", "1002", 15)]);
    h.at(20);
    // 1002 declines: back to 1001 (1002 not again at once).
    assert_eq!(
        h.result("c1", "1002", OfferResult::Declined),
        [offer("c1", "1001", 15)]
    );
    // 1001 misses a second time in a row: paused "no_answer".
    assert_eq!(h.at(35), [cancel("c1", "1001"), offer("c1", "1002", 15)]);
    assert!(matches!(h.state("1001"), AgentState::Paused { reason, .. } if reason == "no_answer"));
    let misses: Vec<_> = h
        .kinds(EventKind::RingNoAnswer)
        .iter()
        .map(|e| (e.agent.clone().unwrap().0, e.reason.clone().unwrap()))
        .collect();
    assert_eq!(
        misses,
        [
            ("1001".into(), "ring_timeout".into()),
            ("1002".into(), "declined".into()),
            ("1001".into(), "ring_timeout".into())
        ]
    );
    let pauses = h.kinds(EventKind::Pause);
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0].reason.as_deref(), Some("no_answer"));
    // 1002's second miss in a row pauses it too; the caller waits.
    assert_eq!(h.result("c1", "1002", OfferResult::Failed), []);
    assert_eq!(h.acd.entry(&c("c1")).unwrap().offers(), 4);
    h.acd.agent_unpause(h.now, &a("1001")).unwrap();
    assert_eq!(h.out(), [offer("c1", "1001", 15)]);
}

#[test]
fn the_only_agent_is_rung_again_after_a_miss() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 0),
    );
    h.login(&["1001"]);
    h.call("c1", "q", 0);
    assert_eq!(
        h.result("c1", "1001", OfferResult::Busy),
        [offer("c1", "1001", 15)]
    );
    assert_eq!(
        h.result("c1", "1001", OfferResult::NoAnswer),
        [offer("c1", "1001", 15)]
    );
    assert_eq!(
        h.result("c1", "1001", OfferResult::NoAnswer),
        [],
        "third miss: paused"
    );
    assert!(matches!(h.state("1001"), AgentState::Paused { .. }));
}

#[test]
fn wrap_up_holds_across_queues_then_ready() {
    let mut h = H::new(
        vec![
            queue("a", Strategy::LongestIdle),
            queue("b", Strategy::LongestIdle),
        ],
        agents(&["1001"], &["a", "b"], 30),
    );
    h.login(&["1001"]);
    h.call("ca", "a", 0);
    h.result("ca", "1001", OfferResult::Answered);
    h.at(10);
    h.end("ca");
    assert_eq!(
        h.state("1001"),
        &AgentState::WrapUp {
            until: h.t0 + secs(40)
        }
    );
    h.at(11);
    assert_eq!(
        h.call("cb", "b", 0),
        [],
        "in wrap-up: not offered queue b's call"
    );
    assert_eq!(h.acd.deadline(), Some(h.t0 + secs(40)));
    assert_eq!(h.at(39), []);
    assert_eq!(h.at(40), [offer("cb", "1001", 15)]);
    let ends = h.kinds(EventKind::WrapUpEnd);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].at, h.t0 + secs(40));
    let complete = h.kinds(EventKind::Complete);
    assert_eq!(complete[0].talk, Some(secs(10)));
    assert_eq!(complete[0].reason.as_deref(), Some("caller"));

    // `ready` ends wrap-up early.
    h.result("cb", "1001", OfferResult::Answered);
    h.at(50);
    h.acd.call_ended(h.now, &c("cb"), EndedBy::Agent).unwrap();
    h.out();
    h.call("cc", "a", 0);
    assert!(matches!(h.state("1001"), AgentState::WrapUp { .. }));
    assert_eq!(h.acd.agent_ready(h.now, &a("1001")), Ok(Effect::Now));
    assert_eq!(h.out(), [offer("cc", "1001", 15)]);
    assert_eq!(
        h.kinds(EventKind::WrapUpEnd)[1].reason.as_deref(),
        Some("early")
    );
}

#[test]
fn pause_reasons_and_pending_pause() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001", "1002"], &["q"], 10),
    );
    h.login(&["1001", "1002"]);
    let now = h.now;
    assert_eq!(h.acd.agent_pause(now, &a("1002"), "lunch"), Ok(Effect::Now));
    assert_eq!(
        h.acd.agent_pause(now, &a("1002"), "lunch"),
        Ok(Effect::Unchanged)
    );
    assert_eq!(
        h.acd.agent_pause(now, &a("1002"), "no way"),
        Err(AcdError::BadReason)
    );
    h.out();
    h.call("c1", "q", 0);
    h.result("c1", "1001", OfferResult::Answered);
    // Asked while talking: applies after the call and wrap-up.
    assert_eq!(
        h.acd.agent_pause(h.now, &a("1001"), "meeting"),
        Ok(Effect::AfterCall)
    );
    h.at(5);
    h.end("c1");
    h.call("c2", "q", 0);
    assert_eq!(h.at(15), [], "pending pause applies at the end of wrap-up");
    assert!(matches!(h.state("1001"), AgentState::Paused { reason, .. } if reason == "meeting"));
    let reasons: Vec<_> = h
        .kinds(EventKind::Pause)
        .iter()
        .map(|e| e.reason.clone().unwrap())
        .collect();
    assert_eq!(reasons, ["lunch", "meeting"]);
    // Unpause: the waiting call is offered.
    assert_eq!(h.acd.agent_unpause(h.now, &a("1002")), Ok(Effect::Now));
    assert_eq!(h.out(), [offer("c2", "1002", 15)]);
    assert_eq!(
        h.kinds(EventKind::Unpause)[0].reason.as_deref(),
        Some("lunch")
    );
    // A pause while ringing withdraws the offer; the call goes elsewhere.
    h.acd.agent_unpause(h.now, &a("1001")).unwrap();
    h.out();
    assert_eq!(
        h.acd.agent_pause(h.now, &a("1002"), "toilet"),
        Ok(Effect::Now)
    );
    assert_eq!(h.out(), [cancel("c2", "1002"), offer("c2", "1001", 15)]);
    assert_eq!(h.acd.agent(&a("1002")).unwrap().misses(), 0);
    assert_eq!(
        h.kinds(EventKind::OfferCancelled)[0].reason.as_deref(),
        Some("agent_pause")
    );
}

#[test]
fn logout_waits_for_the_call_and_wrap_up() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 10),
    );
    h.login(&["1001"]);
    h.call("c1", "q", 0);
    h.result("c1", "1001", OfferResult::Answered);
    assert_eq!(h.acd.agent_logout(h.now, &a("1001")), Ok(Effect::AfterCall));
    h.out();
    h.at(5);
    h.end("c1");
    h.at(15);
    assert_eq!(h.state("1001"), &AgentState::LoggedOut);
    assert_eq!(h.kinds(EventKind::Logout).len(), 1);
    assert_eq!(h.acd.queue("q").unwrap().staffed(), 0);
    assert!(matches!(
        h.acd.agent_logout(h.now, &a("1001")),
        Err(AcdError::Agent(AgentError::NotLoggedIn))
    ));
}

#[test]
fn abandon_while_ringing_cancels_the_offer() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 0),
    );
    h.login(&["1001"]);
    h.call("c1", "q", 0);
    h.at(7);
    h.acd.caller_left(h.now, &c("c1")).unwrap();
    assert_eq!(h.out(), [cancel("c1", "1001")]);
    assert!(matches!(h.state("1001"), AgentState::Ready { .. }));
    let ab = h.kinds(EventKind::Abandon);
    assert_eq!(ab.len(), 1);
    assert_eq!((ab[0].position, ab[0].wait), (Some(1), Some(secs(7))));
    assert_eq!(h.acd.deadline(), None, "the ring timer is gone");
    assert!(h.acd.entry(&c("c1")).is_none());
    assert_eq!(
        h.acd
            .offer_result(h.now, &c("c1"), &a("1001"), OfferResult::Answered),
        Err(AcdError::NotOffered {
            call: c("c1"),
            agent: a("1001")
        })
    );
}

#[test]
fn abandon_in_the_queue_has_position_and_wait() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 0),
    );
    for (i, call) in ["c1", "c2", "c3"].iter().enumerate() {
        h.at(i as u64);
        h.call(call, "q", 0);
    }
    h.at(20);
    h.acd.caller_left(h.now, &c("c2")).unwrap();
    h.out();
    let ab = h.kinds(EventKind::Abandon);
    assert_eq!((ab[0].position, ab[0].wait), (Some(2), Some(secs(19))));
    assert_eq!(h.acd.position(&c("c3")), Some(2));
}

#[test]
fn priority_jumps_the_line() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 0),
    );
    h.login(&["1001"]);
    h.call("busy", "q", 0);
    h.result("busy", "1001", OfferResult::Answered);
    h.at(1);
    h.call("c1", "q", 0);
    h.at(2);
    h.call("c2", "q", 0);
    h.at(3);
    h.call("elder", "q", 5);
    assert_eq!(h.acd.position(&c("elder")), Some(1));
    assert_eq!(h.acd.position(&c("c1")), Some(2));
    assert_eq!(h.kinds(EventKind::Enter)[3].position, Some(1));
    h.at(4);
    assert_eq!(h.end("busy"), [offer("elder", "1001", 15)]);
}

#[test]
fn an_agent_in_two_queues_gets_the_longest_waiting_caller() {
    let mut h = H::new(
        vec![
            queue("a", Strategy::LongestIdle),
            queue("b", Strategy::LongestIdle),
        ],
        agents(&["1001"], &["a", "b"], 0),
    );
    h.login(&["1001"]);
    h.call("busy", "a", 0);
    h.result("busy", "1001", OfferResult::Answered);
    h.at(5);
    h.call("b-old", "b", 0);
    h.at(10);
    h.call("a-new", "a", 0);
    h.at(20);
    assert_eq!(h.end("busy"), [offer("b-old", "1001", 15)]);
    h.result("b-old", "1001", OfferResult::Answered);
    // Priority says otherwise.
    h.at(21);
    h.call("b-urgent", "b", 3);
    h.at(30);
    assert_eq!(h.end("b-old"), [offer("b-urgent", "1001", 15)]);
}

#[test]
fn callback_keeps_its_place_then_is_placed() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 0),
    );
    h.login(&["1001"]);
    h.call("busy", "q", 0);
    h.result("busy", "1001", OfferResult::Answered);
    for (i, call) in ["c1", "c2", "c3"].iter().enumerate() {
        h.at(1 + i as u64);
        h.call(call, "q", 0);
    }
    h.at(10);
    assert_eq!(
        h.acd.request_callback(h.now, &c("c1"), "x"),
        Err(AcdError::BadNumber)
    );
    h.acd
        .request_callback(h.now, &c("c1"), "+8613800138000")
        .unwrap();
    h.out();
    // The caller hangs up; the request stands.
    h.acd.caller_left(h.now, &c("c1")).unwrap();
    assert_eq!(h.out(), []);
    assert_eq!(h.acd.position(&c("c1")), Some(1));
    assert_eq!(h.acd.position(&c("c2")), Some(2));
    assert_eq!(h.acd.queue("q").unwrap().callbacks(), 1);
    assert_eq!(h.acd.queue("q").unwrap().live(), 2);
    let bo = h.kinds(EventKind::Breakout);
    assert_eq!(
        (bo[0].reason.as_deref(), bo[0].position),
        (Some("callback"), Some(1))
    );
    // The agent is free: the callback, at the front, is placed first.
    h.at(20);
    let cmds = h.end("busy");
    let entry = h.acd.entry(&c("c1")).unwrap().id();
    assert_eq!(
        cmds,
        [AcdCommand::PlaceCallback {
            entry,
            call: c("c1"),
            agent: a("1001"),
            extension: "1001".into(),
            number: "+8613800138000".into(),
            ring_timeout: secs(15),
        }]
    );
    // Agent first, then the citizen: the daemon reports the agent's answer.
    assert_eq!(
        h.result("c1", "1001", OfferResult::Answered),
        [connected("c1", "1001")]
    );
    h.at(80);
    assert_eq!(h.end("c1"), [offer("c2", "1001", 15)]);
}

#[test]
fn max_wait_times_out_and_a_callback_after_it_keeps_the_place() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.max_wait_secs = 60;
    q.ring_timeout_secs = 120;
    let mut h = H::new(vec![q], agents(&["1001"], &["q"], 0));
    h.call("c1", "q", 0);
    h.at(1);
    h.call("c2", "q", 0);
    assert_eq!(
        h.at(60),
        [AcdCommand::QueueTimeout {
            call: c("c1"),
            reason: TimeoutReason::MaxWait
        }]
    );
    assert_eq!(h.acd.position(&c("c2")), Some(1));
    let to = h.kinds(EventKind::Timeout);
    assert_eq!(
        (to[0].wait, to[0].reason.as_deref()),
        (Some(secs(60)), Some("max_wait"))
    );
    // The flow offers a callback; the caller takes it: back at the front.
    h.acd.request_callback(h.now, &c("c1"), "01012345").unwrap();
    h.out();
    assert_eq!(h.acd.position(&c("c1")), Some(1));
    assert_eq!(h.acd.position(&c("c2")), Some(2));
    assert_eq!(
        h.at(61),
        [AcdCommand::QueueTimeout {
            call: c("c2"),
            reason: TimeoutReason::MaxWait
        }]
    );
    // c2 hangs up after its voicemail prompt: forgotten.
    h.acd.caller_left(h.now, &c("c2")).unwrap();
    assert!(h.acd.entry(&c("c2")).is_none());
    assert_eq!(
        h.kinds(EventKind::Abandon).len(),
        0,
        "a timed-out caller is no abandon"
    );
    // Max wait while an agent rings: the ring runs on, then time-out.
    h.login(&["1001"]);
    h.acd.caller_left(h.now, &c("c1")).unwrap();
    h.out();
    h.result("c1", "1001", OfferResult::Answered);
    h.end("c1");
    h.at(100);
    assert_eq!(h.call("c3", "q", 0), [offer("c3", "1001", 120)]);
    assert_eq!(h.at(159), []);
    assert_eq!(h.at(160), [], "ringing at max wait: the ring runs on");
    assert_eq!(
        h.result("c3", "1001", OfferResult::NoAnswer),
        [AcdCommand::QueueTimeout {
            call: c("c3"),
            reason: TimeoutReason::MaxWait
        }]
    );
}

#[test]
fn max_length_refuses_full() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.max_len = 2;
    let mut h = H::new(vec![q], agents(&["1001"], &["q"], 0));
    h.call("c1", "q", 0);
    h.call("c2", "q", 0);
    assert_eq!(
        h.acd.add_call(h.now, c("c3"), "q", 9),
        Err(Refused {
            reason: Refusal::Full
        })
    );
    assert_eq!(
        h.acd.add_call(h.now, c("c1"), "q", 0),
        Err(Refused {
            reason: Refusal::AlreadyQueued
        })
    );
    assert_eq!(
        h.acd.add_call(h.now, c("c4"), "nope", 0),
        Err(Refused {
            reason: Refusal::UnknownQueue
        })
    );
    // A callback request frees a live place.
    h.acd.request_callback(h.now, &c("c1"), "12345678").unwrap();
    assert!(h.acd.add_call(h.now, c("c3"), "q", 0).is_ok());
    h.out();
}

#[test]
fn join_rules_when_no_agent_is_logged_in() {
    let mut join = queue("join", Strategy::LongestIdle);
    join.when_no_agents = WhenNoAgents::Join;
    let mut refuse = queue("refuse", Strategy::LongestIdle);
    refuse.when_no_agents = WhenNoAgents::Refuse;
    let mut leave = queue("leave", Strategy::LongestIdle);
    leave.when_no_agents = WhenNoAgents::Leave;
    let mut h = H::new(
        vec![join, refuse, leave],
        agents(&["1001"], &["join", "refuse", "leave"], 0),
    );
    assert!(h.acd.add_call(h.now, c("j1"), "join", 0).is_ok());
    let no = Err(Refused {
        reason: Refusal::NoAgents,
    });
    assert_eq!(h.acd.add_call(h.now, c("r1"), "refuse", 0), no);
    assert_eq!(h.acd.add_call(h.now, c("l1"), "leave", 0), no);
    // A paused agent staffs its queues; an unreachable one does not.
    h.login(&["1001"]);
    h.acd.agent_pause(h.now, &a("1001"), "lunch").unwrap();
    h.acd.agent_reachable(h.now, &a("1001"), false).unwrap();
    assert_eq!(h.acd.add_call(h.now, c("r1"), "refuse", 0), no);
    h.acd.agent_reachable(h.now, &a("1001"), true).unwrap();
    assert!(h.acd.add_call(h.now, c("r1"), "refuse", 0).is_ok());
    assert!(h.acd.add_call(h.now, c("l1"), "leave", 0).is_ok());
    h.acd.request_callback(h.now, &c("l1"), "12345678").unwrap();
    assert!(h.acd.add_call(h.now, c("l2"), "leave", 0).is_ok());
    h.out();
    // The last agent logs out: `leave` callers go (the callback stays),
    // the others wait.
    h.acd.agent_logout(h.now, &a("1001")).unwrap();
    assert_eq!(
        h.out(),
        [AcdCommand::QueueTimeout {
            call: c("l2"),
            reason: TimeoutReason::NoAgents
        }]
    );
    assert_eq!(h.acd.position(&c("l1")), Some(1));
    assert_eq!(h.acd.position(&c("r1")), Some(1));
    assert_eq!(h.acd.position(&c("j1")), Some(1));
}

#[test]
fn announcements_give_position_and_estimated_wait() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.announce_every_secs = 30;
    let mut h = H::new(vec![q], agents(&["1001", "1002"], &["q"], 20));
    h.login(&["1001", "1002"]);
    // Two calls handled: talk 100 s + wrap-up 20 s each: AHT 120 s.
    h.call("h1", "q", 0);
    h.call("h2", "q", 0);
    h.result("h1", "1001", OfferResult::Answered);
    h.result("h2", "1002", OfferResult::Answered);
    h.at(100);
    h.end("h1");
    h.end("h2");
    h.acd.agent_pause(h.now, &a("1001"), "lunch").unwrap();
    h.acd.agent_pause(h.now, &a("1002"), "lunch").unwrap();
    h.out();
    h.call("c1", "q", 0);
    h.at(101);
    h.call("c2", "q", 0);
    h.call("c3", "q", 0);
    // Nobody working: position only.
    assert_eq!(
        h.at(130),
        [AcdCommand::Announce {
            call: c("c1"),
            position: 1,
            estimated_wait: None
        }]
    );
    h.acd.agent_unpause(h.now, &a("1002")).unwrap();
    assert_eq!(h.out(), [offer("c1", "1002", 15)]);
    h.acd.agent_unpause(h.now, &a("1001")).unwrap();
    assert_eq!(h.out(), [offer("c2", "1001", 15)]);
    // c3 is third (two ahead being rung), 2 agents working: ceil(3/2) × 120 s.
    assert_eq!(
        h.at(131),
        [AcdCommand::Announce {
            call: c("c3"),
            position: 3,
            estimated_wait: Some(secs(240))
        }]
    );
}

#[test]
fn an_unreachable_agent_is_not_offered_calls() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001", "1002"], &["q"], 0),
    );
    h.login(&["1001", "1002"]);
    h.call("c1", "q", 0);
    assert_eq!(
        h.acd.agent_reachable(h.now, &a("1001"), false),
        Ok(Effect::Now)
    );
    assert_eq!(h.out(), [cancel("c1", "1001"), offer("c1", "1002", 15)]);
    h.call("c2", "q", 0);
    assert_eq!(
        h.acd.agent_reachable(h.now, &a("1001"), false),
        Ok(Effect::Unchanged)
    );
    assert_eq!(h.out(), []);
    assert_eq!(
        h.acd.agent_reachable(h.now, &a("1001"), true),
        Ok(Effect::Now)
    );
    assert_eq!(h.out(), [offer("c2", "1001", 15)]);
    assert_eq!(h.kinds(EventKind::Unreachable).len(), 1);
}

#[test]
fn voicemail_breakout_and_transfer() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 5),
    );
    h.login(&["1001"]);
    h.call("c1", "q", 0);
    h.call("c2", "q", 0);
    h.acd.breakout_voicemail(h.now, &c("c1")).unwrap();
    assert_eq!(h.out(), [cancel("c1", "1001"), offer("c2", "1001", 15)]);
    assert!(h.acd.entry(&c("c1")).is_none());
    h.result("c2", "1001", OfferResult::Answered);
    assert_eq!(
        h.acd.caller_left(h.now, &c("c2")),
        Err(AcdError::Connected(c("c2")))
    );
    h.at(30);
    h.acd.transfer(h.now, &c("c2"), "queue:12333").unwrap();
    h.out();
    let tr = h.kinds(EventKind::Transfer);
    assert_eq!(
        (tr[0].reason.as_deref(), tr[0].talk),
        (Some("queue:12333"), Some(secs(30)))
    );
    // Into another queue (here the same one) afterwards.
    assert!(h.acd.add_call(h.now, c("c2"), "q", 0).is_ok());
    assert!(matches!(h.state("1001"), AgentState::WrapUp { .. }));
    h.out();
}

#[test]
fn a_restored_callback_takes_the_place_of_its_time() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 0),
    );
    h.at(100);
    h.call("c1", "q", 0);
    let since = h.t0 + secs(50);
    let id = h
        .acd
        .add_callback(h.now, c("cb"), "q", 0, "02088889999", since)
        .unwrap();
    assert_eq!(h.acd.position(&c("cb")), Some(1));
    assert_eq!(h.acd.position(&c("c1")), Some(2));
    assert_eq!(
        h.acd
            .add_callback(h.now, c("cb"), "q", 0, "02088889999", since),
        Err(AcdError::AlreadyQueued(c("cb")))
    );
    assert_eq!(
        h.acd
            .add_callback(h.now, c("x"), "nope", 0, "02088889999", since),
        Err(AcdError::UnknownQueue("nope".into()))
    );
    h.out();
    let cmds = h.login(&["1001"]);
    assert!(
        matches!(&cmds[..], [AcdCommand::PlaceCallback { entry, .. }] if *entry == id),
        "{cmds:?}"
    );
}

// ----- reloads (`Acd::reconfigure`) ------------------------------------------

impl H {
    fn reload(&mut self, queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> Reconfigured {
        let cfg = AcdConfig {
            settings: AcdSettings::default(),
            queues,
            agents,
        };
        self.acd.reconfigure(self.now, &cfg).unwrap()
    }
}

#[test]
fn a_reload_keeps_agent_states_and_caller_places() {
    let qs = || vec![queue("q", Strategy::LongestIdle)];
    let mut h = H::new(qs(), agents(&["1001", "1002", "1003"], &["q"], 0));
    h.login(&["1001", "1002", "1003"]);
    h.acd.agent_pause(h.now, &a("1003"), "lunch").unwrap();
    h.call("c1", "q", 0);
    h.result("c1", "1001", OfferResult::Answered);
    h.call("c2", "q", 0);
    h.result("c2", "1002", OfferResult::Answered);
    h.call("c3", "q", 0);
    h.call("c4", "q", 0);
    let mut new_agents = agents(&["1001", "1002", "1003"], &["q"], 0);
    new_agents[0].name = "Wang Fang".into();
    let mut q = qs();
    q[0].ring_timeout_secs = 20;
    let r = h.reload(q, new_agents);
    assert_eq!(r.agents_changed, ["1001"]);
    assert_eq!(r.queues_changed, ["q"]);
    assert!(r.agents_added.is_empty() && r.agents_removed.is_empty());
    assert!(h.out().is_empty(), "nothing rings, nothing is cancelled");
    assert_eq!(h.acd.agent(&a("1001")).unwrap().name(), "Wang Fang");
    assert!(matches!(h.state("1001"), AgentState::Talking { .. }));
    assert!(matches!(h.state("1003"), AgentState::Paused { reason, .. } if reason == "lunch"));
    assert_eq!(h.acd.position(&c("c3")), Some(1));
    assert_eq!(h.acd.position(&c("c4")), Some(2));
    // The new ring timeout applies to the next offer.
    assert_eq!(h.end("c1"), [offer("c3", "1001", 20)]);
}

#[test]
fn a_removed_agent_ringing_is_withdrawn_and_the_caller_offered_elsewhere() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001", "1002"], &["q"], 0),
    );
    h.login(&["1001"]);
    assert_eq!(h.call("c1", "q", 0), [offer("c1", "1001", 15)]);
    h.login(&["1002"]);
    let r = h.reload(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1002"], &["q"], 0),
    );
    assert_eq!(r.agents_removed, ["1001"]);
    assert_eq!(h.out(), [cancel("c1", "1001"), offer("c1", "1002", 15)]);
    assert!(h.acd.agent(&a("1001")).is_none());
    assert_eq!(
        h.acd.agent_login(h.now, &a("1001")),
        Err(AcdError::UnknownAgent(a("1001")))
    );
    assert_eq!(h.kinds(EventKind::Logout).len(), 1);
    // Put back: it comes back logged out, and logs in again.
    let r = h.reload(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001", "1002"], &["q"], 0),
    );
    assert_eq!(r.agents_added, ["1001"]);
    assert_eq!(h.state("1001"), &AgentState::LoggedOut);
    h.login(&["1001"]);
    assert_eq!(h.acd.queue("q").unwrap().staffed(), 2);
}

#[test]
fn a_removed_agent_talking_finishes_its_call_then_is_logged_out() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001", "1002"], &["q"], 5),
    );
    h.login(&["1001"]);
    h.call("c1", "q", 0);
    h.result("c1", "1001", OfferResult::Answered);
    h.reload(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1002"], &["q"], 5),
    );
    assert_eq!(h.out(), []);
    assert_eq!(h.acd.queue("q").unwrap().staffed(), 0);
    assert!(h.kinds(EventKind::Logout).is_empty(), "not while talking");
    h.call("c2", "q", 0);
    assert_eq!(h.out(), [], "a removed agent is offered nothing");
    h.end("c1");
    h.at(5);
    assert_eq!(h.kinds(EventKind::Logout).len(), 1, "after the wrap-up");
    assert_eq!(h.acd.agents()[0].state(), &AgentState::LoggedOut);
    assert_eq!(h.acd.position(&c("c2")), Some(1));
}

#[test]
fn an_agent_added_by_a_reload_serves_the_callers_waiting() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 0),
    );
    h.call("c1", "q", 0);
    let r = h.reload(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001", "1002"], &["q"], 0),
    );
    assert_eq!(r.agents_added, ["1002"]);
    assert_eq!(h.state("1002"), &AgentState::LoggedOut);
    assert_eq!(h.login(&["1002"]), [offer("c1", "1002", 15)]);
}

#[test]
fn a_removed_queue_takes_no_one_new_and_serves_those_in_it() {
    let mut h = H::new(
        vec![
            queue("q", Strategy::LongestIdle),
            queue("old", Strategy::LongestIdle),
        ],
        agents(&["1001"], &["q", "old"], 0),
    );
    h.login(&["1001"]);
    h.call("c1", "q", 0);
    h.result("c1", "1001", OfferResult::Answered);
    h.call("c2", "old", 0);
    let r = h.reload(
        vec![queue("q", Strategy::LongestIdle)],
        agents(&["1001"], &["q"], 0),
    );
    assert_eq!(r.queues_removed, ["old"]);
    assert_eq!(
        h.acd.add_call(h.now, c("c3"), "old", 0),
        Err(Refused {
            reason: Refusal::UnknownQueue
        })
    );
    assert_eq!(h.acd.position(&c("c2")), Some(1));
    assert_eq!(
        h.end("c1"),
        [offer("c2", "1001", 15)],
        "its old member serves it"
    );
}

#[test]
fn a_removed_queue_with_no_one_left_sends_its_callers_to_the_overflow() {
    let mut h = H::new(
        vec![
            queue("q", Strategy::LongestIdle),
            queue("old", Strategy::LongestIdle),
        ],
        vec![
            AgentConfig::new("1001", &["q"]),
            AgentConfig::new("1002", &["old"]),
        ],
    );
    h.login(&["1002"]);
    h.acd.agent_pause(h.now, &a("1002"), "meeting").unwrap();
    h.call("c1", "old", 0);
    h.reload(
        vec![queue("q", Strategy::LongestIdle)],
        vec![AgentConfig::new("1001", &["q"])],
    );
    assert_eq!(
        h.out(),
        [AcdCommand::QueueTimeout {
            call: c("c1"),
            reason: TimeoutReason::NoAgents
        }]
    );
}

#[test]
fn a_reload_recomputes_memberships_from_skills() {
    let mut law = queue("law", Strategy::SkillLevel);
    law.skills.insert("law".into(), 3);
    let mut agent = AgentConfig::new("1001", &["law"]);
    agent.skills.insert("law".into(), 2);
    let mut h = H::new(vec![law.clone()], vec![agent.clone()]);
    h.login(&["1001"]);
    assert!(h.acd.queue("law").unwrap().members().is_empty());
    h.call("c1", "law", 0);
    agent.skills.insert("law".into(), 3);
    h.reload(vec![law.clone()], vec![agent.clone()]);
    assert_eq!(h.out(), [offer("c1", "1001", 15)]);
    assert_eq!(h.acd.queue("law").unwrap().staffed(), 1);
    // A bad config changes nothing.
    let mut bad = law.clone();
    bad.ring_timeout_secs = 0;
    let cfg = AcdConfig {
        settings: AcdSettings::default(),
        queues: vec![bad],
        agents: vec![agent],
    };
    assert!(h.acd.reconfigure(h.now, &cfg).is_err());
    assert_eq!(h.acd.queue("law").unwrap().ring_timeout(), secs(15));
}
