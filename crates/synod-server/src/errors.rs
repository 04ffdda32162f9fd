//! Errors the client API returns, with etcd's gRPC codes and exact messages (Go clients match
//! on the text).

use synod_kv::KvError;
use tonic::{Code, Status};

/// Why a client request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The state machine refused it.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// No leader is known.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// Leadership moved while the request waited.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// The request waited too long.
    #[error("etcdserver: request timed out")]
    TimedOut,
    /// The request is larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    TooLarge,
    /// The store is larger than `--quota-backend-bytes`.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// The member is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The engine could not take the request now (for example, too many in flight).
    #[error("etcdserver: {0}")]
    Unavailable(String),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        let code = match &error {
            ApiError::Kv(kv) => match kv.grpc_code() {
                synod_kv::GrpcCode::InvalidArgument => Code::InvalidArgument,
                synod_kv::GrpcCode::OutOfRange => Code::OutOfRange,
                synod_kv::GrpcCode::ResourceExhausted => Code::ResourceExhausted,
                synod_kv::GrpcCode::Unavailable => Code::Unavailable,
            },
            ApiError::TooLarge => Code::InvalidArgument,
            ApiError::NoSpace => Code::ResourceExhausted,
            ApiError::NoLeader
            | ApiError::LeaderChanged
            | ApiError::TimedOut
            | ApiError::Stopped
            | ApiError::Unavailable(_) => Code::Unavailable,
        };
        Status::new(code, error.to_string())
    }
}
