//! Sending a batch of datagrams in as few system calls, and as few trips down the kernel's
//! UDP/IP stack, as the kernel allows.
//!
//! `sendmmsg` takes up to [`MAX_MESSAGES`] messages per call. Consecutive datagrams to one
//! destination that are all the same size (the last may be shorter) go as **one** message with
//! UDP generic segmentation offload (`UDP_SEGMENT`, Linux 4.18+): the kernel allocates, routes
//! and passes one buffer down the stack and cuts it into the datagrams at the device (in the
//! NIC where it segments UDP, in software otherwise; on loopback at the receiving socket). On
//! the wire they are the same datagrams. A video frame's packets to one player leave the
//! relay's drain of that player one after another, so a frame cut into equal packets is such a
//! run.
//!
//! When the kernel refuses a segmented message (an old kernel, or a device without checksum
//! offload), that run is sent again one datagram per message and the sender stops segmenting.
//! A run whose packets exceed the path's MTU (the kernel fragments a lone datagram, never a
//! segment) is sent again one datagram per message, and segmentation stays on for the others.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use socket2::SockAddr;
use str0m::net::Transmit;

/// Messages per `sendmmsg` call (the relay's batches are at most this long anyway).
const MAX_MESSAGES: usize = 64;
/// Datagrams per segmented message: `UDP_MAX_SEGMENTS` on kernels before 6.x.
const MAX_SEGMENTS: usize = 64;
/// Bytes per segmented message, under the largest UDP payload (65 507).
const MAX_SEGMENTED_BYTES: usize = 65_000;
/// `UDP_SEGMENT` from `<linux/udp.h>` (not exported by `libc` for glibc targets).
const UDP_SEGMENT: libc::c_int = 103;

/// Datagrams and bytes that left, and how they went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub datagrams: u64,
    pub bytes: u64,
    /// Datagrams that left as part of a segmented message (two or more in one).
    pub segmented: u64,
    /// Messages handed to the kernel (a segmented run is one).
    pub messages: u64,
}

impl std::ops::AddAssign for Sent {
    fn add_assign(&mut self, other: Sent) {
        self.datagrams += other.datagrams;
        self.bytes += other.bytes;
        self.segmented += other.segmented;
        self.messages += other.messages;
    }
}

/// One message: `count` datagrams of the batch from `first`, all `segment` bytes long but the
/// last (which may be shorter), to one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: usize,
    count: usize,
    segment: usize,
}

/// Sends batches from one socket; remembers whether the kernel segments for it.
pub(crate) struct DatagramSender {
    segmentation: bool,
}

impl DatagramSender {
    /// `segmentation`: try `UDP_SEGMENT` (off: one message per datagram, as `sendmmsg` alone).
    pub fn new(segmentation: bool) -> DatagramSender {
        DatagramSender { segmentation }
    }

    /// Sends `batch` from `socket`. A datagram the kernel refuses (a full send buffer, an
    /// unreachable destination) is dropped, as with `sendto`.
    pub fn send(&mut self, socket: &UdpSocket, batch: &[Transmit]) -> Sent {
        let runs = runs(batch, self.segmentation);
        let mut sent = Sent::default();
        let mut next = 0;
        while next < runs.len() {
            let end = (next + MAX_MESSAGES).min(runs.len());
            match send_runs(socket, batch, &runs[next..end]) {
                Ok(0) => break,
                Ok(messages) => {
                    for run in &runs[next..next + messages] {
                        sent += run_sent(batch, run);
                    }
                    next += messages;
                }
                Err(e) if runs[next].count > 1 && (refuses_segmentation(&e) || too_big_to_segment(&e)) => {
                    if refuses_segmentation(&e) {
                        tracing::info!(error = %e, "the kernel does not segment UDP for this socket; one datagram per message");
                        self.segmentation = false;
                    }
                    // One datagram per message (IP fragments them if they exceed the path's MTU).
                    let run = runs[next];
                    let singles: Vec<Run> =
                        (run.first..run.first + run.count).map(|i| Run { first: i, count: 1, segment: 0 }).collect();
                    for single in &singles {
                        if let Ok(1) = send_runs(socket, batch, std::slice::from_ref(single)) {
                            sent += run_sent(batch, single);
                        }
                    }
                    next += 1;
                }
                Err(e) => {
                    // The first message failed: skip it, send the rest.
                    tracing::debug!(error = %e, dest = %batch[runs[next].first].destination, "relay send failed");
                    next += 1;
                }
            }
        }
        sent
    }
}

fn run_sent(batch: &[Transmit], run: &Run) -> Sent {
    let datagrams = &batch[run.first..run.first + run.count];
    Sent {
        datagrams: run.count as u64,
        bytes: datagrams.iter().map(|t| t.contents.len() as u64).sum(),
        segmented: if run.count > 1 { run.count as u64 } else { 0 },
        messages: 1,
    }
}

/// EIO: the device cannot checksum a segmented message; EINVAL/ENOPROTOOPT: the kernel does
/// not know `UDP_SEGMENT`.
fn refuses_segmentation(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT))
}

/// EMSGSIZE: a segment is larger than the path's MTU allows (the kernel does not fragment a
/// segmented message); only that destination is concerned.
fn too_big_to_segment(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(libc::EMSGSIZE)
}

/// Cuts `batch` into messages: runs of consecutive datagrams to one destination, all of the
/// first one's size but the last, which may be shorter (what `UDP_SEGMENT` accepts).
fn runs(batch: &[Transmit], segmentation: bool) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::with_capacity(batch.len());
    // Whether the current run may still grow (it ends at a datagram shorter than its segment).
    let mut open = false;
    let mut bytes = 0;
    for (i, t) in batch.iter().enumerate() {
        let len = t.contents.len();
        if let Some(run) = runs.last_mut()
            && segmentation
            && open
            && batch[run.first].destination == t.destination
            && len > 0
            && len <= run.segment
            && run.count < MAX_SEGMENTS
            && bytes + len <= MAX_SEGMENTED_BYTES
        {
            run.count += 1;
            bytes += len;
            open = len == run.segment;
            continue;
        }
        runs.push(Run { first: i, count: 1, segment: len });
        bytes = len;
        open = len > 0;
    }
    runs
}

/// A control buffer holding one `UDP_SEGMENT` message (a `u16`), aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct SegmentControl([u8; 32]);

/// One `sendmmsg` call for `runs` (at most [`MAX_MESSAGES`]); the number of messages sent.
fn send_runs(socket: &UdpSocket, batch: &[Transmit], runs: &[Run]) -> std::io::Result<usize> {
    let addrs: Vec<SockAddr> = runs.iter().map(|run| SockAddr::from(batch[run.first].destination)).collect();
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(batch.len());
    for run in runs {
        for t in &batch[run.first..run.first + run.count] {
            // The kernel only reads through `iov_base` (sendmmsg), whatever its type says.
            iovecs.push(libc::iovec { iov_base: t.contents.as_ptr() as *mut libc::c_void, iov_len: t.contents.len() });
        }
    }
    let mut controls = vec![SegmentControl([0; 32]); runs.len()];
    // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes.
    let (space, len) = unsafe { (libc::CMSG_SPACE(2) as usize, libc::CMSG_LEN(2) as usize) };
    debug_assert!(space <= std::mem::size_of::<SegmentControl>());
    let mut messages: Vec<libc::mmsghdr> = Vec::with_capacity(runs.len());
    // One pointer to the iovecs, offset per message (no borrow of `iovecs` is taken again).
    let iov_base = iovecs.as_mut_ptr();
    let mut iov_at = 0;
    for ((run, addr), control) in runs.iter().zip(&addrs).zip(controls.iter_mut()) {
        // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_name = addr.as_ptr() as *mut libc::c_void;
        header.msg_namelen = addr.len();
        header.msg_iov = iov_base.wrapping_add(iov_at);
        header.msg_iovlen = run.count as _;
        iov_at += run.count;
        if run.count > 1 {
            header.msg_control = control.0.as_mut_ptr() as *mut libc::c_void;
            header.msg_controllen = space as _;
            // SAFETY: `header` points at `control`, which is aligned for `cmsghdr` and has
            // room for one header and a u16 (`space` bytes); CMSG_FIRSTHDR is non-null then.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&header);
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = UDP_SEGMENT;
                (*cmsg).cmsg_len = len as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, run.segment as u16);
            }
        }
        messages.push(libc::mmsghdr { msg_hdr: header, msg_len: 0 });
    }
    // SAFETY: every pointer in `messages` (addresses, iovecs, payloads, controls) points into
    // `addrs`, `iovecs`, `batch` and `controls`, which outlive the call and are not moved
    // during it; `messages.len()` is the array's length.
    let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), messages.as_mut_ptr(), messages.len() as _, 0) };
    if sent < 0 { Err(std::io::Error::last_os_error()) } else { Ok(sent as usize) }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
    use std::time::Duration;

    use str0m::net::{Protocol, Transmit};

    use super::{DatagramSender, Run, runs};

    fn transmit(to: SocketAddr, len: usize, fill: u8) -> Transmit {
        let source = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        Transmit { proto: Protocol::Udp, source, destination: to, contents: vec![fill; len].into() }
    }

    fn run(first: usize, count: usize, segment: usize) -> Run {
        Run { first, count, segment }
    }

    #[test]
    fn runs_join_equal_datagrams_to_one_destination_and_end_at_a_shorter_one() {
        let (a, b) = (SocketAddr::from((Ipv4Addr::LOCALHOST, 1)), SocketAddr::from((Ipv4Addr::LOCALHOST, 2)));
        let batch = vec![
            transmit(a, 1200, 1),
            transmit(a, 1200, 2),
            transmit(a, 700, 3), // shorter: ends the run
            transmit(a, 700, 4), // a new run
            transmit(b, 700, 5), // another destination
            transmit(b, 900, 6), // longer than the run's segment
            transmit(b, 100, 7),
        ];
        assert_eq!(runs(&batch, true), vec![run(0, 3, 1200), run(3, 1, 700), run(4, 1, 700), run(5, 2, 900)]);
        // Without segmentation every datagram is its own message.
        assert_eq!(runs(&batch, false).len(), batch.len());
        assert!(runs(&[], true).is_empty());
    }

    #[test]
    fn runs_stay_within_the_kernels_limits() {
        let a = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
        let many: Vec<Transmit> = (0..150).map(|_| transmit(a, 100, 0)).collect();
        assert_eq!(runs(&many, true), vec![run(0, 64, 100), run(64, 64, 100), run(128, 22, 100)]);
        let large: Vec<Transmit> = (0..60).map(|_| transmit(a, 1400, 0)).collect();
        let cut = runs(&large, true);
        assert!(cut.iter().all(|r| r.count * 1400 <= 65_000), "{cut:?}");
        assert_eq!(cut.iter().map(|r| r.count).sum::<usize>(), 60);
        // Empty datagrams never join a run.
        assert_eq!(runs(&[transmit(a, 0, 0), transmit(a, 0, 0)], true).len(), 2);
    }

    /// Over a path whose MTU is smaller than the packets the kernel refuses the segmented message
    /// (EMSGSIZE): the run is sent again a datagram at a time (fragmented by IP) and arrives;
    /// segmentation stays on. Runs in a network namespace of its own (root only).
    #[test]
    fn a_run_over_a_small_mtu_is_sent_again_a_datagram_at_a_time() {
        let outcome = std::thread::spawn(|| {
            // SAFETY: unshare only moves this thread into a new network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            let up = std::process::Command::new("ip").args(["link", "set", "lo", "up", "mtu", "1280"]).status();
            if !up.is_ok_and(|s| s.success()) {
                return None;
            }
            let receivers: Vec<UdpSocket> =
                (0..2).map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()).collect();
            let to: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
            let batch = vec![
                transmit(to[0], 1400, 1),
                transmit(to[0], 1400, 2),
                transmit(to[1], 300, 3),
                transmit(to[1], 300, 4),
            ];
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let mut sender = DatagramSender::new(true);
            let sent = sender.send(&socket, &batch);
            let mut buf = [0u8; 2048];
            let mut got = Vec::new();
            for receiver in &receivers {
                receiver.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                for _ in 0..2 {
                    got.push(receiver.recv(&mut buf).map(|n| (n, buf[0])).unwrap_or((0, 0)));
                }
            }
            Some((sent, sender.segmentation, got))
        })
        .join()
        .unwrap();
        let Some((sent, segmentation, got)) = outcome else {
            eprintln!("skipped: needs root to make a network namespace");
            return;
        };
        assert_eq!(got, vec![(1400, 1), (1400, 2), (300, 3), (300, 4)]);
        assert_eq!(sent.datagrams, 4);
        assert!(segmentation, "a small MTU to one destination does not turn segmentation off");
        // The 1400-byte run went singly; the 300-byte run still went as one message.
        assert_eq!((sent.messages, sent.segmented), (3, 2));
    }

    /// Every datagram arrives whole, in order per destination, however the batch was cut.
    #[test]
    fn a_mixed_batch_arrives_datagram_by_datagram() {
        let receivers: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()).collect();
        for r in &receivers {
            r.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        let to: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
        let sizes = [[1200, 1200, 1200, 566], [1041, 1041, 1040, 1040], [90, 1200, 1200, 90]];
        let mut batch = Vec::new();
        for (d, lens) in sizes.iter().enumerate() {
            for (i, &len) in lens.iter().enumerate() {
                batch.push(transmit(to[d], len, (d * 10 + i) as u8));
            }
        }
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut sender = DatagramSender::new(true);
        let sent = sender.send(&socket, &batch);
        assert_eq!(sent.datagrams, 12);
        assert_eq!(sent.bytes, batch.iter().map(|t| t.contents.len() as u64).sum::<u64>());
        if sender.segmentation {
            // [1200 ×3, 566] [1041 ×2, 1040] [1040] [90] [1200 ×2, 90]
            assert_eq!(sent.messages, 5);
            assert_eq!(sent.segmented, 4 + 3 + 3);
        }
        let mut buf = [0u8; 2048];
        for (d, lens) in sizes.iter().enumerate() {
            for (i, &len) in lens.iter().enumerate() {
                let n = receivers[d].recv(&mut buf).unwrap();
                assert_eq!(n, len, "destination {d}, datagram {i}");
                assert!(buf[..n].iter().all(|&b| b == (d * 10 + i) as u8), "destination {d}, datagram {i}");
            }
        }
    }
}
