//! `java.util.Random`, bit for bit: the 48-bit linear congruential generator of the Java
//! platform (Knuth, TAOCP vol. 2, §3.2.1), with the methods the Nexmark generator draws from.
//!
//! The reference generator seeds `new Random(eventId)` for every event, so porting its
//! arithmetic exactly is what makes weir's event `n` the same as the reference's event `n`.
//! This is not a general-purpose random number generator (its low bits are weak, its period
//! is 2^48); use it only where Java compatibility is the point.

/// The multiplier of Java's LCG.
const MULTIPLIER: i64 = 0x5_DEEC_E66D;
/// The increment of Java's LCG.
const ADDEND: i64 = 0xB;
/// The state is 48 bits wide.
const MASK: i64 = (1 << 48) - 1;
/// `nextDouble` scales a 53-bit integer into [0, 1) by this factor (2^-53).
const DOUBLE_UNIT: f64 = 1.0 / (1u64 << 53) as f64;

/// A `java.util.Random` with its exact state transitions and outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaRandom {
    state: i64,
}

impl JavaRandom {
    /// `new Random(seed)`: the seed is scrambled with the multiplier and cut to 48 bits.
    pub fn new(seed: i64) -> Self {
        JavaRandom {
            state: (seed ^ MULTIPLIER) & MASK,
        }
    }

    /// `next(bits)`: advances the state and returns its top `bits` bits (1 ≤ bits ≤ 32), as
    /// Java's `(int) (state >>> (48 - bits))` does (so `next(32)` may be negative).
    fn next(&mut self, bits: u32) -> i32 {
        debug_assert!((1..=32).contains(&bits));
        self.state = self.state.wrapping_mul(MULTIPLIER).wrapping_add(ADDEND) & MASK;
        // The state is non-negative and below 2^48, so the shift is logical; the cast keeps
        // the low 32 bits, as Java's narrowing conversion does.
        (self.state >> (48 - bits)) as i32
    }

    /// `nextInt()`: 32 uniformly distributed bits.
    pub fn next_int(&mut self) -> i32 {
        self.next(32)
    }

    /// `nextInt(bound)`: uniform in `[0, bound)`, with Java's rejection loop (so the number of
    /// draws, and the state afterwards, match Java too).
    ///
    /// # Panics
    /// If `bound` is not positive (Java throws `IllegalArgumentException`).
    pub fn next_int_bounded(&mut self, bound: i32) -> i32 {
        assert!(
            bound > 0,
            "java.util.Random: bound must be positive, got {bound}"
        );
        let r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            // A power of two: take the high bits, which are the better ones of an LCG.
            return ((i64::from(bound) * i64::from(r)) >> 31) as i32;
        }
        let mut u = r;
        loop {
            let r = u % bound;
            // Java's `u - r + m < 0` overflows in 32 bits exactly when `u` falls in the
            // incomplete last bucket; that overflow is the rejection test.
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }

    /// `nextLong()`: `((long) next(32) << 32) + next(32)`, the second half sign-extended.
    pub fn next_long(&mut self) -> i64 {
        let high = i64::from(self.next(32));
        let low = i64::from(self.next(32));
        (high << 32).wrapping_add(low)
    }

    /// `nextDouble()`: 53 random bits scaled into `[0, 1)`.
    pub fn next_double(&mut self) -> f64 {
        let high = i64::from(self.next(26));
        let low = i64::from(self.next(27));
        ((high << 27) + low) as f64 * DOUBLE_UNIT
    }

    /// `nextBoolean()`: the top bit of the next state.
    pub fn next_boolean(&mut self) -> bool {
        self.next(1) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::JavaRandom;

    // Expected values follow from Java's documented algorithm (worked through by hand and
    // in a separate script) and agree with OpenJDK 17's `java.util.Random`.

    #[test]
    fn next_int_matches_java() {
        assert_eq!(JavaRandom::new(42).next_int(), -1_170_105_035);
        assert_eq!(JavaRandom::new(0).next_int(), -1_155_484_576);
    }

    #[test]
    fn next_int_bounded_matches_java() {
        // Seed 42: next(31) = 1562431130; 1562431130 % 100 = 30, % 10 = 0.
        assert_eq!(JavaRandom::new(42).next_int_bounded(100), 30);
        assert_eq!(JavaRandom::new(42).next_int_bounded(10), 0);
        assert_eq!(JavaRandom::new(0).next_int_bounded(100), 60);
        assert_eq!(JavaRandom::new(-1).next_int_bounded(13), 5);
        let mut random = JavaRandom::new(7);
        assert_eq!(random.next_int_bounded(1_000_000_007), 569_164_229);
        // Powers of two take the high bits instead of a remainder.
        assert_eq!(random.next_int_bounded(64), 40);
        assert_eq!(random.next_int_bounded(1 << 30), 804_414_742);
        assert_eq!(random.next_int_bounded(i32::MAX), 20_678_044);
    }

    #[test]
    fn next_int_bounded_rejects_like_java_for_large_bounds() {
        // With a bound of 1.5e9 about 30% of draws fall in the incomplete last bucket and are
        // drawn again; a wrong rejection test would shift every later value.
        let mut random = JavaRandom::new(123_456_789);
        let drawn: Vec<i32> = (0..5)
            .map(|_| random.next_int_bounded(1_500_000_000))
            .collect();
        assert_eq!(
            drawn,
            [
                1_426_010_965,
                981_296_483,
                547_328_344,
                838_606_290,
                465_137_554
            ]
        );
    }

    #[test]
    fn next_long_matches_java() {
        assert_eq!(JavaRandom::new(0).next_long(), -4_962_768_465_676_381_896);
        assert_eq!(JavaRandom::new(42).next_long(), -5_025_562_857_975_149_833);
    }

    #[test]
    fn next_double_matches_java() {
        assert_eq!(JavaRandom::new(0).next_double(), 0.730_967_787_376_657);
        assert_eq!(JavaRandom::new(42).next_double(), 0.727_563_680_032_868_1);
    }

    #[test]
    fn next_boolean_matches_java() {
        assert!(JavaRandom::new(42).next_boolean());
        // Seed 0: next(32) is negative, so its top bit (next(1)) is set.
        assert!(JavaRandom::new(0).next_boolean());
    }

    #[test]
    #[should_panic(expected = "bound must be positive")]
    fn non_positive_bound_is_refused() {
        JavaRandom::new(1).next_int_bounded(0);
    }
}
