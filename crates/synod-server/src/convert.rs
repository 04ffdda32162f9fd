//! Translation between etcd's wire messages and the state machine's requests and responses.

use synod_kv::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, SortOrder,
    SortTarget, TxnRequest, TxnResponse,
};
use tonic::Status;

use crate::pb::etcdserverpb as pb;
use crate::pb::mvccpb;

/// A request etcd would accept but synod does not support yet.
fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("synod: {what} is not supported yet"))
}

/// etcd's answer to a put that names a lease that does not exist (leases are not built yet).
pub fn lease_not_found() -> Status {
    Status::not_found("etcdserver: requested lease not found")
}

/// A range request from the wire.
pub fn range_request(r: pb::RangeRequest) -> Result<RangeRequest, Status> {
    if r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0
    {
        return Err(unsupported("filtering a range by min/max revision"));
    }
    let sort_order = match pb::range_request::SortOrder::try_from(r.sort_order) {
        Ok(pb::range_request::SortOrder::None) => SortOrder::None,
        Ok(pb::range_request::SortOrder::Ascend) => SortOrder::Ascend,
        Ok(pb::range_request::SortOrder::Descend) => SortOrder::Descend,
        Err(_) => return Err(Status::invalid_argument("etcdserver: invalid sort option")),
    };
    let sort_target = match pb::range_request::SortTarget::try_from(r.sort_target) {
        Ok(pb::range_request::SortTarget::Key) => SortTarget::Key,
        Ok(pb::range_request::SortTarget::Version) => SortTarget::Version,
        Ok(pb::range_request::SortTarget::Create) => SortTarget::Create,
        Ok(pb::range_request::SortTarget::Mod) => SortTarget::Mod,
        Ok(pb::range_request::SortTarget::Value) => SortTarget::Value,
        Err(_) => return Err(Status::invalid_argument("etcdserver: invalid sort option")),
    };
    Ok(RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
    })
}

/// A put request from the wire.
pub fn put_request(r: pb::PutRequest) -> Result<PutRequest, Status> {
    if r.ignore_value || r.ignore_lease {
        return Err(unsupported("ignore_value and ignore_lease"));
    }
    if r.lease != 0 {
        return Err(lease_not_found());
    }
    Ok(PutRequest {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
    })
}

/// A delete request from the wire.
pub fn delete_request(r: pb::DeleteRangeRequest) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: r.key,
        range_end: r.range_end,
        prev_kv: r.prev_kv,
    }
}

fn compare(c: pb::Compare) -> Result<Compare, Status> {
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let result = match R::try_from(c.result) {
        Ok(R::Equal) => CompareResult::Equal,
        Ok(R::Greater) => CompareResult::Greater,
        Ok(R::Less) => CompareResult::Less,
        Ok(R::NotEqual) => CompareResult::NotEqual,
        Err(_) => {
            return Err(Status::invalid_argument(
                "etcdserver: invalid compare result",
            ));
        }
    };
    let target = T::try_from(c.target)
        .map_err(|_| Status::invalid_argument("etcdserver: invalid compare target"))?;
    // An absent union compares against the zero value of the target, as etcd does.
    let target = match (target, c.target_union) {
        (T::Version, Some(U::Version(v))) => CompareTarget::Version(v),
        (T::Version, None) => CompareTarget::Version(0),
        (T::Create, Some(U::CreateRevision(v))) => CompareTarget::Create(v),
        (T::Create, None) => CompareTarget::Create(0),
        (T::Mod, Some(U::ModRevision(v))) => CompareTarget::Mod(v),
        (T::Mod, None) => CompareTarget::Mod(0),
        (T::Value, Some(U::Value(v))) => CompareTarget::Value(v),
        (T::Value, None) => CompareTarget::Value(Default::default()),
        (T::Lease, Some(U::Lease(v))) => CompareTarget::Lease(v),
        (T::Lease, None) => CompareTarget::Lease(0),
        _ => {
            return Err(Status::invalid_argument(
                "etcdserver: compare target and value do not match",
            ));
        }
    };
    Ok(Compare {
        key: c.key,
        range_end: c.range_end,
        result,
        target,
    })
}

fn request_op(op: pb::RequestOp) -> Result<RequestOp, Status> {
    use pb::request_op::Request;
    match op.request {
        Some(Request::RequestRange(r)) => Ok(RequestOp::Range(range_request(r)?)),
        Some(Request::RequestPut(r)) => Ok(RequestOp::Put(put_request(r)?)),
        Some(Request::RequestDeleteRange(r)) => Ok(RequestOp::DeleteRange(delete_request(r))),
        Some(Request::RequestTxn(r)) => Ok(RequestOp::Txn(txn_request(r)?)),
        None => Err(Status::invalid_argument(
            "etcdserver: a txn operation names no request",
        )),
    }
}

/// A transaction from the wire.
pub fn txn_request(r: pb::TxnRequest) -> Result<TxnRequest, Status> {
    Ok(TxnRequest {
        compare: r
            .compare
            .into_iter()
            .map(compare)
            .collect::<Result<_, _>>()?,
        success: r
            .success
            .into_iter()
            .map(request_op)
            .collect::<Result<_, _>>()?,
        failure: r
            .failure
            .into_iter()
            .map(request_op)
            .collect::<Result<_, _>>()?,
    })
}

/// A key-value pair for the wire.
pub fn key_value(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// Builds response headers.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// The cluster id.
    pub cluster_id: u64,
    /// This member.
    pub member_id: u64,
    /// The current term.
    pub raft_term: u64,
}

impl Header {
    /// The header for a response at `revision`.
    pub fn at(&self, revision: i64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term,
        })
    }
}

/// A range response for the wire.
pub fn range_response(h: Header, r: RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: h.at(r.revision),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

/// A put response for the wire.
pub fn put_response(h: Header, r: PutResponse) -> pb::PutResponse {
    pb::PutResponse {
        header: h.at(r.revision),
        prev_kv: r.prev_kv.map(key_value),
    }
}

/// A delete response for the wire.
pub fn delete_response(h: Header, r: DeleteRangeResponse) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: h.at(r.revision),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

/// A transaction response for the wire.
///
/// Only the outermost header names the cluster, the member and the term: etcd fills those in
/// at the gRPC layer (`v3rpc/header.go`) on the response it returns, and the responses inside
/// carry just the revision the store gave each (`etcdctl txn -w json` shows
/// `"header":{"revision":N}` for them).
pub fn txn_response(h: Header, r: TxnResponse) -> pb::TxnResponse {
    let inner = Header {
        cluster_id: 0,
        member_id: 0,
        raft_term: 0,
    };
    pb::TxnResponse {
        header: h.at(r.revision),
        succeeded: r.succeeded,
        responses: response_ops(inner, r.responses),
    }
}

fn response_ops(h: Header, responses: Vec<ResponseOp>) -> Vec<pb::ResponseOp> {
    use pb::response_op::Response;
    responses
        .into_iter()
        .map(|op| pb::ResponseOp {
            response: Some(match op {
                ResponseOp::Range(r) => Response::ResponseRange(range_response(h, r)),
                ResponseOp::Put(r) => Response::ResponsePut(put_response(h, r)),
                ResponseOp::DeleteRange(r) => Response::ResponseDeleteRange(delete_response(h, r)),
                ResponseOp::Txn(r) => Response::ResponseTxn(pb::TxnResponse {
                    header: h.at(r.revision),
                    succeeded: r.succeeded,
                    responses: response_ops(h, r.responses),
                }),
            }),
        })
        .collect()
}

/// Whether a transaction only reads (it can then be served like a range).
pub fn txn_is_read_only(t: &TxnRequest) -> bool {
    fn op(o: &RequestOp) -> bool {
        match o {
            RequestOp::Range(_) => true,
            RequestOp::Txn(t) => txn_is_read_only(t),
            RequestOp::Put(_) | RequestOp::DeleteRange(_) => false,
        }
    }
    t.success.iter().all(op) && t.failure.iter().all(op)
}
