//! Feature codes agents dial from their softphones (authenticated with
//! digest by the endpoint): each changes the agent's state in the ACD and
//! is confirmed by a prompt, then the daemon hangs up.
//!
//! | code        | does                                  | confirmation       |
//! |-------------|---------------------------------------|--------------------|
//! | `*11`       | log in (ready)                        | `agent_logged_in`  |
//! | `*12`       | log out (after the call and wrap-up)  | `agent_logged_out` |
//! | `*13[NN]`   | pause, reason `break` or code `NN`    | `agent_paused`     |
//! | `*14`       | ready (unpause, end wrap-up early)    | `agent_ready`      |
//!
//! An extension that is no agent hears `agent_not_agent`; a change the
//! agent's state does not allow (e.g. logging out while logged out) hears
//! `agent_busy_state`; an unknown code `feature_invalid`. Pause reasons
//! `*13NN` map to `reason_NN` unless configured otherwise (documented in
//! the README); the agent desktop or HTTP API can give any reason code.
//!
//! The confirmation plays through a one-node flow built here, so the call
//! is answered, played and recorded like any other.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::acd::{AgentId, Effect};
use crate::call::acd_service::{AcdHandle, AgentOp};
use crate::ivr::flow::Flow;
use crate::ivr::nodes::hangup::HangupNode;
use crate::ivr::nodes::{Node, NodeKind};
use crate::lang::Lang;

/// What a dialed string asks for, if it is a feature code.
pub fn parse(dialed: &str) -> Option<Result<AgentOp, ()>> {
    let code = dialed.strip_prefix('*')?;
    Some(match code {
        "11" => Ok(AgentOp::Login),
        "12" => Ok(AgentOp::Logout),
        "13" => Ok(AgentOp::Pause("break".into())),
        "14" => Ok(AgentOp::Ready),
        c if c.len() > 2 && c.starts_with("13") && c[2..].bytes().all(|b| b.is_ascii_digit()) => {
            Ok(AgentOp::Pause(format!("reason_{}", &c[2..])))
        }
        _ => Err(()),
    })
}

/// Carries out the code for `extension`; returns the confirmation prompt
/// and the result label for the call record.
pub async fn apply(
    acd: &AcdHandle,
    extension: &str,
    op: Result<AgentOp, ()>,
) -> (&'static str, String) {
    let Ok(op) = op else {
        return ("feature_invalid", "feature_invalid".into());
    };
    let Some(agent) = acd.agent_for_extension(extension) else {
        return ("agent_not_agent", "not_agent".into());
    };
    let (prompt, label) = match &op {
        AgentOp::Login | AgentOp::Unpause => ("agent_logged_in", "login"),
        AgentOp::Logout => ("agent_logged_out", "logout"),
        AgentOp::Pause(_) => ("agent_paused", "pause"),
        AgentOp::Ready => ("agent_ready", "ready"),
    };
    match acd.agent(AgentId(agent.0.clone()), op.clone()).await {
        Ok(Effect::Now) | Ok(Effect::Unchanged) | Ok(Effect::AfterCall) => {
            (prompt, format!("agent_{label}"))
        }
        Err(e) => {
            tracing::info!(agent = %agent, error = %e, "feature code refused");
            ("agent_busy_state", format!("agent_{label}_refused"))
        }
    }
}

/// The flow of a softphone call to another agent's extension (a
/// consultation before an attended transfer, or an agent calling a
/// colleague): it waits in that agent's personal queue at a high priority;
/// if the agent cannot take it (not logged in, or no answer within the
/// personal queue's wait), `transfer_failed` and goodbye.
pub fn agent_call_flow(dialed: &str, agent: &AgentId) -> Arc<Flow> {
    use crate::ivr::nodes::queue::QueueNode;
    let mut nodes = BTreeMap::new();
    nodes.insert(
        "agent".to_string(),
        Node {
            id: "agent".into(),
            result: Some("agent_call".into()),
            kind: NodeKind::Queue(QueueNode {
                queue: crate::acd::personal_queue(&agent.0),
                priority: 100,
                next: "unavailable".into(),
                voicemail: None,
            }),
        },
    );
    nodes.insert(
        "unavailable".to_string(),
        Node {
            id: "unavailable".into(),
            result: Some("agent_unavailable".into()),
            kind: NodeKind::Hangup(HangupNode {
                prompts: vec!["transfer_failed".into()],
                reason: Some("agent_unavailable".into()),
            }),
        },
    );
    one_language_flow(dialed, "agent", nodes)
}

fn one_language_flow(dialed: &str, start: &str, nodes: BTreeMap<String, Node>) -> Arc<Flow> {
    Arc::new(Flow {
        name: format!("softphone {dialed}"),
        file: "(softphone calls)".into(),
        dialed: vec![dialed.to_string()],
        default: false,
        language: Lang::Zh,
        start: start.into(),
        nodes,
        calendars: BTreeMap::new(),
    })
}

/// A flow that plays `prompt` and hangs up with `result`.
pub fn confirmation_flow(dialed: &str, prompt: &str, result: &str) -> Arc<Flow> {
    let mut nodes = BTreeMap::new();
    nodes.insert(
        "confirm".to_string(),
        Node {
            id: "confirm".into(),
            result: Some(result.to_string()),
            kind: NodeKind::Hangup(HangupNode {
                prompts: vec![prompt.to_string()],
                reason: Some("feature_code".into()),
            }),
        },
    );
    one_language_flow(dialed, "confirm", nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(parse("*11"), Some(Ok(AgentOp::Login)));
        assert_eq!(parse("*12"), Some(Ok(AgentOp::Logout)));
        assert_eq!(parse("*13"), Some(Ok(AgentOp::Pause("break".into()))));
        assert_eq!(parse("*1302"), Some(Ok(AgentOp::Pause("reason_02".into()))));
        assert_eq!(parse("*14"), Some(Ok(AgentOp::Ready)));
        assert_eq!(parse("*99"), Some(Err(())));
        assert_eq!(parse("*13x"), Some(Err(())));
        assert_eq!(parse("12345"), None);
    }
}
