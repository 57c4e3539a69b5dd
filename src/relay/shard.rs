//! The I/O around one shard's sans-IO [`Engine`]: its thread, its UDP socket, the wall clock,
//! the command channel from the [`super::Relay`] handle and the event channel to the rest of
//! the server.
//!
//! Loop: take pending commands (each answered after its outputs are flushed, so a caller sees
//! the events a command caused before its reply); read every datagram waiting (up to
//! `RECV_BATCH`) without blocking; `handle_timeout`, which sends what the batch forwarded; then
//! wait for the socket (`ppoll`) until min(the engine's next deadline, 10 ms), so commands wait
//! at most ~10 ms.
//! After every step the engine's queued datagrams go to the socket, its events to the
//! channel, and its crossings (`crossing.rs`) to the other shards' command channels — events
//! first, so what a crossing answers for has been reported before it arrives. The socket's
//! traffic counters are kept here, as datagrams pass the socket.
//!
//! Waking a sibling: a crossing is queued on the sibling's channel and, unless one is already
//! pending, a one-byte datagram is sent to its socket so its `recv_from` returns at once. A
//! one-byte datagram is nothing WebRTC sends (STUN, DTLS and RTP are longer), so it is never
//! handed to the engine.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use str0m::net::Transmit;
use tokio::sync::mpsc::UnboundedSender;

use super::engine::Engine;
use super::udp_out::DatagramSender;
use super::{Command, RelayError, RelayEvent, Shared};

/// Longest the loop blocks on the socket, so commands are noticed.
const MAX_WAIT: Duration = Duration::from_millis(10);
/// Shortest wait: a deadline already due is handled at the next turn, not spun on.
const MIN_WAIT: Duration = Duration::from_micros(200);
const RECV_BUF: usize = 2048;
/// Datagrams read per loop turn at most, so commands and timers are not starved under load.
const RECV_BATCH: usize = 32;
/// Datagrams per `sendmmsg` call at most.
const SEND_BATCH: usize = 64;

/// How a shard reaches another (or itself): its channel, its socket, its counters.
pub(crate) struct Sibling {
    pub commands: mpsc::Sender<Command>,
    /// The shard's bound socket address.
    pub addr: SocketAddr,
    /// Where a wake-up datagram is sent: `addr` with a wildcard IP made loopback.
    wake_addr: SocketAddr,
    pub shared: Arc<Shared>,
}

impl Sibling {
    pub fn new(commands: mpsc::Sender<Command>, addr: SocketAddr, shared: Arc<Shared>) -> Sibling {
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Sibling { commands, addr, wake_addr: SocketAddr::new(ip, addr.port()), shared }
    }
}

pub(crate) struct Shard {
    engine: Engine,
    socket: UdpSocket,
    events: UnboundedSender<RelayEvent>,
    /// Every shard, this one at `index`.
    siblings: Arc<Vec<Sibling>>,
    index: usize,
    /// The datagrams of one `sendmmsg` (scratch, reused).
    send_batch: Vec<Transmit>,
    sender: DatagramSender,
}

impl Shard {
    pub fn new(
        engine: Engine,
        socket: UdpSocket,
        events: UnboundedSender<RelayEvent>,
        siblings: Arc<Vec<Sibling>>,
        index: usize,
        udp_segmentation: bool,
    ) -> Result<Shard, RelayError> {
        socket.set_nonblocking(true).map_err(|e| RelayError::Unavailable(e.to_string()))?;
        if index >= siblings.len() {
            return Err(RelayError::Unavailable(format!("relay thread {index} is not among its siblings")));
        }
        Ok(Shard {
            engine,
            socket,
            events,
            siblings,
            index,
            send_batch: Vec::with_capacity(SEND_BATCH),
            sender: DatagramSender::new(udp_segmentation),
        })
    }

    /// Blocks until the socket has a datagram or `wait` has passed. `ppoll` keeps the engine's
    /// timers (str0m's pacer, its bandwidth probes) to a fraction of a millisecond, where a
    /// socket read timeout (SO_RCVTIMEO) is rounded up to the kernel's tick: a 1 ms timeout
    /// slept 8 ms on this project's VM, which stretched every probe and kept the bandwidth
    /// estimates low.
    fn wait_readable(&self, wait: Duration) {
        let mut fds = [PollFd::new(&self.socket, PollFlags::IN)];
        let timeout = Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: i64::from(wait.subsec_nanos()) };
        // An error (EINTR) only ends the wait early; the non-blocking read then finds nothing.
        let _ = poll(&mut fds, Some(&timeout));
    }

    fn shared(&self) -> &Shared {
        &self.siblings[self.index].shared
    }

    /// Runs until told to stop (the last [`super::Relay`] handle is dropped).
    pub fn run(mut self, commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            // Cleared before the channel is emptied: a crossing queued after this wakes us again.
            self.shared().wake_pending.store(false, Ordering::Release);
            loop {
                match commands.try_recv() {
                    Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                        self.engine.shutdown();
                        self.flush();
                        return;
                    }
                    Ok(command) => self.command(command),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            // Every datagram waiting, up to a budget, before the timeout below: what they made
            // the engine write to players leaves in that timeout, one str0m timeout per player
            // for the whole batch (a video frame's packets arrive back to back).
            self.engine.take_forwarded();
            let (mut first_arrival, mut woken) = (None, false);
            for _ in 0..RECV_BATCH {
                match self.socket.recv_from(&mut buf) {
                    // A sibling's wake-up: its crossing is on the channel, taken at the next turn.
                    Ok((1, _)) => woken = true,
                    Ok((n, source)) => {
                        let Some(data) = buf.get(..n) else { continue };
                        let shared = &self.siblings[self.index].shared;
                        Shared::add(&shared.packets_in, 1);
                        Shared::add(&shared.bytes_in, n as u64);
                        let received = Instant::now();
                        first_arrival.get_or_insert(received);
                        self.engine.handle_datagram(received, source, data);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        // E.g. ICMP port unreachable surfacing on Linux; nothing to do but go on.
                        tracing::debug!(error = %e, "relay recv failed");
                    }
                }
            }
            self.engine.handle_timeout(Instant::now());
            self.flush();
            if let Some(received) = first_arrival
                && self.engine.take_forwarded()
            {
                // From the batch's first datagram's arrival to its copies leaving for every player.
                crate::metrics::relay_forward_latency(received.elapsed());
            }

            if !woken {
                let wait =
                    self.engine.poll_timeout().saturating_duration_since(Instant::now()).clamp(MIN_WAIT, MAX_WAIT);
                self.wait_readable(wait);
            }
        }
    }

    /// Runs one command and answers it once what it caused has been sent and reported.
    fn command(&mut self, command: Command) {
        let now = Instant::now();
        let engine = &mut self.engine;
        match command {
            Command::Publish { stream, offer, reply } => {
                let result = engine.publish(now, stream, &offer);
                self.flush();
                let _ = reply.send(result);
            }
            Command::PullOffer { stream, reply } => {
                let result = engine.pull_offer(now, stream);
                self.flush();
                let _ = reply.send(result);
            }
            Command::PullAnswer { peer, answer, reply } => {
                let result = engine.pull_answer(now, peer, &answer);
                self.flush();
                let _ = reply.send(result);
            }
            Command::Play { stream, origin, offer, reply } => {
                let result = engine.play(now, stream, origin, &offer);
                self.flush();
                let _ = reply.send(result);
            }
            Command::Mute { stream, audio, video, reply } => {
                let result = engine.mute(now, &stream, audio, video);
                self.flush();
                let _ = reply.send(result);
            }
            Command::MutePlayer { peer, audio, video, reply } => {
                let result = engine.mute_player(now, peer, audio, video);
                self.flush();
                let _ = reply.send(result);
            }
            Command::SetPlayerLayer { peer, choice, reply } => {
                let result = engine.set_player_layer(now, peer, choice);
                self.flush();
                let _ = reply.send(result);
            }
            Command::LinkLevels { reply } => {
                let _ = reply.send(Ok(engine.link_levels()));
            }
            Command::Close { peer, reply } => {
                let result = engine.close(peer);
                self.flush();
                let _ = reply.send(result);
            }
            Command::Cross(crossing) => {
                engine.handle_crossing(now, crossing);
                self.flush();
            }
            // Handled by the loop.
            Command::Stop => {}
        }
    }

    /// Sends `batch` (see [`DatagramSender`]) and counts what left.
    fn send(&mut self, batch: &[Transmit]) {
        let sent = self.sender.send(&self.socket, batch);
        let shared = &self.siblings[self.index].shared;
        Shared::add(&shared.packets_out, sent.datagrams);
        Shared::add(&shared.bytes_out, sent.bytes);
        Shared::add(&shared.packets_segmented, sent.segmented);
        Shared::add(&shared.send_messages, sent.messages);
    }

    /// Sends the engine's queued datagrams, reports its queued events, then passes its
    /// crossings on (waking each receiving shard once).
    fn flush(&mut self) {
        let mut batch = std::mem::take(&mut self.send_batch);
        loop {
            batch.clear();
            while batch.len() < SEND_BATCH
                && let Some(t) = self.engine.poll_transmit()
            {
                batch.push(t);
            }
            if batch.is_empty() {
                break;
            }
            self.send(&batch);
        }
        self.send_batch = batch;
        while let Some(event) = self.engine.poll_event() {
            let _ = self.events.send(event);
        }
        while let Some((to, crossing)) = self.engine.poll_crossing() {
            let Some(sibling) = self.siblings.get(to) else { continue };
            // A stopped sibling drops what is sent to it; the relay is going away then.
            if sibling.commands.send(Command::Cross(crossing)).is_ok()
                && !sibling.shared.wake_pending.swap(true, Ordering::AcqRel)
                && let Err(e) = self.socket.send_to(&[0], sibling.wake_addr)
            {
                tracing::debug!(error = %e, shard = to, "relay shard wake-up failed");
            }
        }
    }
}
