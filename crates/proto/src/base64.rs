//! Standard base64 (RFC 4648 §4: alphabet `A–Z a–z 0–9 + /`, `=` padding).
//!
//! Used by [`crate::line`] to carry arbitrary bytes through transports that
//! only preserve short ASCII lines. The decoder is strict (length must be a
//! multiple of 4, padding only at the end, unused trailing bits must be zero)
//! so that a corrupted line is reported instead of silently yielding
//! different bytes, and it never panics on any input.

use std::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Marks bytes that are not part of the alphabet in [`DECODE`].
const INVALID: u8 = 0xff;

/// Reverse lookup table: byte → 6-bit value, or [`INVALID`].
const DECODE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Why [`decode`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The input length is not a multiple of 4.
    InvalidLength(usize),
    /// The byte at `index` is neither in the alphabet nor valid padding.
    InvalidByte {
        /// Offset of the offending byte in the input.
        index: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The last quantum has non-zero unused bits (non-canonical encoding).
    TrailingBits,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::InvalidLength(n) => {
                write!(f, "base64 length {n} is not a multiple of 4")
            }
            DecodeError::InvalidByte { index, byte } => {
                write!(f, "invalid base64 byte 0x{byte:02x} at offset {index}")
            }
            DecodeError::TrailingBits => f.write_str("non-canonical base64 (trailing bits set)"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Length of the padded encoding of `n` input bytes.
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Appends the padded base64 encoding of `input` to `out`.
pub fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(input.len()));
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// Returns the padded base64 encoding of `input`.
pub fn encode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(encoded_len(input.len()));
    encode_into(input, &mut out);
    // The alphabet and '=' are ASCII, so this cannot fail; avoid a panic path
    // anyway.
    String::from_utf8(out).unwrap_or_default()
}

/// Decodes padded standard base64. The empty input decodes to no bytes.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    decode_into(input, &mut out)?;
    Ok(out)
}

/// Decodes padded standard base64, appending to `out`. On error `out` may
/// have been partially extended.
pub fn decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if input.len() % 4 != 0 {
        return Err(DecodeError::InvalidLength(input.len()));
    }
    let quads = input.len() / 4;
    for (q, quad) in input.chunks_exact(4).enumerate() {
        let base = q * 4;
        let last = q + 1 == quads;
        // Number of '=' at the end of this quantum (only allowed in the last).
        let pad = if last {
            match (quad[2], quad[3]) {
                (b'=', b'=') => 2,
                (_, b'=') => 1,
                _ => 0,
            }
        } else {
            0
        };
        let mut n: u32 = 0;
        for (i, &b) in quad[..4 - pad].iter().enumerate() {
            let v = DECODE[b as usize];
            if v == INVALID {
                return Err(DecodeError::InvalidByte {
                    index: base + i,
                    byte: b,
                });
            }
            n |= u32::from(v) << (18 - 6 * i);
        }
        match pad {
            0 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]),
            1 => {
                if n & 0xff != 0 {
                    return Err(DecodeError::TrailingBits);
                }
                out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8]);
            }
            _ => {
                if n & 0xffff != 0 {
                    return Err(DecodeError::TrailingBits);
                }
                out.push((n >> 16) as u8);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4648_vectors() {
        let v: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xff, 0xfe, 0xfd], "//79"),
            (&[0xfb, 0xef], "++8="),
        ];
        for (raw, enc) in v {
            assert_eq!(encode(raw), *enc);
            assert_eq!(decode(enc.as_bytes()).unwrap(), *raw);
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode(b"Zg="), Err(DecodeError::InvalidLength(3)));
        assert_eq!(decode(b"Z"), Err(DecodeError::InvalidLength(1)));
        assert_eq!(
            decode(b"Zm9v!A=="),
            Err(DecodeError::InvalidByte {
                index: 4,
                byte: b'!'
            })
        );
        // Padding in a non-final quantum.
        assert!(decode(b"Zg==Zg==").is_err());
        // '=' in the first two positions.
        assert!(decode(b"=Zg=").is_err());
        assert!(decode(b"Z===").is_err());
        assert!(decode(b"====").is_err());
        // "Zh==" has non-zero unused bits.
        assert_eq!(decode(b"Zh=="), Err(DecodeError::TrailingBits));
        assert_eq!(decode(b"Zm9=").unwrap_err(), DecodeError::TrailingBits);
        // Line breaks and spaces are not accepted.
        assert!(decode(b"Zm9v\nYmFy").is_err());
        assert!(decode(b"Zm9 ").is_err());
        // Non-ASCII.
        assert!(decode(&[0xc3, 0xa9, b'A', b'A']).is_err());
    }

    #[test]
    fn display() {
        assert_eq!(
            DecodeError::InvalidByte {
                index: 3,
                byte: b'!'
            }
            .to_string(),
            "invalid base64 byte 0x21 at offset 3"
        );
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let enc = encode(&data);
            prop_assert_eq!(enc.len(), encoded_len(data.len()));
            prop_assert!(enc.bytes().all(|b| ALPHABET.contains(&b) || b == b'='));
            prop_assert_eq!(decode(enc.as_bytes()).unwrap(), data);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(raw) = decode(&data) {
                // Strict decoding: whatever is accepted is canonical.
                let enc = encode(&raw);
                prop_assert_eq!(enc.as_bytes(), &data[..]);
            }
        }

        #[test]
        fn decode_never_panics_near_alphabet(
            data in proptest::collection::vec(
                prop_oneof![Just(b'='), Just(b'A'), Just(b'/'), Just(b'g'), Just(b'h'), Just(b'!')],
                0..64,
            )
        ) {
            if let Ok(raw) = decode(&data) {
                let enc = encode(&raw);
                prop_assert_eq!(enc.as_bytes(), &data[..]);
            }
        }
    }
}
