//! Compiles etcd's wire protocol (`proto/*.proto`) into Rust.
//!
//! `protox` parses the files into a `FileDescriptorSet` in pure Rust, so no `protoc` binary is
//! needed on any machine; `tonic-prost-build` then generates the prost messages and the tonic
//! clients and servers from that set.

use std::io;

/// The files to compile; `rpc.proto` imports the other two by these names, relative to `proto/`.
const PROTO_FILES: [&str; 3] = ["proto/kv.proto", "proto/auth.proto", "proto/rpc.proto"];
const PROTO_INCLUDE_DIR: &str = "proto";

fn main() -> io::Result<()> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }

    let descriptors = protox::compile(PROTO_FILES, [PROTO_INCLUDE_DIR])
        .map_err(|error| io::Error::other(format!("parsing the .proto files: {error:?}")))?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Every server trait method gets a body answering `Unimplemented`, so a service can be
        // served before all of its methods are written.
        .generate_default_stubs(true)
        // Keys and values arrive as `bytes::Bytes`: decoding slices the request buffer instead of
        // copying each field into a fresh `Vec<u8>`.
        .bytes(".")
        .compile_fds(descriptors)
}
