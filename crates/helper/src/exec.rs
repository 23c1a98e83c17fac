//! Running one exec through the Docker Engine API: create, start (streaming
//! the multiplexed output as frames), inspect for the exit code.

use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use swarm_exec_proto::line::Kind;

use crate::http::{self, Conn, Response};
use crate::json;
use crate::kill;
use crate::mux::{Demux, Stream};
use crate::sink::Sink;

/// What to run, identical for every target.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `K=V` entries.
    pub env: Vec<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--workdir`.
    pub workdir: Option<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// Attach the command's stdin (`-i`).
    pub stdin: bool,
    /// Allocate a TTY (`-t`).
    pub tty: bool,
}

/// How often, and how long apart, to ask for the exit code while the engine
/// still reports the exec as running (about 2 s in total).
const INSPECT_TRIES: u32 = 40;
const INSPECT_PAUSE: Duration = Duration::from_millis(50);
/// Largest engine error message kept from the stream (stream 3).
const MAX_SYSERR: usize = 4096;

/// The body of `POST /containers/{id}/exec`.
pub fn create_body(spec: &ExecSpec) -> String {
    let mut b = String::with_capacity(128);
    b.push_str(r#"{"AttachStdin":"#);
    b.push_str(if spec.stdin { "true" } else { "false" });
    b.push_str(r#","AttachStdout":true,"AttachStderr":true,"Tty":"#);
    b.push_str(if spec.tty { "true" } else { "false" });
    b.push_str(r#","Cmd":"#);
    json::push_string_array(&mut b, &spec.cmd);
    if !spec.env.is_empty() {
        b.push_str(r#","Env":"#);
        json::push_string_array(&mut b, &spec.env);
    }
    if let Some(u) = &spec.user {
        b.push_str(r#","User":"#);
        json::push_string(&mut b, u);
    }
    if let Some(w) = &spec.workdir {
        b.push_str(r#","WorkingDir":"#);
        json::push_string(&mut b, w);
    }
    b.push_str(r#","Privileged":"#);
    b.push_str(if spec.privileged { "true" } else { "false" });
    b.push('}');
    b
}

/// The message of an engine error response: its JSON `message`, or the
/// status and the start of the body.
pub fn engine_error(resp: &Response) -> String {
    if let Some(m) = json::member(&resp.body, "message").and_then(json::string) {
        if !m.is_empty() {
            return m;
        }
    }
    let mut m = String::from("Docker engine answered HTTP ");
    m.push_str(&resp.status.to_string());
    let text = String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned();
    let text = text.trim();
    if !text.is_empty() {
        m.push_str(": ");
        m.push_str(text);
    }
    m
}

pub fn exec_path(id: &str, tail: &str) -> String {
    let mut p = String::from("/exec/");
    http::push_path_segment(&mut p, id);
    p.push_str(tail);
    p
}

/// Creates the exec in `container`; returns its id.
pub fn create(socket: &Path, container: &str, spec: &ExecSpec) -> Result<String, String> {
    let mut path = String::from("/containers/");
    http::push_path_segment(&mut path, container);
    path.push_str("/exec");
    let body = create_body(spec);
    let resp = Conn::open(socket)?.request("POST", &path, Some(body.as_bytes()))?;
    if !(200..300).contains(&resp.status) {
        return Err(engine_error(&resp));
    }
    json::member(&resp.body, "Id")
        .and_then(json::string)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| String::from("the engine's answer to exec create has no Id"))
}

/// Demultiplexes the exec stream (`first` is what was read with the
/// response head) into frames for `target` until the engine closes it.
pub fn pump<W: Write>(
    mut stream: impl Read,
    first: &[u8],
    target: u32,
    sink: &Sink<W>,
) -> Result<(), String> {
    let mut demux = Demux::new();
    let mut syserr: Vec<u8> = Vec::new();
    let mut on_piece = |s: Stream, piece: &[u8]| -> Result<(), String> {
        match s {
            Stream::Stdout => sink.data(target, Kind::Stdout, piece),
            Stream::Stderr => sink.data(target, Kind::Stderr, piece),
            Stream::SystemErr => {
                let room = MAX_SYSERR.saturating_sub(syserr.len());
                syserr.extend_from_slice(&piece[..piece.len().min(room)]);
            }
        }
        Ok(())
    };
    let bad = || String::from("unexpected data in the exec stream (not a multiplexed stream)");
    demux.feed(first, &mut on_piece, bad)?;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                let mut m = String::from("reading the exec stream: ");
                m.push_str(&e.to_string());
                return Err(m);
            }
        };
        demux.feed(&buf[..n], &mut on_piece, bad)?;
    }
    if !syserr.is_empty() {
        return Err(String::from_utf8_lossy(&syserr).trim_end().to_string());
    }
    if !demux.at_boundary() {
        return Err("the exec stream ended in the middle of a frame".into());
    }
    Ok(())
}

/// Starts the exec and streams its output.
fn start<W: Write>(socket: &Path, id: &str, target: u32, sink: &Sink<W>) -> Result<(), String> {
    let path = exec_path(id, "/start");
    match Conn::open(socket)?.start_stream(&path, br#"{"Detach":false,"Tty":false}"#) {
        Ok((stream, first, _status)) => {
            sink.ready(target);
            pump(stream, &first, target, sink)
        }
        Err(Ok(resp)) => Err(engine_error(&resp)),
        Err(Err(e)) => Err(e),
    }
}

/// Starts an exec attached and returns the hijacked stream with the bytes
/// already read past the response head (with a TTY the stream is raw, else
/// multiplexed).
pub fn start_attached(
    socket: &Path,
    id: &str,
    tty: bool,
) -> Result<(std::os::unix::net::UnixStream, Vec<u8>), String> {
    let path = exec_path(id, "/start");
    let body: &[u8] = if tty {
        br#"{"Detach":false,"Tty":true}"#
    } else {
        br#"{"Detach":false,"Tty":false}"#
    };
    match Conn::open(socket)?.start_stream(&path, body) {
        Ok((stream, first, _status)) => Ok((stream, first)),
        Err(Ok(resp)) => Err(engine_error(&resp)),
        Err(Err(e)) => Err(e),
    }
}

/// Starts an exec detached (`-d`): the engine runs it and answers at once.
pub fn start_detached(socket: &Path, id: &str) -> Result<(), String> {
    let path = exec_path(id, "/start");
    let resp =
        Conn::open(socket)?.request("POST", &path, Some(br#"{"Detach":true,"Tty":false}"#))?;
    if !(200..300).contains(&resp.status) {
        return Err(engine_error(&resp));
    }
    Ok(())
}

/// Resizes an exec's TTY.
pub fn resize(socket: &Path, id: &str, rows: u16, cols: u16) -> Result<(), String> {
    let mut path = exec_path(id, "/resize?h=");
    path.push_str(&rows.to_string());
    path.push_str("&w=");
    path.push_str(&cols.to_string());
    let resp = Conn::open(socket)?.request("POST", &path, None)?;
    if !(200..300).contains(&resp.status) {
        return Err(engine_error(&resp));
    }
    Ok(())
}

/// `GET /containers/{id}/json`: the container's inspect result.
pub fn container_json(socket: &Path, id: &str) -> Result<Vec<u8>, String> {
    let mut path = String::from("/containers/");
    http::push_path_segment(&mut path, id);
    path.push_str("/json");
    let resp = Conn::open(socket)?.request("GET", &path, None)?;
    if resp.status != 200 {
        return Err(engine_error(&resp));
    }
    Ok(resp.body)
}

/// A running exec's host PID and its container's ID (from its inspect
/// result). An exec that has ended is an error: the engine keeps reporting
/// its old PID, which may by now be another process's.
pub fn process(socket: &Path, id: &str) -> Result<(i64, String), String> {
    let resp = Conn::open(socket)?.request("GET", &exec_path(id, "/json"), None)?;
    if resp.status != 200 {
        return Err(engine_error(&resp));
    }
    if json::member(&resp.body, "Running") != Some(&b"true"[..]) {
        return Err("the exec has ended".into());
    }
    let pid = json::member(&resp.body, "Pid")
        .and_then(json::int)
        .filter(|&p| p > 0)
        .ok_or("the exec has no process")?;
    let container = json::member(&resp.body, "ContainerID")
        .and_then(json::string)
        .filter(|c| !c.is_empty())
        .ok_or("the exec has no container")?;
    Ok((pid, container))
}

/// What `GET /exec/{id}/json` says about the exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum ExitState {
    /// The process has exited with this code.
    Exited(i64),
    /// Still running (or not yet reaped): ask again.
    Running,
}

/// Interprets an exec inspect body.
pub fn parse_inspect(body: &[u8]) -> Result<ExitState, String> {
    if json::member(body, "Running") == Some(b"true") {
        return Ok(ExitState::Running);
    }
    match json::member(body, "ExitCode") {
        Some(b"null") => Ok(ExitState::Running),
        Some(raw) => json::int(raw)
            .map(ExitState::Exited)
            .ok_or_else(|| String::from("the engine reported a non-integer ExitCode")),
        None => Err("the engine's exec inspect answer has no ExitCode".into()),
    }
}

/// Asks the engine for the exit code, retrying while it reports the exec as
/// still running.
pub fn wait_exit_code(socket: &Path, id: &str) -> Result<i64, String> {
    let path = exec_path(id, "/json");
    for attempt in 0..INSPECT_TRIES {
        if attempt > 0 {
            std::thread::sleep(INSPECT_PAUSE);
        }
        let resp = Conn::open(socket)?.request("GET", &path, None)?;
        if resp.status != 200 {
            return Err(engine_error(&resp));
        }
        if let ExitState::Exited(code) = parse_inspect(&resp.body)? {
            return Ok(code);
        }
    }
    Err("the engine still reports the exec as running after its output ended".into())
}

/// How [`run`] runs each exec, the same for every target.
#[derive(Clone, Copy, Default)]
pub struct RunOptions<'a> {
    /// Only start it (exit code 0 once started), as `docker exec -d`.
    pub detach: bool,
    /// The exec's ID is in here while it runs (for SIGTERM to pass on).
    pub running: Option<&'a std::sync::Mutex<Vec<String>>>,
    /// Send the command SIGTERM once it has run this long.
    pub timeout: Option<Duration>,
    /// Labels the container that delivers that signal.
    pub session: &'a str,
}

/// Runs the exec in `container` for `target`: create, start and stream,
/// inspect. Returns the exit code; the caller writes the final frame.
pub fn run<W: Write>(
    socket: &Path,
    container: &str,
    spec: &ExecSpec,
    target: u32,
    sink: &Sink<W>,
    opts: RunOptions,
) -> Result<i64, String> {
    let id = create(socket, container, spec)?;
    if opts.detach {
        start_detached(socket, &id)?;
        sink.ready(target);
        return Ok(0);
    }
    let track = |add: bool| {
        let Some(running) = opts.running else { return };
        let mut r = running.lock().unwrap_or_else(|p| p.into_inner());
        if add {
            r.push(id.clone());
        } else {
            r.retain(|x| *x != id);
        }
    };
    track(true);
    let streamed = std::thread::scope(|s| {
        // The timeout's watchdog: it wakes when the exec ends (the sender
        // is dropped) or when the time is up, whichever comes first.
        let (ended, watch) = std::sync::mpsc::channel::<()>();
        if let Some(limit) = opts.timeout {
            let id = &id;
            // Without a thread (none left), the CLI still reports the
            // timeout; the command then ends with the session.
            let _ = std::thread::Builder::new().spawn_scoped(s, move || {
                if watch.recv_timeout(limit) == Err(RecvTimeoutError::Timeout) {
                    let _ = kill::signal_exec(socket, id, libc::SIGTERM, opts.session);
                }
            });
        }
        let streamed = start(socket, &id, target, sink);
        drop(ended);
        streamed
    });
    track(false);
    streamed?;
    wait_exit_code(socket, &id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_exec_proto::line::{Decoded, LineDecoder};

    #[test]
    fn create_bodies() {
        let spec = ExecSpec {
            cmd: vec!["sh".into(), "-c".into(), "echo \"hi\"\n".into()],
            ..ExecSpec::default()
        };
        assert_eq!(
            create_body(&spec),
            r#"{"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"Cmd":["sh","-c","echo \"hi\"\u000a"],"Privileged":false}"#
        );
        let spec = ExecSpec {
            cmd: vec!["id".into()],
            env: vec!["A=1".into(), "B=x\\y".into()],
            user: Some("1000:1000".into()),
            workdir: Some("/tmp".into()),
            privileged: true,
            stdin: false,
            tty: false,
        };
        assert_eq!(
            create_body(&spec),
            r#"{"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"Cmd":["id"],"Env":["A=1","B=x\\y"],"User":"1000:1000","WorkingDir":"/tmp","Privileged":true}"#
        );
    }

    #[test]
    fn engine_errors() {
        let r = Response {
            status: 404,
            body: b"{\"message\":\"No such container: nope\"}\n".to_vec(),
        };
        assert_eq!(engine_error(&r), "No such container: nope");
        let r = Response {
            status: 502,
            body: b"  bad gateway\n".to_vec(),
        };
        assert_eq!(
            engine_error(&r),
            "Docker engine answered HTTP 502: bad gateway"
        );
        let r = Response {
            status: 500,
            body: Vec::new(),
        };
        assert_eq!(engine_error(&r), "Docker engine answered HTTP 500");
    }

    #[test]
    fn inspect_bodies() {
        let running = br#"{"CanRemove":false,"ContainerID":"c","DetachKeys":"","ExitCode":null,"ID":"e","OpenStderr":true,"OpenStdin":false,"OpenStdout":true,"ProcessConfig":{"arguments":[],"entrypoint":"sleep","privileged":false,"tty":false},"Running":true,"Pid":42}"#;
        assert_eq!(parse_inspect(running), Ok(ExitState::Running));
        let done = br#"{"ExitCode":42,"Running":false,"ProcessConfig":{"ExitCode":1}}"#;
        assert_eq!(parse_inspect(done), Ok(ExitState::Exited(42)));
        assert_eq!(
            parse_inspect(br#"{"Running":false,"ExitCode":null}"#),
            Ok(ExitState::Running)
        );
        assert!(parse_inspect(br#"{"Running":false}"#).is_err());
        assert!(parse_inspect(br#"{"ExitCode":"x"}"#).is_err());
        assert!(parse_inspect(b"garbage").is_err());
    }

    /// Feeds `data` through `pump` in reads of `size` bytes.
    struct Chunked<'a> {
        data: &'a [u8],
        size: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.size.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn mux_frame(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn frames(bytes: &[u8]) -> Vec<swarm_exec_proto::line::Frame> {
        let mut dec = LineDecoder::new();
        dec.push(bytes);
        let mut v = Vec::new();
        while let Some(r) = dec.next() {
            match r {
                Ok(Decoded::Frame(f)) => v.push(f),
                other => panic!("{other:?}"),
            }
        }
        v
    }

    #[test]
    fn pump_demuxes_at_awkward_splits() {
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = mux_frame(1, b"out\n");
        wire.extend(mux_frame(2, b"err\n"));
        wire.extend(mux_frame(1, &big));
        for first_len in [0usize, 3, 8, 9, 13, 30] {
            for size in [1usize, 5, 8, 4097, 1 << 20] {
                let sink = Sink::new(Vec::new());
                let (first, rest) = wire.split_at(first_len);
                pump(Chunked { data: rest, size }, first, 2, &sink).unwrap();
                let fs = frames(&sink.into_inner());
                let mut out = Vec::new();
                let mut err = Vec::new();
                for (i, f) in fs.iter().enumerate() {
                    assert_eq!(f.seq, i as u64);
                    assert_eq!(f.target, 2);
                    match f.kind {
                        Kind::Stdout => out.extend_from_slice(&f.payload),
                        Kind::Stderr => err.extend_from_slice(&f.payload),
                        k => panic!("{k:?}"),
                    }
                }
                let mut want = b"out\n".to_vec();
                want.extend_from_slice(&big);
                assert_eq!(out, want, "first {first_len} size {size}");
                assert_eq!(err, b"err\n");
            }
        }
    }

    #[test]
    fn pump_errors() {
        let sink = Sink::new(Vec::new());
        let wire = mux_frame(1, b"abc");
        let r = pump(
            Chunked {
                data: &wire[..9],
                size: 4,
            },
            &[],
            0,
            &sink,
        );
        assert_eq!(
            r,
            Err("the exec stream ended in the middle of a frame".into())
        );
        let r = pump(
            Chunked {
                data: b"plain text",
                size: 4,
            },
            &[],
            0,
            &sink,
        );
        assert!(r.unwrap_err().contains("not a multiplexed stream"));
        let mut wire = mux_frame(1, b"partial output");
        wire.extend(mux_frame(3, b"OCI runtime exec failed\n"));
        let sink = Sink::new(Vec::new());
        let r = pump(
            Chunked {
                data: &wire,
                size: 7,
            },
            &[],
            0,
            &sink,
        );
        assert_eq!(r, Err("OCI runtime exec failed".into()));
        let fs = frames(&sink.into_inner());
        let out: Vec<u8> = fs.iter().flat_map(|f| f.payload.clone()).collect();
        assert_eq!(out, b"partial output");
    }

    /// A response with a `Content-Length` header.
    fn resp(status: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    /// `(request head, request body)` of every connection the fake engine
    /// served.
    type Seen = Vec<(String, Vec<u8>)>;

    /// A scripted fake engine on a Unix socket: answers each connection
    /// with `respond(request line, body, call number)`.
    fn fake_engine(
        name: &str,
        respond: impl Fn(&str, &[u8], usize) -> Vec<Vec<u8>> + Send + 'static,
    ) -> (std::path::PathBuf, std::thread::JoinHandle<Seen>) {
        let mut path = std::env::temp_dir();
        path.push(format!("sxh-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (n, conn) in listener.incoming().enumerate() {
                let mut conn = conn.unwrap();
                let mut buf = Vec::new();
                let (head, start) = loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8(buf[..end].to_vec()).unwrap(), end + 4);
                    }
                    assert!(http::read_more(&mut conn, &mut buf, 4096).unwrap() > 0);
                };
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.parse().unwrap());
                while buf.len() < start + len {
                    assert!(http::read_more(&mut conn, &mut buf, 4096).unwrap() > 0);
                }
                assert!(head.contains("\r\nHost: docker\r\n"));
                let line = head.lines().next().unwrap().to_string();
                let body = buf[start..start + len].to_vec();
                let parts = respond(&line, &body, n);
                seen.push((head, body));
                for p in parts {
                    conn.write_all(&p).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
                if line.starts_with("GET /done") {
                    break;
                }
            }
            let _ = std::fs::remove_file(listener.local_addr().unwrap().as_pathname().unwrap());
            seen
        });
        (path, handle)
    }

    fn stop_engine(path: &Path) {
        let _ = Conn::open(path).unwrap().request("GET", "/done", None);
    }

    #[test]
    fn full_exec_against_fake_engine_with_200_hijack_and_chunked() {
        let (sock, engine) = fake_engine("ok", |line, _body, _n| {
            match line {
                "POST /containers/web.1%2Fx/exec HTTP/1.1" => vec![
                    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Id\"\r\n".to_vec(),
                    b"7\r\n:\"e1\"}\n\r\n0\r\n\r\n".to_vec(),
                ],
                "POST /exec/e1/start HTTP/1.1" => {
                    // Old-engine style 200 hijack; stream bytes arrive with the head.
                    let mut first = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n".to_vec();
                    first.extend(mux_frame(1, b"hello "));
                    first.extend(&mux_frame(2, b"warn\n")[..5]);
                    let mut second = mux_frame(2, b"warn\n")[5..].to_vec();
                    second.extend(mux_frame(1, b"world\n"));
                    vec![first, second]
                }
                "GET /exec/e1/json HTTP/1.1" => {
                    vec![resp("200 OK", br#"{"ID":"e1","Running":false,"ExitCode":42}"#)]
                }
                _ => vec![resp("404 Not Found", br#"{"message":"page not found"}"#)],
            }
        });
        let spec = ExecSpec {
            cmd: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["A=1".into()],
            ..ExecSpec::default()
        };
        let sink = Sink::new(Vec::new());
        assert_eq!(
            run(&sock, "web.1/x", &spec, 5, &sink, RunOptions::default()),
            Ok(42)
        );
        stop_engine(&sock);
        let seen = engine.join().unwrap();
        assert_eq!(seen[0].1, create_body(&spec).into_bytes());
        assert!(seen[1]
            .0
            .ends_with("\r\nConnection: Upgrade\r\nUpgrade: tcp"));
        assert_eq!(seen[1].1, br#"{"Detach":false,"Tty":false}"#);
        let fs = frames(&sink.into_inner());
        let kinds: Vec<Kind> = fs.iter().map(|f| f.kind).collect();
        assert_eq!(kinds[0], Kind::Ready);
        let out: Vec<u8> = fs
            .iter()
            .filter(|f| f.kind == Kind::Stdout)
            .flat_map(|f| f.payload.clone())
            .collect();
        let err: Vec<u8> = fs
            .iter()
            .filter(|f| f.kind == Kind::Stderr)
            .flat_map(|f| f.payload.clone())
            .collect();
        assert_eq!(out, b"hello world\n");
        assert_eq!(err, b"warn\n");
        assert!(fs.iter().all(|f| f.target == 5));
    }

    #[test]
    fn inspect_retries_while_running_and_errors_surface() {
        let (sock, engine) = fake_engine("retry", |line, _body, n| match line {
            "POST /containers/c/exec HTTP/1.1" => vec![resp("201 Created", br#"{"Id":"e2"}"#)],
            "POST /containers/stopped/exec HTTP/1.1" => vec![resp(
                "409 Conflict",
                br#"{"message":"Container abc is not running"}"#,
            )],
            "POST /exec/e2/start HTTP/1.1" => vec![
                b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".to_vec(),
            ],
            "GET /exec/e2/json HTTP/1.1" if n < 5 => {
                vec![resp("200 OK", br#"{"Running":true,"ExitCode":null}"#)]
            }
            "GET /exec/e2/json HTTP/1.1" => {
                vec![resp("200 OK", br#"{"Running":false,"ExitCode":0}"#)]
            }
            _ => vec![b"HTTP/1.1 500 Internal Server Error\r\n\r\noops".to_vec()],
        });
        let spec = ExecSpec {
            cmd: vec!["true".into()],
            ..ExecSpec::default()
        };
        let sink = Sink::new(Vec::new());
        assert_eq!(
            run(&sock, "c", &spec, 0, &sink, RunOptions::default()),
            Ok(0)
        );
        assert_eq!(
            run(&sock, "stopped", &spec, 1, &sink, RunOptions::default()),
            Err("Container abc is not running".into())
        );
        assert_eq!(
            run(&sock, "other", &spec, 2, &sink, RunOptions::default()),
            Err("Docker engine answered HTTP 500: oops".into())
        );
        stop_engine(&sock);
        let seen = engine.join().unwrap();
        let inspects = seen
            .iter()
            .filter(|(h, _)| h.starts_with("GET /exec/e2/json"))
            .count();
        assert_eq!(inspects, 4, "retried while running");
        let fs = frames(&sink.into_inner());
        assert_eq!(fs.len(), 1, "only the ready frame: {fs:?}");
        assert_eq!(fs[0].kind, Kind::Ready);
    }
}
