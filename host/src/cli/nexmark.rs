//! `weir nexmark`: the Nexmark generator ([`weir::nexmark`]) from the command line — events as
//! JSON lines for `weir run --local` (each line naming its input: `person`, `auction` or
//! `bid`), or published to JetStream subjects `<prefix>.person`, `<prefix>.auction` and
//! `<prefix>.bid`, for the Nexmark pipelines of `plugins/pipelines/nexmark/`.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use weir::nexmark::{Event, Generator, GeneratorConfig};

/// `weir nexmark …`.
#[derive(clap::Subcommand)]
pub enum NexmarkCommand {
    /// Write events as JSON lines (the `weir run --local` input form) to stdout.
    Generate {
        #[command(flatten)]
        events: EventArgs,
        /// Only events of these kinds (person, auction, bid); default all. With one kind the
        /// lines say no input (a pipeline of one input reads them); with several each names
        /// its kind as its input (the `[[sources]]` names of the pipeline).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Publish events to JetStream: to `<prefix>.person`, `<prefix>.auction`, `<prefix>.bid`
    /// (a stream must capture them).
    Publish {
        #[command(flatten)]
        events: EventArgs,
        /// The subjects' prefix.
        #[arg(long, default_value = "nexmark")]
        prefix: String,
        /// Publishes awaiting their acknowledgement at once.
        #[arg(long, default_value_t = 1024)]
        in_flight: usize,
        #[command(flatten)]
        nats: Box<super::nats_args::NatsArgs>,
    },
}

/// What to generate.
#[derive(clap::Args)]
pub struct EventArgs {
    /// How many events (1 person : 3 auctions : 46 bids).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per second of event time (the reference's default is 10,000).
    #[arg(long, default_value_t = 10_000)]
    rate: u32,
    /// Event time of the first event, ms since the epoch.
    #[arg(long, default_value_t = 0)]
    base_time_ms: i64,
}

impl EventArgs {
    fn generator(&self) -> anyhow::Result<Generator> {
        let config = GeneratorConfig {
            events: Some(self.events),
            first_event_rate: self.rate,
            base_time_ms: self.base_time_ms,
            ..GeneratorConfig::default()
        };
        Generator::new(config).map_err(|e| anyhow::anyhow!("nexmark generator: {e}"))
    }
}

pub fn run(cmd: NexmarkCommand) -> anyhow::Result<()> {
    match cmd {
        NexmarkCommand::Generate { events, only } => generate(&events, &only),
        NexmarkCommand::Publish {
            events,
            prefix,
            in_flight,
            nats,
        } => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(publish(&events, &prefix, in_flight.max(1), &nats))
        }
    }
}

/// One event as a `weir run --local` line, naming its kind as its input if `named`.
fn local_line(event: &Event, named: bool, json: &mut Vec<u8>, out: &mut Vec<u8>) {
    json.clear();
    event.to_json(json);
    out.push(b'{');
    if named {
        out.extend_from_slice(b"\"input\":\"");
        out.extend_from_slice(event.kind().as_bytes());
        out.extend_from_slice(b"\",");
    }
    out.extend_from_slice(b"\"time\":");
    out.extend_from_slice(itoa::Buffer::new().format(event.timestamp_ms()).as_bytes());
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(json);
    out.extend_from_slice(b"}\n");
}

fn generate(args: &EventArgs, only: &[String]) -> anyhow::Result<()> {
    for kind in only {
        if !["person", "auction", "bid"].contains(&kind.as_str()) {
            anyhow::bail!("--only: {kind:?} is not person, auction or bid");
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let (mut json, mut line) = (Vec::new(), Vec::new());
    for event in args.generator()? {
        if !only.is_empty() && !only.iter().any(|k| k == event.kind()) {
            continue;
        }
        line.clear();
        local_line(&event, only.len() != 1, &mut json, &mut line);
        if let Err(e) = out.write_all(&line) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("writing to stdout");
        }
    }
    out.flush().or_else(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e).context("writing to stdout"),
    })
}

async fn publish(
    args: &EventArgs,
    prefix: &str,
    in_flight: usize,
    nats: &super::nats_args::NatsArgs,
) -> anyhow::Result<()> {
    let options = nats.options(None)?;
    let client = weir::connect::connect("weir nexmark", &options, None).await?;
    let js = async_nats::jetstream::new(client);
    let subjects = ["person", "auction", "bid"].map(|k| format!("{prefix}.{k}"));
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::with_capacity(in_flight);
    let mut json = Vec::new();
    let mut sent = 0u64;
    for event in args.generator()? {
        json.clear();
        event.to_json(&mut json);
        let subject = match event {
            Event::Person(_) => &subjects[0],
            Event::Auction(_) => &subjects[1],
            Event::Bid(_) => &subjects[2],
        };
        let ack = js
            .publish(subject.clone(), json.clone().into())
            .await
            .with_context(|| format!("publishing to {subject:?}"))?;
        pending.push_back(ack);
        if pending.len() >= in_flight
            && let Some(ack) = pending.pop_front()
        {
            ack.await.with_context(|| {
                format!("no stream stored a message of {subject:?} (does a stream capture it?)")
            })?;
        }
        sent += 1;
    }
    for ack in pending {
        ack.await
            .context("no stream stored a message (does a stream capture the subjects?)")?;
    }
    let secs = started
        .elapsed()
        .max(Duration::from_millis(1))
        .as_secs_f64();
    eprintln!(
        "published {sent} events to {prefix}.{{person,auction,bid}} in {secs:.1} s ({:.0}/s)",
        sent as f64 / secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_lines_name_their_input_and_carry_the_event_time() {
        let mut generator = EventArgs {
            events: 50,
            rate: 1_000,
            base_time_ms: 5_000,
        }
        .generator()
        .unwrap();
        let (mut json, mut line) = (Vec::new(), Vec::new());
        let first = generator.next().unwrap();
        local_line(&first, true, &mut json, &mut line);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["input"], "person");
        let mut alone = Vec::new();
        local_line(&first, false, &mut json, &mut alone);
        let a: serde_json::Value = serde_json::from_slice(&alone).unwrap();
        assert!(a.get("input").is_none());
        assert_eq!(a["payload"], v["payload"]);
        assert_eq!(v["time"], 5_000);
        assert_eq!(v["payload"]["id"], 1000);
        assert_eq!(v["payload"]["dateTime"], 5_000);
    }
}
