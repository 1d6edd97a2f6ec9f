//! The RTP port pool: every call's RTP socket comes from here, bound on the
//! configured media IP to an even port of `[low, high]` (RFC 3550 §11: RTP
//! on an even port, RTCP on the next odd one — we do not bind RTCP).
//!
//! Shared by all calls (`Clone` is an `Arc` clone). Free ports sit in a FIFO
//! queue behind a short `std::sync::Mutex` (never held across `.await`):
//! allocating pops the front, freeing pushes to the back, so a just-freed
//! port is reused last, after every other free port (late packets of the
//! old call do not land in a new one). A port held by another program fails
//! to bind and is moved to the back. Allocation is O(1) unless many ports
//! in a row are taken by others. The pool is bounded by the range: when no
//! port is free, [`PoolError::Exhausted`] (the call answers 503).
//!
//! [`RtpSocket`] returns its port to the pool when dropped, after the
//! socket itself is closed.
//!
//! With [`MediaThreads`] ([`PortPool::with_media_threads`]) a socket is
//! registered with the media thread that has the fewest sockets, its
//! [`Home`], where the task that reads it must run ([`RtpSocket::home`]);
//! without, with the runtime that allocates it.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::net::UdpSocket;

use super::media_threads::{Home, MediaThreads};

#[derive(Debug, Error)]
pub enum PoolError {
    #[error("RTP port range [{low}, {high}] holds no even port")]
    EmptyRange { low: u16, high: u16 },
    #[error("no free RTP port")]
    Exhausted,
    #[error("binding an RTP socket on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

impl PoolError {
    /// The SIP status a call answers with when it cannot get a port.
    pub fn sip_status(&self) -> u16 {
        503
    }
}

#[derive(Debug)]
struct Inner {
    ip: IpAddr,
    free: Mutex<VecDeque<u16>>,
    capacity: usize,
}

impl Inner {
    fn free_list(&self) -> std::sync::MutexGuard<'_, VecDeque<u16>> {
        // A panic elsewhere while holding this lock cannot leave the queue
        // inconsistent (push/pop only), so poisoning is ignored.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bounded pool of even RTP ports on one IP address.
#[derive(Debug, Clone)]
pub struct PortPool {
    inner: Arc<Inner>,
    media: Option<MediaThreads>,
}

impl PortPool {
    /// A pool of the even ports in `[low, high]` on `ip` (an odd `low` is
    /// rounded up). Nothing is bound until [`PortPool::allocate`].
    pub fn new(ip: IpAddr, low: u16, high: u16) -> Result<Self, PoolError> {
        // Round an odd `low` up; port 0 would mean "any port".
        let first = match low.checked_add(low % 2) {
            Some(0) => 2,
            Some(p) => p,
            None => return Err(PoolError::EmptyRange { low, high }),
        };
        if first > high {
            return Err(PoolError::EmptyRange { low, high });
        }
        let free: VecDeque<u16> = (first..=high).step_by(2).collect();
        Ok(PortPool {
            inner: Arc::new(Inner {
                ip,
                capacity: free.len(),
                free: Mutex::new(free),
            }),
            media: None,
        })
    }

    /// The same pool, its sockets at home on `threads`.
    pub fn with_media_threads(mut self, threads: MediaThreads) -> Self {
        self.media = Some(threads);
        self
    }

    /// The media threads its sockets go to, if any.
    pub fn media_threads(&self) -> Option<&MediaThreads> {
        self.media.as_ref()
    }

    pub fn ip(&self) -> IpAddr {
        self.inner.ip
    }

    /// How many ports the pool holds in all.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// How many ports are free now.
    pub fn available(&self) -> usize {
        self.inner.free_list().len()
    }

    /// Binds a UDP socket on the next free even port. Must be called within
    /// a Tokio runtime (the socket is registered with its reactor).
    ///
    /// Ports another program holds are skipped (and retried later); any
    /// other bind error (e.g. the IP is not local) is returned at once.
    pub fn allocate(&self) -> Result<RtpSocket, PoolError> {
        // At most one pass over the ports free at the start.
        let attempts = self.available();
        for _ in 0..attempts {
            let Some(port) = self.inner.free_list().pop_front() else {
                break;
            };
            let addr = SocketAddr::new(self.inner.ip, port);
            let home = match &self.media {
                Some(threads) => threads.least_loaded(),
                None => Home::local(),
            };
            match home.enter(|| bind(addr)) {
                Ok(socket) => {
                    return Ok(RtpSocket {
                        socket,
                        home,
                        local: addr,
                        _lease: Some(Lease {
                            pool: self.inner.clone(),
                            port,
                        }),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    self.inner.free_list().push_back(port);
                }
                Err(source) => {
                    self.inner.free_list().push_back(port);
                    return Err(PoolError::Bind { addr, source });
                }
            }
        }
        Err(PoolError::Exhausted)
    }
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    // std binds without SO_REUSEADDR/SO_REUSEPORT, so a port someone else
    // holds fails with AddrInUse instead of being shared.
    let std_socket = std::net::UdpSocket::bind(addr)?;
    std_socket.set_nonblocking(true)?;
    UdpSocket::from_std(std_socket)
}

/// Gives the port back when the [`RtpSocket`] is dropped.
#[derive(Debug)]
struct Lease {
    pool: Arc<Inner>,
    port: u16,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.free_list().push_back(self.port);
    }
}

/// A bound RTP socket; its port returns to the pool on drop.
#[derive(Debug)]
pub struct RtpSocket {
    // Field order matters: the socket is closed before the lease returns
    // the port (fields drop in declaration order).
    socket: UdpSocket,
    home: Home,
    local: SocketAddr,
    _lease: Option<Lease>,
}

impl RtpSocket {
    /// Wraps a socket that does not come from a pool (tests, tools).
    pub fn unpooled(socket: UdpSocket) -> io::Result<Self> {
        Ok(RtpSocket {
            local: socket.local_addr()?,
            socket,
            home: Home::local(),
            _lease: None,
        })
    }

    /// Where the socket is registered: the task that reads it runs there.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The same socket registered at `to` (a bridge takes both legs to one
    /// thread). The file descriptor is duplicated and the copy registered
    /// there before the old registration goes, so the socket is never
    /// lost: should registering fail (the kernel's epoll limits), it stays
    /// where it was, still working, and that is logged.
    pub fn rehome(self, to: &Home) -> RtpSocket {
        if self.home.same_as(to) {
            return self;
        }
        let moved = socket2::SockRef::from(&self.socket)
            .try_clone()
            .and_then(|dup| to.enter(|| UdpSocket::from_std(dup.into())));
        match moved {
            Ok(socket) => {
                let RtpSocket {
                    socket: old,
                    home: old_home,
                    local,
                    _lease,
                } = self;
                drop(old);
                drop(old_home);
                RtpSocket {
                    socket,
                    home: to.again(),
                    local,
                    _lease,
                }
            }
            Err(e) => {
                tracing::warn!(port = self.port(), error = %e, "RTP socket not moved to another media thread");
                self
            }
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn port(&self) -> u16 {
        self.local.port()
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A range of `n` even ports on loopback that are free right now: a
    /// random base below the kernel's ephemeral range (other test runs on
    /// this machine share it), checked by binding every port once.
    fn range(n: u16) -> (u16, u16) {
        loop {
            let base = rand::random_range(10_000u16..30_000) & !1;
            let high = base + 2 * (n - 1);
            let free = (base..=high)
                .step_by(2)
                .all(|p| std::net::UdpSocket::bind((LO, p)).is_ok());
            if free {
                return (base, high);
            }
        }
    }

    #[test]
    fn rejects_empty_ranges() {
        assert!(matches!(
            PortPool::new(LO, 11, 11),
            Err(PoolError::EmptyRange { .. })
        ));
        assert!(matches!(
            PortPool::new(LO, 20, 10),
            Err(PoolError::EmptyRange { .. })
        ));
        assert!(matches!(
            PortPool::new(LO, 65535, 65535),
            Err(PoolError::EmptyRange { .. })
        ));
        assert_eq!(PortPool::new(LO, 11, 16).unwrap().capacity(), 3);
        assert_eq!(PortPool::new(LO, 65534, 65535).unwrap().capacity(), 1);
    }

    #[tokio::test]
    async fn allocates_even_ports_until_exhausted_and_reuses_after_drop() {
        let (low, high) = range(3);
        let pool = PortPool::new(LO, low, high).unwrap();
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let c = pool.allocate().unwrap();
        for s in [&a, &b, &c] {
            assert_eq!(s.port() % 2, 0);
            assert!((low..=high).contains(&s.port()));
        }
        assert!(matches!(pool.allocate(), Err(PoolError::Exhausted)));
        let freed = b.port();
        drop(b);
        assert_eq!(pool.available(), 1);
        let d = pool.allocate().unwrap();
        assert_eq!(d.port(), freed);
        drop((a, c, d));
        assert_eq!(pool.available(), 3);
    }

    #[tokio::test]
    async fn round_robin_does_not_reuse_a_just_freed_port() {
        let (low, high) = range(3);
        let pool = PortPool::new(LO, low, high).unwrap();
        let a = pool.allocate().unwrap();
        let first = a.port();
        drop(a);
        let b = pool.allocate().unwrap();
        let c = pool.allocate().unwrap();
        assert_ne!(b.port(), first);
        assert_ne!(c.port(), first);
        let d = pool.allocate().unwrap();
        assert_eq!(d.port(), first);
    }

    #[tokio::test]
    async fn skips_ports_held_by_another_program() {
        let (low, high) = range(2);
        let squatter = std::net::UdpSocket::bind((LO, low)).unwrap();
        let pool = PortPool::new(LO, low, high).unwrap();
        let a = pool.allocate().unwrap();
        assert_eq!(a.port(), high);
        // The held port stays in the pool and is retried later.
        assert!(matches!(pool.allocate(), Err(PoolError::Exhausted)));
        drop(squatter);
        assert_eq!(pool.allocate().unwrap().port(), low);
    }

    #[tokio::test]
    async fn foreign_ip_is_a_bind_error_not_exhaustion() {
        // TEST-NET-1, never a local address.
        let pool = PortPool::new("192.0.2.1".parse().unwrap(), 30000, 30010).unwrap();
        assert!(matches!(pool.allocate(), Err(PoolError::Bind { .. })));
        assert_eq!(pool.available(), 6);
    }

    #[tokio::test]
    async fn shared_between_threads() {
        let (low, high) = range(8);
        let pool = PortPool::new(LO, low, high).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let a = pool.allocate().unwrap();
                        let b = pool.allocate().unwrap();
                        (a.port(), b.port())
                    })
                })
            })
            .collect();
        let mut ports: Vec<u16> = handles
            .into_iter()
            .flat_map(|h| {
                let (a, b) = h.join().unwrap();
                [a, b]
            })
            .collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 8);
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn sockets_go_to_media_threads_and_a_moved_one_is_read_there() {
        let threads = MediaThreads::start(2, 0, std::time::Duration::ZERO).unwrap();
        let (low, high) = range(4);
        let pool = PortPool::new(LO, low, high)
            .unwrap()
            .with_media_threads(threads.clone());
        // Allocated outside any runtime: the socket registers at its home.
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert!(!a.home().same_as(b.home()), "spread over both threads");
        assert_eq!(threads.sockets_per_thread(), vec![1, 1]);
        let port = b.port();
        let b = b.rehome(a.home());
        assert!(b.home().same_as(a.home()));
        assert_eq!(b.port(), port);
        assert_eq!(threads.sockets_per_thread().iter().sum::<usize>(), 2);
        let sender = std::net::UdpSocket::bind((LO, 0)).unwrap();
        sender.send_to(b"rtp", (LO, port)).unwrap();
        let got = a.home().spawner().spawn(async move {
            let mut buf = [0u8; 16];
            let read = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                b.socket().recv_from(&mut buf),
            )
            .await;
            let n = read.expect("read at the new home").unwrap().0;
            (
                buf[..n].to_vec(),
                std::thread::current().name().map(str::to_owned),
            )
        });
        let (data, thread) = crate::media::media_threads::block_on(got).unwrap();
        assert_eq!(data, b"rtp");
        assert!(thread.unwrap().starts_with("hotline-media-"));
        drop(a);
        assert_eq!(threads.sockets_per_thread(), vec![0, 0]);
        assert_eq!(pool.available(), 4);
    }
}
