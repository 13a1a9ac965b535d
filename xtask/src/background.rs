//! The suite's release builds (`cargo xtask dist` in child processes), started right after
//! setup and run one stage after another in the background: they compile for minutes (fat LTO,
//! `-Z build-std`) while the steps before the ones that need them lint, build in debug or wait
//! on the lab's network, so both cores stay busy. A step that needs a stage's binaries waits
//! for it ([`Builds::wait`]) and then asks `dist` for them again, which finds them built.
//!
//! Each stage's output goes to its own log under the target directory; a failed stage prints
//! the log's end, and the stages after it are not started. Dropping [`Builds`] (the suite
//! stopped at an earlier failure) kills the running build.

use std::{
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver},
    },
    thread::JoinHandle,
    time::Duration,
};

/// One stage: `cargo xtask dist` for `targets`, its output in `target/<name>-build.log`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stage {
    /// Names the stage (in messages and its log's name).
    pub(crate) name: &'static str,
    /// The target triples it builds.
    pub(crate) targets: &'static [&'static str],
}

/// The stages' thread and its results.
pub(crate) struct Builds {
    stages: Vec<Stage>,
    /// Results in stage order: a stage's result arrives when its build ends.
    results: Receiver<anyhow::Result<()>>,
    /// How many results [`Builds::wait`] has taken.
    taken: usize,
    /// The build running now, for [`Drop`] to kill.
    running: Arc<Mutex<Running>>,
    thread: Option<JoinHandle<()>>,
}

/// What the stages' thread is doing.
#[derive(Default)]
struct Running {
    child: Option<Child>,
    /// Set by [`Drop`]: kill the child and start no other stage.
    cancelled: bool,
}

impl Builds {
    /// Starts `stages` one after another in a thread of their own (their targets' `rust-std`
    /// installed first, here).
    pub(crate) fn start(stages: &[Stage]) -> anyhow::Result<Builds> {
        for stage in stages {
            crate::dist::prepare(stage.targets)?;
        }
        let exe = std::env::current_exe()?;
        let running = Arc::new(Mutex::new(Running::default()));
        let (send, results) = mpsc::channel();
        let list: Vec<Stage> = stages.to_vec();
        let thread = {
            let running = Arc::clone(&running);
            std::thread::Builder::new().name("release builds".into()).spawn(move || {
                let mut failed = None;
                for stage in &list {
                    let result = match failed {
                        Some(earlier) => {
                            Err(anyhow::anyhow!("not started: the {earlier} builds failed"))
                        }
                        None => run_stage(&exe, *stage, &running),
                    };
                    if result.is_err() && failed.is_none() {
                        failed = Some(stage.name);
                    }
                    if send.send(result).is_err() {
                        return;
                    }
                }
            })?
        };
        for stage in stages {
            println!(
                "release builds ({}: {}) started in the background (log: {})",
                stage.name,
                stage.targets.join(", "),
                log(*stage).display()
            );
        }
        Ok(Builds { stages: stages.to_vec(), results, taken: 0, running, thread: Some(thread) })
    }

    /// Waits for the stage named `name` (and those before it, in order); on failure the end of
    /// its log is printed and the error names the log.
    pub(crate) fn wait(&mut self, name: &str) -> anyhow::Result<()> {
        let index = self
            .stages
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| anyhow::anyhow!("no background stage {name}"))?;
        anyhow::ensure!(index >= self.taken, "the {name} builds were waited for already");
        while self.taken <= index {
            let stage = self.stages[self.taken];
            let result = self
                .results
                .recv()
                .map_err(|_| anyhow::anyhow!("the release builds' thread ended early"))?;
            self.taken += 1;
            if let Err(e) = result {
                print_tail(stage);
                return Err(e.context(format!(
                    "the {} builds failed; full log: {}",
                    stage.name,
                    log(stage).display()
                )));
            }
        }
        Ok(())
    }
}

impl Drop for Builds {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock() {
            running.cancelled = true;
            if let Some(child) = running.child.as_ref() {
                // The whole group: `dist`'s cargo and its compilers with it.
                // SAFETY: a plain syscall on a process group this suite started.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `target/<name>-build.log`.
fn log(stage: Stage) -> PathBuf {
    crate::run::target_dir().join(format!("{}-build.log", stage.name))
}

/// Runs one stage's `dist` to its end (or until [`Builds`] is dropped).
fn run_stage(exe: &std::path::Path, stage: Stage, running: &Mutex<Running>) -> anyhow::Result<()> {
    let file = std::fs::File::create(log(stage))?;
    let mut command = Command::new(exe);
    command.arg("dist");
    for target in stage.targets {
        command.args(["--target", target]);
    }
    // A process group of its own, for [`Drop`] to kill whole.
    command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file).process_group(0);
    {
        let mut r = running.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        anyhow::ensure!(!r.cancelled, "cancelled");
        r.child = Some(command.spawn()?);
    }
    loop {
        {
            let mut r = running.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let child = r.child.as_mut().expect("spawned above");
            if let Some(done) = child.try_wait()? {
                r.child = None;
                anyhow::ensure!(done.success(), "`xtask dist` exited with {done}");
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last 40 lines of a stage's log.
fn print_tail(stage: Stage) {
    let text = std::fs::read_to_string(log(stage)).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(40).collect();
    for line in tail.iter().rev() {
        println!("{line}");
    }
}
