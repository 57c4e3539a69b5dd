//! A webhook receiver for tests: a small HTTP/1.1 server on a free port that records every
//! request and answers as the test's script says (a status, or no answer for a while).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    pub event: Value,
    pub id_header: String,
    pub signature: String,
    pub at: Instant,
    /// The status it was answered with (0: held past the sender's timeout).
    pub status: u16,
}

/// What to answer the n-th request (0-based) with.
pub enum Answer {
    Status(u16),
    /// Wait this long before answering 200 (the sender times out first).
    Stall(Duration),
}

type Script = Box<dyn Fn(usize, &Value) -> Answer + Send + Sync>;

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub port: u16,
    log: Arc<Mutex<Vec<Received>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Answers every request 200.
    pub async fn start() -> Receiver {
        Receiver::scripted(|_, _| Answer::Status(200)).await
    }

    pub async fn scripted(script: impl Fn(usize, &Value) -> Answer + Send + Sync + 'static) -> Receiver {
        Receiver::on_port(0, script).await
    }

    /// On a given port (to come back where a stopped receiver was).
    pub async fn on_port(port: u16, script: impl Fn(usize, &Value) -> Answer + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the receiver");
        let port = listener.local_addr().expect("address").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(Box::new(script));
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, task_log.clone(), script.clone()));
            }
        });
        Receiver { url: format!("http://127.0.0.1:{port}/hooks"), port, log, task: Arc::new(task) }
    }

    /// Stops accepting (connections already open end with the test).
    pub fn stop(&self) {
        self.task.abort();
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// The requests answered 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.status)).collect()
    }

    /// Waits until `done` holds for what was delivered, or panics after `limit`.
    pub async fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let delivered = self.delivered();
            if done(&delivered) {
                return delivered;
            }
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}; delivered {delivered:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn serve(mut stream: TcpStream, log: Arc<Mutex<Vec<Received>>>, script: Arc<Script>) {
    let mut buffer = Vec::new();
    loop {
        // Headers.
        let header_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
        let header = |name: &str| {
            head.lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let length: usize = header("content-length").parse().unwrap_or(0);
        while buffer.len() < header_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buffer[header_end..header_end + length]).to_string();
        buffer.drain(..header_end + length);
        let event: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let index = log.lock().unwrap().len();
        let answer = script(index, &event);
        let mut received = Received {
            body,
            event,
            id_header: header("x-huddle-webhook-id"),
            signature: header("x-huddle-webhook-signature"),
            at: Instant::now(),
            status: 0,
        };
        let status = match answer {
            Answer::Status(status) => status,
            Answer::Stall(wait) => {
                log.lock().unwrap().push(received);
                tokio::time::sleep(wait).await;
                return; // the sender gave up; drop the connection
            }
        };
        received.status = status;
        log.lock().unwrap().push(received);
        let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
