//! The Nexmark event generator: the online-auction stream (persons join, open auctions, bid)
//! that stream processors are compared on.
//!
//! A port of the reference generator — Apache Beam's
//! `sdks/java/testing/nexmark/.../sources/generator` and nexmark-flink's
//! `com.github.nexmark.flink.generator` (the same code, with configurable proportions and
//! the bid's `channel` and `url`). As in the reference, event `n` is computed from `n` alone:
//! its kind from `n` modulo the proportions (1 person : 3 auctions : 46 bids by default),
//! its ids from how many persons and auctions come before it, its time from
//! `base_time_ms + n × inter-event delay`, and every other field from a `java.util.Random`
//! seeded with `n` ([`java_random`]). So the stream is deterministic, can start anywhere,
//! and matches Beam's field for field (see [`Event`] for the one addition).
//!
//! This module generates records; it does not pace them in wall-clock time, publish them or
//! run queries.
//!
//! ```
//! use weir::nexmark::{Event, Generator, GeneratorConfig};
//!
//! let config = GeneratorConfig { events: Some(50), ..GeneratorConfig::default() };
//! let mut json = Vec::new();
//! for event in Generator::new(config).unwrap() {
//!     event.to_json(&mut json);
//!     json.push(b'\n');
//! }
//! assert_eq!(json.iter().filter(|&&b| b == b'\n').count(), 50);
//! ```

mod channels;
mod generator;
pub mod java_random;
mod json;
pub mod model;
mod strings;

pub use java_random::JavaRandom;
pub use model::{Auction, Bid, Person};

/// The first person id; persons are numbered on from it.
pub const FIRST_PERSON_ID: i64 = 1000;
/// The first auction id; auctions are numbered on from it.
pub const FIRST_AUCTION_ID: i64 = 1000;
/// The first of the five auction categories.
pub const FIRST_CATEGORY_ID: i64 = 10;

/// What to generate; [`Default`] is the reference's default `NexmarkConfiguration` (with
/// one event generator and a fixed event rate).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Events per second of event time; sets the time between consecutive events.
    pub first_event_rate: u32,
    /// How many events the iterator yields; `None` for no end.
    pub events: Option<u64>,
    /// Event time of event 0, ms since the epoch.
    pub base_time_ms: i64,
    /// Out of every `person + auction + bid` events, this many are persons…
    pub person_proportion: u32,
    /// …this many auctions…
    pub auction_proportion: u32,
    /// …and this many bids.
    pub bid_proportion: u32,
    /// Average size of a person in bytes (counting 8 per number), reached with `extra`.
    pub avg_person_byte_size: u32,
    /// Average size of an auction in bytes.
    pub avg_auction_byte_size: u32,
    /// Average size of a bid in bytes.
    pub avg_bid_byte_size: u32,
    /// Auctions and random bids name one of this many most recent persons.
    pub num_active_people: u32,
    /// About this many auctions are open at a time; random bids go to one of them.
    pub num_in_flight_auctions: u32,
    /// All bids but one in this many go to a hot auction.
    pub hot_auction_ratio: u32,
    /// All auctions but one in this many are by a hot seller.
    pub hot_sellers_ratio: u32,
    /// All bids but one in this many are by a hot bidder.
    pub hot_bidders_ratio: u32,
    /// Events are shuffled (deterministically) within groups of this many; 1 keeps event
    /// time in order.
    pub out_of_order_group_size: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            first_event_rate: 10_000,
            events: None,
            base_time_ms: 0,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            avg_person_byte_size: 200,
            avg_auction_byte_size: 500,
            avg_bid_byte_size: 100,
            num_active_people: 1000,
            num_in_flight_auctions: 100,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            out_of_order_group_size: 1,
        }
    }
}

/// A configuration the generator cannot work with, naming the field and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nexmark generator: {field} is {value}; it must be {requirement}")]
pub struct InvalidConfig {
    /// The [`GeneratorConfig`] field, by its Rust name.
    pub field: &'static str,
    /// The value it has.
    pub value: u64,
    /// What it must be instead.
    pub requirement: &'static str,
}

impl GeneratorConfig {
    /// Checks what the generator relies on: rates, ratios, sizes and the person and auction
    /// proportions at least 1 (bids refer to persons and auctions), and everything the
    /// reference holds in a Java `int` within its range.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let at_least_one = [
            ("first_event_rate", self.first_event_rate),
            ("person_proportion", self.person_proportion),
            ("auction_proportion", self.auction_proportion),
            ("num_active_people", self.num_active_people),
            ("hot_auction_ratio", self.hot_auction_ratio),
            ("hot_sellers_ratio", self.hot_sellers_ratio),
            ("hot_bidders_ratio", self.hot_bidders_ratio),
        ];
        let int_range = [
            ("bid_proportion", self.bid_proportion),
            ("avg_person_byte_size", self.avg_person_byte_size),
            ("avg_auction_byte_size", self.avg_auction_byte_size),
            ("avg_bid_byte_size", self.avg_bid_byte_size),
            ("num_in_flight_auctions", self.num_in_flight_auctions),
        ];
        // Well within a Java `int`, also for the sum of the proportions.
        let too_large = |&(field, value): &(&'static str, u32)| {
            (value > 1 << 28).then_some(InvalidConfig {
                field,
                value: value.into(),
                requirement: "at most 268435456",
            })
        };
        if let Some(&(field, value)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(InvalidConfig {
                field,
                value: value.into(),
                requirement: "at least 1",
            });
        }
        if let Some(error) = at_least_one.iter().chain(&int_range).find_map(too_large) {
            return Err(error);
        }
        if self.out_of_order_group_size == 0 {
            return Err(InvalidConfig {
                field: "out_of_order_group_size",
                value: 0,
                requirement: "at least 1",
            });
        }
        Ok(())
    }

    /// Persons, auctions and bids in one cycle of events (50 by default).
    pub fn total_proportion(&self) -> u32 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// Event time between consecutive events, in microseconds (100 at 10,000 events/s).
    pub fn inter_event_delay_us(&self) -> f64 {
        1_000_000.0 / f64::from(self.first_event_rate)
    }

    /// The event time of event number `n`: `base_time_ms + n × delay`, truncated to whole
    /// milliseconds, with the delay a `double` as in nexmark-flink. (Beam rounds the delay to
    /// whole microseconds first; the two agree whenever 10^6 / rate is whole, as for the
    /// default 10,000 events/s.)
    pub fn timestamp_for_event_number(&self, n: u64) -> i64 {
        self.base_time_ms + (n as f64 * self.inter_event_delay_us()) as i64 / 1000
    }

    /// Which event the `n`-th one out is: `n` itself with groups of 1, otherwise `n`
    /// shuffled within its group of `out_of_order_group_size`.
    pub fn adjusted_event_number(&self, n: u64) -> u64 {
        let group = self.out_of_order_group_size;
        (n / group) * group + n.wrapping_mul(953) % group
    }
}

/// One generated event: the record it carries.
///
/// Beyond Beam's model, bids carry nexmark-flink's `channel` and `url`; they are drawn after
/// all of Beam's fields, so those stay exactly Beam's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

impl Event {
    /// `"person"`, `"auction"` or `"bid"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Person(_) => "person",
            Event::Auction(_) => "auction",
            Event::Bid(_) => "bid",
        }
    }

    /// The record's `dateTime`: its event time, ms since the epoch.
    pub fn timestamp_ms(&self) -> i64 {
        match self {
            Event::Person(person) => person.date_time,
            Event::Auction(auction) => auction.date_time,
            Event::Bid(bid) => bid.date_time,
        }
    }

    /// Appends the record (not wrapped in the event) as a JSON object to `out`, with the
    /// field names of nexmark-flink's model and times as integer milliseconds (see
    /// [`model`]).
    pub fn to_json(&self, out: &mut Vec<u8>) {
        match self {
            Event::Person(person) => person.to_json(out),
            Event::Auction(auction) => auction.to_json(out),
            Event::Bid(bid) => bid.to_json(out),
        }
    }
}

/// The events of a [`GeneratorConfig`], in order: an iterator from event 0, and
/// [`Generator::event`] for any event directly.
#[derive(Debug, Clone)]
pub struct Generator {
    config: GeneratorConfig,
    /// The number of the event `next` yields.
    next: u64,
}

impl Generator {
    /// A generator at event 0; refuses a configuration [`GeneratorConfig::validate`] refuses.
    pub fn new(config: GeneratorConfig) -> Result<Self, InvalidConfig> {
        config.validate()?;
        Ok(Generator { config, next: 0 })
    }

    /// The configuration events are generated from.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// The `n`-th event of the stream (counting from 0), whatever the iterator's position.
    pub fn event(&self, n: u64) -> Event {
        let config = &self.config;
        let number = config.adjusted_event_number(n);
        let id = number as i64;
        let timestamp = config.timestamp_for_event_number(number);
        let mut random = JavaRandom::new(id);
        let slot = number % u64::from(config.total_proportion());
        if slot < u64::from(config.person_proportion) {
            Event::Person(generator::next_person(config, id, &mut random, timestamp))
        } else if slot < u64::from(config.person_proportion + config.auction_proportion) {
            let auction = generator::next_auction(config, number, id, &mut random, timestamp);
            Event::Auction(auction)
        } else {
            Event::Bid(generator::next_bid(config, id, &mut random, timestamp))
        }
    }

    /// A watermark to send after the `n`-th event: no later event has an earlier event time.
    pub fn watermark_ms(&self, n: u64) -> i64 {
        let group = self.config.out_of_order_group_size;
        self.config.timestamp_for_event_number((n / group) * group)
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.config.events.is_some_and(|end| self.next >= end) {
            return None;
        }
        let event = self.event(self.next);
        self.next += 1;
        Some(event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.config.events {
            Some(end) => {
                let left = usize::try_from(end.saturating_sub(self.next)).unwrap_or(usize::MAX);
                (left, Some(left))
            }
            None => (usize::MAX, None),
        }
    }
}

#[cfg(test)]
mod tests;
