//! Deterministic message ids (`Nats-Msg-Id`): the same output of the same input always gets the
//! same id, so the sink stream's duplicate window drops what a replay after a crash publishes
//! again. An id names the pipeline and where the output came from:
//!
//! | output | id |
//! |---|---|
//! | n-th result of a source message | `<p>/<stream>/<seq>/<n>` (stateful stage: `<p>/s/<stream>/<seq>/<n>`) |
//! | n-th dead letter / late event of a source message | `<p>/[s/]dlq/<stream>/<seq>/<n>`, `<p>/[s/]late/…` |
//! | a window result or timer event | `<p>/w/<start>/<end>/<tag>`, `<p>/c/<serial>/<tag>`, `<p>/t/<time>/<tag>` |
//! | its i-th output after `[[after]]` | `<p>/<origin>/<i>` |
//! | its dead letter in `[[after]]` | `<p>/<origin>/dlq` |
//!
//! These strings are a stable format: changing one breaks deduplication across an upgrade.

use std::fmt::{self, Write};

use crate::operator::output::ResultOrigin;
use crate::sink::Scope;

/// Which kind of refused event a dead-letter id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Failed processing: to the dead-letter subject.
    Dead,
    /// Past its windows' allowed lateness: to the late subject.
    Late,
}

/// What a message id is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageId<'a> {
    /// The `n`-th result of source message `sequence` of `stream`.
    Result {
        scope: Scope,
        stream: &'a str,
        sequence: u64,
        n: u32,
    },
    /// The `n`-th refused event of source message `sequence` of `stream`.
    Refused {
        scope: Scope,
        refusal: Refusal,
        stream: &'a str,
        sequence: u64,
        n: u32,
    },
    /// A window result or timer event.
    Origin(ResultOrigin),
    /// The `index`-th `[[after]]` output made from a window result or timer event.
    Derived { origin: ResultOrigin, index: u32 },
    /// A window result or timer event an `[[after]]` operator refused.
    DerivedDead(ResultOrigin),
}

impl MessageId<'_> {
    /// Writes the id of this output of `pipeline` into `out` (cleared first).
    pub fn write(&self, pipeline: &str, out: &mut String) {
        out.clear();
        // Writing into a String cannot fail.
        let _ = write!(out, "{pipeline}/{self}");
    }
}

fn scope_prefix(scope: Scope) -> &'static str {
    match scope {
        Scope::Chain => "",
        Scope::Stateful => "s/",
    }
}

impl fmt::Display for MessageId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MessageId::Result {
                scope,
                stream,
                sequence,
                n,
            } => write!(f, "{}{stream}/{sequence}/{n}", scope_prefix(scope)),
            MessageId::Refused {
                scope,
                refusal,
                stream,
                sequence,
                n,
            } => {
                let kind = match refusal {
                    Refusal::Dead => "dlq",
                    Refusal::Late => "late",
                };
                write!(f, "{}{kind}/{stream}/{sequence}/{n}", scope_prefix(scope))
            }
            MessageId::Origin(o) => write!(f, "{o}"),
            MessageId::Derived { origin, index } => write!(f, "{origin}/{index}"),
            MessageId::DerivedDead(origin) => write!(f, "{origin}/dlq"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(m: MessageId<'_>) -> String {
        let mut s = String::from("stale");
        m.write("p", &mut s);
        s
    }

    #[test]
    fn ids_keep_their_stable_format() {
        let result = |scope| MessageId::Result {
            scope,
            stream: "IN",
            sequence: 42,
            n: 1,
        };
        assert_eq!(id(result(Scope::Chain)), "p/IN/42/1");
        assert_eq!(id(result(Scope::Stateful)), "p/s/IN/42/1");
        let refused = |scope, refusal| MessageId::Refused {
            scope,
            refusal,
            stream: "IN",
            sequence: 7,
            n: 0,
        };
        assert_eq!(id(refused(Scope::Chain, Refusal::Dead)), "p/dlq/IN/7/0");
        assert_eq!(
            id(refused(Scope::Stateful, Refusal::Late)),
            "p/s/late/IN/7/0"
        );
        let w = ResultOrigin::Window {
            start: 0,
            end: 10,
            tag: 0xab,
        };
        assert_eq!(id(MessageId::Origin(w)), "p/w/0/10/00000000000000ab");
        let c = ResultOrigin::Count { serial: 3, tag: 1 };
        assert_eq!(
            id(MessageId::Derived {
                origin: c,
                index: 2
            }),
            "p/c/3/0000000000000001/2"
        );
        let t = ResultOrigin::Timer { time: -1, tag: 0 };
        assert_eq!(id(MessageId::DerivedDead(t)), "p/t/-1/0000000000000000/dlq");
    }

    #[test]
    fn outputs_of_different_stages_or_kinds_never_share_an_id() {
        let mut seen = std::collections::HashSet::new();
        for scope in [Scope::Chain, Scope::Stateful] {
            assert!(seen.insert(id(MessageId::Result {
                scope,
                stream: "IN",
                sequence: 1,
                n: 0
            })));
            for refusal in [Refusal::Dead, Refusal::Late] {
                assert!(seen.insert(id(MessageId::Refused {
                    scope,
                    refusal,
                    stream: "IN",
                    sequence: 1,
                    n: 0
                })));
            }
        }
    }
}
