//! A one-file tar archive (POSIX ustar), for `PUT /containers/{id}/archive`:
//! how the helper puts its own binary into the sibling container that
//! signals an exec (see [`crate::kill`]). std only, like the rest of the
//! helper; the tests read the archive back with the `tar` crate.

const BLOCK: usize = 512;

/// An archive holding one regular file `name` (relative, < 100 bytes) owned
/// by root, with `mode` and `data`.
pub fn single_file(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; BLOCK];
    put(&mut header[0..100], name.as_bytes());
    octal(&mut header[100..108], u64::from(mode));
    octal(&mut header[108..116], 0); // uid
    octal(&mut header[116..124], 0); // gid
    octal(&mut header[124..136], data.len() as u64);
    octal(&mut header[136..148], 0); // mtime
    header[156] = b'0'; // a regular file
    put(&mut header[257..263], b"ustar\0");
    put(&mut header[263..265], b"00");
    // The checksum is the byte sum of the header with its own field read
    // as spaces, written as six octal digits, NUL, space.
    header[148..156].fill(b' ');
    let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    octal(&mut header[148..155], sum);

    let padded = data.len().div_ceil(BLOCK) * BLOCK;
    let mut out = Vec::with_capacity(BLOCK + padded + 2 * BLOCK);
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out.resize(BLOCK + padded, 0);
    // Two zero blocks end the archive.
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// `value` in octal, zero-padded to fill `field` but its last byte (NUL).
fn octal(field: &mut [u8], mut value: u64) {
    let digits = field.len() - 1;
    for i in (0..digits).rev() {
        field[i] = b'0' + (value & 7) as u8;
        value >>= 3;
    }
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_tar_crate_reads_it_back() {
        for len in [0usize, 1, 511, 512, 513, 500_144] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let archive = single_file(".swarm-exec-kill", 0o755, &data);
            assert_eq!(archive.len() % BLOCK, 0);
            let mut reader = ::tar::Archive::new(&archive[..]);
            let mut entries = reader.entries().unwrap();
            let mut e = entries.next().unwrap().unwrap();
            let h = e.header();
            assert_eq!(h.path().unwrap().to_str(), Some(".swarm-exec-kill"));
            assert_eq!(h.mode().unwrap(), 0o755);
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            assert_eq!(h.entry_type(), ::tar::EntryType::Regular);
            assert!(h.as_ustar().is_some(), "a ustar header");
            assert_eq!(h.cksum().unwrap(), {
                let mut copy = *h.as_bytes();
                copy[148..156].fill(b' ');
                copy.iter().map(|&b| u32::from(b)).sum::<u32>()
            });
            let mut got = Vec::new();
            e.read_to_end(&mut got).unwrap();
            assert_eq!(got, data, "len {len}");
            drop(e);
            assert!(entries.next().is_none());
        }
    }
}
