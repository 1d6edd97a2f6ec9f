//! Reading a UDP socket's queue in one system call, and knowing it is empty.
//!
//! The plain way to drain a non-blocking socket is `recvfrom` until it fails
//! with `EAGAIN`: for RTP, where a socket holds one packet per wake-up, that
//! is two system calls per packet, one of them only to learn there is
//! nothing more. [`RecvBatch::recv`] reads up to [`BATCH`] datagrams with one
//! `recvmmsg(2)`; when fewer came, the queue was empty at that instant and
//! tokio's readiness is cleared at once (through [`UdpSocket::try_io`], which
//! clears it only if no new readiness event arrived meanwhile, so a datagram
//! arriving just after is not missed). Linux only, as is the daemon.

use std::io;
use std::net::SocketAddr;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams read per system call at most.
pub const BATCH: usize = 4;

/// Buffers for one batch: [`BATCH`] datagrams of `size` bytes at most (a
/// longer one is truncated, as by `recv_from`).
pub struct RecvBatch {
    bufs: Box<[u8]>,
    size: usize,
    lens: [usize; BATCH],
    from: [Option<SocketAddr>; BATCH],
    count: usize,
}

/// What one [`RecvBatch::recv`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The batch was filled: there may be more to read.
    More,
    /// The socket's queue is empty (readiness cleared).
    Empty,
}

impl RecvBatch {
    pub fn new(size: usize) -> Self {
        RecvBatch {
            bufs: vec![0; size * BATCH].into_boxed_slice(),
            size,
            lens: [0; BATCH],
            from: [None; BATCH],
            count: 0,
        }
    }

    /// The datagrams of the last [`recv`](Self::recv), in arrival order.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> + '_ {
        (0..self.count).filter_map(move |i| {
            let from = self.from[i]?;
            let start = i * self.size;
            Some((&self.bufs[start..start + self.lens[i]], from))
        })
    }

    /// Reads what is queued on `socket`, batch by batch, until it is empty
    /// or about `max` datagrams were read (so a flood on one socket cannot
    /// starve the others; readiness then stays set and the caller is woken
    /// again), calling `f` with each datagram and the instant its batch was
    /// read. A socket error (an ICMP error reported on it) is skipped.
    pub fn drain(
        &mut self,
        socket: &UdpSocket,
        max: usize,
        mut f: impl FnMut(&[u8], SocketAddr, tokio::time::Instant),
    ) {
        for _ in 0..max.div_ceil(BATCH) {
            let drained = self.recv(socket);
            let now = tokio::time::Instant::now();
            for (datagram, src) in self.datagrams() {
                f(datagram, src, now);
            }
            if let Ok(Drained::Empty) = drained {
                break;
            }
        }
    }

    /// Reads what is queued on `socket`, up to [`BATCH`] datagrams, without
    /// waiting. `Ok(Drained::Empty)` with no datagrams when there was
    /// nothing; `Err` for a socket error (an ICMP error reported on it, for
    /// instance), with no datagrams.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<Drained> {
        self.count = 0;
        let mut filled = 0;
        let result = socket.try_io(Interest::READABLE, || {
            let n = self.recv_raw(socket)?;
            filled = n;
            if n < BATCH {
                // Tells tokio the queue is empty: it clears the readiness.
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        self.count = filled;
        match result {
            Ok(()) => Ok(Drained::More),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Drained::Empty),
            Err(e) => Err(e),
        }
    }

    fn recv_raw(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use socket2::{SockAddr, SockAddrStorage};
        use std::os::fd::AsRawFd;
        let mut addrs: [SockAddrStorage; BATCH] =
            std::array::from_fn(|_| SockAddrStorage::zeroed());
        // SAFETY: plain C structs, valid when zeroed.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let base = self.bufs.as_mut_ptr();
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                // SAFETY: i * size + size <= bufs.len().
                iov_base: unsafe { base.add(i * self.size) }.cast(),
                iov_len: self.size,
            };
            msgs[i].msg_hdr.msg_namelen = addrs[i].size_of();
            // SockAddrStorage is a transparent sockaddr_storage.
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut SockAddrStorage).cast();
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every pointer in msgs points into live buffers above, each
        // with its true length; the kernel writes at most that.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as _,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, storage) in addrs.into_iter().enumerate().take(n) {
            self.lens[i] = (msgs[i].msg_len as usize).min(self.size);
            // SAFETY: the kernel wrote an address of this length there.
            let addr = unsafe { SockAddr::new(storage, msgs[i].msg_hdr.msg_namelen) };
            self.from[i] = addr.as_socket();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (a, b)
    }

    fn collect(batch: &RecvBatch) -> Vec<(Vec<u8>, SocketAddr)> {
        batch.datagrams().map(|(d, a)| (d.to_vec(), a)).collect()
    }

    #[tokio::test]
    async fn reads_a_burst_in_batches_in_order_then_reports_empty() {
        let (rx, tx) = pair().await;
        for i in 0..6u8 {
            tx.send_to(&[i; 3], rx.local_addr().unwrap()).await.unwrap();
        }
        rx.readable().await.unwrap();
        let mut batch = RecvBatch::new(1500);
        let mut got = Vec::new();
        loop {
            let drained = batch.recv(&rx).unwrap();
            got.extend(collect(&batch));
            if drained == Drained::Empty {
                break;
            }
        }
        let from = tx.local_addr().unwrap();
        let want: Vec<_> = (0..6u8).map(|i| (vec![i; 3], from)).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_datagram_after_the_queue_was_emptied_wakes_the_reader_again() {
        let (rx, tx) = pair().await;
        let to = rx.local_addr().unwrap();
        let mut batch = RecvBatch::new(1500);
        for round in 0..3u8 {
            tx.send_to(&[round], to).await.unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(2), rx.readable())
                .await
                .expect("readable again after the readiness was cleared")
                .unwrap();
            assert_eq!(batch.recv(&rx).unwrap(), Drained::Empty);
            assert_eq!(
                collect(&batch),
                vec![(vec![round], tx.local_addr().unwrap())]
            );
        }
    }

    #[tokio::test]
    async fn a_long_datagram_is_truncated_to_the_buffer() {
        let (rx, tx) = pair().await;
        tx.send_to(&[7; 100], rx.local_addr().unwrap())
            .await
            .unwrap();
        rx.readable().await.unwrap();
        let mut batch = RecvBatch::new(10);
        batch.recv(&rx).unwrap();
        assert_eq!(collect(&batch)[0].0, vec![7; 10]);
    }

    #[tokio::test]
    async fn ipv6_sources_are_read_back() {
        let Ok(rx) = UdpSocket::bind("[::1]:0").await else {
            return; // no IPv6 loopback here
        };
        let tx = UdpSocket::bind("[::1]:0").await.unwrap();
        tx.send_to(b"x", rx.local_addr().unwrap()).await.unwrap();
        rx.readable().await.unwrap();
        let mut batch = RecvBatch::new(1500);
        batch.recv(&rx).unwrap();
        assert_eq!(
            collect(&batch),
            vec![(b"x".to_vec(), tx.local_addr().unwrap())]
        );
    }
}
