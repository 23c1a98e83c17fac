//! Bad input: each case exits 125 with one clear line on stderr, and
//! creates nothing in the swarm.

mod support;

use std::time::Duration;

use support::*;

/// Runs swarm-exec with `args` (and `host` as DOCKER_HOST when given) and
/// checks the error shape and that no object appeared.
fn refused(host: Option<&str>, args: &[&str], needle: &str) {
    let configs_before = shared_configs();
    let mut cmd = swarm_exec_cmd(args);
    if let Some(h) = host {
        cmd.env("DOCKER_HOST", h);
    }
    let r = run(&mut cmd);
    r.assert_error(needle);
    assert!(session_services().is_empty(), "{args:?} created a service");
    assert_eq!(
        shared_configs(),
        configs_before,
        "{args:?} created a config"
    );
    assert!(leftovers().is_empty(), "{args:?} left objects");
}

fn shared_configs() -> String {
    lab()
        .docker(
            "m1",
            &["config", "ls", "-q", "--filter", "label=swarm-exec.shared"],
        )
        .unwrap()
}

#[test]
fn arguments() {
    let _serial = serial();
    refused(None, &["", "true"], "TARGET: it is empty");
    refused(None, &["-e", "NOEQUALS", "web", "true"], "has no '='");
    refused(
        None,
        &["--env-file", "/nonexistent/env", "web", "true"],
        "--env-file",
    );
    refused(
        None,
        &["--transport", "pigeon", "web", "true"],
        "unknown transport",
    );
    refused(None, &["--timeout", "0", "web", "true"], "more than 0");
    refused(None, &["--timeout", "-1", "web", "true"], "more than 0");
    refused(None, &["web"], "COMMAND is missing");
    refused(None, &[], "TARGET and COMMAND are missing");
    refused(None, &["--no-such-flag", "web", "true"], "--no-such-flag");
}

#[test]
fn targets() {
    let _serial = serial();
    let svc = deploy("bad-svc", "busybox", 3, &[]);
    refused(
        None,
        &["nothing-like-this", "true"],
        "no service or task matches",
    );
    refused(None, &["bad-svc.0", "true"], "slots are numbered from 1");
    refused(None, &["bad-svc.999", "true"], "no slot 999");
    refused(None, &["bad-svc", "true"], "ambiguous");

    // A task-ID prefix shared by two tasks. IDs are random base-36, so with
    // more than 36 tasks in the swarm some first character must repeat.
    let ids = lab()
        .docker("m1", &["service", "ps", "-q", "--no-trunc", "bad-svc"])
        .unwrap();
    let mut ids: Vec<String> = ids.lines().map(str::to_owned).collect();
    if first_char_shared(&ids).is_none() {
        lab()
            .docker("m1", &["service", "scale", "-d", "bad-svc=37"])
            .unwrap();
        wait_for("37 tasks", Duration::from_secs(60), || {
            let out = lab()
                .docker("m1", &["service", "ps", "-q", "--no-trunc", "bad-svc"])
                .unwrap();
            ids = out.lines().map(str::to_owned).collect();
            ids.len() >= 37
        });
    }
    let prefix = first_char_shared(&ids).expect("pigeonhole");
    refused(None, &[&prefix, "true"], "ambiguous");
    drop(svc);
}

fn first_char_shared(ids: &[String]) -> Option<String> {
    let firsts: Vec<char> = ids.iter().filter_map(|i| i.chars().next()).collect();
    firsts
        .iter()
        .find(|c| firsts.iter().filter(|d| d == c).count() > 1)
        .map(|c| c.to_string())
    // A single letter could also be a service name; none here is.
}

#[test]
fn task_states() {
    let _serial = serial();
    let lab = lab();
    let _ = lab.docker("m1", &["service", "rm", "bad-pending"]);
    lab.docker(
        "m1",
        &[
            "service",
            "create",
            "-d",
            "-q",
            "--name",
            "bad-pending",
            "--constraint",
            "node.labels.nowhere==1",
            lab.image("busybox"),
        ],
    )
    .unwrap();
    wait_for("a pending task", Duration::from_secs(20), || {
        !lab.docker("m1", &["service", "ps", "-q", "bad-pending"])
            .unwrap()
            .trim()
            .is_empty()
    });
    refused(None, &["bad-pending", "true"], "no running task");
    lab.docker("m1", &["service", "rm", "bad-pending"]).unwrap();

    // A task that ignores SIGTERM keeps running for its grace period after
    // its service is scaled to zero: running, but shutting down.
    let svc = deploy_cmd(
        "bad-stopping",
        "busybox",
        1,
        &["--stop-grace-period", "60s"],
        &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    );
    let id = svc.tasks[0].id.clone();
    lab.docker("m1", &["service", "scale", "-d", "bad-stopping=0"])
        .unwrap();
    // Scaling down sets the desired state to `remove` (older engines: `shutdown`).
    wait_for(
        "the task to be told to stop",
        Duration::from_secs(20),
        || {
            lab.docker(
                "m1",
                &[
                    "inspect",
                    "--type",
                    "task",
                    "--format",
                    "{{.DesiredState}}",
                    &id,
                ],
            )
            .unwrap()
            .trim()
                != "running"
        },
    );
    refused(None, &[&id, "true"], "shutting down");
}

#[test]
fn engines() {
    let _serial = serial();
    let lab = lab();
    let worker = lab.node("w1").docker_host();
    refused(Some(&worker), &["anything", "true"], "it is a worker");
    let standalone = lab.standalone().docker_host();
    refused(
        Some(&standalone),
        &["anything", "true"],
        "not part of a swarm",
    );
    refused(
        Some("unix:///nonexistent/docker.sock"),
        &["anything", "true"],
        "cannot reach",
    );
    refused(
        Some("tcp://127.0.0.1:1"),
        &["anything", "true"],
        "cannot reach",
    );
    refused(
        Some("carrier://pigeon"),
        &["anything", "true"],
        "not a Docker endpoint",
    );
    refused(
        Some("tcp://"),
        &["anything", "true"],
        "not a Docker endpoint",
    );
}
