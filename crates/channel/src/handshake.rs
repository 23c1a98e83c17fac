//! The sans-IO handshake state machines.

use std::fmt;

use crate::record::{Channel, Opener, RecordReader, Sealer, NONCE_PREFIX_LEN};
use crate::{
    fill_random, Error, Key, Role, CHALLENGE_LEN, LEN_PREFIX, MAGIC, NONCE_LEN, SERVER_HELLO_LEN,
    TAG_LEN,
};

/// Plaintext of the client's record #0.
const HELLO: &[u8] = b"hello";
/// Plaintext of the server's record #0.
const OK: &[u8] = b"ok";
/// Body length of the client's record #0.
pub(crate) const CLIENT_RECORD_LEN: usize = NONCE_LEN + HELLO.len() + TAG_LEN;
/// Body length of the server's record #0.
pub(crate) const SERVER_RECORD_LEN: usize = NONCE_LEN + OK.len() + TAG_LEN;

/// The body of the record at the start of `buf` if it is complete; a length
/// prefix other than `len` is [`Error::Auth`] at once (a handshake record
/// has a known size, so garbage is rejected without waiting for more).
fn expect_record(buf: &[u8], len: usize) -> Result<Option<&[u8]>, Error> {
    let Some(h) = buf.get(..LEN_PREFIX) else {
        return Ok(None);
    };
    if u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize != len {
        return Err(Error::Auth);
    }
    Ok(buf.get(LEN_PREFIX..LEN_PREFIX + len))
}

/// The listening side's handshake.
///
/// [`ServerHandshake::new`] gives the hello to send; then every byte received
/// goes to [`ServerHandshake::push`] until it returns the channel. On error,
/// drop the connection (and keep listening if you like).
pub struct ServerHandshake {
    /// `None` once finished or failed.
    state: Option<(Sealer, Opener)>,
    buf: Vec<u8>,
}

impl ServerHandshake {
    /// Draws a fresh challenge; returns the state and the hello to send.
    pub fn new(key: &Key) -> Result<(ServerHandshake, [u8; SERVER_HELLO_LEN]), Error> {
        let mut rnd = [0u8; CHALLENGE_LEN + NONCE_PREFIX_LEN];
        fill_random(&mut rnd)?;
        let mut challenge = [0u8; CHALLENGE_LEN];
        challenge.copy_from_slice(&rnd[..CHALLENGE_LEN]);
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        prefix.copy_from_slice(&rnd[CHALLENGE_LEN..]);
        let mut hello = [0u8; SERVER_HELLO_LEN];
        hello[..MAGIC.len()].copy_from_slice(&MAGIC);
        hello[MAGIC.len()..].copy_from_slice(&challenge);
        let hs = ServerHandshake {
            state: Some((
                Sealer::new(key, Role::Server, &challenge, prefix),
                Opener::new(key, Role::Server, &challenge),
            )),
            buf: Vec::new(),
        };
        Ok((hs, hello))
    }

    /// Feeds bytes received from the client. Once the client's record #0 is
    /// in and authentic, appends the reply to `out` (send it) and returns the
    /// channel with a reader holding any bytes received after that record.
    pub fn push(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<(Channel, RecordReader)>, Error> {
        let res = self.step(input, out);
        if res.is_err() {
            self.state = None;
            self.buf = Vec::new();
        }
        res
    }

    fn step(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<(Channel, RecordReader)>, Error> {
        let Some((sealer, opener)) = self.state.as_mut() else {
            return Err(Error::Handshake);
        };
        self.buf.extend_from_slice(input);
        let Some(body) = expect_record(&self.buf, CLIENT_RECORD_LEN)? else {
            return Ok(None);
        };
        if opener.open(body)? != HELLO {
            return Err(Error::Handshake);
        }
        sealer.seal(OK, out);
        let reader = RecordReader::with_bytes(&self.buf[LEN_PREFIX + CLIENT_RECORD_LEN..]);
        self.buf = Vec::new();
        match self.state.take() {
            Some((sealer, opener)) => {
                Ok(Some((Channel::new(Role::Server, sealer, opener), reader)))
            }
            None => Err(Error::Handshake),
        }
    }
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerHandshake(..)")
    }
}

enum ClientState {
    /// Waiting for the server hello.
    Hello {
        key: Key,
        prefix: [u8; NONCE_PREFIX_LEN],
    },
    /// Record #0 sent; waiting for the server's record #0.
    Ok(Sealer, Opener),
    /// Finished or failed.
    Done,
}

/// The connecting side's handshake.
///
/// Every byte received goes to [`ClientHandshake::push`], which appends to
/// `out` what must be sent, until it returns the channel.
pub struct ClientHandshake {
    state: ClientState,
    buf: Vec<u8>,
}

impl ClientHandshake {
    /// A new handshake (draws this side's nonce prefix).
    pub fn new(key: &Key) -> Result<ClientHandshake, Error> {
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        fill_random(&mut prefix)?;
        Ok(ClientHandshake {
            state: ClientState::Hello {
                key: key.clone(),
                prefix,
            },
            buf: Vec::new(),
        })
    }

    /// Feeds bytes received from the server. When the server hello is in,
    /// appends record #0 to `out` (send it). When the server's record #0 is
    /// in and authentic, returns the channel with a reader holding any bytes
    /// received after that record.
    pub fn push(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<(Channel, RecordReader)>, Error> {
        let res = self.step(input, out);
        if res.is_err() {
            self.state = ClientState::Done;
            self.buf = Vec::new();
        }
        res
    }

    fn step(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<(Channel, RecordReader)>, Error> {
        if let ClientState::Done = self.state {
            return Err(Error::Handshake);
        }
        self.buf.extend_from_slice(input);
        if let ClientState::Hello { key, prefix } = &self.state {
            let n = self.buf.len().min(MAGIC.len());
            if self.buf[..n] != MAGIC[..n] {
                return Err(Error::BadMagic);
            }
            let Some(c) = self.buf.get(MAGIC.len()..SERVER_HELLO_LEN) else {
                return Ok(None);
            };
            let mut challenge = [0u8; CHALLENGE_LEN];
            challenge.copy_from_slice(c);
            let mut sealer = Sealer::new(key, Role::Client, &challenge, *prefix);
            let opener = Opener::new(key, Role::Client, &challenge);
            sealer.seal(HELLO, out);
            self.buf.drain(..SERVER_HELLO_LEN);
            self.state = ClientState::Ok(sealer, opener);
        }
        let ClientState::Ok(_, opener) = &mut self.state else {
            return Err(Error::Handshake);
        };
        let Some(body) = expect_record(&self.buf, SERVER_RECORD_LEN)? else {
            return Ok(None);
        };
        if opener.open(body)? != OK {
            return Err(Error::Handshake);
        }
        let reader = RecordReader::with_bytes(&self.buf[LEN_PREFIX + SERVER_RECORD_LEN..]);
        self.buf = Vec::new();
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::Ok(sealer, opener) => {
                Ok(Some((Channel::new(Role::Client, sealer, opener), reader)))
            }
            _ => Err(Error::Handshake),
        }
    }
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientHandshake(..)")
    }
}
