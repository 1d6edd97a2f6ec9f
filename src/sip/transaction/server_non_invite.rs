//! The non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! ```text
//!            request: pass to TU
//!                  |
//!            +----------+  1xx from TU   +------------+
//!            |  Trying  |--------------->| Proceeding |  1xx from TU
//!            +----------+                +------------+
//!   200-699 from TU |                          | 200-699 from TU
//!                   v                          v
//!                  +-----------+  <------------+
//!                  | Completed |  request: resend final
//!                  +-----------+
//!                        | Timer J
//!                        v
//!                  +------------+
//!                  | Terminated |
//!                  +------------+
//! ```

use super::timers::{after, TimerConfig};
use super::{Action, Event, TransactionError};
use bytes::Bytes;
use tokio::time::Instant;

/// One non-INVITE server transaction (BYE, OPTIONS, REGISTER, CANCEL, ...).
#[derive(Debug, Clone)]
pub struct ServerNonInvite {
    cfg: TimerConfig,
    reliable: bool,
    state: State,
    /// The most recent response passed to the transport.
    last: Option<Bytes>,
    /// No RFC timer bounds Trying/Proceeding: the TU must answer. The client
    /// gives up after Timer F (64*T1), so after as long here a response
    /// could no longer be used; the transaction is ended to bound memory.
    guard_at: Instant,
}

#[derive(Debug, Clone)]
enum State {
    /// §17.2.2: "The state machine is initialized in the 'Trying' state".
    Trying,
    /// §17.2.2: a provisional response was sent.
    Proceeding,
    /// §17.2.2: a final response was sent; Timer J absorbs retransmissions.
    Completed {
        j_at: Instant,
    },
    Terminated,
}

impl ServerNonInvite {
    /// Creates the transaction for a new request (§17.2.2); nothing is sent.
    pub fn new(now: Instant, reliable: bool, cfg: TimerConfig) -> (Self, Vec<Action>) {
        let txn = ServerNonInvite {
            cfg,
            reliable,
            state: State::Trying,
            last: None,
            guard_at: after(now, cfg.timer_f()),
        };
        (txn, vec![])
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Trying => "Trying",
            State::Proceeding => "Proceeding",
            State::Completed { .. } => "Completed",
            State::Terminated => "Terminated",
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Trying | State::Proceeding => Some(self.guard_at),
            State::Completed { j_at } => Some(*j_at),
            State::Terminated => None,
        }
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Result<Vec<Action>, TransactionError> {
        match event {
            Event::Timer => Ok(self.on_timer(now)),
            Event::Request => Ok(self.on_retransmission()),
            Event::Respond { status, bytes } => self.on_respond(now, status, bytes),
            Event::TransportError => Ok(self.on_transport_error()),
            // An ACK never matches a non-INVITE transaction (the key's method
            // differs); if one is fed here it is absorbed.
            Event::Ack => Ok(vec![]),
            Event::Response { .. } | Event::CancelSent => Err(TransactionError::NotApplicable {
                state: self.state_name(),
            }),
        }
    }

    fn on_retransmission(&mut self) -> Vec<Action> {
        match self.state {
            // §17.2.2: "Once in the 'Trying' state, any further request
            // retransmissions are discarded."
            State::Trying | State::Terminated => vec![],
            // §17.2.2: "If a retransmission of the request is received while
            // in the 'Proceeding' state, the most recently sent provisional
            // response MUST be passed to the transport layer", and in
            // Completed "the server MUST pass the final response to the
            // transport layer for retransmission".
            State::Proceeding | State::Completed { .. } => {
                self.last.iter().cloned().map(Action::Send).collect()
            }
        }
    }

    fn on_respond(
        &mut self,
        now: Instant,
        status: u16,
        bytes: Bytes,
    ) -> Result<Vec<Action>, TransactionError> {
        if !(100..=699).contains(&status) {
            return Err(TransactionError::InvalidStatus(status));
        }
        match self.state {
            State::Trying | State::Proceeding => {
                self.last = Some(bytes.clone());
                if status < 200 {
                    // §17.2.2: "While in the 'Trying' state, if the TU passes a
                    // provisional response to the server transaction, the
                    // server transaction MUST enter the 'Proceeding' state."
                    self.state = State::Proceeding;
                } else {
                    // §17.2.2: "If the TU passes a final response (status
                    // codes 200-699) to the server while in the 'Proceeding'
                    // state, the transaction MUST enter the 'Completed' state"
                    // and "When the server transaction enters the 'Completed'
                    // state, it MUST set Timer J to fire in 64*T1 seconds for
                    // unreliable transports, and zero seconds for reliable
                    // transports."
                    self.state = State::Completed {
                        j_at: after(now, self.cfg.timer_j(self.reliable)),
                    };
                }
                Ok(vec![Action::Send(bytes)])
            }
            // §17.2.2: "Any other final responses passed by the TU to the
            // server transaction MUST be discarded while in the 'Completed'
            // state." We tell the TU instead of discarding silently.
            State::Completed { .. } | State::Terminated => Err(TransactionError::WrongState {
                state: self.state_name(),
                status,
            }),
        }
    }

    fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        match self.state {
            State::Trying | State::Proceeding if self.guard_at <= now => {
                self.state = State::Terminated;
                vec![Action::Timeout, Action::Terminated]
            }
            // §17.2.2: "The server transaction remains in this state until
            // Timer J fires, at which point it MUST transition to the
            // 'Terminated' state."
            State::Completed { j_at } if j_at <= now => {
                self.state = State::Terminated;
                vec![Action::Terminated]
            }
            _ => vec![],
        }
    }

    fn on_transport_error(&mut self) -> Vec<Action> {
        // §17.2.2: "If a transport error occurs ... the server transaction
        // ... MUST transition to the 'Terminated' state", informing the TU.
        if self.is_terminated() {
            return vec![];
        }
        self.state = State::Terminated;
        vec![Action::TransportError, Action::Terminated]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn respond(status: u16, s: &'static str) -> Event {
        Event::Respond {
            status,
            bytes: Bytes::from_static(s.as_bytes()),
        }
    }

    fn send(s: &'static str) -> Action {
        Action::Send(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn trying_discards_retransmissions() {
        let t0 = Instant::now();
        let (mut txn, actions) = ServerNonInvite::new(t0, false, TimerConfig::default());
        assert!(actions.is_empty());
        assert_eq!(txn.state_name(), "Trying");
        assert_eq!(txn.handle(t0 + ms(500), Event::Request).unwrap(), vec![]);
    }

    #[test]
    fn proceeding_resends_last_provisional() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerNonInvite::new(t0, false, TimerConfig::default());
        assert_eq!(
            txn.handle(t0, respond(100, "100")).unwrap(),
            vec![send("100")]
        );
        assert_eq!(txn.state_name(), "Proceeding");
        assert_eq!(txn.handle(t0, Event::Request).unwrap(), vec![send("100")]);
        txn.handle(t0, respond(183, "183")).unwrap();
        assert_eq!(txn.handle(t0, Event::Request).unwrap(), vec![send("183")]);
    }

    #[test]
    fn completed_resends_final_until_timer_j_over_udp() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerNonInvite::new(t0, false, TimerConfig::default());
        assert_eq!(
            txn.handle(t0, respond(200, "200")).unwrap(),
            vec![send("200")]
        );
        assert_eq!(txn.state_name(), "Completed");
        assert_eq!(
            txn.handle(t0 + ms(1000), Event::Request).unwrap(),
            vec![send("200")]
        );
        assert_eq!(txn.deadline(), Some(t0 + ms(32_000)));
        assert_eq!(txn.handle(t0 + ms(31_999), Event::Timer).unwrap(), vec![]);
        assert_eq!(
            txn.handle(t0 + ms(32_000), Event::Timer).unwrap(),
            vec![Action::Terminated]
        );
        assert!(txn.is_terminated());
    }

    #[test]
    fn timer_j_is_zero_over_tcp() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerNonInvite::new(t0, true, TimerConfig::default());
        txn.handle(t0, respond(100, "100")).unwrap();
        txn.handle(t0 + ms(5), respond(481, "481")).unwrap();
        assert_eq!(txn.deadline(), Some(t0 + ms(5)));
        assert_eq!(
            txn.handle(t0 + ms(5), Event::Timer).unwrap(),
            vec![Action::Terminated]
        );
    }

    #[test]
    fn second_final_is_refused() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerNonInvite::new(t0, false, TimerConfig::default());
        txn.handle(t0, respond(200, "200")).unwrap();
        assert_eq!(
            txn.handle(t0, respond(500, "500")),
            Err(TransactionError::WrongState {
                state: "Completed",
                status: 500
            })
        );
        assert_eq!(
            txn.handle(t0, respond(1000, "x")),
            Err(TransactionError::InvalidStatus(1000))
        );
    }

    #[test]
    fn silent_tu_is_given_up_after_64_t1() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerNonInvite::new(t0, false, TimerConfig::default());
        assert_eq!(txn.deadline(), Some(t0 + ms(32_000)));
        assert_eq!(
            txn.handle(t0 + ms(32_000), Event::Timer).unwrap(),
            vec![Action::Timeout, Action::Terminated]
        );
    }

    #[test]
    fn transport_error_terminates() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerNonInvite::new(t0, false, TimerConfig::default());
        assert_eq!(
            txn.handle(t0, Event::TransportError).unwrap(),
            vec![Action::TransportError, Action::Terminated]
        );
        assert_eq!(txn.deadline(), None);
    }
}
