//! Faults injected while an exec is under way: swarm-exec ends in bounded
//! time with one clear message and a documented status, unaffected
//! sessions keep working, and nothing is left after the automatic
//! collection.

mod support;

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// One task on each swarm node, deployed afresh for every test: the faults
/// move and replace tasks.
fn fixture() -> Service {
    deploy("ft-busybox", "busybox", 3, &[])
}

fn target_on(svc: &Service, node: &str) -> String {
    format!("ft-busybox.{}", svc.on(node).slot.unwrap())
}

/// Starts swarm-exec running `sh -c 'echo started; …'` and waits until the
/// command has started.
fn started(args: &[&str]) -> Child {
    let mut child = swarm_exec_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 8];
    if child.stdout.as_mut().unwrap().read_exact(&mut buf).is_err() {
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        panic!("{args:?} did not start: {err}");
    }
    assert_eq!(&buf, b"started\n");
    child
}

/// Waits (bounded) for the child; returns its status and stderr.
fn ended(mut child: Child, within: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("swarm-exec did not end within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn target_task_killed() {
    let _serial = serial();
    let svc = fixture();
    for node in ["m1", "w1"] {
        let task = svc.on(node).clone();
        let child = started(&[&target_on(&svc, node), "sh", "-c", "echo started; sleep 60"]);
        lab()
            .docker(&task.node, &["kill", &task.container])
            .unwrap();
        let (code, err) = ended(child, Duration::from_secs(30));
        // The engine reports the killed exec's status, or swarm-exec says why not.
        assert!(
            matches!(code, Some(137) | Some(125)),
            "{node}: {code:?} {err}"
        );
        assert!(err.lines().count() <= 1, "{err}");
        // Swarm replaces the task; the fixture follows.
        xtask::fixture::wait_running(lab(), "ft-busybox", 3).unwrap();
    }
    assert_clean();
}

#[test]
fn worker_engine_stopped() {
    let _serial = serial();
    let svc = fixture();
    let lab = lab();
    let child = started(&[&target_on(&svc, "w2"), "sh", "-c", "echo started; sleep 60"]);
    let other = target_on(&svc, "w1");
    lab.stop_engine("w2").unwrap();
    // Whatever happens, w2 comes back for the tests that follow.
    let restart = Restore(|| {
        let _ = support::lab().start_engine("w2");
        let _ = support::lab().wait_nodes_ready();
    });
    let (code, err) = ended(child, Duration::from_secs(60));
    // An unaffected session keeps working meanwhile.
    let r = swarm_exec(&[&other, "echo", "still here"]);
    drop(restart);
    // Either the node's engine reported the command killed with the node
    // (128 + 9) before it went, or swarm-exec says the node is gone.
    assert!(matches!(code, Some(137) | Some(125)), "{code:?} {err}");
    assert!(err.lines().count() <= 1, "{err}");
    assert_eq!(
        (r.code, r.stdout_str()),
        (0, "still here\n".to_owned()),
        "{}",
        r.stderr_str()
    );
    xtask::fixture::wait_running(lab, "ft-busybox", 3).unwrap();
    assert_clean();
}

#[test]
fn worker_partitioned_and_healed() {
    let _serial = serial();
    let svc = fixture();
    let lab = lab();
    let child = started(&[
        &target_on(&svc, "w1"),
        "sh",
        "-c",
        "echo started; sleep 4; echo done",
    ]);
    lab.partition("w1").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    lab.heal("w1").unwrap();
    let mut child = child;
    let mut rest = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    let (code, err) = ended(child, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rest, "done\n");
    assert_clean();
}

#[test]
fn registry_stopped() {
    let _serial = serial();
    let svc = fixture();
    let lab = lab();
    lab.stop_registry().unwrap();
    let r = swarm_exec(&[&target_on(&svc, "w1"), "echo", "no pull needed"]);
    lab.start_registry_again().unwrap();
    assert_eq!(
        (r.code, r.stdout_str()),
        (0, "no pull needed\n".to_owned()),
        "{}",
        r.stderr_str()
    );
    assert_clean();
}

#[test]
fn sigterm_ends_the_session() {
    let _serial = serial();
    let svc = fixture();
    for (node, link) in PATHS {
        let target = target_on(&svc, node);
        let args = sh_over(link, &target, "echo started; sleep 3003");
        let child = started(&args);
        wait_for("the command to run", Duration::from_secs(5), || {
            runs_in(svc.on(node), "sleep 3003")
        });
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let (code, err) = ended(child, Duration::from_secs(20));
        assert_eq!(code, Some(143), "{node} {link}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_ended(svc.on(node), "sleep 3003", Duration::from_secs(2));
        assert_clean();
    }
}

#[test]
fn sigkill_leftovers_are_collected_by_the_next_run() {
    let _serial = serial();
    let svc = fixture();
    for transport in ["relay", "helper"] {
        let mut child = started(&[
            "--transport",
            transport,
            &target_on(&svc, "w1"),
            "sh",
            "-c",
            "echo started; sleep 3",
        ]);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            !leftovers().is_empty() || !session_services().is_empty(),
            "SIGKILL left nothing to collect"
        );
        // Once the killed session's command has ended, any later run collects
        // what it left (immediately here; after two minutes by default).
        std::thread::sleep(Duration::from_secs(5));
        let r = run(swarm_exec_cmd(&[&target_on(&svc, "w2"), "sleep", "2"])
            .env("SWARM_EXEC_STALE_AFTER", "0"));
        assert_eq!(r.code, 0, "{}", r.stderr_str());
        assert_clean();
    }
}

#[test]
fn two_sessions_on_one_task() {
    let _serial = serial();
    let svc = fixture();
    let target = target_on(&svc, "w1");
    let a = swarm_exec_cmd(&[&target, "sh", "-c", "sleep 1; echo a"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let b = swarm_exec_cmd(&[&target, "sh", "-c", "sleep 1; echo b"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!((a.status.code(), &a.stdout[..]), (Some(0), &b"a\n"[..]));
    assert_eq!((b.status.code(), &b.stdout[..]), (Some(0), &b"b\n"[..]));
    assert_clean();
}

#[test]
fn twenty_concurrent_sessions() {
    let _serial = serial();
    let many = deploy("ft-many", "busybox", 20, &[]);
    let children: Vec<(String, Child)> = many
        .tasks
        .iter()
        .map(|t| {
            let target = format!("ft-many.{}", t.slot.unwrap());
            let child = swarm_exec_cmd(&[&target, "hostname"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (t.container[..12].to_owned(), child)
        })
        .collect();
    for (host, child) in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), host);
    }
    drop(many);
    assert_clean();
}

/// The manager's engine restarts mid-session. Dialled directly, a session
/// needs the engine only to start and to clean up, so it carries on; through
/// a relay container, which the restart kills, it ends with one clear line
/// and 125.
#[test]
fn manager_engine_restarted() {
    let _serial = serial();
    let svc = fixture();
    let lab = lab();
    let target = target_on(&svc, "w1");
    let mut child = started(&[&target, "sh", "-c", "echo started; sleep 8; echo done"]);
    let mut rest = child.stdout.take().unwrap();
    lab.restart_engine("m1").unwrap();
    let mut out = String::new();
    rest.read_to_string(&mut out).unwrap();
    let (code, err) = ended(child, Duration::from_secs(60));
    assert_eq!((code, out.as_str()), (Some(0), "done\n"), "{err}");
    lab.wait_nodes_ready().unwrap();

    let child = started(&[
        "--relay-link",
        "host",
        &target,
        "sh",
        "-c",
        "echo started; sleep 60",
    ]);
    lab.restart_engine("m1").unwrap();
    let (code, err) = ended(child, Duration::from_secs(60));
    assert_eq!(code, Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    lab.wait_nodes_ready().unwrap();
    xtask::fixture::wait_running(lab, "ft-busybox", 3).unwrap();
    // A new session works, and its sweep collects what the broken one
    // could not remove while the manager was away, once that has ended.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = run(swarm_exec_cmd(&[&target_on(&svc, "w2"), "sleep", "2"])
            .env("SWARM_EXEC_STALE_AFTER", "0"));
        assert_eq!(r.code, 0, "{}", r.stderr_str());
        if session_services().is_empty() || Instant::now() > deadline {
            break;
        }
    }
    assert_clean();
}
