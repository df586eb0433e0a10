//! Batching of stream records as an event source mapping does it: up to
//! `BatchSize` records, waiting at most `MaximumBatchingWindowInSeconds` after
//! the first record of a batch arrived (a zero window invokes at once).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::stream_record::StreamRecord;

/// Records read from one shard and not yet handed to the function, in order.
#[derive(Debug)]
pub struct Batcher {
    batch_size: usize,
    window: Duration,
    /// Each record with the instant it was read.
    buf: VecDeque<(Instant, StreamRecord)>,
}

impl Batcher {
    /// A batch size of 0 is taken as 1.
    pub fn new(batch_size: u32, window: Duration) -> Self {
        Batcher {
            batch_size: usize::try_from(batch_size.max(1)).unwrap_or(usize::MAX),
            window,
            buf: VecDeque::new(),
        }
    }

    /// Add records read at `now`, after those already held.
    pub fn push(&mut self, records: impl IntoIterator<Item = StreamRecord>, now: Instant) {
        self.buf.extend(records.into_iter().map(|r| (now, r)));
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// When the oldest held record's window ends (`None` when empty).
    pub fn deadline(&self) -> Option<Instant> {
        self.buf.front().map(|(at, _)| *at + self.window)
    }

    /// The next batch if one is due at `now`: a full batch, or whatever is held
    /// once the oldest record has waited the whole window.
    pub fn ready(&mut self, now: Instant) -> Option<Vec<StreamRecord>> {
        let due = self.buf.len() >= self.batch_size || self.deadline().is_some_and(|d| now >= d);
        if due {
            self.flush()
        } else {
            None
        }
    }

    /// The next batch, due or not (a closing shard, shutdown).
    pub fn flush(&mut self) -> Option<Vec<StreamRecord>> {
        if self.buf.is_empty() {
            return None;
        }
        let n = self.batch_size.min(self.buf.len());
        Some(self.buf.drain(..n).map(|(_, r)| r).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(from: u32, n: u32) -> Vec<StreamRecord> {
        (from..from + n)
            .map(|i| StreamRecord::new(i.to_string(), serde_json::json!({ "i": i })))
            .collect()
    }

    fn seqs(batch: &[StreamRecord]) -> Vec<&str> {
        batch.iter().map(|r| r.sequence_number.as_str()).collect()
    }

    #[test]
    fn full_batches_go_at_once_in_order() {
        let t0 = Instant::now();
        let mut b = Batcher::new(2, Duration::from_secs(10));
        b.push(recs(1, 5), t0);
        assert_eq!(seqs(&b.ready(t0).unwrap()), ["1", "2"]);
        assert_eq!(seqs(&b.ready(t0).unwrap()), ["3", "4"]);
        // The fifth waits for its window.
        assert!(b.ready(t0).is_none());
        assert_eq!(b.len(), 1);
        assert!(b.ready(t0 + Duration::from_secs(9)).is_none());
        assert_eq!(seqs(&b.ready(t0 + Duration::from_secs(10)).unwrap()), ["5"]);
        assert!(b.is_empty());
        assert!(b.ready(t0 + Duration::from_secs(20)).is_none());
    }

    #[test]
    fn zero_window_invokes_at_once() {
        let t0 = Instant::now();
        let mut b = Batcher::new(100, Duration::ZERO);
        b.push(recs(1, 3), t0);
        assert_eq!(seqs(&b.ready(t0).unwrap()), ["1", "2", "3"]);
        assert!(b.ready(t0).is_none());
    }

    #[test]
    fn window_counts_from_the_first_record_of_the_batch() {
        let t0 = Instant::now();
        let w = Duration::from_millis(500);
        let mut b = Batcher::new(10, w);
        b.push(recs(1, 1), t0);
        b.push(recs(2, 2), t0 + Duration::from_millis(400));
        assert_eq!(b.deadline(), Some(t0 + w));
        assert!(b.ready(t0 + Duration::from_millis(499)).is_none());
        assert_eq!(seqs(&b.ready(t0 + w).unwrap()), ["1", "2", "3"]);
        // A later record starts a new window.
        let t1 = t0 + Duration::from_secs(2);
        b.push(recs(4, 1), t1);
        assert!(b.ready(t1).is_none());
        assert_eq!(b.deadline(), Some(t1 + w));
    }

    #[test]
    fn leftovers_keep_their_own_arrival_time() {
        let t0 = Instant::now();
        let w = Duration::from_secs(1);
        let mut b = Batcher::new(2, w);
        b.push(recs(1, 3), t0);
        assert_eq!(seqs(&b.ready(t0).unwrap()), ["1", "2"]);
        assert_eq!(b.deadline(), Some(t0 + w));
        assert_eq!(seqs(&b.flush().unwrap()), ["3"]);
        assert!(b.flush().is_none());
    }

    #[test]
    fn batch_size_zero_is_one() {
        let t0 = Instant::now();
        let mut b = Batcher::new(0, Duration::from_secs(1));
        b.push(recs(1, 2), t0);
        assert_eq!(b.ready(t0).unwrap().len(), 1);
    }
}
