//! Light players: many str0m players driven by one thread over epoll, that count what the relay
//! sends them from the RTP headers instead of decrypting it.
//!
//! A full player ([`super::peer`]) is a thread that decrypts every packet and rebuilds frames:
//! about a core per 600 players of a 1 Mbit/s stream here, so on a 2-core machine the generator,
//! not the relay, bounds the audience a benchmark can show. A light player still does everything
//! a browser does on the wire (ICE, DTLS, SRTCP, consent checks, a clean close, all through
//! str0m), but once connected it keeps RTP away from str0m and reads only the clear header:
//! payload type, sequence number, timestamp and marker. A video frame counts as received when
//! every packet from the one after the previous frame's marker to its own marker arrived, so a
//! frame missing any packet is lost, as it would be for a decoder. What it cannot check is the
//! payload (SRTP authentication, the frame's sequence number inside): the load test keeps some
//! full players among the light ones for that.
//!
//! Light players send no NACKs and no receiver reports of RTP (str0m never sees it), so the
//! relay retransmits nothing to them: their loss is the raw one.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{Timespec, epoll};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};

use super::peer::{Counters, SEQUENCE_CAP};

/// The longest the hub sleeps between two looks at its sockets (datagrams wait in the socket
/// buffers meanwhile: ~170 per second per player of a 1 Mbit/s stream, a few per look).
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// The longest between two visits to every player (stop flags, str0m timeouts).
const MAX_WAIT: Duration = Duration::from_millis(5);
/// How long a closing player may take to send its goodbye (RTCP BYE, DTLS close_notify).
const CLOSE_GRACE: Duration = Duration::from_millis(200);
/// Room for readiness events per `epoll_wait` at least (grown to the number of players).
const EVENTS: usize = 256;

/// A thread that drives light players; stops them all (cleanly) when dropped.
pub struct LightHub {
    joins: mpsc::Sender<LightPlayer>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LightHub {
    pub fn start(name: &str) -> Result<LightHub, String> {
        let (joins, arrivals) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
        let hub_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || Hub { epoll, players: Vec::new(), next_scan: Instant::now() }.run(&arrivals, &hub_stop))
            .map_err(|e| e.to_string())?;
        Ok(LightHub { joins, stop, thread: Some(thread) })
    }

    /// Hands a connected-to-be player to the hub: `rtc` has accepted `answer`, whose payload
    /// types say which RTP is video and which audio.
    pub(super) fn join(
        &self,
        rtc: Rtc,
        socket: UdpSocket,
        answer: &str,
        counters: Arc<Counters>,
        stop: Arc<AtomicBool>,
        publisher_epoch: Option<Instant>,
    ) -> Result<(), String> {
        let video_pts = payload_types(answer, "vp8");
        if video_pts.is_empty() {
            return Err("answer without VP8".to_owned());
        }
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let player = LightPlayer {
            rtc,
            socket,
            local,
            counters,
            stop,
            video_pts,
            audio_pts: payload_types(answer, "opus"),
            frames: FrameCounter::default(),
            publisher_epoch,
            deadline: Instant::now(),
            connected: false,
            closing_since: None,
            done: false,
        };
        self.joins.send(player).map_err(|_| "light hub is gone".to_owned())
    }
}

impl Drop for LightHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Payload types the SDP maps to `codec` (`a=rtpmap:<pt> <codec>/...`, case-insensitive).
fn payload_types(sdp: &str, codec: &str) -> Vec<u8> {
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a=rtpmap:"))
        .filter_map(|map| {
            let (pt, encoding) = map.split_once(' ')?;
            let name = encoding.split('/').next()?;
            name.eq_ignore_ascii_case(codec).then(|| pt.parse().ok()).flatten()
        })
        .collect()
}

struct Hub {
    epoll: OwnedFd,
    /// Slots indexed by the epoll user data; a finished player leaves `None`.
    players: Vec<Option<LightPlayer>>,
    /// When the next player's str0m timeout is due (or the next look at the stop flags).
    next_scan: Instant,
}

impl Hub {
    fn run(mut self, arrivals: &mpsc::Receiver<LightPlayer>, stop: &AtomicBool) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(EVENTS);
        let mut buffer = vec![0u8; 2000];
        loop {
            let stopping = stop.load(Ordering::Acquire);
            while let Ok(player) = arrivals.try_recv() {
                self.add(player);
            }
            if stopping {
                for player in self.players.iter_mut().flatten() {
                    player.stop.store(true, Ordering::Release);
                }
                self.next_scan = Instant::now();
            }
            // Sleep, then take whatever arrived meanwhile: a thread that waits in epoll_wait is
            // woken by each datagram, and on loopback the sender pays for that wake-up (an IPI
            // here): the relay's own cost would then depend on how the generator waits.
            let wait = self.next_scan.saturating_duration_since(Instant::now()).min(POLL_INTERVAL);
            std::thread::sleep(wait);
            // One look at every socket per turn (room for all of them), so that a stream of
            // datagrams cannot keep the hub from its timeouts and its players' closes.
            events.clear();
            events.reserve(self.players.len().max(EVENTS));
            let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
            match epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut events), Some(&zero)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "light hub: epoll_wait failed");
                    return;
                }
            }
            for event in &events {
                if let Some(Some(player)) = self.players.get_mut(event.data.u64() as usize) {
                    player.read_all(&mut buffer);
                }
            }
            let now = Instant::now();
            if now >= self.next_scan {
                self.scan(now);
                if stopping && self.players.iter().all(Option::is_none) {
                    return;
                }
            }
        }
    }

    fn add(&mut self, mut player: LightPlayer) {
        let slot = self.players.iter().position(Option::is_none).unwrap_or(self.players.len());
        let data = epoll::EventData::new_u64(slot as u64);
        if let Err(err) = epoll::add(&self.epoll, &player.socket, data, epoll::EventFlags::IN) {
            tracing::warn!(error = %err, "light hub: cannot watch a player's socket");
            player.counters.closed.store(true, Ordering::Release);
            return;
        }
        player.drain();
        self.next_scan = self.next_scan.min(player.deadline);
        if slot == self.players.len() {
            self.players.push(Some(player));
        } else {
            self.players[slot] = Some(player);
        }
    }

    /// Runs the str0m timeouts that are due, starts the closes asked for and removes the
    /// players that are done.
    fn scan(&mut self, now: Instant) {
        let mut next = now + MAX_WAIT;
        for slot in &mut self.players {
            let Some(player) = slot else { continue };
            player.tick(now);
            if player.done {
                let _ = epoll::delete(&self.epoll, &player.socket);
                player.counters.closed.store(true, Ordering::Release);
                *slot = None;
                continue;
            }
            next = next.min(player.deadline);
        }
        // Not sooner than the next look at the sockets: a player's str0m timers (consent
        // checks, RTCP) need no finer grain, and a timeout already due cannot make the hub spin.
        self.next_scan = next.max(now + POLL_INTERVAL);
    }
}

struct LightPlayer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    video_pts: Vec<u8>,
    audio_pts: Vec<u8>,
    frames: FrameCounter,
    /// The publisher's RTP time origin, to time frames (see [`super::peer::MediaPeer::epoch`]).
    publisher_epoch: Option<Instant>,
    /// str0m's next timeout.
    deadline: Instant,
    /// ICE+DTLS connected: RTP from now on is counted here, not handed to str0m.
    connected: bool,
    closing_since: Option<Instant>,
    done: bool,
}

impl LightPlayer {
    /// Reads every datagram queued on the socket.
    fn read_all(&mut self, buffer: &mut [u8]) {
        while !self.done {
            match self.socket.recv_from(buffer) {
                Ok((n, source)) => self.receive(&buffer[..n], source),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.done = true,
            }
        }
    }

    fn receive(&mut self, datagram: &[u8], source: SocketAddr) {
        if self.connected
            && let Some(rtp) = RtpHeader::parse(datagram)
        {
            self.counters.bytes.fetch_add(datagram.len() as u64, Ordering::Relaxed);
            if self.video_pts.contains(&rtp.payload_type) {
                if self.frames.packet(rtp.sequence, rtp.timestamp, rtp.marker) {
                    self.counters.video_frames.fetch_add(1, Ordering::Relaxed);
                    let latency = self.publisher_epoch.map_or(0, |epoch| frame_latency_us(epoch, rtp.timestamp));
                    if let (Ok(mut seen), Ok(mut latencies)) =
                        (self.counters.video_timestamps.lock(), self.counters.frame_latency_us.lock())
                        && seen.len() < SEQUENCE_CAP
                    {
                        seen.push(rtp.timestamp);
                        latencies.push(latency);
                    }
                }
            } else if self.audio_pts.contains(&rtp.payload_type) {
                // Audio frames are one packet each.
                self.counters.audio_frames.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, datagram) else { return };
        if self.rtc.handle_input(Input::Receive(Instant::now(), receive)).is_err() {
            self.done = true;
            return;
        }
        self.drain();
    }

    /// The hub's periodic visit: the str0m timeout if due, and the close if asked for.
    fn tick(&mut self, now: Instant) {
        if self.stop.load(Ordering::Acquire) {
            // `MediaPeer::vanish` marks the peer closed first: it goes quiet without a goodbye.
            if self.counters.closed.load(Ordering::Acquire) {
                self.done = true;
                return;
            }
            match self.closing_since {
                None => {
                    self.closing_since = Some(now);
                    if self.rtc.close().is_err() {
                        self.done = true;
                        return;
                    }
                    self.drain();
                }
                Some(since) if now - since > CLOSE_GRACE => self.done = true,
                Some(_) => {}
            }
        }
        if !self.done && now >= self.deadline {
            if self.rtc.handle_input(Input::Timeout(now)).is_err() {
                self.done = true;
                return;
            }
            self.drain();
        }
    }

    /// Sends what str0m has to send and takes its events, up to its next timeout.
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(Event::Connected)) => {
                    self.connected = true;
                    self.counters.connected.store(true, Ordering::Release);
                }
                Ok(Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected))) => {
                    self.done = true;
                    return;
                }
                Ok(Output::Event(_)) => {}
                Ok(Output::Timeout(at)) => {
                    self.deadline = at;
                    break;
                }
                Err(_) => {
                    self.done = true;
                    return;
                }
            }
        }
        if !self.rtc.is_alive() {
            self.done = true;
        }
    }
}

/// Microseconds from the write of the frame with RTP time `timestamp` (90 kHz, counted from
/// `epoch`; a generator's run is far shorter than the 13 h the 32 bits last) to now.
fn frame_latency_us(epoch: Instant, timestamp: u32) -> u32 {
    let written = epoch + Duration::from_micros(u64::from(timestamp) * 1000 / 90);
    Instant::now().saturating_duration_since(written).as_micros().min(u128::from(u32::MAX)) as u32
}

/// The clear part of an RTP header that a light player reads (RFC 3550 §5.1; SRTP encrypts
/// only the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RtpHeader {
    payload_type: u8,
    marker: bool,
    sequence: u16,
    timestamp: u32,
}

impl RtpHeader {
    /// The header of an RTP packet, or `None` for anything else (STUN, DTLS, RTCP: RFC 7983
    /// demultiplexing by the first byte, RFC 5761 by the second).
    fn parse(datagram: &[u8]) -> Option<RtpHeader> {
        let header = datagram.get(..12)?;
        if header[0] >> 6 != 2 || (192..=223).contains(&header[1]) {
            return None;
        }
        Some(RtpHeader {
            payload_type: header[1] & 0x7f,
            marker: header[1] & 0x80 != 0,
            sequence: u16::from_be_bytes([header[2], header[3]]),
            timestamp: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
        })
    }
}

/// Counts complete video frames from one SSRC's sequence numbers, timestamps and markers.
#[derive(Debug, Default)]
struct FrameCounter {
    /// Sequence number of the last packet (extended past 16 bits).
    last: Option<i64>,
    /// Sequence number of the last packet that ended a frame (marker set).
    last_marker: Option<i64>,
    /// Timestamp of the frame being received.
    timestamp: Option<u32>,
    /// No packet of the frame being received is missing so far.
    intact: bool,
}

impl FrameCounter {
    /// Takes one packet; true when it completes an intact frame. A frame is intact when its
    /// first packet directly follows the previous frame's last one and none of its packets is
    /// missing. Late (reordered or duplicate) packets are ignored: the frame they belonged to
    /// was already counted as lost.
    fn packet(&mut self, sequence: u16, timestamp: u32, marker: bool) -> bool {
        let extended = match self.last {
            None => i64::from(sequence),
            Some(last) => last + i64::from(sequence.wrapping_sub(last as u16) as i16),
        };
        if self.last.is_some_and(|last| extended <= last) {
            return false;
        }
        if self.timestamp != Some(timestamp) {
            self.timestamp = Some(timestamp);
            self.intact = self.last_marker == Some(extended - 1);
        } else if self.last != Some(extended - 1) {
            self.intact = false;
        }
        self.last = Some(extended);
        if !marker {
            return false;
        }
        self.last_marker = Some(extended);
        std::mem::take(&mut self.intact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(sequence, timestamp, marker)` packets; returns the timestamps counted complete.
    fn complete(packets: &[(u16, u32, bool)]) -> Vec<u32> {
        let mut counter = FrameCounter::default();
        packets.iter().filter(|(s, t, m)| counter.packet(*s, *t, *m)).map(|(_, t, _)| *t).collect()
    }

    #[test]
    fn counts_frames_whose_every_packet_arrived() {
        // The first frame is not counted: its head may have been missed before the first packet.
        let packets = [(10, 100, true), (11, 200, false), (12, 200, false), (13, 200, true), (14, 300, true)];
        assert_eq!(complete(&packets), vec![200, 300]);
    }

    #[test]
    fn a_missing_packet_loses_its_frame_only() {
        // Lost: 22 (inside frame 200), 25 (head of frame 400) and 27 (all of frame 500, or the
        // head of 600: a header cannot tell, so 600 counts as lost too).
        let packets = [
            (20, 100, true),
            (21, 200, false),
            (23, 200, true),
            (24, 300, true),
            (26, 400, true),
            (28, 600, true),
            (29, 700, false),
            (30, 700, true),
        ];
        assert_eq!(complete(&packets), vec![300, 700]);
    }

    #[test]
    fn sequence_numbers_wrap_and_late_packets_are_ignored() {
        let packets = [(65534, 1, true), (65535, 2, true), (0, 3, false), (1, 3, true), (0, 3, true), (2, 4, true)];
        assert_eq!(complete(&packets), vec![2, 3, 4]);
    }

    #[test]
    fn reads_rtp_headers_and_leaves_other_datagrams_to_str0m() {
        let mut rtp = vec![0x80, 0x80 | 96, 0x12, 0x34, 0, 0, 0x01, 0x00, 1, 2, 3, 4];
        rtp.extend_from_slice(&[0; 20]);
        assert_eq!(
            RtpHeader::parse(&rtp),
            Some(RtpHeader { payload_type: 96, marker: true, sequence: 0x1234, timestamp: 256 })
        );
        let rtcp_receiver_report = [0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(RtpHeader::parse(&rtcp_receiver_report), None);
        let stun = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0];
        assert_eq!(RtpHeader::parse(&stun), None);
        let dtls = [22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(RtpHeader::parse(&dtls), None);
        assert_eq!(RtpHeader::parse(&rtp[..11]), None);
    }

    #[test]
    fn finds_payload_types_by_codec() {
        let sdp = "v=0\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=rtpmap:111 opus/48000/2\r\n\
                   a=rtpmap:98 vp8/90000\r\n";
        assert_eq!(payload_types(sdp, "vp8"), vec![96, 98]);
        assert_eq!(payload_types(sdp, "opus"), vec![111]);
        assert!(payload_types(sdp, "h264").is_empty());
    }
}
