//! `-i` and `-t` on a worker's task, through the relay.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use support::*;

fn svc() -> &'static Service {
    static S: OnceLock<Service> = OnceLock::new();
    S.get_or_init(|| deploy("it-busybox", "busybox", 3, &[]))
}

fn worker_target() -> String {
    let t = svc().on("w1");
    format!("it-busybox.{}", t.slot.unwrap())
}

#[test]
fn piped_stdin_64_mib_round_trips() {
    let _serial = serial();
    let target = worker_target();
    let data: Vec<u8> = (0..64u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut child = swarm_exec_cmd(&["-i", &target, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            stdin.write_all(&data).unwrap();
            // Dropping stdin is the EOF that ends `cat`.
        })
    };
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), data.len());
    assert_eq!(sha256(&out.stdout), sha256(&data));
    assert_clean();
}

#[test]
fn output_keeps_flowing_after_stdin_closes() {
    let _serial = serial();
    let target = worker_target();
    let mut child = swarm_exec_cmd(&[
        "-i",
        &target,
        "sh",
        "-c",
        "cat; sleep 1; echo after; exit 6",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(b"early\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(out.stdout, b"early\nafter\n");
    assert_clean();
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .arg("-L")
        .arg("swarm-exec-test")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen() -> String {
    tmux(&["capture-pane", "-p", "-t", "it"])
}

#[test]
fn interactive_shell_in_tmux() {
    let _serial = serial();
    let target = worker_target();
    let _ = tmux(&["kill-server"]);
    let cmd = format!(
        "DOCKER_HOST={} {} -it {target} sh; echo \"exited $?\"; sleep 30",
        lab().docker_host(),
        bin()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "it",
        "-x",
        "100",
        "-y",
        "30",
        &cmd,
    ]);
    // capture-pane drops the prompt's trailing space.
    wait_for("the remote prompt", Duration::from_secs(20), || {
        screen().lines().any(|l| l.trim_end().ends_with('#'))
    });
    tmux(&["send-keys", "-t", "it", "stty size", "Enter"]);
    wait_for("stty size", Duration::from_secs(10), || {
        screen().contains("30 100")
    });
    tmux(&["resize-window", "-t", "it", "-x", "120", "-y", "40"]);
    tmux(&["send-keys", "-t", "it", "stty size", "Enter"]);
    wait_for("the new size", Duration::from_secs(10), || {
        screen().contains("40 120")
    });
    tmux(&["send-keys", "-t", "it", "echo $((6*7))", "Enter"]);
    wait_for("42", Duration::from_secs(10), || {
        screen().lines().any(|l| l.trim() == "42")
    });
    tmux(&["send-keys", "-t", "it", "exit 7", "Enter"]);
    wait_for("the exit status", Duration::from_secs(15), || {
        screen().contains("exited 7")
    });
    let _ = tmux(&["kill-server"]);
    assert_clean();
}
