//! The helper path: the task runs on another node. A one-shot swarm service is
//! placed on that node; it runs the target task's own image (already on the
//! node, so nothing is pulled) with the static helper binary mounted from a
//! swarm config and the node's Docker socket bind-mounted. The helper execs
//! into the target container there and writes the output as `proto::line`
//! frames, which come back through the service-logs API.

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::LogOutput;
use tokio::time::Instant;

use bollard::models::{
    ConfigSpec, HealthConfig, Mount, MountType, NetworkAttachmentConfig, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile1, TaskSpecLogDriver, TaskSpecPlacement,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{ListTasksOptions, LogsOptions};
use bytes::Bytes;
use futures_util::StreamExt;
use swarm_exec_proto::line::{Decoded, Kind, LineDecoder, SeqCheck};

use crate::engine::Engine;
use crate::error::{docker_status, Error, Result};
use crate::exec::{ExecSpec, Exit, Outcome};
use crate::session::{Session, SHARED_LABEL};
use crate::sink::{Sink, Stream};
use crate::target::Task;

/// Where the helper binary is mounted in the helper container: a path no
/// real image uses.
pub const HELPER_PATH: &str = "/.swarm-exec-helper";

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/helpers.rs"));
}

/// One embedded static binary: `swarm-exec-helper` (logs transport) or
/// `swarm-exec-relay` (relay transport), for one architecture.
#[derive(Clone, Copy, Debug)]
pub struct HelperBinary {
    pub name: &'static str,
    pub arch: &'static str,
    pub data: &'static [u8],
    pub sha256: &'static str,
}

pub const HELPER: &str = "swarm-exec-helper";
pub const RELAY: &str = "swarm-exec-relay";

/// Every binary this build carries.
pub fn helpers() -> impl Iterator<Item = HelperBinary> {
    embedded::BINARIES
        .iter()
        .map(|&(name, arch, data, sha256)| HelperBinary {
            name,
            arch,
            data,
            sha256,
        })
}

/// The architecture name the binaries use for one swarm reports
/// (`Description.Platform.Architecture`).
fn normalize_arch(arch: &str) -> &str {
    match arch {
        "amd64" | "x86_64" | "" => "x86_64",
        "arm64" | "aarch64" | "arm64/v8" => "aarch64",
        other => other,
    }
}

/// The binary `name` for a node architecture.
pub fn binary_for(name: &str, arch: &str) -> Result<HelperBinary> {
    let arch = normalize_arch(arch);
    helpers()
        .find(|h| h.name == name && h.arch == arch)
        .ok_or_else(|| Error::Unsupported {
            what: format!("a node of architecture {arch}"),
            why: format!(
                "this swarm-exec carries {name} for {} only",
                helpers()
                    .filter(|h| h.name == name)
                    .map(|h| h.arch)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// The logs-transport helper for a node architecture.
pub fn helper_for(arch: &str) -> Result<HelperBinary> {
    binary_for(HELPER, arch)
}

impl HelperBinary {
    /// Content-addressed: every exec reuses it until the binary changes.
    pub fn config_name(&self) -> String {
        format!("{}-{}-{}", self.name, self.arch, &self.sha256[..16])
    }
}

/// Makes sure the helper's config exists and returns its ID.
pub async fn ensure_config(engine: &Engine, helper: &HelperBinary) -> Result<String> {
    let docker = &engine.docker;
    let name = helper.config_name();
    if let Ok(config) = docker.inspect_config(&name).await {
        return Ok(config.id.unwrap_or_default());
    }
    let spec = ConfigSpec {
        name: Some(name.clone()),
        labels: Some(HashMap::from([(
            SHARED_LABEL.to_owned(),
            "helper".to_owned(),
        )])),
        data: Some(base64_std(helper.data)),
        ..Default::default()
    };
    match docker.create_config(spec).await {
        Ok(created) => Ok(created.id),
        // Another session created it in between.
        Err(e) if docker_status(&e) == Some(409) => docker
            .inspect_config(&name)
            .await
            .map(|c| c.id.unwrap_or_default())
            .map_err(|e| Error::docker("reading the helper config", e)),
        Err(e) => Err(Error::docker(
            format!("creating the helper config {name}"),
            e,
        )),
    }
}

fn base64_std(data: &[u8]) -> String {
    swarm_exec_proto::base64::encode(data)
}

/// How to reach the helper's container on the node.
#[derive(Clone, Debug, Default)]
pub struct HelperOptions {
    /// An image that already holds the helper at [`HELPER_PATH`], instead of
    /// the target task's own image with the helper config mounted.
    pub helper_image: Option<String>,
}

/// The helper's command line for one or more containers on its node, run
/// at most `parallel` at a time (all at once when `None`), each sent
/// SIGTERM once it has run `timeout`. The session labels the containers
/// that deliver signals.
pub fn helper_args(
    session: &Session,
    containers: &[&str],
    spec: &ExecSpec,
    parallel: Option<usize>,
    timeout: Option<Duration>,
) -> Vec<String> {
    let mut args = vec!["exec".to_owned(), "--session".into(), session.id.clone()];
    if let Some(limit) = timeout {
        args.push("--timeout-ms".into());
        args.push(limit.as_millis().max(1).to_string());
    }
    if let Some(n) = parallel {
        args.push("--parallel".into());
        args.push(n.to_string());
    }
    for c in containers {
        args.push("--container".into());
        args.push((*c).to_owned());
    }
    for e in &spec.env {
        args.push("--env".into());
        args.push(e.clone());
    }
    if let Some(u) = &spec.user {
        args.push("--user".into());
        args.push(u.clone());
    }
    if let Some(w) = &spec.workdir {
        args.push("--workdir".into());
        args.push(w.clone());
    }
    if spec.privileged {
        args.push("--privileged".into());
    }
    if spec.detach {
        args.push("--detach".into());
    }
    args.push("--".into());
    args.extend(spec.cmd.iter().cloned());
    args
}

/// The one-shot service that runs the helper on `node_id`.
pub fn service_spec(
    session: &Session,
    node_id: &str,
    image: &str,
    config: Option<(&str, &str)>,
    args: Vec<String>,
) -> ServiceSpec {
    let labels = session.labels();
    ServiceSpec {
        name: Some(session.object_name()),
        labels: Some(labels.clone()),
        // One replica that is never restarted, not a replicated job: the
        // containers of a job's finished tasks stay on the node after the
        // job service is removed (swarmkit, engine 20.10), those of a
        // service's tasks do not.
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.to_owned()),
                labels: Some(labels),
                command: Some(vec![HELPER_PATH.to_owned()]),
                args: Some(args),
                // The helper talks to the node's engine: it needs root
                // whatever USER the image sets.
                user: Some("0".into()),
                mounts: Some(vec![Mount {
                    target: Some("/var/run/docker.sock".into()),
                    source: Some("/var/run/docker.sock".into()),
                    typ: Some(MountType::BIND),
                    ..Default::default()
                }]),
                configs: config.map(|(id, name)| {
                    vec![TaskSpecContainerSpecConfigs {
                        file: Some(TaskSpecContainerSpecFile1 {
                            name: Some(HELPER_PATH.to_owned()),
                            uid: Some("0".into()),
                            gid: Some("0".into()),
                            mode: Some(0o755),
                        }),
                        config_id: Some(id.to_owned()),
                        config_name: Some(name.to_owned()),
                        ..Default::default()
                    }]
                }),
                // The target image's health check is not the helper's.
                health_check: Some(HealthConfig {
                    test: Some(vec!["NONE".into()]),
                    ..Default::default()
                }),
                // Time for the helper to end the command it started when
                // its service is removed early (it signals the exec).
                stop_grace_period: Some(5_000_000_000),
                ..Default::default()
            }),
            // The helper exits with the command's code; a restart would run
            // the command twice.
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![format!("node.id=={node_id}")]),
                ..Default::default()
            }),
            // The output comes back through service logs: pin a driver that
            // keeps them, whatever the node's default is.
            log_driver: Some(TaskSpecLogDriver {
                name: Some("json-file".into()),
                options: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates the helper service for `tasks`, which all run on one node, and
/// returns its service ID. The first task's image serves as the helper's
/// image: it is on that node already. With a `timeout`, the helper sends
/// each command SIGTERM once it has run that long.
pub async fn start(
    engine: &Engine,
    session: &Session,
    tasks: &[&Task],
    spec: &ExecSpec,
    parallel: Option<usize>,
    timeout: Option<Duration>,
    opts: &HelperOptions,
) -> Result<String> {
    let first = tasks.first().expect("a helper serves at least one task");
    let containers: Vec<&str> = tasks.iter().map(|t| t.container_id.as_str()).collect();
    let args = helper_args(session, &containers, spec, parallel, timeout);
    let service = match &opts.helper_image {
        Some(img) => service_spec(session, &first.node_id, img, None, args),
        None => {
            let helper = helper_for(&first.arch)?;
            let config_id = ensure_config(engine, &helper).await?;
            let name = helper.config_name();
            service_spec(
                session,
                &first.node_id,
                &first.image,
                Some((&config_id, &name)),
                args,
            )
        }
    };
    create_service(engine, session, with_host_network(service)).await
}

/// Puts a helper that listens on nothing on its node's host network.
///
/// Without a network, swarm attaches a task to the node's default bridge,
/// and the engine builds it a network sandbox (namespace, veth pair,
/// iptables rules) before the container starts: about 110 ms of a 320 ms
/// remote exec on the lab, and CPU every node of an `--all` run spends at
/// once. This helper only talks to the engine's socket, so it needs no
/// network of its own; and as it is root on the node through that socket
/// anyway, sharing the node's network namespace gives it nothing more.
/// (Swarm offers no `none` network; `host` is the other node-local one.)
/// The relay's helper listens, and keeps its published port (see
/// `relay::prepare`).
fn with_host_network(mut service: ServiceSpec) -> ServiceSpec {
    if let Some(template) = service.task_template.as_mut() {
        template.networks = Some(vec![NetworkAttachmentConfig {
            target: Some("host".into()),
            ..Default::default()
        }]);
    }
    service
}

/// Creates a helper service from `spec`, tracked by `session` for cleanup;
/// returns its ID.
pub async fn create_service(
    engine: &Engine,
    session: &Session,
    spec: bollard::models::ServiceSpec,
) -> Result<String> {
    let created = engine
        .docker
        .create_service(spec, None)
        .await
        .map_err(|e| Error::docker("creating the helper task", e))?;
    let id = created.id.unwrap_or_default();
    session.track_service(&id);
    Ok(id)
}

/// Follows the helper's output and returns the command's exit code.
pub async fn run(
    engine: &Engine,
    session: &Session,
    task: &Task,
    spec: &ExecSpec,
    opts: &crate::RunOptions,
    sink: &mut impl Sink,
) -> Result<Exit> {
    let service = start(
        engine,
        session,
        &[task],
        spec,
        None,
        opts.timeout,
        &opts.helper,
    )
    .await?;
    let mut outcomes = follow(engine, &service, &task.node, 1, None, &mut Single(sink)).await?;
    match outcomes.remove(0) {
        Outcome::Exited(exit) => Ok(exit),
        Outcome::Failed(why) => Err(Error::Helper {
            node: task.node.clone(),
            why,
        }),
        // Not asked for (no per-target timeout); the caller times the run.
        Outcome::TimedOut => Err(Error::Timeout { seconds: 0.0 }),
    }
}

/// Receives the output of a helper that serves several targets.
pub trait TargetSink: Send {
    fn write(
        &mut self,
        target: u32,
        stream: Stream,
        data: &[u8],
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;

    /// Called as soon as a target's outcome is known.
    fn finished(&mut self, _target: u32, _outcome: &Outcome) {}
}

/// A [`TargetSink`] for one target: everything goes to one [`Sink`].
pub struct Single<'a, S>(pub &'a mut S);

impl<S: Sink> TargetSink for Single<'_, S> {
    async fn write(&mut self, _target: u32, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        self.0.write(stream, data).await
    }
}

/// How long a helper may take to report its first frame before it counts
/// as not started (its node is down, or cannot run the image).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a helper's frames from the service-logs API until every target
/// has its outcome; `sink` receives each output chunk. A target whose exec
/// runs longer than `timeout` (counted from its `ready` frame) times out.
pub async fn follow(
    engine: &Engine,
    service: &str,
    node: &str,
    targets: usize,
    timeout: Option<Duration>,
    sink: &mut impl TargetSink,
) -> Result<Vec<Outcome>> {
    let logs = follow_logs(engine, service);
    tokio::pin!(logs);
    let started = Instant::now();
    let mut decoder = LineDecoder::new();
    let mut seq = SeqCheck::new();
    let mut results: Vec<Option<Outcome>> = vec![None; targets];
    let mut ready_at: Vec<Option<Instant>> = vec![None; targets];
    let mut pending = targets;
    let mut seen_frame = false;
    let mut helper_stderr = Vec::new();
    // Swarm has no event for task state; a slow poll only notices a helper
    // that never started or died, and per-target timeouts. The output
    // itself streams.
    let mut watch = tokio::time::interval(Duration::from_millis(250));
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ended_at: Option<Instant> = None;
    let lost = |why: String| Error::OutputLost {
        node: node.to_owned(),
        why,
    };

    while pending > 0 {
        tokio::select! {
            item = logs.next() => {
                let Some(item) = item else {
                    return Err(lost("the service-logs stream ended before the exit code arrived".into()));
                };
                let item = item.map_err(|e| Error::docker("following the helper's output", e))?;
                let (is_stdout, message): (bool, Bytes) = match item {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => (true, message),
                    LogOutput::StdErr { message } => (false, message),
                    LogOutput::StdIn { .. } => continue,
                };
                if !is_stdout {
                    // The helper's own diagnostics; not the command's output.
                    helper_stderr.extend_from_slice(&message);
                    continue;
                }
                decoder.push(&message);
                while let Some(decoded) = decoder.next() {
                    let frame = match decoded {
                        Ok(Decoded::Frame(f)) => f,
                        Ok(Decoded::Foreign(line)) => {
                            tracing::warn!("helper on {node}: {}", String::from_utf8_lossy(&line));
                            continue;
                        }
                        Err(e) => return Err(lost(e.to_string())),
                    };
                    seen_frame = true;
                    // Lines still arriving: the log broker is catching up.
                    if ended_at.is_some() {
                        ended_at = Some(Instant::now());
                    }
                    seq.check(frame.seq).map_err(|e| lost(e.to_string()))?;
                    let t = frame.target as usize;
                    if t >= targets {
                        return Err(lost(format!("a frame for unknown target {t}")));
                    }
                    if results[t].is_some() {
                        // Timed out already: its late output is dropped.
                        continue;
                    }
                    let outcome = match frame.kind {
                        Kind::Stdout | Kind::Stderr => {
                            let stream = if frame.kind == Kind::Stdout { Stream::Stdout } else { Stream::Stderr };
                            sink.write(frame.target, stream, &frame.payload).await.map_err(Error::Output)?;
                            continue;
                        }
                        Kind::Ready => {
                            ready_at[t] = Some(Instant::now());
                            continue;
                        }
                        // Only `serve` listens; not part of this transport.
                        Kind::Listening => continue,
                        Kind::Exit => match frame.exit_code() {
                            Some(code) => Outcome::Exited(Exit { code }),
                            None => return Err(lost("an exit frame without a code".into())),
                        },
                        Kind::Failure => Outcome::Failed(
                            frame.failure_message().unwrap_or_else(|| "unknown failure".into()),
                        ),
                    };
                    sink.finished(frame.target, &outcome);
                    results[t] = Some(outcome);
                    pending -= 1;
                }
            }
            _ = watch.tick() => {
                if let Some(limit) = timeout {
                    for t in 0..targets {
                        let expired = ready_at[t].is_some_and(|at| at.elapsed() >= limit);
                        if results[t].is_none() && expired {
                            sink.finished(t as u32, &Outcome::TimedOut);
                            results[t] = Some(Outcome::TimedOut);
                            pending -= 1;
                        }
                    }
                }
                if let Some(at) = ended_at {
                    // The helper's task has ended; its last lines may still
                    // be on their way through the log broker (long after,
                    // for a large output), so only silence counts.
                    if at.elapsed() > Duration::from_secs(10) {
                        return Err(lost("the helper ended but its exit code never arrived".into()));
                    }
                    continue;
                }
                if let Some(failure) = helper_task_failure(engine, service).await? {
                    if failure.ended {
                        ended_at = Some(Instant::now());
                    }
                    if let Some(why) = failure.error {
                        let stderr = String::from_utf8_lossy(&helper_stderr).trim().to_owned();
                        let why = if stderr.is_empty() { why } else { format!("{why}: {stderr}") };
                        return Err(Error::Helper { node: node.to_owned(), why });
                    }
                }
                if !seen_frame && started.elapsed() > START_TIMEOUT {
                    return Err(Error::Helper {
                        node: node.to_owned(),
                        why: format!(
                            "it did not start within {} s; is the node up? (docker node ls)",
                            START_TIMEOUT.as_secs()
                        ),
                    });
                }
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every target resolved"))
        .collect())
}

/// Why a helper task could not start, once it is clear that it cannot
/// (rejected, failed before running, unschedulable).
pub async fn start_failure(engine: &Engine, service: &str) -> Result<Option<String>> {
    Ok(helper_task_failure(engine, service)
        .await?
        .and_then(|f| f.error))
}

struct TaskFailure {
    /// The helper task reached a final state.
    ended: bool,
    /// Why it could not run at all, if it could not.
    error: Option<String>,
}

/// The helper task's state when it has ended or cannot start.
async fn helper_task_failure(engine: &Engine, service: &str) -> Result<Option<TaskFailure>> {
    let tasks = engine
        .docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(HashMap::from([(
                "service".to_owned(),
                vec![service.to_owned()],
            )])),
        }))
        .await
        .map_err(|e| Error::docker("watching the helper task", e))?;
    let Some(task) = tasks.first() else {
        return Ok(None);
    };
    let status = task.status.clone().unwrap_or_default();
    let err = status.err.clone().unwrap_or_default();
    Ok(match status.state {
        Some(TaskState::REJECTED) => Some(TaskFailure {
            ended: true,
            error: Some(format!("the node rejected it: {err}")),
        }),
        Some(TaskState::FAILED)
            if status
                .container_status
                .as_ref()
                .and_then(|c| c.exit_code)
                .is_none() =>
        {
            Some(TaskFailure {
                ended: true,
                error: Some(format!("it could not start: {err}")),
            })
        }
        Some(
            TaskState::FAILED | TaskState::COMPLETE | TaskState::SHUTDOWN | TaskState::ORPHANED,
        ) => Some(TaskFailure {
            ended: true,
            error: None,
        }),
        // "no suitable node": the node is down, drained or unknown.
        Some(TaskState::PENDING) if !err.is_empty() => Some(TaskFailure {
            ended: false,
            error: Some(format!("it cannot be scheduled: {err}")),
        }),
        _ => None,
    })
}

/// A helper service's stdout and stderr, followed from the start.
pub fn follow_logs<'a>(
    engine: &'a Engine,
    service: &'a str,
) -> impl futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + 'a {
    engine.docker.service_logs(
        service,
        Some(LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// swarmkit refuses configs of `MaxConfigSize = 500 * 1024` bytes or
    /// more on engines before 23.0: every embedded binary must fit.
    #[test]
    fn every_embedded_binary_fits_the_old_config_limit() {
        let all: Vec<HelperBinary> = helpers().collect();
        assert_eq!(all.len(), 4, "helper and relay for x86_64 and aarch64");
        for h in all {
            assert!(
                h.data.len() < 500 * 1024,
                "{} {} is {} bytes",
                h.name,
                h.arch,
                h.data.len()
            );
            assert!(h.data.starts_with(b"\x7fELF"));
        }
    }

    /// Every embedded binary runs on its architecture (aarch64 under
    /// qemu-user) and answers a missing command as the helper must: a
    /// failure frame on stdout, one line on stderr, exit 125. A linker
    /// option that breaks a binary fails here, before any node sees it.
    #[test]
    fn every_embedded_binary_runs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for h in helpers() {
            let path = dir.path().join(format!("{}-{}", h.name, h.arch));
            std::fs::write(&path, h.data).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            let mut cmd = match h.arch {
                a if a == std::env::consts::ARCH => std::process::Command::new(&path),
                "aarch64" => {
                    let mut c = std::process::Command::new("qemu-aarch64");
                    c.arg(&path);
                    c
                }
                other => panic!("no way to run an {other} binary here"),
            };
            let out = cmd.output().unwrap_or_else(|e| {
                panic!(
                    "running {} {}: {e} (apt-get install qemu-user)",
                    h.name, h.arch
                )
            });
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert_eq!(
                out.status.code(),
                Some(125),
                "{} {}: {stderr}",
                h.name,
                h.arch
            );
            assert!(
                stdout.starts_with("sx1 f 0 0 "),
                "{} {}: {stdout}",
                h.name,
                h.arch
            );
            assert!(
                stderr.contains("missing command"),
                "{} {}: {stderr}",
                h.name,
                h.arch
            );
        }
    }
}
