//! Several inputs as one [`Source`]: each input is read by a task of its own, and their
//! batches reach the run loop in the order they were read. A batch holds messages of one
//! input (its origins and its acknowledgement say which), so positions and acknowledgements
//! stay per input.
//!
//! A source's `next_batch` is not cancellation-safe (a batch half read would be lost), so the
//! inputs are never raced against each other: each task awaits its own input to the end of a
//! batch, and the run loop waits on the channel, which is.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Polled, Source};

/// How long an input's task waits for a batch before asking again (its source's quiet
/// periods are not forwarded: the run loop has its own wait).
const POLL: Duration = Duration::from_millis(500);

/// The pipeline's inputs read side by side.
pub struct MultiSource {
    name: String,
    batches: mpsc::Receiver<anyhow::Result<Polled>>,
    tasks: Vec<JoinHandle<()>>,
    /// Inputs that ended (bounded inputs); the whole ends when every one has.
    ended: usize,
}

impl MultiSource {
    /// Reads every source of `inputs` in a task of its own.
    pub fn new<S: Source + 'static>(inputs: Vec<S>) -> Self {
        let name = inputs
            .iter()
            .map(|s| s.name().to_owned())
            .collect::<Vec<_>>()
            .join("+");
        // Each input may have one batch read ahead.
        let (tx, batches) = mpsc::channel(inputs.len().max(1));
        let tasks = inputs
            .into_iter()
            .map(|mut source| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    loop {
                        let polled = source.next_batch(Some(POLL)).await;
                        let last = matches!(polled, Ok(Polled::End) | Err(_));
                        if matches!(polled, Ok(Polled::Quiet)) {
                            continue;
                        }
                        if tx.send(polled).await.is_err() || last {
                            return;
                        }
                    }
                })
            })
            .collect();
        MultiSource {
            name,
            batches,
            tasks,
            ended: 0,
        }
    }
}

impl Drop for MultiSource {
    fn drop(&mut self) {
        // A batch read ahead and not taken is not acknowledged: a restart reads it again.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Source for MultiSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn next_batch(&mut self, wait: Option<Duration>) -> anyhow::Result<Polled> {
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        loop {
            let received = match deadline {
                Some(at) => match tokio::time::timeout_at(at, self.batches.recv()).await {
                    Ok(r) => r,
                    Err(_) => return Ok(Polled::Quiet),
                },
                None => self.batches.recv().await,
            };
            match received {
                Some(Ok(Polled::End)) => {
                    self.ended += 1;
                    if self.ended == self.tasks.len() {
                        return Ok(Polled::End);
                    }
                }
                Some(polled) => return polled,
                // Every task is gone: they end only after sending their end or error.
                None => return Ok(Polled::End),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Origin, SourceBatch};

    /// An input of `n` one-message batches at positions 1..=n, then its end.
    struct Counted {
        name: String,
        input: u16,
        next: u64,
        n: u64,
    }

    impl Source for Counted {
        fn name(&self) -> &str {
            &self.name
        }
        async fn next_batch(&mut self, _wait: Option<Duration>) -> anyhow::Result<Polled> {
            if self.next > self.n {
                return Ok(Polled::End);
            }
            self.next += 1;
            tokio::task::yield_now().await;
            Ok(Polled::Batch(Box::new(SourceBatch {
                origins: vec![Origin {
                    subject: "s".into(),
                    sequence: self.next - 1,
                    input: self.input,
                }],
                input: self.input,
                ..Default::default()
            })))
        }
    }

    #[tokio::test]
    async fn batches_of_every_input_arrive_in_order_per_input_then_the_end() {
        let inputs = vec![
            Counted {
                name: "a".into(),
                input: 0,
                next: 1,
                n: 50,
            },
            Counted {
                name: "b".into(),
                input: 1,
                next: 1,
                n: 30,
            },
        ];
        let mut multi = MultiSource::new(inputs);
        assert_eq!(multi.name(), "a+b");
        let mut seen = [Vec::new(), Vec::new()];
        loop {
            match multi
                .next_batch(Some(Duration::from_secs(10)))
                .await
                .unwrap()
            {
                Polled::Batch(b) => seen[b.input as usize].push(b.origins[0].sequence),
                Polled::Quiet => panic!("quiet before the end"),
                Polled::End => break,
            }
        }
        assert_eq!(seen[0], (1..=50).collect::<Vec<_>>());
        assert_eq!(seen[1], (1..=30).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_input_failing_fails_the_whole() {
        struct Failing;
        impl Source for Failing {
            fn name(&self) -> &str {
                "bad"
            }
            async fn next_batch(&mut self, _: Option<Duration>) -> anyhow::Result<Polled> {
                anyhow::bail!("consumer deleted for good")
            }
        }
        let mut multi = MultiSource::new(vec![Failing]);
        let err = multi.next_batch(None).await.err().unwrap();
        assert!(err.to_string().contains("consumer deleted"), "{err}");
    }
}
