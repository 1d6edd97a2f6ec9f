//! The media threads: the threads that run every call's RTP (IVR sessions,
//! bridges, monitors' feeds), apart from SIP, HTTP and the database.
//!
//! Each media thread runs its own single-threaded tokio runtime, with its
//! own reactor (epoll) and timers. An RTP socket is registered with one of
//! them, its *home*, when the [`super::port_pool::PortPool`] binds it (the
//! home with the fewest sockets), and the task that reads it is spawned
//! there ([`Home::spawner`]); a bridge moves the agent's socket to the
//! caller's home ([`super::port_pool::RtpSocket::rehome`]), so one thread
//! owns both of a call's sockets. A packet is then read, relayed and sent by
//! the thread whose epoll saw it: no work stealing, no hand-over between
//! threads, and a burst of packets is shared among the threads by socket.
//!
//! Real-time priority: a media thread asks the kernel for `SCHED_RR` at the
//! configured priority (`rtp.realtime_priority`), as telephony servers do
//! (Asterisk's `-p`, FreeSWITCH's `-rp`), so that a packet is relayed when
//! it arrives instead of when the scheduler next gets round to the daemon
//! among other busy processes. It is refused without `CAP_SYS_NICE` or an
//! `RLIMIT_RTPRIO` high enough (systemd: `LimitRTPRIO=`); the threads then
//! run at normal priority and the start says so in the log. Threads a media
//! thread starts (tokio's blocking pool) fall back to normal priority
//! (`SCHED_RESET_ON_FORK`). The kernel keeps 5 % of each second for
//! normal-priority work (`sched_rt_runtime_us`), so a runaway media thread
//! cannot lock the machine.
//!
//! Without media threads (`rtp.media_threads = 0`, and the daemon embedded
//! in tests, whose paused clocks must drive the media too) every socket is
//! at home on the runtime that bound it and tasks are spawned with
//! `tokio::spawn`.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// How a media thread's priority request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Priority {
    /// Normal priority was asked for (`realtime_priority = 0`).
    Normal,
    /// `SCHED_RR` at this priority.
    Realtime(u8),
    /// Real-time priority was refused; the thread runs at normal priority.
    Refused { asked: u8, error: String },
}

/// The media threads of the daemon (cheap to clone).
#[derive(Debug, Clone)]
pub struct MediaThreads {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    threads: Vec<Thread>,
    priority: Priority,
}

#[derive(Debug)]
struct Thread {
    handle: Handle,
    /// RTP sockets at home here now.
    sockets: Arc<AtomicUsize>,
    /// Dropped with the last [`MediaThreads`] clone: the thread's runtime
    /// then stops (its remaining tasks are dropped) and the thread ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl MediaThreads {
    /// Starts `count` media threads (at least one), each asking for
    /// `SCHED_RR` at `realtime_priority` (1–99; 0: normal priority).
    pub fn start(count: usize, realtime_priority: u8, nap: Duration) -> io::Result<MediaThreads> {
        let mut threads = Vec::new();
        let mut priorities = Vec::new();
        for i in 0..count.max(1) {
            let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("hotline-media-{i}"))
                .spawn(move || {
                    let priority = set_priority(realtime_priority);
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .on_thread_park(move || {
                            if !nap.is_zero() {
                                std::thread::sleep(nap);
                            }
                        })
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok((rt.handle().clone(), priority)));
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                })?;
            let (handle, priority) = ready_rx
                .recv()
                .map_err(|_| io::Error::other("a media thread ended at its start"))??;
            threads.push(Thread {
                handle,
                sockets: Arc::new(AtomicUsize::new(0)),
                _stop: stop_tx,
            });
            priorities.push(priority);
        }
        // All threads ask the same of the same kernel: one answer for all
        // (the first refusal, if any thread was refused).
        let priority = priorities
            .iter()
            .find(|p| matches!(p, Priority::Refused { .. }))
            .unwrap_or(&priorities[0])
            .clone();
        Ok(MediaThreads {
            inner: Arc::new(Inner { threads, priority }),
        })
    }

    pub fn count(&self) -> usize {
        self.inner.threads.len()
    }

    /// What the threads got of the priority they asked for.
    pub fn priority(&self) -> &Priority {
        &self.inner.priority
    }

    /// The home with the fewest sockets now; the caller is about to put a
    /// socket there (counted until that [`Home`] is dropped).
    pub(crate) fn least_loaded(&self) -> Home {
        let t = self
            .inner
            .threads
            .iter()
            .min_by_key(|t| t.sockets.load(Ordering::Relaxed))
            .expect("at least one media thread");
        Home::on(t)
    }

    /// RTP sockets at home on each thread now.
    pub fn sockets_per_thread(&self) -> Vec<usize> {
        self.inner
            .threads
            .iter()
            .map(|t| t.sockets.load(Ordering::Relaxed))
            .collect()
    }
}

/// Where an RTP socket is registered and its task runs: a media thread
/// (counted there while this lives), or the runtime that bound it.
#[derive(Debug)]
pub struct Home {
    thread: Option<(Handle, Arc<AtomicUsize>)>,
}

impl Home {
    fn on(t: &Thread) -> Home {
        t.sockets.fetch_add(1, Ordering::Relaxed);
        Home {
            thread: Some((t.handle.clone(), t.sockets.clone())),
        }
    }

    /// The runtime the caller runs on (no media threads).
    pub fn local() -> Home {
        Home { thread: None }
    }

    /// The same place, counted once more (for a second socket there).
    pub fn again(&self) -> Home {
        match &self.thread {
            Some((handle, sockets)) => {
                sockets.fetch_add(1, Ordering::Relaxed);
                Home {
                    thread: Some((handle.clone(), sockets.clone())),
                }
            }
            None => Home::local(),
        }
    }

    /// Is this the same place as `other`?
    pub fn same_as(&self, other: &Home) -> bool {
        match (&self.thread, &other.thread) {
            (None, None) => true,
            (Some((_, a)), Some((_, b))) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Runs `f` with this home's runtime as the current one (sockets made
    /// in `f` register with its reactor).
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.thread {
            Some((handle, _)) => {
                let _guard = handle.enter();
                f()
            }
            None => f(),
        }
    }

    /// What spawns tasks here, without counting a socket.
    pub fn spawner(&self) -> Spawner {
        Spawner {
            handle: self.thread.as_ref().map(|(h, _)| h.clone()),
        }
    }
}

/// Spawns tasks at a [`Home`]: work that belongs with a call's media (its
/// recorder) runs on the thread that relays it, at its priority.
#[derive(Debug, Clone)]
pub struct Spawner {
    /// `None`: the caller's own runtime.
    handle: Option<Handle>,
}

impl Spawner {
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.handle {
            Some(handle) => handle.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some((_, sockets)) = &self.thread {
            sockets.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Asks for `SCHED_RR` at `priority` for the calling thread (0: nothing
/// asked). Threads it starts later get normal priority.
fn set_priority(priority: u8) -> Priority {
    if priority == 0 {
        return Priority::Normal;
    }
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: plain system call on the calling thread (pid 0) with a valid
    // parameter struct.
    let r =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if r == 0 {
        Priority::Realtime(priority)
    } else {
        Priority::Refused {
            asked: priority,
            error: io::Error::last_os_error().to_string(),
        }
    }
}

/// The scheduling policy of the calling thread (for tests).
#[cfg(test)]
fn current_policy() -> i32 {
    // SAFETY: plain system call on the calling thread.
    unsafe { libc::sched_getscheduler(0) & !libc::SCHED_RESET_ON_FORK }
}

/// Runs `f` to the end on a runtime of its own (tests off any runtime).
#[cfg(test)]
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_are_counted_and_chosen_least_loaded() {
        let threads = MediaThreads::start(2, 0, Duration::ZERO).unwrap();
        assert_eq!(threads.count(), 2);
        assert_eq!(threads.priority(), &Priority::Normal);
        let a = threads.least_loaded();
        let b = threads.least_loaded();
        assert!(!a.same_as(&b), "the second goes to the other thread");
        let a2 = a.again();
        assert!(a2.same_as(&a));
        assert_eq!(threads.sockets_per_thread().iter().sum::<usize>(), 3);
        drop(a);
        drop(a2);
        assert_eq!(threads.sockets_per_thread().iter().sum::<usize>(), 1);
        let c = threads.least_loaded();
        assert!(!c.same_as(&b), "the emptied thread is chosen");
    }

    #[test]
    fn a_task_spawned_at_a_home_runs_on_its_media_thread() {
        let threads = MediaThreads::start(1, 0, Duration::ZERO).unwrap();
        let home = threads.least_loaded();
        let name = block_on(
            home.spawner()
                .spawn(async { std::thread::current().name().map(str::to_owned) }),
        )
        .unwrap();
        assert_eq!(name.as_deref(), Some("hotline-media-0"));
    }

    #[test]
    fn realtime_priority_is_taken_or_its_refusal_reported() {
        let threads = MediaThreads::start(1, 5, Duration::ZERO).unwrap();
        let home = threads.least_loaded();
        let (policy, blocking_policy) = block_on(home.spawner().spawn(async {
            let blocking = tokio::task::spawn_blocking(current_policy).await.unwrap();
            (current_policy(), blocking)
        }))
        .unwrap();
        match threads.priority() {
            Priority::Realtime(5) => {
                assert_eq!(policy, libc::SCHED_RR);
                assert_eq!(
                    blocking_policy,
                    libc::SCHED_OTHER,
                    "threads the media thread starts run at normal priority"
                );
            }
            Priority::Refused { asked: 5, error } => {
                assert!(!error.is_empty());
                assert_eq!(policy, libc::SCHED_OTHER);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
