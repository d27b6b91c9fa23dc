//! A bounded queue of series waiting for one endpoint.
//!
//! Bounded both in profiles and in bytes, so a dead endpoint holds at most a known amount of memory; a push
//! that does not fit is refused at once (the caller counts the drop) instead of waiting, so senders never
//! block on a slow endpoint.

use pyroscope::push::RawProfileSeries;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// One series waiting to be pushed.
#[derive(Clone, Debug)]
pub struct Item {
    /// The series as it goes on the wire.
    pub series: RawProfileSeries,
    /// Bytes of raw profiles in it.
    pub bytes: u64,
}

impl Item {
    /// Profiles in it.
    pub fn profiles(&self) -> u64 {
        self.series.samples.len() as u64
    }
}

struct State {
    items: VecDeque<Item>,
    profiles: u64,
    bytes: u64,
    max_profiles: u64,
    max_bytes: u64,
    closed: bool,
}

/// The queue.
pub struct Queue {
    state: Mutex<State>,
    notify: Notify,
}

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Over the profile or byte bound.
    Full,
    /// The queue is closed (the endpoint is being removed or the component stopped).
    Closed,
}

impl Queue {
    /// An empty queue with these bounds.
    pub fn new(max_profiles: usize, max_bytes: u64) -> Queue {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                profiles: 0,
                bytes: 0,
                max_profiles: max_profiles as u64,
                max_bytes,
                closed: false,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the bounds (items already queued stay).
    pub fn set_bounds(&self, max_profiles: usize, max_bytes: u64) {
        let mut st = self.lock();
        st.max_profiles = max_profiles as u64;
        st.max_bytes = max_bytes;
    }

    /// Adds an item at the back, unless it would exceed a bound.
    pub fn push(&self, item: Item) -> Result<(), Refused> {
        let mut st = self.lock();
        if st.closed {
            return Err(Refused::Closed);
        }
        let profiles = item.profiles();
        // An item larger than the byte bound alone is still taken into an empty queue, so that one huge
        // profile is not dropped forever.
        let over = st.profiles + profiles > st.max_profiles
            || (st.bytes + item.bytes > st.max_bytes && !st.items.is_empty());
        if over {
            return Err(Refused::Full);
        }
        st.profiles += profiles;
        st.bytes += item.bytes;
        st.items.push_back(item);
        drop(st);
        self.notify.notify_one();
        Ok(())
    }

    /// Puts items back at the front (a batch that could not be sent by a worker that is stopping), bounds
    /// notwithstanding: they were accepted once.
    pub fn requeue(&self, items: Vec<Item>) {
        let mut st = self.lock();
        for item in items.into_iter().rev() {
            st.profiles += item.profiles();
            st.bytes += item.bytes;
            st.items.push_front(item);
        }
        drop(st);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Takes up to `max_items` items (at least one) totalling at most `max_bytes` (unless the first alone is
    /// larger), waiting for one to arrive. `None` when the queue is closed and empty.
    pub async fn pop_batch(&self, max_items: usize, max_bytes: u64) -> Option<Vec<Item>> {
        loop {
            let notified = self.notify.notified();
            {
                let mut st = self.lock();
                if !st.items.is_empty() {
                    let mut batch = Vec::new();
                    let mut bytes = 0;
                    while let Some(front) = st.items.front() {
                        if !batch.is_empty()
                            && (batch.len() >= max_items || bytes + front.bytes > max_bytes)
                        {
                            break;
                        }
                        let Some(item) = st.items.pop_front() else {
                            break;
                        };
                        bytes += item.bytes;
                        st.profiles -= item.profiles();
                        st.bytes -= item.bytes;
                        batch.push(item);
                    }
                    let more = !st.items.is_empty();
                    drop(st);
                    if more {
                        // Wake another worker for the rest.
                        self.notify.notify_one();
                    }
                    return Some(batch);
                }
                if st.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Refuses new items from now on; workers drain what is left, then stop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// Removes everything, returning (profiles, bytes) removed.
    pub fn clear(&self) -> (u64, u64) {
        let mut st = self.lock();
        let out = (st.profiles, st.bytes);
        st.items.clear();
        st.profiles = 0;
        st.bytes = 0;
        out
    }

    /// (profiles, bytes) waiting.
    pub fn len(&self) -> (u64, u64) {
        let st = self.lock();
        (st.profiles, st.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyroscope::push::PushSample;

    fn item(bytes: usize) -> Item {
        Item {
            series: RawProfileSeries {
                labels: vec![],
                samples: vec![PushSample {
                    raw_profile: vec![0; bytes].into(),
                    id: String::new(),
                }],
            },
            bytes: bytes as u64,
        }
    }

    #[tokio::test]
    async fn bounds_refuse_instead_of_waiting() {
        let q = Queue::new(2, 100);
        q.push(item(10)).unwrap();
        q.push(item(10)).unwrap();
        assert_eq!(q.push(item(10)), Err(Refused::Full));
        let q = Queue::new(10, 100);
        q.push(item(60)).unwrap();
        assert_eq!(q.push(item(60)), Err(Refused::Full));
        // Alone, an oversized item is still accepted.
        let q = Queue::new(10, 100);
        q.push(item(500)).unwrap();
        assert_eq!(q.len(), (1, 500));
    }

    #[tokio::test]
    async fn batches_respect_limits_and_close_drains() {
        let q = Queue::new(100, 1000);
        for _ in 0..5 {
            q.push(item(10)).unwrap();
        }
        assert_eq!(q.pop_batch(2, 1000).await.unwrap().len(), 2);
        assert_eq!(q.pop_batch(10, 15).await.unwrap().len(), 1);
        q.close();
        assert_eq!(q.push(item(1)), Err(Refused::Closed));
        assert_eq!(q.pop_batch(10, 1000).await.unwrap().len(), 2);
        assert!(q.pop_batch(10, 1000).await.is_none());
    }

    #[tokio::test]
    async fn requeued_items_come_first() {
        let q = Queue::new(1, 1000);
        q.push(item(1)).unwrap();
        let b = q.pop_batch(1, 1000).await.unwrap();
        q.push(item(2)).unwrap();
        q.requeue(b);
        assert_eq!(q.len(), (2, 3));
        assert_eq!(q.pop_batch(1, 1000).await.unwrap()[0].bytes, 1);
    }
}
