//! `--all`: one command in every running task of a service, in parallel.
//!
//! Tasks are grouped by node. The engine's own node runs its tasks through
//! the local transport; every other node gets **one** helper, which execs
//! into all of that node's tasks itself. `--parallel N` caps how many tasks
//! run at once across the swarm; `--rolling` runs one task at a time in slot
//! order and stops at the first failure.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::engine::Engine;
use crate::error::Error;
use crate::error::Signal;
use crate::exec::{Control, Controls, ExecSpec, Exit, Outcome, SIGNAL_GRACE};
use crate::session::Session;
use crate::sink::{Sink, Stream};
use crate::target::Task;
use crate::transport::helper::{self, TargetSink};
use crate::transport::{local, Transport};
use crate::RunOptions;

/// How to fan out.
#[derive(Clone, Debug, Default)]
pub struct AllOptions {
    /// At most this many tasks at once; all when `None`.
    pub parallel: Option<usize>,
    /// One task at a time, in slot order, stopping at the first failure.
    pub rolling: bool,
    /// `run.timeout` is per task.
    pub run: RunOptions,
}

/// How one task of a fan-out ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    Exited(Exit),
    TimedOut,
    /// swarm-exec could not run the command there.
    Failed(String),
    /// `--rolling` stopped before reaching this task.
    Skipped,
}

/// What a [`Reporter`] is told when a task ends.
#[derive(Clone, Debug)]
pub struct TaskEnd {
    pub ending: Ending,
    pub duration: Duration,
}

/// Receives the output and the end of every task, as they happen. Calls
/// for one task come in order; calls for different tasks interleave.
pub trait Reporter: Send {
    fn output(&mut self, task: &Task, stream: Stream, data: &[u8]) -> std::io::Result<()>;
    fn finished(&mut self, task: &Task, end: &TaskEnd) -> std::io::Result<()>;
}

/// Splits a cap of `parallel` concurrent tasks over groups of `sizes`
/// tasks: each running group gets a share (at least 1), and groups beyond
/// the cap wait. Returns (per-group cap, how many groups run at once).
pub fn shares(parallel: Option<usize>, sizes: &[usize]) -> (Vec<usize>, usize) {
    let groups = sizes.len().max(1);
    let Some(cap) = parallel else {
        return (sizes.to_vec(), groups);
    };
    let cap = cap.max(1);
    if cap < groups {
        return (vec![1; sizes.len()], cap);
    }
    // Water-filling: hand out one slot at a time to groups that can use it.
    let mut share = vec![0usize; sizes.len()];
    let mut left = cap;
    while left > 0 {
        let mut gave = false;
        for (i, s) in share.iter_mut().enumerate() {
            if left > 0 && *s < sizes[i] {
                *s += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    (share, groups)
}

/// The reporter and each task's ending, shared by the concurrent groups.
struct Shared<'a, R> {
    reporter: &'a Mutex<R>,
    tasks: &'a [Task],
    endings: Mutex<Vec<Option<Ending>>>,
}

impl<R: Reporter> Shared<'_, R> {
    fn output(&self, i: usize, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        self.reporter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .output(&self.tasks[i], stream, data)
    }

    /// Records task `i`'s ending, once: a later call for it is ignored.
    fn finished(&self, i: usize, ending: Ending, since: Instant) {
        let mut endings = self.endings.lock().unwrap_or_else(|p| p.into_inner());
        if endings[i].is_some() {
            return;
        }
        endings[i] = Some(ending.clone());
        drop(endings);
        let end = TaskEnd {
            ending,
            duration: since.elapsed(),
        };
        // A reporter that cannot write (closed stdout) has nowhere to say so.
        let _ = self
            .reporter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finished(&self.tasks[i], &end);
    }
}

/// One task's output into the shared reporter.
struct TaskSink<'a, 'b, R> {
    shared: &'a Shared<'b, R>,
    task: usize,
}

impl<R: Reporter> Sink for TaskSink<'_, '_, R> {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        self.shared.output(self.task, stream, data)
    }
}

/// A node's helper output into the shared reporter.
struct GroupSink<'a, 'b, R> {
    shared: &'a Shared<'b, R>,
    group: &'a [usize],
    since: Instant,
}

impl<R: Reporter> TargetSink for GroupSink<'_, '_, R> {
    async fn write(&mut self, target: u32, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        self.shared
            .output(self.group[target as usize], stream, data)
    }

    fn finished(&mut self, target: u32, outcome: &Outcome) {
        let ending = match outcome {
            Outcome::Exited(e) => Ending::Exited(*e),
            Outcome::Failed(why) => Ending::Failed(why.clone()),
            Outcome::TimedOut => Ending::TimedOut,
        };
        self.shared
            .finished(self.group[target as usize], ending, self.since);
    }
}

/// Tells a running [`run_all`] to stop: each command still running gets
/// this signal (as `kill -SIG`); a task on another node gets SIGTERM when
/// its helper's service is removed.
pub type Stop = tokio::sync::watch::Receiver<Option<i32>>;

/// Waits until `stop` carries a signal; never, if its sender is gone
/// without one.
async fn stopped(stop: &mut Stop) -> i32 {
    match stop.wait_for(Option::is_some).await {
        Ok(sig) => sig.unwrap_or(Signal::Terminate.number()),
        Err(_) => std::future::pending().await,
    }
}

/// Runs one task's exec, `run`, which reads its controls from the channel
/// `signal` feeds: when the per-task `limit` passes, the command gets
/// SIGTERM, and on `stop` the user's signal; then it has [`SIGNAL_GRACE`]
/// to end (the ending is then the timeout, or the interruption, anyway).
async fn signalled(
    limit: Option<Duration>,
    mut stop: Stop,
    signal: tokio::sync::mpsc::Sender<Control>,
    run: impl std::future::Future<Output = crate::Result<Exit>>,
) -> Ending {
    tokio::pin!(run);
    let over = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let (sig, ending) = tokio::select! {
        r = &mut run => return ending_of(r),
        _ = over => (Signal::Terminate.number(), Ending::TimedOut),
        sig = stopped(&mut stop) => (sig, Ending::Failed("interrupted".into())),
    };
    let _ = tokio::time::timeout(SIGNAL_GRACE, async {
        let _ = signal.send(Control::Signal(sig)).await;
        let _ = (&mut run).await;
    })
    .await;
    ending
}

fn ending_of(result: crate::Result<Exit>) -> Ending {
    match result {
        Ok(exit) => Ending::Exited(exit),
        Err(Error::Timeout { .. }) => Ending::TimedOut,
        Err(e) => Ending::Failed(e.to_string()),
    }
}

/// Runs `spec` in every one of `tasks`. Every task gets exactly one
/// `finished` call; the return value is each task's ending, in order.
/// With `-i` (`spec.stdin`), `input` carries the user's stdin, and every
/// task gets a copy. Once `stop` carries a signal, the run ends as soon as
/// the commands it reaches have (see [`Stop`]).
#[allow(clippy::too_many_arguments)]
pub async fn run_all<R: Reporter>(
    engine: &Engine,
    session: &Session,
    tasks: &[Task],
    spec: &ExecSpec,
    opts: &AllOptions,
    reporter: &Mutex<R>,
    input: Option<Controls>,
    stop: Stop,
) -> Vec<Ending> {
    let shared = Shared {
        reporter,
        tasks,
        endings: Mutex::new(vec![None; tasks.len()]),
    };
    if spec.stdin {
        with_stdin(engine, session, spec, opts, &shared, input, stop).await;
    } else if opts.rolling {
        rolling(engine, session, spec, opts, &shared, stop).await;
    } else {
        let local_ok = opts.run.transport != Transport::Helper;
        // Local group first, then one group per other node.
        let mut groups: BTreeMap<(bool, &str), Vec<usize>> = BTreeMap::new();
        for (i, t) in tasks.iter().enumerate() {
            let local = local_ok && t.node_id == engine.node_id;
            groups
                .entry((!local, t.node_id.as_str()))
                .or_default()
                .push(i);
        }
        let groups: Vec<(bool, Vec<usize>)> = groups
            .into_iter()
            .map(|((remote, _), g)| (remote, g))
            .collect();
        let sizes: Vec<usize> = groups.iter().map(|(_, g)| g.len()).collect();
        let (caps, at_once) = shares(opts.parallel, &sizes);
        let shared = &shared;
        let runs = groups.iter().zip(caps).map(|((remote, group), cap)| {
            let stop = stop.clone();
            async move {
                if *remote {
                    remote_group(engine, session, group, spec, opts, cap, shared, stop).await
                } else {
                    local_group(engine, session, group, spec, opts, cap, shared, stop).await
                }
            }
        });
        let _: Vec<()> = stream::iter(runs).buffer_unordered(at_once).collect().await;
    }
    let endings = shared
        .endings
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    endings
        .into_iter()
        .map(|e| e.unwrap_or_else(|| Ending::Failed("it was never run".into())))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn local_group<R: Reporter>(
    engine: &Engine,
    session: &Session,
    group: &[usize],
    spec: &ExecSpec,
    opts: &AllOptions,
    cap: usize,
    shared: &Shared<'_, R>,
    stop: Stop,
) {
    let runs = group.iter().map(|&i| {
        let stop = stop.clone();
        async move {
            let since = Instant::now();
            let mut sink = TaskSink { shared, task: i };
            let (signal, mut controls) = tokio::sync::mpsc::channel(1);
            let task = &shared.tasks[i];
            let run = local::run(engine, session, task, spec, &mut sink, Some(&mut controls));
            let ending = signalled(opts.run.timeout, stop, signal, run).await;
            shared.finished(i, ending, since);
        }
    });
    let _: Vec<()> = stream::iter(runs)
        .buffer_unordered(cap.max(1))
        .collect()
        .await;
}

#[allow(clippy::too_many_arguments)]
async fn remote_group<R: Reporter>(
    engine: &Engine,
    session: &Session,
    group: &[usize],
    spec: &ExecSpec,
    opts: &AllOptions,
    cap: usize,
    shared: &Shared<'_, R>,
    mut stop: Stop,
) {
    let since = Instant::now();
    let tasks: Vec<&Task> = group.iter().map(|&i| &shared.tasks[i]).collect();
    let node = tasks[0].node.clone();
    let fail_rest = |why: String| {
        for &i in group {
            shared.finished(i, Ending::Failed(why.clone()), since);
        }
    };
    if !tasks[0].node_ready {
        return fail_rest(format!("node {node} is down"));
    }
    let parallel = (cap < group.len()).then_some(cap);
    let limit = opts.run.timeout;
    let work = async {
        let service = helper::start(
            engine,
            session,
            &tasks,
            spec,
            parallel,
            limit,
            &opts.run.helper,
        )
        .await?;
        let mut sink = GroupSink {
            shared,
            group,
            since,
        };
        // The per-task timeout runs from each exec's start, inside `follow`
        // (and inside the helper, which ends the command on its node).
        helper::follow(engine, &service, &node, group.len(), limit, &mut sink).await
    };
    // On `stop`, the helper's commands end when the caller's cleanup removes
    // its service: nothing to wait for here.
    // Tasks that already ended keep their ending; the rest failed.
    tokio::select! {
        r = work => if let Err(e) = r {
            fail_rest(e.to_string());
        },
        _ = stopped(&mut stop) => fail_rest("interrupted".into()),
    }
}

/// How many stdin chunks (of up to 64 KiB) may wait for one task: a task
/// whose turn has not come yet (`--parallel`) holds its copy meanwhile.
const STDIN_BACKLOG: usize = 4096;

/// `-i` with `--all`: stdin is copied to every task. Each task needs its own
/// duplex session (the one-helper-per-node path has no stdin), so tasks run
/// one session each, at most `--parallel` at once.
async fn with_stdin<R: Reporter>(
    engine: &Engine,
    session: &Session,
    spec: &ExecSpec,
    opts: &AllOptions,
    shared: &Shared<'_, R>,
    input: Option<Controls>,
    stop: Stop,
) {
    let n = shared.tasks.len();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| tokio::sync::mpsc::channel::<Control>(STDIN_BACKLOG))
        .unzip();
    let signals = senders.clone();
    let copy = async move {
        if let Some(mut input) = input {
            while let Some(ctl) = input.recv().await {
                for tx in &senders {
                    // A task that has ended takes no more.
                    let _ = tx.send(ctl.clone()).await;
                }
            }
        }
    };
    let runs = receivers
        .into_iter()
        .zip(signals)
        .enumerate()
        .map(|(i, (mut rx, signal))| {
            let stop = stop.clone();
            async move {
                let since = Instant::now();
                let ending = one_task(
                    engine, session, spec, opts, shared, i, &mut rx, signal, stop,
                )
                .await;
                shared.finished(i, ending, since);
            }
        });
    let all = stream::iter(runs)
        .buffer_unordered(opts.parallel.unwrap_or(n).max(1))
        .collect::<Vec<()>>();
    tokio::join!(copy, all);
}

/// Runs task `i` on whatever path [`crate::run`] picks for it, its controls
/// from `controls`, which `signal` also feeds (see [`signalled`]).
#[allow(clippy::too_many_arguments)]
async fn one_task<R: Reporter>(
    engine: &Engine,
    session: &Session,
    spec: &ExecSpec,
    opts: &AllOptions,
    shared: &Shared<'_, R>,
    i: usize,
    controls: &mut Controls,
    signal: tokio::sync::mpsc::Sender<Control>,
    stop: Stop,
) -> Ending {
    let mut sink = TaskSink { shared, task: i };
    let task = &shared.tasks[i];
    let run = crate::run(
        engine,
        session,
        task,
        spec,
        &opts.run,
        &mut sink,
        Some(controls),
    );
    signalled(opts.run.timeout, stop, signal, run).await
}

async fn rolling<R: Reporter>(
    engine: &Engine,
    session: &Session,
    spec: &ExecSpec,
    opts: &AllOptions,
    shared: &Shared<'_, R>,
    interrupt: Stop,
) {
    let mut stop = false;
    for i in 0..shared.tasks.len() {
        if stop {
            shared.finished(i, Ending::Skipped, Instant::now());
            continue;
        }
        let since = Instant::now();
        let (signal, mut controls) = tokio::sync::mpsc::channel(1);
        let stop_now = interrupt.clone();
        let ending = one_task(
            engine,
            session,
            spec,
            opts,
            shared,
            i,
            &mut controls,
            signal,
            stop_now,
        )
        .await;
        // Each task's helper goes as soon as it is done.
        if let Err(e) = session.cleanup(engine).await {
            tracing::warn!("cleanup: {e}");
        }
        stop = ending != Ending::Exited(Exit { code: 0 });
        shared.finished(i, ending, since);
    }
}
