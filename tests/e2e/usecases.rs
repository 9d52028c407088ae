//! The seed's use cases as the shipped pipelines (`plugins/pipelines/`), end to end through a
//! real nats-server: ad click-through rates over sliding windows, clickstream sessions.

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
