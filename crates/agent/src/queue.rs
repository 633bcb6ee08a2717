//! A work queue shared by threads, bounded, that can be closed (drain, then end) or aborted
//! (end now), so that no thread ever waits forever for work that will not come.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// The queue.
#[derive(Debug)]
pub struct Queue<T> {
    inner: Mutex<Inner<T>>,
    cv: Condvar,
    cap: usize,
}

#[derive(Debug)]
struct Inner<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> Queue<T> {
    /// A queue that holds at most `cap` items (`push` waits while it is full).
    pub fn new(cap: usize) -> Queue<T> {
        Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                closed: false,
            }),
            cv: Condvar::new(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A thread that panicked while holding the lock left the queue consistent: every
        // operation is a single push or pop.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an item at the back, waiting while the queue is full; false once it is closed.
    pub fn push(&self, t: T) -> bool {
        let mut g = self.lock();
        while g.items.len() >= self.cap && !g.closed {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        if g.closed {
            return false;
        }
        g.items.push_back(t);
        self.cv.notify_all();
        true
    }

    /// Adds an item at the front, whatever the bound: for work others wait on.
    pub fn push_front(&self, t: T) -> bool {
        let mut g = self.lock();
        if g.closed {
            return false;
        }
        g.items.push_front(t);
        self.cv.notify_all();
        true
    }

    /// Takes the next item, waiting for one; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut g = self.lock();
        loop {
            if let Some(t) = g.items.pop_front() {
                self.cv.notify_all();
                return Some(t);
            }
            if g.closed {
                return None;
            }
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Takes the next item if there is one.
    pub fn try_pop(&self) -> Option<T> {
        let mut g = self.lock();
        let t = g.items.pop_front();
        if t.is_some() {
            self.cv.notify_all();
        }
        t
    }

    /// No more items will come: `pop` drains what is queued, then returns `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }

    /// Ends now: queued items are dropped and every waiter returns.
    pub fn abort(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.items.clear();
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn close_drains_and_abort_ends_waiters() {
        let q = Queue::new(2);
        assert!(q.push(1) && q.push(2));
        assert!(q.push_front(0), "the front ignores the bound");
        q.close();
        assert!(!q.push(3));
        assert_eq!(
            (q.pop(), q.pop(), q.pop(), q.pop()),
            (Some(0), Some(1), Some(2), None)
        );

        let q = Arc::new(Queue::<u32>::new(1));
        let waiter = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.pop())
        };
        let pusher = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                q.push(1);
                q.push(2)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        q.abort();
        let _ = waiter.join().unwrap();
        let _ = pusher.join().unwrap();
        assert_eq!(q.try_pop(), None);
    }
}
