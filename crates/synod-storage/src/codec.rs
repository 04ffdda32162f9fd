//! Binary encodings of what storage keeps: log entries, configurations and snapshot metadata.
//!
//! Little-endian fixed-width integers; byte strings and sets are length-prefixed. Decoding
//! checks every length against what is left, so a damaged record gives a [`DecodeError`],
//! never a panic or an allocation it did not earn.
//!
//! | value | encoding |
//! |---|---|
//! | `u64` | 8 bytes, little-endian |
//! | byte string | `u32` length (4 bytes, little-endian), then the bytes |
//! | node set | `u32` count, then each id as `u64` |
//! | [`Membership`] | voters, outgoing voters, learners: three node sets |
//! | [`Entry`] | term, index, a tag byte (0 no-op, 1 command, 2 configuration), then the command's byte string or the configuration |
//! | [`SnapshotMeta`] | index, term, configuration |

use std::collections::BTreeSet;

use bytes::Bytes;
use synod_core::{Entry, Membership, NodeId, Payload, SnapshotMeta};
use thiserror::Error;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The bytes end in the middle of a value.
    #[error("truncated: needed {needed} more bytes, {left} left")]
    Truncated {
        /// Bytes the next value needs.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// An unknown tag byte.
    #[error("unknown {what} tag {tag}")]
    BadTag {
        /// What was being decoded.
        what: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// Bytes were left over after the value.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Reads values from a byte slice, front to back.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Fails unless everything was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated {
                needed: n,
                left: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

/// Appends a `u32`.
pub fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a `u64`.
pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a length-prefixed byte string.
///
/// # Panics
/// If `bytes` is 4 GiB or longer: callers bound what they store far below that.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("a stored byte string is under 4 GiB");
    put_u32(out, len);
    out.extend_from_slice(bytes);
}

fn put_nodes(out: &mut Vec<u8>, nodes: &BTreeSet<NodeId>) {
    put_u32(out, nodes.len() as u32);
    for &id in nodes {
        put_u64(out, id);
    }
}

fn get_nodes(reader: &mut Reader<'_>) -> Result<BTreeSet<NodeId>, DecodeError> {
    let count = reader.u32()? as usize;
    // Each id takes 8 bytes: a count the rest cannot hold is damage, found before allocating.
    if count > reader.remaining() / 8 {
        return Err(DecodeError::Truncated {
            needed: count.saturating_mul(8),
            left: reader.remaining(),
        });
    }
    (0..count).map(|_| reader.u64()).collect()
}

/// Appends a configuration.
pub fn put_membership(out: &mut Vec<u8>, membership: &Membership) {
    put_nodes(out, &membership.voters);
    put_nodes(out, &membership.voters_outgoing);
    put_nodes(out, &membership.learners);
}

/// Reads a configuration.
pub fn get_membership(reader: &mut Reader<'_>) -> Result<Membership, DecodeError> {
    Ok(Membership {
        voters: get_nodes(reader)?,
        voters_outgoing: get_nodes(reader)?,
        learners: get_nodes(reader)?,
    })
}

const TAG_NOOP: u8 = 0;
const TAG_COMMAND: u8 = 1;
const TAG_MEMBERSHIP: u8 = 2;

/// Appends an entry.
pub fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    put_u64(out, entry.term);
    put_u64(out, entry.index);
    match &entry.payload {
        Payload::Noop => out.push(TAG_NOOP),
        Payload::Command(data) => {
            out.push(TAG_COMMAND);
            put_bytes(out, data);
        }
        Payload::Membership(m) => {
            out.push(TAG_MEMBERSHIP);
            put_membership(out, m);
        }
    }
}

/// The encoded size of an entry.
pub fn entry_len(entry: &Entry) -> usize {
    17 + match &entry.payload {
        Payload::Noop => 0,
        Payload::Command(data) => 4 + data.len(),
        Payload::Membership(m) => {
            12 + 8 * (m.voters.len() + m.voters_outgoing.len() + m.learners.len())
        }
    }
}

/// Reads an entry, copying its command.
pub fn get_entry(reader: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    get_entry_in(reader, None)
}

/// Reads an entry whose bytes lie in `buffer`: its command is a slice of `buffer`, not a copy.
/// Recovery reads a whole segment into one buffer, so that millions of entries cost no
/// allocation each.
pub fn get_entry_shared(reader: &mut Reader<'_>, buffer: &Bytes) -> Result<Entry, DecodeError> {
    get_entry_in(reader, Some(buffer))
}

fn get_entry_in(reader: &mut Reader<'_>, buffer: Option<&Bytes>) -> Result<Entry, DecodeError> {
    let term = reader.u64()?;
    let index = reader.u64()?;
    let payload = match reader.u8()? {
        TAG_NOOP => Payload::Noop,
        TAG_COMMAND => {
            let data = reader.bytes()?;
            Payload::Command(match buffer {
                Some(buffer) => buffer.slice_ref(data),
                None => Bytes::copy_from_slice(data),
            })
        }
        TAG_MEMBERSHIP => Payload::Membership(get_membership(reader)?),
        tag => return Err(DecodeError::BadTag { what: "entry", tag }),
    };
    Ok(Entry {
        term,
        index,
        payload,
    })
}

/// Appends snapshot metadata.
pub fn put_snapshot_meta(out: &mut Vec<u8>, meta: &SnapshotMeta) {
    put_u64(out, meta.index);
    put_u64(out, meta.term);
    put_membership(out, &meta.membership);
}

/// Reads snapshot metadata.
pub fn get_snapshot_meta(reader: &mut Reader<'_>) -> Result<SnapshotMeta, DecodeError> {
    Ok(SnapshotMeta {
        index: reader.u64()?,
        term: reader.u64()?,
        membership: get_membership(reader)?,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn membership() -> impl Strategy<Value = Membership> {
        let set = || proptest::collection::btree_set(1u64..20, 0..5);
        (set(), set(), set()).prop_map(|(voters, voters_outgoing, learners)| Membership {
            voters,
            voters_outgoing,
            learners,
        })
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let payload = prop_oneof![
            Just(Payload::Noop),
            proptest::collection::vec(any::<u8>(), 0..64)
                .prop_map(|v| Payload::Command(Bytes::from(v))),
            membership().prop_map(Payload::Membership),
        ];
        (any::<u64>(), any::<u64>(), payload).prop_map(|(term, index, payload)| Entry {
            term,
            index,
            payload,
        })
    }

    proptest! {
        #[test]
        fn entries_round_trip(entry in entry()) {
            let mut out = Vec::new();
            put_entry(&mut out, &entry);
            prop_assert_eq!(out.len(), entry_len(&entry));
            let mut reader = Reader::new(&out);
            prop_assert_eq!(get_entry(&mut reader).unwrap(), entry);
            prop_assert!(reader.finish().is_ok());
        }

        #[test]
        fn snapshot_meta_round_trips(index: u64, term: u64, membership in membership()) {
            let meta = SnapshotMeta { index, term, membership };
            let mut out = Vec::new();
            put_snapshot_meta(&mut out, &meta);
            let mut reader = Reader::new(&out);
            prop_assert_eq!(get_snapshot_meta(&mut reader).unwrap(), meta);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = get_entry(&mut Reader::new(&bytes));
            let _ = get_snapshot_meta(&mut Reader::new(&bytes));
        }

        #[test]
        fn every_truncation_is_an_error(entry in entry()) {
            let mut out = Vec::new();
            put_entry(&mut out, &entry);
            for len in 0..out.len() {
                prop_assert!(get_entry(&mut Reader::new(&out[..len])).is_err());
            }
        }
    }

    #[test]
    fn a_huge_node_count_is_refused_before_allocating() {
        let mut out = Vec::new();
        put_u32(&mut out, u32::MAX);
        assert!(matches!(
            get_membership(&mut Reader::new(&out)),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
