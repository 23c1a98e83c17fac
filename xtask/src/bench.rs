//! `cargo xtask bench`: how swarm-exec compares with `docker exec` and with
//! the old design (a one-shot service per exec), on the running lab swarm.
//!
//! The machine is noisy (the lab is many engines on one host, and other
//! work runs beside it), so every compared command is measured in the same
//! rounds, interleaved (A, B, A, B, …), after one warm-up round that is
//! thrown away, and every figure is the median of its rounds. Nothing here
//! asserts anything about time: the output is a table to read and a JSON
//! file to compare across commits.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::fixture::{self, Task};
use crate::lab::{self, Lab};

/// The service every row execs into: one task on each node.
const WEB: &str = "bench-web";
/// The service the fan-out row scales.
const FAN: &str = "bench-fan";
/// 256 MiB: large enough that start-up cost disappears in the rate.
const STREAM_BYTES: u64 = 256 << 20;
/// Throughput rounds: each moves 256 MiB four ways, and the helper transport
/// is slow, so fewer rounds than the others keep the whole run short.
const STREAM_RUNS: usize = 3;
const FAN_REPLICAS: [usize; 3] = [1, 10, 30];

/// The groups of rows, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Rows {
    Local,
    Remote,
    Throughput,
    FanOut,
    Interactive,
    Cost,
}

/// One line of the table (and of the JSON).
#[derive(Serialize)]
struct Row {
    row: String,
    what: String,
    /// Medians in ms; `None` for the cost rows, which are not times.
    median_ms: Option<f64>,
    samples_ms: Vec<f64>,
    /// The cell shown in the table's median column.
    shown: String,
    ratio: String,
    /// Row-specific figures (MiB/s, helpers per run, sizes…).
    extra: serde_json::Value,
    error: Option<String>,
}

/// A command measured in rounds.
struct Probe<'a> {
    what: String,
    run: Box<dyn FnMut() -> Result<f64> + 'a>,
    samples: Vec<f64>,
    error: Option<String>,
}

impl<'a> Probe<'a> {
    fn new(what: impl Into<String>, run: impl FnMut() -> Result<f64> + 'a) -> Self {
        Probe {
            what: what.into(),
            run: Box::new(run),
            samples: Vec::new(),
            error: None,
        }
    }

    fn median(&self) -> Option<f64> {
        median(&self.samples)
    }
}

/// Runs every probe once to warm up, then `runs` rounds of all of them in
/// turn, so that a slow stretch of the machine hits all alike. A probe that
/// fails is reported with its error and not run again.
fn measure(label: &str, runs: usize, probes: &mut [Probe]) {
    for round in 0..=runs {
        eprintln!(
            "bench: {label}: round {round}/{runs}{}",
            if round == 0 { " (warm-up)" } else { "" }
        );
        for p in probes.iter_mut().filter(|p| p.error.is_none()) {
            match (p.run)() {
                Ok(ms) if round > 0 => p.samples.push(ms),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench: {}: {e:#}", p.what);
                    p.error = Some(format!("{e:#}"));
                }
            }
        }
    }
}

fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `a / b` as "1.23×", or "n/a" when either is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "n/a".into(),
    }
}

fn row_of(row: &str, p: &Probe, ratio: String, extra: serde_json::Value) -> Row {
    let m = p.median();
    Row {
        row: row.into(),
        what: p.what.clone(),
        median_ms: m,
        samples_ms: p.samples.clone(),
        shown: match (m, &p.error) {
            (_, Some(_)) => "failed".into(),
            (Some(m), None) => format!("{m:.1}"),
            (None, None) => "n/a".into(),
        },
        ratio,
        extra,
        error: p.error.clone(),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// What the benchmark needs from the lab: the CLI, the manager, and the
/// task of `bench-web` on each node.
struct Ctx<'a> {
    lab: &'a Lab,
    bin: PathBuf,
    /// The node-side helper, built for this host.
    helper: PathBuf,
    manager: String,
    /// `bench-web` tasks by node: m1 (local to the manager) and w1 (remote).
    local: Task,
    remote: Task,
}

impl Ctx<'_> {
    /// swarm-exec against the manager, as a user would run it.
    fn sx(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).env("DOCKER_HOST", self.lab.docker_host());
        cmd
    }

    /// The docker CLI on one node's own engine.
    fn docker(&self, node: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(lab::docker_cli());
        cmd.arg("-H")
            .arg(self.lab.node(node).docker_host())
            .args(args);
        cmd
    }

    fn target(&self, task: &Task) -> String {
        format!("{WEB}.{}", task.slot.expect("bench-web is replicated"))
    }

    /// Counts `docker events` of `kind` (e.g. `service`) created on `node`
    /// between two unix times: the engine records each object it creates,
    /// whereas listing objects while a run goes on misses short-lived ones.
    /// `docker events` blocks until `until`, which is already past here.
    fn created(&self, node: &str, kind: &str, since: f64, until: f64) -> Result<Vec<String>> {
        let out = self.lab.docker(
            node,
            &[
                "events",
                "--since",
                &format!("{since:.3}"),
                "--until",
                &format!("{until:.3}"),
                "--filter",
                &format!("type={kind}"),
                "--filter",
                "event=create",
                "--format",
                "{{.Actor.Attributes.name}}",
            ],
        )?;
        Ok(out.lines().map(str::to_owned).collect())
    }
}

/// Runs `cmds` at once, each as [`timed`] runs it, and returns the wall
/// time until the last one ends.
fn timed_together(mut cmds: Vec<Command>) -> Result<f64> {
    let t = Instant::now();
    std::thread::scope(|s| {
        let runs: Vec<_> = cmds
            .iter_mut()
            .map(|cmd| s.spawn(move || timed(cmd, None)))
            .collect();
        runs.into_iter().try_for_each(|r| {
            r.join()
                .unwrap_or_else(|_| bail!("a timing thread panicked"))
                .map(drop)
        })
    })?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Runs `cmd` to the end with stdin closed, counting (and discarding) its
/// stdout, and returns the wall time in ms. Fails on a non-zero exit or,
/// with `expect`, a short output, so that a broken command never passes
/// for a fast one.
fn timed(cmd: &mut Command, expect: Option<u64>) -> Result<f64> {
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        match stdout.read(&mut buf)? {
            0 => break,
            n => bytes += n as u64,
        }
    }
    let status = child.wait()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        bail!("{status}: {}", errors.trim());
    }
    if let Some(want) = expect {
        if bytes != want {
            bail!("got {bytes} bytes of stdout, not {want}");
        }
    }
    Ok(ms)
}

/// `cargo xtask bench`: builds the CLI, deploys the bench services on the
/// running lab, measures, prints the table and writes `json` and the table
/// next to it (`.md`). The services are removed also when a row fails.
pub fn run(runs: usize, json: Option<&Path>, only: &[Rows]) -> Result<()> {
    if runs < 5 {
        bail!("--runs must be at least 5, not {runs}: a median of fewer says little");
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--release", "-p", "swarm-exec-cli"])
        // The fan-out row's engine floor runs the helper on this host.
        .args(["-p", "swarm-exec-helper", "--bin", "swarm-exec-helper"])
        .status()?;
    if !status.success() {
        bail!("building swarm-exec failed");
    }
    let bin = crate::target_dir().join("release/swarm-exec");
    let lab = Lab::load().context("the bench needs a running lab (cargo xtask lab up)")?;
    let json = json
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::workspace_root().join("bench-results/latest.json"));

    let m = lab.manager().name.clone();
    let cleanup = || {
        // Also whatever an interrupted earlier run left.
        let _ = lab.docker(&m, &["service", "rm", WEB, FAN]);
        if let Ok(old) = lab.docker(&m, &["service", "ls", "-q", "--filter", "name=bench-old-"]) {
            for id in old.split_whitespace() {
                let _ = lab.docker(&m, &["service", "rm", id]);
            }
        }
    };
    cleanup();
    let result = bench(&lab, bin, runs, only);
    cleanup();
    let rows = result?;

    let table = table(&rows, runs);
    print!("{table}");
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let doc = serde_json::json!({
        "runs": runs,
        "stream_runs": STREAM_RUNS,
        "finished_unix": unix_now(),
        "lab_nodes": lab.swarm_nodes().map(|n| n.name.clone()).collect::<Vec<_>>(),
        "rows": rows,
    });
    std::fs::write(&json, serde_json::to_string_pretty(&doc)? + "\n")?;
    std::fs::write(json.with_extension("md"), &table)?;
    eprintln!(
        "bench: wrote {} and {}",
        json.display(),
        json.with_extension("md").display()
    );
    Ok(())
}

fn table(rows: &[Row], runs: usize) -> String {
    let mut t = format!(
        "Medians of {runs} runs after one warm-up, interleaved (throughput: {STREAM_RUNS} runs).\n\n\
         | row | what | median ms | ratio |\n|---|---|---:|---|\n"
    );
    for r in rows {
        let ratio = match &r.error {
            Some(e) => format!("failed: {}", e.replace('|', "\\|").replace('\n', " ")),
            None => r.ratio.clone(),
        };
        let _ = writeln!(t, "| {} | {} | {} | {} |", r.row, r.what, r.shown, ratio);
    }
    t
}

fn bench(lab: &Lab, bin: PathBuf, runs: usize, only: &[Rows]) -> Result<Vec<Row>> {
    let m = lab.manager().name.clone();
    lab.docker(
        &m,
        &[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            WEB,
            "--replicas",
            "3",
            "--placement-pref",
            "spread=node.labels.lab.node",
            "--stop-grace-period",
            "1s",
            lab.image("busybox"),
            "sleep",
            "infinity",
        ],
    )?;
    let tasks = fixture::wait_running(lab, WEB, 3)?;
    let on = |node: &str| -> Result<Task> {
        tasks
            .iter()
            .find(|t| t.node == node)
            .cloned()
            .with_context(|| format!("no {WEB} task on {node}: {tasks:?}"))
    };
    let cx = Ctx {
        lab,
        helper: bin.with_file_name("swarm-exec-helper"),
        bin,
        manager: m,
        local: on("m1")?,
        remote: on("w1")?,
    };
    let wanted = |r: Rows| only.is_empty() || only.contains(&r);
    let mut rows = Vec::new();
    if wanted(Rows::Local) {
        rows.extend(local_exec(&cx, runs));
    }
    if wanted(Rows::Remote) {
        rows.extend(remote_one_shot(&cx, runs));
    }
    if wanted(Rows::Throughput) {
        rows.extend(throughput(&cx));
    }
    if wanted(Rows::FanOut) {
        rows.extend(fan_out(&cx, runs)?);
    }
    if wanted(Rows::Interactive) {
        rows.extend(interactive(&cx, runs));
    }
    if wanted(Rows::Cost) {
        rows.extend(cost(&cx)?);
    }
    Ok(rows)
}

fn local_exec(cx: &Ctx, runs: usize) -> Vec<Row> {
    let target = cx.target(&cx.local);
    let node = &cx.local.node;
    let mut p = [
        Probe::new(format!("swarm-exec {target} true"), || {
            timed(&mut cx.sx(&[&target, "true"]), None)
        }),
        Probe::new(format!("docker -H {node} exec CONTAINER true"), || {
            timed(
                &mut cx.docker(node, &["exec", &cx.local.container, "true"]),
                None,
            )
        }),
    ];
    measure("1 local exec", runs, &mut p);
    let r = ratio(p[0].median(), p[1].median());
    vec![
        row_of(
            "1 local exec",
            &p[0],
            format!("{r} docker exec"),
            serde_json::Value::Null,
        ),
        row_of(
            "1 local exec",
            &p[1],
            "1.00× (baseline)".into(),
            serde_json::Value::Null,
        ),
    ]
}

/// The old design: one one-shot service per exec, which mounts the node's
/// engine socket, polled the way its CLI did (every second) until complete,
/// then removed.
fn old_design(cx: &Ctx, n: &mut usize) -> Result<f64> {
    *n += 1;
    let name = format!("bench-old-{n}");
    let t = Instant::now();
    cx.lab.docker(
        &cx.manager,
        &[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            &name,
            "--restart-condition",
            "none",
            "--constraint",
            &format!("node.hostname=={}", cx.remote.node),
            "--mount",
            "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock",
            cx.lab.image("busybox"),
            "true",
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let state = cx.lab.docker(
            &cx.manager,
            &["service", "ps", "--format", "{{.CurrentState}}", &name],
        )?;
        if state.trim_start().starts_with("Complete") {
            break;
        }
        if ["Failed", "Rejected"].iter().any(|s| state.contains(s)) || Instant::now() > deadline {
            let _ = cx.lab.docker(&cx.manager, &["service", "rm", &name]);
            bail!("{name} did not complete: {}", state.trim());
        }
    }
    cx.lab.docker(&cx.manager, &["service", "rm", &name])?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

fn remote_one_shot(cx: &Ctx, runs: usize) -> Vec<Row> {
    let target = cx.target(&cx.remote);
    let node = &cx.remote.node;
    let mut n = 0;
    let mut p = [
        Probe::new(
            format!("swarm-exec {target} true (default transport)"),
            || timed(&mut cx.sx(&[&target, "true"]), None),
        ),
        Probe::new(
            format!("swarm-exec --transport helper {target} true"),
            || {
                timed(
                    &mut cx.sx(&["--transport", "helper", &target, "true"]),
                    None,
                )
            },
        ),
        Probe::new(
            format!("swarm-exec --relay-link host {target} true (relay container)"),
            || timed(&mut cx.sx(&["--relay-link", "host", &target, "true"]), None),
        ),
        Probe::new(
            format!("docker -H {node} exec CONTAINER true (floor)"),
            || {
                timed(
                    &mut cx.docker(node, &["exec", &cx.remote.container, "true"]),
                    None,
                )
            },
        ),
        Probe::new(
            format!("old design: one-shot service on {node}, polled 1 s, removed"),
            || old_design(cx, &mut n),
        ),
    ];
    measure("2 remote one-shot", runs, &mut p);
    let (floor, old) = (p[3].median(), p[4].median());
    p.iter()
        .map(|probe| {
            let m = probe.median();
            row_of(
                "2 remote one-shot",
                probe,
                format!("{} floor, {} old design", ratio(m, floor), ratio(m, old)),
                serde_json::Value::Null,
            )
        })
        .collect()
}

fn throughput(cx: &Ctx) -> Vec<Row> {
    let size = STREAM_BYTES.to_string();
    let stream = ["sxtest", "stream", "1", size.as_str()];
    let local = cx.target(&cx.local);
    let remote = cx.target(&cx.remote);
    let with = |pre: &[&str], target: &str| -> Vec<String> {
        pre.iter()
            .copied()
            .chain([target])
            .chain(stream)
            .map(str::to_owned)
            .collect()
    };
    let sx = |args: Vec<String>| {
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            timed(&mut cx.sx(&args), Some(STREAM_BYTES))
        }
    };
    let mut docker_args = vec!["exec", cx.local.container.as_str()];
    docker_args.extend(stream);
    let node = &cx.local.node;
    // Any path through a relay container crosses two engines: the target's
    // (the helper's exec) and the manager's (the relay's exec). The same two
    // crossings with docker exec alone, in plaintext and with no set-up,
    // are the floor for that path on this machine.
    let two_engines = format!(
        "'{docker}' -H '{remote_host}' exec {remote_ctr} {stream} | \
         '{docker}' -H '{local_host}' exec -i {local_ctr} sh -c 'sxtest cat >/dev/null'",
        docker = lab::docker_cli(),
        remote_host = cx.lab.node(&cx.remote.node).docker_host(),
        remote_ctr = cx.remote.container,
        stream = stream.join(" "),
        local_host = cx.lab.node(&cx.local.node).docker_host(),
        local_ctr = cx.local.container,
    );
    let mut p = [
        Probe::new(format!("swarm-exec {local} (local)"), sx(with(&[], &local))),
        Probe::new(
            format!("swarm-exec {remote} (remote, default: relay, dialled directly)"),
            sx(with(&[], &remote)),
        ),
        Probe::new(
            format!("swarm-exec --relay-link host {remote} (remote, relay container)"),
            sx(with(&["--relay-link", "host"], &remote)),
        ),
        Probe::new(
            format!("swarm-exec --transport helper {remote} (remote)"),
            sx(with(&["--transport", "helper"], &remote)),
        ),
        Probe::new(
            format!(
                "docker -H {} exec | docker -H {node} exec -i (two engines, no swarm-exec)",
                cx.remote.node
            ),
            || {
                let script = format!("set -o pipefail; {two_engines}");
                timed(Command::new("bash").args(["-c", &script]), Some(0))
            },
        ),
        Probe::new(format!("docker -H {node} exec CONTAINER (local)"), || {
            timed(&mut cx.docker(node, &docker_args), Some(STREAM_BYTES))
        }),
    ];
    measure("3 throughput", STREAM_RUNS, &mut p);
    let mibs = |p: &Probe| {
        p.median()
            .map(|ms| (STREAM_BYTES >> 20) as f64 / (ms / 1e3))
    };
    let (base, floor) = (mibs(&p[5]), mibs(&p[4]));
    p.iter()
        .enumerate()
        .map(|(i, probe)| {
            let rate = mibs(probe);
            row_of(
                "3 throughput 256 MiB stdout",
                probe,
                match rate {
                    // The relay container's row, against its floor too.
                    Some(r) if i == 2 => format!(
                        "{r:.0} MiB/s, {} docker exec, {} two-engine floor",
                        ratio(rate, base),
                        ratio(rate, floor)
                    ),
                    Some(r) => format!("{r:.0} MiB/s, {} docker exec", ratio(rate, base)),
                    None => "n/a".into(),
                },
                serde_json::json!({ "mib_per_s": rate, "runs": STREAM_RUNS }),
            )
        })
        .collect()
}

fn fan_out(cx: &Ctx, runs: usize) -> Result<Vec<Row>> {
    let remote = cx.target(&cx.remote);
    // One replica sits on a worker, like the one-remote baseline; more
    // spread over every node. Scaling keeps the placement, so the service
    // is made anew rather than updated, whose rolling restart would move
    // tasks under the measurement.
    let create = |replicas: usize| -> Result<()> {
        let n = replicas.to_string();
        let mut args = vec!["service", "create", "--detach", "--quiet", "--name", FAN];
        args.extend(["--replicas", &n, "--stop-grace-period", "1s"]);
        args.extend(["--placement-pref", "spread=node.labels.lab.node"]);
        if replicas == 1 {
            args.extend(["--constraint", "node.role==worker"]);
        }
        args.extend([cx.lab.image("busybox"), "sleep", "infinity"]);
        cx.lab.docker(&cx.manager, &args).map(drop)
    };
    let mut rows = Vec::new();
    for (i, replicas) in FAN_REPLICAS.into_iter().enumerate() {
        match i {
            0 => create(replicas)?,
            1 => {
                cx.lab.docker(&cx.manager, &["service", "rm", FAN])?;
                create(replicas)?;
            }
            _ => {
                let scale = format!("{FAN}={replicas}");
                cx.lab
                    .docker(&cx.manager, &["service", "scale", "--detach", &scale])?;
            }
        }
        let tasks = fixture::wait_running(cx.lab, FAN, replicas)?;
        let nodes: BTreeSet<&str> = tasks.iter().map(|t| t.node.as_str()).collect();
        // The engines' floor: the same execs with no swarm in the way (no
        // helper service to schedule, no container to start): the helper
        // binary itself on this host, one process per node against that
        // node's engine, all at once, as the helper tasks run them.
        let floor = || -> Result<f64> {
            let cmds = nodes.iter().map(|node| {
                let socket = cx.lab.node(node).socket.display().to_string();
                let mut cmd = Command::new(&cx.helper);
                cmd.args(["exec", "--socket", &socket]);
                for t in tasks.iter().filter(|t| t.node == *node) {
                    cmd.args(["--container", &t.container]);
                }
                cmd.args(["--", "true"]);
                cmd
            });
            timed_together(cmds.collect())
        };
        // Helper services each `--all` run created, read from the manager's
        // events for the run's window (warm-up included; dropped below).
        let helpers = RefCell::new(Vec::new());
        let label = format!("4 fan-out {replicas} replicas on {} nodes", nodes.len());
        let mut p = [
            Probe::new(
                format!("swarm-exec --all {FAN} true ({replicas} tasks)"),
                || {
                    let since = unix_now();
                    let ms = timed(&mut cx.sx(&["--all", FAN, "true"]), None)?;
                    let until = unix_now() + 0.2;
                    let made = cx.created(&cx.manager, "service", since, until)?;
                    helpers
                        .borrow_mut()
                        .push(made.iter().filter(|n| n.starts_with("swarm-exec-")).count());
                    Ok(ms)
                },
            ),
            Probe::new(format!("swarm-exec {remote} true (one remote)"), || {
                timed(&mut cx.sx(&[&remote, "true"]), None)
            }),
            Probe::new(
                format!("engines' floor: the same {replicas} execs, one helper process per node on this host, no swarm"),
                floor,
            ),
        ];
        measure(&label, runs, &mut p);
        let counts: Vec<usize> = helpers.borrow().iter().skip(1).copied().collect();
        let max = counts.iter().copied().max();
        let per_run = median(&counts.iter().map(|&c| c as f64).collect::<Vec<_>>());
        let verdict = match max {
            Some(max) if max > nodes.len() => " — MORE than nodes with tasks",
            _ => "",
        };
        let ratio_text = format!(
            "{} one remote, {} the engines' floor; helpers/run {} (max {}, nodes with tasks {}){verdict}",
            ratio(p[0].median(), p[1].median()),
            ratio(p[0].median(), p[2].median()),
            per_run.map_or("n/a".into(), |h| format!("{h}")),
            max.map_or("n/a".into(), |h| h.to_string()),
            nodes.len(),
        );
        rows.push(row_of(
            &label,
            &p[0],
            ratio_text,
            serde_json::json!({
                "replicas": replicas,
                "nodes_with_tasks": nodes.len(),
                "helpers_per_run": counts,
            }),
        ));
        rows.push(row_of(
            &label,
            &p[1],
            "1.00× (baseline)".into(),
            serde_json::Value::Null,
        ));
        rows.push(row_of(
            &label,
            &p[2],
            format!("{} one remote", ratio(p[2].median(), p[1].median())),
            serde_json::Value::Null,
        ));
    }
    Ok(rows)
}

/// Time until an interactive shell's prompt shows, in a real terminal:
/// a detached tmux session of a fixed size runs `shell`, and its pane is
/// read every 20 ms until a line ends in `#` (busybox root prompt `/ # `;
/// capture-pane trims the trailing space). Then the shell is told to exit.
fn prompt_ms(shell: &str, n: &mut usize) -> Result<f64> {
    *n += 1;
    let session = format!("sxbench-{}-{n}", std::process::id());
    // A private tmux server, so that nothing of the user's own is touched.
    let tmux = |args: &[&str]| {
        let mut c = Command::new("tmux");
        c.args(["-L", "swarm-exec-bench"]).args(args);
        c
    };
    let t = Instant::now();
    lab::output(&mut tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "30",
        shell,
    ]))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        let pane = lab::output(&mut tmux(&["capture-pane", "-p", "-t", &session]));
        match pane {
            Ok(pane) if pane.lines().any(|l| l.trim_end().ends_with('#')) => {
                break Ok(t.elapsed().as_secs_f64() * 1e3)
            }
            // The session ended before any prompt: the command failed.
            Err(e) => break Err(e.context("the session ended without a prompt")),
            Ok(pane) if Instant::now() > deadline => {
                break Err(anyhow::anyhow!("no prompt after 30 s: {}", pane.trim()))
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let _ = lab::output(&mut tmux(&["send-keys", "-t", &session, "exit", "Enter"]));
    // Let the exec end on its own (so its cleanup runs) before the next one.
    let gone = Instant::now() + Duration::from_secs(10);
    while tmux(&["has-session", "-t", &session])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        if Instant::now() > gone {
            let _ = lab::output(&mut tmux(&["kill-session", "-t", &session]));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    result
}

fn interactive(cx: &Ctx, runs: usize) -> Vec<Row> {
    let target = cx.target(&cx.remote);
    let node = cx.lab.node(&cx.remote.node);
    let sx = format!(
        "env DOCKER_HOST='{}' '{}' -it {target} sh",
        cx.lab.docker_host(),
        cx.bin.display()
    );
    let sx_relay = sx.replace(" -it ", " --relay-link host -it ");
    let docker = format!(
        "'{}' -H '{}' exec -it {} sh",
        lab::docker_cli(),
        node.docker_host(),
        cx.remote.container
    );
    let (mut a, mut b, mut c) = (0, 0, 0);
    let mut p = [
        Probe::new(format!("swarm-exec -it {target} sh → prompt"), || {
            prompt_ms(&sx, &mut a)
        }),
        Probe::new(
            format!("swarm-exec --relay-link host -it {target} sh → prompt (relay container)"),
            || prompt_ms(&sx_relay, &mut c),
        ),
        Probe::new(
            format!("docker -H {} exec -it CONTAINER sh → prompt", node.name),
            || prompt_ms(&docker, &mut b),
        ),
    ];
    measure("5 interactive ready", runs, &mut p);
    let base = p[2].median();
    p.iter()
        .map(|probe| {
            row_of(
                "5 interactive ready",
                probe,
                format!("{} docker exec -it", ratio(probe.median(), base)),
                serde_json::Value::Null,
            )
        })
        .collect()
}

/// The output the peak-RSS rows stream (64 MiB): memory must not grow with it.
const RSS_STREAM_BYTES: u64 = 64 << 20;

/// The CLI's peak RSS for one run, from `/usr/bin/time`.
fn cli_peak_rss(cx: &Ctx, args: &[&str]) -> Result<u64> {
    let rss_file =
        std::env::temp_dir().join(format!("swarm-exec-bench-rss-{}", std::process::id()));
    let mut time = Command::new("/usr/bin/time");
    time.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(&cx.bin)
        .args(args)
        .env("DOCKER_HOST", cx.lab.docker_host())
        .stdout(Stdio::null());
    let status = time.stdin(Stdio::null()).status()?;
    if !status.success() {
        bail!("swarm-exec {}: {status}", args.join(" "));
    }
    let kib = std::fs::read_to_string(&rss_file)?
        .trim()
        .parse()
        .context("reading /usr/bin/time's %M");
    let _ = std::fs::remove_file(&rss_file);
    kib
}

/// The helper's peak RSS (`VmHWM`) during one run against the remote task.
/// The lab's nodes share this machine's kernel and PID namespace, so the
/// helper container's process is in `/proc` here. Sampled while the run
/// lasts: `VmHWM` only grows, so the last sample is the peak (the command
/// sleeps a second after its output so that one falls after it).
fn helper_peak_rss(cx: &Ctx, args: &[&str]) -> Result<u64> {
    let node = &cx.remote.node;
    let mut child = cx
        .sx(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let (mut pid, mut peak) = (None::<u32>, None::<u64>);
    while child.try_wait()?.is_none() {
        if pid.is_none() {
            let ids = cx
                .lab
                .docker(node, &["ps", "-q", "--filter", "label=swarm-exec.session"])?;
            if let Some(id) = ids.lines().next() {
                pid = cx
                    .lab
                    .docker(node, &["inspect", "--format", "{{.State.Pid}}", id])
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .filter(|&p| p > 0);
            }
        }
        if let Some(p) = pid {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak = hwm.or(peak);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    peak.context("the helper's process was never seen")
}

/// One-off figures, not times: they do not vary with the machine's noise.
fn cost(cx: &Ctx) -> Result<Vec<Row>> {
    let target = cx.target(&cx.remote);
    let mut rows = Vec::new();
    let value = |what: String, shown: String, extra: serde_json::Value| Row {
        row: "6 cost".into(),
        what,
        median_ms: None,
        samples_ms: Vec::new(),
        shown,
        ratio: "—".into(),
        extra,
        error: None,
    };

    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let stream = format!("sxtest stream 1 {RSS_STREAM_BYTES}; sleep 1");
    for args in [
        vec![target.as_str(), "true"],
        vec![target.as_str(), "sh", "-c", &stream],
    ] {
        let kib = cli_peak_rss(cx, &args)?;
        rows.push(value(
            format!("CLI peak RSS, swarm-exec {}", args.join(" ")),
            mib(kib),
            serde_json::json!({ "peak_rss_kib": kib }),
        ));
    }
    for transport in ["relay", "helper"] {
        let args = ["--transport", transport, &target, "sh", "-c", &stream];
        let kib = helper_peak_rss(cx, &args)?;
        rows.push(value(
            format!(
                "helper peak RSS on {}, swarm-exec {}",
                cx.remote.node,
                args.join(" ")
            ),
            mib(kib),
            serde_json::json!({ "peak_rss_kib": kib }),
        ));
    }

    // `--version` names the embedded helper and relay with their sizes;
    // shown as printed, so that the bench does not depend on its layout.
    let version = lab::output(&mut cx.sx(&["--version"]))?;
    for line in version
        .lines()
        .filter(|l| l.contains("helper") || l.contains("relay"))
    {
        rows.push(value(
            "binary (from swarm-exec --version)".into(),
            short_version_line(line),
            serde_json::json!({ "version_line": line.trim() }),
        ));
    }

    // Objects one remote exec creates: swarm objects on the manager, and
    // containers on every node (the helper's on the task's node, the
    // relay's on the manager).
    let since = unix_now();
    timed(&mut cx.sx(&[&target, "true"]), None)?;
    let until = unix_now() + 0.2;
    let mut counts = serde_json::Map::new();
    let mut total = 0;
    for kind in ["service", "secret", "config"] {
        let n = cx.created(&cx.manager, kind, since, until)?.len();
        counts.insert(kind.into(), n.into());
        total += n;
    }
    let mut containers = 0;
    for node in cx.lab.swarm_nodes() {
        containers += cx.created(&node.name, "container", since, until)?.len();
    }
    counts.insert("container".into(), containers.into());
    total += containers;
    rows.push(value(
        format!("swarm objects per exec, swarm-exec {target} true (services+secrets+configs+containers)"),
        format!(
            "{total} ({} svc, {} secret, {} config, {containers} ctr)",
            counts["service"], counts["secret"], counts["config"]
        ),
        serde_json::Value::Object(counts),
    ));
    Ok(rows)
}

/// `swarm-exec-helper x86_64 sha256:… (463024 bytes)` as
/// `swarm-exec-helper x86_64: 452 KiB`; other layouts as printed.
fn short_version_line(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let bytes = line
        .rsplit_once('(')
        .and_then(|(_, b)| b.strip_suffix(" bytes)"))
        .and_then(|b| b.parse::<u64>().ok());
    match (words.as_slice(), bytes) {
        ([name, arch, ..], Some(b)) => format!("{name} {arch}: {} KiB", b / 1024),
        _ => line.trim().replace('|', "\\|"),
    }
}
