//! The INVITE server transaction (RFC 3261 §17.2.1, as updated by RFC 6026
//! §7.1 and §8), plus the UAS 2xx retransmission of RFC 3261 §13.3.1.4,
//! which this layer runs on the UAS core's behalf.
//!
//! ```text
//!            INVITE: ask for 100 Trying
//!                    |
//!   1xx from TU  +------------+  Timer C guard: Timeout
//!   ------------>| Proceeding |-------------------------------+
//!                +------------+                               |
//!     3xx-6xx from TU |      | 2xx from TU                    |
//!                     v      v                                |
//!           +-----------+  +----------+  2xx retransmit,      |
//!  Timer G  | Completed |  | Accepted |  ACK -> TU,           |
//!  resend   +-----------+  +----------+  no ACK in 64*T1:     |
//!   ACK |   | Timer H: Timeout    |      AckTimeout          |
//!       v   |                     | Timer L                   |
//! +-----------+                   |                           |
//! | Confirmed |--Timer I--+       |                           |
//! +-----------+           v       v                           v
//!                        +------------+ <---------------------+
//!                        | Terminated |
//!                        +------------+
//! ```

use super::timers::{after, earliest, Retransmit, TimerConfig};
use super::{Action, Event, TransactionError};
use bytes::Bytes;
use tokio::time::Instant;

/// One INVITE server transaction. Sends go to the peer the layer stored; the
/// machine only decides what and when.
#[derive(Debug, Clone)]
pub struct ServerInvite {
    cfg: TimerConfig,
    reliable: bool,
    state: State,
    /// The most recent response passed to the transport (§17.2.1: resent on
    /// a retransmitted INVITE).
    last: Option<Bytes>,
}

#[derive(Debug, Clone)]
enum State {
    /// §17.2.1: "When a server transaction is constructed for a request, it
    /// enters the 'Proceeding' state." `trying_at`: when the 100 Trying is
    /// due if the TU has not answered; `guard_at`: the Timer C guard.
    Proceeding {
        trying_at: Option<Instant>,
        guard_at: Instant,
    },
    /// §17.2.1: a 300-699 was sent; Timer G retransmits it (unreliable
    /// only), Timer H gives up waiting for the ACK.
    Completed {
        g: Option<Retransmit>,
        h_at: Instant,
    },
    /// §17.2.1: the ACK arrived; Timer I absorbs ACK retransmissions.
    Confirmed { i_at: Instant },
    /// RFC 6026 §7.1: a 2xx was sent. Timer L absorbs INVITE retransmissions;
    /// meanwhile the 2xx is retransmitted (§13.3.1.4) until the ACK arrives
    /// or `ack_timeout_at` passes.
    Accepted {
        retransmit: Option<Retransmit>,
        ack_timeout_at: Option<Instant>,
        l_at: Instant,
    },
    /// §17.2.1: "the server transaction MUST be destroyed".
    Terminated,
}

impl ServerInvite {
    /// Creates the transaction for a new INVITE (§17.2.1). The returned
    /// actions hold `SendTrying` when the 100 is due at once (Trying delay
    /// zero); otherwise `deadline()` says when to ask.
    pub fn new(now: Instant, reliable: bool, cfg: TimerConfig) -> (Self, Vec<Action>) {
        let immediate = cfg.trying_delay.is_zero();
        let txn = ServerInvite {
            cfg,
            reliable,
            state: State::Proceeding {
                trying_at: (!immediate).then(|| after(now, cfg.trying_delay)),
                guard_at: after(now, cfg.c),
            },
            last: None,
        };
        let actions = if immediate {
            vec![Action::SendTrying]
        } else {
            vec![]
        };
        (txn, actions)
    }

    /// The state's RFC name.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Proceeding { .. } => "Proceeding",
            State::Completed { .. } => "Completed",
            State::Confirmed { .. } => "Confirmed",
            State::Accepted { .. } => "Accepted",
            State::Terminated => "Terminated",
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    /// Whether a 2xx was sent (RFC 6026 "Accepted"): ACKs with a new branch
    /// are then matched to this transaction by Call-ID and CSeq.
    pub fn is_accepted(&self) -> bool {
        matches!(self.state, State::Accepted { .. })
    }

    /// Whether a final response was sent.
    pub fn final_sent(&self) -> bool {
        !matches!(self.state, State::Proceeding { .. })
    }

    /// When `handle(now, Event::Timer)` must next be called.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Proceeding {
                trying_at,
                guard_at,
            } => earliest([*trying_at, Some(*guard_at)]),
            State::Completed { g, h_at } => earliest([g.map(|g| g.at), Some(*h_at)]),
            State::Confirmed { i_at } => Some(*i_at),
            State::Accepted {
                retransmit,
                ack_timeout_at,
                l_at,
            } => earliest([retransmit.map(|r| r.at), *ack_timeout_at, Some(*l_at)]),
            State::Terminated => None,
        }
    }

    /// Feeds one event. Only TU events (`Respond`) can fail; network and
    /// timer events never do.
    pub fn handle(&mut self, now: Instant, event: Event) -> Result<Vec<Action>, TransactionError> {
        match event {
            Event::Timer => Ok(self.on_timer(now)),
            Event::Request => Ok(self.on_retransmission()),
            Event::Ack => Ok(self.on_ack(now)),
            Event::Respond { status, bytes } => self.on_respond(now, status, bytes),
            Event::TransportError => Ok(self.on_transport_error()),
            Event::Response { .. } | Event::CancelSent => Err(TransactionError::NotApplicable {
                state: self.state_name(),
            }),
        }
    }

    fn resend_last(&self) -> Vec<Action> {
        self.last.iter().cloned().map(Action::Send).collect()
    }

    fn on_retransmission(&mut self) -> Vec<Action> {
        match self.state {
            // §17.2.1: "If a request retransmission is received while in the
            // 'Proceeding' state, the most recent provisional response that
            // was received from the TU MUST be passed to the transport layer
            // for retransmission."
            State::Proceeding { .. } => self.resend_last(),
            // §17.2.1: "while in the 'Completed' state, if a request
            // retransmission is received, the server SHOULD pass the response
            // to the transport for retransmission."
            State::Completed { .. } => self.resend_last(),
            // §17.2.1: Confirmed absorbs retransmissions.
            State::Confirmed { .. } | State::Terminated => vec![],
            // RFC 6026 §7.1 absorbs INVITE retransmissions in Accepted at the
            // transaction level; the UAS core we stand in for retransmits
            // the 2xx anyway (§13.3.1.4), so a retransmitted INVITE gets it
            // at once, which helps a UAC whose 2xx was lost.
            State::Accepted { .. } => self.resend_last(),
        }
    }

    fn on_ack(&mut self, now: Instant) -> Vec<Action> {
        match &mut self.state {
            // §17.2.1: "If an ACK is received while the server transaction is
            // in the 'Completed' state, the server transaction MUST
            // transition to the 'Confirmed' state. As Timer G is ignored in
            // this state, any retransmissions of the response will cease."
            // "Timer I is set to fire in T4 seconds for unreliable transports,
            // and zero seconds for reliable transports." The ACK is not
            // passed to the TU.
            State::Completed { .. } => {
                self.state = State::Confirmed {
                    i_at: after(now, self.cfg.timer_i(self.reliable)),
                };
                vec![]
            }
            // RFC 6026 §7.1: "ACK: pass to the TU" in Accepted; it also stops
            // the §13.3.1.4 2xx retransmissions.
            State::Accepted {
                retransmit,
                ack_timeout_at,
                ..
            } => {
                *retransmit = None;
                *ack_timeout_at = None;
                vec![Action::PassToTu]
            }
            // An ACK before any final response is stray; Confirmed absorbs
            // ACK retransmissions (§17.2.1).
            State::Proceeding { .. } | State::Confirmed { .. } | State::Terminated => vec![],
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
        match &mut self.state {
            State::Proceeding { .. } => {
                self.last = Some(bytes.clone());
                if status < 200 {
                    // §17.2.1: "The TU passes any number of provisional
                    // responses to the server transaction. So long as the
                    // server transaction is in the 'Proceeding' state, each
                    // of these MUST be passed to the transport layer." Each
                    // one also resets the Timer C guard (§16.6 item 11).
                    self.state = State::Proceeding {
                        trying_at: None,
                        guard_at: after(now, self.cfg.c),
                    };
                } else if status < 300 {
                    // RFC 6026 §7.1: "If, while in the 'Proceeding' state,
                    // the TU passes a 2xx response to the server transaction,
                    // the server transaction MUST pass this response to the
                    // transport layer for transmission ... and the server
                    // transaction MUST then transition to the 'Accepted'
                    // state." Timer L is 64*T1; the §13.3.1.4 retransmission
                    // starts at T1.
                    self.state = State::Accepted {
                        retransmit: self
                            .cfg
                            .timer_2xx(self.reliable)
                            .map(|t1| Retransmit::start(now, t1, Some(self.cfg.t2))),
                        ack_timeout_at: Some(after(now, self.cfg.ack_timeout())),
                        l_at: after(now, self.cfg.timer_l()),
                    };
                } else {
                    // §17.2.1: "While in the 'Proceeding' state, if the TU
                    // passes a response with status code from 300 to 699 to
                    // the server transaction, the response MUST be passed to
                    // the transport layer for transmission, and the state
                    // machine MUST enter the 'Completed' state. For unreliable
                    // transports, timer G is set to fire in T1 seconds, and is
                    // not set to fire for reliable transports. ... timer H
                    // MUST be set to fire in 64*T1 seconds for all
                    // transports."
                    self.state = State::Completed {
                        g: self
                            .cfg
                            .timer_g(self.reliable)
                            .map(|t1| Retransmit::start(now, t1, Some(self.cfg.t2))),
                        h_at: after(now, self.cfg.timer_h()),
                    };
                }
                Ok(vec![Action::Send(bytes)])
            }
            // RFC 6026 §7.1: "2xx from TU: send response" while Accepted
            // (a TU retransmission, or a 2xx on another fork).
            State::Accepted { .. } if (200..300).contains(&status) => {
                self.last = Some(bytes.clone());
                Ok(vec![Action::Send(bytes)])
            }
            _ => Err(TransactionError::WrongState {
                state: self.state_name(),
                status,
            }),
        }
    }

    fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = vec![];
        match &mut self.state {
            State::Proceeding {
                trying_at,
                guard_at,
            } => {
                if *guard_at <= now {
                    // Timer C guard: the TU neither answered nor refreshed
                    // with a provisional for C; give up on its behalf.
                    actions.push(Action::Timeout);
                    self.state = State::Terminated;
                    actions.push(Action::Terminated);
                } else if trying_at.is_some_and(|t| t <= now) {
                    // §17.2.1: "the server transaction MUST generate a 100
                    // (Trying) response" when the TU is late.
                    *trying_at = None;
                    actions.push(Action::SendTrying);
                }
            }
            State::Completed { g, h_at } => {
                if *h_at <= now {
                    // §17.2.1: "If timer H fires while in the 'Completed'
                    // state, it implies that the ACK was never received. In
                    // this case, the server transaction MUST transition to the
                    // 'Terminated' state, and MUST indicate to the TU that a
                    // transaction failure has occurred."
                    actions.push(Action::Timeout);
                    self.state = State::Terminated;
                    actions.push(Action::Terminated);
                } else if let Some(g) = g.as_mut().filter(|g| g.is_due(now)) {
                    // §17.2.1: "If timer G fires, the response is passed to the
                    // transport layer once more for retransmission, and timer
                    // G is set to fire in MIN(2*T1, T2) seconds."
                    g.fired(now);
                    actions.extend(self.last.iter().cloned().map(Action::Send));
                }
            }
            State::Confirmed { i_at } => {
                // §17.2.1: "Once timer I fires, the server MUST transition to
                // the 'Terminated' state."
                if *i_at <= now {
                    self.state = State::Terminated;
                    actions.push(Action::Terminated);
                }
            }
            State::Accepted {
                retransmit,
                ack_timeout_at,
                l_at,
            } => {
                if ack_timeout_at.is_some_and(|t| t <= now) {
                    // §13.3.1.4: "If the server retransmits the 2xx response
                    // for 64*T1 seconds without receiving an ACK, the dialog
                    // is confirmed, but the session SHOULD be terminated."
                    // The TU is told so it can send BYE.
                    *ack_timeout_at = None;
                    *retransmit = None;
                    actions.push(Action::AckTimeout);
                }
                if *l_at <= now {
                    // RFC 6026 §7.1: "If Timer L fires while the INVITE server
                    // transaction is in the 'Accepted' state, the transaction
                    // MUST transition to the 'Terminated' state."
                    self.state = State::Terminated;
                    actions.push(Action::Terminated);
                } else if let Some(r) = retransmit.as_mut().filter(|r| r.is_due(now)) {
                    // §13.3.1.4: "The 2xx response is passed to the transport
                    // with an interval that starts at T1 seconds and doubles
                    // for each retransmission until it reaches T2 seconds."
                    r.fired(now);
                    actions.extend(self.last.iter().cloned().map(Action::Send));
                }
            }
            State::Terminated => {}
        }
        actions
    }

    fn on_transport_error(&mut self) -> Vec<Action> {
        // §17.2.4 and RFC 6026 §7.1: a transport error informs the TU and
        // ends the transaction, whatever the state.
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

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn respond(status: u16, s: &'static str) -> Event {
        Event::Respond {
            status,
            bytes: b(s),
        }
    }

    /// Runs the machine's timers until `until`, recording when each Send
    /// happened (relative to `t0`).
    fn sends_until(
        txn: &mut ServerInvite,
        t0: Instant,
        until: Duration,
    ) -> Vec<(Duration, Action)> {
        let mut out = vec![];
        while let Some(d) = txn.deadline() {
            if d > t0 + until {
                break;
            }
            for a in txn.handle(d, Event::Timer).unwrap() {
                out.push((d - t0, a));
            }
        }
        out
    }

    #[test]
    fn asks_for_100_at_once_by_default() {
        let t0 = Instant::now();
        let (txn, actions) = ServerInvite::new(t0, false, TimerConfig::default());
        assert_eq!(actions, vec![Action::SendTrying]);
        assert_eq!(txn.state_name(), "Proceeding");
    }

    #[test]
    fn asks_for_100_after_the_delay_unless_the_tu_answered() {
        let t0 = Instant::now();
        let cfg = TimerConfig {
            trying_delay: ms(200),
            ..TimerConfig::default()
        };
        let (mut txn, actions) = ServerInvite::new(t0, false, cfg);
        assert!(actions.is_empty());
        assert_eq!(txn.deadline(), Some(t0 + ms(200)));
        assert_eq!(
            txn.handle(t0 + ms(200), Event::Timer).unwrap(),
            vec![Action::SendTrying]
        );

        let (mut answered, _) = ServerInvite::new(t0, false, cfg);
        answered.handle(t0 + ms(50), respond(180, "180")).unwrap();
        assert_eq!(answered.deadline(), Some(t0 + ms(50) + cfg.c));
    }

    #[test]
    fn retransmitted_invite_gets_the_last_provisional() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, false, TimerConfig::default());
        assert_eq!(txn.handle(t0, Event::Request).unwrap(), vec![]);
        txn.handle(t0, respond(100, "100")).unwrap();
        assert_eq!(
            txn.handle(t0 + ms(500), Event::Request).unwrap(),
            vec![Action::Send(b("100"))]
        );
        txn.handle(t0 + ms(600), respond(180, "180")).unwrap();
        assert_eq!(
            txn.handle(t0 + ms(1500), Event::Request).unwrap(),
            vec![Action::Send(b("180"))]
        );
    }

    #[test]
    fn non_2xx_final_retransmits_with_timer_g_until_timer_h() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, false, TimerConfig::default());
        assert_eq!(
            txn.handle(t0, respond(486, "486")).unwrap(),
            vec![Action::Send(b("486"))]
        );
        assert_eq!(txn.state_name(), "Completed");
        let out = sends_until(&mut txn, t0, Duration::from_secs(40));
        let sends: Vec<Duration> = out
            .iter()
            .filter(|(_, a)| matches!(a, Action::Send(_)))
            .map(|(t, _)| *t)
            .collect();
        // Intervals 500, 1000, 2000, 4000, 4000, ... (§17.2.1).
        let expect: Vec<Duration> = [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]
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
        assert!(txn.is_terminated());
    }

    #[test]
    fn completed_resends_final_on_retransmitted_invite() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, false, TimerConfig::default());
        txn.handle(t0, respond(404, "404")).unwrap();
        assert_eq!(
            txn.handle(t0 + ms(100), Event::Request).unwrap(),
            vec![Action::Send(b("404"))]
        );
    }

    #[test]
    fn ack_confirms_then_timer_i_terminates() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, false, TimerConfig::default());
        txn.handle(t0, respond(603, "603")).unwrap();
        assert_eq!(txn.handle(t0 + ms(700), Event::Ack).unwrap(), vec![]);
        assert_eq!(txn.state_name(), "Confirmed");
        assert_eq!(txn.deadline(), Some(t0 + ms(5700)));
        // Confirmed absorbs INVITE and ACK retransmissions.
        assert_eq!(txn.handle(t0 + ms(800), Event::Request).unwrap(), vec![]);
        assert_eq!(txn.handle(t0 + ms(800), Event::Ack).unwrap(), vec![]);
        assert_eq!(
            txn.handle(t0 + ms(5700), Event::Timer).unwrap(),
            vec![Action::Terminated]
        );
    }

    #[test]
    fn reliable_transport_has_no_timer_g_and_zero_timer_i() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, true, TimerConfig::default());
        txn.handle(t0, respond(486, "486")).unwrap();
        // Only Timer H remains.
        assert_eq!(txn.deadline(), Some(t0 + ms(32_000)));
        txn.handle(t0 + ms(10), Event::Ack).unwrap();
        assert_eq!(txn.deadline(), Some(t0 + ms(10)));
        assert_eq!(
            txn.handle(t0 + ms(10), Event::Timer).unwrap(),
            vec![Action::Terminated]
        );
    }

    #[test]
    fn accepted_retransmits_2xx_until_ack() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, false, TimerConfig::default());
        txn.handle(t0, respond(200, "200")).unwrap();
        assert_eq!(txn.state_name(), "Accepted");
        let mut sends = vec![];
        while let Some(d) = txn.deadline() {
            if d > t0 + ms(4000) {
                break;
            }
            for a in txn.handle(d, Event::Timer).unwrap() {
                assert_eq!(a, Action::Send(b("200")));
                sends.push(d - t0);
            }
        }
        assert_eq!(sends, vec![ms(500), ms(1500), ms(3500)]);
        // A retransmitted INVITE gets the 2xx again.
        assert_eq!(
            txn.handle(t0 + ms(3600), Event::Request).unwrap(),
            vec![Action::Send(b("200"))]
        );
        // The ACK goes to the TU and stops the retransmissions; only Timer L
        // remains.
        assert_eq!(
            txn.handle(t0 + ms(3700), Event::Ack).unwrap(),
            vec![Action::PassToTu]
        );
        assert_eq!(txn.deadline(), Some(t0 + ms(32_000)));
        assert_eq!(
            txn.handle(t0 + ms(32_000), Event::Timer).unwrap(),
            vec![Action::Terminated]
        );
    }

    #[test]
    fn accepted_without_ack_reports_ack_timeout_after_64_t1() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, false, TimerConfig::default());
        txn.handle(t0, respond(200, "200")).unwrap();
        let out = sends_until(&mut txn, t0, Duration::from_secs(40));
        let sends: Vec<Duration> = out
            .iter()
            .filter(|(_, a)| matches!(a, Action::Send(_)))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(sends.len(), 10);
        assert_eq!(sends[4] - sends[3], ms(4000));
        assert_eq!(
            out[out.len() - 2..],
            [
                (ms(32_000), Action::AckTimeout),
                (ms(32_000), Action::Terminated)
            ]
        );
    }

    #[test]
    fn accepted_over_tcp_sends_2xx_once_but_still_times_out() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, true, TimerConfig::default());
        txn.handle(t0, respond(200, "200")).unwrap();
        let out = sends_until(&mut txn, t0, Duration::from_secs(40));
        assert_eq!(
            out,
            vec![
                (ms(32_000), Action::AckTimeout),
                (ms(32_000), Action::Terminated)
            ]
        );
    }

    #[test]
    fn accepted_passes_further_2xx_and_refuses_other_finals() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, false, TimerConfig::default());
        txn.handle(t0, respond(200, "200a")).unwrap();
        assert_eq!(
            txn.handle(t0, respond(200, "200b")).unwrap(),
            vec![Action::Send(b("200b"))]
        );
        assert_eq!(
            txn.handle(t0, respond(486, "486")),
            Err(TransactionError::WrongState {
                state: "Accepted",
                status: 486
            })
        );
        assert_eq!(
            txn.handle(t0 + ms(500), Event::Timer).unwrap(),
            vec![Action::Send(b("200b"))]
        );
    }

    #[test]
    fn completed_refuses_a_second_final_and_bad_status() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, false, TimerConfig::default());
        assert_eq!(
            txn.handle(t0, respond(99, "x")),
            Err(TransactionError::InvalidStatus(99))
        );
        txn.handle(t0, respond(486, "486")).unwrap();
        assert!(txn.handle(t0, respond(200, "200")).is_err());
        assert!(txn.handle(t0, Event::CancelSent).is_err());
    }

    #[test]
    fn timer_c_guard_ends_a_forgotten_proceeding() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let (mut txn, _) = ServerInvite::new(t0, false, cfg);
        txn.handle(t0 + ms(1000), respond(180, "180")).unwrap();
        let guard = t0 + ms(1000) + cfg.c;
        assert_eq!(txn.deadline(), Some(guard));
        assert_eq!(
            txn.handle(guard, Event::Timer).unwrap(),
            vec![Action::Timeout, Action::Terminated]
        );
    }

    #[test]
    fn transport_error_terminates_from_any_state() {
        let t0 = Instant::now();
        let (mut txn, _) = ServerInvite::new(t0, false, TimerConfig::default());
        txn.handle(t0, respond(200, "200")).unwrap();
        assert_eq!(
            txn.handle(t0, Event::TransportError).unwrap(),
            vec![Action::TransportError, Action::Terminated]
        );
        assert_eq!(txn.handle(t0, Event::TransportError).unwrap(), vec![]);
        assert_eq!(txn.deadline(), None);
    }
}
