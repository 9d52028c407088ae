//! weir's side of the benches through nats-server: a pipeline run in this process until it
//! has taken in a given number of events, measured as the raw client is.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use weir::admin::Metrics;
use weir::runtime::Runtime;

use super::measure::{Meter, Round};

/// Runs `pipeline` against nats-server `url` (pid `server_pid`) from a fresh start until it
/// has taken in `n` events, then stops it (its last checkpoint and publishes are not timed):
/// the round's numbers and the pipeline's metrics. Panics, naming the pipeline, if it stops
/// or fails on its own.
pub async fn run_until_taken_in(
    rt: &Runtime,
    url: &str,
    pipeline: weir::config::Pipeline,
    n: u64,
    (server_pid, ticks_per_s): (&str, f64),
) -> (Round, Arc<Metrics>) {
    let name = pipeline.config.name.get_ref().clone();
    let metrics = Metrics::new(&name);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (rt, url, m) = (rt.clone(), url.to_owned(), metrics.clone());
    let meter = Meter::start(server_pid);
    let task = tokio::spawn(async move {
        let nats = weir::connect::NatsOptions::from_url(&url)?;
        let stop = async {
            let _ = stop_rx.await;
        };
        let fresh = weir::checkpoint::StartFrom::Fresh;
        weir::pipeline::nats::run(&rt, &pipeline, &nats, stop, m, fresh, false).await
    });
    while metrics.inputs.load(Relaxed) < n {
        assert!(!task.is_finished(), "{name} stopped: {:?}", task.await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let round = meter.stop(n, ticks_per_s);
    let _ = stop_tx.send(());
    let result = task.await.expect("pipeline task");
    result.unwrap_or_else(|e| panic!("{name}: {e:#}"));
    (round, metrics)
}
