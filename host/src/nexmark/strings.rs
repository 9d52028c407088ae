//! The random text of Nexmark records: words (names, e-mail parts, item names, URL parts)
//! and the `extra` padding that brings each record to its configured average size.
//!
//! Ported from the reference `StringsGenerator`; every function draws from the
//! [`JavaRandom`] in the same order and the same number of times as the reference, which is
//! what keeps the later fields of a record equal to the reference's.

use super::java_random::JavaRandom;

/// The shortest string [`next_string`] draws (before trimming).
const MIN_STRING_LENGTH: i32 = 3;

/// A random string of 3 to `max_length - 1` characters: lowercase letters, with `special`
/// in place of a letter one time in 13, trimmed of spaces at both ends (Java's
/// `String.trim`, which only meets spaces here).
pub(crate) fn next_string(random: &mut JavaRandom, max_length: i32, special: u8) -> String {
    let len = MIN_STRING_LENGTH + random.next_int_bounded(max_length - MIN_STRING_LENGTH);
    let mut s = String::with_capacity(len as usize);
    for _ in 0..len {
        if random.next_int_bounded(13) == 0 {
            s.push(char::from(special));
        } else {
            s.push(char::from(b'a' + random.next_int_bounded(26) as u8));
        }
    }
    let trimmed = s.trim_matches(|c: char| c <= ' ');
    if trimmed.len() == s.len() {
        s
    } else {
        trimmed.to_owned()
    }
}

/// A random string of exactly `length` characters, six characters per `nextInt()`.
///
/// Faithful to the reference, including its quirk: `'a' + rnd % 26` with a negative `rnd`
/// gives characters below `'a'` (`'H'` to `'` `` ` `` `'`, among them `\`), so the padding is
/// not letters only and JSON writers must escape it.
pub(crate) fn next_exact_string(random: &mut JavaRandom, length: i32) -> String {
    let mut s = String::with_capacity(length.max(0) as usize);
    let mut rnd = 0i32;
    let mut left = 0; // characters still held in `rnd`
    for _ in 0..length {
        if left == 0 {
            rnd = random.next_int();
            left = 6; // log_26(2^31)
        }
        // Java's `%` and `/` truncate toward zero, as Rust's do.
        s.push(char::from((i32::from(b'a') + rnd % 26) as u8));
        rnd /= 26;
        left -= 1;
    }
    s
}

/// Padding such that `current_size` plus its length is on average `desired_average_size`:
/// uniform within ±20% of the gap; empty if the record is already larger.
pub(crate) fn next_extra(
    random: &mut JavaRandom,
    current_size: i32,
    desired_average_size: i32,
) -> String {
    if current_size > desired_average_size {
        return String::new();
    }
    let gap = desired_average_size - current_size;
    // Java's `Math.round` (ties toward +∞); `gap * 0.2` is never a tie, and never negative.
    let delta = (f64::from(gap) * 0.2).round() as i32;
    let min_size = gap - delta;
    let size = min_size
        + if delta == 0 {
            0
        } else {
            random.next_int_bounded(2 * delta)
        };
    next_exact_string(random, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_string_is_short_lowercase_and_trimmed() {
        for seed in 0..2_000 {
            let s = next_string(&mut JavaRandom::new(seed), 20, b' ');
            assert!(s.len() < 20, "{s:?}");
            assert!(!s.starts_with(' ') && !s.ends_with(' '), "{s:?}");
            assert!(
                s.bytes().all(|b| b == b' ' || b.is_ascii_lowercase()),
                "{s:?}"
            );
        }
    }

    #[test]
    fn next_string_keeps_a_non_space_special_at_the_ends() {
        let with_underscores = (0..2_000)
            .map(|seed| next_string(&mut JavaRandom::new(seed), 5, b'_'))
            .filter(|s| s.starts_with('_') || s.ends_with('_'))
            .count();
        assert!(with_underscores > 0);
    }

    #[test]
    fn next_exact_string_has_the_length_asked_and_reference_characters() {
        for seed in 0..200 {
            let s = next_exact_string(&mut JavaRandom::new(seed), 37);
            assert_eq!(s.len(), 37);
            assert!(s.bytes().all(|b| (b'a' - 25..=b'z').contains(&b)), "{s:?}");
        }
    }

    #[test]
    fn next_exact_string_uses_negative_remainders_like_java() {
        // new Random(0).nextInt() = -1155484576; -1155484576 % 26 = -12 → 'a' - 12 = 'U'.
        let s = next_exact_string(&mut JavaRandom::new(0), 1);
        assert_eq!(s, "U");
    }

    #[test]
    fn next_extra_averages_to_the_desired_size() {
        let (current, desired) = (32, 100);
        let sizes: Vec<usize> = (0..5_000)
            .map(|seed| next_extra(&mut JavaRandom::new(seed), current, desired).len())
            .collect();
        // The gap is 68, delta round(13.6) = 14: sizes in [54, 82).
        assert!(sizes.iter().all(|&n| (54..82).contains(&n)));
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        assert!((mean - 67.5).abs() < 0.5, "mean {mean}");
    }

    #[test]
    fn next_extra_is_empty_when_the_record_is_already_larger() {
        assert_eq!(next_extra(&mut JavaRandom::new(1), 300, 200), "");
    }
}
