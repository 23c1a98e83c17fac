//! The **logs-transport** framing: one pure-ASCII line per frame.
//!
//! ```text
//! sx1 <kind> <target> <seq> <payload>\n
//! ```
//!
//! * `sx1 ` is the magic and version; lines that do not start with it are
//!   *foreign* (engine messages, anything printed before the helper ran) and
//!   are handed to the caller as such ([`Decoded::Foreign`]).
//! * `kind` is one character ([`Kind`]): `o` stdout bytes, `e` stderr bytes,
//!   `x` exit code, `f` failure (a helper-side error message), `r` ready (the
//!   exec has been started).
//! * `target` is a decimal `u32`: the index of the container in the helper's
//!   `--container` list (0-based).
//! * `seq` is a decimal `u64`: a per-helper-process sequence number, starting
//!   at 0 and incremented for every line the process writes, across all
//!   targets. [`SeqCheck`] uses it to detect lost, duplicated or reordered
//!   lines.
//! * `payload`:
//!   - `o`, `e`: base64 of the raw bytes (at most [`MAX_CHUNK`] of them);
//!   - `f`: base64 of the UTF-8 message (truncated to [`MAX_CHUNK`] bytes);
//!   - `x`: the decimal exit code (an `i64`, as the engine reports it);
//!   - `r`: `-`.
//!
//!   An empty byte payload (`o`, `e`, `f`) is written as `-` too, so that a
//!   line never ends with a space that some log pipeline could trim.
//!
//! # Why lines, base64 and small chunks
//!
//! The CLI reads these lines back through `docker service logs`. Docker's
//! `json-file` log driver cuts lines longer than 16 KiB into several entries
//! and stores each entry as a JSON string, replacing invalid UTF-8 with
//! U+FFFD. A frame therefore has to be one ASCII line, well below 16 KiB:
//! [`MAX_CHUNK`] raw bytes become at most 8 KiB of base64, and the whole line
//! is at most [`MAX_LINE_LEN`] bytes. The reader still tolerates foreign and
//! broken lines (it reports them instead of giving up), caps what it buffers
//! at [`MAX_BUFFERED_LINE`], and the sequence numbers tell it when the log
//! pipeline lost something.

use std::fmt;

use crate::{base64, num};

/// Magic and version prefix of every frame line.
pub const MAGIC: &[u8] = b"sx1 ";

/// Maximum number of raw bytes carried by one `o`/`e`/`f` line.
///
/// 6144 bytes encode to exactly 8192 base64 characters, keeping each line
/// well under the 16 KiB at which Docker's log drivers split lines.
pub const MAX_CHUNK: usize = 6144;

/// Upper bound of the length of a line written by [`Encoder`], newline
/// included: magic, kind, three spaces, a `u32`, a `u64` and a full chunk.
pub const MAX_LINE_LEN: usize =
    MAGIC.len() + 1 + 1 + 10 + 1 + 20 + 1 + base64::encoded_len(MAX_CHUNK) + 1;

// Every line fits in one entry of Docker's log drivers (16 KiB).
const _: () = assert!(MAX_LINE_LEN < 16 * 1024);

/// Longest line (without its newline) that [`LineDecoder`] buffers; longer
/// lines yield [`LineError::TooLong`] and are skipped up to the next newline.
pub const MAX_BUFFERED_LINE: usize = 64 * 1024;

/// Placeholder payload for empty payloads and `r` lines.
const EMPTY: u8 = b'-';

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `o`: bytes the command wrote to its stdout.
    Stdout,
    /// `e`: bytes the command wrote to its stderr.
    Stderr,
    /// `x`: the command's exit code; the last frame of a target.
    Exit,
    /// `f`: the helper failed for this target (UTF-8 message); the last frame
    /// of a target.
    Failure,
    /// `r`: the exec has been started.
    Ready,
    /// `l`: the helper listens for the relay (payload: base64 of `IP:PORT`,
    /// or `:PORT` for a port published on the node's own address).
    Listening,
}

impl Kind {
    /// All kinds, in their documented order.
    pub const ALL: [Kind; 6] = [
        Kind::Stdout,
        Kind::Stderr,
        Kind::Exit,
        Kind::Failure,
        Kind::Ready,
        Kind::Listening,
    ];

    /// The one-character code used on the wire.
    pub const fn as_byte(self) -> u8 {
        match self {
            Kind::Stdout => b'o',
            Kind::Stderr => b'e',
            Kind::Exit => b'x',
            Kind::Failure => b'f',
            Kind::Ready => b'r',
            Kind::Listening => b'l',
        }
    }

    /// Inverse of [`Kind::as_byte`].
    pub const fn from_byte(b: u8) -> Option<Kind> {
        match b {
            b'o' => Some(Kind::Stdout),
            b'e' => Some(Kind::Stderr),
            b'x' => Some(Kind::Exit),
            b'f' => Some(Kind::Failure),
            b'r' => Some(Kind::Ready),
            b'l' => Some(Kind::Listening),
            _ => None,
        }
    }

    /// Whether the payload is base64-encoded bytes (`o`, `e`, `f`).
    pub const fn carries_bytes(self) -> bool {
        matches!(
            self,
            Kind::Stdout | Kind::Stderr | Kind::Failure | Kind::Listening
        )
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame carries.
    pub kind: Kind,
    /// Index of the container in the helper's `--container` list.
    pub target: u32,
    /// Per-helper-process sequence number.
    pub seq: u64,
    /// Decoded payload: raw bytes for `o`/`e`, the UTF-8 message for `f`, the
    /// decimal text for `x`, empty for `r`.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The exit code of an `x` frame (`None` for other kinds).
    pub fn exit_code(&self) -> Option<i64> {
        match self.kind {
            Kind::Exit => num::parse_i64(&self.payload),
            _ => None,
        }
    }

    /// The message of an `f` frame (lossily converted; `None` for other
    /// kinds).
    pub fn failure_message(&self) -> Option<String> {
        match self.kind {
            Kind::Failure => Some(String::from_utf8_lossy(&self.payload).into_owned()),
            _ => None,
        }
    }

    /// Encodes this frame as one line, with its own `seq` (not an
    /// [`Encoder`]'s). Byte payloads longer than [`MAX_CHUNK`] are truncated;
    /// an `x` payload that is not a decimal `i64` produces a line the decoder
    /// rejects.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        write_line(self.kind, self.target, self.seq, &self.payload, out);
    }
}

/// Writes one line. `data` is the raw payload (see [`Frame::payload`]).
fn write_line(kind: Kind, target: u32, seq: u64, data: &[u8], out: &mut Vec<u8>) {
    out.reserve(MAX_LINE_LEN);
    out.extend_from_slice(MAGIC);
    out.push(kind.as_byte());
    out.push(b' ');
    num::push_u64(out, u64::from(target));
    out.push(b' ');
    num::push_u64(out, seq);
    out.push(b' ');
    match kind {
        Kind::Ready => out.push(EMPTY),
        Kind::Exit => out.extend_from_slice(data),
        Kind::Stdout | Kind::Stderr | Kind::Failure | Kind::Listening => {
            let data = if data.len() > MAX_CHUNK {
                &data[..MAX_CHUNK]
            } else {
                data
            };
            if data.is_empty() {
                out.push(EMPTY);
            } else {
                base64::encode_into(data, out);
            }
        }
    }
    out.push(b'\n');
}

/// Cuts `msg` to at most `max` bytes without splitting a UTF-8 sequence.
fn truncate_utf8(msg: &[u8], max: usize) -> &[u8] {
    if msg.len() <= max {
        return msg;
    }
    let mut end = max;
    // Back off over continuation bytes (0b10xx_xxxx), at most 3 of them.
    while end > 0 && max - end < 3 && (msg[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    &msg[..end]
}

/// Writes frame lines, numbering them.
///
/// One `Encoder` must be shared (behind a lock) by everything a helper process
/// writes, so that sequence numbers are global and increase by one per line.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    next_seq: u64,
}

impl Encoder {
    /// An encoder whose first line gets sequence number 0.
    pub const fn new() -> Encoder {
        Encoder { next_seq: 0 }
    }

    /// The sequence number the next line will get.
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq = s.wrapping_add(1);
        s
    }

    /// Appends frame line(s) for `data` to `out` and returns how many lines
    /// were appended.
    ///
    /// * `Stdout`/`Stderr`: `data` is split internally into chunks of at most
    ///   [`MAX_CHUNK`] bytes, one line (and one sequence number) each; so
    ///   exactly one line is appended when `data.len() <= MAX_CHUNK` (callers
    ///   that want one `write` per line chunk by [`MAX_CHUNK`] themselves).
    ///   Empty `data` still yields one line (payload `-`).
    /// * `Failure`: one line; the message is truncated to [`MAX_CHUNK`] bytes
    ///   (at a UTF-8 boundary). Prefer [`Encoder::encode_failure`].
    /// * `Exit`: one line; `data` must be the decimal exit code (prefer
    ///   [`Encoder::encode_exit`]); anything else is written as-is and will be
    ///   rejected by the decoder (debug builds assert).
    /// * `Ready`: one line; `data` is ignored. Prefer [`Encoder::encode_ready`].
    pub fn encode(&mut self, kind: Kind, target: u32, data: &[u8], out: &mut Vec<u8>) -> usize {
        match kind {
            Kind::Stdout | Kind::Stderr if data.len() > MAX_CHUNK => {
                let mut n = 0;
                for chunk in data.chunks(MAX_CHUNK) {
                    let seq = self.take_seq();
                    write_line(kind, target, seq, chunk, out);
                    n += 1;
                }
                n
            }
            Kind::Failure => {
                let seq = self.take_seq();
                write_line(kind, target, seq, truncate_utf8(data, MAX_CHUNK), out);
                1
            }
            Kind::Exit => {
                debug_assert!(num::parse_i64(data).is_some(), "x payload must be decimal");
                let seq = self.take_seq();
                write_line(kind, target, seq, data, out);
                1
            }
            _ => {
                let seq = self.take_seq();
                write_line(kind, target, seq, data, out);
                1
            }
        }
    }

    /// Appends an `x` line carrying `code`.
    pub fn encode_exit(&mut self, target: u32, code: i64, out: &mut Vec<u8>) {
        let mut digits = Vec::with_capacity(20);
        num::push_i64(&mut digits, code);
        let seq = self.take_seq();
        write_line(Kind::Exit, target, seq, &digits, out);
    }

    /// Appends an `f` line carrying `message` (truncated to [`MAX_CHUNK`]
    /// bytes at a character boundary).
    pub fn encode_failure(&mut self, target: u32, message: &str, out: &mut Vec<u8>) {
        self.encode(Kind::Failure, target, message.as_bytes(), out);
    }

    /// Appends an `l` line announcing the address the helper listens on.
    pub fn encode_listening(&mut self, target: u32, addr: &str, out: &mut Vec<u8>) {
        self.encode(Kind::Listening, target, addr.as_bytes(), out);
    }

    /// Appends an `r` line.
    pub fn encode_ready(&mut self, target: u32, out: &mut Vec<u8>) {
        let seq = self.take_seq();
        write_line(Kind::Ready, target, seq, &[], out);
    }
}

/// What [`LineDecoder`] found on a complete line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A well-formed frame line.
    Frame(Frame),
    /// A line that does not start with [`MAGIC`], without its newline (a
    /// trailing `\r` is kept). Callers typically show it to the user.
    Foreign(Vec<u8>),
}

/// A line [`LineDecoder`] could not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// A line exceeded [`MAX_BUFFERED_LINE`] bytes; it was dropped up to its
    /// newline.
    TooLong,
    /// A line starting with [`MAGIC`] is not a valid frame.
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
        /// The offending line, without its newline.
        line: Vec<u8>,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong => write!(f, "line longer than {MAX_BUFFERED_LINE} bytes"),
            LineError::Malformed { reason, line } => {
                let shown = &line[..line.len().min(80)];
                write!(
                    f,
                    "malformed frame line ({reason}): {:?}",
                    String::from_utf8_lossy(shown)
                )
            }
        }
    }
}

impl std::error::Error for LineError {}

/// Parses one complete line (without its `\n`).
///
/// Returns `Ok(Foreign)` for lines not starting with [`MAGIC`]. A single
/// trailing `\r` is tolerated on frame lines.
pub fn parse_line(line: &[u8]) -> Result<Decoded, LineError> {
    let Some(rest) = line.strip_prefix(MAGIC) else {
        return Ok(Decoded::Foreign(line.to_vec()));
    };
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    let bad = |reason: &'static str| LineError::Malformed {
        reason,
        line: line.to_vec(),
    };
    let mut fields = rest.splitn(4, |&b| b == b' ');
    let (Some(kind), Some(target), Some(seq), Some(payload)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad("missing field"));
    };
    let kind = match kind {
        [k] => Kind::from_byte(*k).ok_or_else(|| bad("unknown kind"))?,
        _ => return Err(bad("kind is not one character")),
    };
    let target = num::parse_u64(target)
        .and_then(|t| u32::try_from(t).ok())
        .ok_or_else(|| bad("bad target"))?;
    let seq = num::parse_u64(seq).ok_or_else(|| bad("bad seq"))?;
    let payload = match kind {
        Kind::Ready => {
            if payload != [EMPTY] {
                return Err(bad("ready payload is not '-'"));
            }
            Vec::new()
        }
        Kind::Exit => {
            if num::parse_i64(payload).is_none() {
                return Err(bad("bad exit code"));
            }
            payload.to_vec()
        }
        Kind::Stdout | Kind::Stderr | Kind::Failure | Kind::Listening => {
            if payload == [EMPTY] {
                Vec::new()
            } else if payload.is_empty() {
                return Err(bad("empty payload"));
            } else {
                let data = base64::decode(payload).map_err(|_| bad("bad base64"))?;
                if data.len() > MAX_CHUNK {
                    return Err(bad("payload larger than MAX_CHUNK"));
                }
                data
            }
        }
    };
    Ok(Decoded::Frame(Frame {
        kind,
        target,
        seq,
        payload,
    }))
}

/// Incremental line decoder: push arbitrary chunks of the log stream, pull
/// decoded lines.
///
/// Lines are buffered until their `\n`. A line longer than
/// [`MAX_BUFFERED_LINE`] yields one [`LineError::TooLong`] and the decoder
/// resynchronises after the next `\n`. The result sequence does not depend
/// on how the stream was chunked. Call [`LineDecoder::next`] until it returns
/// `None` after each [`LineDecoder::push`]: the decoder only bounds what it
/// keeps between pushes, not the size of a chunk handed to it.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buf: Vec<u8>,
    /// Start of the unconsumed part of `buf`.
    start: usize,
    /// Bytes in `buf[start..scanned]` are known to contain no `\n`.
    scanned: usize,
    /// Dropping bytes up to the next `\n` after a too-long line.
    discarding: bool,
}

impl LineDecoder {
    /// An empty decoder.
    pub fn new() -> LineDecoder {
        LineDecoder::default()
    }

    /// Appends a chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        let mut chunk = chunk;
        if self.discarding && self.start == self.buf.len() {
            // Nothing buffered: drop bytes of the overlong line right away.
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.discarding = false;
                    chunk = &chunk[i + 1..];
                }
                None => return,
            }
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Number of bytes buffered but not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete line, if any.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Decoded, LineError>> {
        loop {
            let from = self.scanned.max(self.start);
            let nl = self.buf[from..].iter().position(|&b| b == b'\n');
            match nl {
                Some(i) => {
                    let end = from + i;
                    let line_start = self.start;
                    self.start = end + 1;
                    self.scanned = self.start;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    let line = &self.buf[line_start..end];
                    let res = if line.len() > MAX_BUFFERED_LINE {
                        Err(LineError::TooLong)
                    } else {
                        parse_line(line)
                    };
                    self.compact();
                    return Some(res);
                }
                None => {
                    self.scanned = self.buf.len();
                    if self.discarding {
                        self.reset();
                        return None;
                    }
                    if self.buf.len() - self.start > MAX_BUFFERED_LINE {
                        self.reset();
                        self.discarding = true;
                        return Some(Err(LineError::TooLong));
                    }
                    self.compact();
                    return None;
                }
            }
        }
    }

    /// Ends the stream: returns the trailing partial line (bytes after the
    /// last `\n`), if any, as [`Decoded::Foreign`]. A partial line is never a
    /// frame, even if it starts with [`MAGIC`]. Call it once
    /// [`LineDecoder::next`] has returned `None`; complete lines still
    /// buffered would be returned as part of the same `Foreign` value.
    pub fn finish(self) -> Option<Decoded> {
        if self.discarding || self.start >= self.buf.len() {
            return None;
        }
        Some(Decoded::Foreign(self.buf[self.start..].to_vec()))
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
    }

    /// Drops consumed bytes once they dominate the buffer, so that memory
    /// stays proportional to the unconsumed part.
    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.reset();
        } else if self.start >= 4096 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
    }
}

/// A sequence-number anomaly found by [`SeqCheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqError {
    /// `got` is ahead of `expected`: `got - expected` lines were lost.
    Gap {
        /// The sequence number that was due.
        expected: u64,
        /// The sequence number that arrived.
        got: u64,
    },
    /// `got` is behind `expected`: a duplicated or reordered line.
    Stale {
        /// The sequence number that was due.
        expected: u64,
        /// The sequence number that arrived.
        got: u64,
    },
}

impl SeqError {
    /// Number of lines lost, for [`SeqError::Gap`].
    pub fn lost(&self) -> u64 {
        match *self {
            SeqError::Gap { expected, got } => got - expected,
            SeqError::Stale { .. } => 0,
        }
    }
}

impl fmt::Display for SeqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SeqError::Gap { expected, got } => write!(
                f,
                "{} frame line(s) lost (expected seq {expected}, got {got})",
                got - expected
            ),
            SeqError::Stale { expected, got } => write!(
                f,
                "duplicated or reordered frame line (expected seq {expected}, got {got})"
            ),
        }
    }
}

impl std::error::Error for SeqError {}

/// Checks the sequence numbers of one helper process's lines.
///
/// After a gap it resynchronises on the number received; a stale number does
/// not move the expectation.
#[derive(Debug, Default, Clone)]
pub struct SeqCheck {
    expected: u64,
}

impl SeqCheck {
    /// A checker expecting sequence number 0 first.
    pub const fn new() -> SeqCheck {
        SeqCheck { expected: 0 }
    }

    /// The next sequence number expected.
    pub const fn expected(&self) -> u64 {
        self.expected
    }

    /// Feeds the next received sequence number.
    pub fn check(&mut self, seq: u64) -> Result<(), SeqError> {
        let expected = self.expected;
        if seq == expected {
            self.expected = seq.wrapping_add(1);
            Ok(())
        } else if seq > expected {
            self.expected = seq.wrapping_add(1);
            Err(SeqError::Gap { expected, got: seq })
        } else {
            Err(SeqError::Stale { expected, got: seq })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> (Vec<Result<Decoded, LineError>>, Option<Decoded>) {
        let mut d = LineDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(r) = d.next() {
                out.push(r);
            }
        }
        (out, d.finish())
    }

    fn frame(kind: Kind, target: u32, seq: u64, payload: &[u8]) -> Decoded {
        Decoded::Frame(Frame {
            kind,
            target,
            seq,
            payload: payload.to_vec(),
        })
    }

    #[test]
    fn encodes_documented_format() {
        let mut e = Encoder::new();
        let mut out = Vec::new();
        e.encode_ready(0, &mut out);
        e.encode(Kind::Stdout, 0, b"out\n", &mut out);
        e.encode(Kind::Stderr, 3, b"", &mut out);
        e.encode_failure(1, "No such container: x", &mut out);
        e.encode_exit(0, 42, &mut out);
        e.encode_exit(2, -1, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "sx1 r 0 0 -\n\
             sx1 o 0 1 b3V0Cg==\n\
             sx1 e 3 2 -\n\
             sx1 f 1 3 Tm8gc3VjaCBjb250YWluZXI6IHg=\n\
             sx1 x 0 4 42\n\
             sx1 x 2 5 -1\n"
        );
        assert_eq!(e.next_seq(), 6);
    }

    #[test]
    fn decodes_and_accessors() {
        let (res, rest) = decode_all(&[b"sx1 x 0 4 42\nsx1 f 1 3 aGk=\r\nsx1 r 7 9 -\n"]);
        assert_eq!(rest, None);
        let frames: Vec<_> = res.into_iter().map(Result::unwrap).collect();
        assert_eq!(frames[0], frame(Kind::Exit, 0, 4, b"42"));
        let Decoded::Frame(x) = &frames[0] else {
            panic!()
        };
        assert_eq!(x.exit_code(), Some(42));
        assert_eq!(x.failure_message(), None);
        let Decoded::Frame(f) = &frames[1] else {
            panic!()
        };
        assert_eq!(f.failure_message().as_deref(), Some("hi"));
        assert_eq!(f.exit_code(), None);
        assert_eq!(frames[2], frame(Kind::Ready, 7, 9, b""));
    }

    #[test]
    fn splits_long_output() {
        let data: Vec<u8> = (0..MAX_CHUNK * 2 + 5).map(|i| i as u8).collect();
        let mut e = Encoder::new();
        let mut out = Vec::new();
        assert_eq!(e.encode(Kind::Stdout, 1, &data, &mut out), 3);
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(line.len() < MAX_LINE_LEN);
            assert!(line.len() < 16 * 1024);
            assert!(line.is_ascii());
        }
        let (res, _) = decode_all(&[&out]);
        let mut got = Vec::new();
        for (i, r) in res.into_iter().enumerate() {
            let Decoded::Frame(f) = r.unwrap() else {
                panic!()
            };
            assert_eq!(f.seq, i as u64);
            assert_eq!(f.target, 1);
            got.extend_from_slice(&f.payload);
        }
        assert_eq!(got, data);
    }

    #[test]
    fn failure_truncated_at_char_boundary() {
        let msg = "é".repeat(MAX_CHUNK); // 2 bytes per char
        let mut out = Vec::new();
        let mut e = Encoder::new();
        e.encode_failure(0, &format!("x{msg}"), &mut out);
        let (res, _) = decode_all(&[&out]);
        let Ok(Decoded::Frame(f)) = &res[0] else {
            panic!()
        };
        assert_eq!(f.payload.len(), MAX_CHUNK - 1);
        assert!(std::str::from_utf8(&f.payload).is_ok());
    }

    #[test]
    fn max_line_len_is_tight_upper_bound() {
        let mut out = Vec::new();
        write_line(
            Kind::Stdout,
            u32::MAX,
            u64::MAX,
            &[0u8; MAX_CHUNK],
            &mut out,
        );
        assert_eq!(out.len(), MAX_LINE_LEN);
    }

    #[test]
    fn foreign_and_malformed() {
        let input: &[u8] = b"Error response from daemon: boom\n\
            sx1 z 0 0 -\n\
            sx1 o 0 0\n\
            sx1 o x 0 -\n\
            sx1 o 0 -1 -\n\
            sx1 o 4294967296 0 -\n\
            sx1 o 0 0 Zg=\n\
            sx1 o 0 0 \n\
            sx1 r 0 0 Zg==\n\
            sx1 x 0 0 4x\n\
            sx1 oo 0 0 -\n\
            sx1 o 0 0 Zg== extra\n\
            sx2 o 0 0 -\n\
            \n\
            sx1 o 0 18446744073709551615 Zg==\n\
            trailing";
        let (res, rest) = decode_all(&[input]);
        assert_eq!(
            res[0],
            Ok(Decoded::Foreign(
                b"Error response from daemon: boom".to_vec()
            ))
        );
        for r in &res[1..12] {
            assert!(
                matches!(r, Err(LineError::Malformed { .. })),
                "{r:?} should be malformed"
            );
        }
        assert_eq!(res[12], Ok(Decoded::Foreign(b"sx2 o 0 0 -".to_vec())));
        assert_eq!(res[13], Ok(Decoded::Foreign(Vec::new())));
        assert_eq!(res[14], Ok(frame(Kind::Stdout, 0, u64::MAX, b"f")));
        assert_eq!(res.len(), 15);
        assert_eq!(rest, Some(Decoded::Foreign(b"trailing".to_vec())));
        // Errors are printable.
        assert!(res[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("unknown kind"));
    }

    #[test]
    fn too_long_line_resyncs() {
        let mut stream = b"sx1 r 0 0 -\n".to_vec();
        stream.extend(std::iter::repeat_n(b'a', MAX_BUFFERED_LINE + 10));
        stream.extend_from_slice(b"\nsx1 r 0 1 -\n");
        let expected = vec![
            Ok(frame(Kind::Ready, 0, 0, b"")),
            Err(LineError::TooLong),
            Ok(frame(Kind::Ready, 0, 1, b"")),
        ];
        // All at once.
        assert_eq!(decode_all(&[&stream]).0, expected);
        // Small chunks: the decoder must not keep the whole overlong line.
        let mut d = LineDecoder::new();
        let mut got = Vec::new();
        for c in stream.chunks(1000) {
            d.push(c);
            while let Some(r) = d.next() {
                got.push(r);
            }
            assert!(d.buffered() <= MAX_BUFFERED_LINE + 1000);
        }
        assert_eq!(got, expected);
        // Exactly at the limit is fine.
        let mut ok = vec![b'a'; MAX_BUFFERED_LINE];
        ok.push(b'\n');
        assert_eq!(
            decode_all(&[&ok]).0,
            vec![Ok(Decoded::Foreign(vec![b'a'; MAX_BUFFERED_LINE]))]
        );
        // A trailing overlong partial line is not returned by finish.
        let long = vec![b'a'; MAX_BUFFERED_LINE + 1];
        let (res, rest) = decode_all(&[&long]);
        assert_eq!(res, vec![Err(LineError::TooLong)]);
        assert_eq!(rest, None);
    }

    #[test]
    fn seq_check() {
        let mut c = SeqCheck::new();
        assert_eq!(c.check(0), Ok(()));
        assert_eq!(c.check(1), Ok(()));
        let gap = c.check(4).unwrap_err();
        assert_eq!(
            gap,
            SeqError::Gap {
                expected: 2,
                got: 4
            }
        );
        assert_eq!(gap.lost(), 2);
        assert_eq!(c.check(5), Ok(()));
        assert_eq!(
            c.check(5),
            Err(SeqError::Stale {
                expected: 6,
                got: 5
            })
        );
        assert_eq!(
            c.check(3),
            Err(SeqError::Stale {
                expected: 6,
                got: 3
            })
        );
        assert_eq!(c.check(6), Ok(()));
        assert_eq!(c.expected(), 7);
        assert!(gap.to_string().contains("2 frame line(s) lost"));
    }

    fn arb_kind() -> impl Strategy<Value = Kind> {
        prop::sample::select(Kind::ALL.to_vec())
    }

    /// (kind, target, data) triples; exit codes are carried in `data` as i64.
    fn arb_items() -> impl Strategy<Value = Vec<(Kind, u32, Vec<u8>, i64)>> {
        prop::collection::vec(
            (
                arb_kind(),
                prop_oneof![0u32..4, any::<u32>()],
                prop::collection::vec(any::<u8>(), 0..300),
                any::<i64>(),
            ),
            0..40,
        )
    }

    fn encode_items(items: &[(Kind, u32, Vec<u8>, i64)]) -> (Vec<u8>, Vec<Decoded>) {
        let mut e = Encoder::new();
        let mut out = Vec::new();
        let mut expected = Vec::new();
        for (kind, target, data, code) in items {
            let seq = e.next_seq();
            match kind {
                Kind::Exit => {
                    e.encode_exit(*target, *code, &mut out);
                    expected.push(frame(*kind, *target, seq, code.to_string().as_bytes()));
                }
                Kind::Ready => {
                    e.encode_ready(*target, &mut out);
                    expected.push(frame(*kind, *target, seq, b""));
                }
                _ => {
                    assert_eq!(e.encode(*kind, *target, data, &mut out), 1);
                    expected.push(frame(*kind, *target, seq, data));
                }
            }
        }
        (out, expected)
    }

    proptest! {
        #[test]
        fn arbitrary_chunking_yields_same_frames(
            items in arb_items(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let (stream, expected) = encode_items(&items);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts {
                chunks.push(&stream[prev..c]);
                prev = c;
            }
            chunks.push(&stream[prev..]);
            let (res, rest) = decode_all(&chunks);
            let got: Vec<Decoded> = res.into_iter().map(|r| r.unwrap()).collect();
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(rest, None);
            let mut check = SeqCheck::new();
            for d in &got {
                if let Decoded::Frame(f) = d {
                    prop_assert_eq!(check.check(f.seq), Ok(()));
                    if f.kind == Kind::Exit {
                        prop_assert!(f.exit_code().is_some());
                    }
                }
            }
        }

        #[test]
        fn frame_encode_into_round_trips(
            kind in arb_kind(),
            target in any::<u32>(),
            seq in any::<u64>(),
            data in prop::collection::vec(any::<u8>(), 0..300),
            code in any::<i64>(),
        ) {
            let payload = match kind {
                Kind::Exit => code.to_string().into_bytes(),
                Kind::Ready => Vec::new(),
                _ => data,
            };
            let f = Frame { kind, target, seq, payload };
            let mut out = Vec::new();
            f.encode_into(&mut out);
            prop_assert_eq!(out.last(), Some(&b'\n'));
            prop_assert!(out.is_ascii());
            prop_assert_eq!(parse_line(&out[..out.len() - 1]), Ok(Decoded::Frame(f)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..10),
        ) {
            let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
            let _ = decode_all(&refs);
        }

        #[test]
        fn near_valid_lines_never_panic(
            lines in prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![
                        Just(&b"sx1 "[..]), Just(&b"o "[..]), Just(&b"x "[..]), Just(&b"r "[..]),
                        Just(&b"0 "[..]), Just(&b"-"[..]), Just(&b"Zg=="[..]), Just(&b" "[..]),
                        Just(&b"\r"[..]), Just(&b"99999999999999999999 "[..]), Just(&b"\n"[..]),
                    ],
                    0..8,
                ),
                0..10,
            ),
        ) {
            let stream: Vec<u8> = lines.into_iter().flatten().flatten().copied().collect();
            let (res, _) = decode_all(&[&stream]);
            for r in res.into_iter().flatten() {
                if let Decoded::Frame(f) = r {
                    // Whatever is accepted re-encodes to a line that decodes
                    // to the same frame.
                    let mut out = Vec::new();
                    f.encode_into(&mut out);
                    prop_assert_eq!(parse_line(&out[..out.len() - 1]), Ok(Decoded::Frame(f)));
                }
            }
        }
    }
}
