//! Arbitrary bytes never make the reader, `open` or the handshakes panic,
//! and never open.

use proptest::prelude::*;
use swarm_exec_channel::{
    ClientHandshake, Error, Key, RecordReader, ServerHandshake, LEN_PREFIX, MAX_RECORD_LEN,
};

fn established() -> swarm_exec_channel::Channel {
    let key = Key::from_bytes(&[42; 32]).unwrap();
    let (mut server, hello) = ServerHandshake::new(&key).unwrap();
    let mut client = ClientHandshake::new(&key).unwrap();
    let mut c0 = Vec::new();
    client.push(&hello, &mut c0).unwrap();
    let (ch, _) = server.push(&c0, &mut Vec::new()).unwrap().unwrap();
    ch
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn reader_and_open_never_panic(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20),
        lens in prop::collection::vec(prop_oneof![0u32..100, 65_570u32..65_590, any::<u32>()], 0..4),
    ) {
        let mut ch = established();
        let mut reader = RecordReader::new();
        // Plausible length prefixes first, so bodies get through to `open`.
        for l in lens {
            reader.push(&l.to_be_bytes());
            for c in &chunks {
                reader.push(c);
                while let Some(r) = reader.next() {
                    match r {
                        Ok(body) => {
                            prop_assert!(body.len() <= MAX_RECORD_LEN);
                            prop_assert!(ch.open(&body).is_err());
                        }
                        Err(Error::TooLong | Error::TooShort) => break,
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
                // At most one incomplete record, plus the last chunk if
                // that one brought a bad length prefix.
                prop_assert!(reader.buffered() <= LEN_PREFIX + MAX_RECORD_LEN + 200);
            }
        }
    }

    #[test]
    fn open_never_panics(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut ch = established();
        prop_assert!(ch.open(&body).is_err());
    }

    #[test]
    fn handshakes_never_panic(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
        magic in any::<bool>(),
    ) {
        let key = Key::from_bytes(&[1; 32]).unwrap();
        let (mut server, _) = ServerHandshake::new(&key).unwrap();
        let mut client = ClientHandshake::new(&key).unwrap();
        let mut out = Vec::new();
        if magic {
            let _ = client.push(b"sxc1", &mut out);
        }
        for c in &chunks {
            prop_assert!(!matches!(server.push(c, &mut out), Ok(Some(_))));
            prop_assert!(!matches!(client.push(c, &mut out), Ok(Some(_))));
        }
    }
}
