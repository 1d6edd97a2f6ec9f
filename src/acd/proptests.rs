//! Property test of random operations on the ACD, and a load run of 200
//! agents serving 10,000 calls (not timed).
//!
//! The property test drives the `Acd` as the daemon would and watches its
//! command stream with a model of what the daemon knows (who rings for
//! which call, who talks on which), asserting after every step: no call is
//! offered to an agent already ringing or talking; no call is connected to
//! two agents (ring-all offers several, connects one, cancels the rest in
//! the same step); every Ringing agent has exactly one outstanding offer;
//! every entry holding a place is in exactly one queue; every `connect`
//! event follows an `offer` event to that agent for that call; the ACD's
//! own invariants (`check_invariants`); and `on_timer` leaves nothing due.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::strategy::Strategy as Routing;
use super::tests::{a, c};
use super::{
    Acd, AcdCommand, AcdConfig, AcdSettings, AgentConfig, AgentId, AgentState, CallId, EndedBy,
    EntryState, EventKind, OfferResult, QueueConfig, WhenNoAgents,
};

const AGENTS: usize = 6;
const CALLS: u8 = 12;

#[derive(Debug, Clone)]
enum Op {
    Call {
        call: u8,
        queue: u8,
        prio: i8,
    },
    Leave(u8),
    Callback(u8),
    Voicemail(u8),
    Restore(u8, u8),
    Login(u8),
    Logout(u8),
    Pause(u8),
    Unpause(u8),
    Ready(u8),
    Reach(u8, bool),
    Answer(u8),
    Miss(u8, u8),
    End(u8, bool),
    Transfer(u8),
    Advance(u16),
    /// A reload with one of [`configs`]'s variants.
    Reconfigure(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CALLS, 0u8..3, -1i8..3).prop_map(|(call, queue, prio)| Op::Call { call, queue, prio }),
        1 => (0..CALLS).prop_map(Op::Leave),
        1 => (0..CALLS).prop_map(Op::Callback),
        1 => (0..CALLS).prop_map(Op::Voicemail),
        1 => (0..CALLS, 0u8..3).prop_map(|(c, q)| Op::Restore(c, q)),
        2 => (0..=AGENTS as u8).prop_map(Op::Login),
        1 => (0..=AGENTS as u8).prop_map(Op::Logout),
        1 => (0..=AGENTS as u8).prop_map(Op::Pause),
        1 => (0..=AGENTS as u8).prop_map(Op::Unpause),
        1 => (0..=AGENTS as u8).prop_map(Op::Ready),
        1 => (0..=AGENTS as u8, any::<bool>()).prop_map(|(a, r)| Op::Reach(a, r)),
        4 => (0..=AGENTS as u8).prop_map(Op::Answer),
        3 => (0..=AGENTS as u8, 0u8..4).prop_map(|(a, k)| Op::Miss(a, k)),
        3 => (0..=AGENTS as u8, any::<bool>()).prop_map(|(a, b)| Op::End(a, b)),
        1 => (0..=AGENTS as u8).prop_map(Op::Transfer),
        3 => (0u16..40).prop_map(Op::Advance),
        1 => (0u8..4).prop_map(Op::Reconfigure),
    ]
}

fn config() -> AcdConfig {
    let mut q0 = QueueConfig::new("q0");
    q0.max_len = 5;
    q0.max_wait_secs = 60;
    let mut q1 = QueueConfig::new("q1");
    q1.strategy = Routing::RingAll;
    q1.ring_timeout_secs = 10;
    q1.when_no_agents = WhenNoAgents::Refuse;
    let mut q2 = QueueConfig::new("q2");
    q2.strategy = Routing::RoundRobin;
    q2.skills.insert("law".into(), 2);
    q2.when_no_agents = WhenNoAgents::Leave;
    q2.max_wait_secs = 0;
    let agents = (0..AGENTS)
        .map(|i| {
            let queues: &[&str] = match i % 3 {
                0 => &["q0", "q1"],
                1 => &["q1", "q2"],
                _ => &["q0", "q1", "q2"],
            };
            let mut cfg = AgentConfig::new(&format!("a{i}"), queues);
            cfg.skills.insert("law".into(), (i % 4) as u8 + 1);
            cfg.wrap_up_secs = [0, 5, 20][i % 3];
            cfg
        })
        .collect();
    AcdConfig {
        settings: AcdSettings {
            max_missed_offers: 2,
            ring_all_max: 3,
            max_callbacks_per_queue: 3,
            ..AcdSettings::default()
        },
        queues: vec![q0, q1, q2],
        agents,
    }
}

/// The configs a reload switches between: 0 is [`config`]; 1 removes
/// a4 and a5, adds a6 and changes q0 and q1; 2 removes q2 (and a1's
/// skill); 3 puts every agent in q0 alone, leaving q1 unstaffed under a
/// `leave` rule.
fn configs(variant: u8) -> AcdConfig {
    let mut cfg = config();
    match variant {
        1 => {
            cfg.agents.retain(|a| a.id != "a4" && a.id != "a5");
            let mut a6 = AgentConfig::new("a6", &["q0", "q2"]);
            a6.skills.insert("law".into(), 3);
            cfg.agents.push(a6);
            cfg.queues[0].max_len = 2;
            cfg.queues[1].strategy = Routing::LongestIdle;
        }
        2 => {
            cfg.queues.retain(|q| q.name != "q2");
            for a in &mut cfg.agents {
                a.queues.retain(|q| q != "q2");
            }
            cfg.agents[1].skills.insert("law".into(), 1);
        }
        3 => {
            for a in &mut cfg.agents {
                a.queues = vec!["q0".into()];
            }
            cfg.queues[1].when_no_agents = WhenNoAgents::Leave;
        }
        _ => {}
    }
    cfg
}

/// What the daemon knows, from the commands.
#[derive(Default)]
struct Model {
    ringing: HashMap<AgentId, CallId>,
    talking: HashMap<AgentId, CallId>,
    /// (call, agent) offered (events), until connected or the call is gone.
    offered: HashSet<(CallId, AgentId)>,
}

impl Model {
    fn take(&mut self, acd: &mut Acd) -> Result<(), String> {
        let cmds: Vec<AcdCommand> = acd.drain_commands().collect();
        for cmd in cmds {
            match cmd {
                AcdCommand::Offer { call, agent, .. }
                | AcdCommand::PlaceCallback { call, agent, .. } => {
                    if self.ringing.contains_key(&agent) || self.talking.contains_key(&agent) {
                        return Err(format!("{call} offered to busy agent {agent}"));
                    }
                    self.ringing.insert(agent, call);
                }
                AcdCommand::CancelOffer { call, agent } => {
                    if self.ringing.remove(&agent) != Some(call.clone()) {
                        return Err(format!("cancel of {call} to {agent}: not ringing"));
                    }
                }
                AcdCommand::Connected { call, agent } => {
                    if self.ringing.remove(&agent) != Some(call.clone()) {
                        return Err(format!("{call} connected to {agent}, who was not ringing"));
                    }
                    if self.talking.values().any(|c| *c == call) {
                        return Err(format!("{call} connected to two agents"));
                    }
                    self.talking.insert(agent, call);
                }
                AcdCommand::Event(e) => match e.kind {
                    EventKind::Offer => {
                        self.offered.insert((e.call.unwrap(), e.agent.unwrap()));
                    }
                    EventKind::Connect => {
                        let (call, agent) = (e.call.unwrap(), e.agent.unwrap());
                        if !self.offered.contains(&(call.clone(), agent.clone())) {
                            return Err(format!("connect {call} to {agent} with no offer before"));
                        }
                        self.offered.retain(|(c, _)| *c != call);
                    }
                    _ => {}
                },
                AcdCommand::Announce { .. } | AcdCommand::QueueTimeout { .. } => {}
            }
        }
        // Ring-all losers are cancelled in the same step as the connect.
        for call in self.talking.values() {
            if self.ringing.values().any(|c| c == call) {
                return Err(format!("{call} connected while another agent still rings"));
            }
        }
        for (i, ag) in acd.agents().iter().enumerate() {
            let id = ag.id();
            let ok = match ag.state() {
                AgentState::Ringing { call, .. } => self.ringing.get(id) == Some(call),
                AgentState::Talking { call, .. } => self.talking.get(id) == Some(call),
                _ => !self.ringing.contains_key(id) && !self.talking.contains_key(id),
            };
            if !ok {
                return Err(format!(
                    "agent {i} is {:?}; the daemon thinks otherwise",
                    ag.state()
                ));
            }
        }
        acd.check_invariants()
    }
}

fn run(ops: Vec<Op>) -> Result<(), String> {
    let mut acd = Acd::new(&config()).unwrap();
    let t0 = Instant::now();
    let mut now = t0;
    let mut m = Model::default();
    let agent = |i: u8| a(&format!("a{i}"));
    let call = |i: u8| c(&format!("c{i}"));
    for op in ops {
        match op {
            Op::Call {
                call: n,
                queue,
                prio,
            } => {
                let _ = acd.add_call(now, call(n), &format!("q{queue}"), prio.into());
            }
            Op::Leave(n) => {
                let _ = acd.caller_left(now, &call(n));
            }
            Op::Callback(n) => {
                let _ = acd.request_callback(now, &call(n), "12345678");
            }
            Op::Voicemail(n) => {
                let _ = acd.breakout_voicemail(now, &call(n));
            }
            Op::Restore(n, queue) => {
                let q = format!("q{queue}");
                let _ = acd.add_callback(now, call(n), &q, 0, "12345678", t0);
            }
            Op::Login(i) => {
                let _ = acd.agent_login(now, &agent(i));
            }
            Op::Logout(i) => {
                let _ = acd.agent_logout(now, &agent(i));
            }
            Op::Pause(i) => {
                let _ = acd.agent_pause(now, &agent(i), "lunch");
            }
            Op::Unpause(i) => {
                let _ = acd.agent_unpause(now, &agent(i));
            }
            Op::Ready(i) => {
                let _ = acd.agent_ready(now, &agent(i));
            }
            Op::Reach(i, r) => {
                let _ = acd.agent_reachable(now, &agent(i), r);
            }
            Op::Answer(i) | Op::Miss(i, _) => {
                let id = agent(i);
                if let Some(call) = m.ringing.get(&id).cloned() {
                    let r = match op {
                        Op::Answer(_) => OfferResult::Answered,
                        Op::Miss(_, 0) => OfferResult::NoAnswer,
                        Op::Miss(_, 1) => OfferResult::Busy,
                        Op::Miss(_, 2) => OfferResult::Declined,
                        _ => OfferResult::Failed,
                    };
                    acd.offer_result(now, &call, &id, r)
                        .map_err(|e| format!("result of a live offer: {e}"))?;
                    if r != OfferResult::Answered {
                        m.ringing.remove(&id);
                    }
                } else if let Some(call) = m.talking.get(&id) {
                    // A stale answer is refused, changes nothing.
                    if acd
                        .offer_result(now, call, &id, OfferResult::Answered)
                        .is_ok()
                    {
                        return Err("an answer accepted twice".into());
                    }
                }
            }
            Op::End(i, _) | Op::Transfer(i) => {
                let id = agent(i);
                if let Some(call) = m.talking.remove(&id) {
                    let r = match op {
                        Op::End(_, true) => acd.call_ended(now, &call, EndedBy::Agent),
                        Op::End(_, false) => acd.call_ended(now, &call, EndedBy::Caller),
                        _ => acd.transfer(now, &call, "ext:2001"),
                    };
                    r.map_err(|e| format!("end of a connected call: {e}"))?;
                }
            }
            Op::Reconfigure(v) => {
                acd.reconfigure(now, &configs(v))
                    .map_err(|e| format!("reconfigure to variant {v}: {e}"))?;
            }
            Op::Advance(s) => {
                now += Duration::from_secs(s.into());
                while acd.deadline().is_some_and(|d| d <= now) {
                    acd.on_timer(now);
                    if acd.deadline().is_some_and(|d| d <= now) {
                        return Err("on_timer left a timer due".into());
                    }
                    m.take(&mut acd)?;
                }
            }
        }
        m.take(&mut acd)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn random_operations_keep_the_invariants(ops in proptest::collection::vec(op(), 1..150)) {
        if let Err(e) = run(ops) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Sim {
    Arrive(u32),
    Result(CallId, AgentId, u64, u8),
    End(CallId),
    Callback(CallId),
    Unpause(AgentId),
}

/// 200 agents in four queues (each agent in two), one caller every 250 ms
/// until 10,000 have called; 85 % of offers answered after 1–5 s, 10 %
/// refused, 5 % left to ring out; talk 20–70 s, wrap-up 10 s; 1 % of
/// callers ask for a callback after 5 s; a supervisor unpauses agents
/// paused for missed offers a minute later. Every call must be served.
#[test]
fn two_hundred_agents_serve_ten_thousand_calls() {
    const N_AGENTS: usize = 200;
    const N_CALLS: u32 = 10_000;
    let strategies = [
        Routing::LongestIdle,
        Routing::RoundRobin,
        Routing::FewestCalls,
        Routing::SkillLevel,
    ];
    let queues = strategies
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut q = QueueConfig::new(&format!("q{i}"));
            q.strategy = *s;
            q.max_len = N_CALLS as usize;
            q.max_wait_secs = 0;
            q.announce_every_secs = 60;
            q.skills.insert("general".into(), 1);
            q
        })
        .collect();
    let agents = (0..N_AGENTS)
        .map(|i| {
            let q1 = format!("q{}", i % 4);
            let q2 = format!("q{}", (i + 1) % 4);
            let mut cfg = AgentConfig::new(&format!("{}", 1000 + i), &[&q1, &q2]);
            cfg.skills.insert("general".into(), (i % 5) as u8 + 1);
            cfg.wrap_up_secs = 10;
            cfg
        })
        .collect();
    let mut acd = Acd::new(&AcdConfig {
        settings: AcdSettings::default(),
        queues,
        agents,
    })
    .unwrap();
    let started = std::time::Instant::now();
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(12345);
    let mut sim: BinaryHeap<Reverse<(Instant, u64, Sim)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |sim: &mut BinaryHeap<_>, at: Instant, ev: Sim| {
        seq += 1;
        sim.push(Reverse((at, seq, ev)));
    };
    for id in acd
        .agents()
        .iter()
        .map(|a| a.id().clone())
        .collect::<Vec<_>>()
    {
        acd.agent_login(t0, &id).unwrap();
    }
    push(&mut sim, t0, Sim::Arrive(0));
    // Outstanding offers: (call, agent) → generation, so a result planned
    // for an offer the ACD has since cancelled is dropped.
    let mut offers: HashMap<(CallId, AgentId), u64> = HashMap::new();
    let (mut served, mut completed, mut offered, mut steps) = (0u32, 0u32, 0u32, 0u64);
    let mut now = t0;
    loop {
        let next_sim = sim.peek().map(|Reverse((t, _, _))| *t);
        let next_acd = acd.deadline();
        let Some(at) = [next_sim, next_acd].into_iter().flatten().min() else {
            break;
        };
        now = at;
        steps += 1;
        if next_acd.is_some_and(|d| d <= at) {
            acd.on_timer(now);
        } else {
            let Reverse((_, _, ev)) = sim.pop().unwrap();
            match ev {
                Sim::Arrive(n) => {
                    let call = c(&format!("call-{n}"));
                    let q = format!("q{}", n % 4);
                    acd.add_call(now, call.clone(), &q, i32::from(n % 50 == 0))
                        .unwrap();
                    if rng.random_bool(0.01) {
                        push(&mut sim, now + Duration::from_secs(5), Sim::Callback(call));
                    }
                    if n + 1 < N_CALLS {
                        push(
                            &mut sim,
                            now + Duration::from_millis(250),
                            Sim::Arrive(n + 1),
                        );
                    }
                }
                Sim::Result(call, agent, generation, r) => {
                    if offers.get(&(call.clone(), agent.clone())) == Some(&generation) {
                        offers.remove(&(call.clone(), agent.clone()));
                        let r = if r == 0 {
                            OfferResult::Answered
                        } else {
                            OfferResult::Declined
                        };
                        acd.offer_result(now, &call, &agent, r).unwrap();
                    }
                }
                Sim::End(call) => acd.call_ended(now, &call, EndedBy::Caller).unwrap(),
                Sim::Callback(call) => {
                    if acd
                        .entry(&call)
                        .is_some_and(|e| matches!(e.state(), EntryState::Waiting { .. }))
                    {
                        acd.request_callback(now, &call, "13800138000").unwrap();
                        acd.caller_left(now, &call).unwrap();
                    }
                }
                Sim::Unpause(agent) => {
                    let _ = acd.agent_unpause(now, &agent);
                }
            }
        }
        let cmds: Vec<AcdCommand> = acd.drain_commands().collect();
        for cmd in cmds {
            match cmd {
                AcdCommand::Offer { call, agent, .. }
                | AcdCommand::PlaceCallback { call, agent, .. } => {
                    offered += 1;
                    let generation = u64::from(offered);
                    offers.insert((call.clone(), agent.clone()), generation);
                    let roll = rng.random_range(0..100);
                    if roll < 85 {
                        let t = now + Duration::from_secs(rng.random_range(1..=5));
                        push(&mut sim, t, Sim::Result(call, agent, generation, 0));
                    } else if roll < 95 {
                        push(
                            &mut sim,
                            now + Duration::from_secs(3),
                            Sim::Result(call, agent, generation, 1),
                        );
                    }
                }
                AcdCommand::CancelOffer { call, agent } => {
                    offers.remove(&(call, agent));
                }
                AcdCommand::Connected { call, .. } => {
                    served += 1;
                    let t = now + Duration::from_secs(rng.random_range(20..=70));
                    push(&mut sim, t, Sim::End(call));
                }
                AcdCommand::Event(e) if e.kind == EventKind::Complete => completed += 1,
                AcdCommand::Event(e)
                    if e.kind == EventKind::Pause && e.reason.as_deref() == Some("no_answer") =>
                {
                    push(
                        &mut sim,
                        now + Duration::from_secs(60),
                        Sim::Unpause(e.agent.unwrap()),
                    );
                }
                AcdCommand::QueueTimeout { call, .. } => panic!("{call} timed out"),
                _ => {}
            }
        }
        if steps % 2000 == 0 {
            acd.check_invariants().unwrap();
        }
    }
    acd.check_invariants().unwrap();
    assert_eq!(served, N_CALLS);
    assert_eq!(completed, N_CALLS);
    assert!(acd
        .queues()
        .iter()
        .all(|q| q.live() == 0 && q.callbacks() == 0));
    assert!(acd
        .agents()
        .iter()
        .all(|a| matches!(a.state(), AgentState::Ready { .. })));
    eprintln!(
        "{N_CALLS} calls, {offered} offers, {steps} steps, {:?} simulated, {:?} wall (debug build)",
        now - t0,
        started.elapsed()
    );
}
