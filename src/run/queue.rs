//! The bounded queue of [`Batch`](super::parallel::Batch)es from the dispatching thread to one
//! shard worker. Unlike `std::sync::mpsc::sync_channel`, it does not wake a sleeping worker for
//! every batch: only once [`LazyQueue::wake_at`] batches wait (or the queue is full, or the
//! dispatcher is done), and it wakes a dispatcher waiting for room only once that many places
//! are free. A wake-up is a `futex` system call on the waker's side and a context switch on the
//! woken one's (~4-5 us each on this VM, two threads: ~7,000 a run on the default 1 GB bench
//! file). The thread that would wake the other is the busier one: a worker sleeps because the
//! dispatcher is behind, and the dispatcher because the worker is; the sleeper has time to spare
//! and can wait for two batches. Default 1 GB bench file, two threads: voluntary context
//! switches 4.1-4.5 K -> 3.3-3.4 K a run, wall time within noise (see bench/RESULTS.md, "Issue
//! 22, ninth session").

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct State<T> {
    items: VecDeque<T>,
    receiver_asleep: bool,
    sender_asleep: bool,
    /// The sender was dropped: the receiver takes what is left, then sees the end.
    sender_gone: bool,
    /// The receiver was dropped: sends fail.
    receiver_gone: bool,
}

struct LazyQueue<T> {
    state: Mutex<State<T>>,
    /// The receiver waits here for items.
    ready: Condvar,
    /// The sender waits here for room.
    room: Condvar,
    capacity: usize,
    /// A sleeping receiver is woken once this many items wait; a sleeping sender once this many
    /// places are free.
    wake_at: usize,
}

impl<T> LazyQueue<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A thread that panicked while holding the lock left the queue consistent (every
        // critical section below is a push, a pop or a flag): go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The dispatching thread's end of a [`lazy_queue`].
pub(super) struct LazySender<T>(Arc<LazyQueue<T>>);

/// A shard worker's end of a [`lazy_queue`].
pub(super) struct LazyReceiver<T>(Arc<LazyQueue<T>>);

/// Why [`LazySender::try_send`] did not queue its item, which it gives back.
pub(super) enum TrySendError<T> {
    Full(T),
    Disconnected(T),
}

/// A queue of at most `capacity` items that wakes a sleeping side only once `wake_at` items (or
/// places) are there: `1 <= wake_at <= capacity`.
pub(super) fn lazy_queue<T>(capacity: usize, wake_at: usize) -> (LazySender<T>, LazyReceiver<T>) {
    let capacity = capacity.max(1);
    let q = Arc::new(LazyQueue {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(capacity),
            receiver_asleep: false,
            sender_asleep: false,
            sender_gone: false,
            receiver_gone: false,
        }),
        ready: Condvar::new(),
        room: Condvar::new(),
        capacity,
        wake_at: wake_at.clamp(1, capacity),
    });
    (LazySender(q.clone()), LazyReceiver(q))
}

impl<T> LazySender<T> {
    /// Whether the receiver has nothing queued: it is waiting, or will be soon.
    pub(super) fn is_empty(&self) -> bool {
        self.0.lock().items.is_empty()
    }

    /// Whether the receiver was dropped (its thread stopped).
    pub(super) fn receiver_gone(&self) -> bool {
        self.0.lock().receiver_gone
    }

    /// Queues `item` unless the queue is full or the receiver is gone.
    pub(super) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let q = &*self.0;
        let mut s = q.lock();
        if s.receiver_gone {
            return Err(TrySendError::Disconnected(item));
        }
        if s.items.len() >= q.capacity {
            return Err(TrySendError::Full(item));
        }
        s.items.push_back(item);
        if s.receiver_asleep && s.items.len() >= q.wake_at {
            q.ready.notify_one();
        }
        Ok(())
    }

    /// Queues `item`, waiting for room; gives it back when the receiver is gone.
    pub(super) fn send(&self, item: T) -> Result<(), T> {
        let q = &*self.0;
        let mut s = q.lock();
        while s.items.len() >= q.capacity && !s.receiver_gone {
            // Full means at least `wake_at` items: a sleeping receiver was woken already.
            s.sender_asleep = true;
            s = q.room.wait(s).unwrap_or_else(|e| e.into_inner());
            s.sender_asleep = false;
        }
        if s.receiver_gone {
            return Err(item);
        }
        s.items.push_back(item);
        if s.receiver_asleep && s.items.len() >= q.wake_at {
            q.ready.notify_one();
        }
        Ok(())
    }
}

impl<T> Drop for LazySender<T> {
    fn drop(&mut self) {
        let q = &*self.0;
        q.lock().sender_gone = true;
        q.ready.notify_one();
    }
}

impl<T> LazyReceiver<T> {
    /// The next item if one is queued.
    pub(super) fn try_recv(&self) -> Option<T> {
        let q = &*self.0;
        let mut s = q.lock();
        let item = s.items.pop_front();
        if item.is_some() {
            self.woke_sender(&mut s);
        }
        item
    }

    /// The next item, waiting for it (until `wake_at` are queued or the sender is done);
    /// `None` once the sender is gone and the queue empty.
    pub(super) fn recv(&self) -> Option<T> {
        let q = &*self.0;
        let mut s = q.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                self.woke_sender(&mut s);
                return Some(item);
            }
            if s.sender_gone {
                return None;
            }
            s.receiver_asleep = true;
            s = q.ready.wait(s).unwrap_or_else(|e| e.into_inner());
            s.receiver_asleep = false;
        }
    }

    fn woke_sender(&self, s: &mut State<T>) {
        let q = &*self.0;
        if s.sender_asleep && q.capacity - s.items.len() >= q.wake_at {
            q.room.notify_one();
        }
    }
}

impl<T> Drop for LazyReceiver<T> {
    fn drop(&mut self) {
        let q = &*self.0;
        q.lock().receiver_gone = true;
        q.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_and_the_end_after_the_last() {
        let (tx, rx) = lazy_queue::<u32>(4, 2);
        let consumer = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(v) = rx.recv() {
                got.push(v);
            }
            got
        });
        for v in 0..10_000 {
            tx.send(v).unwrap_or_else(|_| panic!("receiver gone"));
        }
        drop(tx);
        assert_eq!(consumer.join().unwrap(), (0..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn a_sleeping_receiver_is_woken_by_the_end_with_fewer_than_wake_at_items() {
        let (tx, rx) = lazy_queue::<u32>(4, 3);
        let consumer = std::thread::spawn(move || (rx.recv(), rx.recv(), rx.recv()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(tx.try_send(7).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(tx); // one item queued, below wake_at: the end must still wake the receiver
        assert_eq!(consumer.join().unwrap(), (Some(7), None, None));
    }

    #[test]
    fn a_full_queue_refuses_try_send_and_send_waits_for_room() {
        let (tx, rx) = lazy_queue::<u32>(2, 2);
        assert!(tx.try_send(1).is_ok());
        assert!(tx.try_send(2).is_ok());
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        let producer = std::thread::spawn(move || {
            for v in 3..100 {
                tx.send(v).unwrap_or_else(|_| panic!("receiver gone"));
            }
        });
        let mut got = Vec::new();
        while let Some(v) = rx.recv() {
            got.push(v);
        }
        producer.join().unwrap();
        assert_eq!(got, (1..100).collect::<Vec<_>>());
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn sends_fail_once_the_receiver_is_gone_even_while_waiting_for_room() {
        let (tx, rx) = lazy_queue::<u32>(1, 1);
        assert!(tx.try_send(1).is_ok());
        let producer = std::thread::spawn(move || tx.send(2));
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(rx);
        assert_eq!(producer.join().unwrap(), Err(2));
        let (tx, rx) = lazy_queue::<u32>(1, 1);
        drop(rx);
        assert!(matches!(tx.try_send(5), Err(TrySendError::Disconnected(5))));
    }
}
