//! synod's etcd v3-compatible gRPC server.
//!
//! For now this crate holds etcd's wire protocol only: [`pb`] has the messages, clients and
//! server traits generated from `proto/` at build time (with a pure-Rust protobuf compiler, so
//! building needs no `protoc`). Method paths are etcd's own, e.g. `/etcdserverpb.KV/Range`, so
//! etcd clients can talk to a synod server unchanged.
//!
//! ```
//! use synod_server::pb::etcdserverpb::PutRequest;
//! use prost::Message;
//!
//! let put = PutRequest { key: "foo".into(), value: "bar".into(), ..Default::default() };
//! let wire = put.encode_to_vec();
//! assert_eq!(PutRequest::decode(wire.as_slice()).unwrap(), put);
//! ```

#![warn(missing_docs)]

pub mod pb;
