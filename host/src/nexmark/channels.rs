//! The channel a bid came through and its URL (the `channel` and `url` fields of a bid).
//!
//! From nexmark-flink's `BidGenerator`: half of the bids come through one of four hot
//! channels (Google, Facebook, Baidu, Apple), the other half through `channel-0` …
//! `channel-9999`; each channel has one URL, `https://www.nexmark.com/<w>/<w>/<w>/item.htm?query=1`
//! with three short random words, and nine channels in ten append
//! `&channel_id=<abs(Integer.reverse(n))>`.
//!
//! The reference draws those URL words from unseeded `new Random()` instances, so its URLs
//! change from run to run. weir derives each URL from a `java.util.Random` seeded with the
//! channel number (hot channel `i` uses seed `-(i + 1)`), which keeps every run, and every
//! process, identical. The 10,004 names and URLs are built once, on first use, and bids
//! borrow them.

use std::sync::OnceLock;

use super::java_random::JavaRandom;
use super::strings::next_string;

/// One bid in `HOT_CHANNELS_RATIO` goes to a regular channel, the rest to a hot one.
const HOT_CHANNELS_RATIO: i32 = 2;
/// How many regular channels there are.
const CHANNELS_NUMBER: i32 = 10_000;
/// The hot channels, by name.
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// Names and URLs of every channel, built once.
struct ChannelTable {
    hot_urls: Vec<String>,
    names: Vec<String>,
    urls: Vec<String>,
}

fn table() -> &'static ChannelTable {
    static TABLE: OnceLock<ChannelTable> = OnceLock::new();
    TABLE.get_or_init(|| ChannelTable {
        hot_urls: (0..HOT_CHANNELS.len() as i64)
            .map(|i| base_url(&mut JavaRandom::new(-(i + 1))))
            .collect(),
        names: (0..CHANNELS_NUMBER)
            .map(|n| format!("channel-{n}"))
            .collect(),
        urls: (0..CHANNELS_NUMBER).map(channel_url).collect(),
    })
}

/// The URL of regular channel `n`.
fn channel_url(n: i32) -> String {
    let mut random = JavaRandom::new(i64::from(n));
    let mut url = base_url(&mut random);
    if random.next_int_bounded(10) > 0 {
        // Java's `Math.abs(Integer.reverse(n))`: channel 1 reverses to `Integer.MIN_VALUE`,
        // whose absolute value is itself.
        url.push_str("&channel_id=");
        url.push_str(itoa::Buffer::new().format(n.reverse_bits().wrapping_abs()));
    }
    url
}

/// `https://www.nexmark.com/<w>/<w>/<w>/item.htm?query=1`, words of 3 or 4 characters, with
/// `_` for one in 13.
fn base_url(random: &mut JavaRandom) -> String {
    let mut url = String::from("https://www.nexmark.com/");
    for _ in 0..3 {
        url.push_str(&next_string(random, 5, b'_'));
        url.push('/');
    }
    url.push_str("item.htm?query=1");
    url
}

/// Draws a bid's channel and URL, as the reference's `BidGenerator` does.
pub(crate) fn next_channel(random: &mut JavaRandom) -> (&'static str, &'static str) {
    let table = table();
    if random.next_int_bounded(HOT_CHANNELS_RATIO) > 0 {
        let i = random.next_int_bounded(HOT_CHANNELS.len() as i32) as usize;
        (HOT_CHANNELS[i], &table.hot_urls[i])
    } else {
        let n = random.next_int_bounded(CHANNELS_NUMBER) as usize;
        (&table.names[n], &table.urls[n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_bids_come_through_hot_channels() {
        // The first draws after consecutive small seeds are correlated (a known weakness of
        // Java's generator); a bid draws its channel after a dozen others.
        let hot = (0..10_000)
            .filter(|&seed| {
                let mut random = JavaRandom::new(seed);
                for _ in 0..12 {
                    random.next_int();
                }
                HOT_CHANNELS.contains(&next_channel(&mut random).0)
            })
            .count();
        assert!((4_700..5_300).contains(&hot), "{hot} hot of 10000");
    }

    #[test]
    fn a_channel_always_has_the_same_url() {
        let mut seen = std::collections::HashMap::new();
        for seed in 0..20_000 {
            let (name, url) = next_channel(&mut JavaRandom::new(seed));
            assert_eq!(*seen.entry(name).or_insert(url), url, "{name}");
        }
    }

    #[test]
    fn urls_have_the_reference_shape() {
        for url in table().urls.iter().chain(&table().hot_urls) {
            let rest = url.strip_prefix("https://www.nexmark.com/").expect(url);
            let (path, query) = rest.split_once("item.htm?query=1").expect(url);
            let words: Vec<&str> = path.split_terminator('/').collect();
            assert_eq!(words.len(), 3, "{url}");
            assert!(words.iter().all(|w| (3..=4).contains(&w.len())), "{url}");
            assert!(
                query.is_empty() || query.starts_with("&channel_id="),
                "{url}"
            );
        }
    }

    #[test]
    fn channel_ids_are_java_abs_of_the_reversed_bits() {
        // Channel 3 reverses to 0xC000_0000 = -1073741824; its absolute value is 1073741824.
        let url = &table().urls[3];
        if url.contains("&channel_id=") {
            assert!(url.ends_with("&channel_id=1073741824"), "{url}");
        }
        assert_eq!(1i32.reverse_bits().wrapping_abs(), i32::MIN);
        let with_id = table()
            .urls
            .iter()
            .filter(|u| u.contains("&channel_id="))
            .count();
        assert!((8_700..9_300).contains(&with_id), "{with_id} of 10000");
    }
}
