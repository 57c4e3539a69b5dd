//! The room channels this worker listens to, kept subscribed across any Redis outage.
//!
//! One task owns the subscription connection. It (re)connects with a short backoff for as
//! long as it takes, subscribes every wanted channel again on each new connection, pings the
//! server to notice a connection that went silent (a frozen Redis keeps TCP up), and tells
//! local members to resync after a reconnect (events published meanwhile were lost to them).
//! [`Subscriber::healthy`] is true only while a connection is up and every wanted channel was
//! subscribed on it; `/readyz` fails otherwise.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSubSink;

use super::contract;
use crate::metrics;
use crate::rooms::{Hub, RoomError, RoomEvent};

/// Channels per SUBSCRIBE command when subscribing everything again.
const RESUBSCRIBE_BATCH: usize = 500;
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub struct Subscriber {
    /// Channels this worker wants (rooms with local members).
    wanted: Mutex<HashSet<String>>,
    /// The live connection's command side; `None` while disconnected.
    sink: Mutex<Option<PubSubSink>>,
    /// A connection is up and every wanted channel is subscribed on it.
    healthy: AtomicBool,
    /// Connections made so far (for logs and tests of reconnection).
    connections: AtomicU64,
    timeout: Duration,
}

impl Subscriber {
    /// Starts the subscription task; it lives as long as the returned subscriber.
    pub fn start(client: redis::Client, hub: Arc<Hub>, timeout: Duration) -> Arc<Subscriber> {
        let subscriber = Arc::new(Subscriber {
            wanted: Mutex::default(),
            sink: Mutex::default(),
            healthy: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            timeout,
        });
        tokio::spawn(run(Arc::downgrade(&subscriber), client, hub));
        subscriber
    }

    fn wanted(&self) -> MutexGuard<'_, HashSet<String>> {
        self.wanted.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sink(&self) -> Option<PubSubSink> {
        self.sink.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_sink(&self, sink: Option<PubSubSink>) {
        *self.sink.lock().unwrap_or_else(|p| p.into_inner()) = sink;
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Subscribes to `channel`, returning once Redis confirmed it. The channel stays wanted
    /// even when this fails (it is subscribed again with the next connection) until
    /// [`Subscriber::unsubscribe`].
    pub async fn subscribe(&self, channel: String) -> Result<(), RoomError> {
        self.wanted().insert(channel.clone());
        let mut sink = self.connected_sink(self.timeout).await?;
        match tokio::time::timeout(self.timeout, sink.subscribe(&channel)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(RoomError::Unavailable(err.to_string())),
            Err(_) => Err(RoomError::Unavailable("subscribing timed out".into())),
        }
    }

    /// The live connection's sink, waiting up to `wait` for one (the task may be reconnecting).
    pub async fn connected_sink(&self, wait: Duration) -> Result<PubSubSink, RoomError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(sink) = self.sink().filter(|_| self.healthy()) {
                return Ok(sink);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RoomError::Unavailable("no subscription connection to Redis".into()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn unsubscribe(&self, channel: &str) {
        self.wanted().remove(channel);
        if let Some(mut sink) = self.sink() {
            // A failure leaves a subscription whose events find no local member; the next
            // connection does not subscribe it again.
            let _ = tokio::time::timeout(self.timeout, sink.unsubscribe(channel)).await;
        }
    }

    /// Subscribes every wanted channel on a fresh connection.
    async fn subscribe_all(&self, sink: &mut PubSubSink) -> Result<(), String> {
        let channels: Vec<String> = self.wanted().iter().cloned().collect();
        for batch in channels.chunks(RESUBSCRIBE_BATCH) {
            match tokio::time::timeout(self.timeout * 4, sink.subscribe(batch)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(err.to_string()),
                Err(_) => return Err("subscribing timed out".into()),
            }
        }
        Ok(())
    }
}

/// Connect, subscribe everything, deliver until the connection fails; again, forever.
async fn run(subscriber: Weak<Subscriber>, client: redis::Client, hub: Arc<Hub>) {
    let mut backoff = Duration::from_millis(50);
    let mut lost_events = false;
    loop {
        let Some(this) = subscriber.upgrade() else { return };
        let timeout = this.timeout;
        drop(this);
        let connected = tokio::time::timeout(timeout, client.get_async_pubsub()).await;
        let pubsub = match connected {
            Ok(Ok(pubsub)) => pubsub,
            outcome => {
                let error = match outcome {
                    Ok(Err(err)) => err.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::debug!(%error, "Redis subscription connection failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (mut sink, mut messages) = pubsub.split();
        let Some(this) = subscriber.upgrade() else { return };
        this.set_sink(Some(sink.clone()));
        if let Err(error) = this.subscribe_all(&mut sink).await {
            tracing::warn!(%error, "subscribing the rooms again failed; reconnecting");
            this.set_sink(None);
            drop(this);
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(50);
        let connection = this.connections.fetch_add(1, Ordering::AcqRel) + 1;
        this.healthy.store(true, Ordering::Release);
        if lost_events {
            // Events published while this worker was not subscribed are lost to its members.
            let rooms = hub.rooms();
            tracing::warn!(rooms = rooms.len(), connection, "room subscriptions restored; members resync");
            for room in rooms {
                hub.dispatch(room, RoomEvent::Resync);
            }
        }
        drop(this);
        lost_events = true;
        deliver_until_lost(&subscriber, &mut sink, &mut messages, &hub, timeout).await;
        let Some(this) = subscriber.upgrade() else { return };
        this.healthy.store(false, Ordering::Release);
        this.set_sink(None);
        drop(this);
        metrics::pubsub_disconnected();
        tokio::time::sleep(backoff).await;
    }
}

/// Delivers messages to the hub; returns when the connection ends or stops answering pings.
async fn deliver_until_lost(
    subscriber: &Weak<Subscriber>,
    sink: &mut PubSubSink,
    messages: &mut redis::aio::PubSubStream,
    hub: &Hub,
    timeout: Duration,
) {
    let period = timeout.max(Duration::from_millis(100));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => deliver(hub, &message),
                None => {
                    tracing::warn!("Redis subscription connection closed");
                    return;
                }
            },
            _ = ping.tick() => {
                if subscriber.strong_count() == 0 {
                    return;
                }
                // In subscribed mode PING answers an array (`pong`, ""), not a simple string.
                let answered = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    tracing::warn!("Redis subscription connection stopped answering");
                    return;
                }
            }
        }
    }
}

fn deliver(hub: &Hub, message: &redis::Msg) {
    let Some(room) = contract::room_of_channel(message.get_channel_name()) else { return };
    let payload = message.get_payload_bytes();
    match serde_json::from_slice::<RoomEvent>(payload) {
        Ok(event) => {
            if let RoomEvent::Broadcast { message }
            | RoomEvent::Barrage { message }
            | RoomEvent::CustomCommand { message, .. } = &event
            {
                metrics::pubsub_lag(crate::rooms::unix_millis() - message.send_time);
            }
            hub.dispatch(room, event);
        }
        Err(err) => tracing::warn!(%room, error = %err, "undecodable room event"),
    }
}
