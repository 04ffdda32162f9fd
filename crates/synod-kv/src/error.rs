//! Errors, with etcd's exact messages: Go clients match on the text.

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
}

impl KvError {
    /// The gRPC status code etcd answers with.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            KvError::EmptyKey | KvError::TooManyOps | KvError::DuplicateKey => {
                GrpcCode::InvalidArgument
            }
            KvError::Compacted | KvError::FutureRevision => GrpcCode::OutOfRange,
        }
    }
}

/// The gRPC status codes the store's errors map to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcCode {
    /// `INVALID_ARGUMENT` (3).
    InvalidArgument,
    /// `OUT_OF_RANGE` (11).
    OutOfRange,
}
