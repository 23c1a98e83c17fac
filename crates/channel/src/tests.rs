use std::os::unix::net::UnixStream;

use super::*;

fn key(b: u8) -> Key {
    Key::from_bytes(&[b; KEY_LEN]).unwrap()
}

/// Delivers `bytes` to `f` in chunks of `k`, concatenating what it writes to
/// its output; returns the first completed handshake.
fn feed<T>(
    bytes: &[u8],
    k: usize,
    out: &mut Vec<u8>,
    mut f: impl FnMut(&[u8], &mut Vec<u8>) -> Result<Option<T>, Error>,
) -> Result<Option<T>, Error> {
    let mut done = None;
    for c in bytes.chunks(k.max(1)) {
        assert!(done.is_none(), "bytes left after the handshake finished");
        done = f(c, out)?;
    }
    Ok(done)
}

/// An established end and the bytes it has received past the handshake.
type End = (Channel, RecordReader);

/// A full sans-IO handshake, the wire bytes delivered in chunks of `k`.
fn pair_with(ck: &Key, sk: &Key, k: usize) -> Result<(End, End), Error> {
    let (mut server, hello) = ServerHandshake::new(sk)?;
    let mut client = ClientHandshake::new(ck)?;
    let mut c0 = Vec::new();
    assert!(feed(&hello, k, &mut c0, |b, o| client.push(b, o))?.is_none());
    assert_eq!(c0.len(), LEN_PREFIX + handshake::CLIENT_RECORD_LEN);
    let mut s0 = Vec::new();
    let s = feed(&c0, k, &mut s0, |b, o| server.push(b, o))?.expect("server done");
    assert_eq!(s0.len(), LEN_PREFIX + handshake::SERVER_RECORD_LEN);
    let mut none = Vec::new();
    let c = feed(&s0, k, &mut none, |b, o| client.push(b, o))?.expect("client done");
    assert!(none.is_empty());
    Ok((c, s))
}

fn pair(k: &Key) -> (Channel, Channel) {
    let ((c, cr), (s, sr)) = pair_with(k, k, 1 << 20).unwrap();
    assert_eq!(cr.buffered(), 0);
    assert_eq!(sr.buffered(), 0);
    assert_eq!(c.role(), Role::Client);
    assert_eq!(s.role(), Role::Server);
    (c, s)
}

/// Pushes `wire` into `reader` in chunks of `k` and opens every record.
fn recv_all(
    ch: &mut Channel,
    reader: &mut RecordReader,
    wire: &[u8],
    k: usize,
) -> Result<Vec<u8>, Error> {
    let mut got = Vec::new();
    for c in std::iter::once(&[][..]).chain(wire.chunks(k.max(1))) {
        reader.push(c);
        while let Some(body) = reader.next() {
            got.extend_from_slice(&ch.open(&body?)?);
        }
    }
    Ok(got)
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn handshake_and_data_both_ways() {
    let k = Key::generate().unwrap();
    let (mut c, mut s) = pair(&k);
    for (i, msg) in [&b"ls -l"[..], b"", &pattern(70_000, 1)].iter().enumerate() {
        let mut wire = Vec::new();
        c.seal(msg, &mut wire);
        assert_eq!(
            recv_all(&mut s, &mut RecordReader::new(), &wire, 1000).unwrap(),
            *msg
        );
        let mut wire = Vec::new();
        s.seal(&pattern(i * 1000, 2), &mut wire);
        assert_eq!(
            recv_all(&mut c, &mut RecordReader::new(), &wire, 1000).unwrap(),
            pattern(i * 1000, 2)
        );
    }
}

#[test]
fn arbitrary_chunking_and_pipelined_bytes() {
    let k = key(7);
    let up = pattern(150_000, 3);
    let down = pattern(99_999, 4);
    for chunk in [1, 2, 3, 4, 5, 7, 13, 36, 37, 49, 64, 1000, 65_536, 1 << 20] {
        let ((mut c, mut cr), (mut s, mut sr)) = pair_with(&k, &k, chunk).unwrap();
        let mut w_up = Vec::new();
        c.seal(&up, &mut w_up);
        let mut w_down = Vec::new();
        s.seal(&down, &mut w_down);
        assert_eq!(recv_all(&mut s, &mut sr, &w_up, chunk).unwrap(), up);
        assert_eq!(recv_all(&mut c, &mut cr, &w_down, chunk).unwrap(), down);
    }
}

#[test]
fn bytes_after_the_handshake_records_are_kept() {
    // The server's reply and its first data records arrive together, split
    // anywhere: the client's reader gets what follows the reply.
    let k = key(8);
    for split in 0..=LEN_PREFIX * 3 + handshake::SERVER_RECORD_LEN + 2 * MIN_RECORD_LEN + 11 {
        let (mut server, hello) = ServerHandshake::new(&k).unwrap();
        let mut client = ClientHandshake::new(&k).unwrap();
        let mut c0 = Vec::new();
        assert!(client.push(&hello, &mut c0).unwrap().is_none());
        let mut wire = Vec::new();
        let (mut s, sr) = server.push(&c0, &mut wire).unwrap().unwrap();
        assert_eq!(sr.buffered(), 0);
        s.seal(b"first", &mut wire);
        s.seal(b"second", &mut wire);
        let (a, b) = wire.split_at(split);
        let mut o = Vec::new();
        let mut done = client.push(a, &mut o).unwrap();
        let mut rest = b;
        if done.is_none() {
            done = client.push(b, &mut o).unwrap();
            rest = &[];
        }
        assert!(o.is_empty());
        let (mut c, mut cr) = done.unwrap();
        assert_eq!(recv_all(&mut c, &mut cr, rest, 1).unwrap(), b"firstsecond");
    }
}

#[test]
fn wrong_key_fails_on_the_server() {
    let r = pair_with(&key(1), &key(2), 1000);
    assert!(matches!(r, Err(Error::Auth)), "{r:?}");
    let r = pair_with(&key(1), &key(2), 1);
    assert!(matches!(r, Err(Error::Auth)), "{r:?}");
}

#[test]
fn wrong_key_fails_on_the_client() {
    // A server that knows key 2 answers a client of key 2; its reply, on
    // the same challenge, must not satisfy a client of key 1.
    let (mut server, hello) = ServerHandshake::new(&key(2)).unwrap();
    let mut good = ClientHandshake::new(&key(2)).unwrap();
    let mut c0 = Vec::new();
    good.push(&hello, &mut c0).unwrap();
    let mut s0 = Vec::new();
    server.push(&c0, &mut s0).unwrap().unwrap();
    let mut bad = ClientHandshake::new(&key(1)).unwrap();
    let mut o = Vec::new();
    assert!(bad.push(&hello, &mut o).unwrap().is_none());
    assert!(matches!(bad.push(&s0, &mut o), Err(Error::Auth)));
    // Failed for good.
    assert!(matches!(bad.push(&s0, &mut o), Err(Error::Handshake)));
}

#[test]
fn bad_magic_and_garbage() {
    let mut c = ClientHandshake::new(&key(1)).unwrap();
    let mut o = Vec::new();
    assert!(c.push(b"sx", &mut o).unwrap().is_none());
    assert!(matches!(c.push(b"c2", &mut o), Err(Error::BadMagic)));
    let mut c = ClientHandshake::new(&key(1)).unwrap();
    assert!(matches!(
        c.push(b"GET / HTTP/1.1\r\n", &mut o),
        Err(Error::BadMagic)
    ));
    assert!(o.is_empty());

    // The server rejects a wrong-length record as soon as the prefix is in.
    let (mut s, _) = ServerHandshake::new(&key(1)).unwrap();
    assert!(matches!(s.push(b"GET ", &mut o), Err(Error::Auth)));
    let (mut s, _) = ServerHandshake::new(&key(1)).unwrap();
    assert!(s.push(&[0, 0, 0], &mut o).unwrap().is_none());
    assert!(matches!(s.push(&[44], &mut o), Err(Error::Auth)));
    // Right length, garbage body.
    let (mut s, _) = ServerHandshake::new(&key(1)).unwrap();
    let mut rec = vec![0, 0, 0, 45];
    rec.extend_from_slice(&[0xa5; 45]);
    assert!(matches!(s.push(&rec, &mut o), Err(Error::Auth)));
    assert!(o.is_empty());
}

#[test]
fn handshake_after_finish_is_an_error() {
    let k = key(3);
    let (mut server, hello) = ServerHandshake::new(&k).unwrap();
    let mut client = ClientHandshake::new(&k).unwrap();
    let mut c0 = Vec::new();
    client.push(&hello, &mut c0).unwrap();
    let mut s0 = Vec::new();
    server.push(&c0, &mut s0).unwrap().unwrap();
    assert!(matches!(server.push(b"", &mut s0), Err(Error::Handshake)));
    client.push(&s0, &mut c0).unwrap().unwrap();
    assert!(matches!(client.push(b"", &mut c0), Err(Error::Handshake)));
}

#[test]
fn tampering_with_any_handshake_byte_fails() {
    let k = key(4);
    // Server hello (magic or challenge).
    for i in 0..SERVER_HELLO_LEN {
        let (mut server, mut hello) = ServerHandshake::new(&k).unwrap();
        hello[i] ^= 0x40;
        let mut client = ClientHandshake::new(&k).unwrap();
        let mut c0 = Vec::new();
        match client.push(&hello, &mut c0) {
            Err(Error::BadMagic) => assert!(i < MAGIC.len()),
            Ok(None) => {
                let r = server.push(&c0, &mut Vec::new());
                assert!(matches!(r, Err(Error::Auth)), "{i}: {r:?}");
            }
            r => panic!("{i}: {r:?}"),
        }
    }
    // Client record #0 and server record #0.
    for i in 0..LEN_PREFIX + handshake::CLIENT_RECORD_LEN {
        let (mut server, hello) = ServerHandshake::new(&k).unwrap();
        let mut client = ClientHandshake::new(&k).unwrap();
        let mut c0 = Vec::new();
        client.push(&hello, &mut c0).unwrap();
        c0[i] ^= 0x01;
        let r = server.push(&c0, &mut Vec::new());
        assert!(matches!(r, Err(Error::Auth)), "{i}: {r:?}");
    }
    for i in 0..LEN_PREFIX + handshake::SERVER_RECORD_LEN {
        let (mut server, hello) = ServerHandshake::new(&k).unwrap();
        let mut client = ClientHandshake::new(&k).unwrap();
        let mut c0 = Vec::new();
        client.push(&hello, &mut c0).unwrap();
        let mut s0 = Vec::new();
        server.push(&c0, &mut s0).unwrap().unwrap();
        s0[i] ^= 0x01;
        let r = client.push(&s0, &mut Vec::new());
        assert!(matches!(r, Err(Error::Auth)), "{i}: {r:?}");
    }
}

#[test]
fn tampering_with_any_data_byte_fails() {
    let k = key(5);
    let mut wire = Vec::new();
    let (mut c, _) = pair(&k);
    c.seal(b"echo secret", &mut wire);
    for i in 0..wire.len() {
        for bit in [0x01, 0x80] {
            let (mut c, mut s) = pair(&k);
            let mut w = Vec::new();
            c.seal(b"echo secret", &mut w);
            w[i] ^= bit;
            let mut reader = RecordReader::new();
            reader.push(&w);
            match reader.next() {
                // A longer length: the reader waits for bytes that never
                // come, nothing is delivered.
                None => assert!(i < LEN_PREFIX),
                Some(Err(Error::TooLong)) => assert!(i < LEN_PREFIX),
                Some(Ok(body)) => {
                    assert!(matches!(s.open(&body), Err(Error::Auth)), "{i}")
                }
                Some(r) => panic!("{i}: {r:?}"),
            }
        }
    }
}

#[test]
fn replay_reorder_reflection_and_cross_connection_fail() {
    let k = key(6);
    let seal = |ch: &mut Channel, m: &[u8]| {
        let mut w = Vec::new();
        ch.seal(m, &mut w);
        w.drain(..LEN_PREFIX);
        w
    };

    // Replay.
    let (mut c, mut s) = pair(&k);
    let r1 = seal(&mut c, b"one");
    assert_eq!(s.open(&r1).unwrap(), b"one");
    assert!(matches!(s.open(&r1), Err(Error::Auth)));

    // Reorder.
    let (mut c, mut s) = pair(&k);
    let r1 = seal(&mut c, b"one");
    let r2 = seal(&mut c, b"two");
    assert!(matches!(s.open(&r2), Err(Error::Auth)));
    // And the receiver stays failed, even for the genuine next record.
    assert!(matches!(s.open(&r1), Err(Error::Auth)));

    // Drop.
    let (mut c, mut s) = pair(&k);
    let _r1 = seal(&mut c, b"one");
    let r2 = seal(&mut c, b"two");
    assert!(matches!(s.open(&r2), Err(Error::Auth)));

    // Reflection: a record sent back to its sender, at the same position.
    let (mut c, mut s) = pair(&k);
    let rc = seal(&mut c, b"from client");
    let rs = seal(&mut s, b"from server");
    assert!(matches!(c.open(&rc), Err(Error::Auth)));
    assert!(matches!(s.open(&rs), Err(Error::Auth)));

    // Another connection with the same key, at the same position.
    let (mut c1, mut s1) = pair(&k);
    let (mut c2, mut s2) = pair(&k);
    let a = seal(&mut c1, b"to s1");
    let b = seal(&mut s1, b"to c1");
    assert!(matches!(s2.open(&a), Err(Error::Auth)));
    assert!(matches!(c2.open(&b), Err(Error::Auth)));

    // The client's handshake record replayed to another server.
    let (mut server1, hello1) = ServerHandshake::new(&k).unwrap();
    let (mut server2, _) = ServerHandshake::new(&k).unwrap();
    let mut client = ClientHandshake::new(&k).unwrap();
    let mut c0 = Vec::new();
    client.push(&hello1, &mut c0).unwrap();
    assert!(matches!(
        server2.push(&c0, &mut Vec::new()),
        Err(Error::Auth)
    ));
    assert!(server1.push(&c0, &mut Vec::new()).unwrap().is_some());
}

#[test]
fn oversize_length_is_rejected_without_allocating() {
    let mut r = RecordReader::new();
    r.push(&[0xff, 0xff]);
    assert!(r.next().is_none());
    r.push(&[0xff, 0xff, 1, 2, 3]);
    assert!(matches!(r.next(), Some(Err(Error::TooLong))));
    assert!(matches!(r.next(), Some(Err(Error::TooLong))));
    r.push(&vec![0u8; 100_000]);
    assert!(r.capacity() < 1024, "{}", r.capacity());

    let mut r = RecordReader::new();
    r.push(&((MAX_RECORD_LEN + 1) as u32).to_be_bytes());
    assert!(matches!(r.next(), Some(Err(Error::TooLong))));
    let mut r = RecordReader::new();
    r.push(&((MIN_RECORD_LEN - 1) as u32).to_be_bytes());
    assert!(matches!(r.next(), Some(Err(Error::TooShort))));

    // The largest valid length is accepted and waited for.
    let mut r = RecordReader::new();
    r.push(&(MAX_RECORD_LEN as u32).to_be_bytes());
    assert!(r.next().is_none());

    let (_, mut s) = pair(&key(9));
    assert!(matches!(
        s.open(&vec![0u8; MAX_RECORD_LEN + 1]),
        Err(Error::TooLong)
    ));
    let (_, mut s) = pair(&key(9));
    assert!(matches!(s.open(&[0u8; 39]), Err(Error::TooShort)));
}

#[test]
fn seal_splits_large_input() {
    let (mut c, mut s) = pair(&key(10));
    let data = pattern(200 * 1024, 5);
    let mut wire = Vec::new();
    c.seal(&data, &mut wire);
    let mut reader = RecordReader::new();
    reader.push(&wire);
    let mut lens = Vec::new();
    let mut got = Vec::new();
    while let Some(body) = reader.next() {
        let pt = s.open(&body.unwrap()).unwrap();
        lens.push(pt.len());
        got.extend_from_slice(&pt);
    }
    assert_eq!(lens, [65_536, 65_536, 65_536, 8 * 1024]);
    assert_eq!(got, data);
    assert_eq!(reader.buffered(), 0);
    assert_eq!(wire.len(), data.len() + 4 * (LEN_PREFIX + MIN_RECORD_LEN));

    // Exactly the maximum is one record; empty input is one empty record.
    let mut wire = Vec::new();
    c.seal(&pattern(MAX_PLAINTEXT, 6), &mut wire);
    c.seal(b"", &mut wire);
    assert_eq!(
        wire.len(),
        MAX_PLAINTEXT + 2 * (LEN_PREFIX + MIN_RECORD_LEN)
    );
    let mut reader = RecordReader::new();
    reader.push(&wire);
    assert_eq!(
        s.open(&reader.next().unwrap().unwrap()).unwrap().len(),
        MAX_PLAINTEXT
    );
    assert_eq!(s.open(&reader.next().unwrap().unwrap()).unwrap(), b"");
    assert!(reader.next().is_none());
}

#[test]
fn blocking_over_a_socket_pair_and_split() {
    let k = key(11);
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let k2 = k.clone();
    let t = std::thread::spawn(move || {
        let mut ch = accept(&mut b, &k2).unwrap();
        let mut reader = RecordReader::new();
        let mut got = Vec::new();
        while let Some(m) = ch.read_record(&mut b, &mut reader).unwrap() {
            if m == b"end" {
                break;
            }
            got.extend_from_slice(&m);
        }
        let (mut tx, _rx) = ch.split();
        tx.write_all(&mut b, &got).unwrap();
        // Clean end of stream at a record boundary.
    });
    let mut ch = connect(&mut a, &k).unwrap();
    let data = pattern(300_000, 9);
    ch.write_all(&mut a, &data).unwrap();
    ch.write_all(&mut a, b"end").unwrap();
    let mut reader = RecordReader::new();
    let mut back = Vec::new();
    while let Some(m) = ch.read_record(&mut a, &mut reader).unwrap() {
        back.extend_from_slice(&m);
    }
    t.join().unwrap();
    assert_eq!(back, data);
}

#[test]
fn blocking_wrong_key_and_truncation() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || accept(&mut b, &key(1)).map(|_| ()));
    let r = connect(&mut a, &key(2));
    // The server drops the connection: the client sees it end.
    assert!(matches!(r, Err(Error::Truncated)), "{r:?}");
    assert!(matches!(t.join().unwrap(), Err(Error::Auth)));

    // A stream that ends inside a record.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || {
        let mut ch = accept(&mut b, &key(3)).unwrap();
        let mut w = Vec::new();
        ch.seal(b"cut short", &mut w);
        use std::io::Write;
        b.write_all(&w[..w.len() - 1]).unwrap();
    });
    let mut ch = connect(&mut a, &key(3)).unwrap();
    t.join().unwrap();
    let r = ch.read_record(&mut a, &mut RecordReader::new());
    assert!(matches!(r, Err(Error::Truncated)), "{r:?}");
}

#[test]
fn keys() {
    assert!(matches!(Key::from_bytes(&[0; 31]), Err(Error::KeyLength)));
    assert!(matches!(Key::from_bytes(&[0; 33]), Err(Error::KeyLength)));
    let k = Key::from_bytes(&[7; 32]).unwrap();
    assert_eq!(k.as_bytes(), &[7; 32]);
    assert_eq!(format!("{k:?}"), "Key(..)");
    let g1 = Key::generate().unwrap();
    let g2 = Key::generate().unwrap();
    assert_ne!(g1.as_bytes(), g2.as_bytes());
    assert_eq!(Error::Auth.to_string(), "channel authentication failed");
}

#[test]
fn nonces_are_unique_per_record_and_connection() {
    let k = key(12);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let (mut c, mut s) = pair(&k);
        for _ in 0..10 {
            for ch in [&mut c, &mut s] {
                let mut w = Vec::new();
                ch.seal(b"x", &mut w);
                assert!(seen.insert(w[LEN_PREFIX..LEN_PREFIX + NONCE_LEN].to_vec()));
            }
        }
    }
}
