//! synod's member runtime and etcd v3-compatible gRPC server.
//!
//! [`start`] runs one member: it opens the member's storage ([`storage`]), boots the chosen
//! consensus engine ([`engine`]), starts the node task that drives it ([`node`]), the peer
//! transport ([`transport`]) and the client services ([`services`]).
//!
//! [`pb`] has etcd's messages, clients and server traits, generated from `proto/` at build
//! time with a pure-Rust protobuf compiler (building needs no `protoc`). Method paths are
//! etcd's own, e.g. `/etcdserverpb.KV/Range`, so etcd clients talk to synod unchanged.
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

pub mod client_io;
pub mod convert;
pub mod engine;
pub mod errors;
pub mod members;
pub mod node;
pub mod pb;
pub mod server;
pub mod services;
pub mod settings;
pub mod storage;
pub mod transport;

pub use server::{Member, ServerError, Stopper, start};
pub use settings::Settings;
