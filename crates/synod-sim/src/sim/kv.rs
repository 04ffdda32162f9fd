//! The simulated clients' key-value state machine, and how its commands travel in log entries.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use synod_core::Index;

use crate::linearizability::{Key, KvInput, KvOutput, Value};

/// A command in the log: which client operation it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// The client that issued it.
    pub client: u64,
    /// The client's operation number.
    pub op: u64,
    /// The operation.
    pub input: KvInput,
}

impl Command {
    /// Encodes the command as an entry payload.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(42);
        buf.put_u64(self.client);
        buf.put_u64(self.op);
        match self.input {
            KvInput::Get { key } => {
                buf.put_u8(0);
                buf.put_u64(key);
            }
            KvInput::Put { key, value } => {
                buf.put_u8(1);
                buf.put_u64(key);
                buf.put_u64(value);
            }
            KvInput::Delete { key } => {
                buf.put_u8(2);
                buf.put_u64(key);
            }
            KvInput::CompareAndSet { key, expected, new } => {
                buf.put_u8(3);
                buf.put_u64(key);
                buf.put_u64(new);
                buf.put_u8(expected.is_some() as u8);
                buf.put_u64(expected.unwrap_or(0));
            }
        }
        buf.freeze()
    }

    /// Decodes a payload; `None` if it is not a well-formed command.
    pub fn decode(mut data: &[u8]) -> Option<Command> {
        let need = |data: &[u8], n: usize| (data.remaining() >= n).then_some(());
        need(data, 17)?;
        let client = data.get_u64();
        let op = data.get_u64();
        let tag = data.get_u8();
        need(data, 8)?;
        let key = data.get_u64();
        let input = match tag {
            0 => KvInput::Get { key },
            1 => {
                need(data, 8)?;
                KvInput::Put {
                    key,
                    value: data.get_u64(),
                }
            }
            2 => KvInput::Delete { key },
            3 => {
                need(data, 17)?;
                let new = data.get_u64();
                let has = data.get_u8() != 0;
                let expected = data.get_u64();
                KvInput::CompareAndSet {
                    key,
                    expected: has.then_some(expected),
                    new,
                }
            }
            _ => return None,
        };
        Some(Command { client, op, input })
    }
}

/// A snapshot of the state machine at `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvSnapshot {
    /// The last applied index it covers.
    pub index: Index,
    /// The key-value pairs.
    pub data: BTreeMap<Key, Value>,
}

/// The key-value state machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    /// The last applied index.
    pub applied: Index,
    /// The key-value pairs.
    pub data: BTreeMap<Key, Value>,
}

impl KvStore {
    /// A store restored from a snapshot.
    pub fn restore(snapshot: &KvSnapshot) -> Self {
        KvStore {
            applied: snapshot.index,
            data: snapshot.data.clone(),
        }
    }

    /// Takes a snapshot.
    pub fn snapshot(&self) -> KvSnapshot {
        KvSnapshot {
            index: self.applied,
            data: self.data.clone(),
        }
    }

    /// Applies one operation and returns its answer.
    pub fn apply(&mut self, input: &KvInput) -> KvOutput {
        match *input {
            KvInput::Get { key } => KvOutput::Get(self.data.get(&key).copied()),
            KvInput::Put { key, value } => {
                self.data.insert(key, value);
                KvOutput::Put
            }
            KvInput::Delete { key } => {
                self.data.remove(&key);
                KvOutput::Delete
            }
            KvInput::CompareAndSet { key, expected, new } => {
                let swapped = self.data.get(&key).copied() == expected;
                if swapped {
                    self.data.insert(key, new);
                }
                KvOutput::CompareAndSet { swapped }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        for input in [
            KvInput::Get { key: 3 },
            KvInput::Put { key: 1, value: 9 },
            KvInput::Delete { key: 2 },
            KvInput::CompareAndSet {
                key: 4,
                expected: None,
                new: 5,
            },
            KvInput::CompareAndSet {
                key: 4,
                expected: Some(7),
                new: 5,
            },
        ] {
            let command = Command {
                client: 11,
                op: 12,
                input,
            };
            assert_eq!(Command::decode(&command.encode()), Some(command));
        }
        assert_eq!(Command::decode(b"short"), None);
        let mut bad = Command {
            client: 1,
            op: 2,
            input: KvInput::Get { key: 1 },
        }
        .encode()
        .to_vec();
        bad[16] = 9;
        assert_eq!(Command::decode(&bad), None);
    }
}
