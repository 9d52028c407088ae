//! Processing time: the host's wall clock, for processing-time windows. It never moves back
//! (a wall-clock step backwards would make windows late), and it restamps events with the
//! time they reach the window.

use crate::operator::EventBatch;

/// The wall clock in ms since the Unix epoch, never moving back.
#[derive(Debug, Default)]
pub struct ProcessingClock {
    last: i64,
}

impl ProcessingClock {
    /// The current processing time.
    pub fn now(&mut self) -> i64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
            .unwrap_or_default();
        self.last = self.last.max(wall);
        self.last
    }

    /// Sets the time of every event of `batch` to the current processing time; returns it.
    pub fn stamp(&mut self, batch: &mut EventBatch) -> i64 {
        let now = self.now();
        for t in batch.packed.times.chunks_exact_mut(8) {
            t.copy_from_slice(&now.to_le_bytes());
        }
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_packed::BatchBuilder;

    #[test]
    fn events_are_stamped_with_a_clock_that_never_moves_back() {
        let mut clock = ProcessingClock { last: i64::MAX - 5 };
        assert_eq!(clock.now(), i64::MAX - 5);
        let mut clock = ProcessingClock::default();
        let mut b = BatchBuilder::new();
        b.push(b"k", 1, &[], b"x", 0);
        b.push(b"k", 2, &[], b"y", 1);
        let mut batch = EventBatch::from_source(b);
        let now = clock.stamp(&mut batch);
        assert!(now > 1_700_000_000_000);
        let view = batch.view();
        assert_eq!((view.time(0), view.time(1)), (now, now));
        assert_eq!(view.payload(1), b"y");
    }
}
