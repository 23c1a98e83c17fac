//! `sxtest`: the lab's test program.
//!
//! It is the whole content of the shell-less lab image and is also copied
//! into the busybox images, so that tests can produce exactly the same bytes
//! with or without a shell. Every mode writes with plain `write(2)` calls so
//! that what a test sees is what the program wrote, chunk for chunk.

use std::io::{Read, Write};
use std::process::ExitCode;

const USAGE: &str = "usage: sxtest serve | echo ARG... | out TEXT | err TEXT | exit N \
| interleave N | stream SEED BYTES | env NAME | pwd | id | cat | sleep SECS | kill-self SIGNAL \
| engine-name [SOCKET]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&argv) {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            eprintln!("sxtest: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(argv: &[&str]) -> Result<u8, String> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let io = |e: std::io::Error| e.to_string();
    match argv {
        [] | ["serve"] => serve(),
        ["echo", rest @ ..] => {
            out.write_all(format!("{}\n", rest.join(" ")).as_bytes())
                .map_err(io)?;
        }
        ["out", text] => out.write_all(text.as_bytes()).map_err(io)?,
        ["err", text] => err.write_all(text.as_bytes()).map_err(io)?,
        ["exit", n] => return n.parse().map_err(|_| format!("bad exit code {n:?}")),
        ["interleave", n] => {
            let n: u32 = n.parse().map_err(|_| format!("bad count {n:?}"))?;
            for i in 0..n {
                out.write_all(format!("out {i}\n").as_bytes()).map_err(io)?;
                out.flush().map_err(io)?;
                err.write_all(format!("err {i}\n").as_bytes()).map_err(io)?;
            }
        }
        ["stream", seed, bytes] => {
            let seed: u64 = seed.parse().map_err(|_| format!("bad seed {seed:?}"))?;
            let bytes: u64 = bytes.parse().map_err(|_| format!("bad size {bytes:?}"))?;
            stream(&mut out, seed, bytes).map_err(io)?;
        }
        ["env", name] => match std::env::var_os(name) {
            Some(v) => {
                use std::os::unix::ffi::OsStrExt;
                out.write_all(v.as_bytes()).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
            }
            None => return Ok(1),
        },
        ["pwd"] => {
            let dir = std::env::current_dir().map_err(io)?;
            out.write_all(format!("{}\n", dir.display()).as_bytes())
                .map_err(io)?;
        }
        ["id"] => {
            // SAFETY: getuid and getgid cannot fail and touch no memory.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            out.write_all(format!("{uid}:{gid}\n").as_bytes())
                .map_err(io)?;
        }
        ["cat"] => {
            let mut buf = vec![0u8; 64 * 1024];
            let mut stdin = std::io::stdin().lock();
            loop {
                let n = stdin.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(io)?;
            }
        }
        ["sleep", secs] => {
            let secs: f64 = secs.parse().map_err(|_| format!("bad duration {secs:?}"))?;
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
        }
        ["engine-name"] => engine_name(&mut out, "/var/run/docker.sock").map_err(io)?,
        ["engine-name", socket] => engine_name(&mut out, socket).map_err(io)?,
        ["kill-self", sig] => {
            let sig: i32 = sig.parse().map_err(|_| format!("bad signal {sig:?}"))?;
            // SAFETY: raising a signal on ourselves; the default action ends us.
            unsafe { libc::raise(sig) };
            return Err(format!("signal {sig} did not end the process"));
        }
        _ => return Err(format!("unknown arguments {argv:?}")),
    }
    out.flush().map_err(io)?;
    Ok(0)
}

/// Prints the `Name` of the engine behind a socket: inside a lab node,
/// `/var/run/docker.sock` must be that node's own engine.
fn engine_name(out: &mut impl Write, socket: &str) -> std::io::Result<()> {
    let mut conn = std::os::unix::net::UnixStream::connect(socket)?;
    conn.write_all(b"GET /info HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let name = top_level_string(body, "Name")
        .ok_or_else(|| std::io::Error::other("no Name in the engine's /info"))?;
    out.write_all(format!("{name}\n").as_bytes())
}

/// The string value of a key of the outermost JSON object (nested objects,
/// such as the registry configs, have `Name` keys of their own).
fn top_level_string<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let bytes = json.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    let pattern = format!("\"{key}\":\"");
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                if depth == 1 && json[i..].starts_with(&pattern) {
                    let start = i + pattern.len();
                    let end = json[start..].find('"')? + start;
                    return Some(&json[start..end]);
                }
                // Skip the string, honouring escapes.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Deterministic pseudo-random bytes (xorshift64*), so that a test can
/// produce the same large binary output twice and compare digests.
fn stream(out: &mut impl Write, seed: u64, mut bytes: u64) -> std::io::Result<()> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 64 * 1024];
    while bytes > 0 {
        let n = buf.len().min(bytes as usize);
        for chunk in buf[..n].chunks_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let v = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        out.write_all(&buf[..n])?;
        bytes -= n as u64;
    }
    Ok(())
}

/// PID 1 in a container gets no default signal actions, so `serve` installs
/// handlers that exit at once: services stop without a 10 s grace timeout.
fn serve() -> ! {
    extern "C" fn on_signal(_: libc::c_int) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(0) }
    }
    // SAFETY: installing a plain handler that only calls _exit.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}
