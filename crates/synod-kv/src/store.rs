//! The multi-version store.
//!
//! Every key keeps its history: one version per put, and a tombstone per delete, each at the
//! store revision of the write that made it. A read at revision `r` sees, for each key, its
//! newest version at or below `r`. Compaction at `r` forgets every version that a read at `r`
//! or later can no longer see.
//!
//! Invariants (checked in tests through [`MvccStore::check`]):
//! - `compacted <= current`, and `current >= 1`;
//! - each key's versions are in strictly increasing revision order, all at or below `current`;
//! - a live version's `create_revision` is at or below its revision (its `mod_revision`), and
//!   its `version` counts the puts since the key was created;
//! - `removed <= compacted`: history compacted away but not yet removed (see
//!   [`MvccStore::compact_deferring_removal`]) stays stored, unreadable;
//! - after history is removed up to `r`, no key's oldest version is a tombstone at or below
//!   `r`, and no key keeps two versions at or below `r`;
//! - no key is empty, and each key's history has one representation (see `history.rs`);
//! - `size_bytes` is the sum of [`MvccStore::version_size_bytes`] over every stored version,
//!   and `unremoved_bytes` over those compacted but not yet removed.
//!
//! # Space accounting
//!
//! etcd refuses writes once its database reaches a quota. This store estimates its size as
//! every stored version's key and value bytes plus [`REVISION_OVERHEAD_BYTES`], kept up to date
//! on every write and compaction so that reading it is O(1). A put adds one version, a delete
//! one tombstone per deleted key, and compaction removes the versions it forgets. Versions a
//! compaction forgot but left in place for a while no longer count: the quota sees the same
//! size whether or not they are still stored.
//!
//! What the store takes in memory is another matter: see `history.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use bytes::Bytes;

use crate::error::KvError;
use crate::history::{History, Version};
use crate::types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, Revision,
    SortOrder, SortTarget, TxnRequest, TxnResponse,
};

/// The most operations in each branch of a transaction, and compares, as etcd's default
/// `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// The deepest nesting of transactions that can pass etcd's size check: each nested
/// transaction gets the operation budget its parent leaves (`MAX_TXN_OPS` minus the parent's
/// widest list), and a transaction that holds another uses at least one, so at most
/// `MAX_TXN_OPS + 1` transactions nest. Decoding refuses deeper ones, bounding its recursion.
pub const MAX_TXN_DEPTH: usize = MAX_TXN_OPS + 1;

/// The bytes each stored version (a value or a tombstone) counts for in
/// [`MvccStore::size_bytes`] besides its key and value: etcd's estimate of a key-value pair's
/// metadata (`kvOverhead` in etcd's `quota.go`), so a put adds exactly what etcd's quota
/// charges for it.
pub const REVISION_OVERHEAD_BYTES: u64 = 256;

/// The multi-version key-value store. See the [module documentation](self).
///
/// Two stores are equal when they hold the same contents; how their maps are laid out in
/// memory (see [`MvccStore::shrink_if_reshaped`]) does not count.
#[derive(Clone, Debug)]
pub struct MvccStore {
    pub(crate) current: Revision,
    pub(crate) compacted: Revision,
    /// The revision up to which compacted history has been removed from `keys`: `compacted`,
    /// unless a removal waits (see [`MvccStore::compact_deferring_removal`]).
    pub(crate) removed: Revision,
    /// Each key once, with its history. Invariant: no key is empty.
    pub(crate) keys: BTreeMap<Box<[u8]>, History>,
    /// Invariant: the sum of `version_size_bytes` over every stored version.
    pub(crate) size_bytes: u64,
    /// Invariant: the part of `size_bytes` that removing compacted history will free (0
    /// unless a removal waits).
    pub(crate) unremoved_bytes: u64,
    /// Keys inserted into or removed from `keys` since it was last built in one go.
    pub(crate) reshaped: u64,
}

impl PartialEq for MvccStore {
    fn eq(&self, other: &Self) -> bool {
        self.current == other.current
            && self.compacted == other.compacted
            && self.removed == other.removed
            && self.size_bytes == other.size_bytes
            && self.keys == other.keys
    }
}

impl Eq for MvccStore {}

impl Default for MvccStore {
    fn default() -> Self {
        MvccStore::new()
    }
}

/// A write in progress: everything it changes gets revision `revision`.
struct Writer {
    revision: Revision,
    changed: bool,
}

/// The bounds of a range of keys, for `BTreeMap::range`.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The keys `[key, range_end)` as etcd reads them, or `None` for a range with no keys.
fn bounds<'a>(key: &'a [u8], range_end: &'a [u8]) -> Option<KeyBounds<'a>> {
    if range_end.is_empty() {
        Some((Bound::Included(key), Bound::Included(key)))
    } else if range_end == [0] {
        Some((Bound::Included(key), Bound::Unbounded))
    } else if range_end <= key {
        None
    } else {
        Some((Bound::Included(key), Bound::Excluded(range_end)))
    }
}

impl MvccStore {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        MvccStore {
            current: 1,
            compacted: 0,
            removed: 0,
            keys: BTreeMap::new(),
            size_bytes: 0,
            unremoved_bytes: 0,
            reshaped: 0,
        }
    }

    /// The estimated size of the store: see [Space accounting](self#space-accounting). O(1).
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes - self.unremoved_bytes
    }

    /// What one stored version of `key` counts for in [`MvccStore::size_bytes`].
    pub fn version_size_bytes(key: &[u8], value: Option<&[u8]>) -> u64 {
        REVISION_OVERHEAD_BYTES + key.len() as u64 + value.map_or(0, |v| v.len() as u64)
    }

    fn stored_size_bytes(key: &[u8], version: &Version) -> u64 {
        Self::version_size_bytes(key, version.value())
    }

    /// The current revision.
    pub fn revision(&self) -> Revision {
        self.current
    }

    /// The revision compacted to (0: none).
    pub fn compacted_revision(&self) -> Revision {
        self.compacted
    }

    /// The key's value as of `revision`: its newest version at or below it, unless that is a
    /// tombstone.
    fn value_at(versions: &[Version], revision: Revision) -> Option<&Version> {
        let newer = versions.partition_point(|v| v.revision <= revision);
        versions[..newer].last().filter(|v| v.is_value())
    }

    /// Every key of the range present at `revision`, with its value then, in key order.
    fn live_range(
        &self,
        key: &[u8],
        range_end: &[u8],
        revision: Revision,
    ) -> Vec<(&[u8], &Version)> {
        let Some(bounds) = bounds(key, range_end) else {
            return Vec::new();
        };
        self.keys
            .range::<[u8], _>(bounds)
            .filter_map(|(key, versions)| Some((&**key, Self::value_at(versions, revision)?)))
            .collect()
    }

    fn check_readable(&self, revision: Revision) -> Result<Revision, KvError> {
        let revision = if revision <= 0 {
            self.current
        } else {
            revision
        };
        if revision > self.current {
            return Err(KvError::FutureRevision);
        }
        if revision < self.compacted {
            return Err(KvError::Compacted);
        }
        Ok(revision)
    }

    /// A range read.
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, KvError> {
        self.range_at(request, self.current)
    }

    /// A range read whose revision 0 means `view` (inside a transaction: its own writes).
    fn range_at(&self, request: &RangeRequest, view: Revision) -> Result<RangeResponse, KvError> {
        let revision = if request.revision <= 0 {
            view
        } else {
            self.check_readable(request.revision)?
        };
        let live = self.live_range(&request.key, &request.range_end, revision);
        let count = live.len() as i64;
        let more = request.limit > 0 && count > request.limit;
        if request.count_only {
            return Ok(RangeResponse {
                revision: view,
                kvs: Vec::new(),
                more,
                count,
            });
        }
        // etcd: with no order asked, a non-key target sorts ascending; keys come in key order.
        let order = match (request.sort_order, request.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (order, _) => order,
        };
        // The pairs are copies (see `Version::to_key_value`): copy only those the response
        // holds, and values only where they are returned or sorted by.
        let unsorted_limit = match order {
            SortOrder::None if request.limit > 0 => request.limit as usize,
            _ => usize::MAX,
        };
        let with_values = !request.keys_only || request.sort_target == SortTarget::Value;
        let mut kvs: Vec<KeyValue> = live
            .into_iter()
            .take(unsorted_limit)
            .map(|(key, version)| version.to_key_value(key, with_values))
            .collect();
        // etcd sorts the key-ordered pairs by the target, and sorts descending by the reversed
        // comparison (Go's `sort.Reverse`) rather than by reversing the ascending result, so
        // pairs that tie keep their key order in both directions. (Go sorts up to 12 items by
        // insertion, which is stable; beyond that the order of ties is unspecified, and key
        // order is one etcd may give.) Hence a stable sort, and no reversal.
        if order != SortOrder::None {
            let target = |a: &KeyValue, b: &KeyValue| match request.sort_target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            };
            match order {
                SortOrder::Descend => kvs.sort_by(|a, b| target(b, a)),
                SortOrder::Ascend | SortOrder::None => kvs.sort_by(target),
            }
        }
        if more {
            kvs.truncate(request.limit as usize);
        }
        if request.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        // etcd's header revision is the one the read was served at (inside a transaction that
        // has written, the transaction's), not the one asked for.
        Ok(RangeResponse {
            revision: view,
            kvs,
            more,
            count,
        })
    }

    fn begin(&self) -> Writer {
        Writer {
            revision: self.current + 1,
            changed: false,
        }
    }

    fn commit(&mut self, writer: Writer) {
        if writer.changed {
            self.current = writer.revision;
        }
    }

    /// The revision a write in progress reads at: its own writes included.
    fn view(&self, writer: &Writer) -> Revision {
        if writer.changed {
            writer.revision
        } else {
            self.current
        }
    }

    /// Puts a key.
    pub fn put(&mut self, request: &PutRequest) -> Result<PutResponse, KvError> {
        if request.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        let mut writer = self.begin();
        let prev_kv = self.apply_put(&mut writer, request);
        self.commit(writer);
        Ok(PutResponse {
            revision: self.current,
            prev_kv,
        })
    }

    fn apply_put(&mut self, writer: &mut Writer, request: &PutRequest) -> Option<KeyValue> {
        let revision = writer.revision;
        let key = &request.key[..];
        let latest = self
            .keys
            .get(key)
            .and_then(|versions| versions.last())
            .filter(|v| v.is_value());
        let (create_revision, version) =
            latest.map_or((revision, 1), |v| (v.create_revision, v.version + 1));
        let prev_kv = latest
            .filter(|_| request.prev_kv)
            .map(|v| v.to_key_value(key, true));
        let put = Version {
            revision,
            create_revision,
            version,
            lease: request.lease,
            // A copy of exactly the value's length, whatever buffer the request's is part of.
            value: Box::from(&request.value[..]),
        };
        let added = Self::version_size_bytes(key, Some(&request.value));
        match self.keys.get_mut(key) {
            Some(versions) => match versions.last_mut() {
                // A transaction never writes a key twice (validated before), but keep one
                // version per revision regardless.
                Some(last) if last.revision == revision => {
                    self.size_bytes -= Self::stored_size_bytes(key, last);
                    *last = put;
                }
                _ => versions.push(put),
            },
            None => {
                self.keys.insert(Box::from(key), History::One(put));
                self.reshaped += 1;
            }
        }
        self.size_bytes += added;
        writer.changed = true;
        prev_kv
    }

    /// Deletes a range of keys.
    pub fn delete_range(
        &mut self,
        request: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, KvError> {
        if request.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        let mut writer = self.begin();
        let (deleted, prev_kvs) = self.apply_delete(&mut writer, request);
        self.commit(writer);
        Ok(DeleteRangeResponse {
            revision: self.current,
            deleted,
            prev_kvs,
        })
    }

    fn apply_delete(
        &mut self,
        writer: &mut Writer,
        request: &DeleteRangeRequest,
    ) -> (i64, Vec<KeyValue>) {
        let revision = writer.revision;
        let view = self.view(writer);
        let Some(bounds) = bounds(&request.key, &request.range_end) else {
            return (0, Vec::new());
        };
        let mut deleted = 0;
        let mut prev_kvs = Vec::new();
        for (key, versions) in self.keys.range_mut::<[u8], _>(bounds) {
            let Some(live) = Self::value_at(versions, view) else {
                continue;
            };
            if request.prev_kv {
                prev_kvs.push(live.to_key_value(key, true));
            }
            let tombstone = Version::tombstone(revision);
            let added = Self::stored_size_bytes(key, &tombstone);
            match versions.last_mut() {
                Some(last) if last.revision == revision => {
                    self.size_bytes -= Self::stored_size_bytes(key, last);
                    *last = tombstone;
                }
                _ => versions.push(tombstone),
            }
            self.size_bytes += added;
            deleted += 1;
            writer.changed = true;
        }
        (deleted, prev_kvs)
    }

    /// Runs a transaction: one revision for all its writes. A refused transaction changes
    /// nothing.
    ///
    /// As in etcd, every compare, nested transactions' included, is evaluated against the store
    /// as it was before the transaction, and the reads on the path that will run are checked
    /// before anything is written.
    pub fn txn(&mut self, request: &TxnRequest) -> Result<TxnResponse, KvError> {
        validate_txn(request)?;
        self.check_txn_path(request)?;
        let mut writer = self.begin();
        let (succeeded, responses) = self.apply_txn(&mut writer, request);
        self.commit(writer);
        Ok(TxnResponse {
            revision: self.current,
            succeeded,
            responses,
        })
    }

    /// Whether a transaction's compares hold. etcd evaluates every compare on the path,
    /// nested ones included, against the store before the transaction (`compareToPath`); the
    /// current revision is that store until the transaction commits.
    fn txn_succeeds(&self, request: &TxnRequest) -> bool {
        request.compare.iter().all(|c| self.holds(c, self.current))
    }

    /// etcd's `checkTxn`: the reads on the path that will run must be at readable revisions.
    /// Checked before anything is written, so that a refused transaction changes nothing.
    fn check_txn_path(&self, request: &TxnRequest) -> Result<(), KvError> {
        let ops = if self.txn_succeeds(request) {
            &request.success
        } else {
            &request.failure
        };
        for op in ops {
            match op {
                RequestOp::Range(range) if range.revision > 0 => {
                    self.check_readable(range.revision)?;
                }
                RequestOp::Txn(nested) => self.check_txn_path(nested)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs the path of a transaction that [`MvccStore::check_txn_path`] accepted.
    ///
    /// Each response carries the revision etcd's write transaction reports for it
    /// (`storeTxnWrite` in etcd's `mvcc/kvstore_txn.go`): a range the revision it read at, the
    /// one before the transaction until the transaction has written and the transaction's own
    /// after; a put the transaction's revision; a delete the transaction's revision once the
    /// transaction has written anything, itself included, else the one before. A nested
    /// transaction's own revision stays 0: etcd sets only the outermost one.
    fn apply_txn(&mut self, writer: &mut Writer, request: &TxnRequest) -> (bool, Vec<ResponseOp>) {
        let succeeded = self.txn_succeeds(request);
        let ops = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(range) => ResponseOp::Range(
                    self.range_at(range, self.view(writer))
                        .expect("check_txn_path checked the revision of every read on the path"),
                ),
                RequestOp::Put(put) => {
                    let prev_kv = self.apply_put(writer, put);
                    ResponseOp::Put(PutResponse {
                        revision: writer.revision,
                        prev_kv,
                    })
                }
                RequestOp::DeleteRange(delete) => {
                    let (deleted, prev_kvs) = self.apply_delete(writer, delete);
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        revision: self.view(writer),
                        deleted,
                        prev_kvs,
                    })
                }
                RequestOp::Txn(nested) => {
                    let (succeeded, responses) = self.apply_txn(writer, nested);
                    ResponseOp::Txn(TxnResponse {
                        revision: 0,
                        succeeded,
                        responses,
                    })
                }
            });
        }
        (succeeded, responses)
    }

    /// Whether a compare holds at `revision`: for every key of its range, or, if the range is
    /// empty, for a missing key (whose value never matches).
    fn holds(&self, compare: &Compare, revision: Revision) -> bool {
        let live = self.live_range(&compare.key, &compare.range_end, revision);
        // A missing key compares as zeros (and its value never matches: see below).
        let missing = Version::tombstone(0);
        let check = |v: &Version| -> bool {
            let ordering = match &compare.target {
                CompareTarget::Version(version) => v.version.cmp(version),
                CompareTarget::Create(r) => v.create_revision.cmp(r),
                CompareTarget::Mod(r) => v.revision.cmp(r),
                CompareTarget::Value(value) => v.value[..].cmp(&value[..]),
                CompareTarget::Lease(lease) => v.lease.cmp(lease),
            };
            match compare.result {
                CompareResult::Equal => ordering.is_eq(),
                CompareResult::Greater => ordering.is_gt(),
                CompareResult::Less => ordering.is_lt(),
                CompareResult::NotEqual => ordering.is_ne(),
            }
        };
        if live.is_empty() {
            return !matches!(compare.target, CompareTarget::Value(_)) && check(&missing);
        }
        live.into_iter().all(|(_, v)| check(v))
    }

    /// Forgets the history that no read at `revision` or later can see.
    pub fn compact(&mut self, revision: Revision) -> Result<(), KvError> {
        self.check_compaction(revision)?;
        self.compacted = revision;
        self.remove_compacted();
        Ok(())
    }

    /// Compacts at `revision` as [`MvccStore::compact`] does for every read (one below
    /// `revision` is refused from now on, and the same errors are answered) and for the
    /// [size](MvccStore::size_bytes), but leaves the history it forgets in place until
    /// [`MvccStore::remove_compacted`]: a snapshot being written a chunk at a time still
    /// needs it (see [`MvccStore::begin_snapshot`]). Takes a pass over the keys, to count
    /// what the removal will free.
    pub fn compact_deferring_removal(&mut self, revision: Revision) -> Result<(), KvError> {
        self.check_compaction(revision)?;
        self.compacted = revision;
        self.unremoved_bytes = self.forgotten_bytes(revision);
        Ok(())
    }

    fn check_compaction(&self, revision: Revision) -> Result<(), KvError> {
        if revision > self.current {
            return Err(KvError::FutureRevision);
        }
        if revision <= self.compacted {
            return Err(KvError::Compacted);
        }
        Ok(())
    }

    /// How many of a key's oldest versions compaction at `revision` forgets: every one at or
    /// below it but the one a read at `revision` sees, unless that one is a deletion. Later
    /// writes only add later versions, so the answer never changes once `revision` is past.
    fn forgotten(versions: &History, revision: Revision) -> usize {
        match versions.partition_point(|v| v.revision <= revision) {
            0 => 0,
            n if versions[n - 1].is_value() => n - 1,
            n => n,
        }
    }

    /// What the versions compaction at `revision` forgets count for in `size_bytes`.
    fn forgotten_bytes(&self, revision: Revision) -> u64 {
        self.keys
            .iter()
            .map(|(key, versions)| {
                versions[..Self::forgotten(versions, revision)]
                    .iter()
                    .map(|v| Self::stored_size_bytes(key, v))
                    .sum::<u64>()
            })
            .sum()
    }

    /// Whether compacted history waits to be removed (see
    /// [`MvccStore::compact_deferring_removal`]).
    pub fn removal_pending(&self) -> bool {
        self.removed < self.compacted
    }

    /// Removes the history that compaction forgot but left in place, if any.
    pub fn remove_compacted(&mut self) {
        if !self.removal_pending() {
            return;
        }
        let revision = self.compacted;
        let mut freed = 0;
        let before = self.keys.len();
        self.keys.retain(|key, versions| {
            let forgotten = Self::forgotten(versions, revision);
            freed += versions[..forgotten]
                .iter()
                .map(|v| Self::stored_size_bytes(key, v))
                .sum::<u64>();
            versions.forget_oldest(forgotten)
        });
        self.size_bytes -= freed;
        self.unremoved_bytes = 0;
        self.reshaped += (before - self.keys.len()) as u64;
        self.removed = revision;
    }

    /// Rebuilds the map of keys with full nodes, as [`Vec::shrink_to_fit`] drops a vector's
    /// spare capacity. Changes nothing else.
    ///
    /// A B-tree whose keys arrive in order (a load of keys numbered in sequence, or keys that
    /// start with a timestamp) keeps its leaves little more than half full: with 16-byte keys,
    /// 122 bytes of nodes per key where a map built in one go takes 65. Rebuilding takes a pass
    /// over the keys and, while it runs, a vector of them (64 bytes per key); the server does
    /// it at each snapshot, which takes such a pass anyway. Measured on a member holding a
    /// million keys of 256 bytes (bench/memory.sh, mimalloc): 456-461 MiB without, 409-411
    /// MiB with; examples/memory.rs (glibc's malloc) goes from 411 to 362 MiB.
    pub fn shrink_to_fit(&mut self) {
        let keys = std::mem::take(&mut self.keys);
        // From sorted, distinct keys, `collect` builds the tree bottom-up, every node full but
        // those on its right edge.
        self.keys = keys.into_iter().collect();
        self.reshaped = 0;
    }

    /// [`MvccStore::shrink_to_fit`], but only if at least an eighth of the keys (and at least
    /// [`MvccStore::RESHAPED_MIN`]) were inserted or removed since the map was last built in
    /// one go; returns whether it rebuilt. A rebuild takes some 180 ms at a million keys, so
    /// a store whose keys are only overwritten (the common case) is not rebuilt for nothing.
    pub fn shrink_if_reshaped(&mut self) -> bool {
        if self.reshaped < Self::RESHAPED_MIN.max(self.keys.len() as u64 / 8) {
            return false;
        }
        self.shrink_to_fit();
        true
    }

    /// The fewest keys inserted or removed that make [`MvccStore::shrink_if_reshaped`] rebuild.
    pub const RESHAPED_MIN: u64 = 1024;

    /// Checks the invariants in the [module documentation](self).
    pub fn check(&self) -> Result<(), String> {
        if self.current < 1
            || self.compacted > self.current
            || self.removed > self.compacted
            || self.removed < 0
        {
            return Err(format!(
                "revisions: current {}, compacted {}, removed up to {}",
                self.current, self.compacted, self.removed
            ));
        }
        let size_bytes: u64 = self
            .keys
            .iter()
            .flat_map(|(key, versions)| versions.iter().map(move |v| (key, v)))
            .map(|(key, v)| Self::stored_size_bytes(key, v))
            .sum();
        if size_bytes != self.size_bytes {
            return Err(format!(
                "size: {} bytes recorded, {size_bytes} stored",
                self.size_bytes
            ));
        }
        let unremoved_bytes = self.forgotten_bytes(self.compacted);
        if unremoved_bytes != self.unremoved_bytes {
            return Err(format!(
                "size: {} bytes recorded as compacted, {unremoved_bytes} stored",
                self.unremoved_bytes
            ));
        }
        for (key, versions) in &self.keys {
            if key.is_empty() {
                return Err("an empty key".into());
            }
            let key = key.escape_ascii();
            if versions.is_empty() {
                return Err(format!("key {key} has no history"));
            }
            if !versions.is_canonical() {
                return Err(format!("key {key}: a history of many versions holds one"));
            }
            if versions.windows(2).any(|w| w[0].revision >= w[1].revision) {
                return Err(format!("key {key}: versions out of order"));
            }
            if versions.iter().any(|v| v.revision > self.current) {
                return Err(format!("key {key}: a version beyond the current revision"));
            }
            let at_or_below = versions
                .iter()
                .filter(|v| v.revision <= self.removed)
                .count();
            if self.removed > 0
                && (at_or_below > 1 || (at_or_below == 1 && !versions[0].is_value()))
            {
                return Err(format!("key {key}: history below the compaction kept"));
            }
            for v in versions.iter() {
                let consistent = if v.is_value() {
                    v.create_revision >= 1 && v.create_revision <= v.revision
                } else {
                    v.version == 0 && v.create_revision == 0 && v.lease == 0 && v.value.is_empty()
                };
                if !consistent {
                    return Err(format!("key {key}: inconsistent version {v:?}"));
                }
            }
        }
        Ok(())
    }
}

/// etcd's checks before a transaction runs (`checkTxnRequest`, then `checkIntervals` on each
/// branch, in etcd's `v3rpc/key.go`): sizes, keys, and no key written twice in a branch.
pub(crate) fn validate_txn(request: &TxnRequest) -> Result<(), KvError> {
    check_txn_request(request, MAX_TXN_OPS)?;
    check_intervals(&request.success)?;
    check_intervals(&request.failure)?;
    Ok(())
}

/// etcd's `checkTxnRequest`: the widest of a transaction's lists must fit `max_ops`, and a
/// nested transaction gets what is left. Every operation and compare names a key.
fn check_txn_request(request: &TxnRequest, max_ops: usize) -> Result<(), KvError> {
    let widest = request
        .compare
        .len()
        .max(request.success.len())
        .max(request.failure.len());
    if widest > max_ops {
        return Err(KvError::TooManyOps);
    }
    if request.compare.iter().any(|c| c.key.is_empty()) {
        return Err(KvError::EmptyKey);
    }
    for op in request.success.iter().chain(&request.failure) {
        let key = match op {
            RequestOp::Range(range) => &range.key,
            RequestOp::Put(put) => &put.key,
            RequestOp::DeleteRange(delete) => &delete.key,
            RequestOp::Txn(nested) => {
                check_txn_request(nested, max_ops - widest)?;
                continue;
            }
        };
        if key.is_empty() {
            return Err(KvError::EmptyKey);
        }
    }
    Ok(())
}

/// etcd's `checkIntervals`: within one branch, two puts of a key conflict, and so does a put
/// inside a range the branch deletes; deletes never conflict with each other. A nested
/// transaction's branches are checked on their own, then against this branch: its puts must
/// not repeat a key put so far (a key both of its branches put is fine: only one runs) nor lie
/// in this branch's deletes. Returns the keys the branch may put and the ranges it may delete.
///
/// Each list of operations is visited once, so this is linear in the request's size (times a
/// logarithm), however deep its transactions nest.
fn check_intervals(ops: &[RequestOp]) -> Result<(BTreeSet<Bytes>, Intervals), KvError> {
    let mut deletes = Intervals::default();
    for op in ops {
        if let RequestOp::DeleteRange(delete) = op {
            deletes.insert(&delete.key, &delete.range_end);
        }
    }
    let mut puts = BTreeSet::new();
    for op in ops {
        let RequestOp::Txn(nested) = op else {
            continue;
        };
        let (puts_then, deletes_then) = check_intervals(&nested.success)?;
        let (puts_else, deletes_else) = check_intervals(&nested.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deletes.contains(key) {
                return Err(KvError::DuplicateKey);
            }
        }
        for key in &puts_else {
            if (puts.contains(key) && !puts_then.contains(key)) || deletes.contains(key) {
                return Err(KvError::DuplicateKey);
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        deletes.extend(deletes_then);
        deletes.extend(deletes_else);
    }
    for op in ops {
        if let RequestOp::Put(put) = op
            && (!puts.insert(put.key.clone()) || deletes.contains(&put.key))
        {
            return Err(KvError::DuplicateKey);
        }
    }
    Ok((puts, deletes))
}

/// A set of key ranges, kept as disjoint intervals `[start, end)` (`end` `None`: to the end of
/// the key space) so that a key's membership is one lookup.
#[derive(Debug, Default)]
struct Intervals {
    /// Invariant: the intervals are disjoint and do not touch, each non-empty.
    by_start: BTreeMap<Bytes, Option<Bytes>>,
}

impl Intervals {
    /// Adds the keys of `[key, range_end)` with etcd's conventions (see [`bounds`]).
    fn insert(&mut self, key: &Bytes, range_end: &Bytes) {
        let end = if range_end.is_empty() {
            // The single key `key`: the next key in byte order is `key` followed by a zero.
            let mut next = key.to_vec();
            next.push(0);
            Some(Bytes::from(next))
        } else if range_end.as_ref() == [0] {
            None
        } else if range_end <= key {
            return;
        } else {
            Some(range_end.clone())
        };
        self.insert_interval(key.clone(), end);
    }

    fn insert_interval(&mut self, mut start: Bytes, mut end: Option<Bytes>) {
        // An end of `None` is unbounded and so the larger.
        let later = |a: Option<Bytes>, b: Option<Bytes>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        // Merge with an interval that starts before and reaches `start`.
        if let Some((before_start, before_end)) = self
            .by_start
            .range::<Bytes, _>((Bound::Unbounded, Bound::Included(&start)))
            .next_back()
            && before_end.as_ref().is_none_or(|e| *e >= start)
        {
            let before_start = before_start.clone();
            let before_end = self.by_start.remove(&before_start).expect("just found");
            start = before_start;
            end = later(end, before_end);
        }
        // Merge with every interval that starts inside `[start, end]`.
        while let Some((next_start, _)) = self
            .by_start
            .range::<Bytes, _>((Bound::Excluded(&start), Bound::Unbounded))
            .next()
            && end.as_ref().is_none_or(|e| next_start <= e)
        {
            let next_start = next_start.clone();
            let next_end = self.by_start.remove(&next_start).expect("just found");
            end = later(end, next_end);
        }
        self.by_start.insert(start, end);
    }

    fn extend(&mut self, other: Intervals) {
        for (start, end) in other.by_start {
            self.insert_interval(start, end);
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .is_some_and(|(_, end)| end.as_ref().is_none_or(|e| key < e.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Whether `key` lies in the range `[start, range_end)` (etcd conventions), naively.
    fn in_range(key: &[u8], start: &[u8], range_end: &[u8]) -> bool {
        if range_end.is_empty() {
            key == start
        } else if range_end == [0] {
            key >= start
        } else {
            key >= start && key < range_end
        }
    }

    /// The intervals against etcd's rule for one range, key by key.
    #[test]
    fn intervals_match_the_range_rule() {
        let ranges = [
            ("b", ""),
            ("c", "f"),
            ("e", "h"),
            ("k", "\0"),
            ("x", "a"),
            ("a", "a"),
            ("b\0", "c"),
        ];
        let mut set = Intervals::default();
        for (key, end) in ranges {
            set.insert(&b(key), &b(end));
        }
        let probes = [
            "", "a", "b", "b\0", "b\0\0", "ba", "c", "e", "g", "h", "j", "k", "z", "zz",
        ];
        for probe in probes {
            let expected = ranges
                .iter()
                .any(|(key, end)| in_range(probe.as_bytes(), key.as_bytes(), end.as_bytes()));
            assert_eq!(set.contains(probe.as_bytes()), expected, "{probe:?}");
        }
        // Touching and overlapping intervals merge.
        assert!(set.by_start.len() <= 3, "{set:?}");
    }
}
