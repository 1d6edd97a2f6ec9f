//! The event outbox of a media task (session or bridge): events go to the
//! call task on a bounded channel without ever waiting; while the channel
//! is full they are kept, up to a bound, and sent on the next flush.

use std::collections::VecDeque;
use tokio::sync::mpsc::{self, error::TrySendError};

/// Events kept while the event channel is full (then new ones are dropped).
pub const MAX_PENDING_EVENTS: usize = 64;

#[derive(Debug)]
pub struct Outbox<T> {
    tx: mpsc::Sender<T>,
    pending: VecDeque<T>,
}

impl<T> Outbox<T> {
    pub fn new(tx: mpsc::Sender<T>) -> Self {
        Outbox {
            tx,
            pending: VecDeque::new(),
        }
    }

    /// Sends an event without waiting; keeps it for [`flush`](Self::flush)
    /// if the channel is full (the media loop never blocks on the call task).
    pub fn emit(&mut self, event: T) {
        if self.pending.is_empty() {
            match self.tx.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(event)) => self.pending.push_back(event),
            }
        } else if self.pending.len() < MAX_PENDING_EVENTS {
            self.pending.push_back(event);
        }
    }

    /// Sends what was kept, as far as the channel takes it.
    pub fn flush(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => self.pending.clear(),
                Err(TrySendError::Full(event)) => {
                    self.pending.push_front(event);
                    break;
                }
            }
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_events_while_full_and_flushes_in_order() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut out = Outbox::new(tx);
        out.emit(1);
        out.emit(2);
        out.emit(3);
        assert!(out.has_pending());
        assert_eq!(rx.try_recv().ok(), Some(1));
        out.flush();
        assert_eq!(rx.try_recv().ok(), Some(2));
        out.flush();
        assert_eq!(rx.try_recv().ok(), Some(3));
        assert!(!out.has_pending());
        for i in 0..200 {
            out.emit(i);
        }
        // One in the channel, the bound kept.
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
            out.flush();
        }
        assert_eq!(n, 1 + MAX_PENDING_EVENTS);
    }
}
