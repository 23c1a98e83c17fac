//! Services and tasks on the lab swarm, for tests and the demo.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::lab::Lab;

/// A running task as a test sees it.
#[derive(Clone, Debug)]
pub struct Task {
    pub id: String,
    pub service: String,
    /// `None` for a global service.
    pub slot: Option<u64>,
    pub node_id: String,
    /// The node's hostname (`m1`, `w1`, …).
    pub node: String,
    pub container: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTask {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "NodeID", default)]
    node_id: String,
    slot: Option<u64>,
    status: RawStatus,
    desired_state: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawStatus {
    state: String,
    container_status: Option<RawContainer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    #[serde(rename = "ContainerID", default)]
    container_id: String,
}

/// The hostnames of the swarm's nodes, by node ID.
pub fn node_names(lab: &Lab) -> Result<BTreeMap<String, String>> {
    let out = lab.docker(
        &lab.manager().name,
        &["node", "ls", "--format", "{{.ID}} {{.Hostname}}"],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, host)| (id.to_owned(), host.to_owned()))
        .collect())
}

/// The running tasks of a service, in slot (or node) order.
pub fn running_tasks(lab: &Lab, service: &str) -> Result<Vec<Task>> {
    let m = &lab.manager().name;
    let ids = lab.docker(
        m,
        &[
            "service",
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            "desired-state=running",
            service,
        ],
    )?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["inspect", "--type", "task"];
    args.extend(&ids);
    let raw: Vec<RawTask> = serde_json::from_str(&lab.docker(m, &args)?)?;
    let names = node_names(lab)?;
    let mut tasks: Vec<Task> = raw
        .into_iter()
        .filter(|t| t.status.state == "running" && t.desired_state == "running")
        .map(|t| Task {
            node: names.get(&t.node_id).cloned().unwrap_or_default(),
            container: t
                .status
                .container_status
                .map(|c| c.container_id)
                .unwrap_or_default(),
            id: t.id,
            service: service.to_owned(),
            slot: t.slot,
            node_id: t.node_id,
        })
        .collect();
    tasks.sort_by(|a, b| (a.slot, &a.node).cmp(&(b.slot, &b.node)));
    Ok(tasks)
}

/// Waits until a service has `n` running tasks. Swarm has no event for task
/// state on a manager, so this polls (test code only; the product never
/// waits this way).
pub fn wait_running(lab: &Lab, service: &str, n: usize) -> Result<Vec<Task>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = running_tasks(lab, service)?;
        if tasks.len() == n {
            return Ok(tasks);
        }
        if Instant::now() > deadline {
            bail!(
                "{service} has {} running tasks, not {n}, after 60 s",
                tasks.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
