//! The I/O around one shard's sans-IO [`Engine`]: its thread, its UDP socket, the wall clock,
//! the command channel from the [`super::Relay`] handle and the event channel to the rest of
//! the server.
//!
//! Loop: take pending commands (each answered after its outputs are flushed, so a caller sees
//! the events a command caused before its reply); `handle_timeout`; then `recv_from` with a
//! read timeout of min(the engine's next deadline, 10 ms) so commands wait at most ~10 ms.
//! After every step the engine's queued datagrams go to the socket and its events to the
//! channel. The socket's traffic counters are kept here, as datagrams pass the socket.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::engine::Engine;
use super::{Command, RelayError, RelayEvent, Shared};

/// Longest the loop blocks on the socket, so commands are noticed.
const MAX_WAIT: Duration = Duration::from_millis(10);
const RECV_BUF: usize = 2048;

pub(crate) struct Shard {
    engine: Engine,
    socket: UdpSocket,
    events: UnboundedSender<RelayEvent>,
    shared: Arc<Shared>,
    read_timeout: Duration,
}

impl Shard {
    pub fn new(
        engine: Engine,
        socket: UdpSocket,
        events: UnboundedSender<RelayEvent>,
        shared: Arc<Shared>,
    ) -> Result<Shard, RelayError> {
        socket.set_read_timeout(Some(MAX_WAIT)).map_err(|e| RelayError::Unavailable(e.to_string()))?;
        Ok(Shard { engine, socket, events, shared, read_timeout: MAX_WAIT })
    }

    /// Runs until every [`super::Relay`] handle is dropped.
    pub fn run(mut self, commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            loop {
                match commands.try_recv() {
                    Ok(command) => self.command(command),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        self.engine.shutdown();
                        self.flush();
                        return;
                    }
                }
            }
            self.engine.handle_timeout(Instant::now());
            self.flush();

            let wait = self
                .engine
                .poll_timeout()
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), MAX_WAIT);
            // Whole milliseconds: fewer setsockopt calls, and timers are not finer than that.
            let wait = Duration::from_millis(wait.as_millis().max(1) as u64);
            if wait != self.read_timeout && self.socket.set_read_timeout(Some(wait)).is_ok() {
                self.read_timeout = wait;
            }
            match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    if let Some(data) = buf.get(..n) {
                        Shared::add(&self.shared.packets_in, 1);
                        Shared::add(&self.shared.bytes_in, n as u64);
                        let received = Instant::now();
                        self.engine.take_forwarded();
                        self.engine.handle_datagram(received, source, data);
                        self.flush();
                        if self.engine.take_forwarded() {
                            // From the datagram's arrival to its copies leaving for every player.
                            crate::metrics::relay_forward_latency(received.elapsed());
                        }
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => {
                    // E.g. ICMP port unreachable surfacing on Linux; nothing to do but go on.
                    tracing::debug!(error = %e, "relay recv failed");
                }
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
            Command::Play { stream, offer, reply } => {
                let result = engine.play(now, stream, &offer);
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
            Command::LinkLevels { reply } => {
                let _ = reply.send(Ok(engine.link_levels()));
            }
            Command::Close { peer, reply } => {
                let result = engine.close(peer);
                self.flush();
                let _ = reply.send(result);
            }
        }
    }

    /// Sends the engine's queued datagrams and reports its queued events.
    fn flush(&mut self) {
        while let Some(t) = self.engine.poll_transmit() {
            match self.socket.send_to(&t.contents, t.destination) {
                Ok(n) => {
                    Shared::add(&self.shared.packets_out, 1);
                    Shared::add(&self.shared.bytes_out, n as u64);
                }
                Err(e) => tracing::debug!(error = %e, dest = %t.destination, "relay send failed"),
            }
        }
        while let Some(event) = self.engine.poll_event() {
            let _ = self.events.send(event);
        }
    }
}
