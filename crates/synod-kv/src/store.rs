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
//! - a live version's `mod_revision` is its revision, its `create_revision` is at or below it,
//!   and its `version` counts the puts since the key was created;
//! - after compaction at `c`, no key's oldest version is a tombstone at or below `c`, and no key
//!   keeps two versions at or below `c`.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::error::KvError;
use crate::types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, Revision,
    SortOrder, SortTarget, TxnRequest, TxnResponse,
};

/// The most operations in each branch of a transaction, and compares, as etcd's default
/// `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// One version of a key: its value, or `None` for a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) revision: Revision,
    pub(crate) kv: Option<KeyValue>,
}

/// The multi-version key-value store. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MvccStore {
    pub(crate) current: Revision,
    pub(crate) compacted: Revision,
    pub(crate) keys: BTreeMap<Bytes, Vec<Version>>,
}

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

/// The keys `[key, range_end)` as etcd reads them.
fn bounds(key: &Bytes, range_end: &Bytes) -> (Bound<Bytes>, Bound<Bytes>) {
    if range_end.is_empty() {
        (Bound::Included(key.clone()), Bound::Included(key.clone()))
    } else if range_end.as_ref() == [0] {
        (Bound::Included(key.clone()), Bound::Unbounded)
    } else {
        (
            Bound::Included(key.clone()),
            Bound::Excluded(range_end.clone()),
        )
    }
}

/// Whether `key` lies in the range `[start, range_end)` (etcd conventions).
fn in_range(key: &[u8], start: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        key == start
    } else if range_end == [0] {
        key >= start
    } else {
        key >= start && key < range_end
    }
}

impl MvccStore {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        MvccStore {
            current: 1,
            compacted: 0,
            keys: BTreeMap::new(),
        }
    }

    /// The current revision.
    pub fn revision(&self) -> Revision {
        self.current
    }

    /// The revision compacted to (0: none).
    pub fn compacted_revision(&self) -> Revision {
        self.compacted
    }

    /// The key's value as of `revision`.
    fn value_at(versions: &[Version], revision: Revision) -> Option<&KeyValue> {
        let newer = versions.partition_point(|v| v.revision <= revision);
        versions[..newer].last().and_then(|v| v.kv.as_ref())
    }

    /// Every key of the range present at `revision`, in key order.
    fn live_range(&self, key: &Bytes, range_end: &Bytes, revision: Revision) -> Vec<&KeyValue> {
        if !range_end.is_empty() && range_end.as_ref() != [0] && range_end <= key {
            return Vec::new();
        }
        self.keys
            .range(bounds(key, range_end))
            .filter_map(|(_, versions)| Self::value_at(versions, revision))
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
        let mut kvs: Vec<KeyValue> = self
            .live_range(&request.key, &request.range_end, revision)
            .into_iter()
            .cloned()
            .collect();
        let count = kvs.len() as i64;
        // etcd: with no order asked, a non-key target sorts ascending; keys come in key order.
        let order = match (request.sort_order, request.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (order, _) => order,
        };
        if order != SortOrder::None {
            match request.sort_target {
                SortTarget::Key => {}
                SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
                SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
                SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
                SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
            }
            if order == SortOrder::Descend {
                kvs.reverse();
            }
        }
        let mut more = false;
        if request.limit > 0 && kvs.len() as i64 > request.limit {
            kvs.truncate(request.limit as usize);
            more = true;
        }
        if request.count_only {
            kvs.clear();
        } else if request.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        Ok(RangeResponse {
            revision: self.current,
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
        let versions = self.keys.entry(request.key.clone()).or_default();
        let previous = versions.last().and_then(|v| v.kv.clone());
        let (create_revision, version) = match &previous {
            Some(kv) => (kv.create_revision, kv.version + 1),
            None => (revision, 1),
        };
        let kv = KeyValue {
            key: request.key.clone(),
            create_revision,
            mod_revision: revision,
            version,
            value: request.value.clone(),
            lease: request.lease,
        };
        match versions.last_mut() {
            // A transaction never writes a key twice (validated before), but keep one version
            // per revision regardless.
            Some(last) if last.revision == revision => last.kv = Some(kv),
            _ => versions.push(Version {
                revision,
                kv: Some(kv),
            }),
        }
        writer.changed = true;
        previous.filter(|_| request.prev_kv)
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
        let doomed: Vec<KeyValue> = self
            .live_range(&request.key, &request.range_end, view)
            .into_iter()
            .cloned()
            .collect();
        for kv in &doomed {
            let versions = self
                .keys
                .get_mut(&kv.key)
                .expect("a live key has a history");
            match versions.last_mut() {
                Some(last) if last.revision == revision => last.kv = None,
                _ => versions.push(Version { revision, kv: None }),
            }
            writer.changed = true;
        }
        let deleted = doomed.len() as i64;
        (deleted, if request.prev_kv { doomed } else { Vec::new() })
    }

    /// Runs a transaction: one revision for all its writes.
    pub fn txn(&mut self, request: &TxnRequest) -> Result<TxnResponse, KvError> {
        validate_txn(request)?;
        let mut writer = self.begin();
        let (succeeded, responses) = self.apply_txn(&mut writer, request)?;
        self.commit(writer);
        let mut response = TxnResponse {
            revision: self.current,
            succeeded,
            responses,
        };
        stamp_revisions(&mut response.responses, self.current);
        Ok(response)
    }

    fn apply_txn(
        &mut self,
        writer: &mut Writer,
        request: &TxnRequest,
    ) -> Result<(bool, Vec<ResponseOp>), KvError> {
        let view = self.view(writer);
        let succeeded = request.compare.iter().all(|c| self.holds(c, view));
        let ops = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(range) => {
                    ResponseOp::Range(self.range_at(range, self.view(writer))?)
                }
                RequestOp::Put(put) => ResponseOp::Put(PutResponse {
                    revision: 0,
                    prev_kv: self.apply_put(writer, put),
                }),
                RequestOp::DeleteRange(delete) => {
                    let (deleted, prev_kvs) = self.apply_delete(writer, delete);
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        revision: 0,
                        deleted,
                        prev_kvs,
                    })
                }
                RequestOp::Txn(nested) => {
                    let (succeeded, responses) = self.apply_txn(writer, nested)?;
                    ResponseOp::Txn(TxnResponse {
                        revision: 0,
                        succeeded,
                        responses,
                    })
                }
            });
        }
        Ok((succeeded, responses))
    }

    /// Whether a compare holds at `revision`: for every key of its range, or, if the range is
    /// empty, for a missing key (whose value never matches).
    fn holds(&self, compare: &Compare, revision: Revision) -> bool {
        let kvs = self.live_range(&compare.key, &compare.range_end, revision);
        let check = |kv: &KeyValue| -> bool {
            let ordering = match &compare.target {
                CompareTarget::Version(v) => kv.version.cmp(v),
                CompareTarget::Create(r) => kv.create_revision.cmp(r),
                CompareTarget::Mod(r) => kv.mod_revision.cmp(r),
                CompareTarget::Value(value) => kv.value.cmp(value),
                CompareTarget::Lease(lease) => kv.lease.cmp(lease),
            };
            match compare.result {
                CompareResult::Equal => ordering.is_eq(),
                CompareResult::Greater => ordering.is_gt(),
                CompareResult::Less => ordering.is_lt(),
                CompareResult::NotEqual => ordering.is_ne(),
            }
        };
        if kvs.is_empty() {
            return !matches!(compare.target, CompareTarget::Value(_))
                && check(&KeyValue::default());
        }
        kvs.into_iter().all(check)
    }

    /// Forgets the history that no read at `revision` or later can see.
    pub fn compact(&mut self, revision: Revision) -> Result<(), KvError> {
        if revision > self.current {
            return Err(KvError::FutureRevision);
        }
        if revision <= self.compacted {
            return Err(KvError::Compacted);
        }
        self.keys.retain(|_, versions| {
            let visible = versions.partition_point(|v| v.revision <= revision);
            // Keep the version a read at `revision` sees, unless it is a deletion.
            let keep_from = match visible {
                0 => 0,
                n if versions[n - 1].kv.is_some() => n - 1,
                n => n,
            };
            versions.drain(..keep_from);
            !versions.is_empty()
        });
        self.compacted = revision;
        Ok(())
    }

    /// Checks the invariants in the [module documentation](self).
    pub fn check(&self) -> Result<(), String> {
        if self.current < 1 || self.compacted > self.current {
            return Err(format!(
                "revisions: current {}, compacted {}",
                self.current, self.compacted
            ));
        }
        for (key, versions) in &self.keys {
            if versions.is_empty() {
                return Err(format!("key {key:?} has no history"));
            }
            if versions.windows(2).any(|w| w[0].revision >= w[1].revision) {
                return Err(format!("key {key:?}: versions out of order"));
            }
            if versions.iter().any(|v| v.revision > self.current) {
                return Err(format!(
                    "key {key:?}: a version beyond the current revision"
                ));
            }
            let at_or_below = versions
                .iter()
                .filter(|v| v.revision <= self.compacted)
                .count();
            if self.compacted > 0
                && (at_or_below > 1 || (at_or_below == 1 && versions[0].kv.is_none()))
            {
                return Err(format!("key {key:?}: history below the compaction kept"));
            }
            for v in versions {
                if let Some(kv) = &v.kv
                    && (kv.mod_revision != v.revision
                        || kv.create_revision > v.revision
                        || kv.version < 1)
                {
                    return Err(format!("key {key:?}: inconsistent version {kv:?}"));
                }
            }
        }
        Ok(())
    }
}

/// Transaction responses carry the revision after the whole transaction.
fn stamp_revisions(responses: &mut [ResponseOp], revision: Revision) {
    for response in responses {
        match response {
            ResponseOp::Range(r) => r.revision = revision,
            ResponseOp::Put(r) => r.revision = revision,
            ResponseOp::DeleteRange(r) => r.revision = revision,
            ResponseOp::Txn(r) => {
                r.revision = revision;
                stamp_revisions(&mut r.responses, revision);
            }
        }
    }
}

/// etcd's checks before a transaction runs: sizes, keys, and no key written twice in a branch.
fn validate_txn(request: &TxnRequest) -> Result<(), KvError> {
    if request.compare.len() > MAX_TXN_OPS
        || request.success.len() > MAX_TXN_OPS
        || request.failure.len() > MAX_TXN_OPS
    {
        return Err(KvError::TooManyOps);
    }
    if request.compare.iter().any(|c| c.key.is_empty()) {
        return Err(KvError::EmptyKey);
    }
    for branch in [&request.success, &request.failure] {
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        collect_writes(branch, &mut puts, &mut deletes)?;
        if conflict(&puts, &deletes) {
            return Err(KvError::DuplicateKey);
        }
    }
    Ok(())
}

/// etcd's rule: two puts of one key conflict, and so does a put inside a deleted range;
/// deletes never conflict with each other.
fn conflict(puts: &[Bytes], deletes: &[(Bytes, Bytes)]) -> bool {
    let mut sorted = puts.to_vec();
    sorted.sort();
    sorted.windows(2).any(|w| w[0] == w[1])
        || deletes
            .iter()
            .any(|(start, end)| puts.iter().any(|key| in_range(key, start, end)))
}

/// The keys a branch puts and the ranges it deletes, nested transactions' branches included
/// (only one of a nested transaction's branches runs, but etcd checks both against the outer
/// branch).
fn collect_writes(
    ops: &[RequestOp],
    puts: &mut Vec<Bytes>,
    deletes: &mut Vec<(Bytes, Bytes)>,
) -> Result<(), KvError> {
    for op in ops {
        match op {
            RequestOp::Range(_) => {}
            RequestOp::Put(put) => {
                if put.key.is_empty() {
                    return Err(KvError::EmptyKey);
                }
                puts.push(put.key.clone());
            }
            RequestOp::DeleteRange(delete) => {
                if delete.key.is_empty() {
                    return Err(KvError::EmptyKey);
                }
                deletes.push((delete.key.clone(), delete.range_end.clone()));
            }
            RequestOp::Txn(nested) => {
                validate_txn(nested)?;
                // Both branches of the nested transaction could run; each is checked against
                // the outer branch on its own.
                let mut success = (puts.clone(), deletes.clone());
                collect_writes(&nested.success, &mut success.0, &mut success.1)?;
                let mut failure = (puts.clone(), deletes.clone());
                collect_writes(&nested.failure, &mut failure.0, &mut failure.1)?;
                if conflict(&success.0, &success.1) || conflict(&failure.0, &failure.1) {
                    return Err(KvError::DuplicateKey);
                }
                // Later outer writes must not conflict with either nested branch. A key both
                // nested branches put is one key here: only one of them runs.
                let (mut all_puts, mut all_deletes) = success;
                all_puts.extend(failure.0.into_iter().skip(puts.len()));
                all_puts.sort();
                all_puts.dedup();
                all_deletes.extend(failure.1.into_iter().skip(deletes.len()));
                *puts = all_puts;
                *deletes = all_deletes;
            }
        }
    }
    Ok(())
}
