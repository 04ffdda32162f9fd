//! The Rust types generated from etcd v3's `.proto` files (see `build.rs` and `proto/`).
//!
//! Each protobuf package is a module:
//!
//! - [`etcdserverpb`]: the request and response messages, and for each of etcd's services
//!   (`KV`, `Watch`, `Lease`, `Cluster`, `Maintenance`, `Auth`) a client module (`kv_client`,
//!   ...) and a server module (`kv_server::{Kv, KvServer}`, ...).
//! - [`mvccpb`]: `KeyValue` and `Event`.
//! - [`authpb`]: `User`, `Permission`, `Role`.
//!
//! All `bytes` fields are [`bytes::Bytes`]. Server trait methods that are not overridden answer
//! with gRPC status `Unimplemented`; such defaults for streaming methods return the module's
//! `BoxStream` type rather than an associated stream type.

/// etcd's client API: services `KV`, `Watch`, `Lease`, `Cluster`, `Maintenance`, `Auth`.
pub mod etcdserverpb {
    // Generated code: fields, enum variants and client/server items carry doc comments only
    // where the .proto has a comment, and not every field needs one.
    #![allow(missing_docs)]
    tonic::include_proto!("etcdserverpb");
}

/// The multi-version store's record (`KeyValue`) and watch event (`Event`).
pub mod mvccpb {
    #![allow(missing_docs)]
    tonic::include_proto!("mvccpb");
}

/// Authentication records: `User`, `Permission`, `Role`.
pub mod authpb {
    #![allow(missing_docs)]
    tonic::include_proto!("authpb");
}
