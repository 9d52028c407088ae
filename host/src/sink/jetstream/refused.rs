//! Outputs the stream refused for good ([`Refused`]: too large for the server or the stream,
//! a `Nats-*` header the stream checks that does not hold) become dead letters instead of
//! wedging the pipeline: the output, with `Weir-Error: refused by JetStream: <reason>`,
//! `Weir-Operator: sink`, `Weir-Original-Subject` and `Weir-Original-Id` (its message id,
//! which names the source message it came from), goes to the dead-letter subject. If that is
//! refused too (the payload is what is too large), a truncated copy goes instead: the first
//! [`PREVIEW`] bytes, with `Weir-Original-Size` and `Weir-Truncated: true`. If even that is
//! refused, it is logged as an error with the original id — the pipeline goes on either way.

use async_nats::{HeaderMap, Subject};

use super::headers::header_text;
use super::messages::Message;
use super::publish::{Publisher, Refused};

/// Bytes of a refused payload kept in its truncated dead letter.
pub const PREVIEW: usize = 1024;

/// Dead-letters what the stream refused; returns how many could not even be dead-lettered.
pub async fn dead_letter_refused(
    publisher: &Publisher,
    dead_letter: &Subject,
    refused: Vec<Refused>,
) -> usize {
    if refused.is_empty() {
        return 0;
    }
    for r in &refused {
        tracing::warn!(
            subject = %r.message.subject,
            id = original_id(&r.message).unwrap_or_default(),
            reason = %r.reason,
            bytes = r.message.payload.len(),
            "output refused by JetStream; sending it to the dead-letter subject"
        );
    }
    let letters = refused
        .iter()
        .map(|r| letter(r, dead_letter, false))
        .collect();
    let again = publisher.publish_all(letters).await;
    if again.is_empty() {
        return 0;
    }
    // The dead letters were refused too: their payloads are what is too large.
    let truncated = again
        .iter()
        .map(|a| letter(&refused[a.index], dead_letter, true))
        .collect();
    let lost = publisher.publish_all(truncated).await;
    for l in &lost {
        tracing::error!(
            id = original_id(&l.message).unwrap_or_default(),
            reason = %l.reason,
            "a refused output could not be dead-lettered, not even truncated; it is dropped"
        );
    }
    lost.len()
}

/// The `Nats-Msg-Id` of a message.
fn original_id(m: &Message) -> Option<String> {
    m.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned())
}

/// The dead letter of refused output `r`: its headers but `Nats-*` ones, the reason, where it
/// was going; `truncated`: only the first [`PREVIEW`] bytes of its payload.
pub fn letter(r: &Refused, dead_letter: &Subject, truncated: bool) -> Message {
    let m = &r.message;
    let mut h = HeaderMap::new();
    for (name, values) in m.headers.iter() {
        let text: &str = name.as_ref();
        if text.len() >= 5 && text[..5].eq_ignore_ascii_case("nats-") {
            continue;
        }
        for v in values {
            h.append(name.clone(), v.clone());
        }
    }
    let id = original_id(m);
    if let Some(id) = &id {
        h.insert("Nats-Msg-Id", format!("{id}/refused").as_str());
        h.insert("Weir-Original-Id", id.as_str());
    }
    h.insert(
        "Weir-Error",
        header_text(&format!("refused by JetStream: {}", r.reason)).as_str(),
    );
    h.insert("Weir-Operator", "sink");
    h.insert("Weir-Original-Subject", m.subject.as_str());
    let payload = if truncated {
        h.insert("Weir-Original-Size", m.payload.len().to_string().as_str());
        h.insert("Weir-Truncated", "true");
        m.payload.slice(..m.payload.len().min(PREVIEW))
    } else {
        m.payload.clone()
    };
    Message {
        subject: dead_letter.clone(),
        headers: h,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_refused_output_becomes_a_dead_letter_without_nats_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", "p/IN/7/0");
        headers.insert("Nats-Expected-Last-Sequence", "1");
        headers.insert("Weir-Key", "k");
        let r = Refused {
            index: 0,
            message: Message {
                subject: Subject::from("out"),
                headers,
                payload: Bytes::from(vec![b'x'; 5000]),
            },
            reason: "wrong last sequence: 3".into(),
        };
        let dlq = Subject::from("dlq");
        let full = letter(&r, &dlq, false);
        let get = |m: &Message, n: &str| m.headers.get(n).map(|v| v.as_str().to_owned());
        assert_eq!(full.subject.as_str(), "dlq");
        assert_eq!(get(&full, "Nats-Expected-Last-Sequence"), None);
        assert_eq!(
            get(&full, "Nats-Msg-Id").as_deref(),
            Some("p/IN/7/0/refused")
        );
        assert_eq!(get(&full, "Weir-Original-Id").as_deref(), Some("p/IN/7/0"));
        assert_eq!(get(&full, "Weir-Original-Subject").as_deref(), Some("out"));
        assert_eq!(get(&full, "Weir-Key").as_deref(), Some("k"));
        assert!(
            get(&full, "Weir-Error")
                .unwrap()
                .contains("wrong last sequence")
        );
        assert_eq!(full.payload.len(), 5000);
        let cut = letter(&r, &dlq, true);
        assert_eq!(cut.payload.len(), PREVIEW);
        assert_eq!(get(&cut, "Weir-Original-Size").as_deref(), Some("5000"));
        assert_eq!(get(&cut, "Weir-Truncated").as_deref(), Some("true"));
        assert_eq!(
            get(&cut, "Nats-Msg-Id").as_deref(),
            Some("p/IN/7/0/refused")
        );
    }
}
