//! `relay`: the manager end of the relay transport.
//!
//! The CLI can stream only to containers on its engine's own node, so it
//! attaches to a short-lived relay container there, which runs this mode:
//! a dumb byte pipe between its stdin/stdout and one TCP connection to the
//! helper on the target's node. The relay holds no key: the stream it
//! carries is encrypted and authenticated end to end between the CLI and
//! the helper.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use crate::sink::EXIT_HELPER_FAILED;

/// One line on stderr without the formatting machinery (size matters here).
fn print(parts: &[&str]) {
    let mut err = std::io::stderr().lock();
    for p in parts {
        let _ = err.write_all(p.as_bytes());
    }
}

/// Connection attempts while the route to the helper forms (about 20 s).
const CONNECT_TRIES: u32 = 60;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Reads the helper's address, `IP:PORT\n`, from stdin. Byte by byte: what
/// follows the line on stdin is the session's stream, not ours to buffer.
/// The CLI starts the relay while the helper is still starting and sends
/// the address once the helper announces it.
fn address_line() -> Option<String> {
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 64 {
        match stdin.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => return String::from_utf8(line).ok(),
            Ok(1) => line.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            _ => return None,
        }
    }
    None
}

/// Runs `relay [--connect IP:PORT]` (without it, the address comes first on
/// stdin); returns the process exit status.
pub fn run(text: Option<&str>) -> i32 {
    let Some(text) = text.map(str::to_owned).or_else(address_line) else {
        print(&["swarm-exec-relay: no helper address\n"]);
        return 2;
    };
    let text = text.as_str();
    let Ok(addr) = text.parse::<SocketAddr>() else {
        print(&["swarm-exec-relay: not IP:PORT: ", text, "\n"]);
        return 2;
    };
    let mut conn = None;
    for attempt in 0..CONNECT_TRIES {
        // A short timeout, retried: right after the helper attached to the
        // overlay, the first SYN can be lost while its address spreads to
        // this node, and the kernel's own retransmission backs off to
        // seconds.
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            // The helper announced itself before this connect; a refusal
            // here is a listener still binding, or a route still forming.
            Err(e) if attempt + 1 < CONNECT_TRIES => {
                // A refusal comes back at once; do not spin on it.
                if e.kind() != ErrorKind::TimedOut {
                    std::thread::sleep(CONNECT_TIMEOUT);
                }
            }
            Err(e) => {
                print(&[
                    "swarm-exec-relay: cannot connect to ",
                    text,
                    ": ",
                    &e.to_string(),
                    "\n",
                ]);
                return EXIT_HELPER_FAILED;
            }
        }
    }
    let Some(conn) = conn else {
        return EXIT_HELPER_FAILED;
    };
    let _ = conn.set_nodelay(true);
    let Ok(mut up) = conn.try_clone() else {
        return EXIT_HELPER_FAILED;
    };
    // stdin → helper, in its own thread; helper → stdout here.
    let stdin_side = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let _ = copy(&mut stdin, &mut up);
        let _ = up.shutdown(Shutdown::Write);
    });
    let mut down = conn;
    let mut stdout = std::io::stdout().lock();
    let status = match copy(&mut down, &mut stdout) {
        Ok(()) => 0,
        Err(_) => EXIT_HELPER_FAILED,
    };
    // Output still on its way through the engine is dropped when this
    // container exits, so stay until the CLI says it has everything: it
    // closes our stdin (so does its attach connection, if it dies).
    let _ = stdin_side.join();
    status
}

fn copy(from: &mut dyn Read, to: &mut dyn Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return to.flush(),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}
