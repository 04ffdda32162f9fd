//! Multi-Paxos messages on the wire (`synod_core::wire`): every kind of message round-trips,
//! and no bytes from the network, random or a damaged encoding, make decoding panic.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;
use synod_core::{Entry, Envelope, Membership, Payload, SnapshotMeta, wire};
use synod_paxos::Message;

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..300, 1 => any::<u64>(), 1 => Just(u64::MAX)]
}

fn ids() -> impl Strategy<Value = BTreeSet<u64>> {
    prop::collection::btree_set(number(), 0..4)
}

fn membership() -> impl Strategy<Value = Membership> {
    (ids(), ids(), ids()).prop_map(|(voters, voters_outgoing, learners)| Membership {
        voters,
        voters_outgoing,
        learners,
    })
}

fn entry() -> impl Strategy<Value = Entry> {
    let payload = prop_oneof![
        Just(Payload::Noop),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| Payload::Command(Bytes::from(b))),
        membership().prop_map(Payload::Membership),
    ];
    (number(), number(), payload).prop_map(|(term, index, payload)| Entry {
        term,
        index,
        payload,
    })
}

fn message() -> impl Strategy<Value = Message> {
    let entries = || prop::collection::vec(entry(), 0..5);
    prop_oneof![
        (number(), number(), any::<bool>()).prop_map(|(ballot, from, force)| Message::Prepare {
            ballot,
            from,
            force
        }),
        (number(), number(), number(), number(), entries()).prop_map(
            |(ballot, from, commit, snapshot, entries)| Message::Promise {
                ballot,
                from,
                commit,
                snapshot,
                entries,
            }
        ),
        (number(), entries(), number(), number()).prop_map(
            |(ballot, entries, commit, read_round)| Message::Accept {
                ballot,
                entries,
                commit,
                read_round,
            }
        ),
        (number(), number(), number(), number()).prop_map(|(ballot, top, commit, read_round)| {
            Message::Accepted {
                ballot,
                top,
                commit,
                read_round,
            }
        }),
        (number(), number()).prop_map(|(ballot, promised)| Message::Nack { ballot, promised }),
        (number(), number(), number(), membership()).prop_map(
            |(ballot, index, term, membership)| Message::InstallSnapshot {
                ballot,
                snapshot: SnapshotMeta {
                    index,
                    term,
                    membership,
                },
            }
        ),
        number().prop_map(|ballot| Message::TimeoutNow { ballot }),
        number().prop_map(|context| Message::ReadIndex { context }),
        (number(), prop::option::of(number()))
            .prop_map(|(context, index)| Message::ReadIndexResponse { context, index }),
    ]
}

/// Decodes `bytes` as every type the transport receives. Success (a nonsense message the
/// engine will ignore or refuse) and failure are both fine; a panic is not.
fn decode_everything(bytes: &[u8]) {
    let _ = wire::decode::<Message>(bytes);
    let _ = wire::decode::<Envelope<Message>>(bytes);
}

#[test]
fn one_message_of_each_kind_round_trips() {
    let ballot = synod_paxos::ballot::ballot(3, 2).unwrap();
    let entries = vec![
        Entry {
            term: ballot,
            index: 5,
            payload: Payload::Noop,
        },
        Entry {
            term: ballot,
            index: 6,
            payload: Payload::Command(Bytes::from_static(b"put k v")),
        },
        Entry {
            term: ballot,
            index: 7,
            payload: Payload::Membership(Membership::with_voters([1, 2, 3])),
        },
    ];
    let messages = vec![
        Message::Prepare {
            ballot,
            from: 5,
            force: true,
        },
        Message::Promise {
            ballot,
            from: 5,
            commit: 4,
            snapshot: 2,
            entries: entries.clone(),
        },
        Message::Accept {
            ballot,
            entries,
            commit: 4,
            read_round: 9,
        },
        Message::Accepted {
            ballot,
            top: 7,
            commit: 4,
            read_round: 9,
        },
        Message::Nack {
            ballot,
            promised: ballot + 1,
        },
        Message::InstallSnapshot {
            ballot,
            snapshot: SnapshotMeta {
                index: 100,
                term: ballot,
                membership: Membership::with_voters([1, 2, 3]),
            },
        },
        Message::TimeoutNow { ballot },
        Message::ReadIndex { context: 11 },
        Message::ReadIndexResponse {
            context: 11,
            index: None,
        },
    ];
    for message in messages {
        let bytes = wire::encode(&message);
        assert_eq!(wire::decode::<Message>(&bytes).unwrap(), message);
        let envelope = Envelope {
            from: 2,
            to: 3,
            message,
        };
        assert_eq!(
            wire::decode::<Envelope<Message>>(&wire::encode(&envelope)).unwrap(),
            envelope
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn messages_round_trip_and_every_prefix_is_refused(message in message()) {
        let bytes = wire::encode(&message);
        prop_assert_eq!(&wire::decode::<Message>(&bytes).unwrap(), &message);
        for cut in 0..bytes.len() {
            prop_assert!(wire::decode::<Message>(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    /// Random bytes mostly fail on the first byte; a damaged real message gets much further.
    #[test]
    fn damaged_messages_never_panic(
        message in message(),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = wire::encode(&message);
        for (at, byte) in damage {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        decode_everything(&bytes);
    }
}
