//! A fixed-capacity queue of one-shot timers ordered by deadline.
//!
//! The queue is a binary min-heap of slot numbers over a slot array, all inline in the
//! structure (no heap allocation, so it can live in a per-CPU area built before the
//! allocator exists, and `new` is `const`). Each slot remembers its position in the heap,
//! which makes cancellation O(log N) instead of a linear search.
//!
//! Ordering is by `(deadline, insertion sequence number)`: timers with equal deadlines fire
//! in the order they were inserted (FIFO), and because every sequence number is distinct the
//! order is total, so the heap's result never depends on its internal layout.
//!
//! The sequence number doubles as the timer's identity in [`TimerId`]: a slot is reused
//! after its timer fires or is cancelled, but the new occupant gets a new sequence number,
//! so a stale id can never cancel it. Sequence numbers are 64-bit and never wrap in
//! practice (one insertion per nanosecond would take 584 years).

use core::fmt;

/// Marks a slot that holds no pending timer (as its heap position), and the end of the free
/// list.
const NONE: u32 = u32::MAX;

/// Handle to a pending timer, returned by [`TimerQueue::insert`] and used to cancel it.
///
/// It stays unambiguous after the timer fires or is cancelled: a later timer that reuses the
/// same slot has a different sequence number, so the old handle is simply "not pending".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    slot: u32,
    seq: u64,
}

/// Why a timer operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    /// All slots are in use; the queue's capacity is the const parameter `N`.
    Full,
    /// The id does not name a pending timer: it already fired, was cancelled, or belongs to
    /// another queue.
    NotPending,
}

impl fmt::Display for TimerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("timer queue is full"),
            Self::NotPending => f.write_str("timer is not pending"),
        }
    }
}

#[derive(Clone, Copy)]
struct Slot {
    deadline: u64,
    /// Sequence number of the timer in this slot: its identity and FIFO tie-break.
    seq: u64,
    token: u64,
    /// Position in `heap` while pending, [`NONE`] while free.
    heap_pos: u32,
    /// Next free slot while free (a LIFO free list), unused while pending.
    next_free: u32,
}

impl Slot {
    const FREE: Self = Self {
        deadline: 0,
        seq: 0,
        token: 0,
        heap_pos: NONE,
        next_free: NONE,
    };
}

/// A queue of up to `N` pending timers, each an absolute deadline in nanoseconds plus an
/// opaque `u64` token for the caller (e.g. which vCPU or event to wake).
///
/// Insert, cancel and pop are O(log N); [`next_deadline`](Self::next_deadline) is O(1).
/// `N` must be below `u32::MAX` (checked at compile time).
pub struct TimerQueue<const N: usize> {
    slots: [Slot; N],
    /// `heap[..len]` holds slot numbers as a binary min-heap by `(deadline, seq)`.
    heap: [u32; N],
    len: usize,
    /// Head of the list of slots freed since they were first used.
    free_head: u32,
    /// Slots `fresh..N` have never been used; taking from here avoids initialising a free
    /// list in `new`.
    fresh: usize,
    next_seq: u64,
}

impl<const N: usize> Default for TimerQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for TimerQueue<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerQueue")
            .field("len", &self.len)
            .field("capacity", &N)
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

impl<const N: usize> TimerQueue<N> {
    /// An empty queue.
    pub const fn new() -> Self {
        const {
            assert!(
                N < NONE as usize,
                "slot numbers and heap positions are u32, with u32::MAX reserved"
            );
        }
        Self {
            slots: [Slot::FREE; N],
            heap: [0; N],
            len: 0,
            free_head: NONE,
            fresh: 0,
            next_seq: 0,
        }
    }

    /// How many timers are pending.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most timers the queue can hold.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Adds a timer that expires at `deadline_ns` and returns its id. A deadline already in
    /// the past is accepted and fires on the next [`pop_expired`](Self::pop_expired).
    ///
    /// Timers with equal deadlines fire in insertion order.
    pub fn insert(&mut self, deadline_ns: u64, token: u64) -> Result<TimerId, TimerError> {
        if self.len == N {
            return Err(TimerError::Full);
        }
        let slot = if self.free_head != NONE {
            let slot = self.free_head;
            self.free_head = self.slots[slot as usize].next_free;
            slot
        } else {
            // len < N and no recycled slot: some slot has never been used, and `N < u32::MAX`
            // so its number fits.
            let slot = self.fresh as u32;
            self.fresh += 1;
            slot
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let pos = self.len;
        self.slots[slot as usize] = Slot {
            deadline: deadline_ns,
            seq,
            token,
            heap_pos: pos as u32,
            next_free: NONE,
        };
        self.heap[pos] = slot;
        self.len += 1;
        self.sift_up(pos);
        Ok(TimerId { slot, seq })
    }

    /// Removes a pending timer and returns its token. Fails with
    /// [`TimerError::NotPending`] if the timer already fired or was cancelled (even if its
    /// slot now holds another timer).
    pub fn cancel(&mut self, id: TimerId) -> Result<u64, TimerError> {
        let pos = self.pending_pos(id).ok_or(TimerError::NotPending)?;
        Ok(self.remove_at(pos))
    }

    /// Whether `id` names a timer that is still pending in this queue.
    pub fn is_pending(&self, id: TimerId) -> bool {
        self.pending_pos(id).is_some()
    }

    /// The earliest pending deadline: what the hardware timer should be programmed for.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        Some(self.slots[self.heap[0] as usize].deadline)
    }

    /// Removes and returns the earliest timer whose deadline is at or before `now_ns`, or
    /// `None` if none has expired. Call it in a loop to drain everything due; a timer is
    /// never returned early.
    pub fn pop_expired(&mut self, now_ns: u64) -> Option<(TimerId, u64)> {
        if self.len == 0 {
            return None;
        }
        let slot_no = self.heap[0];
        let slot = &self.slots[slot_no as usize];
        if slot.deadline > now_ns {
            return None;
        }
        let id = TimerId {
            slot: slot_no,
            seq: slot.seq,
        };
        Some((id, self.remove_at(0)))
    }

    /// The heap position of the timer `id` names, if it is pending.
    fn pending_pos(&self, id: TimerId) -> Option<usize> {
        let slot = self.slots.get(id.slot as usize)?;
        (slot.heap_pos != NONE && slot.seq == id.seq).then_some(slot.heap_pos as usize)
    }

    /// Whether the timer in slot `a` fires before the one in slot `b`.
    fn before(&self, a: u32, b: u32) -> bool {
        let (a, b) = (&self.slots[a as usize], &self.slots[b as usize]);
        (a.deadline, a.seq) < (b.deadline, b.seq)
    }

    /// Puts slot number `slot` at heap position `pos` and records the position in the slot.
    fn place(&mut self, pos: usize, slot: u32) {
        self.heap[pos] = slot;
        // pos < len ≤ N < u32::MAX.
        self.slots[slot as usize].heap_pos = pos as u32;
    }

    /// Removes the timer at heap position `pos` (< len), frees its slot and returns its
    /// token.
    fn remove_at(&mut self, pos: usize) -> u64 {
        let slot = self.heap[pos];
        self.len -= 1;
        let last = self.len;
        if pos != last {
            // Fill the hole with the last element, which may belong above or below it.
            self.place(pos, self.heap[last]);
            if pos > 0 && self.before(self.heap[pos], self.heap[(pos - 1) / 2]) {
                self.sift_up(pos);
            } else {
                self.sift_down(pos);
            }
        }
        let freed = &mut self.slots[slot as usize];
        freed.heap_pos = NONE;
        freed.next_free = self.free_head;
        self.free_head = slot;
        freed.token
    }

    fn sift_up(&mut self, mut pos: usize) {
        let slot = self.heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !self.before(slot, self.heap[parent]) {
                break;
            }
            self.place(pos, self.heap[parent]);
            pos = parent;
        }
        self.place(pos, slot);
    }

    fn sift_down(&mut self, mut pos: usize) {
        let slot = self.heap[pos];
        loop {
            let left = 2 * pos + 1;
            if left >= self.len {
                break;
            }
            let right = left + 1;
            let child = if right < self.len && self.before(self.heap[right], self.heap[left]) {
                right
            } else {
                left
            };
            if !self.before(self.heap[child], slot) {
                break;
            }
            self.place(pos, self.heap[child]);
            pos = child;
        }
        self.place(pos, slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pops everything expired at `now` as (deadline-ordered) tokens.
    fn drain<const N: usize>(q: &mut TimerQueue<N>, now: u64) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some((_, token)) = q.pop_expired(now) {
            out.push(token);
        }
        out
    }

    #[test]
    fn empty_queue() {
        let mut q = TimerQueue::<4>::new();
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
        assert_eq!(q.capacity(), 4);
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.pop_expired(u64::MAX), None);
    }

    #[test]
    fn fires_in_deadline_order() {
        let mut q = TimerQueue::<8>::new();
        for (deadline, token) in [(50, 5), (10, 1), (40, 4), (20, 2), (30, 3)] {
            q.insert(deadline, token).unwrap();
        }
        assert_eq!(q.len(), 5);
        assert_eq!(q.next_deadline(), Some(10));
        assert_eq!(drain(&mut q, 9), Vec::<u64>::new());
        assert_eq!(drain(&mut q, 25), [1, 2]);
        assert_eq!(q.next_deadline(), Some(30));
        assert_eq!(drain(&mut q, u64::MAX), [3, 4, 5]);
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn equal_deadlines_fire_fifo() {
        let mut q = TimerQueue::<16>::new();
        // Interleave two deadlines so the heap has to reorder ties across levels.
        for token in 0..12 {
            let deadline = if token % 3 == 0 { 200 } else { 100 };
            q.insert(deadline, token).unwrap();
        }
        assert_eq!(drain(&mut q, 1000), [1, 2, 4, 5, 7, 8, 10, 11, 0, 3, 6, 9]);
        // Ties still FIFO after cancellations reshuffle the heap.
        let ids: Vec<TimerId> = (0..10).map(|t| q.insert(7, t).unwrap()).collect();
        q.cancel(ids[0]).unwrap();
        q.cancel(ids[4]).unwrap();
        q.cancel(ids[9]).unwrap();
        assert_eq!(drain(&mut q, 7), [1, 2, 3, 5, 6, 7, 8]);
    }

    #[test]
    fn never_fires_early() {
        let mut q = TimerQueue::<4>::new();
        q.insert(100, 1).unwrap();
        assert_eq!(q.pop_expired(0), None);
        assert_eq!(q.pop_expired(99), None);
        assert_eq!(q.len(), 1);
        let (_, token) = q.pop_expired(100).unwrap();
        assert_eq!(token, 1);
        // Deadlines in the past fire at once; the extremes of the range work.
        q.insert(0, 2).unwrap();
        q.insert(u64::MAX, 3).unwrap();
        assert_eq!(drain(&mut q, 0), [2]);
        assert_eq!(drain(&mut q, u64::MAX - 1), Vec::<u64>::new());
        assert_eq!(drain(&mut q, u64::MAX), [3]);
    }

    #[test]
    fn cancel_pending_expired_and_stale() {
        let mut q = TimerQueue::<4>::new();
        let a = q.insert(10, 0xa).unwrap();
        let b = q.insert(20, 0xb).unwrap();
        let c = q.insert(30, 0xc).unwrap();
        assert!(q.is_pending(b));
        // Pending: cancel returns the token, once.
        assert_eq!(q.cancel(b), Ok(0xb));
        assert!(!q.is_pending(b));
        assert_eq!(q.cancel(b), Err(TimerError::NotPending));
        // Expired (popped): no longer cancellable.
        let (fired, token) = q.pop_expired(15).unwrap();
        assert_eq!((fired, token), (a, 0xa));
        assert_eq!(q.cancel(a), Err(TimerError::NotPending));
        // Stale: the slot of `b` is reused by `d`, but `b` must not cancel `d`.
        let d = q.insert(5, 0xd).unwrap();
        assert_eq!(d.slot, a.slot, "LIFO free list reuses the last freed slot");
        let e = q.insert(6, 0xe).unwrap();
        assert_eq!(e.slot, b.slot);
        assert_eq!(q.cancel(b), Err(TimerError::NotPending));
        assert_eq!(q.cancel(a), Err(TimerError::NotPending));
        assert_eq!(q.len(), 3);
        assert_eq!(q.cancel(e), Ok(0xe));
        assert_eq!(drain(&mut q, 100), [0xd, 0xc]);
        assert_eq!(q.cancel(c), Err(TimerError::NotPending));
        // An id from a bigger queue (slot out of range) is not pending here.
        let mut big = TimerQueue::<64>::new();
        let mut far = big.insert(1, 1).unwrap();
        for _ in 0..10 {
            far = big.insert(1, 1).unwrap();
        }
        assert_eq!(q.cancel(far), Err(TimerError::NotPending));
    }

    #[test]
    fn full_queue() {
        let mut q = TimerQueue::<3>::new();
        let ids: Vec<TimerId> = (0..3).map(|t| q.insert(100 - t, t).unwrap()).collect();
        assert_eq!(q.insert(1, 99), Err(TimerError::Full));
        assert_eq!(q.len(), 3);
        q.cancel(ids[1]).unwrap();
        let again = q.insert(1, 99).unwrap();
        assert_eq!(q.insert(1, 100), Err(TimerError::Full));
        assert_eq!(q.next_deadline(), Some(1));
        assert_eq!(q.pop_expired(1), Some((again, 99)));

        let mut zero = TimerQueue::<0>::new();
        assert_eq!(zero.insert(1, 1), Err(TimerError::Full));
        assert_eq!(zero.next_deadline(), None);
        assert_eq!(zero.pop_expired(u64::MAX), None);
    }

    #[test]
    fn const_construction() {
        static QUEUE: spin::Mutex<TimerQueue<32>> = spin::Mutex::new(TimerQueue::new());
        let mut q = QUEUE.lock();
        q.insert(3, 4).unwrap();
        assert_eq!(q.pop_expired(3).map(|(_, t)| t), Some(4));
        assert_eq!(TimerError::Full.to_string(), "timer queue is full");
        assert!(format!("{:?}", *q).contains("capacity: 32"));
    }

    use crate::test_rng::Rng;

    /// A pending timer in the reference model.
    #[derive(Clone, Copy, Debug)]
    struct ModelTimer {
        deadline: u64,
        order: u64,
        token: u64,
        id: TimerId,
    }

    /// Runs `ops` random operations on a queue and on a sorted `Vec` model and compares every
    /// observable result.
    fn model_test<const N: usize>(seed: u64, ops: usize) {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut q = TimerQueue::<N>::new();
        // Kept sorted by (deadline, insertion order): the reference for what fires next.
        let mut model: Vec<ModelTimer> = Vec::new();
        let mut dead: Vec<TimerId> = Vec::new();
        let mut now = rng.below(1000);
        let mut order = 0u64;
        for _ in 0..ops {
            match rng.below(100) {
                0..=44 => {
                    // Insert; a narrow deadline spread forces many ties, some are past.
                    let deadline = match rng.below(4) {
                        0 => now.saturating_sub(rng.below(20)),
                        1 => now + rng.below(8),
                        _ => now + rng.below(300),
                    };
                    let token = rng.next();
                    match q.insert(deadline, token) {
                        Ok(id) => {
                            assert!(model.len() < N, "insert succeeded on a full queue");
                            let t = ModelTimer {
                                deadline,
                                order,
                                token,
                                id,
                            };
                            order += 1;
                            let at = model
                                .partition_point(|m| (m.deadline, m.order) < (deadline, t.order));
                            model.insert(at, t);
                        }
                        Err(e) => {
                            assert_eq!(e, TimerError::Full);
                            assert_eq!(model.len(), N);
                        }
                    }
                }
                45..=64 if !model.is_empty() => {
                    // Cancel a pending timer.
                    let victim = model.remove(rng.below(model.len() as u64) as usize);
                    assert_eq!(q.cancel(victim.id), Ok(victim.token));
                    dead.push(victim.id);
                }
                65..=72 if !dead.is_empty() => {
                    // Cancel a timer that already fired or was cancelled.
                    let id = dead[rng.below(dead.len() as u64) as usize];
                    assert!(!q.is_pending(id));
                    assert_eq!(q.cancel(id), Err(TimerError::NotPending));
                }
                _ => {
                    // Time passes (sometimes not at all); drain everything due.
                    now += rng.below(60);
                    while let Some((id, token)) = q.pop_expired(now) {
                        assert!(!model.is_empty(), "popped from an empty model");
                        let want = model.remove(0);
                        assert!(want.deadline <= now, "fired early");
                        assert_eq!((id, token), (want.id, want.token));
                        dead.push(id);
                    }
                    if let Some(first) = model.first() {
                        assert!(first.deadline > now, "expired timer left pending");
                    }
                }
            }
            assert_eq!(q.len(), model.len());
            assert_eq!(q.next_deadline(), model.first().map(|m| m.deadline));
            for m in model.iter().take(4) {
                assert!(q.is_pending(m.id));
            }
        }
        // Finally everything drains in model order.
        for want in model {
            assert_eq!(q.pop_expired(u64::MAX), Some((want.id, want.token)));
        }
        assert!(q.is_empty());
    }

    #[test]
    fn matches_reference_model() {
        for seed in 0..200 {
            model_test::<16>(seed, 500);
            model_test::<64>(seed + 1000, 500);
        }
        // A tiny queue is full most of the time.
        for seed in 0..50 {
            model_test::<2>(seed + 5000, 500);
        }
    }
}
