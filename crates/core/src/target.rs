//! TARGET: which task to exec into.
//!
//! A TARGET is, in this order of precedence:
//! 1. `SERVICE`: the service's one running task (`--any` picks one when
//!    there are several, preferring the engine's own node);
//! 2. `SERVICE.SLOT` for replicated services, `SERVICE.NODE` for global
//!    ones (node ID, ID prefix or hostname);
//! 3. a task ID or a unique prefix of one.
//!
//! Only a task whose state *and* desired state are `running` qualifies.

use std::collections::HashMap;

use bollard::models::{Node, Service, Task as SwarmTask, TaskState};
use bollard::query_parameters::{ListNodesOptions, ListServicesOptions, ListTasksOptions};

use crate::engine::Engine;
use crate::error::{Error, Result};

/// A running task, resolved to everything an exec needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub service_id: String,
    pub service: String,
    /// `None` for a global service's task.
    pub slot: Option<u64>,
    pub node_id: String,
    pub node: String,
    /// `x86_64` or `aarch64`, as the node reports it.
    pub arch: String,
    pub container_id: String,
    /// The image reference of the task, digest-pinned when swarm resolved it.
    pub image: String,
    /// Whether the manager sees the task's node as ready (not down).
    pub node_ready: bool,
}

impl Task {
    /// `web.2` or, for a global service, `web.<short node id>`.
    pub fn name(&self) -> String {
        match self.slot {
            Some(slot) => format!("{}.{slot}", self.service),
            None => format!("{}.{}", self.service, short_id(&self.node_id)),
        }
    }

    /// `web.2@w1`, the prefix used in messages and in `--all` output.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name(), self.node)
    }
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The syntactic forms a TARGET can take, before asking the swarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub whole: &'a str,
    /// `(service, suffix)` when TARGET has a dot.
    pub dotted: Option<(&'a str, &'a str)>,
    /// Whether TARGET could be a task ID prefix.
    pub id_like: bool,
}

/// Splits a TARGET into the forms it could take. Pure; never panics.
pub fn parse(target: &str) -> Result<Parsed<'_>> {
    if target.is_empty() {
        return Err(Error::usage("TARGET", "it is empty"));
    }
    if target.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::usage(
            "TARGET",
            format!("{target:?} contains white space or control characters"),
        ));
    }
    let dotted = target
        .rsplit_once('.')
        .filter(|(s, suffix)| !s.is_empty() && !suffix.is_empty());
    let id_like = target
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    Ok(Parsed {
        whole: target,
        dotted,
        id_like,
    })
}

fn filters(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        map.entry((*k).to_owned())
            .or_default()
            .push((*v).to_owned());
    }
    map
}

/// Swarm state needed to resolve a TARGET.
struct Snapshot {
    services: Vec<Service>,
    nodes: Vec<Node>,
}

impl Snapshot {
    fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.spec.as_ref().and_then(|sp| sp.name.as_deref()) == Some(name))
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id.as_deref() == Some(id))
    }

    fn hostname(&self, id: &str) -> String {
        self.node(id)
            .and_then(|n| n.description.as_ref())
            .and_then(|d| d.hostname.clone())
            .unwrap_or_else(|| short_id(id).to_owned())
    }

    fn arch(&self, id: &str) -> String {
        self.node(id)
            .and_then(|n| n.description.as_ref())
            .and_then(|d| d.platform.as_ref())
            .and_then(|p| p.architecture.clone())
            .unwrap_or_default()
    }

    fn service_name(&self, id: &str) -> String {
        self.services
            .iter()
            .find(|s| s.id.as_deref() == Some(id))
            .and_then(|s| s.spec.as_ref()?.name.clone())
            .unwrap_or_else(|| short_id(id).to_owned())
    }
}

fn is_global(service: &Service) -> bool {
    let mode = service.spec.as_ref().and_then(|s| s.mode.as_ref());
    mode.is_some_and(|m| m.global.is_some() || m.global_job.is_some())
}

fn state(t: &SwarmTask) -> Option<TaskState> {
    t.status.as_ref().and_then(|s| s.state)
}

fn qualifies(t: &SwarmTask) -> bool {
    state(t) == Some(TaskState::RUNNING) && t.desired_state == Some(TaskState::RUNNING)
}

/// Why a task does not qualify, in the words of its status.
fn why_not_running(t: &SwarmTask) -> String {
    let st = state(t)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    let desired = t.desired_state.map(|s| s.to_string()).unwrap_or_default();
    let status = t.status.as_ref();
    let detail = status
        .and_then(|s| s.err.clone().filter(|e| !e.is_empty()))
        .or_else(|| status.and_then(|s| s.message.clone()))
        .unwrap_or_default();
    let mut why = if st == "running" && desired != "running" {
        format!("it is shutting down (desired state {desired})")
    } else {
        format!("its state is {st}")
    };
    if !detail.is_empty() {
        why.push_str(&format!(" ({detail})"));
    }
    why
}

/// Newest first: a slot's current task is its most recently updated one.
fn newest_first(tasks: &mut [SwarmTask]) {
    tasks.sort_by(|a, b| {
        let va = a.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        let vb = b.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        vb.cmp(&va)
    });
}

impl Snapshot {
    fn task(&self, t: &SwarmTask) -> Task {
        let node_id = t.node_id.clone().unwrap_or_default();
        let service_id = t.service_id.clone().unwrap_or_default();
        Task {
            id: t.id.clone().unwrap_or_default(),
            service: self.service_name(&service_id),
            slot: t.slot.filter(|&s| s > 0).map(|s| s as u64),
            node: self.hostname(&node_id),
            arch: self.arch(&node_id),
            container_id: t
                .status
                .as_ref()
                .and_then(|s| s.container_status.as_ref())
                .and_then(|c| c.container_id.clone())
                .unwrap_or_default(),
            image: t
                .spec
                .as_ref()
                .and_then(|s| s.container_spec.as_ref())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            node_ready: self.node_ready(&node_id),
            service_id,
            node_id,
        }
    }

    fn node_ready(&self, id: &str) -> bool {
        self.node(id)
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.state)
            .is_none_or(|s| s == bollard::models::NodeState::READY)
    }

    /// The node IDs a `--node` value names: an ID, an ID prefix or a hostname.
    fn nodes_named(&self, name: &str) -> Vec<String> {
        let exact: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| {
                n.id.as_deref() == Some(name)
                    || n.description.as_ref().and_then(|d| d.hostname.as_deref()) == Some(name)
            })
            .filter_map(|n| n.id.clone())
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        self.nodes
            .iter()
            .filter_map(|n| n.id.clone())
            .filter(|id| id.starts_with(name))
            .collect()
    }
}

/// Every running task of a service, for `--all`: restricted to `nodes`
/// (IDs, ID prefixes or hostnames) when given, in slot (or node) order.
pub async fn resolve_all(engine: &Engine, service: &str, nodes: &[String]) -> Result<Vec<Task>> {
    if service.is_empty() {
        return Err(Error::usage("SERVICE", "it is empty"));
    }
    let docker = &engine.docker;
    let (services, node_list) = tokio::join!(
        docker.list_services(None::<ListServicesOptions>),
        docker.list_nodes(None::<ListNodesOptions>),
    );
    let snap = Snapshot {
        services: services.map_err(|e| Error::docker("listing services", e))?,
        nodes: node_list.map_err(|e| Error::docker("listing nodes", e))?,
    };
    let Some(svc) = snap.service(service) else {
        return Err(Error::NoSuchTarget {
            target: service.to_owned(),
        });
    };
    let mut wanted = Vec::new();
    for n in nodes {
        let ids = snap.nodes_named(n);
        if ids.is_empty() {
            return Err(Error::usage(
                format!("--node {n}"),
                "no node has that ID or hostname",
            ));
        }
        wanted.extend(ids);
    }
    let tasks = service_tasks(engine, svc).await?;
    let mut running: Vec<Task> = tasks
        .iter()
        .filter(|t| qualifies(t))
        .map(|t| snap.task(t))
        .filter(|t| wanted.is_empty() || wanted.contains(&t.node_id))
        .collect();
    running.sort_by(|a, b| (a.slot, &a.node).cmp(&(b.slot, &b.node)));
    if running.is_empty() {
        return Err(Error::NotRunning {
            target: format!("service {service}"),
            why: if wanted.is_empty() {
                "it has no running task".into()
            } else {
                format!("it has no running task on {}", nodes.join(", "))
            },
        });
    }
    Ok(running)
}

/// Resolves one TARGET to one running task.
pub async fn resolve(engine: &Engine, target: &str, any: bool) -> Result<Task> {
    let parsed = parse(target)?;
    let docker = &engine.docker;
    let list_err = |e| Error::docker("listing services", e);
    let (services, nodes, by_id) = tokio::join!(
        docker.list_services(None::<ListServicesOptions>),
        docker.list_nodes(None::<ListNodesOptions>),
        async {
            if parsed.id_like {
                let opts = ListTasksOptions {
                    filters: Some(filters(&[("id", target)])),
                };
                docker.list_tasks(Some(opts)).await.map(Some)
            } else {
                Ok(None)
            }
        }
    );
    let snap = Snapshot {
        services: services.map_err(list_err)?,
        nodes: nodes.map_err(|e| Error::docker("listing nodes", e))?,
    };

    if let Some(service) = snap.service(target) {
        let tasks = service_tasks(engine, service).await?;
        return pick_service_task(&snap, engine, target, tasks, any);
    }
    if let Some((name, suffix)) = parsed.dotted {
        if let Some(service) = snap.service(name) {
            let tasks = service_tasks(engine, service).await?;
            return pick_suffix(&snap, service, target, suffix, tasks);
        }
    }
    let mut by_id = by_id
        .map_err(|e| Error::docker("listing tasks", e))?
        .unwrap_or_default();
    if let Some(exact) = by_id.iter().position(|t| t.id.as_deref() == Some(target)) {
        by_id = vec![by_id.swap_remove(exact)];
    }
    match by_id.len() {
        0 => Err(Error::NoSuchTarget {
            target: target.to_owned(),
        }),
        1 => {
            let t = &by_id[0];
            let task = snap.task(t);
            if !qualifies(t) {
                return Err(Error::NotRunning {
                    target: format!("task {} ({})", short_id(&task.id), task.name()),
                    why: why_not_running(t),
                });
            }
            Ok(task)
        }
        n => Err(Error::Ambiguous {
            target: target.to_owned(),
            matches: list_matches(
                n,
                by_id.iter().map(|t| {
                    let task = snap.task(t);
                    format!("{} ({})", task.id, task.name())
                }),
            ),
        }),
    }
}

async fn service_tasks(engine: &Engine, service: &Service) -> Result<Vec<SwarmTask>> {
    let id = service.id.clone().unwrap_or_default();
    let opts = ListTasksOptions {
        filters: Some(filters(&[("service", &id)])),
    };
    let mut tasks = engine
        .docker
        .list_tasks(Some(opts))
        .await
        .map_err(|e| Error::docker("listing tasks", e))?;
    // The filter matches by prefix, and names can share one.
    tasks.retain(|t| t.service_id.as_deref() == Some(id.as_str()));
    newest_first(&mut tasks);
    Ok(tasks)
}

fn list_matches(n: usize, items: impl Iterator<Item = String>) -> String {
    let shown: Vec<String> = items.take(6).collect();
    let more = n.saturating_sub(shown.len());
    let mut s = shown.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

fn pick_service_task(
    snap: &Snapshot,
    engine: &Engine,
    name: &str,
    tasks: Vec<SwarmTask>,
    any: bool,
) -> Result<Task> {
    let mut running: Vec<Task> = tasks
        .iter()
        .filter(|t| qualifies(t))
        .map(|t| snap.task(t))
        .collect();
    running.sort_by(|a, b| (a.slot, &a.node).cmp(&(b.slot, &b.node)));
    match running.len() {
        0 => Err(Error::NotRunning {
            target: format!("service {name}"),
            why: match tasks.first() {
                Some(t) => format!(
                    "it has no running task ({} {})",
                    snap.task(t).name(),
                    why_not_running(t).replacen("it", "", 1).trim_start()
                ),
                None => "it has no task".into(),
            },
        }),
        1 => Ok(running.remove(0)),
        _ if any => {
            let local = running.iter().position(|t| t.node_id == engine.node_id);
            Ok(running.swap_remove(local.unwrap_or(0)))
        }
        n => Err(Error::Ambiguous {
            target: name.to_owned(),
            matches: format!(
                "{n} running tasks: {}",
                list_matches(n, running.iter().map(Task::label))
            ),
        }),
    }
}

fn pick_suffix(
    snap: &Snapshot,
    service: &Service,
    target: &str,
    suffix: &str,
    tasks: Vec<SwarmTask>,
) -> Result<Task> {
    let name = service
        .spec
        .as_ref()
        .and_then(|s| s.name.clone())
        .unwrap_or_default();
    if is_global(service) {
        // Node by exact ID, hostname, or unique ID prefix.
        let matching: Vec<&Node> = snap
            .nodes
            .iter()
            .filter(|n| {
                let id = n.id.as_deref().unwrap_or("");
                let host = n.description.as_ref().and_then(|d| d.hostname.as_deref());
                id == suffix || host == Some(suffix)
            })
            .collect();
        let matching = if matching.is_empty() {
            snap.nodes
                .iter()
                .filter(|n| n.id.as_deref().unwrap_or("").starts_with(suffix))
                .collect()
        } else {
            matching
        };
        let node_id = match matching.as_slice() {
            [] => {
                return Err(Error::NoSuchTarget {
                    target: target.to_owned(),
                })
            }
            [n] => n.id.clone().unwrap_or_default(),
            many => {
                return Err(Error::Ambiguous {
                    target: target.to_owned(),
                    matches: list_matches(
                        many.len(),
                        many.iter().map(|n| n.id.clone().unwrap_or_default()),
                    ),
                })
            }
        };
        let on_node: Vec<&SwarmTask> = tasks
            .iter()
            .filter(|t| t.node_id.as_deref() == Some(node_id.as_str()))
            .collect();
        return current(snap, target, &on_node, || {
            format!(
                "service {name} has no task on node {}",
                snap.hostname(&node_id)
            )
        });
    }
    let slot: i64 = match suffix.parse() {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(Error::usage(
                "TARGET",
                format!(
                    "{target:?}: {name} is a replicated service, and slots are numbered from 1"
                ),
            ))
        }
    };
    let in_slot: Vec<&SwarmTask> = tasks.iter().filter(|t| t.slot == Some(slot)).collect();
    current(snap, target, &in_slot, || {
        let mut slots: Vec<i64> = tasks
            .iter()
            .filter(|t| qualifies(t))
            .filter_map(|t| t.slot)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        let have = match (slots.first(), slots.last()) {
            (Some(a), Some(b)) if a == b => format!("its running slot is {a}"),
            (Some(a), Some(b)) => format!("its running slots are {a}–{b}"),
            _ => "it has no running task".into(),
        };
        format!("service {name} has no slot {slot}: {have}")
    })
}

/// The running task among a slot's (or a node's) tasks, newest first; or
/// the reason why none runs.
fn current(
    snap: &Snapshot,
    target: &str,
    tasks: &[&SwarmTask],
    none: impl FnOnce() -> String,
) -> Result<Task> {
    if let Some(t) = tasks.iter().find(|t| qualifies(t)) {
        return Ok(snap.task(t));
    }
    match tasks.first() {
        Some(t) => Err(Error::NotRunning {
            target: target.to_owned(),
            why: why_not_running(t),
        }),
        None => Err(Error::NotRunning {
            target: target.to_owned(),
            why: none(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any string parses or is refused with a usage error; never a panic,
        /// and the pieces always come from the input.
        #[test]
        fn parse_never_panics(target in "\\PC{0,40}") {
            match parse(&target) {
                Ok(p) => {
                    prop_assert_eq!(p.whole, target.as_str());
                    if let Some((svc, suffix)) = p.dotted {
                        prop_assert_eq!(format!("{svc}.{suffix}"), target.clone());
                    }
                }
                Err(e) => prop_assert_eq!(e.exit_code(), 125),
            }
        }

        #[test]
        fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
        }
    }

    #[test]
    fn parses_forms() {
        let p = parse("web.2").unwrap();
        assert_eq!(p.dotted, Some(("web", "2")));
        assert!(!p.id_like);
        let p = parse("my.app.w1").unwrap();
        assert_eq!(p.dotted, Some(("my.app", "w1")));
        let p = parse("x3k9").unwrap();
        assert!(p.id_like && p.dotted.is_none());
        assert!(parse("").is_err());
        assert!(parse("a b").is_err());
        assert_eq!(parse("web.").unwrap().dotted, None);
        assert_eq!(parse(".2").unwrap().dotted, None);
    }
}
