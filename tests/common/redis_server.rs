//! A `redis-server` of one test's own, which the test can break: stop (SIGKILL), restart empty
//! on the same port, freeze (SIGSTOP) and thaw (SIGCONT). Dropping it always thaws and kills it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    frozen: bool,
}

/// A free port below the kernel's ephemeral range: while Redis is down, the workers' reconnect
/// attempts take local ports from that range, and one of them could otherwise land on the
/// server's own port (a TCP self-connect) and hold it.
fn free_port_outside_ephemeral_range() -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next().and_then(|low| low.parse().ok()))
        .unwrap_or(32768);
    let (first, last) = if low > 12_000 { (10_000, low - 1) } else { (low / 2, low - 1) };
    for _ in 0..200 {
        let port = rand::random_range(first..=last);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {first}..={last} for a private Redis");
}

impl RedisServer {
    /// Starts an empty Redis (no RDB, no AOF) on a free port of its own.
    pub fn start() -> RedisServer {
        let port = free_port_outside_ephemeral_range();
        let mut server = RedisServer { port, child: None, frozen: false };
        server.spawn();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "Redis on port {} is already running", self.port);
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("redis-server on port {} exited at start: {status}", self.port);
            }
            if redis_answers(self.port) {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server on port {} did not answer PING within 10 s", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        self.frozen = false;
    }

    /// Kills Redis (SIGKILL: no goodbye to its clients, all data gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL ends a stopped process too; thaw first all the same, so nothing is left
            // stopped whatever happens next.
            if self.frozen {
                try_signal(child.id(), "CONT");
                self.frozen = false;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts an empty Redis on the same port (stopping the running one first, if any).
    pub fn restart_empty(&mut self) {
        self.stop();
        let started = Instant::now();
        // The port is free once the old process is reaped; retry briefly in case the kernel
        // still holds it.
        while std::net::TcpListener::bind(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "port {} stays taken after Redis died", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn();
    }

    /// SIGSTOP: Redis keeps its connections and accepts new ones, but answers nothing.
    pub fn freeze(&mut self) {
        let pid = self.pid().expect("Redis is running");
        signal(pid, "STOP");
        self.frozen = true;
    }

    /// SIGCONT: Redis goes on with everything its clients sent meanwhile.
    pub fn thaw(&mut self) {
        let pid = self.pid().expect("Redis is running");
        signal(pid, "CONT");
        self.frozen = false;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, name: &str) {
    assert!(try_signal(pid, name), "kill -{name} {pid} failed");
}

/// Sends a signal with `kill(1)`; never panics (also called from `Drop`).
fn try_signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether a Redis answers `PING` on the port within a second (a blocking probe, no client library).
pub fn redis_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) =
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
