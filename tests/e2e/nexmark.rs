//! Nexmark in weir: the generator publishing to JetStream (`weir nexmark publish`), and the
//! queries of `plugins/pipelines/nexmark/` checked against a plain computation over the same
//! generated events.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_generator_publishes_persons_auctions_and_bids_in_their_proportions() {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "NEXMARK", &["nexmark.>"]).await;
    let mut cmd = weir();
    cmd.args(["nexmark", "publish", "--events", "5000", "--nats-url"])
        .arg(server.url());
    let out = output_within(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("published 5000 events"), "{stderr}");
    let mut stream = js.get_stream("NEXMARK").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 5000);
    for (subject, n) in [
        ("nexmark.person", 100),
        ("nexmark.auction", 300),
        ("nexmark.bid", 4600),
    ] {
        let got = collect(&js, "NEXMARK", subject, n, Duration::from_secs(30)).await;
        assert_eq!(got.len(), n, "{subject}");
    }
    // Without a stream capturing the subjects, the publish fails saying so.
    let mut cmd = weir();
    cmd.args([
        "nexmark",
        "publish",
        "--events",
        "10",
        "--prefix",
        "nowhere",
        "--nats-url",
    ])
    .arg(server.url());
    let out = output_within(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("does a stream capture"), "{stderr}");
}

/// `n` generated events at `rate` events/s of event time, as Rust records.
pub(crate) fn generated(n: u64, rate: u32) -> Vec<weir::nexmark::Event> {
    let config = weir::nexmark::GeneratorConfig {
        events: Some(n),
        first_event_rate: rate,
        ..Default::default()
    };
    weir::nexmark::Generator::new(config).unwrap().collect()
}

pub(crate) fn bids(events: &[weir::nexmark::Event]) -> Vec<&weir::nexmark::Bid> {
    events
        .iter()
        .filter_map(|e| match e {
            weir::nexmark::Event::Bid(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// Runs query pipeline `query` of `plugins/pipelines/nexmark/` with `--local` over the
/// generated events of `kinds` (`weir nexmark generate --only`), returning the outputs.
pub(crate) fn run_query(query: &str, kinds: &str, n: u64, rate: u32) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let file = std::fs::File::create(&input).unwrap();
    let generated = weir()
        .args(["nexmark", "generate", "--only", kinds, "--events"])
        .arg(n.to_string())
        .args(["--rate", &rate.to_string()])
        .stdout(file)
        .status()
        .unwrap();
    assert!(generated.success());
    run_local(query, &input)
}

/// Runs query pipeline `query` with `--local` over the JSON lines of `input`.
fn run_local(query: &str, input: &std::path::Path) -> Vec<Value> {
    let pipeline = root().join(format!("plugins/pipelines/nexmark/{query}.toml"));
    let mut run = weir();
    run.args(["run", "--local", "--input"])
        .arg(input)
        .arg(&pipeline);
    let out = output_within(run, Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{query}: {stderr}");
    assert!(!stderr.contains("{\"dead_letter\""), "{query}: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn q0_q1_and_q2_give_what_a_plain_computation_over_the_same_bids_gives() {
    let n = 20_000;
    let events = generated(n, 10_000);
    let bids = bids(&events);
    // q0: every bid, as it is.
    let q0 = run_query("q0", "bid", n, 10_000);
    assert_eq!(q0.len(), bids.len());
    for (out, bid) in q0.iter().zip(&bids) {
        assert_eq!(out["payload"]["auction"], bid.auction);
        assert_eq!(out["payload"]["extra"], bid.extra.as_str());
        assert_eq!(out["time"], bid.date_time);
    }
    // q1: the price in euros (the f64 nearest 0.908 × price), other fields kept.
    let q1 = run_query("q1", "bid", n, 10_000);
    assert_eq!(q1.len(), bids.len());
    for (out, bid) in q1.iter().zip(&bids) {
        let p = &out["payload"];
        let euros = p["price"].as_f64().unwrap();
        let exact = bid.price as f64 * 0.908;
        assert!(
            (euros - exact).abs() <= exact.abs() * 1e-12,
            "{euros} vs {exact}"
        );
        assert_eq!(p["auction"], bid.auction);
        assert_eq!(p["bidder"], bid.bidder);
        assert_eq!(p["dateTime"], bid.date_time);
        assert_eq!(p["extra"], bid.extra.as_str());
        assert_eq!(p.as_object().unwrap().len(), 5);
    }
    // q2: the bids on every 123rd auction, as (auction, price).
    let q2 = run_query("q2", "bid", n, 10_000);
    let want: Vec<(i64, i64)> = bids
        .iter()
        .filter(|b| b.auction % 123 == 0)
        .map(|b| (b.auction, b.price))
        .collect();
    let got: Vec<(i64, i64)> = q2
        .iter()
        .map(|o| {
            let p = &o["payload"];
            (p["auction"].as_i64().unwrap(), p["price"].as_i64().unwrap())
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[test]
fn q11_sessions_per_bidder_match_a_plain_sessionization() {
    // 100 events/s of event time: 20,000 events span 200 s, so bidders have many sessions.
    let (n, rate) = (20_000, 100);
    let events = generated(n, rate);
    let mut by_bidder: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in bids(&events) {
        by_bidder.entry(b.bidder).or_default().push(b.date_time);
    }
    // Flink's sessions: an event's window is [t, t + gap); windows that touch or overlap merge.
    let gap = 10_000;
    let mut want = BTreeMap::new();
    for (bidder, mut times) in by_bidder {
        times.sort();
        let (mut start, mut end, mut count) = (times[0], times[0] + gap, 0);
        for t in times {
            if t > end {
                want.insert((bidder.to_string(), start, end), count);
                (start, count) = (t, 0);
            }
            end = end.max(t + gap);
            count += 1;
        }
        want.insert((bidder.to_string(), start, end), count);
    }
    let got: BTreeMap<(String, i64, i64), i64> = run_query("q11", "bid", n, rate)
        .iter()
        .map(|o| {
            let p = &o["payload"];
            let key = (
                p["key"].as_str().unwrap().to_owned(),
                p["start"].as_i64().unwrap(),
                p["end"].as_i64().unwrap(),
            );
            (key, p["count"].as_i64().unwrap())
        })
        .collect();
    assert!(want.len() > 100, "{}", want.len());
    assert_eq!(got, want);
}

#[test]
fn q8_pairs_persons_with_the_auctions_they_opened_in_the_same_10_s_window() {
    let (n, rate) = (20_000, 100);
    let events = generated(n, rate);
    let window = |t: i64| t.div_euclid(10_000);
    let mut persons = Vec::new();
    let mut auctions = Vec::new();
    for e in &events {
        match e {
            weir::nexmark::Event::Person(p) => persons.push((p.id, window(p.date_time))),
            weir::nexmark::Event::Auction(a) => {
                auctions.push((a.id, a.seller, window(a.date_time)))
            }
            weir::nexmark::Event::Bid(_) => {}
        }
    }
    let mut want = Vec::new();
    for &(person, w) in &persons {
        for &(auction, seller, aw) in &auctions {
            if seller == person && aw == w {
                want.push((person, auction, w * 10_000 + 9_999));
            }
        }
    }
    want.sort();
    let mut got: Vec<(i64, i64, i64)> = run_query("q8", "person,auction", n, rate)
        .iter()
        .map(|o| {
            let p = &o["payload"];
            (
                p["left"]["id"].as_i64().unwrap(),
                p["right"]["id"].as_i64().unwrap(),
                o["time"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert!(want.len() > 20, "{}", want.len());
    assert_eq!(got, want);
}

/// `weir plugin build plugins/<lang>/nexmark-q1`: the component's path.
fn build_q1(lang: &str) -> std::path::PathBuf {
    let mut cmd = weir();
    plugin_toolchains(&mut cmd);
    cmd.args(["plugin", "build"])
        .arg(root().join("plugins").join(lang).join("nexmark-q1"));
    let out = output_within(cmd, Duration::from_secs(600));
    assert!(
        out.status.success(),
        "{lang}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `weir plugin test` of q1 component `plugin` over `input`: each output's payload.
fn q1_outputs(plugin: &std::path::Path, input: &std::path::Path) -> Vec<Value> {
    let mut cmd = weir();
    cmd.args(["plugin", "test"])
        .arg(plugin)
        .arg("--input")
        .arg(input)
        .args(["--config", r#"{"query":"q1"}"#]);
    let out = output_within(cmd, Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", plugin.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["payload"].clone())
        .collect()
}

#[test]
fn q1_in_python_and_javascript_gives_what_the_rust_q1_gives() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bids.jsonl");
    let file = std::fs::File::create(&input).unwrap();
    let generated = weir()
        .args(["nexmark", "generate", "--only", "bid", "--events", "3000"])
        .stdout(file)
        .status()
        .unwrap();
    assert!(generated.success());
    let rust = root().join("target/plugins/wasm32-wasip2/release/weir_plugin_nexmark.wasm");
    let want = q1_outputs(&rust, &input);
    assert_eq!(want.len(), 2760);
    for lang in ["python", "js"] {
        let got = q1_outputs(&build_q1(lang), &input);
        assert_eq!(got.len(), want.len(), "{lang}");
        for (g, w) in got.iter().zip(&want) {
            // Numbers alike (JavaScript writes 908 where Rust writes 908.0).
            assert_eq!(
                g["price"].as_f64(),
                w["price"].as_f64(),
                "{lang}: {g} vs {w}"
            );
            for field in ["auction", "bidder", "dateTime", "extra"] {
                assert_eq!(g[field], w[field], "{lang}: {field}");
            }
            assert_eq!(g.as_object().unwrap().len(), 5, "{lang}: {g}");
        }
    }
}

#[test]
fn q3_suggests_the_category_10_auctions_of_sellers_in_or_id_and_ca() {
    let (n, rate) = (20_000, 100);
    let events = generated(n, rate);
    let mut local = BTreeMap::new();
    let mut want = Vec::new();
    for e in &events {
        if let weir::nexmark::Event::Person(p) = e
            && ["OR", "ID", "CA"].contains(&p.state)
        {
            local.insert(p.id, (p.name.clone(), p.city, p.state));
        }
    }
    for e in &events {
        if let weir::nexmark::Event::Auction(a) = e
            && a.category == 10
            && let Some((name, city, state)) = local.get(&a.seller)
        {
            want.push((name.clone(), city.to_string(), state.to_string(), a.id));
        }
    }
    want.sort();
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    let mut got: Vec<(String, String, String, i64)> = run_query("q3", "person,auction", n, rate)
        .iter()
        .map(|o| {
            let p = &o["payload"];
            let row = (text(&p["name"]), text(&p["city"]), text(&p["state"]));
            (row.0, row.1, row.2, p["id"].as_i64().unwrap())
        })
        .collect();
    got.sort();
    assert!(want.len() > 20, "{}", want.len());
    assert_eq!(got, want);
}

#[test]
fn q4_averages_each_categorys_winning_bids_in_two_chained_pipelines() {
    let (n, rate) = (20_000, 1_000);
    let events = generated(n, rate);
    let bids = bids(&events);
    // The winning bid of each auction: the highest price within its lifetime, if any.
    let mut winning = Vec::new();
    for e in &events {
        let weir::nexmark::Event::Auction(a) = e else {
            continue;
        };
        let best = bids
            .iter()
            .filter(|b| b.auction == a.id && (a.date_time..=a.expires).contains(&b.date_time))
            .map(|b| b.price)
            .max();
        if let Some(best) = best {
            winning.push((a.id, a.category, best));
        }
    }
    winning.sort();
    let stage1 = run_query("q4", "auction,bid", n, rate);
    let mut got: Vec<(i64, i64, i64)> = stage1
        .iter()
        .map(|o| {
            let p = &o["payload"];
            let field = |f: &str| p[f].as_i64().unwrap();
            (field("auction"), field("category"), field("final"))
        })
        .collect();
    got.sort();
    assert!(winning.len() > 100, "{}", winning.len());
    assert_eq!(got, winning);
    // The second stage reads the first's results, keyed by their category as from NATS.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("winning.jsonl");
    let lines: Vec<String> = stage1
        .into_iter()
        .map(|mut o| {
            o.as_object_mut().unwrap().remove("key");
            o.to_string()
        })
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for &(_, category, price) in &winning {
        let (sum, count) = want.entry(category).or_default();
        (*sum, *count) = (*sum + price, *count + 1);
    }
    let mut newest = BTreeMap::new();
    for o in run_local("q4-average", &input) {
        let p = &o["payload"];
        let row = (p["avg"].as_i64().unwrap(), p["auctions"].as_i64().unwrap());
        newest.insert(p["category"].as_i64().unwrap(), row);
    }
    let want: BTreeMap<i64, (i64, i64)> = want
        .into_iter()
        .map(|(c, (sum, count))| (c, (sum / count, count)))
        .collect();
    assert_eq!(newest, want);
}
