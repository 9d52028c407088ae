//! The seed's use cases as the shipped pipelines (`plugins/pipelines/`), end to end through a
//! real nats-server: ad click-through rates over sliding windows, clickstream sessions, fraud
//! alerts, and quiet IoT devices by processing-time timers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn shipped(name: &str) -> std::path::PathBuf {
    root().join("plugins/pipelines").join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn ad_ctr_pipeline_gives_exact_rates_per_campaign_and_sliding_window() {
    plugins_dir();
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "ADS", &["ads.in.>"]).await;
    create_stream(&js, "ADS_OUT", &["ads.ctr", "ads.dead", "ads.late"]).await;
    let dir = tempfile::tempdir().unwrap();
    let weir = WeirProcess::start(
        &shipped("ad-ctr.toml"),
        &server.url(),
        &dir.path().join("weir.log"),
    );

    // 3 campaigns over 40 s of event time; every 7th event of a campaign is a click.
    let mut events = Vec::new();
    let mut want: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for i in 0..4000i64 {
        let campaign = format!("c{}", i % 3);
        let ts = 1_700_000_000_000 + i * 10;
        let click = (i / 3) % 7 == 0;
        let kind = if click { "click" } else { "impression" };
        // Sliding 10 s every 2 s: the windows containing ts start at the 2 s marks in (ts-10 s, ts].
        let last = ts - ts.rem_euclid(2000);
        let mut start = last;
        while start > ts - 10_000 {
            let e = want.entry((campaign.clone(), start)).or_default();
            if click {
                e.1 += 1
            } else {
                e.0 += 1
            }
            start -= 2000;
        }
        events.push((
            None,
            json!({"campaign": campaign, "type": kind, "ts": ts})
                .to_string()
                .into_bytes(),
        ));
    }
    // One event far ahead closes every window.
    events.push((
        None,
        json!({"campaign": "flush", "type": "impression", "ts": 1_700_001_000_000i64})
            .to_string()
            .into_bytes(),
    ));
    publish_all(&js, "ads.in.web", &events).await;

    let got = collect(
        &js,
        "ADS_OUT",
        "ads.ctr",
        want.len(),
        Duration::from_secs(60),
    )
    .await;
    let mut results: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for m in &got {
        let p: Value = serde_json::from_slice(&m.payload).unwrap();
        let key = (
            p["key"].as_str().unwrap().to_owned(),
            p["start"].as_i64().unwrap(),
        );
        let (imp, clk) = (
            p["impressions"].as_u64().unwrap(),
            p["clicks"].as_u64().unwrap(),
        );
        let ctr = p["ctr"].as_f64().unwrap();
        assert!((ctr - clk as f64 / imp as f64).abs() < 1e-12);
        assert!(
            results.insert(key, (imp, clk)).is_none(),
            "a window fired twice"
        );
    }
    assert_eq!(results, want, "log:\n{}", weir.log());
    assert_eq!(weir.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_pipeline_gives_one_result_per_user_session() {
    plugins_dir();
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "CLICKS", &["clicks.in.>"]).await;
    create_stream(&js, "CLICKS_OUT", &["clicks.sessions", "clicks.dead"]).await;
    let dir = tempfile::tempdir().unwrap();
    let weir = WeirProcess::start(
        &shipped("sessions.toml"),
        &server.url(),
        &dir.path().join("weir.log"),
    );

    // 4 users; each browses in bursts (a view every minute) separated by 2 h breaks.
    let minute = 60_000i64;
    let mut events = Vec::new();
    let mut want = BTreeMap::new();
    for user in 0..4i64 {
        let mut t = 1_700_000_000_000 + user * 7 * minute;
        for burst in 0..3i64 {
            let views = 3 + (user + burst) % 4;
            let start = t;
            for _ in 0..views {
                events.push((
                    None,
                    json!({"user": format!("u{user}"), "page": "/p", "ts": t})
                        .to_string()
                        .into_bytes(),
                ));
                t += minute;
            }
            let last = t - minute;
            want.insert(
                (format!("u{user}"), start),
                (last + 30 * minute, views as u64),
            );
            t += 120 * minute;
        }
    }
    events.sort_by_key(|(_, p)| {
        serde_json::from_slice::<Value>(p).unwrap()["ts"]
            .as_i64()
            .unwrap()
    });
    events.push((
        None,
        json!({"user": "flush", "page": "/", "ts": 1_800_000_000_000i64})
            .to_string()
            .into_bytes(),
    ));
    publish_all(&js, "clicks.in.web", &events).await;

    let got = collect(
        &js,
        "CLICKS_OUT",
        "clicks.sessions",
        want.len(),
        Duration::from_secs(60),
    )
    .await;
    let mut results = BTreeMap::new();
    for m in &got {
        let p: Value = serde_json::from_slice(&m.payload).unwrap();
        results.insert(
            (
                p["key"].as_str().unwrap().to_owned(),
                p["start"].as_i64().unwrap(),
            ),
            (p["end"].as_i64().unwrap(), p["count"].as_u64().unwrap()),
        );
    }
    assert_eq!(results, want, "log:\n{}", weir.log());
    assert_eq!(weir.terminate(), Some(0));
}

/// Transactions of 60 cards over 10 minutes: cards 0..6 show the fraud pattern (4 large
/// transactions within 40 s from two countries), others show near misses: one country, spread
/// over more than 60 s, only three large ones, or small amounts. One malformed transaction.
fn card_transactions() -> (Vec<(i64, Value)>, Vec<String>) {
    let t0 = 1_700_000_000_000i64;
    let mut txs = Vec::new();
    let mut fraud = Vec::new();
    for card in 0..60i64 {
        let id = format!("card-{card:03}");
        let base = t0 + card * 5_000;
        let (amount, countries, step, n): (f64, [&str; 4], i64, usize) = match card % 10 {
            0 => (600.0, ["FR", "FR", "US", "FR"], 10_000, 4),
            1 => (600.0, ["FR", "FR", "FR", "FR"], 10_000, 4),
            2 => (600.0, ["FR", "US", "FR", "US"], 25_000, 4),
            3 => (600.0, ["FR", "US", "FR", "US"], 10_000, 3),
            _ => (20.0, ["FR", "US", "DE", "IT"], 5_000, 4),
        };
        if card % 10 == 0 {
            fraud.push(id.clone());
        }
        for (i, country) in countries.iter().take(n).enumerate() {
            let ts = base + i as i64 * step;
            txs.push((
                ts,
                json!({"card": id, "amount": amount, "country": country, "ts": ts}),
            ));
        }
    }
    txs.push((
        t0 + 1,
        json!({"card": "card-999", "amount": "lots", "country": "FR", "ts": t0 + 1}),
    ));
    txs.sort_by_key(|(ts, _)| *ts);
    (txs, fraud)
}

#[tokio::test(flavor = "multi_thread")]
async fn fraud_pipeline_alerts_exactly_the_fraudulent_cards() {
    plugins_dir();
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "CARDS", &["cards.in.>"]).await;
    create_stream(&js, "CARDS_OUT", &["cards.alerts", "cards.dead"]).await;
    let dir = tempfile::tempdir().unwrap();
    let weir = WeirProcess::start(
        &shipped("fraud.toml"),
        &server.url(),
        &dir.path().join("weir.log"),
    );

    let (txs, fraud) = card_transactions();
    let events: Vec<_> = txs
        .iter()
        .map(|(_, v)| (None, v.to_string().into_bytes()))
        .collect();
    publish_all(&js, "cards.in.pos", &events).await;

    let alerts = collect(
        &js,
        "CARDS_OUT",
        "cards.alerts",
        fraud.len(),
        Duration::from_secs(60),
    )
    .await;
    let mut cards: Vec<String> = alerts
        .iter()
        .map(|m| {
            let a: Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(a["count"], 4);
            assert_eq!(a["countries"], json!(["FR", "US"]));
            assert_eq!(m.header("Weir-Key"), a["card"].as_str().map(str::to_owned));
            a["card"].as_str().unwrap().to_owned()
        })
        .collect();
    cards.sort();
    assert_eq!(cards, fraud, "log:\n{}", weir.log());
    let dead = collect(&js, "CARDS_OUT", "cards.dead", 1, Duration::from_secs(10)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].header("Weir-Operator").as_deref(), Some("rules"));
    assert!(dead[0].header("Weir-Error").unwrap().contains("amount"));
    assert_eq!(weir.terminate(), Some(0));
}

#[test]
fn fraud_pipeline_gives_the_same_alerts_with_weir_run_local() {
    let (txs, fraud) = card_transactions();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("txs.jsonl");
    let lines: Vec<String> = txs
        .iter()
        .map(|(ts, v)| json!({"time": ts, "payload": v}).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = weir()
        .args(["run", "--local", "--input"])
        .arg(&input)
        .arg(shipped("fraud.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cards: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["payload"]["card"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    cards.sort();
    assert_eq!(cards, fraud);
}

/// IoT monitoring: `inactivity` reports devices gone quiet by processing-time timers, which
/// fire by the wall clock while no event at all arrives — the same plugin in Rust, Python,
/// JavaScript and C (each built with `weir plugin build`), through nats-server.
#[tokio::test(flavor = "multi_thread")]
async fn inactivity_reports_quiet_devices_by_the_wall_clock_in_four_languages() {
    let mut components = vec![("rust", plugin("inactivity"))];
    for lang in ["python", "js", "c"] {
        let dir = root().join("plugins").join(lang).join("inactivity");
        let mut cmd = weir();
        cmd.args(["plugin", "build"]).arg(&dir);
        let out = output_within(cmd, Duration::from_secs(600));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "building {}:\n{stderr}",
            dir.display()
        );
        let path = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        components.push((lang, path.into()));
    }
    for (lang, component) in components {
        inactivity_alerts(lang, &component).await;
    }
}

/// Runs the inactivity pipeline with `component`: devices d1 and d2 report once, d3 every
/// 100 ms for a while; each must be reported once, d1 and d2 first.
async fn inactivity_alerts(lang: &str, component: &std::path::Path) {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text(
        "idle",
        "time = { field = \"ts\" }",
        &process_section("inactivity", component, "{ timeout_ms = 400 }"),
    );
    let file = write_pipeline(dir.path(), &text);
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    // Processing time: the readings must arrive as the host runs, not queue while it compiles.
    weir.wait_running(Duration::from_secs(300));
    let reading = |device: &str, ts: i64| {
        (
            Some(device.to_owned()),
            json!({"ts": ts, "temp": 20}).to_string().into_bytes(),
        )
    };
    publish_all(&js, "in.iot", &[reading("d1", 5), reading("d2", 7)]).await;
    let mut last = 0;
    for i in 0..12 {
        last = 100 + i;
        publish_all(&js, "in.iot", &[reading("d3", last)]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = collect(&js, "OUT", "out", 3, Duration::from_secs(20)).await;
    let alerts: Vec<Value> = out
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    let keys: Vec<&str> = alerts.iter().map(|a| a["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 3, "{lang}: {alerts:?}\nlog:\n{}", weir.log());
    // d1 and d2 went quiet while d3 was still reporting; d3's alert came once it stopped.
    let mut first_two = keys[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, ["d1", "d2"], "{lang}: {alerts:?}");
    assert_eq!(keys[2], "d3", "{lang}");
    assert_eq!(alerts[2]["last_event_time"], last, "{lang}");
    for a in &alerts {
        let fields: Vec<&String> = a.as_object().unwrap().keys().collect();
        assert_eq!(
            fields,
            ["key", "last_event_time", "silent_ms"],
            "{lang}: {a}"
        );
        assert!(a["silent_ms"].as_i64().unwrap() >= 400, "{lang}: {a}");
    }
    assert_eq!(weir.terminate(), Some(0), "{lang}");
}
