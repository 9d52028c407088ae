//! Nexmark in weir: the generator publishing to JetStream (`weir nexmark publish`), and the
//! queries of `plugins/pipelines/nexmark/` checked against a plain computation over the same
//! generated events.

use std::time::Duration;

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
