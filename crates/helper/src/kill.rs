//! Signalling an exec'd process.
//!
//! The Engine API has no "kill exec". The exec's process lives in the
//! target container's PID namespace, and the helper in its own, so the
//! helper starts a short-lived sibling container in the **host** PID
//! namespace that runs this very binary as `kill SIGNAL PID`. The binary
//! reaches it by a bind mount through `/proc/<helper pid>/root`, so no image
//! other than the helper's own (already on the node) is needed.

use std::path::Path;

use crate::exec;
use crate::http::{self, Conn};
use crate::json;

/// Where the helper's own binary is in its container.
pub const SELF_PATH: &str = "/.swarm-exec-helper";

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

/// `GET /containers/<this container>/json`: the helper's hostname is its
/// container's short ID, as for every swarm task without a set hostname.
pub fn own_container_json(socket: &Path) -> Result<Vec<u8>, String> {
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map_err(|e| String::from("reading /etc/hostname: ") + &e.to_string())?;
    let mut path = String::from("/containers/");
    http::push_path_segment(&mut path, hostname.trim());
    path.push_str("/json");
    let resp = Conn::open(socket)?.request("GET", &path, None)?;
    if resp.status != 200 {
        return Err(exec::engine_error(&resp));
    }
    Ok(resp.body)
}

/// This helper's own container: its image and host PID.
fn own_container(socket: &Path) -> Result<(String, i64), String> {
    let body = own_container_json(socket)?;
    let image = json::member(&body, "Image")
        .and_then(json::string)
        .ok_or("the helper's container has no Image")?;
    let pid = json::member(&body, "State")
        .and_then(|s| json::member(s, "Pid"))
        .and_then(json::int)
        .filter(|&p| p > 0)
        .ok_or("the helper's container has no Pid")?;
    Ok((image, pid))
}

/// Sends `signal` to the process of exec `exec_id`, and waits until the
/// sibling container that does it has finished.
pub fn signal_exec(socket: &Path, exec_id: &str, signal: i32, session: &str) -> Result<(), String> {
    let target = exec::pid(socket, exec_id)?;
    let (image, me) = own_container(socket)?;
    let mut body = String::from(r#"{"Image":"#);
    json::push_string(&mut body, &image);
    body.push_str(r#","User":"0","Entrypoint":["/.swarm-exec-kill"],"Cmd":["kill","#);
    json::push_string(&mut body, &signal.to_string());
    body.push(',');
    json::push_string(&mut body, &target.to_string());
    body.push_str(r#"],"Labels":{"swarm-exec.session":"#);
    json::push_string(&mut body, session);
    body.push_str(
        r#"},"HostConfig":{"PidMode":"host","NetworkMode":"none","AutoRemove":true,"Binds":["#,
    );
    let mut bind = String::from("/proc/");
    bind.push_str(&me.to_string());
    bind.push_str("/root");
    bind.push_str(SELF_PATH);
    bind.push_str(":/.swarm-exec-kill:ro");
    json::push_string(&mut body, &bind);
    body.push_str("]}}");
    let resp = Conn::open(socket)?.request("POST", "/containers/create", Some(body.as_bytes()))?;
    if !(200..300).contains(&resp.status) {
        return Err(exec::engine_error(&resp));
    }
    let id = json::member(&resp.body, "Id")
        .and_then(json::string)
        .ok_or("the engine's answer to container create has no Id")?;
    let mut path = String::from("/containers/");
    http::push_path_segment(&mut path, &id);
    let base = path.clone();
    path.push_str("/start");
    let resp = Conn::open(socket)?.request("POST", &path, None)?;
    if !(200..300).contains(&resp.status) {
        // Not started, so AutoRemove will not remove it.
        let mut rm = base.clone();
        rm.push_str("?force=1");
        let _ = Conn::open(socket).and_then(|c| c.request("DELETE", &rm, None));
        return Err(exec::engine_error(&resp));
    }
    let mut wait = base;
    wait.push_str("/wait?condition=removed");
    // 404: it was already removed, which is what we wait for.
    let _ = Conn::open(socket)?.request("POST", &wait, None);
    Ok(())
}
