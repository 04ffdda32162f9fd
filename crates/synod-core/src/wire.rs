//! The binary encoding of what members send each other: engine messages, and the commands the
//! application puts in log entries.
//!
//! The format is [postcard](https://docs.rs/postcard) 1.x: a compact, non-self-describing serde
//! format with variable-length integers, whose wire format is specified and kept stable across
//! the 1.x releases. It was chosen over bincode because bincode's development has stopped (its
//! last release, 3.0.0, only says so), while postcard is maintained.
//!
//! Decoding is for bytes from the network or disk, so it must never panic and must not let a
//! sender make it allocate much more than it sent. postcard 1.x checks every length prefix of a
//! byte string against the bytes left before taking them, and serde caps what a sequence
//! preallocates from its length prefix at 1 MiB (a `Bytes` at 4096 bytes) and grows the rest as
//! elements actually arrive, each of which consumes input. A prefix claiming 2^60 elements
//! therefore fails with "unexpected end" rather than allocating (see the tests). Recursive types
//! are the one thing the format cannot bound: a type that nests itself must bound its own depth
//! when it is deserialized (synod-kv's transactions do).
//!
//! The format is not self-describing and carries no version: adding a field or a variant
//! changes it. Members must agree on [`WIRE_VERSION`] (a transport exchanges it when it
//! connects) before they exchange messages.
//!
//! ```
//! use synod_core::{Entry, Payload, wire};
//!
//! let entry = Entry { term: 2, index: 7, payload: Payload::Command("put x".into()) };
//! let bytes = wire::encode(&entry);
//! assert_eq!(wire::decode::<Entry>(&bytes).unwrap(), entry);
//! assert!(wire::decode::<Entry>(&bytes[..bytes.len() - 1]).is_err());
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// The version of the encoding of every type sent with this module. Bump it whenever a type
/// sent on the wire, or put in a log entry, changes shape.
pub const WIRE_VERSION: u32 = 1;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WireError {
    /// The bytes do not encode a value of the type asked for (they end early, hold an unknown
    /// variant, an invalid boolean, an overlong integer, ...).
    #[error("malformed wire message: {0}")]
    Malformed(String),
    /// A whole value was decoded, but bytes were left over.
    #[error("{0} trailing bytes after a wire message")]
    TrailingBytes(usize),
}

/// Encodes `value`.
///
/// # Panics
///
/// If `value`'s `Serialize` implementation serializes a sequence or map without announcing its
/// length, which postcard cannot encode. Derived implementations and the standard collections
/// always announce it, so this is a programmer error.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("wire types announce the length of their sequences")
}

/// Decodes a whole value of type `T` from `bytes`. Never panics; bytes left over after the
/// value are an error, so that a frame holds exactly one message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::{ConfChange, Entry, Envelope, Membership, Payload, SnapshotMeta};

    /// A postcard varint for `n`.
    fn varint(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn membership() -> Membership {
        Membership {
            voters: [1, 2, 3].into(),
            voters_outgoing: [1, 2, 4].into(),
            learners: [9].into(),
        }
    }

    #[test]
    fn representative_values_round_trip() {
        let entries = vec![
            Entry {
                term: 0,
                index: 0,
                payload: Payload::Noop,
            },
            Entry {
                term: u64::MAX,
                index: u64::MAX,
                payload: Payload::Command(Bytes::from_static(b"\x00\xffcommand")),
            },
            Entry {
                term: 3,
                index: 12,
                payload: Payload::Membership(membership()),
            },
        ];
        assert_eq!(decode::<Vec<Entry>>(&encode(&entries)).unwrap(), entries);
        let meta = SnapshotMeta {
            index: 40,
            term: 5,
            membership: membership(),
        };
        assert_eq!(decode::<SnapshotMeta>(&encode(&meta)).unwrap(), meta);
        let changes = vec![
            ConfChange::AddVoter(4),
            ConfChange::AddLearner(5),
            ConfChange::Remove(6),
            ConfChange::Joint {
                voters: [1, 2].into(),
                learners: BTreeSet::new(),
            },
        ];
        assert_eq!(
            decode::<Vec<ConfChange>>(&encode(&changes)).unwrap(),
            changes
        );
        let envelope = Envelope {
            from: 1,
            to: 2,
            message: entries[1].clone(),
        };
        assert_eq!(
            decode::<Envelope<Entry>>(&encode(&envelope)).unwrap(),
            envelope
        );
    }

    #[test]
    fn a_huge_length_prefix_fails_without_allocating() {
        // A command of 2^60 bytes: term 1, index 1, variant 1 (Command), then the length.
        let mut bytes = vec![1, 1, 1];
        bytes.extend(varint(1 << 60));
        bytes.extend_from_slice(b"short");
        assert!(matches!(
            decode::<Entry>(&bytes),
            Err(WireError::Malformed(_))
        ));
        // A vector of 2^60 entries, each of which needs at least three bytes.
        let mut bytes = varint(1 << 60);
        bytes.extend_from_slice(&[1, 1, 0]);
        assert!(decode::<Vec<Entry>>(&bytes).is_err());
        // A set of 2^60 voters.
        let mut bytes = varint(1 << 60);
        bytes.extend_from_slice(&[1, 2, 3]);
        assert!(decode::<Membership>(&bytes).is_err());
        // usize::MAX, and a varint longer than any u64.
        let mut bytes = vec![1, 1, 1];
        bytes.extend(varint(u64::MAX));
        assert!(decode::<Entry>(&bytes).is_err());
        assert!(decode::<Entry>(&[0xff; 16]).is_err());
    }

    #[test]
    fn trailing_and_missing_bytes_are_errors() {
        let entry = Entry {
            term: 1,
            index: 2,
            payload: Payload::Noop,
        };
        let mut bytes = encode(&entry);
        bytes.push(0);
        assert_eq!(decode::<Entry>(&bytes), Err(WireError::TrailingBytes(1)));
        assert!(decode::<Entry>(&[]).is_err());
        // An unknown payload variant.
        assert!(decode::<Entry>(&[1, 2, 7]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Entry>(&bytes);
            let _ = decode::<Vec<Entry>>(&bytes);
            let _ = decode::<SnapshotMeta>(&bytes);
            let _ = decode::<ConfChange>(&bytes);
            let _ = decode::<Envelope<Vec<Entry>>>(&bytes);
        }

        #[test]
        fn entries_round_trip(
            term in any::<u64>(),
            index in any::<u64>(),
            command in proptest::collection::vec(any::<u8>(), 0..64),
            voters in proptest::collection::btree_set(any::<u64>(), 0..8),
            kind in 0..3u8,
        ) {
            let payload = match kind {
                0 => Payload::Noop,
                1 => Payload::Command(command.into()),
                _ => Payload::Membership(Membership { voters, ..Membership::default() }),
            };
            let entry = Entry { term, index, payload };
            let bytes = encode(&entry);
            prop_assert_eq!(decode::<Entry>(&bytes).unwrap(), entry);
            // Every strict prefix is an error, not a panic or a different value.
            for cut in 0..bytes.len() {
                prop_assert!(decode::<Entry>(&bytes[..cut]).is_err());
            }
        }
    }
}
