//! `serve`: the node end of the relay transport (interactive sessions).
//!
//! The helper listens on a TCP port, accepts exactly one peer that proves
//! it holds the session key (`swarm-exec-channel`), stops listening, and
//! bridges one exec (stdin, TTY) over the encrypted channel using
//! `proto::frame` frames: stdin, stdin EOF, resize and signal come in;
//! stdout, stderr and the exit code go out. The exit code travels in-band,
//! so it is exact even when the node's logs are lost.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarm_exec_channel::{Key, Opener, RecordReader, Sealer};
use swarm_exec_proto::frame::{self, Kind};

use crate::exec::{self, ExecSpec};
use crate::kill;
use crate::mux::{Demux, Stream};
use crate::sink::{Sink, EXIT_HELPER_FAILED};

/// How long the helper waits for its one authenticated peer.
const ACCEPT_DEADLINE: Duration = Duration::from_secs(60);
/// How long one peer may take to complete the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the helper proves it is alive while the command is quiet.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// The most one read of the exec stream takes (one record's worth).
const READ_CHUNK: usize = swarm_exec_channel::MAX_PLAINTEXT - 64;
/// With a TTY, how long to wait for the initial window size before starting.
const FIRST_RESIZE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, PartialEq, Eq)]
pub struct ServeConfig {
    pub socket: PathBuf,
    pub container: String,
    pub spec: ExecSpec,
    pub port: u16,
    pub key_file: PathBuf,
    pub session: String,
    /// The overlay network the relay reaches the helper on; without one,
    /// the port is published on the node's own address.
    pub network: Option<String>,
}

/// The encrypted writer shared by the output thread and the control path.
struct Out {
    sealer: Sealer,
    conn: TcpStream,
    /// Frames to send, then the records that carry them: both reused, so
    /// the output path allocates nothing per chunk.
    plain: Vec<u8>,
    sealed: Vec<u8>,
}

/// Encodes frames with `encode` and sends them sealed, in one write.
fn send_with(
    out: &Mutex<Out>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let mut g = match out.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let Out {
        sealer,
        conn,
        plain,
        sealed,
    } = &mut *g;
    plain.clear();
    encode(plain)?;
    sealed.clear();
    sealer.seal(plain, sealed);
    conn.write_all(sealed).map_err(|e| e.to_string())
}

fn send(out: &Mutex<Out>, encode: impl FnOnce(&mut Vec<u8>)) -> Result<(), String> {
    send_with(out, |b| {
        encode(b);
        Ok(())
    })
}

/// `what` followed by an error's text, without `format!` (size matters here).
fn msg(what: &str, e: &dyn std::fmt::Display) -> String {
    let mut m = String::from(what);
    m.push_str(&e.to_string());
    m
}

/// Runs `serve`; returns the process exit status.
pub fn run(cfg: &ServeConfig) -> i32 {
    crate::terminate_on_sigterm(cfg.socket.clone(), cfg.session.clone());
    let logs = Sink::new(std::io::stdout());
    match serve(cfg, &logs) {
        Ok(code) => code,
        Err(msg) => {
            let _ = std::io::stderr().write_all(msg.as_bytes());
            logs.failure(0, &msg);
            EXIT_HELPER_FAILED
        }
    }
}

fn serve<W: Write>(cfg: &ServeConfig, logs: &Sink<W>) -> Result<i32, String> {
    let key = std::fs::read(&cfg.key_file)
        .map_err(|e| msg("reading the session key: ", &e))
        .and_then(|k| Key::from_bytes(&k).map_err(|e| msg("the session key: ", &e)))?;
    // A parsed address: `bind("0.0.0.0:N")` would link musl's resolver.
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], cfg.port)))
        .map_err(|e| msg("listening: ", &e))?;
    let authenticated = Arc::new(AtomicBool::new(false));
    {
        // No listener outlives its session: give up if nobody proves the key.
        let authenticated = authenticated.clone();
        std::thread::spawn(move || {
            std::thread::sleep(ACCEPT_DEADLINE);
            if !authenticated.load(Ordering::SeqCst) {
                let _ = std::io::stderr()
                    .write_all(b"swarm-exec-relay: no authenticated peer within 60 s\n");
                std::process::exit(EXIT_HELPER_FAILED);
            }
        });
    }
    // Tell the CLI (through the service logs) where to connect.
    logs.listening(0, &own_address(cfg)?);
    let (conn, channel) = loop {
        let (mut conn, _) = listener.accept().map_err(|e| msg("accepting: ", &e))?;
        let _ = conn.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
        match swarm_exec_channel::accept(&mut conn, &key) {
            Ok(ch) => break (conn, ch),
            // Anyone else is dropped; keep waiting for the real peer.
            Err(e) => {
                let _ = std::io::stderr()
                    .write_all(msg("swarm-exec-relay: refused a peer: ", &e).as_bytes());
            }
        }
    };
    authenticated.store(true, Ordering::SeqCst);
    drop(listener);
    let _ = conn.set_read_timeout(None);
    let _ = conn.set_nodelay(true);
    let (sealer, opener) = channel.split();
    let out = Arc::new(Mutex::new(Out {
        sealer,
        conn: conn.try_clone().map_err(|e| e.to_string())?,
        plain: Vec::with_capacity(READ_CHUNK + 64),
        sealed: Vec::with_capacity(READ_CHUNK + 128),
    }));
    let mut control = None;
    let result = bridge(cfg, conn, opener, &out, &mut control);
    let code = match &result {
        Ok(code) => *code,
        Err(_) => EXIT_HELPER_FAILED,
    };
    if let Err(msg) = &result {
        let _ = send(&out, |b| frame::encode_failure(0, msg, b));
    }
    // Close our half and wait for the peer to close its own: when this
    // process exits, its container's network namespace goes, and with it
    // whatever output the kernel has not sent yet.
    if let Ok(g) = out.lock() {
        let _ = g.conn.shutdown(Shutdown::Write);
    }
    if let Some(control) = control {
        let _ = control.join();
    }
    result.map(|_| code)
}

/// Where the relay can reach this helper: `IP:PORT` on the overlay
/// network, or `:HOSTPORT` when the port is published on the node.
fn own_address(cfg: &ServeConfig) -> Result<String, String> {
    let body = own_container_json(&cfg.socket)?;
    let settings = crate::json::member(&body, "NetworkSettings").ok_or("no NetworkSettings")?;
    let port = cfg.port.to_string();
    if let Some(net) = &cfg.network {
        let ip = crate::json::member(settings, "Networks")
            .and_then(|n| crate::json::member(n, net))
            .and_then(|n| crate::json::member(n, "IPAddress"))
            .and_then(crate::json::string)
            .filter(|ip| !ip.is_empty())
            .ok_or("the helper has no address on the relay network")?;
        return Ok(ip + ":" + &port);
    }
    // "Ports": {"7070/tcp": [{"HostIp": "0.0.0.0", "HostPort": "30001"}]}
    let key = port.clone() + "/tcp";
    let mapping = crate::json::member(settings, "Ports")
        .and_then(|p| crate::json::member(p, &key))
        .ok_or("the helper's port is not published")?;
    let text = String::from_utf8_lossy(mapping);
    let host_port = text
        .split("\"HostPort\":")
        .nth(1)
        .and_then(|rest| rest.trim_start().strip_prefix('"'))
        .and_then(|rest| rest.split('"').next())
        .filter(|p| !p.is_empty())
        .ok_or("the helper's port has no host port")?;
    Ok(String::from(":") + host_port)
}

/// `GET /containers/<this container>/json`: the helper's hostname is its
/// container's short ID, as for every swarm task on a network of its own
/// (this helper's is never the host's: it publishes a port).
fn own_container_json(socket: &Path) -> Result<Vec<u8>, String> {
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map_err(|e| String::from("reading /etc/hostname: ") + &e.to_string())?;
    exec::container_json(socket, hostname.trim())
}

/// Control frames read before the exec exists.
struct Early {
    resize: Option<(u16, u16)>,
    pending: Vec<u8>,
}

/// Runs the exec over the channel. `control_thread` gets the thread that
/// reads the peer; it ends when the peer closes.
fn bridge(
    cfg: &ServeConfig,
    conn: TcpStream,
    mut opener: Opener,
    out: &Arc<Mutex<Out>>,
    control_thread: &mut Option<std::thread::JoinHandle<()>>,
) -> Result<i32, String> {
    let mut reader = RecordReader::new();
    let mut rconn = conn;
    let mut decoder = frame::Decoder::new();
    // With a TTY, the first frame is the window size: starting the shell
    // with it makes the first prompt right.
    let mut early = Early {
        resize: None,
        pending: Vec::new(),
    };
    if cfg.spec.tty {
        let _ = rconn.set_read_timeout(Some(FIRST_RESIZE_WAIT));
        if let Ok(Some(plain)) = opener.read_record(&mut rconn, &mut reader) {
            let mut input: &[u8] = &plain;
            while let Some(Ok(f)) = decoder.decode(&mut input) {
                match f.resize() {
                    Some(size) if f.kind == Kind::Resize => early.resize = Some(size),
                    _ => f
                        .encode_into(&mut early.pending)
                        .map_err(|e| e.to_string())?,
                }
            }
        }
        let _ = rconn.set_read_timeout(None);
    }
    let id = exec::create(&cfg.socket, &cfg.container, &cfg.spec)?;
    crate::RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(id.clone());
    let (stream, first) = exec::start_attached(&cfg.socket, &id, cfg.spec.tty)?;
    if let Some((rows, cols)) = early.resize {
        let _ = exec::resize(&cfg.socket, &id, rows, cols);
    }
    send(out, |b| frame::encode_ready(0, b)).map_err(|e| e.to_string())?;
    let exec_in = stream.try_clone().map_err(|e| e.to_string())?;
    let done = Arc::new(AtomicBool::new(false));

    // Peer → exec: stdin, stdin EOF, resize, signals.
    let control = {
        let socket = cfg.socket.clone();
        let id = id.clone();
        let session = cfg.session.clone();
        let done = done.clone();
        let pending = std::mem::take(&mut early.pending);
        std::thread::spawn(move || {
            let mut exec_in = exec_in;
            let mut handle = |plain: &[u8], exec_in: &mut UnixStream| -> bool {
                let mut input = plain;
                while let Some(f) = decoder.decode(&mut input) {
                    let Ok(f) = f else { return false };
                    match f.kind {
                        // A command that closed its stdin gets no more;
                        // its output still flows.
                        Kind::Stdin => {
                            let _ = exec_in.write_all(&f.payload);
                        }
                        Kind::StdinEof => {
                            let _ = exec_in.shutdown(Shutdown::Write);
                        }
                        Kind::Resize => {
                            if let Some((rows, cols)) = f.resize() {
                                let _ = exec::resize(&socket, &id, rows, cols);
                            }
                        }
                        // The session is ending (SIGINT, SIGTERM, a timeout
                        // on the CLI's side): signal, then make sure.
                        Kind::Signal => {
                            if let Some(sig) = f.signal() {
                                let _ = kill::signal_exec(&socket, &id, i32::from(sig), &session);
                                // Inline: the session is ending anyway.
                                escalate(&socket, &id, &session, &done);
                            }
                        }
                        _ => {}
                    }
                }
                true
            };
            let mut decoder_ok = handle(&pending, &mut exec_in);
            while decoder_ok {
                match opener.read_record(&mut rconn, &mut reader) {
                    Ok(Some(plain)) => decoder_ok = handle(&plain, &mut exec_in),
                    _ => break,
                }
            }
            // The peer is gone (or broke the protocol) while the command
            // still runs: end the command, then the session.
            if !done.load(Ordering::SeqCst) {
                terminate(&socket, &id, &session, &done);
            }
        })
    };
    *control_thread = Some(control);

    // Exec → peer: output, then the exit code.
    pump(stream, &first, cfg.spec.tty, out)?;
    done.store(true, Ordering::SeqCst);
    let code = exec::wait_exit_code(&cfg.socket, &id)?;
    send(out, |b| frame::encode_exit(0, code as i32, b)).map_err(|e| e.to_string())?;
    Ok(code.clamp(0, 255) as i32)
}

/// Ends a command whose peer went away: SIGTERM, then SIGKILL if it lingers.
fn terminate(socket: &Path, id: &str, session: &str, done: &AtomicBool) {
    let _ = kill::signal_exec(socket, id, libc::SIGTERM, session);
    escalate(socket, id, session, done);
}

/// SIGKILL for a command still running 2 s after it was signalled.
fn escalate(socket: &Path, id: &str, session: &str, done: &AtomicBool) {
    for _ in 0..20 {
        if done.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = kill::signal_exec(socket, id, libc::SIGKILL, session);
}

/// Streams the exec's output to the peer as frames.
///
/// Everything one read returns goes out as one record in one write,
/// however many stream frames it holds: per-chunk costs (a seal, a TCP
/// send, and on the far side a wake-up and a write) dominate at speed.
fn pump(mut stream: UnixStream, first: &[u8], tty: bool, out: &Mutex<Out>) -> Result<(), String> {
    let mut demux = Demux::new();
    let bad = || String::from("unexpected data in the exec stream (not a multiplexed stream)");
    let mut feed = |data: &[u8]| -> Result<(), String> {
        send_with(out, |b| {
            if tty {
                return frame::encode_data(Kind::Stdout, 0, data, b).map_err(|e| e.to_string());
            }
            let forward = |s: Stream, piece: &[u8]| {
                let kind = match s {
                    Stream::Stdout => Kind::Stdout,
                    Stream::Stderr => Kind::Stderr,
                    Stream::SystemErr => Kind::Failure,
                };
                frame::encode_data(kind, 0, piece, b).map_err(|e| e.to_string())
            };
            demux.feed(data, forward, bad)
        })
        .map_err(|e| msg("sending output: ", &e))
    };
    if !first.is_empty() {
        feed(first)?;
    }
    // A heartbeat (an empty stdout frame) whenever the command is quiet for
    // a while: a node that dies takes its end of the connection with it and
    // sends no reset, so the CLI counts silence instead.
    let _ = stream.set_read_timeout(Some(HEARTBEAT));
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => feed(&buf[..n])?,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                send(out, |b| {
                    let _ = frame::encode(Kind::Stdout, 0, &[], b);
                })
                .map_err(|e| msg("sending a heartbeat: ", &e))?;
            }
            Err(e) => return Err(msg("reading the exec stream: ", &e)),
        }
    }
}
