//! The requests and responses of the store, shaped after etcd's `etcdserverpb` messages so
//! that the server maps them one to one.
//!
//! Requests are serde types, so that commands can be put in log entries (see
//! [`command`](crate::command)); responses are built by each member from its own store and are
//! not sent.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::store::{MAX_TXN_DEPTH, MAX_TXN_OPS};

/// A store revision. The store starts at revision 1 with no keys; every write (a whole
/// transaction included) adds one.
pub type Revision = i64;

/// A key and its current value, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The revision of the put that created the key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of the last put to the key.
    pub mod_revision: Revision,
    /// Puts since the key was created: 1 at creation; a delete resets it.
    pub version: i64,
    /// The value (empty in a keys-only range).
    pub value: Bytes,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// What a range sorts by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value.
    Value,
}

/// The order of a sort.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortOrder {
    /// No order asked: by key, ascending.
    #[default]
    None,
    /// Ascending.
    Ascend,
    /// Descending.
    Descend,
}

/// etcd's `RangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// The first key.
    pub key: Bytes,
    /// The end of the range, exclusive: empty for the single key `key`; `"\0"` for every key
    /// from `key` on (and with `key` also `"\0"`, every key).
    pub range_end: Bytes,
    /// The most keys to return (0: no limit).
    pub limit: i64,
    /// Read at this revision (0: the current one).
    pub revision: Revision,
    /// The sort order.
    pub sort_order: SortOrder,
    /// What to sort by.
    pub sort_target: SortTarget,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
}

/// etcd's `RangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The store revision the read saw.
    pub revision: Revision,
    /// The keys (none for a count-only range).
    pub kvs: Vec<KeyValue>,
    /// Whether the limit left keys out.
    pub more: bool,
    /// How many keys the range holds, regardless of the limit.
    pub count: i64,
}

/// etcd's `PutRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// The lease to attach (0: none).
    pub lease: i64,
    /// Return the previous key-value pair.
    pub prev_kv: bool,
}

/// etcd's `PutResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// The store revision after the put.
    pub revision: Revision,
    /// The previous pair, if asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// etcd's `DeleteRangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// The first key.
    pub key: Bytes,
    /// The end of the range, as in [`RangeRequest::range_end`].
    pub range_end: Bytes,
    /// Return the deleted pairs.
    pub prev_kv: bool,
}

/// etcd's `DeleteRangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeResponse {
    /// The store revision after the delete.
    pub revision: Revision,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted pairs, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// What a compare looks at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The version (0 for a missing key).
    Version(i64),
    /// The create revision (0 for a missing key).
    Create(Revision),
    /// The mod revision (0 for a missing key).
    Mod(Revision),
    /// The value (a missing key never matches).
    Value(Bytes),
    /// The lease (0 for a missing key or none).
    Lease(i64),
}

/// How a compare compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    /// Equal.
    Equal,
    /// The key's is greater.
    Greater,
    /// The key's is less.
    Less,
    /// Not equal.
    NotEqual,
}

/// etcd's `Compare`: true when every key in the range satisfies it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key.
    pub key: Bytes,
    /// The end of a range of keys to compare (empty: the key alone).
    pub range_end: Bytes,
    /// How to compare.
    pub result: CompareResult,
    /// What to compare, with the operand.
    pub target: CompareTarget,
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    /// A range.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// The result of one operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    /// A range's.
    Range(RangeResponse),
    /// A put's.
    Put(PutResponse),
    /// A delete's.
    DeleteRange(DeleteRangeResponse),
    /// A nested transaction's.
    Txn(TxnResponse),
}

/// etcd's `TxnRequest`: if every compare holds, the success operations, else the failure
/// ones, all as one revision.
///
/// Deserializing refuses transactions nested deeper than [`MAX_TXN_DEPTH`] (which etcd's size
/// check refuses anyway), so that bytes from the network cannot exhaust the stack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TxnRequest {
    /// The conditions.
    pub compare: Vec<Compare>,
    /// Run if every compare holds.
    pub success: Vec<RequestOp>,
    /// Run otherwise.
    pub failure: Vec<RequestOp>,
}

/// etcd's `TxnResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// The store revision after the transaction.
    pub revision: Revision,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One response per operation run.
    pub responses: Vec<ResponseOp>,
}

thread_local! {
    /// How many transactions the deserializer on this thread is inside.
    static TXN_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Counts one level of transaction nesting while it is being deserialized.
struct TxnDepthGuard;

impl TxnDepthGuard {
    fn enter<E: de::Error>() -> Result<TxnDepthGuard, E> {
        TXN_DEPTH.with(|depth| {
            if depth.get() >= MAX_TXN_DEPTH {
                return Err(E::custom(format_args!(
                    "transactions nested more than {MAX_TXN_DEPTH} deep"
                )));
            }
            depth.set(depth.get() + 1);
            Ok(TxnDepthGuard)
        })
    }
}

impl Drop for TxnDepthGuard {
    fn drop(&mut self) {
        TXN_DEPTH.with(|depth| {
            debug_assert!(depth.get() > 0, "a transaction depth guard left unbalanced");
            depth.set(depth.get() - 1);
        });
    }
}

/// A list of a transaction's compares or operations. serde would preallocate up to 1 MiB per
/// list from its length prefix; at every nesting level that adds up, so preallocate no more
/// than a valid transaction can hold and let the rest grow as elements actually arrive.
fn txn_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ListVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of transaction compares or operations")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_TXN_OPS));
            while let Some(element) = seq.next_element()? {
                list.push(element);
            }
            Ok(list)
        }
    }

    deserializer.deserialize_seq(ListVisitor(PhantomData))
}

impl<'de> Deserialize<'de> for TxnRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TxnRequest, D::Error> {
        /// The fields of a [`TxnRequest`], in its serialized order.
        #[derive(Deserialize)]
        #[serde(rename = "TxnRequest")]
        struct Fields {
            #[serde(deserialize_with = "txn_list")]
            compare: Vec<Compare>,
            #[serde(deserialize_with = "txn_list")]
            success: Vec<RequestOp>,
            #[serde(deserialize_with = "txn_list")]
            failure: Vec<RequestOp>,
        }

        let _depth = TxnDepthGuard::enter()?;
        let Fields {
            compare,
            success,
            failure,
        } = Fields::deserialize(deserializer)?;
        Ok(TxnRequest {
            compare,
            success,
            failure,
        })
    }
}
