//! Codec tests: round trips, known bytes, malformed input, properties.

use super::*;
use proptest::prelude::*;

const MAX: usize = 64 * 1024;

fn round_trip(p: Packet) {
    let bytes = to_bytes(&p).unwrap();
    let (q, n) = decode(&bytes, MAX).unwrap().unwrap();
    assert_eq!(n, bytes.len());
    assert_eq!(q, p);
    // Every strict prefix is incomplete, never an error or a packet.
    for cut in 0..bytes.len() {
        assert_eq!(decode(&bytes[..cut], MAX), Ok(None), "prefix {cut}");
    }
}

fn sdk_connect() -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol_name: "MQTT".into(),
        protocol_level: 4,
        clean_session: false,
        keep_alive: 60,
        client_id: "sensor-thl-001".into(),
        will: None,
        username: Some(
            "0ne00000000/registrations/sensor-thl-001/api-version=2019-03-31&ClientVersion=x"
                .into(),
        ),
        password: None,
    }))
}

#[test]
fn every_packet_round_trips() {
    round_trip(sdk_connect());
    round_trip(Packet::Connect(Box::new(Connect {
        protocol_name: "MQTT".into(),
        protocol_level: 4,
        clean_session: true,
        keep_alive: 0,
        client_id: String::new(),
        will: Some(Will {
            topic: "w".into(),
            payload: vec![1, 2],
            qos: 1,
            retain: true,
        }),
        username: Some("u".into()),
        password: Some(b"p".to_vec()),
    })));
    round_trip(Packet::ConnAck {
        session_present: false,
        code: ConnectReturnCode::NotAuthorized,
    });
    round_trip(Packet::Publish(Publish {
        dup: false,
        qos: 1,
        retain: false,
        topic: "$dps/registrations/PUT/iotdps-register/?$rid=1".into(),
        packet_id: Some(7),
        payload: br#"{"registrationId":"a"}"#.to_vec(),
    }));
    round_trip(Packet::Publish(Publish {
        dup: false,
        qos: 0,
        retain: true,
        topic: "t".into(),
        packet_id: None,
        payload: vec![0; 300],
    }));
    round_trip(Packet::PubAck { packet_id: 9 });
    round_trip(Packet::Subscribe {
        packet_id: 1,
        filters: vec![("$dps/registrations/res/#".into(), 1)],
    });
    round_trip(Packet::SubAck {
        packet_id: 1,
        codes: vec![1, 0x80],
    });
    round_trip(Packet::Unsubscribe {
        packet_id: 2,
        filters: vec!["a/+/b".into()],
    });
    round_trip(Packet::UnsubAck { packet_id: 2 });
    round_trip(Packet::PingReq);
    round_trip(Packet::PingResp);
    round_trip(Packet::Disconnect);
}

#[test]
fn known_bytes() {
    assert_eq!(to_bytes(&Packet::PingResp).unwrap(), [0xd0, 0]);
    assert_eq!(
        to_bytes(&Packet::ConnAck {
            session_present: false,
            code: ConnectReturnCode::Accepted
        })
        .unwrap(),
        [0x20, 2, 0, 0]
    );
    // A 321-byte body takes two length bytes: 0xC1 0x02.
    let p = Packet::Publish(Publish {
        dup: false,
        qos: 0,
        retain: false,
        topic: "t".into(),
        packet_id: None,
        payload: vec![0; 318],
    });
    let b = to_bytes(&p).unwrap();
    assert_eq!(&b[..3], &[0x30, 0xc1, 0x02]);
    // Paho's CONNECT for the SDK, as captured.
    let b = to_bytes(&sdk_connect()).unwrap();
    assert_eq!(&b[2..12], &[0, 4, b'M', b'Q', b'T', b'T', 4, 0x80, 0, 60]);
}

#[test]
fn limits_and_malformed_input() {
    let too_big = [0x30, 0xff, 0xff, 0x03];
    assert_eq!(
        decode(&too_big, 1000),
        Err(DecodeError::TooLarge {
            length: 65535,
            max: 1000
        })
    );
    assert!(matches!(
        decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], usize::MAX),
        Err(DecodeError::Malformed(_))
    ));
    let bad: &[&[u8]] = &[
        &[0x00, 0x00],                                           // reserved type 0
        &[0xf0, 0x00],                                           // reserved type 15
        &[0xc1, 0x00],                                           // PINGREQ with flags
        &[0x80, 0x00],                                           // SUBSCRIBE without flags 0010
        &[0x82, 0x02, 0x00, 0x01],                               // SUBSCRIBE without filters
        &[0x82, 0x02, 0x00, 0x00],                               // packet id 0
        &[0x36, 0x03, 0x00, 0x01, b'a'],                         // QoS 3
        &[0x30, 0x03, 0x00, 0x01, b'#'],                         // wildcard in topic
        &[0x30, 0x04, 0x00, 0x02, 0xc3, 0x28],                   // bad UTF-8
        &[0x30, 0x03, 0x00, 0x01, 0x00],                         // NUL in topic
        &[0x30, 0x02, 0x00, 0x05],                               // string past the end
        &[0xc0, 0x01, 0x00],                                     // trailing bytes
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03],       // QoS 3 requested
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x02, b'a', b'#', 0x01], // bad filter
        &[0x10, 0x02, 0x00, 0x00],                               // CONNECT, truncated
    ];
    for b in bad {
        assert!(
            matches!(decode(b, MAX), Err(DecodeError::Malformed(_))),
            "{b:02x?}: {:?}",
            decode(b, MAX)
        );
    }
    assert!(matches!(
        decode(&[0x34, 0x05, 0x00, 0x01, b'a', 0x00, 0x01], MAX),
        Err(DecodeError::Unsupported(_))
    ));
    // CONNECT with a password but no user name.
    let mut c = to_bytes(&sdk_connect()).unwrap();
    c[9] = 0x40;
    assert!(decode(&c, MAX).is_err());
}

#[test]
fn topic_filters() {
    let t = "$dps/registrations/res/202/?$rid=1&retry-after=1";
    assert!(topic_matches("$dps/registrations/res/#", t));
    assert!(topic_matches("$dps/registrations/+/202/#", t));
    assert!(!topic_matches("#", t));
    assert!(!topic_matches("$dps/registrations/PUT/#", t));
    assert!(topic_matches("a/b", "a/b"));
    assert!(!topic_matches("a/b", "a/b/c"));
    assert!(topic_matches("a/#", "a"));
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    let s = "[a-z$/?=&]{0,40}";
    prop_oneof![
        (s, s, any::<u16>(), any::<bool>()).prop_map(|(c, u, k, clean)| {
            Packet::Connect(Box::new(Connect {
                protocol_name: "MQTT".into(),
                protocol_level: 4,
                clean_session: clean,
                keep_alive: k,
                client_id: c,
                will: None,
                username: Some(u),
                password: None,
            }))
        }),
        (
            "[a-z$/?=&]{1,40}",
            1u16..,
            proptest::collection::vec(any::<u8>(), 0..200)
        )
            .prop_map(|(t, id, payload)| Packet::Publish(Publish {
                dup: false,
                qos: 1,
                retain: false,
                topic: t,
                packet_id: Some(id),
                payload,
            })),
        (1u16..).prop_map(|id| Packet::PubAck { packet_id: id }),
        (1u16.., "[a-z$]{1,20}", 0u8..3).prop_map(|(id, f, q)| Packet::Subscribe {
            packet_id: id,
            filters: vec![(f, q)]
        }),
        Just(Packet::PingReq),
        Just(Packet::Disconnect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..1024) {
        if let Ok(Some((_, n))) = decode(&bytes, max) {
            prop_assert!(n <= bytes.len());
            prop_assert!(n <= max + 5);
        }
    }

    #[test]
    fn decoding_mutated_packets_never_panics(p in arb_packet(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut bytes = to_bytes(&p).unwrap();
        for (i, x) in flips {
            let n = bytes.len();
            bytes[i % n] ^= x;
        }
        let n = bytes.len();
        bytes.truncate(cut % (n + 1));
        let _ = decode(&bytes, MAX);
    }

    #[test]
    fn generated_packets_round_trip(p in arb_packet()) {
        let bytes = to_bytes(&p).unwrap();
        let (q, n) = decode(&bytes, MAX).unwrap().unwrap();
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(q, p);
    }
}
