//! The **binary duplex framing** for the relay transport (stdin and output
//! over one reliable, 8-bit clean byte stream such as TCP).
//!
//! Each frame is a 7-byte header followed by the payload:
//!
//! ```text
//! +------+-------------+---------------+-----------------+
//! | kind | target u16  | len u32       | payload (len)   |
//! | u8   | big endian  | big endian    |                 |
//! +------+-------------+---------------+-----------------+
//! ```
//!
//! `target` is the index of the container (as in [`crate::line`]). Payloads
//! are limited to [`MAX_PAYLOAD`] bytes, and fixed-size kinds must have their
//! exact size (see [`Kind`]); the [`Decoder`] rejects anything else instead
//! of buffering it, since a corrupted length would otherwise make it wait for
//! (or allocate) up to 4 GiB. After an error the stream cannot be resynced:
//! the decoder stays failed.

use std::fmt;

/// Size of the frame header.
pub const HEADER_LEN: usize = 7;

/// Largest payload a frame may carry (1 MiB).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Frame kinds and their wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Bytes for the command's stdin.
    Stdin = 1,
    /// Bytes the command wrote to stdout.
    Stdout = 2,
    /// Bytes the command wrote to stderr.
    Stderr = 3,
    /// The command's stdin is closed (empty payload).
    StdinEof = 4,
    /// Exit code: `i32` big endian (4 bytes).
    Exit = 5,
    /// Terminal size: `u16` rows, `u16` cols, big endian (4 bytes).
    Resize = 6,
    /// Deliver a signal: the signal number as one byte.
    Signal = 7,
    /// The peer failed for this target: UTF-8 message.
    Failure = 8,
    /// The exec has been started (empty payload).
    Ready = 9,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 9] = [
        Kind::Stdin,
        Kind::Stdout,
        Kind::Stderr,
        Kind::StdinEof,
        Kind::Exit,
        Kind::Resize,
        Kind::Signal,
        Kind::Failure,
        Kind::Ready,
    ];

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Inverse of [`Kind::as_u8`].
    pub const fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Stdin,
            2 => Kind::Stdout,
            3 => Kind::Stderr,
            4 => Kind::StdinEof,
            5 => Kind::Exit,
            6 => Kind::Resize,
            7 => Kind::Signal,
            8 => Kind::Failure,
            9 => Kind::Ready,
            _ => return None,
        })
    }

    /// The exact payload size this kind requires, if it is fixed.
    pub const fn fixed_len(self) -> Option<usize> {
        match self {
            Kind::StdinEof | Kind::Ready => Some(0),
            Kind::Exit | Kind::Resize => Some(4),
            Kind::Signal => Some(1),
            Kind::Stdin | Kind::Stdout | Kind::Stderr | Kind::Failure => None,
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame carries.
    pub kind: Kind,
    /// Index of the container.
    pub target: u16,
    /// The payload (already checked against [`Kind::fixed_len`]).
    pub payload: Vec<u8>,
}

impl Frame {
    /// The exit code of an [`Kind::Exit`] frame.
    pub fn exit_code(&self) -> Option<i32> {
        match (self.kind, &self.payload[..]) {
            (Kind::Exit, &[a, b, c, d]) => Some(i32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }

    /// `(rows, cols)` of a [`Kind::Resize`] frame.
    pub fn resize(&self) -> Option<(u16, u16)> {
        match (self.kind, &self.payload[..]) {
            (Kind::Resize, &[a, b, c, d]) => {
                Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])))
            }
            _ => None,
        }
    }

    /// The signal number of a [`Kind::Signal`] frame.
    pub fn signal(&self) -> Option<u8> {
        match (self.kind, &self.payload[..]) {
            (Kind::Signal, &[s]) => Some(s),
            _ => None,
        }
    }

    /// The message of a [`Kind::Failure`] frame (lossily converted).
    pub fn failure_message(&self) -> Option<String> {
        match self.kind {
            Kind::Failure => Some(String::from_utf8_lossy(&self.payload).into_owned()),
            _ => None,
        }
    }

    /// Appends this frame's encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        encode(self.kind, self.target, &self.payload, out)
    }
}

/// A framing error. After one, the stream is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The header's kind byte is not a known [`Kind`].
    UnknownKind(u8),
    /// The payload length exceeds [`MAX_PAYLOAD`].
    Oversize(u32),
    /// A fixed-size kind announced another length.
    BadLength {
        /// The frame kind.
        kind: Kind,
        /// The announced payload length.
        len: u32,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::Oversize(n) => {
                write!(f, "frame payload of {n} bytes exceeds {MAX_PAYLOAD}")
            }
            FrameError::BadLength { kind, len } => {
                write!(f, "{kind:?} frame with a payload of {len} bytes")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks a header's kind and length.
fn check_header(kind: u8, len: u32) -> Result<Kind, FrameError> {
    let k = Kind::from_u8(kind).ok_or(FrameError::UnknownKind(kind))?;
    if len as usize > MAX_PAYLOAD {
        return Err(FrameError::Oversize(len));
    }
    if let Some(fixed) = k.fixed_len() {
        if fixed != len as usize {
            return Err(FrameError::BadLength { kind: k, len });
        }
    }
    Ok(k)
}

/// Appends one frame to `out`. Fails (appending nothing) when the payload is
/// larger than [`MAX_PAYLOAD`] or does not fit a fixed-size kind.
pub fn encode(
    kind: Kind,
    target: u16,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::Oversize(u32::MAX))?;
    check_header(kind.as_u8(), len)?;
    out.reserve(HEADER_LEN + payload.len());
    out.push(kind.as_u8());
    out.extend_from_slice(&target.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends data frames (`Stdin`, `Stdout`, `Stderr`) for `data`, split into
/// payloads of at most [`MAX_PAYLOAD`] bytes. Empty `data` appends nothing.
/// Other kinds are encoded as a single frame, as with [`encode`].
pub fn encode_data(
    kind: Kind,
    target: u16,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    match kind {
        Kind::Stdin | Kind::Stdout | Kind::Stderr => {
            for chunk in data.chunks(MAX_PAYLOAD) {
                encode(kind, target, chunk, out)?;
            }
            Ok(())
        }
        _ => encode(kind, target, data, out),
    }
}

/// Appends an [`Kind::Exit`] frame.
pub fn encode_exit(target: u16, code: i32, out: &mut Vec<u8>) {
    push_fixed(Kind::Exit, target, &code.to_be_bytes(), out);
}

/// Appends a [`Kind::Resize`] frame.
pub fn encode_resize(target: u16, rows: u16, cols: u16, out: &mut Vec<u8>) {
    let [a, b] = rows.to_be_bytes();
    let [c, d] = cols.to_be_bytes();
    push_fixed(Kind::Resize, target, &[a, b, c, d], out);
}

/// Appends a [`Kind::Signal`] frame.
pub fn encode_signal(target: u16, signal: u8, out: &mut Vec<u8>) {
    push_fixed(Kind::Signal, target, &[signal], out);
}

/// Appends a [`Kind::StdinEof`] frame.
pub fn encode_stdin_eof(target: u16, out: &mut Vec<u8>) {
    push_fixed(Kind::StdinEof, target, &[], out);
}

/// Appends a [`Kind::Ready`] frame.
pub fn encode_ready(target: u16, out: &mut Vec<u8>) {
    push_fixed(Kind::Ready, target, &[], out);
}

/// Appends a [`Kind::Failure`] frame; the message is truncated to
/// [`MAX_PAYLOAD`] bytes at a character boundary.
pub fn encode_failure(target: u16, message: &str, out: &mut Vec<u8>) {
    let mut end = message.len().min(MAX_PAYLOAD);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let msg = &message.as_bytes()[..end];
    out.push(Kind::Failure.as_u8());
    out.extend_from_slice(&target.to_be_bytes());
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
}

fn push_fixed(kind: Kind, target: u16, payload: &[u8], out: &mut Vec<u8>) {
    out.push(kind.as_u8());
    out.extend_from_slice(&target.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Streaming frame decoder.
///
/// [`Decoder::push`] consumes input only up to the end of the current frame,
/// so the decoder never holds more than one frame; [`Decoder::next`] then
/// hands that frame out. [`Decoder::decode`] combines both over a slice.
///
/// ```
/// use swarm_exec_proto::frame::{self, Decoder, Kind};
///
/// let mut wire = Vec::new();
/// frame::encode(Kind::Stdout, 0, b"hello", &mut wire).unwrap();
/// frame::encode_exit(0, 3, &mut wire);
///
/// let mut dec = Decoder::new();
/// let mut input = &wire[..];
/// let mut frames = Vec::new();
/// while let Some(f) = dec.decode(&mut input) {
///     frames.push(f.unwrap());
/// }
/// assert_eq!(frames[0].payload, b"hello");
/// assert_eq!(frames[1].exit_code(), Some(3));
/// ```
#[derive(Debug, Default)]
pub struct Decoder {
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Kind, target and payload length of the frame being read, once its
    /// header is complete and valid.
    current: Option<(Kind, u16, usize)>,
    payload: Vec<u8>,
    /// A complete frame or an error waiting for [`Decoder::next`].
    ready: Option<Result<Frame, FrameError>>,
    failed: Option<FrameError>,
}

impl Decoder {
    /// A decoder at a frame boundary.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// The error that stopped this decoder, if any.
    pub fn failed(&self) -> Option<FrameError> {
        self.failed
    }

    /// Whether the decoder sits at a frame boundary (nothing partial buffered).
    pub fn is_idle(&self) -> bool {
        self.header_len == 0 && self.current.is_none() && self.ready.is_none()
    }

    /// Consumes bytes from `input` up to the end of the current frame (or up
    /// to a header error) and returns how many were consumed. Consumes
    /// nothing while a decoded frame waits for [`Decoder::next`], or once the
    /// decoder has failed.
    pub fn push(&mut self, input: &[u8]) -> usize {
        if self.ready.is_some() || self.failed.is_some() {
            return 0;
        }
        let mut used = 0;
        if self.current.is_none() {
            let take = (HEADER_LEN - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
            self.header_len += take;
            used += take;
            if self.header_len < HEADER_LEN {
                return used;
            }
            let h = self.header;
            self.header_len = 0;
            let len = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
            match check_header(h[0], len) {
                Ok(kind) => {
                    let target = u16::from_be_bytes([h[1], h[2]]);
                    self.current = Some((kind, target, len as usize));
                    // Grow with the data rather than trusting the header.
                    self.payload = Vec::with_capacity((len as usize).min(64 * 1024));
                }
                Err(e) => {
                    self.failed = Some(e);
                    self.ready = Some(Err(e));
                    return used;
                }
            }
        }
        if let Some((kind, target, len)) = self.current {
            let rest = &input[used..];
            let take = (len - self.payload.len()).min(rest.len());
            self.payload.extend_from_slice(&rest[..take]);
            used += take;
            if self.payload.len() == len {
                self.current = None;
                self.ready = Some(Ok(Frame {
                    kind,
                    target,
                    payload: std::mem::take(&mut self.payload),
                }));
            }
        }
        used
    }

    /// Takes the frame (or error) completed by [`Decoder::push`]. Each error
    /// is returned once; the decoder then stays failed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Frame, FrameError>> {
        self.ready.take()
    }

    /// Feeds `input` and returns the next frame, advancing `input` past what
    /// was consumed. Returns `None` once `input` is exhausted without
    /// completing a frame (the partial frame stays buffered) or after the
    /// decoder failed (leaving the rest of `input` unconsumed).
    pub fn decode(&mut self, input: &mut &[u8]) -> Option<Result<Frame, FrameError>> {
        loop {
            if let Some(r) = self.ready.take() {
                return Some(r);
            }
            if input.is_empty() || self.failed.is_some() {
                return None;
            }
            let n = self.push(input);
            *input = &input[n..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_chunks(chunks: &[&[u8]]) -> Vec<Result<Frame, FrameError>> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for c in chunks {
            let mut input = *c;
            while let Some(r) = d.decode(&mut input) {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn wire_format() {
        let mut out = Vec::new();
        encode(Kind::Stdout, 0x0102, b"hi", &mut out).unwrap();
        assert_eq!(out, [2, 1, 2, 0, 0, 0, 2, b'h', b'i']);
        out.clear();
        encode_exit(3, -2, &mut out);
        assert_eq!(out, [5, 0, 3, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe]);
        out.clear();
        encode_resize(0, 24, 80, &mut out);
        assert_eq!(out, [6, 0, 0, 0, 0, 0, 4, 0, 24, 0, 80]);
        out.clear();
        encode_signal(1, 15, &mut out);
        assert_eq!(out, [7, 0, 1, 0, 0, 0, 1, 15]);
        out.clear();
        encode_stdin_eof(0, &mut out);
        encode_ready(0, &mut out);
        assert_eq!(out, [4, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0]);
        out.clear();
        encode_failure(0, "no", &mut out);
        assert_eq!(out, [8, 0, 0, 0, 0, 0, 2, b'n', b'o']);
    }

    #[test]
    fn accessors() {
        let mut out = Vec::new();
        encode_exit(0, 42, &mut out);
        encode_resize(0, 50, 132, &mut out);
        encode_signal(0, 9, &mut out);
        encode_failure(0, "boom", &mut out);
        let f: Vec<Frame> = decode_chunks(&[&out])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(f[0].exit_code(), Some(42));
        assert_eq!(f[0].resize(), None);
        assert_eq!(f[1].resize(), Some((50, 132)));
        assert_eq!(f[2].signal(), Some(9));
        assert_eq!(f[3].failure_message().as_deref(), Some("boom"));
        assert_eq!(f[3].exit_code(), None);
    }

    #[test]
    fn encode_rejects() {
        let mut out = Vec::new();
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert_eq!(
            encode(Kind::Stdout, 0, &big, &mut out),
            Err(FrameError::Oversize(MAX_PAYLOAD as u32 + 1))
        );
        assert_eq!(
            encode(Kind::Exit, 0, &[1], &mut out),
            Err(FrameError::BadLength {
                kind: Kind::Exit,
                len: 1
            })
        );
        assert!(out.is_empty());
        encode_data(Kind::Stdout, 0, &big, &mut out).unwrap();
        let f = decode_chunks(&[&out]);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].as_ref().unwrap().payload.len(), MAX_PAYLOAD);
        assert_eq!(f[1].as_ref().unwrap().payload.len(), 1);
    }

    #[test]
    fn decoder_errors() {
        assert_eq!(
            decode_chunks(&[&[0, 0, 0, 0, 0, 0, 0]]),
            vec![Err(FrameError::UnknownKind(0))]
        );
        assert_eq!(
            decode_chunks(&[&[10, 0, 0, 0, 0, 0, 0]]),
            vec![Err(FrameError::UnknownKind(10))]
        );
        assert_eq!(
            decode_chunks(&[&[2, 0, 0, 0x00, 0x10, 0x00, 0x01]]),
            vec![Err(FrameError::Oversize(0x100001))]
        );
        assert_eq!(
            decode_chunks(&[&[7, 0, 0, 0, 0, 0, 2, 1, 2]]),
            vec![Err(FrameError::BadLength {
                kind: Kind::Signal,
                len: 2
            })]
        );
        // After an error: nothing more, error reported once, input left.
        let mut d = Decoder::new();
        let wire = [0u8, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0];
        let mut input = &wire[..];
        assert_eq!(d.decode(&mut input), Some(Err(FrameError::UnknownKind(0))));
        assert_eq!(d.decode(&mut input), None);
        assert_eq!(input.len(), 7);
        assert_eq!(d.push(input), 0);
        assert_eq!(d.next(), None);
        assert_eq!(d.failed(), Some(FrameError::UnknownKind(0)));
        assert!(FrameError::Oversize(5).to_string().contains("exceeds"));
    }

    #[test]
    fn push_stops_at_frame_end() {
        let mut wire = Vec::new();
        encode(Kind::Stdin, 0, b"abc", &mut wire).unwrap();
        encode(Kind::Stdin, 1, b"de", &mut wire).unwrap();
        let mut d = Decoder::new();
        assert!(d.is_idle());
        assert_eq!(d.push(&wire), 10);
        assert_eq!(d.push(&wire[10..]), 0, "frame pending");
        assert_eq!(d.next().unwrap().unwrap().payload, b"abc");
        assert_eq!(d.push(&wire[10..12]), 2);
        assert!(!d.is_idle());
        assert_eq!(d.next(), None);
        assert_eq!(d.push(&wire[12..]), 7);
        let f = d.next().unwrap().unwrap();
        assert_eq!(
            (f.kind, f.target, &f.payload[..]),
            (Kind::Stdin, 1, &b"de"[..])
        );
        assert!(d.is_idle());
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (
            prop::sample::select(Kind::ALL.to_vec()),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..600),
        )
            .prop_map(|(kind, target, mut payload)| {
                if let Some(n) = kind.fixed_len() {
                    payload.resize(n, 7);
                }
                Frame {
                    kind,
                    target,
                    payload,
                }
            })
    }

    proptest! {
        #[test]
        fn round_trip_any_chunking(
            frames in prop::collection::vec(arb_frame(), 0..20),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let mut wire = Vec::new();
            for f in &frames {
                f.encode_into(&mut wire).unwrap();
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts {
                chunks.push(&wire[prev..c]);
                prev = c;
            }
            chunks.push(&wire[prev..]);
            let got: Vec<Frame> = decode_chunks(&chunks).into_iter().map(|r| r.unwrap()).collect();
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..10),
        ) {
            let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
            let res = decode_chunks(&refs);
            // At most one error, and it is the last result.
            let errs = res.iter().filter(|r| r.is_err()).count();
            prop_assert!(errs <= 1);
            if errs == 1 {
                prop_assert!(res.last().unwrap().is_err());
            }
            for f in res.into_iter().flatten() {
                prop_assert!(f.payload.len() <= MAX_PAYLOAD);
                if let Some(n) = f.kind.fixed_len() {
                    prop_assert_eq!(f.payload.len(), n);
                }
            }
        }

        #[test]
        fn small_kinds_never_panic(
            data in prop::collection::vec(prop_oneof![0u8..12, Just(0xff)], 0..200),
        ) {
            let _ = decode_chunks(&[&data]);
        }
    }
}
