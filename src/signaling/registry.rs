//! Sessions whose connection dropped, kept for the reconnect grace period. A session is
//! plain data (`Send`), so a new connection on any HTTP worker thread of this process can
//! take it over; events keep queueing into its channel meanwhile.

use std::collections::HashMap;
use std::sync::Mutex;

use std::time::{Duration, Instant};

use super::session::{self, SessionState};
use crate::rooms::{KickCause, RoomEvent};

struct Parked {
    state: SessionState,
    /// Distinguishes successive parkings of one session, so an old timer cannot end a
    /// session that was resumed and parked again.
    parking: u64,
}

#[derive(Default)]
pub struct Registry {
    parked: Mutex<HashMap<String, Parked>>,
    next_parking: Mutex<u64>,
    /// Parked sessions that were removed from their room and ended: session id → the resume
    /// token, why, and until when `resume` still says so (then it answers "not found").
    removed: Mutex<HashMap<String, Removed>>,
}

struct Removed {
    resume_token: String,
    cause: KickCause,
    until: Instant,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a session; returns the parking number its grace timer must present.
    pub fn park(&self, state: SessionState) -> u64 {
        let parking = {
            let mut next = self.next_parking.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        self.lock().insert(state.session_id.clone(), Parked { state, parking });
        parking
    }

    /// Remembers, for `keep`, that a parked session ended because it was removed from its
    /// room, so that its client's `resume` hears why.
    pub fn remember_removed(&self, state: &SessionState, cause: KickCause, keep: Duration) {
        let now = Instant::now();
        let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        removed.retain(|_, r| r.until > now);
        let record = Removed { resume_token: state.resume_token().to_owned(), cause, until: now + keep };
        removed.insert(state.session_id.clone(), record);
    }

    /// Why a session that a client tries to resume was removed, if it was (and the resume
    /// token matches).
    pub fn removed(&self, session_id: &str, resume_token: &str) -> Option<KickCause> {
        let removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        removed
            .get(session_id)
            .filter(|r| r.until > Instant::now() && session::tokens_match(&r.resume_token, resume_token))
            .map(|r| r.cause.clone())
    }

    /// Takes a parked session for a resuming client whose token matches.
    pub fn resume(&self, session_id: &str, resume_token: &str) -> Option<SessionState> {
        let mut parked = self.lock();
        let matches = parked.get(session_id).is_some_and(|p| p.state.resume_token_matches(resume_token));
        if matches { parked.remove(session_id).map(|p| p.state) } else { None }
    }

    /// Takes a session whose grace period ran out, if it is still the same parking.
    pub fn expire(&self, session_id: &str, parking: u64) -> Option<SessionState> {
        let mut parked = self.lock();
        if parked.get(session_id).is_some_and(|p| p.parking == parking) {
            parked.remove(session_id).map(|p| p.state)
        } else {
            None
        }
    }

    /// Takes the parked sessions whose membership a newer session took over (their user
    /// logged in again, on another worker): their queued events are read and dropped, which
    /// is fine only where no parked session can be resumed any more (a drain).
    pub fn take_replaced(&self) -> Vec<SessionState> {
        let mut parked = self.lock();
        let replaced: Vec<String> = parked
            .iter_mut()
            .filter_map(|(id, entry)| {
                let mut kicked = false;
                while let Ok(delivery) = entry.state.events.try_recv() {
                    kicked |= matches!(&delivery.event, RoomEvent::Kickout { session_id, .. } if session_id == id);
                }
                kicked.then(|| id.clone())
            })
            .collect();
        replaced.iter().filter_map(|id| parked.remove(id)).map(|entry| entry.state).collect()
    }

    /// Takes every parked session (the process is about to exit).
    pub fn take_all(&self) -> Vec<SessionState> {
        self.lock().drain().map(|(_, entry)| entry.state).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
