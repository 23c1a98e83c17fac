//! Signalling an exec'd process.
//!
//! The Engine API has no "kill exec". The exec's process lives in the
//! target container's PID namespace, and the helper in its own, so the
//! helper starts a short-lived sibling container in the **host** PID
//! namespace that runs this very binary as `kill SIGNAL PID`. The container
//! is made from the target's image (on the node already) and the binary is
//! copied into it before it starts (`PUT /containers/{id}/archive`), so no
//! image of swarm-exec's own is needed on the node.

use std::path::Path;

use crate::exec;
use crate::http::{self, Conn};
use crate::json;
use crate::tar;

/// The binary's name at the kill container's root.
const KILL_NAME: &str = ".swarm-exec-kill";

/// The `kill SIGNAL PID` subcommand: what the sibling container runs.
pub fn kill_command(signal: &str, pid: &str) -> i32 {
    let (Ok(signal), Ok(pid)) = (signal.parse::<i32>(), pid.parse::<i32>()) else {
        eprintln!("swarm-exec-helper kill: expected SIGNAL PID");
        return 2;
    };
    if pid <= 1 {
        eprintln!("swarm-exec-helper kill: refusing pid {pid}");
        return 2;
    }
    // SAFETY: kill(2) with plain integers; no memory is shared.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        eprintln!(
            "swarm-exec-helper kill: {}",
            std::io::Error::last_os_error()
        );
        return 1;
    }
    0
}

/// The image of `container`: the kill container's root filesystem. Any
/// image would do, since the binary it runs is put in by the helper; the
/// target's is on the node for as long as the target exists.
fn image_of(socket: &Path, container: &str) -> Result<String, String> {
    let body = exec::container_json(socket, container)?;
    json::member(&body, "Image")
        .and_then(json::string)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| String::from("the target container has no Image"))
}

/// Sends `signal` to the process of exec `exec_id`, and waits until the
/// sibling container that does it has finished.
pub fn signal_exec(socket: &Path, exec_id: &str, signal: i32, session: &str) -> Result<(), String> {
    let (target, container) = exec::process(socket, exec_id)?;
    let image = image_of(socket, &container)?;
    let me = std::fs::read("/proc/self/exe")
        .map_err(|e| String::from("reading the helper's own binary: ") + &e.to_string())?;
    let mut body = String::from(r#"{"Image":"#);
    json::push_string(&mut body, &image);
    body.push_str(r#","User":"0","Entrypoint":["/"#);
    body.push_str(KILL_NAME);
    body.push_str(r#""],"Cmd":["kill","#);
    json::push_string(&mut body, &signal.to_string());
    body.push(',');
    json::push_string(&mut body, &target.to_string());
    body.push_str(r#"],"Labels":{"swarm-exec.session":"#);
    json::push_string(&mut body, session);
    body.push_str(r#"},"HostConfig":{"PidMode":"host","NetworkMode":"none","AutoRemove":true}}"#);
    let resp = Conn::open(socket)?.request("POST", "/containers/create", Some(body.as_bytes()))?;
    if !(200..300).contains(&resp.status) {
        return Err(exec::engine_error(&resp));
    }
    let id = json::member(&resp.body, "Id")
        .and_then(json::string)
        .ok_or("the engine's answer to container create has no Id")?;
    let mut base = String::from("/containers/");
    http::push_path_segment(&mut base, &id);
    // Not started, so AutoRemove will not remove it: removed here on error.
    let discard = |why: String| {
        let mut rm = base.clone();
        rm.push_str("?force=1");
        let _ = Conn::open(socket).and_then(|c| c.request("DELETE", &rm, None));
        why
    };
    // The binary goes in as a file of the container's own layer: a bind
    // mount of the helper's binary (itself a mount in the helper's
    // container) through /proc/<pid>/root crosses mount namespaces, which
    // the kernel refuses (EINVAL).
    let archive = tar::single_file(KILL_NAME, 0o755, &me);
    let mut put = base.clone();
    put.push_str("/archive?path=/");
    let resp = Conn::open(socket)
        .and_then(|c| c.request_typed("PUT", &put, Some((http::TAR, &archive))))
        .map_err(discard)?;
    if !(200..300).contains(&resp.status) {
        return Err(discard(exec::engine_error(&resp)));
    }
    let mut start = base.clone();
    start.push_str("/start");
    let resp = Conn::open(socket)
        .and_then(|c| c.request("POST", &start, None))
        .map_err(discard)?;
    if !(200..300).contains(&resp.status) {
        return Err(discard(exec::engine_error(&resp)));
    }
    let mut wait = base;
    wait.push_str("/wait?condition=removed");
    // 404: it was already removed, which is what we wait for.
    let _ = Conn::open(socket)?.request("POST", &wait, None);
    Ok(())
}
