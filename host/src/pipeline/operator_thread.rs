//! Running the engine off the async runtime: plugins are synchronous and may take their whole
//! deadline, so [`Stages`] runs on a blocking thread while the async side fetches and
//! publishes. [`OperatorThread::run`] is the one way the run loop reaches the stages.

use anyhow::Context;

use super::stages::Stages;

/// The engine, lent to a blocking thread for each piece of work.
pub struct OperatorThread {
    stages: Option<Stages>,
}

impl OperatorThread {
    pub fn new(stages: Stages) -> Self {
        OperatorThread {
            stages: Some(stages),
        }
    }

    /// Runs `work` on the stages on a blocking thread and returns its result. After a panic
    /// in `work` the stages are gone and every later call fails.
    pub async fn run<R: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Stages) -> R + Send + 'static,
    ) -> anyhow::Result<R> {
        let mut stages = self
            .stages
            .take()
            .context("the operator thread failed earlier; the pipeline cannot continue")?;
        let (stages, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut stages);
            (stages, result)
        })
        .await
        .context("the operator thread panicked")?;
        self.stages = Some(stages);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::Metrics;
    use crate::runtime::Runtime;
    use crate::source::SourcePartitions;

    fn stages() -> Stages {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        let text = "name = \"p\"\n[source]\nstream = \"S\"\n[sink]\nsubject = \"o\"\ndead_letter = \"d\"\n";
        let pipeline = crate::config::parse(&file, text.to_string()).unwrap();
        let runtime = Runtime::new(None).unwrap();
        Stages::build(
            &runtime,
            &pipeline,
            Metrics::new("p"),
            &SourcePartitions::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn work_runs_on_the_stages_and_a_panic_is_an_error_not_a_crash() {
        let mut thread = OperatorThread::new(stages());
        assert!(!thread.run(|s| s.stateful()).await.unwrap());
        let err = thread.run(|_| -> () { panic!("boom") }).await.unwrap_err();
        assert!(format!("{err:#}").contains("panicked"), "{err:#}");
        let err = thread.run(|s| s.stateful()).await.unwrap_err();
        assert!(format!("{err:#}").contains("cannot continue"), "{err:#}");
    }
}
