//! Decodes a `line` frame stream (e.g. the output of `swarm-exec-helper
//! exec`, or of `docker service logs --raw`) read from stdin.
//!
//! Output bytes of all targets go to stdout (`o`) and stderr (`e`); events
//! (ready, exit, failure, foreign lines, sequence anomalies, malformed lines)
//! are reported on stderr prefixed with `sx-decode:`. The exit status is the
//! last exit code seen, or 125 if no `x` frame arrived.
//!
//! ```text
//! swarm-exec-helper exec --container c -- sh -c 'echo hi' | cargo run -q -p swarm-exec-proto --example sx-decode
//! ```

use std::io::{Read, Write};

use swarm_exec_proto::line::{Decoded, Kind, LineDecoder, SeqCheck};

fn main() {
    let mut stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut dec = LineDecoder::new();
    let mut seq = SeqCheck::new();
    let mut frames = 0u64;
    let mut status = 125;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("sx-decode: reading stdin: {e}");
                std::process::exit(2);
            }
        };
        dec.push(&buf[..n]);
        while let Some(r) = dec.next() {
            match r {
                Ok(Decoded::Frame(f)) => {
                    frames += 1;
                    if let Err(e) = seq.check(f.seq) {
                        eprintln!("sx-decode: {e}");
                    }
                    match f.kind {
                        Kind::Stdout => out.write_all(&f.payload).unwrap(),
                        Kind::Stderr => err.write_all(&f.payload).unwrap(),
                        Kind::Ready => eprintln!("sx-decode: [{}] ready", f.target),
                        Kind::Listening => eprintln!(
                            "sx-decode: [{}] listening on {}",
                            f.target,
                            String::from_utf8_lossy(&f.payload)
                        ),
                        Kind::Exit => {
                            let code = f.exit_code().unwrap_or(-1);
                            eprintln!("sx-decode: [{}] exit {code}", f.target);
                            status = code.clamp(0, 255) as i32;
                        }
                        Kind::Failure => eprintln!(
                            "sx-decode: [{}] failure: {}",
                            f.target,
                            f.failure_message().unwrap_or_default()
                        ),
                    }
                }
                Ok(Decoded::Foreign(l)) => {
                    eprintln!("sx-decode: foreign line: {}", String::from_utf8_lossy(&l))
                }
                Err(e) => eprintln!("sx-decode: {e}"),
            }
        }
    }
    if let Some(Decoded::Foreign(l)) = dec.finish() {
        eprintln!(
            "sx-decode: trailing partial line: {}",
            String::from_utf8_lossy(&l)
        );
    }
    out.flush().unwrap();
    eprintln!("sx-decode: {frames} frames");
    std::process::exit(status);
}
