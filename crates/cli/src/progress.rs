//! A one-line spinner on stderr while nothing has been printed yet: the
//! first output of a command on a worker can take a second or more (the
//! helper task is scheduled, started, and its logs followed), and silence
//! looks like a hang.
//!
//! It appears only after [`DELAY`], only when stderr is a terminal and
//! swarm-exec's own messages are wanted (not `-q`, `-v` or `--format
//! json`), and it is erased before the first byte of output and before any
//! message of swarm-exec's own.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarm_exec::fanout::{Reporter, TaskEnd};
use swarm_exec::sink::{Sink, Stream};
use swarm_exec::{Engine, Task, Transport};

/// How long output may take before the spinner appears.
pub const DELAY: Duration = Duration::from_millis(300);
const FRAME: Duration = Duration::from_millis(100);
const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Carriage return and erase-line: the spinner leaves nothing behind.
const ERASE: &str = "\r\x1b[2K";

/// Whether to show progress at all, for a run with these options.
pub fn wanted(quiet: bool, verbose: u8) -> bool {
    !quiet && verbose == 0 && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

#[derive(Default)]
struct State {
    message: String,
    stopped: bool,
    /// A frame is on the screen.
    shown: bool,
}

/// The spinner; stopping (or dropping) it erases its line.
pub struct Spinner {
    state: Arc<Mutex<State>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    /// Starts a spinner that shows `message` after [`DELAY`]; a disabled
    /// one never draws anything.
    pub fn start(enabled: bool, message: impl Into<String>) -> Spinner {
        let state = Arc::new(Mutex::new(State {
            message: message.into(),
            ..State::default()
        }));
        let ticker = enabled.then(|| {
            let state = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(DELAY).await;
                for frame in FRAMES.iter().cycle() {
                    {
                        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                        if s.stopped {
                            return;
                        }
                        let line = format!("{ERASE}{frame} {}", s.message);
                        let mut err = std::io::stderr().lock();
                        if err
                            .write_all(line.as_bytes())
                            .and_then(|()| err.flush())
                            .is_err()
                        {
                            return;
                        }
                        s.shown = true;
                    }
                    tokio::time::sleep(FRAME).await;
                }
            })
        });
        Spinner { state, ticker }
    }

    /// A spinner that never shows.
    pub fn off() -> Spinner {
        Spinner::start(false, "")
    }

    /// Changes what the spinner says: what swarm-exec is waiting for now.
    pub fn set_message(&self, message: impl Into<String>) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).message = message.into();
    }

    /// Stops the spinner for good and erases its line, if it drew one.
    pub fn stop(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.stopped {
            return;
        }
        s.stopped = true;
        if s.shown {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(ERASE.as_bytes()).and_then(|()| err.flush());
            s.shown = false;
        }
        if let Some(t) = &self.ticker {
            t.abort();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a single exec waits for before its first output.
pub fn waiting_for(engine: &Engine, task: &Task, transport: Transport) -> String {
    let local = task.node_id == engine.node_id;
    match transport {
        Transport::Auto | Transport::Local if local => {
            format!("starting the command in {} on {}…", task.label(), task.node)
        }
        _ => format!("starting helper on {}…", task.node),
    }
}

/// What `--all` waits for before its first output.
pub fn waiting_for_all(tasks: &[Task]) -> String {
    let mut nodes: Vec<&str> = tasks.iter().map(|t| t.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    format!(
        "starting the command in {} on {}…",
        plural(tasks.len(), "task"),
        plural(nodes.len(), "node")
    )
}

/// A sink that stops the spinner before the first output.
pub struct Erase<'a, S> {
    inner: S,
    spinner: &'a Spinner,
}

impl<'a, S> Erase<'a, S> {
    pub fn new(inner: S, spinner: &'a Spinner) -> Self {
        Erase { inner, spinner }
    }
}

impl<S: Sink> Sink for Erase<'_, S> {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        self.spinner.stop();
        self.inner.write(stream, data).await
    }
}

/// A `--all` reporter that stops the spinner before the first output.
pub struct EraseReporter<'a, R> {
    inner: R,
    spinner: &'a Spinner,
}

impl<'a, R> EraseReporter<'a, R> {
    pub fn new(inner: R, spinner: &'a Spinner) -> Self {
        EraseReporter { inner, spinner }
    }
}

impl<R: Reporter> Reporter for EraseReporter<'_, R> {
    fn output(&mut self, task: &Task, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        self.spinner.stop();
        self.inner.output(task, stream, data)
    }

    fn finished(&mut self, task: &Task, end: &TaskEnd) -> std::io::Result<()> {
        self.spinner.stop();
        self.inner.finished(task, end)
    }
}
