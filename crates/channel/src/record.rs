//! Records: sealing, opening and framing.

use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use crate::{
    Error, Key, Role, CHALLENGE_LEN, LEN_PREFIX, MAX_PLAINTEXT, MAX_RECORD_LEN, MIN_RECORD_LEN,
    NONCE_LEN, TAG_LEN,
};

/// Domain-separation label at the start of every record's AAD.
const AAD_LABEL: &[u8; 8] = b"sx-chan1";
/// AAD without the sequence number: label, direction, challenge.
const AAD_PREFIX_LEN: usize = AAD_LABEL.len() + 1 + CHALLENGE_LEN;
/// Full AAD: prefix + seq (u64 BE).
const AAD_LEN: usize = AAD_PREFIX_LEN + 8;
/// Random part of a sender's nonces; the rest is the sequence number.
pub(crate) const NONCE_PREFIX_LEN: usize = NONCE_LEN - 8;

fn aad_prefix(dir: u8, challenge: &[u8; CHALLENGE_LEN]) -> [u8; AAD_PREFIX_LEN] {
    let mut a = [0u8; AAD_PREFIX_LEN];
    a[..AAD_LABEL.len()].copy_from_slice(AAD_LABEL);
    a[AAD_LABEL.len()] = dir;
    a[AAD_LABEL.len() + 1..].copy_from_slice(challenge);
    a
}

fn aad(prefix: &[u8; AAD_PREFIX_LEN], seq: u64) -> [u8; AAD_LEN] {
    let mut a = [0u8; AAD_LEN];
    a[..AAD_PREFIX_LEN].copy_from_slice(prefix);
    a[AAD_PREFIX_LEN..].copy_from_slice(&seq.to_be_bytes());
    a
}

fn cipher(key: &Key) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key.as_bytes()).into())
}

/// The sending half of a [`Channel`].
pub struct Sealer {
    aead: XChaCha20Poly1305,
    aad: [u8; AAD_PREFIX_LEN],
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    seq: u64,
}

impl Sealer {
    pub(crate) fn new(
        key: &Key,
        role: Role,
        challenge: &[u8; CHALLENGE_LEN],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Sealer {
        Sealer {
            aead: cipher(key),
            aad: aad_prefix(role.send_dir(), challenge),
            nonce_prefix,
            seq: 0,
        }
    }

    /// Appends `plaintext` to `out` as one or more complete records (length
    /// prefix included), split at [`MAX_PLAINTEXT`]. An empty `plaintext`
    /// gives one empty record.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        let mut rest = plaintext;
        loop {
            let n = rest.len().min(MAX_PLAINTEXT);
            self.seal_one(&rest[..n], out);
            rest = &rest[n..];
            if rest.is_empty() {
                break;
            }
        }
    }

    fn seal_one(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        let body_len = NONCE_LEN + plaintext.len() + TAG_LEN;
        let mark = out.len();
        out.reserve(LEN_PREFIX + body_len);
        // body_len ≤ MAX_RECORD_LEN, far below u32::MAX.
        out.extend_from_slice(&(body_len as u32).to_be_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LEN..].copy_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let aad = aad(&self.aad, self.seq);
        let sealed = self.aead.encrypt_inout_detached(
            &XNonce::from(nonce),
            &aad,
            (&mut out[start..]).into(),
        );
        match sealed {
            Ok(tag) => out.extend_from_slice(&tag),
            // Only possible for inputs of 256 GiB: never leave plaintext in
            // `out`.
            Err(_) => out.truncate(mark),
        }
        self.seq = self.seq.wrapping_add(1);
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// The receiving half of a [`Channel`].
pub struct Opener {
    aead: XChaCha20Poly1305,
    aad: [u8; AAD_PREFIX_LEN],
    seq: u64,
    failed: bool,
}

impl Opener {
    pub(crate) fn new(key: &Key, role: Role, challenge: &[u8; CHALLENGE_LEN]) -> Opener {
        Opener {
            aead: cipher(key),
            aad: aad_prefix(role.recv_dir(), challenge),
            seq: 0,
            failed: false,
        }
    }

    /// Opens the next record of this direction. `record` is one record body
    /// (what follows the length prefix, as given by [`RecordReader`]).
    ///
    /// Any failure is [`Error::Auth`] (or [`Error::TooLong`] /
    /// [`Error::TooShort`]) and is final: every later call fails too.
    pub fn open(&mut self, record: &[u8]) -> Result<Vec<u8>, Error> {
        if self.failed {
            return Err(Error::Auth);
        }
        if let Err(e) = check_len(record.len()) {
            self.failed = true;
            return Err(e);
        }
        let (nonce, rest) = record.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut pt = ct.to_vec();
        let aad = aad(&self.aad, self.seq);
        let opened = match (XNonce::slice_as_array(nonce), Tag::slice_as_array(tag)) {
            (Some(nonce), Some(tag)) => {
                self.aead
                    .decrypt_inout_detached(nonce, &aad, (&mut pt[..]).into(), tag)
            }
            _ => Err(chacha20poly1305::Error),
        };
        if opened.is_err() {
            self.failed = true;
            return Err(Error::Auth);
        }
        self.seq = self.seq.wrapping_add(1);
        Ok(pt)
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Opener(..)")
    }
}

/// Checks a record body length (the value of a length prefix).
fn check_len(len: usize) -> Result<(), Error> {
    if len > MAX_RECORD_LEN {
        Err(Error::TooLong)
    } else if len < MIN_RECORD_LEN {
        Err(Error::TooShort)
    } else {
        Ok(())
    }
}

/// An established channel: both halves, for one [`Role`].
///
/// Sending and receiving are independent: [`Channel::split`] gives the
/// halves to two threads or tasks.
#[derive(Debug)]
pub struct Channel {
    role: Role,
    sealer: Sealer,
    opener: Opener,
}

impl Channel {
    pub(crate) fn new(role: Role, sealer: Sealer, opener: Opener) -> Channel {
        Channel {
            role,
            sealer,
            opener,
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// See [`Sealer::seal`].
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        self.sealer.seal(plaintext, out)
    }

    /// See [`Opener::open`].
    pub fn open(&mut self, record: &[u8]) -> Result<Vec<u8>, Error> {
        self.opener.open(record)
    }

    /// The sending and the receiving halves.
    pub fn split(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }

    /// The halves, borrowed.
    pub(crate) fn halves(&mut self) -> (&mut Sealer, &mut Opener) {
        (&mut self.sealer, &mut self.opener)
    }
}

/// Splits the byte stream from the wire into record bodies.
///
/// A length prefix is checked as soon as its 4 bytes are in, so a bogus one
/// is an error before any buffering for it. The reader holds at most one
/// incomplete record plus what was pushed since [`RecordReader::next`] last
/// returned `None`; once it has reported a bad length it ignores further
/// input.
#[derive(Debug, Default)]
pub struct RecordReader {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
}

impl RecordReader {
    /// An empty reader.
    pub fn new() -> RecordReader {
        RecordReader::default()
    }

    pub(crate) fn with_bytes(bytes: &[u8]) -> RecordReader {
        RecordReader {
            buf: bytes.to_vec(),
            pos: 0,
        }
    }

    /// Number of bytes held that are not yet part of a returned record.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends bytes received from the wire.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.header().is_some_and(|h| h.is_err()) {
            return;
        }
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete record body, `None` if more bytes are needed, or
    /// [`Error::TooLong`] / [`Error::TooShort`] for a bad length prefix (every
    /// later call returns it again).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Vec<u8>, Error>> {
        let len = match self.header()? {
            Ok(len) => len,
            Err(e) => return Some(Err(e)),
        };
        let start = self.pos + LEN_PREFIX;
        let body = self.buf.get(start..start + len)?.to_vec();
        self.pos = start + len;
        Some(Ok(body))
    }

    /// The length prefix at `pos`, if all 4 bytes are in.
    fn header(&self) -> Option<Result<usize, Error>> {
        let h = self.buf.get(self.pos..self.pos + LEN_PREFIX)?;
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        Some(check_len(len).map(|()| len))
    }

    /// Drops the consumed bytes.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Reads once from `r` into the buffer; `Ok(0)` at end of stream.
    pub(crate) fn fill_from(&mut self, r: &mut dyn std::io::Read) -> std::io::Result<usize> {
        const CHUNK: usize = 32 * 1024;
        if self.header().is_some_and(|h| h.is_err()) {
            return Ok(0);
        }
        self.compact();
        let len = self.buf.len();
        self.buf.resize(len + CHUNK, 0);
        let res = loop {
            match r.read(&mut self.buf[len..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                res => break res,
            }
        };
        let n = *res.as_ref().unwrap_or(&0);
        self.buf.truncate(len + n.min(CHUNK));
        res
    }
}
