//! The harness for the suites that run against the lab swarm: start it with
//! `cargo xtask lab up` (or run everything with `cargo xtask test`).
//!
//! Tests of one binary take [`serial`] first: they share one swarm, and the
//! "nothing left behind" checks must see only their own session.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub use xtask::fixture::Task;
use xtask::lab::{Lab, Leftovers};

pub const SESSION_LABEL: &str = "swarm-exec.session";

/// The running lab; fails the test with how to start one.
pub fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| match Lab::load() {
        Ok(lab) => lab,
        Err(e) => panic!("these tests need the lab swarm: {e:#}"),
    })
}

/// One test at a time in this binary; a failed test does not poison the rest.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a command did.
#[derive(Clone, Debug)]
pub struct Run {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit status; `-1` when killed by a signal.
    pub code: i32,
    pub elapsed: Duration,
}

impl Run {
    fn from(out: Output, elapsed: Duration) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
            elapsed,
        }
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Asserts the documented error shape: exit 125 and exactly one line on stderr.
    pub fn assert_error(&self, needle: &str) {
        let err = self.stderr_str();
        assert_eq!(self.code, 125, "exit code; stderr: {err}");
        assert_eq!(err.lines().count(), 1, "one line of error, got: {err:?}");
        assert!(err.starts_with("swarm-exec: "), "{err:?}");
        assert!(
            err.contains(needle),
            "stderr {err:?} does not mention {needle:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_swarm-exec")
}

/// A `swarm-exec` command aimed at the lab manager.
pub fn swarm_exec_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("DOCKER_HOST", lab().docker_host())
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null());
    cmd
}

pub fn run(cmd: &mut Command) -> Run {
    let start = Instant::now();
    let out = cmd.output().expect("running a command");
    Run::from(out, start.elapsed())
}

/// Runs swarm-exec against the lab manager.
pub fn swarm_exec(args: &[&str]) -> Run {
    run(&mut swarm_exec_cmd(args))
}

/// `docker exec` run on the task's own node: the reference behaviour.
pub fn docker_exec(task: &Task, opts: &[&str], cmd: &[&str]) -> Run {
    let node = lab().node(&task.node);
    let mut c = Command::new(xtask::lab::docker_cli());
    c.arg("-H")
        .arg(node.docker_host())
        .arg("exec")
        .args(opts)
        .arg(&task.container)
        .args(cmd)
        .stdin(Stdio::null());
    run(&mut c)
}

/// A service deployed for tests, removed when dropped.
pub struct Service {
    pub name: String,
    pub tasks: Vec<Task>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = lab().docker(&lab().manager().name, &["service", "rm", &self.name]);
    }
}

impl Service {
    /// The running task on a node (by hostname).
    pub fn on(&self, node: &str) -> &Task {
        self.tasks
            .iter()
            .find(|t| t.node == node)
            .unwrap_or_else(|| panic!("{} has no task on {node}: {:?}", self.name, self.tasks))
    }
}

/// Deploys `replicas` tasks of a lab image (`busybox`, `nonroot`, `noshell`)
/// with `extra` `docker service create` flags, and waits until they run.
/// With `replicas` equal to the node count, the spread preference puts one
/// task on each node.
pub fn deploy(name: &str, image: &str, replicas: usize, extra: &[&str]) -> Service {
    deploy_cmd(name, image, replicas, extra, &[])
}

/// [`deploy`] with a command for the tasks.
pub fn deploy_cmd(
    name: &str,
    image: &str,
    replicas: usize,
    extra: &[&str],
    cmd: &[&str],
) -> Service {
    let lab = lab();
    let m = &lab.manager().name;
    let _ = lab.docker(m, &["service", "rm", name]);
    let replicas_s = replicas.to_string();
    let mut args = vec![
        "service",
        "create",
        "--detach",
        "--quiet",
        "--name",
        name,
        "--stop-grace-period",
        "1s",
        "--placement-pref",
        "spread=node.labels.lab.node",
    ];
    if !extra.contains(&"global") {
        args.extend(["--replicas", &replicas_s]);
    }
    args.extend(extra.iter().filter(|a| **a != "global"));
    if extra.contains(&"global") {
        args.extend(["--mode", "global"]);
    }
    args.push(lab.image(image));
    args.extend(cmd);
    lab.docker(m, &args).expect("creating a test service");
    let tasks = xtask::fixture::wait_running(lab, name, replicas).expect("tasks running");
    Service {
        name: name.to_owned(),
        tasks,
    }
}

/// Everything labelled `swarm-exec.session`, per node, that is not empty.
pub fn leftovers() -> BTreeMap<String, Leftovers> {
    let mut all = lab().leftovers(SESSION_LABEL).expect("listing leftovers");
    all.retain(|_, l| !l.is_empty());
    all
}

/// Asserts that nothing labelled `swarm-exec.session` is left on any node.
/// Workers remove a removed service's containers on their own schedule, so
/// this waits a little for them (test code; polls).
pub fn assert_clean() {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = leftovers();
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("swarm-exec left objects behind: {left:#?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Every path to a task, as (node, `--relay-link`): local (the link does
/// not apply), a worker dialled directly, a worker through a relay
/// container.
pub const PATHS: [(&str, &str); 3] = [("m1", "direct"), ("w1", "direct"), ("w1", "host")];

/// swarm-exec's arguments for `sh -c SCRIPT` in `target` over `link`.
pub fn sh_over<'a>(link: &'a str, target: &'a str, script: &'a str) -> [&'a str; 6] {
    ["--relay-link", link, target, "sh", "-c", script]
}

/// Runs `undo` when dropped: puts the lab back (an engine restarted, a node
/// reactivated, a wall removed) however the test ends, panics included.
pub struct Restore<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Restore<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Waits until `cond` holds (test code; polls every 50 ms).
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a process whose command line is `cmd` runs in `task`'s
/// container (`docker top` on the task's node).
pub fn runs_in(task: &Task, cmd: &str) -> bool {
    let top = lab()
        .docker(&task.node, &["top", &task.container, "-o", "pid,args"])
        .unwrap_or_else(|e| panic!("docker top on {}: {e:#}", task.node));
    // `PID ARGS` lines after the heading.
    top.lines()
        .skip(1)
        .filter_map(|l| l.trim().split_once(' '))
        .any(|(_, args)| args.trim() == cmd)
}

/// Asserts that no process `cmd` is left in `task`'s container within
/// `within`: what swarm-exec interrupted or timed out has really ended.
pub fn assert_ended(task: &Task, cmd: &str, within: Duration) {
    wait_for(
        &format!("`{cmd}` to end in {} on {}", task.container, task.node),
        within,
        || !runs_in(task, cmd),
    );
}

/// The services that carry the session label right now.
pub fn session_services() -> Vec<String> {
    let out = lab()
        .docker(
            &lab().manager().name,
            &[
                "service",
                "ls",
                "--filter",
                &format!("label={SESSION_LABEL}"),
                "--format",
                "{{.Name}}",
            ],
        )
        .unwrap_or_default();
    out.lines().map(str::to_owned).collect()
}
