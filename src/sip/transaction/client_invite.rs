//! The INVITE client transaction (RFC 3261 §17.1.1, as updated by RFC 6026
//! §7.2 and §8.4).
//!
//! ```text
//!         INVITE sent, Timer A (UDP), Timer B
//!                    |
//!              +-----------+ Timer A: resend
//!              |  Calling  |----------------------------+ Timer B: Timeout
//!              +-----------+                            |
//!            1xx |      | 2xx          300-699          |
//!                v      |              (ACK, to TU)     |
//!         +------------+|          +-----------+        |
//!    1xx  | Proceeding |+--------->| Completed | resend ACK on
//!         +------------+  300-699  +-----------+ final retransmissions
//!            | 2xx      \               | Timer D       |
//!            v           \ Timer C      v               |
//!         +----------+     guard /   +------------+     |
//!    2xx  | Accepted |     CANCEL    | Terminated |<----+
//!  to TU  +----------+     timeout-->+------------+
//!               | Timer M               ^
//!               +-----------------------+
//! ```
//!
//! # The ACK for a non-2xx final response
//!
//! The machine asks for it (`Action::SendAck`); the shell builds it from the
//! original INVITE as §17.1.1.3 prescribes and sends it to the same peer:
//! Request-URI, Call-ID, From (with tag) and CSeq *number* of the INVITE,
//! CSeq method `ACK`; the To header of the *response* (it carries the UAS
//! tag); exactly one Via, equal to the top Via of the INVITE (same branch,
//! so it matches the server transaction); the INVITE's Route headers, if
//! any; Max-Forwards; no body. The same ACK is sent again for every
//! retransmission of the final response. The ACK for a 2xx is not part of
//! the transaction: the TU sends it within the dialog (§13.2.2.4) with a new
//! branch.

use super::timers::{after, earliest, Retransmit, TimerConfig};
use super::{Action, Event, TransactionError};
use bytes::Bytes;
use tokio::time::Instant;

/// One INVITE client transaction. `request` holds the serialized INVITE for
/// Timer A retransmissions.
#[derive(Debug, Clone)]
pub struct ClientInvite {
    cfg: TimerConfig,
    reliable: bool,
    request: Bytes,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    /// §17.1.1.2: "The initial state, 'calling', MUST be entered when the TU
    /// initiates a new client transaction with an INVITE request." Timer A
    /// only for unreliable transports; Timer B always. `cancel_at`: 64*T1
    /// after the TU sent a CANCEL (§9.1).
    Calling {
        a: Option<Retransmit>,
        b_at: Instant,
        cancel_at: Option<Instant>,
    },
    /// §17.1.1.2: a provisional response arrived; no retransmissions. No RFC
    /// timer bounds this state at a UAC; the Timer C guard (§16.6 item 11,
    /// reset by each provisional) and the CANCEL timeout do.
    Proceeding {
        guard_at: Instant,
        cancel_at: Option<Instant>,
    },
    /// §17.1.1.2: a 300-699 arrived and was ACKed; Timer D absorbs its
    /// retransmissions.
    Completed {
        d_at: Instant,
    },
    /// RFC 6026 §7.2: a 2xx arrived; Timer M keeps the transaction so that
    /// 2xx retransmissions and forked 2xx reach the TU.
    Accepted {
        m_at: Instant,
    },
    Terminated,
}

impl ClientInvite {
    /// Starts the transaction: the INVITE is sent at once (§17.1.1.2: "The
    /// client transaction MUST ... pass the request to the transport layer").
    pub fn new(
        now: Instant,
        reliable: bool,
        cfg: TimerConfig,
        request: Bytes,
    ) -> (Self, Vec<Action>) {
        let txn = ClientInvite {
            cfg,
            reliable,
            state: State::Calling {
                // §17.1.1.2: "If an unreliable transport is being used, the
                // client transaction MUST start timer A with a value of T1."
                // Timer A is not capped by T2.
                a: cfg
                    .timer_a(reliable)
                    .map(|t1| Retransmit::start(now, t1, None)),
                // "For any transport, the client transaction MUST start timer
                // B with a value of 64*T1 seconds."
                b_at: after(now, cfg.timer_b()),
                cancel_at: None,
            },
            request: request.clone(),
        };
        (txn, vec![Action::Send(request)])
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Calling { .. } => "Calling",
            State::Proceeding { .. } => "Proceeding",
            State::Completed { .. } => "Completed",
            State::Accepted { .. } => "Accepted",
            State::Terminated => "Terminated",
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Calling { a, b_at, cancel_at } => {
                earliest([a.map(|a| a.at), Some(*b_at), *cancel_at])
            }
            State::Proceeding {
                guard_at,
                cancel_at,
            } => earliest([Some(*guard_at), *cancel_at]),
            State::Completed { d_at } => Some(*d_at),
            State::Accepted { m_at } => Some(*m_at),
            State::Terminated => None,
        }
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Result<Vec<Action>, TransactionError> {
        match event {
            Event::Timer => Ok(self.on_timer(now)),
            Event::Response { status } => Ok(self.on_response(now, status)),
            Event::CancelSent => Ok(self.on_cancel_sent(now)),
            Event::TransportError => Ok(self.on_transport_error()),
            Event::Request | Event::Ack | Event::Respond { .. } => {
                Err(TransactionError::NotApplicable {
                    state: self.state_name(),
                })
            }
        }
    }

    fn on_response(&mut self, now: Instant, status: u16) -> Vec<Action> {
        let class = status / 100;
        match &mut self.state {
            // §17.1.1.2: "If the client transaction receives a provisional
            // response while in the 'Calling' state, it transitions to the
            // 'Proceeding' state. In the 'Proceeding' state, the client
            // transaction SHOULD NOT retransmit the request any longer.
            // Furthermore, the provisional response MUST be passed to the TU.
            // Any further provisional responses MUST be passed up to the TU
            // while in the 'Proceeding' state."
            State::Calling { cancel_at, .. } | State::Proceeding { cancel_at, .. }
                if class == 1 =>
            {
                self.state = State::Proceeding {
                    guard_at: after(now, self.cfg.c),
                    cancel_at: *cancel_at,
                };
                vec![Action::PassToTu]
            }
            // RFC 6026 §7.2 (replacing §17.1.1.2's move to Terminated): "If a
            // 2xx response is received while the client INVITE state machine
            // is in the 'Calling' or 'Proceeding' states, it MUST transition
            // to the 'Accepted' state, pass the 2xx response to the TU, and
            // set Timer M to 64*T1."
            State::Calling { .. } | State::Proceeding { .. } if class == 2 => {
                self.state = State::Accepted {
                    m_at: after(now, self.cfg.timer_m()),
                };
                vec![Action::PassToTu]
            }
            // §17.1.1.2: "When in either the 'Calling' or 'Proceeding'
            // states, reception of a response with status code from 300-699
            // MUST cause the client transaction to transition to 'Completed'.
            // The client transaction MUST pass the received response up to
            // the TU, and the client transaction MUST generate an ACK request
            // ... The client transaction SHOULD start timer D when it enters
            // the 'Completed' state, with a value of at least 32 seconds for
            // unreliable transports, and a value of zero seconds for reliable
            // transports."
            State::Calling { .. } | State::Proceeding { .. } if (3..=6).contains(&class) => {
                self.state = State::Completed {
                    d_at: after(now, self.cfg.timer_d(self.reliable)),
                };
                vec![Action::PassToTu, Action::SendAck]
            }
            // §17.1.1.2: "Any retransmissions of the final response that are
            // received while in the 'Completed' state MUST cause the ACK to be
            // re-passed to the transport layer for retransmission, but the
            // newly received response MUST NOT be passed up to the TU."
            State::Completed { .. } if (3..=6).contains(&class) => vec![Action::SendAck],
            // RFC 6026 §7.2: "Any 2xx responses that match this client
            // transaction and that are received while in the 'Accepted' state
            // MUST be passed up to the TU." (Retransmissions and forks; the
            // TU ACKs each.)
            State::Accepted { .. } if class == 2 => vec![Action::PassToTu],
            // Anything else (a late 1xx, a non-2xx after a 2xx, a status
            // outside 100-699) is absorbed.
            _ => vec![],
        }
    }

    fn on_cancel_sent(&mut self, now: Instant) -> Vec<Action> {
        // §9.1: "If no final response is received for the original request
        // in 64*T1 seconds (T1 is defined in Section 17.1.1.1), the client
        // SHOULD then consider the original transaction cancelled and SHOULD
        // destroy the client transaction handling the original request."
        let limit = after(now, self.cfg.timer_b());
        if let State::Calling { cancel_at, .. } | State::Proceeding { cancel_at, .. } =
            &mut self.state
        {
            *cancel_at = earliest([*cancel_at, Some(limit)]);
        }
        vec![]
    }

    fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        match &mut self.state {
            State::Calling { a, b_at, cancel_at } => {
                if *b_at <= now || cancel_at.is_some_and(|t| t <= now) {
                    // §17.1.1.2: "If the client transaction is still in the
                    // 'Calling' state when timer B fires, the client
                    // transaction SHOULD inform the TU that a timeout has
                    // occurred. The client transaction MUST NOT generate an
                    // ACK." (The TU treats it as a 408.)
                    self.state = State::Terminated;
                    vec![Action::Timeout, Action::Terminated]
                } else if let Some(a) = a.as_mut().filter(|a| a.is_due(now)) {
                    // §17.1.1.2: "When timer A fires, the client transaction
                    // MUST retransmit the request by passing it to the
                    // transport layer, and MUST reset the timer with a value
                    // of 2*T1."
                    a.fired(now);
                    vec![Action::Send(self.request.clone())]
                } else {
                    vec![]
                }
            }
            State::Proceeding {
                guard_at,
                cancel_at,
            } => {
                if *guard_at <= now || cancel_at.is_some_and(|t| t <= now) {
                    self.state = State::Terminated;
                    vec![Action::Timeout, Action::Terminated]
                } else {
                    vec![]
                }
            }
            // §17.1.1.2: "If timer D fires while the client transaction is in
            // the 'Completed' state, the client transaction MUST move to the
            // terminated state."
            // RFC 6026 §7.2: "If Timer M fires while the client transaction
            // is in the 'Accepted' state, the client transaction MUST move to
            // the 'Terminated' state."
            State::Completed { d_at: at } | State::Accepted { m_at: at } if *at <= now => {
                self.state = State::Terminated;
                vec![Action::Terminated]
            }
            _ => vec![],
        }
    }

    fn on_transport_error(&mut self) -> Vec<Action> {
        // §17.1.1.2: "If at any time a transport error is received, the
        // client transaction ... MUST inform the TU that a transport failure
        // has occurred, and MUST transition directly to the 'Terminated'
        // state."
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

    fn invite() -> Bytes {
        Bytes::from_static(b"INVITE")
    }

    fn start(t0: Instant, reliable: bool) -> ClientInvite {
        let (txn, actions) = ClientInvite::new(t0, reliable, TimerConfig::default(), invite());
        assert_eq!(actions, vec![Action::Send(invite())]);
        txn
    }

    fn resp(status: u16) -> Event {
        Event::Response { status }
    }

    fn run_timers(txn: &mut ClientInvite, t0: Instant) -> Vec<(Duration, Action)> {
        let mut out = vec![];
        while let Some(d) = txn.deadline() {
            for a in txn.handle(d, Event::Timer).unwrap() {
                out.push((d - t0, a));
            }
        }
        out
    }

    #[test]
    fn timer_a_doubles_without_cap_until_timer_b() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        let out = run_timers(&mut txn, t0);
        let sends: Vec<Duration> = out
            .iter()
            .filter(|(_, a)| *a == Action::Send(invite()))
            .map(|(t, _)| *t)
            .collect();
        // §17.1.1.2: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (intervals 500 ms
        // doubling, no T2 cap), then Timer B at 32 s.
        let expect: Vec<Duration> = [500, 1500, 3500, 7500, 15500, 31500]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(sends, expect);
        assert_eq!(
            out[out.len() - 2..],
            [
                (ms(32_000), Action::Timeout),
                (ms(32_000), Action::Terminated)
            ]
        );
    }

    #[test]
    fn no_retransmissions_over_tcp() {
        let t0 = Instant::now();
        let mut txn = start(t0, true);
        assert_eq!(
            run_timers(&mut txn, t0),
            vec![
                (ms(32_000), Action::Timeout),
                (ms(32_000), Action::Terminated)
            ]
        );
    }

    #[test]
    fn provisional_stops_retransmissions() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        assert_eq!(
            txn.handle(t0 + ms(100), resp(100)).unwrap(),
            vec![Action::PassToTu]
        );
        assert_eq!(txn.state_name(), "Proceeding");
        assert_eq!(
            txn.handle(t0 + ms(200), resp(180)).unwrap(),
            vec![Action::PassToTu]
        );
        // Only the Timer C guard remains.
        assert_eq!(
            txn.deadline(),
            Some(t0 + ms(200) + TimerConfig::default().c)
        );
    }

    #[test]
    fn non_2xx_final_is_acked_and_retransmissions_reacked() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        txn.handle(t0, resp(180)).unwrap();
        assert_eq!(
            txn.handle(t0 + ms(100), resp(486)).unwrap(),
            vec![Action::PassToTu, Action::SendAck]
        );
        assert_eq!(txn.state_name(), "Completed");
        assert_eq!(
            txn.handle(t0 + ms(600), resp(486)).unwrap(),
            vec![Action::SendAck]
        );
        assert_eq!(txn.handle(t0 + ms(700), resp(180)).unwrap(), vec![]);
        assert_eq!(txn.deadline(), Some(t0 + ms(32_100)));
        assert_eq!(
            txn.handle(t0 + ms(32_100), Event::Timer).unwrap(),
            vec![Action::Terminated]
        );
    }

    #[test]
    fn final_in_calling_goes_to_completed_and_timer_d_is_zero_over_tcp() {
        let t0 = Instant::now();
        let mut txn = start(t0, true);
        assert_eq!(
            txn.handle(t0 + ms(100), resp(503)).unwrap(),
            vec![Action::PassToTu, Action::SendAck]
        );
        assert_eq!(txn.deadline(), Some(t0 + ms(100)));
    }

    #[test]
    fn every_2xx_reaches_the_tu_until_timer_m() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        assert_eq!(
            txn.handle(t0 + ms(50), resp(200)).unwrap(),
            vec![Action::PassToTu]
        );
        assert_eq!(txn.state_name(), "Accepted");
        assert_eq!(
            txn.handle(t0 + ms(550), resp(200)).unwrap(),
            vec![Action::PassToTu]
        );
        assert_eq!(txn.handle(t0 + ms(600), resp(486)).unwrap(), vec![]);
        assert_eq!(txn.handle(t0 + ms(600), resp(180)).unwrap(), vec![]);
        assert_eq!(
            run_timers(&mut txn, t0),
            vec![(ms(32_050), Action::Terminated)]
        );
    }

    #[test]
    fn cancel_bounds_proceeding_to_64_t1() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        txn.handle(t0, resp(180)).unwrap();
        txn.handle(t0 + ms(10_000), Event::CancelSent).unwrap();
        assert_eq!(txn.deadline(), Some(t0 + ms(42_000)));
        // A later 180 does not lift the CANCEL limit.
        txn.handle(t0 + ms(20_000), resp(180)).unwrap();
        assert_eq!(
            run_timers(&mut txn, t0),
            vec![
                (ms(42_000), Action::Timeout),
                (ms(42_000), Action::Terminated)
            ]
        );
    }

    #[test]
    fn odd_status_and_server_events_are_handled() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        assert_eq!(txn.handle(t0, resp(42)).unwrap(), vec![]);
        assert_eq!(txn.state_name(), "Calling");
        assert!(txn.handle(t0, Event::Ack).is_err());
        assert_eq!(
            txn.handle(t0, Event::TransportError).unwrap(),
            vec![Action::TransportError, Action::Terminated]
        );
        assert_eq!(txn.deadline(), None);
    }
}
