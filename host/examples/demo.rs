//! The demo behind `bash plugins/demo.sh`: a real pipeline against a local nats-server.
//!
//! Starts nats-server (free loopback port, temp store), creates the streams ORDERS (`orders.>`)
//! and WAREHOUSE (`warehouse.>`), publishes sample orders (one of them malformed), runs
//! `weir run plugins/pipelines/orders.toml`, prints what arrives on `warehouse.items` and
//! `warehouse.dead`, then stops weir with SIGTERM and the server by PID.

#[path = "../../tests/e2e/support.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::main]
async fn main() {
    let server = NatsServer::start();
    println!("nats-server with JetStream on {}", server.url());
    let js = server.jetstream().await;
    create_stream(&js, "ORDERS", &["orders.>"]).await;
    create_stream(&js, "WAREHOUSE", &["warehouse.>"]).await;

    let customers = ["ada", "grace", "linus", "barbara"];
    let mut events = Vec::new();
    for i in 0..12usize {
        let items: Vec<_> = (0..(i % 3 + 1))
            .map(|n| json!({"sku": format!("SKU-{}", (i + n) % 5), "qty": n + 1}))
            .collect();
        let order = json!({
            "order_id": 1000 + i,
            "customer": customers[i % customers.len()],
            "amount": 40 + 17 * i,
            "items": items,
        });
        events.push((
            Some(customers[i % customers.len()].to_string()),
            order.to_string().into_bytes(),
        ));
    }
    events.push((
        Some("mallory".into()),
        b"{\"order_id\": 2000, \"amount\": 500, \"items\": 42}".to_vec(),
    ));
    publish_all(&js, "orders.web", &events).await;
    println!(
        "published {} orders to orders.web (one with a malformed `items`)\n",
        events.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let pipeline = root().join("plugins/pipelines/orders.toml");
    let weir = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));

    // Orders with amount >= 100 are i >= 4: 8 orders with 1-3 items each.
    let expected: usize = (4..12).map(|i| i % 3 + 1).sum();
    let items = collect(
        &js,
        "WAREHOUSE",
        "warehouse.items",
        expected,
        Duration::from_secs(60),
    )
    .await;
    println!("warehouse.items ({} results):", items.len());
    for m in &items {
        println!(
            "  key={:<6} {}",
            m.header("Weir-Key").unwrap_or_default(),
            String::from_utf8_lossy(&m.payload)
        );
    }
    let dead = collect(
        &js,
        "WAREHOUSE",
        "warehouse.dead",
        1,
        Duration::from_secs(10),
    )
    .await;
    println!("\nwarehouse.dead ({} dead letters):", dead.len());
    for m in &dead {
        println!(
            "  operator={} error={:?}\n  source={} #{} payload={}",
            m.header("Weir-Operator").unwrap_or_default(),
            m.header("Weir-Error").unwrap_or_default(),
            m.header("Weir-Source-Subject").unwrap_or_default(),
            m.header("Weir-Source-Sequence").unwrap_or_default(),
            String::from_utf8_lossy(&m.payload)
        );
    }
    let code = weir.terminate();
    println!("\nweir stopped on SIGTERM with exit code {code:?}; stopping nats-server");
    drop(server);
    if items.len() != expected || dead.len() != 1 || code != Some(0) {
        eprintln!("demo FAILED: expected {expected} results and 1 dead letter");
        std::process::exit(1);
    }
    println!("demo ok");
}
