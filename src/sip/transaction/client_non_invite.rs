//! The non-INVITE client transaction (RFC 3261 §17.1.2).
//!
//! ```text
//!        request sent, Timer E (UDP), Timer F
//!                    |
//!              +----------+ Timer E: resend, MIN(2*interval, T2)
//!              |  Trying  |------------------------+ Timer F: Timeout
//!              +----------+                        |
//!            1xx |      | 200-699: to TU           |
//!                v      |                          |
//!        +------------+ |  Timer E: resend, T2     |
//!   1xx  | Proceeding |-+------------------------->+
//!        +------------+ | 200-699: to TU           |
//!                       v                          |
//!                 +-----------+                    |
//!                 | Completed | Timer K            |
//!                 +-----------+-------> Terminated <+
//! ```

use super::timers::{after, earliest, Retransmit, TimerConfig};
use super::{Action, Event, TransactionError};
use bytes::Bytes;
use tokio::time::Instant;

/// One non-INVITE client transaction (BYE, OPTIONS, CANCEL, INFO, ...).
#[derive(Debug, Clone)]
pub struct ClientNonInvite {
    cfg: TimerConfig,
    reliable: bool,
    request: Bytes,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    /// §17.1.2.2: "The 'Trying' state is entered when the TU initiates a new
    /// client transaction with a request." Timer E (unreliable only) and
    /// Timer F.
    Trying {
        e: Option<Retransmit>,
        f_at: Instant,
    },
    /// §17.1.2.2: a provisional arrived; Timer E now fires every T2.
    Proceeding {
        e: Option<Retransmit>,
        f_at: Instant,
    },
    /// §17.1.2.2: a final arrived; Timer K absorbs its retransmissions.
    Completed {
        k_at: Instant,
    },
    Terminated,
}

impl ClientNonInvite {
    /// Starts the transaction and sends the request (§17.1.2.2).
    pub fn new(
        now: Instant,
        reliable: bool,
        cfg: TimerConfig,
        request: Bytes,
    ) -> (Self, Vec<Action>) {
        let txn = ClientNonInvite {
            cfg,
            reliable,
            state: State::Trying {
                // §17.1.2.2: "If an unreliable transport is in use, the client
                // transaction MUST set timer E to fire in T1 seconds."
                e: cfg
                    .timer_e(reliable)
                    .map(|t1| Retransmit::start(now, t1, Some(cfg.t2))),
                // "the client transaction MUST set timer F to fire in 64*T1
                // seconds."
                f_at: after(now, cfg.timer_f()),
            },
            request: request.clone(),
        };
        (txn, vec![Action::Send(request)])
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Trying { .. } => "Trying",
            State::Proceeding { .. } => "Proceeding",
            State::Completed { .. } => "Completed",
            State::Terminated => "Terminated",
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Trying { e, f_at } | State::Proceeding { e, f_at } => {
                earliest([e.map(|e| e.at), Some(*f_at)])
            }
            State::Completed { k_at } => Some(*k_at),
            State::Terminated => None,
        }
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Result<Vec<Action>, TransactionError> {
        match event {
            Event::Timer => Ok(self.on_timer(now)),
            Event::Response { status } => Ok(self.on_response(now, status)),
            Event::TransportError => Ok(self.on_transport_error()),
            // A CANCEL only concerns INVITE transactions (§9.1).
            Event::CancelSent => Ok(vec![]),
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
            // §17.1.2.2: "If a provisional response is received while in the
            // 'Trying' state, the response MUST be passed to the TU, and then
            // the client transaction SHOULD move to the 'Proceeding' state."
            // "If a provisional response is received while in the
            // 'Proceeding' state, it MUST be passed to the TU."
            State::Trying { e, f_at } | State::Proceeding { e, f_at } if class == 1 => {
                self.state = State::Proceeding { e: *e, f_at: *f_at };
                vec![Action::PassToTu]
            }
            // §17.1.2.2: "If a final response (status codes 200-699) is
            // received while in the 'Trying' state [or 'Proceeding'], the
            // response MUST be passed to the TU, and the client transaction
            // MUST transition to the 'Completed' state." "Once the client
            // transaction enters the 'Completed' state, it MUST set Timer K
            // to fire in T4 seconds for unreliable transports, and zero
            // seconds for reliable transports."
            State::Trying { .. } | State::Proceeding { .. } if (2..=6).contains(&class) => {
                self.state = State::Completed {
                    k_at: after(now, self.cfg.timer_k(self.reliable)),
                };
                vec![Action::PassToTu]
            }
            // Completed "buffer[s] any additional response retransmissions":
            // absorbed, as are statuses outside 100-699.
            _ => vec![],
        }
    }

    fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let in_proceeding = matches!(self.state, State::Proceeding { .. });
        match &mut self.state {
            State::Trying { e, f_at } | State::Proceeding { e, f_at } => {
                if *f_at <= now {
                    // §17.1.2.2: "If Timer F fires while the client
                    // transaction is still in the 'Trying' [or 'Proceeding']
                    // state, the client transaction SHOULD inform the TU
                    // about the timeout, and then it SHOULD enter the
                    // 'Terminated' state."
                    self.state = State::Terminated;
                    vec![Action::Timeout, Action::Terminated]
                } else if let Some(e) = e.as_mut().filter(|e| e.is_due(now)) {
                    // §17.1.2.2: in Trying "the timer is reset, but this time
                    // with a value of MIN(2*T1, T2)"; in Proceeding "Timer E
                    // MUST be reset with a value of T2 seconds".
                    if in_proceeding {
                        e.fix_interval(self.cfg.t2);
                    }
                    e.fired(now);
                    vec![Action::Send(self.request.clone())]
                } else {
                    vec![]
                }
            }
            // §17.1.2.2: "If Timer K fires while in this state, the client
            // transaction MUST transition to the 'Terminated' state."
            State::Completed { k_at } if *k_at <= now => {
                self.state = State::Terminated;
                vec![Action::Terminated]
            }
            _ => vec![],
        }
    }

    fn on_transport_error(&mut self) -> Vec<Action> {
        // §17.1.2.2: on a transport error the transaction informs the TU and
        // moves to Terminated.
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

    fn bye() -> Bytes {
        Bytes::from_static(b"BYE")
    }

    fn start(t0: Instant, reliable: bool) -> ClientNonInvite {
        let (txn, actions) = ClientNonInvite::new(t0, reliable, TimerConfig::default(), bye());
        assert_eq!(actions, vec![Action::Send(bye())]);
        txn
    }

    fn resp(status: u16) -> Event {
        Event::Response { status }
    }

    fn run_timers(
        txn: &mut ClientNonInvite,
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

    fn send_times(out: &[(Duration, Action)]) -> Vec<u64> {
        out.iter()
            .filter(|(_, a)| matches!(a, Action::Send(_)))
            .map(|(t, _)| t.as_millis() as u64)
            .collect()
    }

    #[test]
    fn timer_e_doubles_to_t2_then_timer_f() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        let out = run_timers(&mut txn, t0, Duration::from_secs(60));
        // Intervals 500, 1000, 2000, 4000, 4000, ... (§17.1.2.2).
        assert_eq!(
            send_times(&out),
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(
            out[out.len() - 2..],
            [
                (ms(32_000), Action::Timeout),
                (ms(32_000), Action::Terminated)
            ]
        );
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        // First firing at 500 in Trying.
        assert_eq!(
            txn.handle(t0 + ms(500), Event::Timer).unwrap(),
            vec![Action::Send(bye())]
        );
        assert_eq!(
            txn.handle(t0 + ms(600), resp(100)).unwrap(),
            vec![Action::PassToTu]
        );
        assert_eq!(txn.state_name(), "Proceeding");
        let out = run_timers(&mut txn, t0, Duration::from_secs(12));
        // Pending E at 1500 fires, then every T2.
        assert_eq!(send_times(&out), vec![1500, 5500, 9500]);
    }

    #[test]
    fn final_completes_then_timer_k() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        assert_eq!(
            txn.handle(t0 + ms(100), resp(200)).unwrap(),
            vec![Action::PassToTu]
        );
        assert_eq!(txn.state_name(), "Completed");
        assert_eq!(txn.handle(t0 + ms(200), resp(200)).unwrap(), vec![]);
        assert_eq!(txn.deadline(), Some(t0 + ms(5100)));
        assert_eq!(
            run_timers(&mut txn, t0, Duration::from_secs(60)),
            vec![(ms(5100), Action::Terminated)]
        );
    }

    #[test]
    fn tcp_has_no_timer_e_and_zero_timer_k() {
        let t0 = Instant::now();
        let mut txn = start(t0, true);
        assert_eq!(txn.deadline(), Some(t0 + ms(32_000)));
        txn.handle(t0 + ms(100), resp(404)).unwrap();
        assert_eq!(txn.deadline(), Some(t0 + ms(100)));
    }

    #[test]
    fn timeout_in_proceeding() {
        let t0 = Instant::now();
        let mut txn = start(t0, true);
        txn.handle(t0 + ms(100), resp(100)).unwrap();
        assert_eq!(
            run_timers(&mut txn, t0, Duration::from_secs(60)),
            vec![
                (ms(32_000), Action::Timeout),
                (ms(32_000), Action::Terminated)
            ]
        );
    }

    #[test]
    fn transport_error_and_foreign_events() {
        let t0 = Instant::now();
        let mut txn = start(t0, false);
        assert!(txn.handle(t0, Event::Request).is_err());
        assert_eq!(txn.handle(t0, Event::CancelSent).unwrap(), vec![]);
        assert_eq!(
            txn.handle(t0, Event::TransportError).unwrap(),
            vec![Action::TransportError, Action::Terminated]
        );
    }
}
