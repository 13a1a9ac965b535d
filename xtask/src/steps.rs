//! Timed steps that stop at the first failure, and the summary table.

use std::time::{Duration, Instant};

/// How a step ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It passed.
    Pass,
    /// It failed; the error.
    Fail(String),
    /// It was skipped, and why.
    Skip(String),
    /// An earlier step failed.
    NotRun,
}

#[derive(Debug)]
struct Step {
    name: &'static str,
    outcome: Outcome,
    took: Duration,
}

/// The steps run so far.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    steps: Vec<Step>,
    failed: bool,
}

impl Steps {
    /// Runs `f` as step `name`, timed, unless an earlier step failed.
    pub(crate) fn run(&mut self, name: &'static str, f: impl FnOnce() -> anyhow::Result<Outcome>) {
        if self.failed {
            self.steps.push(Step { name, outcome: Outcome::NotRun, took: Duration::ZERO });
            return;
        }
        println!("\n=== {name}");
        let started = Instant::now();
        let outcome = f().unwrap_or_else(|e| Outcome::Fail(format!("{e:#}")));
        if let Outcome::Fail(e) = &outcome {
            println!("FAILED: {name}: {e}");
            self.failed = true;
        }
        self.steps.push(Step { name, outcome, took: started.elapsed() });
    }

    /// Prints the summary table and the totals line (`<what>: 5 passed, 1 failed, 1 skipped in
    /// 312s`); fails if a step failed.
    pub(crate) fn finish(&self, what: &str, started: Instant) -> anyhow::Result<()> {
        println!("\n=== summary");
        let (mut passed, mut failed, mut skipped) = (0, 0, 0);
        for step in &self.steps {
            let (word, note) = match &step.outcome {
                Outcome::Pass => {
                    passed += 1;
                    ("PASS", String::new())
                }
                Outcome::Fail(e) => {
                    failed += 1;
                    ("FAIL", format!(" - {}", e.lines().next().unwrap_or_default()))
                }
                Outcome::Skip(why) => {
                    skipped += 1;
                    ("SKIP", format!(" - {why}"))
                }
                Outcome::NotRun => ("----", " - not run (an earlier step failed)".to_owned()),
            };
            println!("  {word}  {:<48} {:>6.1}s{note}", step.name, step.took.as_secs_f64());
        }
        println!(
            "{what}: {passed} passed, {failed} failed, {skipped} skipped in {:.0}s",
            started.elapsed().as_secs_f64()
        );
        anyhow::ensure!(failed == 0, "{failed} step(s) failed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_first_failure_and_counts() {
        let mut steps = Steps::default();
        let mut ran = Vec::new();
        steps.run("a", || Ok(Outcome::Pass));
        steps.run("b", || Ok(Outcome::Skip("why".into())));
        steps.run("c", || anyhow::bail!("broken"));
        steps.run("d", || {
            ran.push("d");
            Ok(Outcome::Pass)
        });
        assert!(ran.is_empty(), "nothing runs after a failure");
        assert!(matches!(steps.steps[3].outcome, Outcome::NotRun));
        let err = steps.finish("t", Instant::now()).unwrap_err();
        assert_eq!(err.to_string(), "1 step(s) failed");

        let mut ok = Steps::default();
        ok.run("a", || Ok(Outcome::Pass));
        ok.finish("t", Instant::now()).unwrap();
    }
}
