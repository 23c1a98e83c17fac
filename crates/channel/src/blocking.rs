//! Blocking conveniences over `std::io::{Read, Write}` (used by the helper).
//!
//! They work on `dyn` streams so that only one copy of each is linked.

use std::io::{self, Read, Write};

use crate::handshake::{CLIENT_RECORD_LEN, SERVER_RECORD_LEN};
use crate::record::{Channel, Opener, RecordReader, Sealer};
use crate::{
    ClientHandshake, Error, Key, ServerHandshake, LEN_PREFIX, MAX_PLAINTEXT, SERVER_HELLO_LEN,
};

trait Stream: Read + Write {}
impl<S: Read + Write + ?Sized> Stream for S {}

/// Runs the server handshake on a freshly accepted stream.
///
/// Reads exactly the handshake bytes, so nothing that follows is lost. On
/// error, drop the stream. Set a read timeout first: a peer that sends
/// nothing blocks this forever.
pub fn accept<S: Read + Write>(stream: &mut S, key: &Key) -> Result<Channel, Error> {
    accept_dyn(stream, key)
}

fn accept_dyn(s: &mut dyn Stream, key: &Key) -> Result<Channel, Error> {
    let (mut hs, hello) = ServerHandshake::new(key)?;
    s.write_all(&hello)?;
    s.flush()?;
    let mut buf = [0u8; LEN_PREFIX + CLIENT_RECORD_LEN];
    let mut out = Vec::new();
    // The length prefix alone lets the handshake reject garbage early.
    read_exact(s, &mut buf[..LEN_PREFIX])?;
    hs.push(&buf[..LEN_PREFIX], &mut out)?;
    read_exact(s, &mut buf[LEN_PREFIX..])?;
    let Some((ch, _)) = hs.push(&buf[LEN_PREFIX..], &mut out)? else {
        return Err(Error::Handshake);
    };
    s.write_all(&out)?;
    s.flush()?;
    Ok(ch)
}

/// Runs the client handshake on a freshly connected stream.
///
/// Reads exactly the handshake bytes, so nothing that follows is lost.
pub fn connect<S: Read + Write>(stream: &mut S, key: &Key) -> Result<Channel, Error> {
    connect_dyn(stream, key)
}

fn connect_dyn(s: &mut dyn Stream, key: &Key) -> Result<Channel, Error> {
    let mut hs = ClientHandshake::new(key)?;
    let mut buf = [0u8; SERVER_HELLO_LEN];
    let mut out = Vec::new();
    read_exact(s, &mut buf[..crate::MAGIC.len()])?;
    hs.push(&buf[..crate::MAGIC.len()], &mut out)?;
    read_exact(s, &mut buf[crate::MAGIC.len()..])?;
    hs.push(&buf[crate::MAGIC.len()..], &mut out)?;
    s.write_all(&out)?;
    s.flush()?;
    let mut buf = [0u8; LEN_PREFIX + SERVER_RECORD_LEN];
    read_exact(s, &mut buf[..LEN_PREFIX])?;
    hs.push(&buf[..LEN_PREFIX], &mut out)?;
    read_exact(s, &mut buf[LEN_PREFIX..])?;
    match hs.push(&buf[LEN_PREFIX..], &mut out)? {
        Some((ch, _)) => Ok(ch),
        None => Err(Error::Handshake),
    }
}

/// `read_exact`, with end of stream reported as [`Error::Truncated`].
fn read_exact(r: &mut dyn Stream, buf: &mut [u8]) -> Result<(), Error> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::Truncated,
        _ => Error::Io(e),
    })
}

impl Sealer {
    /// Seals `data` and writes the records to `w` (a record at a time, so
    /// memory stays bounded). Does not flush. Empty `data` sends one empty
    /// record.
    pub fn write_all(&mut self, w: &mut dyn Write, data: &[u8]) -> io::Result<()> {
        let mut out = Vec::new();
        let mut rest = data;
        loop {
            let n = rest.len().min(MAX_PLAINTEXT);
            out.clear();
            self.seal(&rest[..n], &mut out);
            w.write_all(&out)?;
            rest = &rest[n..];
            if rest.is_empty() {
                return Ok(());
            }
        }
    }
}

impl Opener {
    /// Reads from `r` through `reader` until a whole record is in, and opens
    /// it. `Ok(None)` on end of stream at a record boundary (which is not
    /// authenticated: the application protocol must mark its own end); end
    /// of stream inside a record is [`Error::Truncated`].
    pub fn read_record(
        &mut self,
        r: &mut dyn Read,
        reader: &mut RecordReader,
    ) -> Result<Option<Vec<u8>>, Error> {
        loop {
            if let Some(body) = reader.next() {
                return self.open(&body?).map(Some);
            }
            if reader.fill_from(r)? == 0 {
                return match reader.buffered() {
                    0 => Ok(None),
                    _ => Err(Error::Truncated),
                };
            }
        }
    }
}

impl Channel {
    /// See [`Sealer::write_all`].
    pub fn write_all(&mut self, w: &mut dyn Write, data: &[u8]) -> io::Result<()> {
        self.halves().0.write_all(w, data)
    }

    /// See [`Opener::read_record`].
    pub fn read_record(
        &mut self,
        r: &mut dyn Read,
        reader: &mut RecordReader,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.halves().1.read_record(r, reader)
    }
}
