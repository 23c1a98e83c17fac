//! The lab swarm itself: what every other suite relies on.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn spread_replicas_land_on_three_nodes() {
    let _serial = serial();
    let svc = deploy("lab-spread", "busybox", 3, &[]);
    let mut nodes: Vec<&str> = svc.tasks.iter().map(|t| t.node.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["m1", "w1", "w2"]);
}

#[test]
fn every_node_socket_is_its_own_engine() {
    let _serial = serial();
    let lab = lab();
    for node in &lab.nodes {
        let name = lab
            .docker(&node.name, &["info", "--format", "{{.Name}}"])
            .unwrap();
        assert_eq!(name.trim(), node.name);
        if node.role == xtask::lab::Role::Standalone {
            continue;
        }
        // Inside the node, /var/run/docker.sock is the node's engine too.
        let out = lab
            .docker(
                &node.name,
                &[
                    "run",
                    "--rm",
                    "-v",
                    "/var/run/docker.sock:/var/run/docker.sock",
                    lab.image("busybox"),
                    "sxtest",
                    "engine-name",
                ],
            )
            .unwrap();
        assert_eq!(out.trim(), node.name, "the socket inside {}", node.name);
    }
}

#[test]
fn worker_task_logs_reach_the_manager() {
    let _serial = serial();
    let svc = deploy_cmd(
        "lab-logs",
        "busybox",
        1,
        &["--constraint", "node.hostname==w1"],
        &["sh", "-c", "echo hello from $(hostname); exec sxtest serve"],
    );
    assert_eq!(svc.tasks[0].node, "w1");
    wait_for("the log line", Duration::from_secs(20), || {
        lab()
            .docker("m1", &["service", "logs", "--raw", "lab-logs"])
            .unwrap_or_default()
            == format!("hello from {}\n", &svc.tasks[0].container[..12])
    });
}

fn reachable(addr: &str) -> bool {
    let addr: SocketAddr = format!("{addr}:7946").parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[test]
fn partition_and_heal_a_node() {
    let _serial = serial();
    let lab = lab();
    let w2 = lab.node("w2");
    assert!(reachable(&w2.addr));
    lab.partition("w2").unwrap();
    assert!(!reachable(&w2.addr), "w2 still answers while cut off");
    lab.heal("w2").unwrap();
    assert!(reachable(&w2.addr), "w2 does not answer after healing");
}

#[test]
fn drain_and_activate_a_node() {
    let _serial = serial();
    let lab = lab();
    let availability = || {
        lab.docker(
            "m1",
            &[
                "node",
                "inspect",
                "--format",
                "{{.Spec.Availability}}",
                "w2",
            ],
        )
        .unwrap()
    };
    lab.drain("w2").unwrap();
    assert_eq!(availability().trim(), "drain");
    lab.set_availability("w2", "active").unwrap();
    assert_eq!(availability().trim(), "active");
}

#[test]
fn stop_and_start_an_engine() {
    let _serial = serial();
    let lab = lab();
    lab.stop_engine("w2").unwrap();
    let info = Command::new(xtask::lab::docker_cli())
        .args(["-H", &lab.node("w2").docker_host(), "info"])
        .output()
        .unwrap();
    assert!(!info.status.success(), "w2's engine still answers");
    lab.start_engine("w2").unwrap();
    let name = lab
        .docker("w2", &["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .unwrap();
    assert_eq!(name.trim(), "active", "w2 rejoined the swarm");
    lab.wait_nodes_ready().unwrap();
}

#[test]
fn leftovers_are_counted_per_node() {
    let _serial = serial();
    let lab = lab();
    // A labelled container on w1 shows up, and goes away.
    lab.docker(
        "w1",
        &[
            "run",
            "-d",
            "--name",
            "lab-labelled",
            "--label",
            "swarm-exec.session=test",
            lab.image("busybox"),
        ],
    )
    .unwrap();
    let left = leftovers();
    assert_eq!(
        left.get("w1").map(|l| l.containers.clone()),
        Some(vec!["lab-labelled".to_owned()])
    );
    lab.docker("w1", &["rm", "-f", "lab-labelled"]).unwrap();
    assert!(leftovers().is_empty());
}
