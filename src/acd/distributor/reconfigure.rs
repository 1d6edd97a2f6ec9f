//! [`Acd::reconfigure`]: new agents and queues for a running distributor
//! (a SIGHUP reload), with no call dropped and no agent's state lost.
//!
//! # What a reload does
//! - **An agent kept** (same id) takes its new name, extension, skills,
//!   queues and wrap-up; its state (ready, paused with its reason,
//!   ringing, talking, wrap-up), misses and calls today stay. A wrap-up
//!   under way keeps its end.
//! - **An agent added** starts logged out (the daemon then reports its
//!   softphone's registration, which logs it in under
//!   `login_on_register`).
//! - **An agent removed** is logged out: at once if ready or paused, with
//!   its ringing offer withdrawn (the caller is offered elsewhere), or after
//!   its call and wrap-up. It leaves every queue at once and is no longer
//!   found by id (`UnknownAgent`); its seat is kept, hidden, while its call
//!   runs, and comes back if a later reload puts the id back.
//! - **A queue kept** (same name) takes its new settings; its callers keep
//!   their places and the timers they have (the new max wait and
//!   announcement interval apply to later callers).
//! - **A queue added** starts empty.
//! - **A queue removed** takes no new callers (`UnknownQueue`); the callers
//!   and callback requests in it are still served by the members it had,
//!   less the removed agents. If none is left, its callers leave it at once
//!   (`QueueTimeout` with `NoAgents`) for their flow's overflow.
//! - **Memberships** are computed again from the new config (skills at
//!   the queues' levels); a queue now unstaffed under a `leave` rule sends
//!   its callers away as a logout would. Then waiting callers are matched.

use std::collections::{BTreeSet, HashMap};

use tokio::time::Instant;
use tracing::{info, warn};

use super::{Acd, AcdConfig, AcdConfigErrors, Agent, AgentId, Queue, WhenNoAgents};
use crate::acd::{AgentConfig, QueueConfig};

/// What a reconfigure changed: agent ids and queue names (personal
/// queues not listed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    pub agents_added: Vec<String>,
    pub agents_removed: Vec<String>,
    pub agents_changed: Vec<String>,
    pub queues_added: Vec<String>,
    pub queues_removed: Vec<String>,
    pub queues_changed: Vec<String>,
    pub settings_changed: bool,
}

impl Acd {
    /// Applies a new agent and queue configuration (see the module
    /// header). A config that does not validate changes nothing.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        config: &AcdConfig,
    ) -> Result<Reconfigured, AcdConfigErrors> {
        config.validate()?;
        let config = config.with_personal_queues();
        let mut report = Reconfigured {
            settings_changed: config.settings != self.config.settings,
            ..Reconfigured::default()
        };
        let personal = |name: &str| name.contains(':');

        // Agents taken out: logged out (now, or after their call), then
        // hidden.
        let kept: BTreeSet<&str> = config.agents.iter().map(|a| a.id.as_str()).collect();
        for ai in 0..self.agents.len() {
            let id = self.agents[ai].id().clone();
            if self.agents[ai].removed() || kept.contains(id.0.as_str()) {
                continue;
            }
            if self.agents[ai].logged_in() {
                if let Err(e) = self.agent_logout(now, &id) {
                    warn!(agent = %id, error = %e, "removed agent not logged out");
                }
            }
            self.agents[ai].remove();
            info!(agent = %id, state = self.agents[ai].state().name(),
                "agent removed from the configuration");
            report.agents_removed.push(id.0);
        }
        // Agents kept, put back or added.
        let old: HashMap<&str, &AgentConfig> = self
            .config
            .agents
            .iter()
            .map(|a| (a.id.as_str(), a))
            .collect();
        for cfg in &config.agents {
            let id = AgentId(cfg.id.clone());
            match self.agent_ix.get(&id).copied() {
                Some(ai) if !self.agents[ai].removed() => {
                    if old.get(cfg.id.as_str()) != Some(&cfg) {
                        report.agents_changed.push(cfg.id.clone());
                    }
                    self.agents[ai].reconfigure(cfg);
                }
                Some(ai) => {
                    self.agents[ai].reconfigure(cfg);
                    report.agents_added.push(cfg.id.clone());
                }
                None => {
                    self.agent_ix.insert(id, self.agents.len());
                    self.agents.push(Agent::new(cfg));
                    report.agents_added.push(cfg.id.clone());
                }
            }
        }

        // Queues kept, put back or added; those taken out closed.
        let old: HashMap<&str, &QueueConfig> = self
            .config
            .queues
            .iter()
            .map(|q| (q.name.as_str(), q))
            .collect();
        for cfg in &config.queues {
            let listed = !personal(&cfg.name);
            match self.queue_ix.get(&cfg.name).copied() {
                Some(qi) => {
                    let was_closed = self.queues[qi].closed();
                    if listed && was_closed {
                        report.queues_added.push(cfg.name.clone());
                    } else if listed && old.get(cfg.name.as_str()) != Some(&cfg) {
                        report.queues_changed.push(cfg.name.clone());
                    }
                    self.queues[qi].reconfigure(cfg);
                }
                None => {
                    self.queue_ix.insert(cfg.name.clone(), self.queues.len());
                    self.queues.push(Queue::new(cfg, Vec::new()));
                    if listed {
                        report.queues_added.push(cfg.name.clone());
                    }
                }
            }
        }
        let names: BTreeSet<&str> = config.queues.iter().map(|q| q.name.as_str()).collect();
        for q in &mut self.queues {
            if !q.closed() && !names.contains(q.name()) {
                q.close();
                info!(queue = %q.name(), callers = q.live(), callbacks = q.callbacks(),
                    "queue removed from the configuration: no new callers");
                if !personal(q.name()) {
                    report.queues_removed.push(q.name().to_string());
                }
            }
        }

        self.settings = config.settings.clone();
        self.config = config;
        self.compute_members();
        for qi in 0..self.queues.len() {
            let q = &self.queues[qi];
            let unstaffed = q.staffed() == 0 && q.when_no_agents() == WhenNoAgents::Leave;
            if unstaffed || (q.closed() && q.members().is_empty()) {
                self.send_away(now, qi);
            }
        }
        self.dispatch(now);
        Ok(report)
    }

    /// Every queue's members and every agent's queues, from the applied
    /// config: the agents (in id order) that list an open queue and have
    /// its skills; a closed queue keeps the members it had, less the
    /// removed agents. The staffed counts follow.
    pub(super) fn compute_members(&mut self) {
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.queues.len()];
        let mut order: Vec<usize> = (0..self.agents.len())
            .filter(|&ai| !self.agents[ai].removed())
            .collect();
        order.sort_by(|&a, &b| self.agents[a].id().cmp(self.agents[b].id()));
        let configs: HashMap<&str, &AgentConfig> = self
            .config
            .agents
            .iter()
            .map(|a| (a.id.as_str(), a))
            .collect();
        for &ai in &order {
            let agent = &self.agents[ai];
            let Some(cfg) = configs.get(agent.id().0.as_str()) else {
                continue;
            };
            for name in &cfg.queues {
                let Some(&qi) = self.queue_ix.get(name) else {
                    continue;
                };
                if agent.has_skills(self.queues[qi].skills()) {
                    members[qi].push(ai);
                } else {
                    warn!(agent = %agent.id(), queue = %name,
                        "agent lacks the queue's skills: not offered its calls");
                }
            }
        }
        for (qi, q) in self.queues.iter().enumerate() {
            if q.closed() {
                members[qi] = q
                    .members()
                    .iter()
                    .copied()
                    .filter(|&ai| !self.agents[ai].removed())
                    .collect();
            }
        }
        let mut agent_queues = vec![Vec::new(); self.agents.len()];
        for (qi, m) in members.into_iter().enumerate() {
            for &ai in &m {
                agent_queues[ai].push(qi);
            }
            let staffed = m.iter().filter(|&&ai| self.agents[ai].staffed()).count();
            self.queues[qi].set_members(m, staffed);
        }
        self.agent_queues = agent_queues;
    }
}
