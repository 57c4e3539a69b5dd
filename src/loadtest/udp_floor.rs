//! The kernel's floor under the relay's per-packet cost: the relay's own sending code
//! (`relay::DatagramSender`: `sendmmsg` in batches of 64) sending datagrams of the relay's size
//! and rate to as many loopback sockets as a media run has players, with no relay around it.
//! By default one message per datagram (`--segmentation off`): what any datagram costs the
//! host. With `--segmentation on` a destination's datagrams of a round go as one segmented
//! message, as the relay sends a frame cut into equal packets.
//!
//! On loopback a sender's CPU time per datagram includes the receiving side (the kernel runs
//! the receiver's UDP input in the sender's context), and both vary several-fold between hosts
//! (CPU, virtualisation, speculative-execution mitigations). Measured next to a
//! `loadtest media` run of the same shape, it tells how much of the relay's CPU per forwarded
//! packet is the host's cost of sending a datagram at all, and how much is the relay's work.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Transmit};

/// Rounds per second: the relay sends a video frame's copies together, 30 frames a second.
const ROUNDS_PER_SECOND: u32 = 30;
/// Datagrams per `sendmmsg` batch, as the relay's shard loop hands them over.
const SEND_BATCH: usize = 64;
/// The receiver's look at its sockets, as often as a light player hub looks.
const RECEIVE_INTERVAL: Duration = Duration::from_millis(1);

#[derive(Debug, clap::Args)]
pub struct UdpFloorArgs {
    /// Receiving sockets: the players of the media run to compare with.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub destinations: u32,
    /// Datagrams per second to each destination (`relayPacketsOutPerSecond` / players of the run).
    #[arg(long, default_value_t = 170, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: u32,
    /// Bytes per datagram (the run's mean: relay bytes out / packets out).
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u32).range(16..=1500))]
    pub bytes: u32,
    /// Length of the measured window.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Send a destination's datagrams of a round as one segmented message (UDP GSO).
    #[arg(long, value_enum, default_value_t = crate::config::Switch::Off)]
    pub segmentation: crate::config::Switch,
    /// CPU to pin the sending thread to (as the benchmark pins the relay).
    #[arg(long)]
    pub sender_cpu: Option<usize>,
    /// CPU to pin the receiving thread to (as the benchmark pins the generator).
    #[arg(long)]
    pub receiver_cpu: Option<usize>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct FloorReport {
    destinations: u32,
    rate: u32,
    bytes: u32,
    seconds: f64,
    datagrams_sent: u64,
    datagrams_received: u64,
    /// Messages handed to the kernel (fewer than datagrams when segmented).
    messages: u64,
    /// Sender thread CPU (user + system) per datagram sent, from `/proc/thread-self/stat`.
    sender_cpu_us_per_datagram: f64,
    sender_user_us_per_datagram: f64,
    sender_system_us_per_datagram: f64,
    /// Rounds that started later than their time by more than a round (the sender fell behind).
    late_rounds: u64,
}

pub async fn run(args: UdpFloorArgs) -> Result<(), String> {
    let report = tokio::task::spawn_blocking(move || measure(&args)).await.map_err(|e| e.to_string())??;
    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    Ok(())
}

fn measure(args: &UdpFloorArgs) -> Result<FloorReport, String> {
    let receivers: Vec<UdpSocket> = (0..args.destinations)
        .map(|_| {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e| format!("binding {} receiving sockets: {e}", args.destinations))?;
    let destinations: Vec<SocketAddr> =
        receivers.iter().map(UdpSocket::local_addr).collect::<std::io::Result<_>>().map_err(|e| e.to_string())?;
    let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let source = sender.local_addr().map_err(|e| e.to_string())?;

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (stop, received, cpu) = (Arc::clone(&stop), Arc::clone(&received), args.receiver_cpu);
        std::thread::Builder::new()
            .name("huddle-floor-rx".into())
            .spawn(move || {
                pin(cpu);
                receive(&receivers, &stop, &received);
            })
            .map_err(|e| e.to_string())?
    };

    let (rate, seconds, bytes) = (args.rate, args.seconds, args.bytes as usize);
    let sender_cpu = args.sender_cpu;
    let segmentation = args.segmentation == crate::config::Switch::On;
    let sending = std::thread::Builder::new()
        .name("huddle-floor-tx".into())
        .spawn(move || {
            pin(sender_cpu);
            let mut datagrams = crate::relay::DatagramSender::new(segmentation);
            send(&sender, &mut datagrams, source, &destinations, rate, bytes, Duration::from_secs(seconds))
        })
        .map_err(|e| e.to_string())?;
    let sent = sending.join().map_err(|_| "the sending thread panicked".to_owned())?;
    // What is still in flight reaches the sockets within a look or two.
    std::thread::sleep(RECEIVE_INTERVAL * 20);
    stop.store(true, Ordering::Relaxed);
    receiver.join().map_err(|_| "the receiving thread panicked".to_owned())?;

    let per = |ticks: u64| ticks as f64 * 1e6 / sent.clock_ticks as f64 / sent.datagrams.max(1) as f64;
    Ok(FloorReport {
        destinations: args.destinations,
        rate: args.rate,
        bytes: args.bytes,
        seconds: sent.elapsed.as_secs_f64(),
        datagrams_sent: sent.datagrams,
        datagrams_received: received.load(Ordering::Relaxed),
        messages: sent.messages,
        sender_cpu_us_per_datagram: per(sent.user_ticks + sent.system_ticks),
        sender_user_us_per_datagram: per(sent.user_ticks),
        sender_system_us_per_datagram: per(sent.system_ticks),
        late_rounds: sent.late_rounds,
    })
}

struct Sent {
    datagrams: u64,
    messages: u64,
    elapsed: Duration,
    user_ticks: u64,
    system_ticks: u64,
    clock_ticks: u64,
    late_rounds: u64,
}

/// Sends `rate` datagrams per second to each destination for `window`, in rounds of a frame:
/// each destination's datagrams of a round one after another, as a relay drains one player
/// at a time, handed to the relay's sender in batches of [`SEND_BATCH`].
fn send(
    socket: &UdpSocket,
    sender: &mut crate::relay::DatagramSender,
    source: SocketAddr,
    destinations: &[SocketAddr],
    rate: u32,
    bytes: usize,
    window: Duration,
) -> Sent {
    let payload = vec![0x80u8; bytes];
    let transmit = |destination: SocketAddr| Transmit {
        proto: Protocol::Udp,
        source,
        destination,
        contents: payload.clone().into(),
    };
    let round = Duration::from_secs(1) / ROUNDS_PER_SECOND;
    let mut batch: Vec<Transmit> = Vec::with_capacity(SEND_BATCH);
    let (mut datagrams, mut messages, mut late_rounds, mut owed) = (0u64, 0u64, 0u64, 0u64);
    let cpu_start = thread_cpu_ticks();
    let start = Instant::now();
    let mut due = start;
    for index in 1.. {
        let now = Instant::now();
        if now >= start + window {
            break;
        }
        if now < due {
            std::thread::sleep(due - now);
        } else if now - due > round {
            late_rounds += 1;
        }
        due += round;
        // Per destination this round: what the rate owes after `index` rounds, less what went.
        let total = u64::from(rate) * index / u64::from(ROUNDS_PER_SECOND);
        let per_destination = total - owed;
        owed = total;
        for &destination in destinations {
            for _ in 0..per_destination {
                batch.push(transmit(destination));
                if batch.len() == SEND_BATCH {
                    let sent = sender.send(socket, &batch);
                    (datagrams, messages) = (datagrams + sent.datagrams, messages + sent.messages);
                    batch.clear();
                }
            }
        }
        if !batch.is_empty() {
            let sent = sender.send(socket, &batch);
            (datagrams, messages) = (datagrams + sent.datagrams, messages + sent.messages);
            batch.clear();
        }
    }
    let elapsed = start.elapsed();
    let cpu_end = thread_cpu_ticks();
    let (user_ticks, system_ticks) = match (cpu_start, cpu_end) {
        (Some((u0, s0)), Some((u1, s1))) => (u1.saturating_sub(u0), s1.saturating_sub(s0)),
        _ => (0, 0),
    };
    let clock_ticks = rustix::param::clock_ticks_per_second();
    Sent { datagrams, messages, elapsed, user_ticks, system_ticks, clock_ticks, late_rounds }
}

/// Reads every socket until it is empty, once per [`RECEIVE_INTERVAL`], until `stop`.
fn receive(sockets: &[UdpSocket], stop: &AtomicBool, received: &AtomicU64) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let mut count = 0;
        for socket in sockets {
            while socket.recv(&mut buf).is_ok() {
                count += 1;
            }
        }
        received.fetch_add(count, Ordering::Relaxed);
        std::thread::sleep(RECEIVE_INTERVAL);
    }
}

/// The calling thread's user and system time in clock ticks.
fn thread_cpu_ticks() -> Option<(u64, u64)> {
    super::media::stat_user_system(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        tracing::warn!(cpu, error = %e, "could not pin the thread; measuring unpinned");
    }
}
