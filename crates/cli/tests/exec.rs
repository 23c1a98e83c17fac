//! The core contract against the lab: for a task on the engine's own node
//! (local path) and for a task on a worker (helper path), swarm-exec gives
//! the same stdout bytes, stderr bytes and exit code as `docker exec` run on
//! that node's own engine, and leaves nothing behind.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use support::*;

struct Fixtures {
    busybox: Service,
    nonroot: Service,
    noshell: Service,
}

/// One task of each lab image on every swarm node (m1, w1, w2).
fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| Fixtures {
        busybox: deploy("t-busybox", "busybox", 3, &[]),
        nonroot: deploy("t-nonroot", "nonroot", 3, &[]),
        noshell: deploy("t-noshell", "noshell", 3, &[]),
    })
}

/// `SERVICE.SLOT` of the task on `node`.
fn target(svc: &Service, node: &str) -> String {
    let t = svc.on(node);
    format!("{}.{}", svc.name, t.slot.expect("replicated"))
}

/// Runs the same command through swarm-exec and through `docker exec` on
/// the node, and asserts the two are byte-for-byte the same.
fn same_as_docker(svc: &Service, node: &str, opts: &[&str], cmd: &[&str]) -> Run {
    let target = target(svc, node);
    let mut args: Vec<&str> = opts.to_vec();
    args.push(&target);
    args.extend(cmd);
    let ours = swarm_exec(&args);
    let theirs = docker_exec(svc.on(node), opts, cmd);
    assert_eq!(
        ours.code,
        theirs.code,
        "exit code of {cmd:?} on {node}; stderr: {}",
        ours.stderr_str()
    );
    assert!(
        ours.stdout == theirs.stdout,
        "stdout of {cmd:?} on {node} differs: {:?} vs {:?}",
        String::from_utf8_lossy(&ours.stdout[..ours.stdout.len().min(200)]),
        String::from_utf8_lossy(&theirs.stdout[..theirs.stdout.len().min(200)])
    );
    assert!(
        ours.stderr == theirs.stderr,
        "stderr of {cmd:?} on {node} differs: {:?} vs {:?}",
        ours.stderr_str(),
        theirs.stderr_str()
    );
    ours
}

/// Generates a `local` (task on the manager) and a `worker` (task on w1)
/// test from one check.
macro_rules! on_both_paths {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[test]
            fn local() {
                let _serial = super::serial();
                super::$check("m1");
                super::assert_clean();
            }

            #[test]
            fn worker() {
                let _serial = super::serial();
                super::$check("w1");
                super::assert_clean();
            }
        }
    )*};
}

on_both_paths!(
    exit_codes,
    missing_and_unexecutable_commands,
    killed_by_signal,
    interleaved_streams,
    no_trailing_newline,
    binary_output,
    env_user_workdir,
    non_root_image,
    shell_less_image,
    target_forms,
    timeout,
);

fn exit_codes(node: &str) {
    let f = fixtures();
    for code in ["0", "1", "42"] {
        let r = same_as_docker(&f.busybox, node, &[], &["sxtest", "exit", code]);
        assert_eq!(r.code.to_string(), code);
    }
}

fn missing_and_unexecutable_commands(node: &str) {
    let f = fixtures();
    // The engine decides these codes (20.10: 126 for a missing binary).
    let r = same_as_docker(&f.busybox, node, &[], &["no-such-command"]);
    assert!(r.code == 126 || r.code == 127, "{}", r.code);
    let r = same_as_docker(&f.busybox, node, &[], &["/etc/passwd"]);
    assert_eq!(r.code, 126);
    let r = same_as_docker(&f.busybox, node, &[], &["sh", "-c", "no-such-command"]);
    assert_eq!(r.code, 127);
}

fn killed_by_signal(node: &str) {
    let r = same_as_docker(
        &fixtures().busybox,
        node,
        &[],
        &["sxtest", "kill-self", "9"],
    );
    assert_eq!(r.code, 137);
}

fn interleaved_streams(node: &str) {
    let r = same_as_docker(
        &fixtures().busybox,
        node,
        &[],
        &["sxtest", "interleave", "200"],
    );
    assert_eq!(r.stdout.iter().filter(|&&b| b == b'\n').count(), 200);
    assert!(r.stderr_str().starts_with("err 0\nerr 1\n"));
}

fn no_trailing_newline(node: &str) {
    let r = same_as_docker(
        &fixtures().busybox,
        node,
        &[],
        &["sxtest", "out", "no newline"],
    );
    assert_eq!(r.stdout, b"no newline");
    let r = same_as_docker(
        &fixtures().busybox,
        node,
        &[],
        &["sxtest", "err", "to stderr"],
    );
    assert_eq!(r.stderr, b"to stderr");
    assert!(r.stdout.is_empty());
}

fn binary_output(node: &str) {
    let f = fixtures();
    let size = (10 * 1024 * 1024).to_string();
    let target = target(&f.busybox, node);
    let ours = swarm_exec(&[&target, "sxtest", "stream", "1234", &size]);
    let theirs = docker_exec(
        f.busybox.on(node),
        &[],
        &["sxtest", "stream", "1234", &size],
    );
    assert_eq!(ours.code, 0, "{}", ours.stderr_str());
    assert_eq!(ours.stdout.len(), 10 * 1024 * 1024);
    assert_eq!(sha256(&ours.stdout), sha256(&theirs.stdout));
    assert!(ours.stderr.is_empty(), "{}", ours.stderr_str());
}

fn env_user_workdir(node: &str) {
    let r = same_as_docker(
        &fixtures().busybox,
        node,
        &[
            "-e",
            "GREETING=hello world",
            "-e",
            "EMPTY=",
            "-u",
            "65534",
            "-w",
            "/tmp",
        ],
        &[
            "sh",
            "-c",
            "echo \"$GREETING\"; echo \"[$EMPTY]\"; id -u; id -g; pwd",
        ],
    );
    assert_eq!(r.stdout_str(), "hello world\n[]\n65534\n65534\n/tmp\n");
}

fn non_root_image(node: &str) {
    let r = same_as_docker(
        &fixtures().nonroot,
        node,
        &[],
        &["sh", "-c", "id -u; pwd; echo $APP_MODE"],
    );
    assert_eq!(r.stdout_str(), "1000\n/home/app\nlab\n");
    let r = same_as_docker(&fixtures().nonroot, node, &["-u", "0"], &["sxtest", "id"]);
    assert_eq!(r.stdout_str(), "0:0\n");
}

fn shell_less_image(node: &str) {
    let r = same_as_docker(
        &fixtures().noshell,
        node,
        &[],
        &["/sxtest", "echo", "no", "shell", "here"],
    );
    assert_eq!(r.stdout_str(), "no shell here\n");
    let r = same_as_docker(&fixtures().noshell, node, &[], &["/sxtest", "exit", "3"]);
    assert_eq!(r.code, 3);
    let r = same_as_docker(&fixtures().noshell, node, &[], &["sh"]);
    assert_eq!(r.code, 126);
}

fn target_forms(node: &str) {
    let f = fixtures();
    let task = f.busybox.on(node);
    for target in [
        task.id.clone(),
        task.id[..8].to_owned(),
        format!("{}.{}", f.busybox.name, task.slot.unwrap()),
    ] {
        let r = swarm_exec(&[&target, "sxtest", "echo", "hit"]);
        assert_eq!(
            (r.code, r.stdout_str()),
            (0, "hit\n".into()),
            "{target}: {}",
            r.stderr_str()
        );
    }
    // SERVICE with several running tasks is ambiguous, and lists them.
    let r = swarm_exec(&[&f.busybox.name, "true"]);
    r.assert_error("ambiguous");
    assert!(
        r.stderr_str().contains(&format!("{}.1@", f.busybox.name)),
        "{}",
        r.stderr_str()
    );
    // --any picks one, preferring the engine's own node.
    let r = swarm_exec(&["--any", &f.busybox.name, "hostname"]);
    assert_eq!(r.code, 0);
    let local = f.busybox.on("m1");
    assert_eq!(r.stdout_str().trim(), &local.container[..12]);
}

fn timeout(node: &str) {
    let task = fixtures().busybox.on(node);
    let target = target(&fixtures().busybox, node);
    // Every path to the task: the default, and on another node a relay
    // container and the helper transport (whose helper ends the command).
    let mut ways: Vec<&[&str]> = vec![&[]];
    if node != "m1" {
        ways.extend([&["--relay-link", "host"][..], &["--transport", "helper"]]);
    }
    for way in ways {
        let mut args = way.to_vec();
        args.extend(["--timeout", "1.5", &target, "sleep", "3001"]);
        let r = swarm_exec(&args);
        assert_eq!(r.code, 124, "{way:?}: {}", r.stderr_str());
        assert!(r.elapsed.as_secs_f64() < 10.0, "{way:?}: {:?}", r.elapsed);
        assert_eq!(r.stderr_str().lines().count(), 1, "{}", r.stderr_str());
        // The command itself was ended, not only waited for.
        assert_ended(task, "sleep 3001", Duration::from_secs(2));
    }
}

#[test]
fn single_task_service_by_name() {
    let _serial = serial();
    let svc = deploy(
        "t-single",
        "busybox",
        1,
        &["--constraint", "node.hostname==w2"],
    );
    let r = swarm_exec(&["t-single", "hostname"]);
    assert_eq!(r.code, 0, "{}", r.stderr_str());
    assert_eq!(r.stdout_str().trim(), &svc.tasks[0].container[..12]);
    drop(svc);
    assert_clean();
}

#[test]
fn global_service_by_node() {
    let _serial = serial();
    let svc = deploy("t-global", "busybox", 3, &["global"]);
    for task in &svc.tasks {
        for suffix in [
            task.node.clone(),
            task.node_id.clone(),
            task.node_id[..6].to_owned(),
        ] {
            let target = format!("t-global.{suffix}");
            let r = swarm_exec(&[&target, "hostname"]);
            assert_eq!(r.code, 0, "{target}: {}", r.stderr_str());
            assert_eq!(r.stdout_str().trim(), &task.container[..12], "{target}");
        }
    }
    drop(svc);
    assert_clean();
}

#[test]
fn task_not_running() {
    let _serial = serial();
    // A constraint no node meets: the task stays pending.
    let lab = lab();
    let m = &lab.manager().name;
    let _ = lab.docker(m, &["service", "rm", "t-pending"]);
    lab.docker(
        m,
        &[
            "service",
            "create",
            "-d",
            "-q",
            "--name",
            "t-pending",
            "--constraint",
            "node.labels.nowhere==1",
            lab.image("busybox"),
        ],
    )
    .unwrap();
    wait_for(
        "the pending task",
        std::time::Duration::from_secs(20),
        || {
            lab.docker(m, &["service", "ps", "-q", "t-pending"])
                .map(|o| !o.trim().is_empty())
                .unwrap_or(false)
        },
    );
    let r = swarm_exec(&["t-pending.1", "true"]);
    r.assert_error("not running");
    assert!(r.stderr_str().contains("pending"), "{}", r.stderr_str());
    let r = swarm_exec(&["t-pending", "true"]);
    r.assert_error("no running task");
    let _ = lab.docker(m, &["service", "rm", "t-pending"]);
    assert_clean();
}

#[test]
fn unknown_target() {
    let _serial = serial();
    swarm_exec(&["no-such-service", "true"]).assert_error("no service or task matches");
    swarm_exec(&["t-busybox.0", "true"]).assert_error("slots are numbered from 1");
    fixtures();
    swarm_exec(&["t-busybox.999", "true"]).assert_error("no slot 999");
    assert_clean();
}

#[test]
fn interrupted_mid_exec() {
    let _serial = serial();
    for (node, link) in PATHS {
        let target = target(&fixtures().busybox, node);
        let args = sh_over(link, &target, "echo started; sleep 3002");
        let mut child = swarm_exec_cmd(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the command's first output: the exec is under way.
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 8];
        use std::io::Read;
        out.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"started\n");
        let task = fixtures().busybox.on(node);
        wait_for("the command to run", Duration::from_secs(5), || {
            runs_in(task, "sleep 3002")
        });
        // SAFETY: sending SIGINT to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let started = std::time::Instant::now();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "on {node} ({link})");
        assert!(started.elapsed().as_secs() < 15, "{:?}", started.elapsed());
        assert_ended(task, "sleep 3002", Duration::from_secs(2));
        assert_clean();
    }
}

#[test]
fn cleanup_command_removes_everything() {
    let _serial = serial();
    fixtures();
    // Leave a shared config behind (any remote exec creates it), then remove all.
    let r = swarm_exec(&["t-busybox.2", "true"]);
    assert_eq!(r.code, 0);
    let r = swarm_exec(&["--cleanup"]);
    assert_eq!(r.code, 0, "{}", r.stderr_str());
    let all = lab().leftovers("swarm-exec.shared").unwrap();
    assert!(all.values().all(|l| l.configs.is_empty()), "{all:#?}");
    assert_clean();
}
