//! `nexmark-process`: the Nexmark queries that keep per-key state without windows, as keyed
//! process functions (nexmark-flink's `q3.sql` and `q4.sql`).
//!
//! Config: `{"query": "q3"}`, `{"query": "q4"}` or `{"query": "q4-average"}`.
//!
//! - **q3, local item suggestion**: `SELECT P.name, P.city, P.state, A.id FROM auction AS A
//!   INNER JOIN person AS P ON A.seller = P.id WHERE A.category = 10 AND P.state IN ('OR',
//!   'ID', 'CA')` — a regular (unwindowed) inner join. The pipeline reads two inputs named
//!   `person` (keyed by `id`) and `auction` (keyed by `seller`), so a key is one person. A
//!   matching person is kept; an auction of category 10 whose seller has not arrived yet is
//!   kept until it does; each pair is emitted once, whichever side comes second:
//!   `{"name":…,"city":…,"state":…,"id":<auction id>}`. A person outside those states is
//!   remembered as such (ids are unique), so their auctions are dropped instead of kept.
//! - **q4, average selling price per category, first stage (the winning bids)**: `SELECT
//!   MAX(B.price) AS final, A.category FROM auction A, bid B WHERE A.id = B.auction AND
//!   B.dateTime BETWEEN A.dateTime AND A.expires GROUP BY A.id, A.category`. Inputs `auction`
//!   (keyed by `id`) and `bid` (keyed by `auction`): a key is one auction. The highest price
//!   of the auction's bids within its lifetime is kept, and when event time passes the
//!   auction's `expires` (an event-time timer) one `{"auction":…,"category":…,"final":…}` is
//!   emitted at time `expires` — none for an auction without bids, as the inner join gives —
//!   and the key's state dropped. A bid that comes before its auction is kept until event
//!   time passes the bid's own time: an auction arriving later than that is late, as the
//!   watermark defines it, and could not have opened before the bid.
//! - **q4-average, second stage**: `SELECT Q.category, AVG(Q.final) FROM Q GROUP BY
//!   Q.category`, over the first stage's results keyed by `category`: per category the count
//!   and sum of the final prices, and for every result one update
//!   `{"category":…,"avg":…,"auctions":…}` — `avg` truncated to an integer as Flink's `AVG`
//!   of a `BIGINT` is. The newest update of a category is the query's current row.
//!
//! The inputs are told apart by the `Weir-Input` header the host gives every event of a
//! pipeline of several inputs. Events are JSON objects as weir's Nexmark generator writes
//! them (`weir nexmark`); a field a query reads must be there with its type, or the event
//! fails (and is dead-lettered) with a message naming the field.

use serde::{Deserialize, Serialize};
use serde_json::json;
use weir_sdk::json::{ObjectParser, RawObject};
use weir_sdk::{Event, Keyed, Output, Process, TimerOutput};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    query: Option<String>,
}

/// The query the operator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    Q3,
    Q4,
    Q4Average,
}

const QUERIES: &str = "\"q3\", \"q4\" and \"q4-average\"";

impl Query {
    fn from_config(config: &str) -> Result<Query, String> {
        let c: Config =
            serde_json::from_str(config).map_err(|e| format!("nexmark-process config: {e}"))?;
        match c.query.as_deref() {
            Some("q3") => Ok(Query::Q3),
            Some("q4") => Ok(Query::Q4),
            Some("q4-average") => Ok(Query::Q4Average),
            Some(other) => Err(format!(
                "nexmark-process config: unknown query {other:?} (the queries are {QUERIES})"
            )),
            None => Err(format!(
                "nexmark-process config: missing `query` (the queries are {QUERIES})"
            )),
        }
    }
}

/// The header naming an event's input.
const INPUT: &str = "Weir-Input";

/// q3: the category whose auctions are suggested, and the states whose sellers are.
const Q3_CATEGORY: i64 = 10;
const Q3_STATES: [&str; 3] = ["OR", "ID", "CA"];

/// State names.
const PERSON: &str = "person";
const AUCTIONS: &str = "auctions";
const AUCTION: &str = "auction";
const BIDS: &str = "bids";
const AVERAGE: &str = "average";

/// q3: what is known of the key's person.
#[derive(Serialize, Deserialize)]
enum Seller {
    /// In one of the states: what the results show of them.
    Local {
        name: String,
        city: String,
        state: String,
    },
    /// Elsewhere: their auctions join nothing.
    Elsewhere,
}

/// q4: the key's auction and the best price bid within its lifetime.
#[derive(Serialize, Deserialize)]
struct OpenAuction {
    category: i64,
    opened: i64,
    expires: i64,
    best: Option<i64>,
}

/// q4: a bid that came before its auction, as (time, price).
type EarlyBid = (i64, i64);

/// q4-average: the final prices seen of one category.
#[derive(Default, Serialize, Deserialize)]
struct Average {
    count: i64,
    sum: i64,
}

pub struct Nexmark {
    query: Query,
    parser: ObjectParser,
}

/// Integer field `name` of `object`.
fn int(object: &RawObject<'_>, name: &str) -> Result<i64, String> {
    let value = object
        .get(name)
        .ok_or_else(|| format!("missing field `{name}`"))?;
    value
        .as_i64()
        .ok_or_else(|| format!("field `{name}` is {}, not an integer", value.text()))
}

/// String field `name` of `object`.
fn text(object: &RawObject<'_>, name: &str) -> Result<String, String> {
    let value = object
        .get(name)
        .ok_or_else(|| format!("missing field `{name}`"))?;
    value
        .as_str()
        .map(|s| s.into_owned())
        .ok_or_else(|| format!("field `{name}` is {}, not a string", value.text()))
}

/// The event's input, by its `Weir-Input` header; an error naming the inputs expected.
fn input<'a>(event: &Event<'a>, expected: [&str; 2]) -> Result<&'a [u8], String> {
    match event.header(INPUT) {
        Some(name) if expected.iter().any(|e| e.as_bytes() == name) => Ok(name),
        Some(name) => Err(format!(
            "event of input {:?}: this query reads inputs {:?} and {:?}",
            String::from_utf8_lossy(name),
            expected[0],
            expected[1]
        )),
        None => Err(format!(
            "event without a `{INPUT}` header: this query reads inputs {:?} and {:?}",
            expected[0], expected[1]
        )),
    }
}

impl Nexmark {
    /// q3: a person or an auction of the key's person.
    fn q3(&mut self, keyed: &mut Keyed<'_>, event: &Event<'_>, out: &mut Output<'_>) -> R {
        let side = input(event, [PERSON, AUCTION])?;
        let object = event.json_object(&mut self.parser)?;
        if side == PERSON.as_bytes() {
            let state = text(&object, "state")?;
            let seller = if Q3_STATES.contains(&state.as_str()) {
                Seller::Local {
                    name: text(&object, "name")?,
                    city: text(&object, "city")?,
                    state,
                }
            } else {
                Seller::Elsewhere
            };
            if let Some(waiting) = keyed.get::<Vec<i64>>(AUCTIONS)? {
                for auction in waiting {
                    suggest(&seller, auction, out)?;
                }
                keyed.delete(AUCTIONS);
            }
            return keyed.set(PERSON, &seller);
        }
        if int(&object, "category")? != Q3_CATEGORY {
            return Ok(());
        }
        let auction = int(&object, "id")?;
        match keyed.get::<Seller>(PERSON)? {
            Some(seller) => suggest(&seller, auction, out),
            None => {
                let mut waiting: Vec<i64> = keyed.get(AUCTIONS)?.unwrap_or_default();
                waiting.push(auction);
                keyed.set(AUCTIONS, &waiting)
            }
        }
    }

    /// q4: an auction or a bid on the key's auction.
    fn q4(&mut self, keyed: &mut Keyed<'_>, event: &Event<'_>) -> R {
        let side = input(event, [AUCTION, "bid"])?;
        let object = event.json_object(&mut self.parser)?;
        if side == AUCTION.as_bytes() {
            let (opened, expires) = (int(&object, "dateTime")?, int(&object, "expires")?);
            let early: Option<Vec<EarlyBid>> = keyed.get(BIDS)?;
            if early.is_some() {
                keyed.delete(BIDS);
            }
            let best = (early.iter().flatten())
                .filter(|(t, _)| (opened..=expires).contains(t))
                .map(|&(_, price)| price)
                .max();
            keyed.register_event_timer(expires);
            let category = int(&object, "category")?;
            return keyed.set(
                AUCTION,
                &OpenAuction {
                    category,
                    opened,
                    expires,
                    best,
                },
            );
        }
        let (time, price) = (int(&object, "dateTime")?, int(&object, "price")?);
        match keyed.get::<OpenAuction>(AUCTION)? {
            Some(mut a) => {
                if (a.opened..=a.expires).contains(&time) && a.best.is_none_or(|b| price > b) {
                    a.best = Some(price);
                    keyed.set(AUCTION, &a)?;
                }
                Ok(())
            }
            None => {
                let mut early: Vec<EarlyBid> = keyed.get(BIDS)?.unwrap_or_default();
                early.push((time, price));
                keyed.register_event_timer(time);
                keyed.set(BIDS, &early)
            }
        }
    }

    /// q4: event time passed `time`: the key's auction closes, or its early bids expire.
    fn q4_timer(keyed: &mut Keyed<'_>, time: i64, out: &mut TimerOutput<'_>) -> R {
        if let Some(a) = keyed.get::<OpenAuction>(AUCTION)? {
            if a.expires > time {
                return Ok(());
            }
            keyed.delete(AUCTION);
            let Some(best) = a.best else {
                return Ok(());
            };
            let auction = key_number(keyed)?;
            return out.json(&json!({"auction": auction, "category": a.category, "final": best}));
        }
        let early: Vec<EarlyBid> = keyed.get(BIDS)?.unwrap_or_default();
        let kept: Vec<EarlyBid> = early.into_iter().filter(|&(t, _)| t > time).collect();
        if kept.is_empty() {
            keyed.delete(BIDS);
            Ok(())
        } else {
            keyed.set(BIDS, &kept)
        }
    }

    /// q4-average: one more final price of the key's category.
    fn q4_average(&mut self, keyed: &mut Keyed<'_>, event: &Event<'_>, out: &mut Output<'_>) -> R {
        let object = event.json_object(&mut self.parser)?;
        let (category, price) = (int(&object, "category")?, int(&object, "final")?);
        let mut average: Average = keyed.get(AVERAGE)?.unwrap_or_default();
        average.count += 1;
        average.sum = average
            .sum
            .checked_add(price)
            .ok_or_else(|| format!("the sum of category {category}'s prices overflows"))?;
        keyed.set(AVERAGE, &average)?;
        let avg = average.sum / average.count;
        out.event()
            .clear_headers()
            .json(&json!({"category": category, "avg": avg, "auctions": average.count}))
    }
}

type R = Result<(), String>;

/// The key as the integer it is (an auction's id in q4).
fn key_number(keyed: &Keyed<'_>) -> Result<i64, String> {
    keyed
        .key()
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| format!("key {:?} is not an integer id", keyed.key()))
}

/// q3: one result row, for `auction` of `seller` when the seller is local.
fn suggest(seller: &Seller, auction: i64, out: &mut Output<'_>) -> R {
    match seller {
        Seller::Local { name, city, state } => out
            .event()
            .clear_headers()
            .json(&json!({"name": name, "city": city, "state": state, "id": auction})),
        Seller::Elsewhere => Ok(()),
    }
}

impl Process for Nexmark {
    fn configure(config: &str) -> Result<Self, String> {
        Ok(Nexmark {
            query: Query::from_config(config)?,
            parser: ObjectParser::new(),
        })
    }

    fn on_event(&mut self, keyed: &mut Keyed<'_>, event: &Event<'_>, out: &mut Output<'_>) -> R {
        match self.query {
            Query::Q3 => self.q3(keyed, event, out),
            Query::Q4 => self.q4(keyed, event),
            Query::Q4Average => self.q4_average(keyed, event, out),
        }
    }

    fn on_timer(&mut self, keyed: &mut Keyed<'_>, time: i64, out: &mut TimerOutput<'_>) -> R {
        match self.query {
            Query::Q4 => Self::q4_timer(keyed, time, out),
            Query::Q3 | Query::Q4Average => Ok(()),
        }
    }
}

weir_sdk::export_process!(Nexmark);

#[cfg(test)]
mod tests;
