//! Demultiplexer for Docker's attach/exec stream (non-TTY mode).
//!
//! The stream is a sequence of frames: an 8-byte header `[stream, 0, 0, 0,
//! size u32 BE]` followed by `size` bytes. Stream 0 is stdin (written to
//! stdout by the engine), 1 stdout, 2 stderr, 3 "systemerr" (an engine error
//! message, newer engines only).
//!
//! [`Demux`] is incremental and does not buffer payloads: it hands out
//! slices of the input as they arrive, so a payload split across reads comes
//! out as several pieces.

/// Which stream a payload piece belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout (or stdin echoed to stdout, stream 0).
    Stdout,
    /// stderr.
    Stderr,
    /// An engine error message (stream 3).
    SystemErr,
}

/// Incremental demultiplexer state.
#[derive(Debug, Default)]
pub struct Demux {
    header: [u8; 8],
    header_len: usize,
    stream: Option<Stream>,
    remaining: usize,
}

impl Demux {
    /// A demultiplexer at the start of a stream.
    pub fn new() -> Demux {
        Demux::default()
    }

    /// Whether the input so far ended exactly at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.remaining == 0
    }

    /// Feeds bytes; calls `out` for each non-empty payload piece in order.
    /// Stops at the first error returned by `out` or found in a header.
    pub fn feed<E>(
        &mut self,
        mut input: &[u8],
        mut out: impl FnMut(Stream, &[u8]) -> Result<(), E>,
        bad_header: impl Fn() -> E,
    ) -> Result<(), E> {
        while !input.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(input.len());
                self.remaining -= take;
                let (piece, rest) = input.split_at(take);
                input = rest;
                if let Some(s) = self.stream {
                    out(s, piece)?;
                }
                continue;
            }
            let take = (8 - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
            self.header_len += take;
            input = &input[take..];
            if self.header_len < 8 {
                break;
            }
            self.header_len = 0;
            let h = self.header;
            if h[1] != 0 || h[2] != 0 || h[3] != 0 {
                return Err(bad_header());
            }
            self.stream = Some(match h[0] {
                0 | 1 => Stream::Stdout,
                2 => Stream::Stderr,
                3 => Stream::SystemErr,
                _ => return Err(bad_header()),
            });
            self.remaining = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    type Pieces = Vec<(Stream, Vec<u8>)>;

    /// Demuxes `chunks`, merging consecutive pieces of the same stream;
    /// also tells whether the input ended at a frame boundary.
    fn run(chunks: &[&[u8]]) -> Result<(Pieces, bool), &'static str> {
        let mut d = Demux::new();
        let mut got: Pieces = Vec::new();
        for c in chunks {
            d.feed(
                c,
                |s, p| {
                    assert!(!p.is_empty());
                    match got.last_mut() {
                        Some((ls, lp)) if *ls == s => lp.extend_from_slice(p),
                        _ => got.push((s, p.to_vec())),
                    }
                    Ok(())
                },
                || "bad header",
            )?;
        }
        Ok((got, d.at_boundary()))
    }

    fn stream_fixture() -> (Vec<u8>, Pieces) {
        let mut wire = Vec::new();
        wire.extend(frame(1, b"out\n"));
        wire.extend(frame(1, b"")); // empty frame
        wire.extend(frame(1, b"more"));
        wire.extend(frame(2, b"err\n"));
        let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        wire.extend(frame(1, &big));
        wire.extend(frame(0, b"stdin-echo"));
        wire.extend(frame(3, b"oci runtime error"));
        let out_all = b"out\nmore".to_vec();
        let mut big_and_echo = big.clone();
        big_and_echo.extend_from_slice(b"stdin-echo");
        let want = vec![
            (Stream::Stdout, out_all),
            (Stream::Stderr, b"err\n".to_vec()),
            (Stream::Stdout, big_and_echo),
            (Stream::SystemErr, b"oci runtime error".to_vec()),
        ];
        (wire, want)
    }

    #[test]
    fn whole_stream() {
        let (wire, want) = stream_fixture();
        assert_eq!(run(&[&wire]), Ok((want, true)));
    }

    #[test]
    fn split_at_every_offset_in_two() {
        let (wire, want) = stream_fixture();
        // Every split point within the first frames, and around the big one.
        let points: Vec<usize> = (0..60).chain(wire.len() - 60..=wire.len()).collect();
        for i in points {
            let (a, b) = wire.split_at(i);
            assert_eq!(run(&[a, b]), Ok((want.clone(), true)), "split at {i}");
        }
    }

    #[test]
    fn byte_by_byte_and_awkward_sizes() {
        let (wire, want) = stream_fixture();
        for size in [1usize, 2, 3, 5, 7, 8, 9, 13, 4096, 65536] {
            let chunks: Vec<&[u8]> = wire.chunks(size).collect();
            assert_eq!(run(&chunks), Ok((want.clone(), true)), "chunk size {size}");
        }
    }

    #[test]
    fn truncated_stream_is_not_at_boundary() {
        let w = frame(1, b"abcdef");
        assert_eq!(
            run(&[&w[..10]]),
            Ok((vec![(Stream::Stdout, b"ab".to_vec())], false))
        );
        assert_eq!(run(&[&w[..5]]), Ok((vec![], false)));
        assert_eq!(run(&[]), Ok((vec![], true)));
    }

    #[test]
    fn rejects_non_multiplexed_data() {
        assert_eq!(run(&[b"hello world\n"]), Err("bad header"));
        assert_eq!(run(&[&[4, 0, 0, 0, 0, 0, 0, 1, b'x']]), Err("bad header"));
        let mut w = frame(1, b"ok");
        w.extend_from_slice(&[1, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(run(&[&w]), Err("bad header"));
    }

    #[test]
    fn callback_error_stops() {
        let w = frame(1, b"abc");
        let mut d = Demux::new();
        let mut calls = 0;
        let r = d.feed(
            &w,
            |_, _| {
                calls += 1;
                Err("stop")
            },
            || "bad",
        );
        assert_eq!((r, calls), (Err("stop"), 1));
    }
}
