//! One read of a room's snapshot for the many local members that need it at the same time.
//!
//! After Redis comes back empty, or the pub/sub connection reconnects, every member of every
//! repaired room is told to resync at once. Read one by one, 1000 members of 15 rooms sent
//! 1000 snapshot pipelines down the shared Redis connection, and requests queued behind them
//! missed their deadline (refused with 1007). A member now joins a read of its room that is
//! already under way, as long as that read started after the member learned it must resync,
//! so it never gets a state older than its cause; the node reads each room once, not once
//! per member.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::{RoomError, RoomKey, Snapshot};
use crate::metrics;

type SharedRead = Shared<BoxFuture<'static, Result<Arc<Snapshot>, RoomError>>>;

struct Read {
    started: Instant,
    result: SharedRead,
}

/// Takes a read out of the map when its reader is done with it (read or dropped).
struct Forget<'a> {
    reads: &'a SnapshotReads,
    room: &'a RoomKey,
    read: SharedRead,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.reads.forget(self.room, &self.read);
    }
}

/// Snapshot reads in flight, one per room at most.
#[derive(Default)]
pub struct SnapshotReads {
    in_flight: Mutex<HashMap<RoomKey, Read>>,
}

impl SnapshotReads {
    /// The room's state as read at or after `not_before`: joins a read already under way
    /// that started no earlier, or starts one with `fetch`. Counted in
    /// `huddle_resync_snapshots_total{source}`.
    pub async fn read<F>(&self, room: &RoomKey, not_before: Instant, fetch: F) -> Result<Arc<Snapshot>, RoomError>
    where
        F: Future<Output = Result<Snapshot, RoomError>> + Send + 'static,
    {
        let read = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
            match in_flight.get(room) {
                Some(read) if read.started >= not_before => {
                    metrics::resync_snapshot(true);
                    read.result.clone()
                }
                _ => {
                    metrics::resync_snapshot(false);
                    let result = fetch.map(|snapshot| snapshot.map(Arc::new)).boxed().shared();
                    in_flight.insert(room.clone(), Read { started: Instant::now(), result: result.clone() });
                    result
                }
            }
        };
        // Forgotten once read, or when this reader is dropped (its connection closed): a read
        // whose readers all went away is not kept for a room that may never resync again.
        let _forget = Forget { reads: self, room, read: read.clone() };
        read.await
    }

    fn forget(&self, room: &RoomKey, read: &SharedRead) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if in_flight.get(room).is_some_and(|current| current.result.ptr_eq(read)) {
            in_flight.remove(room);
        }
    }

    /// Rooms with a read under way (for tests).
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::rooms::{RoomExtraInfo, User};

    fn room() -> RoomKey {
        RoomKey { app_id: 1, room_id: "r".into() }
    }

    /// A slow read (so that others overlap it) whose result names the read: the `n`th read
    /// returns one extra-info entry with value `n`.
    fn fetch(reads: &Arc<AtomicUsize>) -> impl Future<Output = Result<Snapshot, RoomError>> + Send + 'static {
        let reads = reads.clone();
        async move {
            let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let user = User { user_id: "u".into(), user_name: "u".into() };
            let info = RoomExtraInfo { key: "read".into(), value: n.to_string(), update_user: user, update_time: 0 };
            Ok(Snapshot { extra_info: vec![info], ..Snapshot::default() })
        }
    }

    fn read_number(snapshot: Result<Arc<Snapshot>, RoomError>) -> String {
        snapshot.unwrap().extra_info[0].value.clone()
    }

    #[tokio::test]
    async fn members_resyncing_together_share_one_read() {
        let reads = Arc::new(AtomicUsize::new(0));
        let shared = SnapshotReads::default();
        let (room, asked) = (room(), Instant::now());
        let all = futures_util::future::join_all((0..50).map(|_| shared.read(&room, asked, fetch(&reads)))).await;
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(all.into_iter().all(|snapshot| read_number(snapshot) == "1"));
        assert_eq!(shared.pending(), 0, "a finished read is forgotten");
    }

    #[tokio::test]
    async fn a_read_that_started_before_the_cause_is_not_shared() {
        let reads = Arc::new(AtomicUsize::new(0));
        let shared = SnapshotReads::default();
        let room = room();
        let early = shared.read(&room, Instant::now(), fetch(&reads));
        let late = async {
            // This member learns it must resync while the early read is under way: the
            // early read may miss what caused it.
            tokio::time::sleep(Duration::from_millis(5)).await;
            shared.read(&room, Instant::now(), fetch(&reads)).await
        };
        let (early, late) = tokio::join!(early, late);
        assert_eq!((read_number(early), read_number(late)), ("1".into(), "2".into()));
        assert_eq!(shared.pending(), 0);
    }

    #[tokio::test]
    async fn a_finished_read_is_not_reused() {
        let reads = Arc::new(AtomicUsize::new(0));
        let shared = SnapshotReads::default();
        let first = read_number(shared.read(&room(), Instant::now(), fetch(&reads)).await);
        let second = read_number(shared.read(&room(), Instant::now(), fetch(&reads)).await);
        assert_eq!((first.as_str(), second.as_str()), ("1", "2"));
    }

    #[tokio::test]
    async fn a_read_whose_readers_went_away_is_forgotten() {
        let reads = Arc::new(AtomicUsize::new(0));
        let shared = SnapshotReads::default();
        let room = room();
        let abandoned =
            tokio::time::timeout(Duration::from_millis(5), shared.read(&room, Instant::now(), fetch(&reads)));
        assert!(abandoned.await.is_err(), "the reader gave up before the read finished");
        assert_eq!(shared.pending(), 0);
    }

    #[tokio::test]
    async fn rooms_are_read_apart() {
        let reads = Arc::new(AtomicUsize::new(0));
        let shared = SnapshotReads::default();
        let (room, other) = (room(), RoomKey { app_id: 1, room_id: "other".into() });
        let asked = Instant::now();
        let (a, b) = tokio::join!(shared.read(&room, asked, fetch(&reads)), shared.read(&other, asked, fetch(&reads)));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
