//! Raft messages on the wire (`synod_core::wire`): every kind of message round-trips, and no
//! bytes from the network, random or a damaged encoding, make decoding panic.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;
use synod_core::{Entry, Envelope, Membership, Payload, SnapshotMeta, wire};
use synod_raft::{AppendResult, Message, MessageKind};

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
    let kind = prop_oneof![
        (any::<bool>(), number(), number(), any::<bool>()).prop_map(
            |(pre_vote, last_log_index, last_log_term, transfer)| MessageKind::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
                transfer,
            }
        ),
        (any::<bool>(), any::<bool>())
            .prop_map(|(pre_vote, granted)| MessageKind::RequestVoteResponse { pre_vote, granted }),
        (
            number(),
            number(),
            prop::collection::vec(entry(), 0..5),
            number()
        )
            .prop_map(|(prev_log_index, prev_log_term, entries, leader_commit)| {
                MessageKind::AppendEntries {
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                }
            }),
        number().prop_map(|match_index| {
            MessageKind::AppendEntriesResponse(AppendResult::Success { match_index })
        }),
        (number(), prop::option::of(number()), number()).prop_map(
            |(rejected_index, conflict_term, conflict_index)| {
                MessageKind::AppendEntriesResponse(AppendResult::Reject {
                    rejected_index,
                    conflict_term,
                    conflict_index,
                })
            }
        ),
        (number(), number()).prop_map(|(commit, round)| MessageKind::Heartbeat { commit, round }),
        number().prop_map(|round| MessageKind::HeartbeatResponse { round }),
        (number(), number(), membership()).prop_map(|(index, term, membership)| {
            MessageKind::InstallSnapshot {
                snapshot: SnapshotMeta {
                    index,
                    term,
                    membership,
                },
            }
        }),
        Just(MessageKind::TimeoutNow),
        number().prop_map(|context| MessageKind::ReadIndex { context }),
        (number(), prop::option::of(number()))
            .prop_map(|(context, index)| MessageKind::ReadIndexResponse { context, index }),
    ];
    (number(), kind).prop_map(|(term, kind)| Message { term, kind })
}

/// Decodes `bytes` as every type the transport receives. Success (a nonsense message the
/// engine will ignore or refuse) and failure are both fine; a panic is not.
fn decode_everything(bytes: &[u8]) {
    let _ = wire::decode::<Message>(bytes);
    let _ = wire::decode::<Envelope<Message>>(bytes);
}

#[test]
fn one_message_of_each_kind_round_trips() {
    let entries = vec![
        Entry {
            term: 2,
            index: 5,
            payload: Payload::Noop,
        },
        Entry {
            term: 2,
            index: 6,
            payload: Payload::Command(Bytes::from_static(b"put k v")),
        },
        Entry {
            term: 2,
            index: 7,
            payload: Payload::Membership(Membership::with_voters([1, 2, 3])),
        },
    ];
    let kinds = vec![
        MessageKind::RequestVote {
            pre_vote: true,
            last_log_index: 7,
            last_log_term: 2,
            transfer: false,
        },
        MessageKind::RequestVoteResponse {
            pre_vote: false,
            granted: true,
        },
        MessageKind::AppendEntries {
            prev_log_index: 4,
            prev_log_term: 1,
            entries,
            leader_commit: 4,
        },
        MessageKind::AppendEntriesResponse(AppendResult::Success { match_index: 7 }),
        MessageKind::AppendEntriesResponse(AppendResult::Reject {
            rejected_index: 9,
            conflict_term: None,
            conflict_index: 8,
        }),
        MessageKind::Heartbeat {
            commit: 7,
            round: 3,
        },
        MessageKind::HeartbeatResponse { round: 3 },
        MessageKind::InstallSnapshot {
            snapshot: SnapshotMeta {
                index: 100,
                term: 2,
                membership: Membership::with_voters([1, 2, 3]),
            },
        },
        MessageKind::TimeoutNow,
        MessageKind::ReadIndex { context: 11 },
        MessageKind::ReadIndexResponse {
            context: 11,
            index: Some(7),
        },
    ];
    for kind in kinds {
        let message = Message { term: 2, kind };
        let bytes = wire::encode(&message);
        assert_eq!(wire::decode::<Message>(&bytes).unwrap(), message);
        let envelope = Envelope {
            from: 1,
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
