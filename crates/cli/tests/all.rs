//! `--all`: one command in every running task of a service.

mod support;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use support::*;

/// Nine replicas, three on each swarm node; each task knows its slot.
fn nine() -> &'static Service {
    static S: OnceLock<Service> = OnceLock::new();
    S.get_or_init(|| deploy("all-nine", "busybox", 9, &["--env", "SLOT={{.Task.Slot}}"]))
}

fn expected_lines(svc: &Service) -> Vec<String> {
    let mut lines: Vec<String> = svc
        .tasks
        .iter()
        .map(|t| format!("all-nine.{}@{}", t.slot.unwrap(), t.node))
        .map(|label| label.to_string())
        .collect();
    lines.sort();
    lines
}

/// Splits `label | rest` lines (padding removed).
fn prefixed(out: &str) -> Vec<(String, String)> {
    out.lines()
        .map(|l| {
            let (label, rest) = l
                .split_once(" | ")
                .unwrap_or_else(|| panic!("no prefix: {l:?}"));
            (label.trim_end().to_owned(), rest.to_owned())
        })
        .collect()
}

#[test]
fn one_hostname_line_per_task() {
    let _serial = serial();
    let svc = nine();
    let mut nodes: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &svc.tasks {
        *nodes.entry(&t.node).or_default() += 1;
    }
    assert_eq!(
        nodes.values().copied().collect::<Vec<_>>(),
        [3, 3, 3],
        "{nodes:?}"
    );
    let r = swarm_exec(&["--all", "all-nine", "hostname"]);
    assert_eq!(r.code, 0, "{}", r.stderr_str());
    let lines = prefixed(&r.stdout_str());
    assert_eq!(lines.len(), 9, "{}", r.stdout_str());
    for (label, host) in &lines {
        let task = svc
            .tasks
            .iter()
            .find(|t| format!("all-nine.{}@{}", t.slot.unwrap(), t.node) == *label)
            .unwrap_or_else(|| panic!("unexpected prefix {label}"));
        assert_eq!(host, &task.container[..12], "{label}");
    }
    let mut labels: Vec<String> = lines.into_iter().map(|(l, _)| l).collect();
    labels.sort();
    assert_eq!(labels, expected_lines(svc));
    assert_eq!(r.stderr_str(), "9 tasks: 9 ok\n");
    assert_clean();
}

#[test]
fn lines_stay_whole_and_streams_apart() {
    let _serial = serial();
    nine();
    let r = swarm_exec(&[
        "--all",
        "all-nine",
        "sh",
        "-c",
        "sxtest interleave 50; printf 'last without newline'",
    ]);
    assert_eq!(r.code, 0);
    let out = prefixed(&r.stdout_str());
    assert_eq!(out.len(), 9 * 51);
    assert!(out
        .iter()
        .all(|(_, l)| l.starts_with("out ") || l == "last without newline"));
    let stderr = r.stderr_str();
    let err: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split_once(" | ").map(|(_, rest)| rest))
        .collect();
    assert_eq!(err.len(), 9 * 50);
    assert!(err.iter().all(|l| l.starts_with("err ")), "{err:?}");
    assert_clean();
}

#[test]
fn largest_exit_code_wins() {
    let _serial = serial();
    let svc = nine();
    let r = swarm_exec(&[
        "--all",
        "all-nine",
        "sh",
        "-c",
        "[ \"$SLOT\" = 4 ] && exit 3; exit 0",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr_str());
    let node4 = &svc.tasks.iter().find(|t| t.slot == Some(4)).unwrap().node;
    assert_eq!(
        r.stderr_str(),
        format!("9 tasks: 8 ok, 1 failed (all-nine.4@{node4}: exit 3)\n")
    );
    let r = swarm_exec(&["-q", "--all", "all-nine", "sh", "-c", "exit $((SLOT % 3))"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.is_empty(),
        "-q prints no summary: {}",
        r.stderr_str()
    );
    assert_clean();
}

#[test]
fn json_lines() {
    let _serial = serial();
    let svc = nine();
    let r = swarm_exec(&[
        "--all",
        "--format",
        "json",
        "all-nine",
        "sh",
        "-c",
        "hostname; printf '\\377' >&2; exit $((SLOT % 2))",
    ]);
    assert_eq!(r.code, 1);
    let records: Vec<Value> = r
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    let finals: Vec<&Value> = records
        .iter()
        .filter(|v| v.get("exit_code").is_some() || v.get("error").is_some())
        .collect();
    assert_eq!(finals.len(), 9);
    for task in &svc.tasks {
        let f = finals
            .iter()
            .find(|v| v["task"] == task.id.as_str())
            .expect("a final record per task");
        assert_eq!(f["target"], format!("all-nine.{}", task.slot.unwrap()));
        assert_eq!(f["node"], task.node.as_str());
        assert_eq!(f["exit_code"], task.slot.unwrap() % 2);
        assert!(f["duration_ms"].as_u64().is_some());
        let out: Vec<&Value> = records
            .iter()
            .filter(|v| v["task"] == task.id.as_str() && v.get("stream").is_some())
            .collect();
        let stdout: String = out
            .iter()
            .filter(|v| v["stream"] == "stdout")
            .map(|v| v["data"].as_str().unwrap())
            .collect();
        assert_eq!(stdout, format!("{}\n", &task.container[..12]));
        // Invalid UTF-8 travels as base64.
        let stderr: Vec<&Value> = out
            .iter()
            .filter(|v| v["stream"] == "stderr")
            .copied()
            .collect();
        assert_eq!(stderr.len(), 1);
        assert_eq!(stderr[0]["data_base64"], "/w==");
    }
    assert_clean();
}

#[test]
fn global_service() {
    let _serial = serial();
    let svc = deploy("all-global", "busybox", 3, &["global"]);
    let r = swarm_exec(&["--all", "all-global", "hostname"]);
    assert_eq!(r.code, 0, "{}", r.stderr_str());
    let lines = prefixed(&r.stdout_str());
    assert_eq!(lines.len(), 3);
    for t in &svc.tasks {
        let label = format!("all-global.{}@{}", &t.node_id[..12], t.node);
        assert!(
            lines.contains(&(label.clone(), t.container[..12].to_owned())),
            "{label} in {lines:?}"
        );
    }
    drop(svc);
    assert_clean();
}

#[test]
fn node_filter() {
    let _serial = serial();
    let svc = nine();
    let w1_id = svc.on("w1").node_id.clone();
    for node in ["w1", w1_id.as_str(), &w1_id[..5]] {
        let r = swarm_exec(&["--all", "--node", node, "all-nine", "hostname"]);
        assert_eq!(r.code, 0, "{}", r.stderr_str());
        let lines = prefixed(&r.stdout_str());
        assert_eq!(lines.len(), 3, "--node {node}");
        assert!(lines.iter().all(|(l, _)| l.ends_with("@w1")), "{lines:?}");
    }
    let r = swarm_exec(&["--all", "--node", "w1", "--node", "m1", "all-nine", "true"]);
    assert_eq!(r.stderr_str(), "6 tasks: 6 ok\n");
    swarm_exec(&["--all", "--node", "nowhere", "all-nine", "true"]).assert_error("--node nowhere");
    assert_clean();
}

#[test]
fn parallel_one_runs_tasks_one_at_a_time() {
    let _serial = serial();
    nine();
    let r = swarm_exec(&[
        "--all",
        "--parallel",
        "1",
        "--format",
        "json",
        "all-nine",
        "sh",
        "-c",
        "echo a; sleep 0.2; echo b",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr_str());
    // With one task at a time, each task's records are contiguous.
    let order: Vec<String> = r
        .stdout_str()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["task"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut seen = Vec::new();
    for t in &order {
        if seen.last() != Some(t) {
            assert!(
                !seen.contains(t),
                "task {t} ran interleaved with another: {order:?}"
            );
            seen.push(t.clone());
        }
    }
    assert_eq!(seen.len(), 9);
    assert_clean();
}

#[test]
fn rolling_stops_at_the_first_failure() {
    let _serial = serial();
    nine();
    let r = swarm_exec(&[
        "--all",
        "--rolling",
        "all-nine",
        "sh",
        "-c",
        "echo slot $SLOT; [ \"$SLOT\" != 4 ]",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr_str());
    let slots: Vec<String> = prefixed(&r.stdout_str())
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(slots, ["slot 1", "slot 2", "slot 3", "slot 4"]);
    let summary = r.stderr_str();
    assert!(
        summary.starts_with("9 tasks: 3 ok, 1 failed (all-nine.4@"),
        "{summary}"
    );
    assert!(summary.ends_with(": exit 1), 5 skipped\n"), "{summary}");
    assert_clean();
}

#[test]
fn a_stopped_worker_fails_only_its_tasks() {
    let _serial = serial();
    let lab = lab();
    let svc = deploy("all-down", "busybox", 6, &[]);
    let on_w2 = svc.tasks.iter().filter(|t| t.node == "w2").count();
    assert_eq!(on_w2, 2);
    lab.stop_engine("w2").unwrap();
    let r = swarm_exec(&["--all", "--format", "json", "all-down", "hostname"]);
    lab.start_engine("w2").unwrap();
    lab.wait_nodes_ready().unwrap();
    assert_eq!(r.code, 125, "{}", r.stderr_str());
    let finals: Vec<Value> = r
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("duration_ms").is_some())
        .collect();
    assert_eq!(finals.len(), 6);
    for f in &finals {
        if f["node"] == "w2" {
            assert!(f["error"].as_str().is_some_and(|e| e.contains("w2")), "{f}");
        } else {
            assert_eq!(f["exit_code"], 0, "{f}");
        }
    }
    assert!(r.elapsed < Duration::from_secs(45), "{:?}", r.elapsed);
    drop(svc);
    assert_clean();
}

#[test]
fn timeout_and_interrupt_end_every_command() {
    let _serial = serial();
    let svc = nine();
    // Each task's command reaches the time limit; all of them are ended, on
    // the engine's node and through the helpers alike.
    let r = swarm_exec(&["--all", "--timeout", "1", "all-nine", "sleep", "3004"]);
    assert_eq!(r.code, 124, "{}", r.stderr_str());
    for t in &svc.tasks {
        assert_ended(t, "sleep 3004", Duration::from_secs(2));
    }
    assert_clean();

    // Ctrl-C once every task has started: the commands on the engine's node
    // end before swarm-exec exits; the others when their helper's service
    // goes (the engine stops it about 2 s later: see ARCHITECTURE.md).
    let mut child = swarm_exec_cmd(&["--all", "all-nine", "sh", "-c", "echo started; sleep 3005"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..9 {
        let line = lines.next().expect("a line per task").unwrap();
        assert!(line.ends_with("| started"), "{line}");
    }
    for t in &svc.tasks {
        wait_for("the command to run", Duration::from_secs(5), || {
            runs_in(t, "sleep 3005")
        });
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    drop(lines);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in svc.tasks.iter().filter(|t| t.node == "m1") {
        assert!(!runs_in(t, "sleep 3005"), "still running on m1: {t:?}");
    }
    for t in &svc.tasks {
        assert_ended(t, "sleep 3005", Duration::from_secs(10));
    }
    assert_clean();
}

#[test]
fn stdin_is_copied_to_every_task() {
    let _serial = serial();
    nine();
    let input = b"hello\n".repeat(10_000);
    let mut child = swarm_exec_cmd(&["-i", "--all", "all-nine", "wc", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = prefixed(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines.len(), 9);
    assert!(lines.iter().all(|(_, l)| l.trim() == "60000"), "{lines:?}");
    // -t makes no sense for nine tasks at once.
    swarm_exec(&["-t", "--all", "all-nine", "sh"]).assert_error("-t and -d go with one task");
    assert_clean();
}
