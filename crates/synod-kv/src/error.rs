//! Errors, with etcd's exact messages: Go clients match on the text.
//!
//! The messages and codes are those of etcd's `api/v3rpc/rpctypes/error.go`.

use thiserror::Error;

/// Why a request was refused. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum KvError {
    /// A put or compare named no key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// A transaction has more operations than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A transaction writes one key twice, or writes a key inside a range it deletes.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// The revision asked for has been compacted away.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The revision asked for does not exist yet.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// The store has reached its space quota: writes that add data are refused, deletes and
    /// compaction are not (etcd's `ErrGRPCNoSpace`).
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// The request is larger than the server accepts (etcd's `ErrGRPCRequestTooLarge`).
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// No leader is known, so the request cannot be ordered (etcd's `ErrGRPCNoLeader`).
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The request was not applied in time (etcd's `ErrGRPCTimeout`).
    #[error("etcdserver: request timed out")]
    Timeout,
    /// Leadership changed while the request was in flight, and it was lost (etcd's
    /// `ErrGRPCLeaderChanged`).
    #[error("etcdserver: leader changed")]
    LeaderChanged,
}

impl KvError {
    /// The gRPC status code etcd answers with.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            KvError::EmptyKey
            | KvError::TooManyOps
            | KvError::DuplicateKey
            | KvError::RequestTooLarge => GrpcCode::InvalidArgument,
            KvError::Compacted | KvError::FutureRevision => GrpcCode::OutOfRange,
            KvError::NoSpace => GrpcCode::ResourceExhausted,
            KvError::NoLeader | KvError::Timeout | KvError::LeaderChanged => GrpcCode::Unavailable,
        }
    }
}

/// The gRPC status codes the store's errors map to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcCode {
    /// `INVALID_ARGUMENT` (3).
    InvalidArgument,
    /// `RESOURCE_EXHAUSTED` (8).
    ResourceExhausted,
    /// `OUT_OF_RANGE` (11).
    OutOfRange,
    /// `UNAVAILABLE` (14).
    Unavailable,
}

impl GrpcCode {
    /// The code's number on the wire.
    pub fn code(self) -> i32 {
        match self {
            GrpcCode::InvalidArgument => 3,
            GrpcCode::ResourceExhausted => 8,
            GrpcCode::OutOfRange => 11,
            GrpcCode::Unavailable => 14,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact strings and codes of etcd's `rpctypes/error.go`.
    #[test]
    fn messages_and_codes_are_etcds() {
        let cases = [
            (KvError::EmptyKey, "etcdserver: key is not provided", 3),
            (
                KvError::TooManyOps,
                "etcdserver: too many operations in txn request",
                3,
            ),
            (
                KvError::DuplicateKey,
                "etcdserver: duplicate key given in txn request",
                3,
            ),
            (
                KvError::Compacted,
                "etcdserver: mvcc: required revision has been compacted",
                11,
            ),
            (
                KvError::FutureRevision,
                "etcdserver: mvcc: required revision is a future revision",
                11,
            ),
            (
                KvError::NoSpace,
                "etcdserver: mvcc: database space exceeded",
                8,
            ),
            (
                KvError::RequestTooLarge,
                "etcdserver: request is too large",
                3,
            ),
            (KvError::NoLeader, "etcdserver: no leader", 14),
            (KvError::Timeout, "etcdserver: request timed out", 14),
            (KvError::LeaderChanged, "etcdserver: leader changed", 14),
        ];
        for (error, message, code) in cases {
            assert_eq!(error.to_string(), message);
            assert_eq!(error.grpc_code().code(), code, "{message}");
        }
    }
}
