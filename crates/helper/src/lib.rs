//! The node-side half of `swarm-exec`, as two small static binaries:
//! `swarm-exec-helper` (`exec`, for the logs transport) and `swarm-exec-relay`
//! (`serve` and `relay`, for the relay transport, with the encrypted
//! channel). Splitting them keeps each under the 500 KB config limit.
//!
//! `swarm-exec-helper`: the node-side half of `swarm-exec`.
//!
//! It runs as the entrypoint of a one-shot swarm service task placed on the
//! node that hosts the target containers, with that node's Docker socket
//! bind-mounted. It execs a command in one or more local containers through
//! the Docker Engine API (raw HTTP/1.1 over the Unix socket) and streams the
//! output back as `swarm_exec_proto::line` frames on its stdout, which the
//! CLI reads through `docker service logs`.
//!
//! It is linked statically and must stay small (≤ 500 KB), so it depends on
//! nothing but `std` and `swarm-exec-proto`, and it must never panic (the
//! size profile aborts on panic, which would lose every message).
//!
//! ```text
//! swarm-exec-helper exec [--socket PATH] [--container ID]... [--env K=V]...
//!                        [--user U] [--workdir DIR] [--privileged]
//!                        [--parallel N] -- CMD [ARG...]
//! swarm-exec-helper version
//! ```
//!
//! Exit status: with one container, the command's exit code (values outside
//! 0..=255 become 255), or 125 if the helper failed for it; with several, 0
//! if every command exited 0, else 1. The CLI relies on the frames, not on
//! this status.

pub mod exec;
pub mod http;
pub mod json;
pub mod kill;
pub mod mux;
pub mod relay;
pub mod serve;
pub mod sink;
pub mod tar;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use exec::ExecSpec;
use sink::{Sink, EXIT_HELPER_FAILED};

const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Targets are numbered with a `u32` in frames; this is plenty.
const MAX_CONTAINERS: usize = 65_536;

pub const USAGE: &str = "usage: swarm-exec-helper exec [--socket PATH] [--container ID]... \
[--env K=V]... [--user U] [--workdir DIR] [--privileged] [--parallel N] [--timeout-ms N] \
[--session ID] -- CMD [ARG...]
       swarm-exec-helper version
";

/// A parsed `exec` or `serve` command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub socket: PathBuf,
    pub containers: Vec<String>,
    pub parallel: Option<usize>,
    pub spec: ExecSpec,
    /// `exec --detach`: start the commands and return, as `docker exec -d`.
    pub detach: bool,
    /// `exec --timeout-ms`: each command gets SIGTERM after this long.
    pub timeout: Option<std::time::Duration>,
    /// Labels the sibling containers that deliver signals.
    pub session: String,
    /// `serve` only.
    pub port: Option<u16>,
    pub key_file: Option<PathBuf>,
    pub network: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Exec(Config),
    Serve(serve::ServeConfig),
    Relay(Option<String>),
    Kill(String, String),
    /// Keep a container (and its network namespace) alive until removed.
    Hold,
    Version,
    Help,
}

fn value_error(opt: &str, what: &str) -> String {
    let mut m = String::from(opt);
    m.push_str(": ");
    m.push_str(what);
    m
}

/// Parses the arguments (program name excluded).
pub fn parse_args(args: Vec<String>) -> Result<Command, String> {
    let mut it = args.into_iter();
    let serve = match it.next().as_deref() {
        Some("exec") => false,
        Some("serve") => true,
        Some("relay") => {
            let flag = it.next();
            return match (flag.as_deref(), it.next()) {
                (None, _) => Ok(Command::Relay(None)),
                (Some("--connect"), Some(addr)) => Ok(Command::Relay(Some(addr))),
                _ => Err("usage: relay [--connect IP:PORT]".into()),
            };
        }
        Some("hold") => return Ok(Command::Hold),
        Some("kill") => {
            return match (it.next(), it.next()) {
                (Some(sig), Some(pid)) => Ok(Command::Kill(sig, pid)),
                _ => Err("usage: kill SIGNAL PID".into()),
            }
        }
        Some("version" | "--version" | "-V") => return Ok(Command::Version),
        Some("help" | "--help" | "-h") => return Ok(Command::Help),
        Some(other) => {
            let mut m = String::from("unknown command: ");
            m.push_str(other);
            return Err(m);
        }
        None => return Err("missing command (exec, serve, relay, kill or version)".into()),
    };
    let mut cfg = Config {
        socket: PathBuf::from(DEFAULT_SOCKET),
        containers: Vec::new(),
        parallel: None,
        spec: ExecSpec::default(),
        detach: false,
        timeout: None,
        session: String::new(),
        port: None,
        key_file: None,
        network: None,
    };
    while let Some(arg) = it.next() {
        if arg == "--" {
            break;
        }
        if !arg.starts_with("--") {
            // The command starts at the first operand, `--` or not.
            cfg.spec.cmd.push(arg);
            break;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        let flag = match name.as_str() {
            "--privileged" => Some(&mut cfg.spec.privileged),
            "--interactive" => Some(&mut cfg.spec.stdin),
            "--tty" => Some(&mut cfg.spec.tty),
            "--detach" => Some(&mut cfg.detach),
            _ => None,
        };
        if let Some(flag) = flag {
            if inline.is_some() {
                return Err(value_error(&name, "takes no value"));
            }
            *flag = true;
            continue;
        }
        if !matches!(
            name.as_str(),
            "--socket"
                | "--container"
                | "--env"
                | "--user"
                | "--workdir"
                | "--parallel"
                | "--timeout-ms"
                | "--session"
                | "--port"
                | "--key-file"
                | "--network"
        ) {
            let mut m = String::from("unknown option: ");
            m.push_str(&name);
            return Err(m);
        }
        let value = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => return Err(value_error(&name, "missing value")),
        };
        match name.as_str() {
            "--socket" => cfg.socket = PathBuf::from(value),
            "--container" => {
                if value.is_empty() {
                    return Err(value_error(&name, "empty container id"));
                }
                cfg.containers.push(value);
            }
            "--env" => cfg.spec.env.push(value),
            "--user" => cfg.spec.user = Some(value),
            "--workdir" => cfg.spec.workdir = Some(value),
            "--session" => cfg.session = value,
            "--key-file" => cfg.key_file = Some(PathBuf::from(value)),
            "--network" => cfg.network = Some(value),
            "--timeout-ms" => match value.parse::<u64>() {
                Ok(n) if n > 0 => cfg.timeout = Some(std::time::Duration::from_millis(n)),
                _ => {
                    return Err(value_error(
                        &name,
                        "expects a positive number of milliseconds",
                    ))
                }
            },
            "--port" => match value.parse::<u16>() {
                Ok(n) if n > 0 => cfg.port = Some(n),
                _ => return Err(value_error(&name, "expects a port number")),
            },
            _ => match value.parse::<usize>() {
                Ok(n) if n > 0 => cfg.parallel = Some(n),
                _ => return Err(value_error(&name, "expects a positive integer")),
            },
        }
    }
    cfg.spec.cmd.extend(it);
    if cfg.containers.is_empty() {
        return Err("at least one --container is required".into());
    }
    if cfg.containers.len() > MAX_CONTAINERS {
        return Err("too many --container".into());
    }
    if cfg.spec.cmd.is_empty() {
        return Err("missing command to run (after --)".into());
    }
    if !serve {
        if cfg.spec.stdin || cfg.spec.tty {
            return Err("--interactive and --tty go with serve".into());
        }
        return Ok(Command::Exec(cfg));
    }
    match (cfg.containers.len(), cfg.port, cfg.key_file) {
        (1, Some(port), Some(key_file)) => Ok(Command::Serve(serve::ServeConfig {
            socket: cfg.socket,
            container: cfg.containers.swap_remove(0),
            spec: cfg.spec,
            port,
            key_file,
            session: cfg.session,
            network: cfg.network,
        })),
        _ => Err("serve needs one --container, --port and --key-file".into()),
    }
}

/// Runs the command in every container, at most `parallel` at a time.
/// Returns, per target, the exit code or `None` if the helper failed for it
/// (its `x` or `f` frame has been written).
pub fn run_all<W: Write + Send>(cfg: &Config, sink: &Sink<W>) -> Vec<Option<i64>> {
    let n = cfg.containers.len();
    let workers = cfg.parallel.unwrap_or(n).clamp(1, n);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![None; n]);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        // `i < MAX_CONTAINERS`, so this never saturates.
        let target = u32::try_from(i).unwrap_or(u32::MAX);
        let opts = exec::RunOptions {
            detach: cfg.detach,
            running: Some(&RUNNING),
            timeout: cfg.timeout,
            session: &cfg.session,
        };
        let outcome = match exec::run(
            &cfg.socket,
            &cfg.containers[i],
            &cfg.spec,
            target,
            sink,
            opts,
        ) {
            Ok(code) => {
                sink.exit(target, code);
                Some(code)
            }
            Err(msg) => {
                sink.failure(target, &msg);
                None
            }
        };
        match results.lock() {
            Ok(mut r) => r[i] = outcome,
            Err(p) => p.into_inner()[i] = outcome,
        }
    };
    std::thread::scope(|s| {
        for _ in 1..workers {
            // If a thread cannot be spawned, the remaining workers (at least
            // this one) take its share.
            if std::thread::Builder::new().spawn_scoped(s, work).is_err() {
                break;
            }
        }
        work();
    });
    match results.into_inner() {
        Ok(r) => r,
        Err(p) => p.into_inner(),
    }
}

/// The execs this process runs, so that SIGTERM can pass on to them.
pub static RUNNING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// When swarm-exec ends a session early (Ctrl-C, timeout), it removes the
/// helper's service and the engine sends the helper SIGTERM: the commands
/// it started must end too, not run on orphaned. A thread waits for the
/// signal (blocked in every thread, so only `sigwait` sees it) and signals
/// every running exec before exiting.
pub fn terminate_on_sigterm(socket: PathBuf, session: String) {
    // SAFETY: plain libc calls on a local, initialised signal set; the
    // mask is set before any other thread exists, so all inherit it.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: waits on the set built above.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        let running = match RUNNING.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for id in &running {
            let _ = kill::signal_exec(&socket, id, libc::SIGTERM, &session);
        }
        std::process::exit(EXIT_HELPER_FAILED);
    });
}

/// The process exit status for the per-target outcomes.
pub fn exit_status(outcomes: &[Option<i64>]) -> i32 {
    match outcomes {
        [Some(code)] => {
            if (0..=255).contains(code) {
                *code as i32
            } else {
                255
            }
        }
        [None] => EXIT_HELPER_FAILED,
        many => {
            if many.iter().all(|o| *o == Some(0)) {
                0
            } else {
                1
            }
        }
    }
}

pub fn print(mut w: impl Write, text: &[&str]) {
    for t in text {
        let _ = w.write_all(t.as_bytes());
    }
    let _ = w.flush();
}

/// Reports a command-line error: one line on stderr, an `f` frame for
/// target 0, exit status 125.
pub fn usage_error(msg: &str) -> i32 {
    print(std::io::stderr(), &["swarm-exec-helper: ", msg, "\n"]);
    let mut full = String::from("swarm-exec-helper: ");
    full.push_str(msg);
    Sink::new(std::io::stdout()).failure(0, &full);
    EXIT_HELPER_FAILED
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn exec_cfg(a: &[&str]) -> Config {
        match parse_args(args(a)) {
            Ok(Command::Exec(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_full_command_line() {
        let c = exec_cfg(&[
            "exec",
            "--socket",
            "/s.sock",
            "--container",
            "a",
            "--container=b",
            "--env",
            "K=V=W",
            "--env=X=",
            "--user",
            "1000",
            "--workdir=/tmp",
            "--privileged",
            "--parallel",
            "2",
            "--",
            "sh",
            "-c",
            "--container x",
            "--",
        ]);
        assert_eq!(c.socket, PathBuf::from("/s.sock"));
        assert_eq!(c.containers, ["a", "b"]);
        assert_eq!(c.parallel, Some(2));
        assert_eq!(c.spec.env, ["K=V=W", "X="]);
        assert_eq!(c.spec.user.as_deref(), Some("1000"));
        assert_eq!(c.spec.workdir.as_deref(), Some("/tmp"));
        assert!(c.spec.privileged);
        assert_eq!(c.spec.cmd, ["sh", "-c", "--container x", "--"]);
    }

    #[test]
    fn defaults_and_operands() {
        let c = exec_cfg(&["exec", "--container", "a", "echo", "--flag"]);
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.parallel, None);
        assert_eq!(
            c.spec,
            ExecSpec {
                cmd: args(&["echo", "--flag"]),
                ..ExecSpec::default()
            }
        );
        assert_eq!(parse_args(args(&["version"])), Ok(Command::Version));
        assert_eq!(parse_args(args(&["--help"])), Ok(Command::Help));
    }

    #[test]
    fn rejects_bad_command_lines() {
        for bad in [
            &[][..],
            &["run"],
            &["exec", "--", "true"],
            &["exec", "--container", "a"],
            &["exec", "--container", "a", "--"],
            &["exec", "--container"],
            &["exec", "--container", ""],
            &["exec", "--container", "a", "--bogus", "--", "true"],
            &["exec", "--container", "a", "--parallel", "0", "--", "true"],
            &["exec", "--container", "a", "--parallel", "x", "--", "true"],
            &["exec", "--container", "a", "--privileged=yes", "--", "true"],
        ] {
            assert!(parse_args(args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(exit_status(&[Some(0)]), 0);
        assert_eq!(exit_status(&[Some(42)]), 42);
        assert_eq!(exit_status(&[Some(255)]), 255);
        assert_eq!(exit_status(&[Some(256)]), 255);
        assert_eq!(exit_status(&[Some(-1)]), 255);
        assert_eq!(exit_status(&[None]), 125);
        assert_eq!(exit_status(&[Some(0), Some(0)]), 0);
        assert_eq!(exit_status(&[Some(0), Some(3)]), 1);
        assert_eq!(exit_status(&[Some(0), None]), 1);
    }

    #[test]
    fn unreachable_socket_fails_every_target() {
        let cfg = exec_cfg(&[
            "exec",
            "--socket",
            "/nonexistent/docker.sock",
            "--container",
            "a",
            "--container",
            "b",
            "--container",
            "c",
            "--parallel",
            "2",
            "--",
            "true",
        ]);
        let sink = Sink::new(Vec::new());
        assert_eq!(run_all(&cfg, &sink), vec![None, None, None]);
        let mut dec = swarm_exec_proto::line::LineDecoder::new();
        dec.push(&sink.into_inner());
        let mut targets = Vec::new();
        while let Some(r) = dec.next() {
            let Ok(swarm_exec_proto::line::Decoded::Frame(f)) = r else {
                panic!()
            };
            let msg = f.failure_message().unwrap();
            assert!(
                msg.contains("cannot connect to the Docker engine at /nonexistent/docker.sock"),
                "{msg}"
            );
            targets.push(f.target);
        }
        targets.sort_unstable();
        assert_eq!(targets, [0, 1, 2]);
    }
}
