//! The blocking API over real TCP on 127.0.0.1: 8 MiB each way at once.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use swarm_exec_channel::{accept, connect, Key, Opener, RecordReader, Sealer};

const SIZE: usize = 8 << 20;

fn data(seed: u32) -> Vec<u8> {
    // xorshift: incompressible-looking, reproducible.
    let mut x = seed | 1;
    (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends `payload` in uneven writes on one thread while receiving all the
/// peer sends on this one; returns what was received.
fn exchange(stream: TcpStream, mut tx: Sealer, mut rx: Opener, payload: Vec<u8>) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let mut rest = &payload[..];
        let mut n = 1;
        while !rest.is_empty() {
            let k = n.min(rest.len());
            tx.write_all(&mut w, &rest[..k]).unwrap();
            rest = &rest[k..];
            n = n * 3 + 7; // 1, 10, 37, ... up past the 64 KiB split
            if n > 300_000 {
                n = 1;
            }
        }
        w.flush().unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = stream;
    let mut reader = RecordReader::new();
    let mut got = Vec::with_capacity(SIZE);
    while let Some(m) = rx.read_record(&mut r, &mut reader).unwrap() {
        got.extend_from_slice(&m);
    }
    sender.join().unwrap();
    got
}

#[test]
fn eight_mib_each_way_over_tcp() {
    let key = Key::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let skey = key.clone();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let ch = accept(&mut s, &skey).unwrap();
        let (tx, rx) = ch.split();
        exchange(s, tx, rx, data(2))
    });
    let mut c = TcpStream::connect(addr).unwrap();
    let ch = connect(&mut c, &key).unwrap();
    let (tx, rx) = ch.split();
    let from_server = exchange(c, tx, rx, data(1));
    let from_client = server.join().unwrap();
    assert!(from_client == data(1), "client → server data differs");
    assert!(from_server == data(2), "server → client data differs");
}

#[test]
fn server_keeps_listening_after_a_wrong_peer() {
    let key = Key::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let skey = key.clone();
    let server = thread::spawn(move || {
        let mut failures = 0;
        loop {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            match accept(&mut s, &skey) {
                Ok(mut ch) => {
                    ch.write_all(&mut s, b"welcome").unwrap();
                    return failures;
                }
                Err(_) => failures += 1,
            }
        }
    });
    // Garbage, then the wrong key, then the right one.
    let mut g = TcpStream::connect(addr).unwrap();
    g.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let other = Key::generate().unwrap();
    let mut w = TcpStream::connect(addr).unwrap();
    assert!(connect(&mut w, &other).is_err());
    let mut c = TcpStream::connect(addr).unwrap();
    let mut ch = connect(&mut c, &key).unwrap();
    let m = ch.read_record(&mut c, &mut RecordReader::new()).unwrap();
    assert_eq!(m.as_deref(), Some(&b"welcome"[..]));
    assert_eq!(server.join().unwrap(), 2);
}
