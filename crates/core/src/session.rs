//! A session: one run of swarm-exec, and every swarm object it creates.
//!
//! Per-session objects carry `swarm-exec.session=<id>` (and the creation
//! time in `swarm-exec.created`); objects shared across sessions carry
//! `swarm-exec.shared=<kind>`. A session removes its objects when it ends,
//! on success, failure, timeout or signal. After a SIGKILL the next run
//! collects what is stale.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::TaskState;
use bollard::query_parameters::{ListConfigsOptions, ListServicesOptions, ListTasksOptions};

use crate::engine::Engine;
use crate::error::{docker_status, Error, Result};

pub const SESSION_LABEL: &str = "swarm-exec.session";
pub const SHARED_LABEL: &str = "swarm-exec.shared";
pub const CREATED_LABEL: &str = "swarm-exec.created";

/// How old a finished session's leftovers must be before another run
/// collects them: long enough that no live session is ever touched.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// One run of swarm-exec and what it created.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    created: u64,
    services: Mutex<Vec<String>>,
    containers: Mutex<Vec<String>>,
    secrets: Mutex<Vec<String>>,
    names: std::sync::atomic::AtomicUsize,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random session ID: 12 hex digits from the kernel's CSPRNG.
fn random_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 6];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: the ID need only be unique, not secret.
        let n = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id()) << 64;
        bytes.copy_from_slice(&n.to_le_bytes()[..6]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Session {
    pub fn new() -> Session {
        Session {
            id: random_id(),
            created: now(),
            services: Mutex::new(Vec::new()),
            containers: Mutex::new(Vec::new()),
            secrets: Mutex::new(Vec::new()),
            names: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The labels every per-session object carries.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (SESSION_LABEL.to_owned(), self.id.clone()),
            (CREATED_LABEL.to_owned(), self.created.to_string()),
        ])
    }

    /// A fresh name for an object of this session: `swarm-exec-<id>-<n>`.
    pub fn object_name(&self) -> String {
        let n = self
            .names
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("swarm-exec-{}-{n}", self.id)
    }

    /// Records a service so that [`Session::cleanup`] removes it.
    pub fn track_service(&self, id: &str) {
        self.services
            .lock()
            .expect("session lock")
            .push(id.to_owned());
    }

    /// Records a container (on the engine's own node) for cleanup.
    pub fn track_container(&self, id: &str) {
        self.containers
            .lock()
            .expect("session lock")
            .push(id.to_owned());
    }

    /// Records a secret for cleanup.
    pub fn track_secret(&self, id: &str) {
        self.secrets
            .lock()
            .expect("session lock")
            .push(id.to_owned());
    }

    /// Removes every object this session created: containers, then
    /// services, then the secrets they used. Objects already gone are fine;
    /// the first other failure is returned after trying them all.
    pub async fn cleanup(&self, engine: &Engine) -> Result<()> {
        let containers = std::mem::take(&mut *self.containers.lock().expect("session lock"));
        let services = std::mem::take(&mut *self.services.lock().expect("session lock"));
        let secrets = std::mem::take(&mut *self.secrets.lock().expect("session lock"));
        let mut first_err = None;
        for id in containers {
            let opts = bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            if let Err(e) = engine.docker.remove_container(&id, Some(opts)).await {
                // 404: gone; 409: AutoRemove is already removing it.
                if !matches!(docker_status(&e), Some(404 | 409)) && first_err.is_none() {
                    first_err = Some(Error::docker(format!("removing container {id}"), e));
                }
            }
        }
        for id in services {
            if let Err(e) = engine.docker.delete_service(&id).await {
                if docker_status(&e) != Some(404) && first_err.is_none() {
                    first_err = Some(Error::docker(format!("removing helper service {id}"), e));
                }
            }
        }
        for id in secrets {
            if let Err(e) = engine.docker.delete_secret(&id).await {
                if docker_status(&e) != Some(404) && first_err.is_none() {
                    first_err = Some(Error::docker(format!("removing secret {id}"), e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

/// Whether an object with these labels belongs to a session other than
/// `current` that was created at or before `cutoff` (unix seconds).
fn is_stale(labels: Option<&HashMap<String, String>>, current: &str, cutoff: u64) -> bool {
    let Some(labels) = labels else {
        return false;
    };
    let created: u64 = labels
        .get(CREATED_LABEL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let own = labels.get(SESSION_LABEL).is_some_and(|s| s == current);
    created <= cutoff && !own
}

/// Every service labelled with a session.
async fn session_services(engine: &Engine) -> Result<Vec<bollard::models::Service>> {
    engine
        .docker
        .list_services(Some(ListServicesOptions {
            filters: Some(label_filter(SESSION_LABEL)),
            ..Default::default()
        }))
        .await
        .map_err(|e| Error::docker("listing swarm-exec services", e))
}

/// Every container on the engine's own node labelled with a session.
async fn session_containers(engine: &Engine) -> Result<Vec<bollard::models::ContainerSummary>> {
    engine
        .docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(label_filter(SESSION_LABEL)),
            ..Default::default()
        }))
        .await
        .map_err(|e| Error::docker("listing swarm-exec containers", e))
}

/// Every secret (relay key) labelled with a session.
async fn session_secrets(engine: &Engine) -> Result<Vec<bollard::models::Secret>> {
    engine
        .docker
        .list_secrets(Some(bollard::query_parameters::ListSecretsOptions {
            filters: Some(label_filter(SESSION_LABEL)),
        }))
        .await
        .map_err(|e| Error::docker("listing swarm-exec secrets", e))
}

fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![label.to_owned()])])
}

/// Removes per-session services left by runs that were killed: older than
/// `max_age`, not the `current` session's, and with no task still running.
/// Returns how many it removed.
pub async fn collect_stale(engine: &Engine, current: &str, max_age: Duration) -> Result<usize> {
    let docker = &engine.docker;
    let services = session_services(engine).await?;
    let cutoff = now().saturating_sub(max_age.as_secs());
    let mut removed = 0;
    for service in services {
        let id = service.id.clone().unwrap_or_default();
        let labels = service.spec.as_ref().and_then(|s| s.labels.as_ref());
        if !is_stale(labels, current, cutoff) {
            continue;
        }
        let tasks = docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([("service".to_owned(), vec![id.clone()])])),
            }))
            .await
            .map_err(|e| Error::docker("listing helper tasks", e))?;
        let live = tasks.iter().any(|t| {
            let state = t.status.as_ref().and_then(|s| s.state);
            matches!(
                state,
                Some(TaskState::RUNNING | TaskState::STARTING | TaskState::PREPARING)
            ) && t.desired_state == Some(TaskState::RUNNING)
        });
        if live {
            continue;
        }
        tracing::info!("collecting stale helper service {id}");
        match docker.delete_service(&id).await {
            Ok(()) => removed += 1,
            Err(e) if docker_status(&e) == Some(404) => {}
            Err(e) => return Err(Error::docker(format!("removing stale service {id}"), e)),
        }
    }
    Ok(removed)
}

/// Removes session secrets (relay keys) left by runs that were killed:
/// older than `max_age`. A secret a live session's service still uses
/// cannot be removed (the engine refuses), which is what keeps it.
pub async fn collect_stale_secrets(
    engine: &Engine,
    current: &str,
    max_age: Duration,
) -> Result<usize> {
    let docker = &engine.docker;
    let secrets = session_secrets(engine).await?;
    let cutoff = now().saturating_sub(max_age.as_secs());
    let mut removed = 0;
    for sec in secrets {
        if !is_stale(
            sec.spec.as_ref().and_then(|s| s.labels.as_ref()),
            current,
            cutoff,
        ) {
            continue;
        }
        if docker
            .delete_secret(&sec.id.unwrap_or_default())
            .await
            .is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes relay and signal containers on the engine's own node left by
/// runs that were killed: older than `max_age` and with no exec running in
/// them (a live session's relay always has its pipe exec). Returns how many
/// it removed.
pub async fn collect_stale_containers(
    engine: &Engine,
    current: &str,
    max_age: Duration,
) -> Result<usize> {
    let docker = &engine.docker;
    let containers = session_containers(engine).await?;
    let cutoff = now().saturating_sub(max_age.as_secs());
    let mut removed = 0;
    for c in containers {
        let id = c.id.unwrap_or_default();
        // Swarm task containers belong to services; those go with them.
        let is_task = c
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("com.docker.swarm.task.id"));
        if is_task || !is_stale(c.labels.as_ref(), current, cutoff) {
            continue;
        }
        let live = docker
            .inspect_container(&id, None)
            .await
            .map(|i| i.exec_ids.is_some_and(|e| !e.is_empty()))
            .unwrap_or(false);
        if live {
            continue;
        }
        tracing::info!("collecting stale container {id}");
        let opts = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        if docker.remove_container(&id, Some(opts)).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// What `--cleanup` removed.
#[derive(Debug, Default)]
pub struct Removed {
    pub services: usize,
    pub configs: usize,
    pub containers: usize,
    pub secrets: usize,
}

/// Removes everything of swarm-exec's from the swarm, whatever its age:
/// every per-session service and every shared config.
pub async fn remove_everything(engine: &Engine) -> Result<Removed> {
    let docker = &engine.docker;
    let mut removed = Removed::default();
    let services = session_services(engine).await?;
    for s in services {
        let id = s.id.unwrap_or_default();
        match docker.delete_service(&id).await {
            Ok(()) => removed.services += 1,
            Err(e) if docker_status(&e) == Some(404) => {}
            Err(e) => return Err(Error::docker(format!("removing service {id}"), e)),
        }
    }
    let containers = session_containers(engine).await?;
    for c in containers {
        let id = c.id.unwrap_or_default();
        let opts = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        if docker.remove_container(&id, Some(opts)).await.is_ok() {
            removed.containers += 1;
        }
    }
    let secrets = session_secrets(engine).await?;
    for sec in secrets {
        let id = sec.id.unwrap_or_default();
        if docker.delete_secret(&id).await.is_ok() {
            removed.secrets += 1;
        }
    }
    for label in [SESSION_LABEL, SHARED_LABEL] {
        let configs = docker
            .list_configs(Some(ListConfigsOptions {
                filters: Some(label_filter(label)),
            }))
            .await
            .map_err(|e| Error::docker("listing swarm-exec configs", e))?;
        for c in configs {
            let id = c.id.unwrap_or_default();
            match docker.delete_config(&id).await {
                Ok(()) => removed.configs += 1,
                // 404: gone already; 400: still in use by a live session.
                Err(e) if matches!(docker_status(&e), Some(404 | 400)) => {}
                Err(e) => return Err(Error::docker(format!("removing config {id}"), e)),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod stale_tests {
    use super::*;

    #[test]
    fn staleness() {
        let labels = |session: &str, created: &str| {
            HashMap::from([
                (SESSION_LABEL.to_owned(), session.to_owned()),
                (CREATED_LABEL.to_owned(), created.to_owned()),
            ])
        };
        assert!(is_stale(Some(&labels("a", "100")), "b", 100));
        assert!(!is_stale(Some(&labels("a", "101")), "b", 100), "too young");
        assert!(!is_stale(Some(&labels("b", "1")), "b", 100), "our own");
        assert!(!is_stale(None, "b", 100));
    }
}
