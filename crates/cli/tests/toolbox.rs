//! swarm-exec in the Docker toolbox, against the lab: as a plugin of the
//! real docker CLI, through docker contexts (local socket, TLS on TCP and
//! ssh://) resolved the way docker resolves them, as its own container image
//! run with the socket mounted, and with its progress line on a terminal.
//!
//! Every exec here goes to a task on the worker w1, the helper path: the
//! same bytes and exit status as ever, whatever carried the connection.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use support::*;

/// The lab's manager over TLS, and its client material (see `xtask::tls`).
fn lab_tls() -> &'static xtask::tls::LabTls {
    lab()
        .tls
        .as_ref()
        .expect("this lab has no TLS listener: run `cargo xtask lab up`")
}

/// One task on the worker w1; `TARGET` names it.
fn service() -> &'static Service {
    static S: OnceLock<Service> = OnceLock::new();
    S.get_or_init(|| {
        deploy(
            "tb-toolbox",
            "busybox",
            1,
            &["--constraint", "node.hostname==w1"],
        )
    })
}

const TARGET: &str = "tb-toolbox.1";

/// One task on the manager m1: its exec goes straight through the
/// connection, an HTTP upgrade (hijack) over whatever carries it.
fn local_service() -> &'static Service {
    static S: OnceLock<Service> = OnceLock::new();
    S.get_or_init(|| {
        deploy(
            "tb-toolbox-m1",
            "busybox",
            1,
            &["--constraint", "node.hostname==m1"],
        )
    })
}

const LOCAL_TARGET: &str = "tb-toolbox-m1.1";

/// A command with output on both streams and its own exit status.
const SCRIPT: [&str; 3] = ["sh", "-c", "echo out; echo err >&2; exit 3"];

/// Asserts SCRIPT's output and status exactly.
fn assert_script(r: &Run) {
    assert_eq!(
        (r.stdout_str().as_str(), r.stderr_str().as_str(), r.code),
        ("out\n", "err\n", 3),
        "stderr: {}",
        r.stderr_str()
    );
}

/// A docker CLI configuration directory of its own (DOCKER_CONFIG): its
/// contexts, its `currentContext`, its cli-plugins.
struct DockerConfig {
    dir: tempfile::TempDir,
    /// Prepended to PATH (the ssh wrapper).
    path: Option<PathBuf>,
}

impl DockerConfig {
    fn new() -> DockerConfig {
        DockerConfig {
            dir: tempfile::tempdir().expect("a temporary directory"),
            path: None,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets the environment of a docker or swarm-exec command: this config
    /// and none of the caller's endpoint variables.
    fn env(&self, cmd: &mut Command) {
        cmd.env("DOCKER_CONFIG", self.path()).stdin(Stdio::null());
        for var in [
            "DOCKER_HOST",
            "DOCKER_CONTEXT",
            "DOCKER_TLS",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
        ] {
            cmd.env_remove(var);
        }
        if let Some(dir) = &self.path {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", dir.display()));
        }
    }

    /// The real docker CLI with this config.
    fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(xtask::lab::docker_cli());
        self.env(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// Runs the docker CLI and asserts that it succeeded.
    fn docker_ok(&self, args: &[&str]) -> String {
        let r = run(&mut self.docker(args));
        assert_eq!(r.code, 0, "docker {args:?}: {}", r.stderr_str());
        r.stdout_str()
    }

    /// swarm-exec itself, with this config.
    fn swarm_exec(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        self.env(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// `docker context create NAME --docker SPEC`.
    fn context(&self, name: &str, docker: &str) {
        self.docker_ok(&["context", "create", name, "--docker", docker]);
    }

    /// Installs the plugin the way a user does: `swarm-exec --install-plugin`.
    fn install_plugin(&self, how: &str) -> PathBuf {
        let r = run(&mut self.swarm_exec(&[&format!("--install-plugin={how}")]));
        assert_eq!(r.code, 0, "{}", r.stderr_str());
        self.path().join("cli-plugins/docker-swarmexec")
    }
}

fn args<'a>(front: &[&'a str], target: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut all = front.to_vec();
    all.push(target);
    all.extend_from_slice(cmd);
    all
}

// ---------------------------------------------------------------- plugin

#[test]
fn plugin_metadata_is_what_docker_expects() {
    let _serial = serial();
    let config = DockerConfig::new();
    let plugin = config.install_plugin("copy");

    let r = run(Command::new(&plugin).arg("docker-cli-plugin-metadata"));
    assert_eq!(r.code, 0, "{}", r.stderr_str());
    let meta: serde_json::Value = serde_json::from_slice(&r.stdout).expect("JSON metadata");
    assert_eq!(meta["SchemaVersion"], "0.1.0");
    assert_eq!(meta["Version"], env!("CARGO_PKG_VERSION"));
    for key in ["Vendor", "ShortDescription", "URL"] {
        assert!(
            meta[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}: {meta}"
        );
    }

    // The docker CLI lists it as a valid plugin.
    let plugins = config.docker_ok(&["info", "--format", "{{json .ClientInfo.Plugins}}"]);
    let plugins: serde_json::Value = serde_json::from_str(&plugins).expect("plugins JSON");
    let ours = plugins
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["Name"] == "swarmexec"))
        .unwrap_or_else(|| panic!("docker does not list swarmexec: {plugins}"));
    assert!(ours.get("Err").is_none_or(|e| e.is_null()), "{ours}");
    assert_eq!(ours["Version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(ours["Path"], plugin.display().to_string());
}

#[test]
fn docker_swarmexec_runs_in_a_worker_task() {
    let _serial = serial();
    let svc = service();
    assert_eq!(svc.tasks[0].node, "w1");
    let config = DockerConfig::new();
    config.install_plugin("link");
    assert!(
        std::fs::symlink_metadata(config.path().join("cli-plugins/docker-swarmexec"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let m1 = lab().docker_host();

    // DOCKER_HOST, as the docker CLI itself would use it.
    let mut cmd = config.docker(&args(&["swarmexec"], TARGET, &SCRIPT));
    cmd.env("DOCKER_HOST", &m1);
    assert_script(&run(&mut cmd));

    // docker's global options in front of the plugin name: -H, and a
    // context in another config directory with --config and -c.
    assert_script(&run(&mut config.docker(&args(
        &["-H", &m1, "swarmexec"],
        TARGET,
        &SCRIPT,
    ))));
    // (docker looks for plugins in the --config directory too.)
    let other = DockerConfig::new();
    other.install_plugin("copy");
    other.context("tb-lab", &format!("host={m1}"));
    let other_dir = other.path().display().to_string();
    assert_script(&run(&mut config.docker(&args(
        &[
            "--config",
            &other_dir,
            "-c",
            "tb-lab",
            "-D",
            "swarmexec",
            "-q",
        ],
        TARGET,
        &SCRIPT,
    ))));

    // Errors keep their shape through docker.
    let r = run(&mut config.docker(&["-H", &m1, "swarmexec", "tb-no-such", "true"]));
    r.assert_error("no service or task matches");
    assert_clean();
}

#[test]
fn plugin_cleans_up_when_docker_is_interrupted() {
    let _serial = serial();
    service();
    let config = DockerConfig::new();
    config.install_plugin("copy");
    // With its output not on a terminal, an interrupted docker closes the
    // plugin's socket (DOCKER_CLI_PLUGIN_SOCKET) instead of signalling it.
    let mut cmd = config.docker(&["swarmexec", TARGET, "sh", "-c", "echo started; sleep 60"]);
    let mut docker = cmd
        .env("DOCKER_HOST", lab().docker_host())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(docker.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(docker.id() as i32, libc::SIGTERM) };
    let start = std::time::Instant::now();
    let out = docker.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: out.stderr,
        elapsed: start.elapsed(),
    };
    assert_eq!(r.code, 143, "{}", r.stderr_str());
    assert_eq!(r.stderr_str(), "swarm-exec: interrupted by SIGTERM\n");
    assert!(r.elapsed.as_secs() < 20, "took {:?}", r.elapsed);
    assert_clean();
}

#[test]
fn plugin_version_shows_the_helpers() {
    let _serial = serial();
    let config = DockerConfig::new();
    config.install_plugin("copy");
    let out = config.docker_ok(&["swarmexec", "--version"]);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("swarm-exec {} (git ", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    for arch in ["x86_64", "aarch64"] {
        assert!(
            out.contains(&format!(" {arch} sha256:")),
            "no {arch} helper: {out}"
        );
    }
}

// -------------------------------------------------------------- contexts

#[test]
fn contexts_are_resolved_as_docker_does() {
    let _serial = serial();
    service();
    let config = DockerConfig::new();
    let m1 = lab().docker_host();
    let worker = lab().node("w1").docker_host();
    let standalone = lab().standalone().docker_host();
    config.context("tb-lab", &format!("host={m1}"));
    config.context("tb-worker", &format!("host={worker}"));

    // --context, DOCKER_CONTEXT, and `docker context use`.
    assert_script(&run(&mut config.swarm_exec(&args(
        &["--context", "tb-lab"],
        TARGET,
        &SCRIPT,
    ))));
    let mut cmd = config.swarm_exec(&args(&[], TARGET, &SCRIPT));
    cmd.env("DOCKER_CONTEXT", "tb-lab");
    assert_script(&run(&mut cmd));
    config.docker_ok(&["context", "use", "tb-lab"]);
    assert_script(&run(&mut config.swarm_exec(&args(&[], TARGET, &SCRIPT))));

    // The order: --context beats DOCKER_HOST; DOCKER_HOST beats
    // DOCKER_CONTEXT; DOCKER_CONTEXT beats `docker context use`.
    let mut cmd = config.swarm_exec(&args(&["-c", "tb-lab"], TARGET, &SCRIPT));
    cmd.env("DOCKER_HOST", &standalone);
    assert_script(&run(&mut cmd));
    let mut cmd = config.swarm_exec(&[TARGET, "true"]);
    cmd.env("DOCKER_HOST", &standalone)
        .env("DOCKER_CONTEXT", "tb-lab");
    run(&mut cmd).assert_error("not part of a swarm");
    let mut cmd = config.swarm_exec(&[TARGET, "true"]);
    cmd.env("DOCKER_CONTEXT", "tb-worker");
    run(&mut cmd).assert_error("it is a worker");
    // -H beats the current context.
    assert_script(&run(&mut config.swarm_exec(&args(
        &["-H", &m1],
        TARGET,
        &SCRIPT,
    ))));

    // What docker refuses, swarm-exec refuses: one line, exit 125.
    run(&mut config.swarm_exec(&["-c", "tb-nothing", TARGET, "true"]))
        .assert_error("context \"tb-nothing\": it does not exist");
    run(&mut config.swarm_exec(&["-c", "tb-lab", "-H", &m1, TARGET, "true"]))
        .assert_error("cannot go with --context");
    config.docker_ok(&["context", "use", "default"]);
    assert_clean();
}

#[test]
fn tls_engine_through_a_context_and_the_environment() {
    let _serial = serial();
    service();
    let tls = lab_tls();
    let certs = &tls.client_dir;
    let file = |f: &str| certs.join(f).display().to_string();
    let config = DockerConfig::new();
    config.context(
        "tb-tls",
        &format!(
            "host={},ca={},cert={},key={}",
            tls.host,
            file("ca.pem"),
            file("cert.pem"),
            file("key.pem")
        ),
    );

    // A context with TLS material, standalone and as the plugin; on the
    // manager's own task the exec stream is hijacked over TLS.
    local_service();
    assert_script(&run(&mut config.swarm_exec(&args(
        &["-c", "tb-tls", "--transport", "local"],
        LOCAL_TARGET,
        &SCRIPT,
    ))));
    assert_script(&run(&mut config.swarm_exec(&args(
        &["-c", "tb-tls"],
        TARGET,
        &SCRIPT,
    ))));
    config.install_plugin("copy");
    assert_script(&run(&mut config.docker(&args(
        &["-c", "tb-tls", "swarmexec"],
        TARGET,
        &SCRIPT,
    ))));

    // DOCKER_HOST with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
    let env_tls = |cmd: &mut Command, cert_path: &Path| {
        cmd.env("DOCKER_HOST", &tls.host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", cert_path);
    };
    let mut cmd = config.swarm_exec(&args(&[], TARGET, &SCRIPT));
    env_tls(&mut cmd, certs);
    assert_script(&run(&mut cmd));
    // And docker's --tlsverify flags.
    let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
    assert_script(&run(&mut config.swarm_exec(&args(
        &[
            "-H",
            &tls.host,
            "--tlsverify",
            "--tlscacert",
            &ca,
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
        ],
        TARGET,
        &SCRIPT,
    ))));

    // The engine demands a client certificate…
    let ca_only = tempfile::tempdir().unwrap();
    std::fs::copy(certs.join("ca.pem"), ca_only.path().join("ca.pem")).unwrap();
    let mut cmd = config.swarm_exec(&[TARGET, "true"]);
    env_tls(&mut cmd, ca_only.path());
    run(&mut cmd).assert_error("cannot reach the Docker engine");
    // …and swarm-exec trusts only the given CA.
    let stranger = tempfile::tempdir().unwrap();
    let other = xtask::tls::generate(stranger.path(), "m1", "10.211.0.11").unwrap();
    std::fs::copy(certs.join("cert.pem"), other.client_dir.join("cert.pem")).unwrap();
    std::fs::copy(certs.join("key.pem"), other.client_dir.join("key.pem")).unwrap();
    let mut cmd = config.swarm_exec(&[TARGET, "true"]);
    env_tls(&mut cmd, &other.client_dir);
    run(&mut cmd).assert_error("invalid peer certificate");
    // Plain HTTP to the TLS port.
    let mut cmd = config.swarm_exec(&[TARGET, "true"]);
    cmd.env("DOCKER_HOST", &tls.host);
    run(&mut cmd).assert_error("HTTP request to an HTTPS server");
    assert_clean();
}

// ------------------------------------------------------------------- ssh

/// Debian's sshd running inside the manager m1 (its network, `/run` and
/// hostname, so `docker` in an ssh session reaches m1's engine), with a key
/// made here. Stopped when dropped.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["id", "hostkey"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .expect("ssh-keygen (apt-get install openssh-client)")
                .success();
            assert!(ok, "ssh-keygen failed");
        }
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        // A port per test process, so that a stale sshd cannot be in the way.
        let port = 22000 + (std::process::id() % 1000) as u16;
        let addr = &lab().manager().addr;
        let config = format!(
            "ListenAddress {addr}:{port}\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
             AllowUsers root\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        // The client trusts exactly this host key and uses exactly this
        // key: an ssh on PATH that reads this config.
        let hostkey = std::fs::read_to_string(d.join("hostkey.pub")).unwrap();
        std::fs::write(d.join("known_hosts"), format!("[{addr}]:{port} {hostkey}")).unwrap();
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host {addr}\n  IdentityFile {d}/id\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  \
                 StrictHostKeyChecking yes\n  BatchMode yes\n",
                d = d.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        let wrapper = d.join("bin/ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {}/ssh_config \"$@\"\n",
                d.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

        // sshd wants its privilege-separation directory in the node's /run.
        let mut child = lab()
            .in_node("m1", "sh")
            .unwrap()
            .arg("-c")
            .arg(format!(
                "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f {}/sshd_config",
                d.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sshd (apt-get install openssh-server)");
        // Ready when sshd says it listens (its -e log on stderr).
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let mut said = String::new();
        loop {
            let mut line = String::new();
            if log.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("sshd ended: {said}");
            }
            said.push_str(&line);
            if line.contains("Server listening") {
                break;
            }
        }
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut log, &mut std::io::sink());
        });
        Sshd { child, dir, port }
    }

    fn url(&self, user: &str) -> String {
        format!("ssh://{user}@{}:{}", lab().manager().addr, self.port)
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_context_to_a_manager() {
    let _serial = serial();
    service();
    let sshd = Sshd::start();
    let mut config = DockerConfig::new();
    config.path = Some(sshd.bin());
    config.context("tb-ssh", &format!("host={}", sshd.url("root")));
    // The docker CLI reaches m1 through it…
    let info = config.docker_ok(&["-c", "tb-ssh", "info", "--format", "{{.Name}}"]);
    assert_eq!(info.trim(), "m1");

    // …and so does swarm-exec, standalone and as the plugin, and the exec
    // stream of a task on m1 is hijacked through the ssh pipe.
    local_service();
    assert_script(&run(&mut config.swarm_exec(&args(
        &["-c", "tb-ssh", "--transport", "local"],
        LOCAL_TARGET,
        &SCRIPT,
    ))));
    assert_script(&run(&mut config.swarm_exec(&args(
        &["-c", "tb-ssh"],
        TARGET,
        &SCRIPT,
    ))));
    config.install_plugin("copy");
    assert_script(&run(&mut config.docker(&args(
        &["-c", "tb-ssh", "swarmexec"],
        TARGET,
        &SCRIPT,
    ))));
    // Large output is byte-exact over the ssh pipe too.
    let r = run(&mut config.swarm_exec(&[
        "-H",
        &sshd.url("root"),
        TARGET,
        "sh",
        "-c",
        "head -c 300000 /bin/busybox",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr_str());
    let busybox = lab()
        .docker(
            "w1",
            &[
                "exec",
                &service().tasks[0].container,
                "sh",
                "-c",
                "head -c 300000 /bin/busybox | md5sum",
            ],
        )
        .unwrap();
    let ours = {
        use std::io::Write;
        let mut md5 = Command::new("md5sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        md5.stdin.take().unwrap().write_all(&r.stdout).unwrap();
        String::from_utf8(md5.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(
        ours.split_whitespace().next(),
        busybox.split_whitespace().next()
    );

    // ssh's own reason, on one line.
    run(&mut config.swarm_exec(&["-H", &sshd.url("nobody"), TARGET, "true"]))
        .assert_error("Permission denied");
    drop(sshd);
    assert_clean();
}

// ----------------------------------------------------------------- image

#[test]
fn the_tool_image_runs_with_the_socket_mounted() {
    let _serial = serial();
    service();
    let bin = xtask::release::build_static("x86_64-unknown-linux-musl").expect("static build");
    let tag = "swarm-exec:tb-toolbox";
    let tar = xtask::image::tool_image(&std::fs::read(bin).unwrap(), tag).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), tar).unwrap();
    let m1 = &lab().manager().name;
    lab()
        .docker(m1, &["load", "-i", &file.path().display().to_string()])
        .expect("docker load");

    // The old tool's usage: `docker run -v /var/run/docker.sock:… IMAGE TARGET CMD…`
    // on the manager (its /var/run/docker.sock is m1's engine).
    let mut cmd = Command::new(xtask::lab::docker_cli());
    cmd.args(["-H", &lab().docker_host(), "run", "--rm", "-v"])
        .arg("/var/run/docker.sock:/var/run/docker.sock")
        .args(args(&[tag], TARGET, &SCRIPT))
        .stdin(Stdio::null());
    assert_script(&run(&mut cmd));

    let inspect = lab()
        .docker(
            m1,
            &[
                "image",
                "inspect",
                "--format",
                "{{json .Config.Entrypoint}} {{len .RootFS.Layers}}",
                tag,
            ],
        )
        .unwrap();
    assert_eq!(inspect.trim(), r#"["/swarm-exec"] 1"#);
    let _ = lab().docker(m1, &["rmi", tag]);
    assert_clean();
}

// -------------------------------------------------------------- progress

/// Runs swarm-exec with its stderr on a fresh terminal (stdout a pipe) and
/// returns everything the terminal received, and the run.
fn on_a_terminal(args: &[&str]) -> (String, Run) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the given integers.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    use std::os::fd::FromRawFd;
    // SAFETY: both descriptors are fresh and owned here.
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    };
    let start = std::time::Instant::now();
    let mut cmd = swarm_exec_cmd(args);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // The terminal's copy of the slave is closed once the child has it:
    // reading the master ends (EIO) when the child exits.
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut master = master;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let out = child.wait_with_output().unwrap();
    let terminal = reader.join().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: Vec::new(),
        elapsed: start.elapsed(),
    };
    (terminal, run)
}

#[test]
fn progress_line_on_a_terminal_only() {
    let _serial = serial();
    service();
    // The helper on w1 takes well over 300 ms to print anything; the
    // command's own stderr follows on the same terminal.
    let script = ["sh", "-c", "sleep 1; echo payload; echo on-stderr >&2"];
    let (terminal, r) = on_a_terminal(&args(&[], TARGET, &script));
    assert_eq!(
        (r.stdout_str().as_str(), r.code),
        ("payload\n", 0),
        "{terminal:?}"
    );
    let spinner = terminal
        .find("starting helper on w1…")
        .unwrap_or_else(|| panic!("no progress line: {terminal:?}"));
    let erase = terminal.rfind("\r\x1b[2K").expect("the line is erased");
    let output = terminal.find("on-stderr").expect("the command's stderr");
    assert!(spinner < erase && erase < output, "{terminal:?}");
    assert_eq!(
        &terminal[output..],
        "on-stderr\r\n",
        "nothing after the output"
    );

    // -q: nothing of swarm-exec's own, spinner included.
    let (terminal, r) = on_a_terminal(&args(&["-q"], TARGET, &script));
    assert_eq!(r.code, 0);
    assert_eq!(terminal, "on-stderr\r\n");
    // Not a terminal: stderr is the command's alone.
    let r = swarm_exec(&args(&[], TARGET, &script));
    assert_eq!(r.stderr_str(), "on-stderr\n");
    assert_clean();
}
