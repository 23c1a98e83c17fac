//! The helper's only output channel: `line` frames on stdout.
//!
//! Every frame of every target goes through one lock holding the
//! [`Encoder`], so lines never interleave and sequence numbers are global.
//! Each line is written with one `write_all` and flushed at once: the CLI
//! sees output while the command runs.

use std::io::Write;
use std::sync::Mutex;

use swarm_exec_proto::line::{Encoder, Kind, MAX_CHUNK};

/// Exit status used when the helper itself fails.
pub const EXIT_HELPER_FAILED: i32 = 125;

struct Inner<W> {
    enc: Encoder,
    line: Vec<u8>,
    out: W,
}

/// Frame writer shared by all target threads.
pub struct Sink<W: Write> {
    inner: Mutex<Inner<W>>,
}

impl<W: Write> Sink<W> {
    /// A sink writing to `out`, starting at sequence number 0.
    pub fn new(out: W) -> Sink<W> {
        Sink {
            inner: Mutex::new(Inner {
                enc: Encoder::new(),
                line: Vec::with_capacity(swarm_exec_proto::line::MAX_LINE_LEN),
                out,
            }),
        }
    }

    /// Encodes one line with `f` and writes it. If stdout is gone (the log
    /// pipe closed, SIGPIPE is ignored by the Rust runtime) nobody can
    /// receive anything any more: exit quietly.
    fn emit(&self, f: impl FnOnce(&mut Encoder, &mut Vec<u8>)) {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Inner { enc, line, out } = &mut *guard;
        line.clear();
        f(enc, line);
        if out.write_all(line).and_then(|()| out.flush()).is_err() {
            std::process::exit(EXIT_HELPER_FAILED);
        }
    }

    /// Writes `data` as `o`/`e` lines of at most [`MAX_CHUNK`] bytes.
    pub fn data(&self, target: u32, kind: Kind, data: &[u8]) {
        for chunk in data.chunks(MAX_CHUNK) {
            self.emit(|e, l| {
                e.encode(kind, target, chunk, l);
            });
        }
    }

    /// Writes an `r` line.
    pub fn ready(&self, target: u32) {
        self.emit(|e, l| e.encode_ready(target, l));
    }

    /// Writes an `l` line: the address the helper listens on.
    pub fn listening(&self, target: u32, addr: &str) {
        self.emit(|e, l| e.encode_listening(target, addr, l));
    }

    /// Writes an `x` line.
    pub fn exit(&self, target: u32, code: i64) {
        self.emit(|e, l| e.encode_exit(target, code, l));
    }

    /// Writes an `f` line.
    pub fn failure(&self, target: u32, message: &str) {
        self.emit(|e, l| e.encode_failure(target, message, l));
    }

    /// The writer (tests).
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        match self.inner.into_inner() {
            Ok(i) => i.out,
            Err(p) => p.into_inner().out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_exec_proto::line::{Decoded, LineDecoder};

    /// Records each write separately.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_write_per_line_and_global_seq() {
        let sink = Sink::new(Writes::default());
        sink.ready(0);
        let big: Vec<u8> = (0..MAX_CHUNK * 2 + 1).map(|i| i as u8).collect();
        sink.data(1, Kind::Stdout, &big);
        sink.data(0, Kind::Stderr, b"e");
        sink.failure(1, "boom");
        sink.exit(0, 3);
        let writes = sink.into_inner().0;
        assert_eq!(writes.len(), 7);
        let mut dec = LineDecoder::new();
        let mut out1 = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            assert_eq!(w.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(w.last(), Some(&b'\n'));
            dec.push(w);
            let Some(Ok(Decoded::Frame(f))) = dec.next() else {
                panic!("line {i} is not a frame")
            };
            assert_eq!(f.seq, i as u64);
            if f.kind == Kind::Stdout {
                assert_eq!(f.target, 1);
                out1.extend_from_slice(&f.payload);
            }
            if i == 6 {
                assert_eq!(f.exit_code(), Some(3));
            }
        }
        assert_eq!(out1, big);
    }

    #[test]
    fn concurrent_lines_never_interleave() {
        let sink = Sink::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let sink = &sink;
                s.spawn(move || {
                    for _ in 0..50 {
                        sink.data(t, Kind::Stdout, &[t as u8; 1000]);
                    }
                });
            }
        });
        let bytes = sink.into_inner();
        let mut dec = LineDecoder::new();
        dec.push(&bytes);
        let mut n = 0;
        while let Some(r) = dec.next() {
            let Ok(Decoded::Frame(f)) = r else { panic!() };
            assert_eq!(f.seq, n);
            assert_eq!(f.payload, vec![f.target as u8; 1000]);
            n += 1;
        }
        assert_eq!(n, 200);
    }
}
