//! An authenticated, encrypted byte channel between `swarm-exec` and
//! `swarm-exec-helper` over an untrusted TCP link.
//!
//! Docker overlay networks carry VXLAN traffic in plaintext, and the CLI
//! reaches the helper through a dumb byte-forwarding relay, so everything on
//! the link is assumed readable and writable by an attacker. Both ends share
//! a 32-byte per-session [`Key`]: the CLI generates it and hands it to the
//! helper as a swarm secret. The crypto is XChaCha20-Poly1305 from the
//! RustCrypto `chacha20poly1305` crate (pure Rust, no C); this crate only
//! frames records and builds nonces and associated data.
//!
//! The core is sans-IO ([`ServerHandshake`], [`ClientHandshake`],
//! [`Channel`], [`RecordReader`]) so the async CLI can drive it from its own
//! sockets; [`accept`], [`connect`], [`Channel::write_all`] and
//! [`Channel::read_record`] are small blocking conveniences over
//! `std::io::{Read, Write}` for the helper.
//!
//! # Protocol (`sxc1`)
//!
//! The *server* is the side that listens (the helper); the *client* connects
//! (the CLI, through the relay).
//!
//! ## Handshake
//!
//! 1. server → client, in clear: the magic `b"sxc1"` followed by a fresh
//!    32-byte random `challenge` (36 bytes, [`SERVER_HELLO_LEN`]).
//! 2. client → server: record #0 of the client-to-server direction, whose
//!    plaintext is `b"hello"`.
//! 3. the server opens it; a wrong key, garbage, or a record of the wrong
//!    length is an error ([`Error::Auth`]), after which the caller drops that
//!    connection and may keep listening for the right peer. Then server →
//!    client: record #0 of the server-to-client direction with plaintext
//!    `b"ok"`. The client opens it, which authenticates the server (it knows
//!    the key and answered this very challenge).
//!
//! Data records follow in both directions, starting at sequence number 1.
//!
//! Why this is enough: the client's `hello` is bound to a challenge the
//! server has just drawn, so a recorded `hello` from an earlier connection
//! does not open; the server's `ok` is bound to the same challenge and to the
//! other direction, so it can neither come from another connection nor be
//! the client's own record reflected back. Only a holder of the key can
//! produce either. There is no key exchange: the key is already a fresh
//! random per-session secret, and each connection is separated from the
//! others by its challenge.
//!
//! ## Records
//!
//! ```text
//! len: u32 BE | nonce: [u8; 24] | ciphertext | tag: [u8; 16]
//!              \_________________ len bytes ____________________/
//! AAD = b"sx-chan1" || dir || challenge (32 bytes) || seq (u64 BE)
//! ```
//!
//! * `dir` is `b'C'` for client → server records and `b'S'` for
//!   server → client records;
//! * `seq` counts the records of that direction from 0 (the handshake
//!   records are #0); the receiver uses its own count, never one from the
//!   wire.
//!
//! The AAD binds every record to its direction, its connection (challenge)
//! and its position, so a replayed, reordered, dropped, reflected or
//! cross-connection record fails to open ([`Error::Auth`]), and every later
//! record fails too: after a failure the receiving half refuses everything.
//!
//! A record carries at most [`MAX_PLAINTEXT`] (64 KiB) of plaintext;
//! [`Channel::seal`] splits larger input. A length prefix above
//! [`MAX_RECORD_LEN`] ([`Error::TooLong`]) or below [`MIN_RECORD_LEN`]
//! ([`Error::TooShort`]) is rejected as soon as its 4 bytes are seen, before
//! anything is allocated for it.
//!
//! ## Nonces
//!
//! The key is shared by every connection attempt of a session (and by both
//! directions), so a nonce must never repeat under it. The receiver treats
//! the 24-byte nonce as opaque. The sender fills it with 16 bytes drawn from
//! `/dev/urandom` once per direction and connection, followed by the record's
//! `seq` (u64 BE): unique within a direction by construction, and across
//! directions, connections and reconnects unless two independent 128-bit
//! random values collide (negligible; a 192-bit nonce leaves room for that).
//! This is as strong as a fresh random nonce per record, and it keeps
//! [`Channel::seal`] infallible and free of system calls.
//!
//! ## What it does not do
//!
//! * A clean end of stream at a record boundary is not authenticated: an
//!   attacker can cut the connection. The application protocol must carry its
//!   own explicit end (e.g. the exit frame).
//! * Record lengths and timing are visible to the relay and the network.
//! * No forward secrecy: whoever learns the session key can read recorded
//!   traffic of that session. The key lives only as long as the session.
//! * Denial of service is out of scope: a peer can always stall or cut the
//!   link. Callers should set read timeouts on the handshake.
//!
//! The helper links this crate, so it avoids formatting machinery and
//! generic code where it can: blocking functions take `&mut dyn Read` /
//! `&mut dyn Write` internally.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod blocking;
mod handshake;
mod record;

use std::fmt;
use std::io::{self, Read};

pub use blocking::{accept, connect};
pub use handshake::{ClientHandshake, ServerHandshake};
pub use record::{Channel, Opener, RecordReader, Sealer};

/// Length of a session key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the server's random challenge in bytes.
pub const CHALLENGE_LEN: usize = 32;
/// The magic that opens the server hello.
pub const MAGIC: [u8; 4] = *b"sxc1";
/// Length of the server hello: [`MAGIC`] + challenge.
pub const SERVER_HELLO_LEN: usize = MAGIC.len() + CHALLENGE_LEN;
/// Length of the XChaCha20 nonce at the start of each record body.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag at the end of each record body.
pub const TAG_LEN: usize = 16;
/// Length of the big-endian `u32` that precedes each record body.
pub const LEN_PREFIX: usize = 4;
/// Largest plaintext carried by one record (64 KiB).
pub const MAX_PLAINTEXT: usize = 64 * 1024;
/// Largest valid record body (the value of the length prefix).
pub const MAX_RECORD_LEN: usize = NONCE_LEN + MAX_PLAINTEXT + TAG_LEN;
/// Smallest valid record body (an empty plaintext).
pub const MIN_RECORD_LEN: usize = NONCE_LEN + TAG_LEN;

/// A 32-byte session key shared by both ends.
///
/// Its `Debug` output does not show the bytes.
#[derive(Clone)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A fresh random key read from `/dev/urandom`.
    pub fn generate() -> io::Result<Key> {
        let mut k = [0u8; KEY_LEN];
        fill_random(&mut k)?;
        Ok(Key(k))
    }

    /// A key from exactly [`KEY_LEN`] bytes (e.g. the content of the secret
    /// file), else [`Error::KeyLength`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, Error> {
        match <[u8; KEY_LEN]>::try_from(bytes) {
            Ok(k) => Ok(Key(k)),
            Err(_) => Err(Error::KeyLength),
        }
    }

    /// The raw key bytes (e.g. to write the secret).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Which end of the channel this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The connecting side (the CLI); sends with direction `b'C'`.
    Client,
    /// The listening side (the helper); sends with direction `b'S'`.
    Server,
}

impl Role {
    /// The direction byte of the records this role sends.
    fn send_dir(self) -> u8 {
        match self {
            Role::Client => b'C',
            Role::Server => b'S',
        }
    }

    /// The direction byte of the records this role receives.
    fn recv_dir(self) -> u8 {
        match self {
            Role::Client => b'S',
            Role::Server => b'C',
        }
    }
}

/// What went wrong. After any error but [`Error::Io`] with a transient kind,
/// the connection should be dropped.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the stream (or `/dev/urandom`) failed.
    Io(io::Error),
    /// A key was not exactly [`KEY_LEN`] bytes.
    KeyLength,
    /// The server hello did not start with [`MAGIC`].
    BadMagic,
    /// A record failed to open: wrong key, tampered, replayed, reordered,
    /// reflected, from another connection, or after an earlier failure. Also
    /// a handshake record of the wrong length.
    Auth,
    /// An authentic handshake record had an unexpected content, or the
    /// handshake was driven after it had finished.
    Handshake,
    /// A length prefix above [`MAX_RECORD_LEN`].
    TooLong,
    /// A length prefix below [`MIN_RECORD_LEN`].
    TooShort,
    /// The stream ended inside the hello or a record.
    Truncated,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Error::Io(e) => return fmt::Display::fmt(e, f),
            Error::KeyLength => "channel key is not 32 bytes",
            Error::BadMagic => "not a swarm-exec channel (bad magic)",
            Error::Auth => "channel authentication failed",
            Error::Handshake => "unexpected channel handshake message",
            Error::TooLong => "channel record too long",
            Error::TooShort => "channel record too short",
            Error::Truncated => "channel stream truncated",
        };
        f.write_str(s)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Fills `buf` from `/dev/urandom`.
fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

#[cfg(test)]
mod tests;
