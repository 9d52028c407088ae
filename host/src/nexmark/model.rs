//! The three Nexmark records — a person joins, a person opens an auction, a person bids —
//! with the fields of nexmark-flink's model classes (`Person`, `Auction`, `Bid`), and their
//! JSON form.
//!
//! Numbers are Java `long`s in the reference and `i64` here; times are milliseconds since
//! the Unix epoch. In JSON the field names are the reference's (`emailAddress`, `dateTime`,
//! …) and `dateTime`/`expires` are integers (milliseconds since the epoch) rather than the
//! ISO-8601 text Flink's `Instant` would print: an integer is cheaper to write and to parse,
//! and is what weir's JSON sources take as event time.

use super::json::JsonObject;

/// A person who joined the auction site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Unique id, from [`FIRST_PERSON_ID`](super::FIRST_PERSON_ID) up.
    pub id: i64,
    /// "First Last", from short fixed lists.
    pub name: String,
    pub email_address: String,
    /// Four groups of four digits.
    pub credit_card: String,
    pub city: &'static str,
    /// A US state code, one of six.
    pub state: &'static str,
    /// When the person joined, ms since the epoch.
    pub date_time: i64,
    /// Padding to the configured average size.
    pub extra: String,
}

/// An item put up for auction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auction {
    /// Unique id, from [`FIRST_AUCTION_ID`](super::FIRST_AUCTION_ID) up.
    pub id: i64,
    pub item_name: String,
    pub description: String,
    /// In cents.
    pub initial_bid: i64,
    /// In cents; at least the initial bid.
    pub reserve: i64,
    /// When the auction opened, ms since the epoch.
    pub date_time: i64,
    /// When it closes, ms since the epoch; always after `date_time`.
    pub expires: i64,
    /// The person selling (a [`Person::id`]).
    pub seller: i64,
    /// One of five categories, from [`FIRST_CATEGORY_ID`](super::FIRST_CATEGORY_ID) up.
    pub category: i64,
    /// Padding to the configured average size.
    pub extra: String,
}

/// A bid on an auction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bid {
    /// The auction bid on (an [`Auction::id`]).
    pub auction: i64,
    /// The person bidding (a [`Person::id`]).
    pub bidder: i64,
    /// In cents.
    pub price: i64,
    /// Where the bid came from: a hot channel ("Google", …) or `channel-<n>`.
    pub channel: &'static str,
    /// The channel's URL.
    pub url: &'static str,
    /// When the bid was made, ms since the epoch.
    pub date_time: i64,
    /// Padding to the configured average size.
    pub extra: String,
}

impl Person {
    /// Appends the person as a JSON object to `out`.
    pub fn to_json(&self, out: &mut Vec<u8>) {
        JsonObject::begin(out)
            .int("id", self.id)
            .str("name", &self.name)
            .str("emailAddress", &self.email_address)
            .str("creditCard", &self.credit_card)
            .str("city", self.city)
            .str("state", self.state)
            .int("dateTime", self.date_time)
            .str("extra", &self.extra)
            .end();
    }
}

impl Auction {
    /// Appends the auction as a JSON object to `out`.
    pub fn to_json(&self, out: &mut Vec<u8>) {
        JsonObject::begin(out)
            .int("id", self.id)
            .str("itemName", &self.item_name)
            .str("description", &self.description)
            .int("initialBid", self.initial_bid)
            .int("reserve", self.reserve)
            .int("dateTime", self.date_time)
            .int("expires", self.expires)
            .int("seller", self.seller)
            .int("category", self.category)
            .str("extra", &self.extra)
            .end();
    }
}

impl Bid {
    /// Appends the bid as a JSON object to `out`.
    pub fn to_json(&self, out: &mut Vec<u8>) {
        JsonObject::begin(out)
            .int("auction", self.auction)
            .int("bidder", self.bidder)
            .int("price", self.price)
            .str("channel", self.channel)
            .str("url", self.url)
            .int("dateTime", self.date_time)
            .str("extra", &self.extra)
            .end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bid_json_has_the_reference_field_names_in_order() {
        let bid = Bid {
            auction: 1000,
            bidder: 1001,
            price: 4242,
            channel: "Google",
            url: "https://www.nexmark.com/abc/de_f/ghi/item.htm?query=1",
            date_time: 1_700_000_000_000,
            extra: "x\\y".to_owned(),
        };
        let mut out = Vec::new();
        bid.to_json(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"auction":1000,"bidder":1001,"price":4242,"channel":"Google","#,
                r#""url":"https://www.nexmark.com/abc/de_f/ghi/item.htm?query=1","#,
                r#""dateTime":1700000000000,"extra":"x\\y"}"#
            )
        );
    }

    #[test]
    fn to_json_appends_to_what_is_already_in_the_buffer() {
        let person = Person {
            id: 1000,
            name: "Kate Smith".to_owned(),
            email_address: "abc@def.com".to_owned(),
            credit_card: "0001 0002 0003 0004".to_owned(),
            city: "Boise",
            state: "ID",
            date_time: 5,
            extra: String::new(),
        };
        let mut out = b"[".to_vec();
        person.to_json(&mut out);
        assert!(out.starts_with(b"[{\"id\":1000,\"name\":\"Kate Smith\""));
        assert!(out.ends_with(b"\"dateTime\":5,\"extra\":\"\"}"));
    }
}
