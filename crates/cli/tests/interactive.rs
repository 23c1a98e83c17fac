//! `-i` and `-t` on a worker's task, over the relay transport: dialled
//! directly by the CLI (the default here, where the test machine reaches
//! the nodes) and through a relay container on the manager
//! (`--relay-link host`, and the default when the node is walled off).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use support::*;

fn svc() -> &'static Service {
    static S: OnceLock<Service> = OnceLock::new();
    S.get_or_init(|| deploy("it-busybox", "busybox", 3, &[]))
}

fn worker_target() -> String {
    let t = svc().on("w1");
    format!("it-busybox.{}", t.slot.unwrap())
}

#[test]
fn piped_stdin_64_mib_round_trips() {
    let _serial = serial();
    piped_round_trip(&[]);
}

#[test]
fn piped_stdin_64_mib_round_trips_through_a_relay_container() {
    let _serial = serial();
    piped_round_trip(&["--relay-link", "host"]);
}

fn piped_round_trip(link: &[&str]) {
    let target = worker_target();
    let data: Vec<u8> = (0..64u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut args = link.to_vec();
    args.extend(["-i", &target, "cat"]);
    let mut child = swarm_exec_cmd(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            stdin.write_all(&data).unwrap();
            // Dropping stdin is the EOF that ends `cat`.
        })
    };
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), data.len());
    assert_eq!(sha256(&out.stdout), sha256(&data));
    assert_clean();
}

#[test]
fn output_keeps_flowing_after_stdin_closes() {
    let _serial = serial();
    let target = worker_target();
    let mut child = swarm_exec_cmd(&[
        "-i",
        &target,
        "sh",
        "-c",
        "cat; sleep 1; echo after; exit 6",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(b"early\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(out.stdout, b"early\nafter\n");
    assert_clean();
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .arg("-L")
        .arg("swarm-exec-test")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen() -> String {
    tmux(&["capture-pane", "-p", "-t", "it"])
}

#[test]
fn interactive_shell_in_tmux() {
    let _serial = serial();
    shell_in_tmux("direct");
}

#[test]
fn interactive_shell_in_tmux_through_a_relay_container() {
    let _serial = serial();
    shell_in_tmux("host");
}

fn shell_in_tmux(link: &str) {
    let target = worker_target();
    let _ = tmux(&["kill-server"]);
    let cmd = format!(
        "DOCKER_HOST={} {} --relay-link {link} -it {target} sh; echo \"exited $?\"; sleep 30",
        lab().docker_host(),
        bin()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "it",
        "-x",
        "100",
        "-y",
        "30",
        &cmd,
    ]);
    // capture-pane drops the prompt's trailing space.
    wait_for("the remote prompt", Duration::from_secs(20), || {
        screen().lines().any(|l| l.trim_end().ends_with('#'))
    });
    tmux(&["send-keys", "-t", "it", "stty size", "Enter"]);
    wait_for("stty size", Duration::from_secs(10), || {
        screen().contains("30 100")
    });
    tmux(&["resize-window", "-t", "it", "-x", "120", "-y", "40"]);
    tmux(&["send-keys", "-t", "it", "stty size", "Enter"]);
    wait_for("the new size", Duration::from_secs(10), || {
        screen().contains("40 120")
    });
    tmux(&["send-keys", "-t", "it", "echo $((6*7))", "Enter"]);
    wait_for("42", Duration::from_secs(10), || {
        screen().lines().any(|l| l.trim() == "42")
    });
    tmux(&["send-keys", "-t", "it", "exit 7", "Enter"]);
    wait_for("the exit status", Duration::from_secs(15), || {
        screen().contains("exited 7")
    });
    let _ = tmux(&["kill-server"]);
    assert_clean();
}

#[test]
fn detach_returns_at_once() {
    let _serial = serial();
    for node in ["m1", "w1"] {
        let t = svc().on(node);
        let target = format!("it-busybox.{}", t.slot.unwrap());
        let r = swarm_exec(&[
            "-d",
            &target,
            "sh",
            "-c",
            "sleep 2; echo later > /tmp/detached",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr_str());
        assert!(r.stdout.is_empty());
        // Not there yet: swarm-exec did not wait for the command.
        let now = swarm_exec(&[&target, "cat", "/tmp/detached"]);
        assert_ne!(now.code, 0, "the detached command had already finished");
        wait_for("the detached command", Duration::from_secs(20), || {
            swarm_exec(&[&target, "cat", "/tmp/detached"]).stdout == b"later\n"
        });
        swarm_exec(&[&target, "rm", "/tmp/detached"]);
    }
    assert_clean();
}

/// While a relay session runs, nothing swarm-exec created shows its key:
/// not the service (arguments, environment, labels), not the containers,
/// not the secret (the API never returns a secret's data).
#[test]
fn no_key_in_any_inspect_output() {
    let _serial = serial();
    let mut child = swarm_exec_cmd(&[
        "--relay-link",
        "host",
        "-i",
        &worker_target(),
        "sh",
        "-c",
        "echo started; cat >/dev/null",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut buf = [0u8; 8];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut buf).unwrap();
    let lab = lab();
    let label = "label=swarm-exec.session";
    let mut dumps = Vec::new();
    for id in lab
        .docker("m1", &["service", "ls", "-q", "--filter", label])
        .unwrap()
        .lines()
    {
        dumps.push(lab.docker("m1", &["service", "inspect", id]).unwrap());
    }
    for id in lab
        .docker("m1", &["secret", "ls", "-q", "--filter", label])
        .unwrap()
        .lines()
    {
        let secret = lab.docker("m1", &["secret", "inspect", id]).unwrap();
        assert!(!secret.contains("\"Data\""), "{secret}");
        dumps.push(secret);
    }
    for node in ["m1", "w1"] {
        for id in lab
            .docker(node, &["ps", "-q", "--filter", label])
            .unwrap()
            .lines()
        {
            dumps.push(lab.docker(node, &["inspect", id]).unwrap());
        }
    }
    assert!(
        dumps.len() >= 4,
        "service, secret, helper and relay containers: {}",
        dumps.len()
    );
    // A 32-byte key in base64 is a 44-character token ending in `=`.
    for dump in &dumps {
        let tokens = dump.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c)));
        for t in tokens {
            let looks_like_key =
                t.len() == 44 && t.ends_with('=') && t.chars().any(|c| c.is_ascii_digit());
            assert!(!looks_like_key, "a key-like token {t} in:\n{dump}");
        }
    }
    drop(child.stdin.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_clean();
}

/// The usual production setup: the manager is drained. A drained node
/// cannot attach containers to an overlay network, and the default relay
/// link needs none.
#[test]
fn drained_manager() {
    let _serial = serial();
    let lab = lab();
    svc();
    lab.drain("m1").unwrap();
    let _activate = Restore(|| {
        let _ = support::lab().set_availability("m1", "active");
    });
    let tasks = xtask::fixture::wait_running(lab, "it-busybox", 3).unwrap();
    let t = tasks.iter().find(|t| t.node != "m1").unwrap();
    let target = format!("it-busybox.{}", t.slot.unwrap());
    // Direct, and through a relay container on the drained manager.
    for link in [&[][..], &["--relay-link", "host"]] {
        let mut args = link.to_vec();
        args.extend(["-i", &target, "sh", "-c", "cat; echo $((6*7))"]);
        let mut child = swarm_exec_cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{link:?}");
        assert_eq!(out.stdout, b"piped\n42\n", "{link:?}");
    }
    // The overlay link is refused there, with the reason and what to do.
    let r = swarm_exec(&[
        "--transport",
        "relay",
        "--relay-link",
        "overlay",
        &target,
        "true",
    ]);
    r.assert_error("drained");
    assert_clean();
}

/// A machine that does not reach the workers (a firewall between the
/// operator and the nodes): the default goes through a relay container on
/// the manager, says so with `-v`, and the session works as ever.
#[test]
fn walled_off_client_goes_through_a_relay_container() {
    let _serial = serial();
    let target = worker_target();
    let lab = lab();
    lab.wall_off("w1").unwrap();
    let _unwall = Restore(|| {
        let _ = support::lab().unwall("w1");
    });
    let mut child = swarm_exec_cmd(&["-v", "-i", &target, "sh", "-c", "cat; exit 5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"over the relay\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert_eq!(out.stdout, b"over the relay\n");
    assert!(
        stderr.contains("does not reach w1") && stderr.contains("relay container"),
        "{stderr}"
    );
    // Forcing the direct link there fails with the reason and what to do.
    let r = swarm_exec(&[
        "--transport",
        "relay",
        "--relay-link",
        "direct",
        &target,
        "true",
    ]);
    r.assert_error("--relay-link host");
    assert_clean();
}

/// The helper takes exactly one peer, the one that proves it holds the
/// session key: a wrong key and garbage are dropped while it keeps waiting,
/// the right key gets the session, and after that nobody gets in. This
/// test plays the peer itself, against a live helper on w1.
#[test]
fn the_helper_accepts_one_peer_with_the_key() {
    use swarm_exec_channel::{Key, RecordReader};
    use swarm_exec_proto::frame::{Decoder, Kind};

    let _serial = serial();
    let target = worker_target();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = rt
        .block_on(swarm_exec::Engine::connect(Some(&lab().docker_host())))
        .unwrap();
    let task = rt
        .block_on(swarm_exec::target::resolve(&engine, &target, false))
        .unwrap();
    let session = swarm_exec::Session::new();
    let spec = swarm_exec::ExecSpec {
        cmd: vec!["echo".into(), "one peer".into()],
        ..Default::default()
    };
    let (addr, key) = rt
        .block_on(swarm_exec::transport::relay::listening_helper(
            &engine, &session, &task, &spec,
        ))
        .unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    let dial = || {
        let c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    };

    // A wrong key: the handshake fails and the helper drops the peer.
    let mut wrong = dial();
    let err = swarm_exec_channel::connect(&mut wrong, &Key::generate().unwrap());
    assert!(err.is_err(), "a wrong key was accepted");
    // Garbage after the hello: dropped too (EOF or a reset, never data).
    let mut garbage = dial();
    let _ = garbage.write_all(&[0xA5; 4096]);
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest);
    assert!(rest.len() <= 64, "{} bytes answered garbage", rest.len());

    // The right key still gets in, and gets the command's output and status.
    let mut peer = dial();
    let mut channel = swarm_exec_channel::connect(&mut peer, &key).unwrap();
    let (mut reader, mut decoder) = (RecordReader::new(), Decoder::new());
    let (mut stdout, mut code) = (Vec::new(), None);
    while code.is_none() {
        let plain = channel
            .read_record(&mut peer, &mut reader)
            .unwrap()
            .expect("the session ended before the exit code");
        let mut input: &[u8] = &plain;
        while let Some(f) = decoder.decode(&mut input) {
            let f = f.unwrap();
            match f.kind {
                Kind::Stdout => stdout.extend_from_slice(&f.payload),
                Kind::Exit => code = f.exit_code(),
                _ => {}
            }
        }
    }
    assert_eq!((stdout.as_slice(), code), (&b"one peer\n"[..], Some(0)));

    // Nobody else: the helper stopped listening once its peer was in. A
    // connection is refused, or closed without a hello.
    if let Ok(mut second) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        second
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut hello = Vec::new();
        let _ = second.read_to_end(&mut hello);
        assert!(hello.is_empty(), "a second peer got a hello");
    }
    drop(peer);
    // The helper says whom it turned away (in its logs, which the CLI
    // follows).
    let filter = format!("label=swarm-exec.session={}", session.id);
    let service = lab()
        .docker("m1", &["service", "ls", "-q", "--filter", &filter])
        .unwrap();
    wait_for(
        "the refusals in the helper's logs",
        Duration::from_secs(20),
        || {
            // The helper's stderr comes out on the docker CLI's stderr.
            let logs = Command::new(xtask::lab::docker_cli())
                .args(["-H", &lab().docker_host(), "service", "logs", "--raw"])
                .arg(service.trim())
                .output()
                .unwrap();
            String::from_utf8_lossy(&logs.stderr)
                .matches("refused a peer")
                .count()
                == 2
        },
    );
    rt.block_on(session.cleanup(&engine)).unwrap();
    assert_clean();
}
