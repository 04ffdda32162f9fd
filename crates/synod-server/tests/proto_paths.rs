//! The generated code speaks etcd v3's wire protocol: its gRPC service names and method paths
//! are etcd's, and its messages use etcd's field numbers and wire types.
//!
//! The expected field numbers are those of etcd v3.5's `api/etcdserverpb/rpc.proto`,
//! `api/mvccpb/kv.proto` and `api/authpb/auth.proto`, written out here by hand so that a change
//! to `proto/` which breaks compatibility fails a test instead of silently changing the wire.

use std::convert::Infallible;

use bytes::Bytes;
use prost::Message;
use synod_server::pb::authpb;
use synod_server::pb::etcdserverpb::auth_server::{Auth, AuthServer};
use synod_server::pb::etcdserverpb::cluster_client::ClusterClient;
use synod_server::pb::etcdserverpb::cluster_server::{Cluster, ClusterServer};
use synod_server::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_server::pb::etcdserverpb::kv_client::KvClient;
use synod_server::pb::etcdserverpb::kv_server::{Kv, KvServer};
use synod_server::pb::etcdserverpb::lease_server::{Lease, LeaseServer};
use synod_server::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use synod_server::pb::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use synod_server::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use synod_server::pb::etcdserverpb::request_op::Request as RequestOpRequest;
use synod_server::pb::etcdserverpb::watch_server::{Watch, WatchServer};
use synod_server::pb::etcdserverpb::{
    Compare, MemberListRequest, MemberListResponse, PutRequest, RangeRequest, RequestOp,
    StatusRequest, StatusResponse, TxnRequest,
};
use synod_server::pb::mvccpb;
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// What tonic's default stub for an unimplemented server method answers. A path the server does
/// not route is answered `Unimplemented` with no message at all, which is how the tests below
/// tell "routed to a stub" apart from "unknown path".
const DEFAULT_STUB_MESSAGE: &str = "Not yet implemented";

// ---------------------------------------------------------------------------------------------
// Wire-format helpers (https://protobuf.dev/programming-guides/encoding/).
// ---------------------------------------------------------------------------------------------

const WIRE_VARINT: u64 = 0;
const WIRE_LEN: u64 = 2;

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A field's tag: `(field_number << 3) | wire_type`, as a varint.
fn push_tag(out: &mut Vec<u8>, field_number: u64, wire_type: u64) {
    push_varint(out, (field_number << 3) | wire_type);
}

/// A varint field; `int64`, `uint64`, `bool` and enums all travel this way (negative `int64`s
/// as ten-byte two's complement).
fn push_varint_field(out: &mut Vec<u8>, field_number: u64, value: u64) {
    push_tag(out, field_number, WIRE_VARINT);
    push_varint(out, value);
}

/// A length-delimited field: `bytes`, `string`, embedded messages, packed repeated scalars.
fn push_len_field(out: &mut Vec<u8>, field_number: u64, payload: &[u8]) {
    push_tag(out, field_number, WIRE_LEN);
    push_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Decodes `wire` as `M`, checks it equals `expected`, and checks that prost encodes `expected`
/// back to exactly `wire` (prost writes fields in field-number order, as the tests do).
fn assert_wire_round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(
    wire: &[u8],
    expected: &M,
) {
    let decoded = M::decode(wire).expect("hand-encoded bytes decode");
    assert_eq!(&decoded, expected);
    assert_eq!(
        expected.encode_to_vec(),
        wire,
        "encoding differs from the hand-encoded bytes"
    );
}

// ---------------------------------------------------------------------------------------------
// (1) Service names and method paths.
// ---------------------------------------------------------------------------------------------

/// A service with no methods written: every method falls back to the generated default stub.
#[derive(Clone, Copy)]
struct Unwritten;

impl Kv for Unwritten {}
impl Watch for Unwritten {}
impl Lease for Unwritten {}
impl Cluster for Unwritten {}
impl Maintenance for Unwritten {}
impl Auth for Unwritten {}

#[test]
fn service_names_are_etcds() {
    assert_eq!(
        <KvServer<Unwritten> as NamedService>::NAME,
        "etcdserverpb.KV"
    );
    assert_eq!(
        <WatchServer<Unwritten> as NamedService>::NAME,
        "etcdserverpb.Watch"
    );
    assert_eq!(
        <LeaseServer<Unwritten> as NamedService>::NAME,
        "etcdserverpb.Lease"
    );
    assert_eq!(
        <ClusterServer<Unwritten> as NamedService>::NAME,
        "etcdserverpb.Cluster"
    );
    assert_eq!(
        <MaintenanceServer<Unwritten> as NamedService>::NAME,
        "etcdserverpb.Maintenance"
    );
    assert_eq!(
        <AuthServer<Unwritten> as NamedService>::NAME,
        "etcdserverpb.Auth"
    );
}

/// Every method of etcd's six services, as `/package.Service/Method`.
const ETCD_METHOD_PATHS: &[&str] = &[
    "/etcdserverpb.KV/Range",
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseGrant",
    "/etcdserverpb.Lease/LeaseRevoke",
    "/etcdserverpb.Lease/LeaseKeepAlive",
    "/etcdserverpb.Lease/LeaseTimeToLive",
    "/etcdserverpb.Lease/LeaseLeases",
    "/etcdserverpb.Cluster/MemberAdd",
    "/etcdserverpb.Cluster/MemberRemove",
    "/etcdserverpb.Cluster/MemberUpdate",
    "/etcdserverpb.Cluster/MemberList",
    "/etcdserverpb.Cluster/MemberPromote",
    "/etcdserverpb.Maintenance/Alarm",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Defragment",
    "/etcdserverpb.Maintenance/Hash",
    "/etcdserverpb.Maintenance/HashKV",
    "/etcdserverpb.Maintenance/Snapshot",
    "/etcdserverpb.Maintenance/MoveLeader",
    "/etcdserverpb.Maintenance/Downgrade",
    "/etcdserverpb.Auth/AuthEnable",
    "/etcdserverpb.Auth/AuthDisable",
    "/etcdserverpb.Auth/AuthStatus",
    "/etcdserverpb.Auth/Authenticate",
    "/etcdserverpb.Auth/UserAdd",
    "/etcdserverpb.Auth/UserGet",
    "/etcdserverpb.Auth/UserList",
    "/etcdserverpb.Auth/UserDelete",
    "/etcdserverpb.Auth/UserChangePassword",
    "/etcdserverpb.Auth/UserGrantRole",
    "/etcdserverpb.Auth/UserRevokeRole",
    "/etcdserverpb.Auth/RoleAdd",
    "/etcdserverpb.Auth/RoleGet",
    "/etcdserverpb.Auth/RoleList",
    "/etcdserverpb.Auth/RoleDelete",
    "/etcdserverpb.Auth/RoleGrantPermission",
    "/etcdserverpb.Auth/RoleRevokePermission",
];

#[test]
fn generated_code_contains_every_etcd_method_path_and_no_other() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
    for path in ETCD_METHOD_PATHS {
        assert!(
            generated.contains(&format!("\"{path}\"")),
            "{path} is not generated"
        );
    }
    // Each path appears once in the client and once in the server's router.
    let generated_path_count = generated.matches("\"/etcdserverpb.").count();
    assert_eq!(generated_path_count, 2 * ETCD_METHOD_PATHS.len());
}

/// Sends one gRPC call carrying an empty request message straight into a generated server (no
/// network) and returns the status it answers with.
async fn call_in_process<S>(server: &mut S, path: &str) -> Status
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    // gRPC framing: a zero compression flag and a zero big-endian length, i.e. the empty
    // message, which every etcd request type accepts.
    let empty_message_frame = String::from("\0\0\0\0\0");
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("http://localhost{path}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Body::new(empty_message_frame))
        .expect("valid request");
    let response = server.call(request).await.expect("infallible");
    // A call that fails before any message is sent answers with the status in the headers.
    Status::from_header_map(response.headers()).expect("a trailers-only gRPC status")
}

async fn assert_routes_to_default_stubs<S>(server: &mut S, service: &str)
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    let prefix = format!("/etcdserverpb.{service}/");
    let paths: Vec<&str> = ETCD_METHOD_PATHS
        .iter()
        .copied()
        .filter(|path| path.starts_with(&prefix))
        .collect();
    assert!(!paths.is_empty());
    for path in paths {
        let status = call_in_process(server, path).await;
        assert_eq!(status.code(), Code::Unimplemented, "{path}");
        assert_eq!(
            status.message(),
            DEFAULT_STUB_MESSAGE,
            "{path} is not routed to its method"
        );
    }
    let unknown = call_in_process(server, &format!("{prefix}NoSuchMethod")).await;
    assert_eq!(unknown.code(), Code::Unimplemented);
    assert_eq!(
        unknown.message(),
        "",
        "an unrouted path must not reach a method stub"
    );
}

#[tokio::test]
async fn every_etcd_method_path_is_routed_and_defaults_to_unimplemented() {
    assert_routes_to_default_stubs(&mut KvServer::new(Unwritten), "KV").await;
    assert_routes_to_default_stubs(&mut WatchServer::new(Unwritten), "Watch").await;
    assert_routes_to_default_stubs(&mut LeaseServer::new(Unwritten), "Lease").await;
    assert_routes_to_default_stubs(&mut ClusterServer::new(Unwritten), "Cluster").await;
    assert_routes_to_default_stubs(&mut MaintenanceServer::new(Unwritten), "Maintenance").await;
    assert_routes_to_default_stubs(&mut AuthServer::new(Unwritten), "Auth").await;
}

/// The generated clients reach the generated servers over real HTTP/2 on loopback, and the
/// gRPC health service (used later by the server binary) can be served beside them.
#[tokio::test]
async fn generated_clients_reach_default_stubs_over_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    let (_health_reporter, health_service) = tonic_health::server::health_reporter();
    let (stop_sender, stop_receiver) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(KvServer::new(Unwritten))
            .add_service(ClusterServer::new(Unwritten))
            .add_service(MaintenanceServer::new(Unwritten))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stop_receiver.await;
                },
            ),
    );

    let endpoint = format!("http://{address}");
    let mut kv = KvClient::connect(endpoint.clone()).await.expect("connect");
    let status = kv.range(RangeRequest::default()).await.expect_err("stub");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unimplemented, DEFAULT_STUB_MESSAGE)
    );

    let mut maintenance = MaintenanceClient::connect(endpoint.clone())
        .await
        .expect("connect");
    let status = maintenance
        .status(StatusRequest {})
        .await
        .expect_err("stub");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unimplemented, DEFAULT_STUB_MESSAGE)
    );

    let mut cluster = ClusterClient::connect(endpoint).await.expect("connect");
    let status = cluster
        .member_list(MemberListRequest { linearizable: true })
        .await
        .expect_err("stub");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unimplemented, DEFAULT_STUB_MESSAGE)
    );

    stop_sender.send(()).expect("server still running");
    server
        .await
        .expect("server task")
        .expect("server shut down cleanly");
}

// ---------------------------------------------------------------------------------------------
// (2) and (3) Field numbers, checked against hand-encoded bytes.
// ---------------------------------------------------------------------------------------------

#[test]
fn put_request_known_bytes() {
    // PutRequest { key: "foo", value: "bar", prev_kv: true }: key is field 1 (tag 0x0a = 1<<3|2),
    // value field 2 (0x12), prev_kv field 4 as a varint (0x20 = 4<<3|0).
    let wire: &[u8] = &[
        0x0a, 3, b'f', b'o', b'o', 0x12, 3, b'b', b'a', b'r', 0x20, 1,
    ];
    let decoded = PutRequest::decode(wire).expect("decodes");
    assert_eq!(decoded.key, Bytes::from_static(b"foo"));
    assert_eq!(decoded.value, Bytes::from_static(b"bar"));
    assert!(decoded.prev_kv);
    assert_eq!(decoded.lease, 0);
    assert!(!decoded.ignore_value);
    assert!(!decoded.ignore_lease);
    assert_eq!(decoded.encode_to_vec(), wire);
}

#[test]
fn put_request_field_numbers() {
    // etcd: key = 1, value = 2, lease = 3, prev_kv = 4, ignore_value = 5, ignore_lease = 6.
    let mut wire = Vec::new();
    push_len_field(&mut wire, 1, b"k");
    push_len_field(&mut wire, 2, b"v");
    push_varint_field(&mut wire, 3, 0x7000_0000_0000_0001);
    push_varint_field(&mut wire, 4, 1);
    push_varint_field(&mut wire, 5, 1);
    push_varint_field(&mut wire, 6, 1);
    let expected = PutRequest {
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"v"),
        lease: 0x7000_0000_0000_0001,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    };
    assert_wire_round_trip(&wire, &expected);
}

#[test]
fn range_request_field_numbers() {
    // etcd: key = 1, range_end = 2, limit = 3, revision = 4, sort_order = 5, sort_target = 6,
    // serializable = 7, keys_only = 8, count_only = 9, min_mod_revision = 10,
    // max_mod_revision = 11, min_create_revision = 12, max_create_revision = 13.
    // SortOrder: NONE = 0, ASCEND = 1, DESCEND = 2. SortTarget: KEY = 0, VERSION = 1,
    // CREATE = 2, MOD = 3, VALUE = 4.
    let mut wire = Vec::new();
    push_len_field(&mut wire, 1, b"a");
    push_len_field(&mut wire, 2, b"b");
    push_varint_field(&mut wire, 3, 3);
    push_varint_field(&mut wire, 4, 4);
    push_varint_field(&mut wire, 5, 2);
    push_varint_field(&mut wire, 6, 3);
    push_varint_field(&mut wire, 7, 1);
    push_varint_field(&mut wire, 8, 1);
    push_varint_field(&mut wire, 9, 1);
    push_varint_field(&mut wire, 10, 10);
    push_varint_field(&mut wire, 11, 11);
    push_varint_field(&mut wire, 12, 12);
    push_varint_field(&mut wire, 13, 13);
    let expected = RangeRequest {
        key: Bytes::from_static(b"a"),
        range_end: Bytes::from_static(b"b"),
        limit: 3,
        revision: 4,
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 10,
        max_mod_revision: 11,
        min_create_revision: 12,
        max_create_revision: 13,
    };
    assert_wire_round_trip(&wire, &expected);
    assert_eq!(SortOrder::Ascend as i32, 1);
    assert_eq!(SortTarget::Value as i32, 4);
}

#[test]
fn negative_revision_travels_as_ten_byte_varint() {
    // int64 (not sint64): -1 is the two's complement varint, ten bytes long.
    let mut wire = Vec::new();
    push_varint_field(&mut wire, 4, (-1_i64) as u64);
    assert_eq!(wire.len(), 1 + 10);
    assert_wire_round_trip(
        &wire,
        &RangeRequest {
            revision: -1,
            ..Default::default()
        },
    );
}

#[test]
fn txn_request_field_numbers() {
    // TxnRequest: compare = 1, success = 2, failure = 3. Compare: result = 1, target = 2,
    // key = 3, oneof target_union { version = 4, create_revision = 5, mod_revision = 6,
    // value = 7, lease = 8 }, range_end = 64. RequestOp: oneof request { request_range = 1,
    // request_put = 2, request_delete_range = 3, request_txn = 4 }.
    let mut compare = Vec::new();
    push_varint_field(&mut compare, 1, 3); // NOT_EQUAL
    push_varint_field(&mut compare, 2, 3); // VALUE
    push_len_field(&mut compare, 3, b"k");
    push_len_field(&mut compare, 7, b"v");
    push_len_field(&mut compare, 64, b"z");
    let mut put = Vec::new();
    push_len_field(&mut put, 1, b"k");
    let mut success_op = Vec::new();
    push_len_field(&mut success_op, 2, &put);
    let mut failure_op = Vec::new();
    push_len_field(&mut failure_op, 1, &[]); // an empty RangeRequest
    let mut wire = Vec::new();
    push_len_field(&mut wire, 1, &compare);
    push_len_field(&mut wire, 2, &success_op);
    push_len_field(&mut wire, 3, &failure_op);
    let expected = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::NotEqual as i32,
            target: CompareTarget::Value as i32,
            key: Bytes::from_static(b"k"),
            range_end: Bytes::from_static(b"z"),
            target_union: Some(TargetUnion::Value(Bytes::from_static(b"v"))),
        }],
        success: vec![RequestOp {
            request: Some(RequestOpRequest::RequestPut(PutRequest {
                key: Bytes::from_static(b"k"),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(RequestOpRequest::RequestRange(RangeRequest::default())),
        }],
    };
    assert_wire_round_trip(&wire, &expected);
    assert_eq!(CompareTarget::Lease as i32, 4);
}

#[test]
fn status_response_field_numbers() {
    // ResponseHeader: cluster_id = 1, member_id = 2, revision = 3, raft_term = 4.
    // StatusResponse: header = 1, version = 2, dbSize = 3, leader = 4, raftIndex = 5,
    // raftTerm = 6, raftAppliedIndex = 7, errors = 8, dbSizeInUse = 9, isLearner = 10.
    let mut header = Vec::new();
    push_varint_field(&mut header, 1, 101);
    push_varint_field(&mut header, 2, 102);
    push_varint_field(&mut header, 3, 103);
    push_varint_field(&mut header, 4, 104);
    let mut wire = Vec::new();
    push_len_field(&mut wire, 1, &header);
    push_len_field(&mut wire, 2, b"3.5.0");
    push_varint_field(&mut wire, 3, 4096);
    push_varint_field(&mut wire, 4, 7);
    push_varint_field(&mut wire, 5, 50);
    push_varint_field(&mut wire, 6, 6);
    push_varint_field(&mut wire, 7, 49);
    push_len_field(&mut wire, 8, b"NOSPACE");
    push_varint_field(&mut wire, 9, 2048);
    push_varint_field(&mut wire, 10, 1);
    let decoded = StatusResponse::decode(wire.as_slice()).expect("decodes");
    let header = decoded.header.as_ref().expect("header");
    assert_eq!(
        (
            header.cluster_id,
            header.member_id,
            header.revision,
            header.raft_term
        ),
        (101, 102, 103, 104)
    );
    assert_eq!(decoded.version, "3.5.0");
    assert_eq!(decoded.db_size, 4096);
    assert_eq!(decoded.leader, 7);
    assert_eq!(decoded.raft_index, 50);
    assert_eq!(decoded.raft_term, 6);
    assert_eq!(decoded.raft_applied_index, 49);
    assert_eq!(decoded.errors, vec!["NOSPACE".to_string()]);
    assert_eq!(decoded.db_size_in_use, 2048);
    assert!(decoded.is_learner);
    assert_eq!(decoded.encode_to_vec(), wire);
}

#[test]
fn member_list_field_numbers() {
    // MemberListRequest: linearizable = 1. MemberListResponse: header = 1, members = 2.
    // Member: ID = 1, name = 2, peerURLs = 3, clientURLs = 4, isLearner = 5.
    assert_wire_round_trip(&[0x08, 1], &MemberListRequest { linearizable: true });

    let mut member = Vec::new();
    push_varint_field(&mut member, 1, 0x8e9e_05c5_2164_694d);
    push_len_field(&mut member, 2, b"n1");
    push_len_field(&mut member, 3, b"http://127.0.0.1:2380");
    push_len_field(&mut member, 4, b"http://127.0.0.1:2379");
    push_varint_field(&mut member, 5, 1);
    let mut wire = Vec::new();
    push_len_field(&mut wire, 2, &member);
    let decoded = MemberListResponse::decode(wire.as_slice()).expect("decodes");
    let [only] = decoded.members.as_slice() else {
        panic!("one member: {decoded:?}")
    };
    assert_eq!(only.id, 0x8e9e_05c5_2164_694d);
    assert_eq!(only.name, "n1");
    assert_eq!(only.peer_ur_ls, vec!["http://127.0.0.1:2380".to_string()]);
    assert_eq!(only.client_ur_ls, vec!["http://127.0.0.1:2379".to_string()]);
    assert!(only.is_learner);
    assert_eq!(decoded.encode_to_vec(), wire);
}

#[test]
fn mvcc_key_value_and_event_field_numbers() {
    // KeyValue: key = 1, create_revision = 2, mod_revision = 3, version = 4, value = 5,
    // lease = 6. Event: type = 1 (PUT = 0, DELETE = 1), kv = 2, prev_kv = 3.
    let mut kv = Vec::new();
    push_len_field(&mut kv, 1, b"k");
    push_varint_field(&mut kv, 2, 2);
    push_varint_field(&mut kv, 3, 3);
    push_varint_field(&mut kv, 4, 4);
    push_len_field(&mut kv, 5, b"v");
    push_varint_field(&mut kv, 6, 6);
    let key_value = mvccpb::KeyValue {
        key: Bytes::from_static(b"k"),
        create_revision: 2,
        mod_revision: 3,
        version: 4,
        value: Bytes::from_static(b"v"),
        lease: 6,
    };
    assert_wire_round_trip(&kv, &key_value);

    let mut event = Vec::new();
    push_varint_field(&mut event, 1, 1);
    push_len_field(&mut event, 2, &kv);
    push_len_field(&mut event, 3, &kv);
    let expected = mvccpb::Event {
        r#type: mvccpb::event::EventType::Delete as i32,
        kv: Some(key_value.clone()),
        prev_kv: Some(key_value),
    };
    assert_wire_round_trip(&event, &expected);
}

#[test]
fn auth_permission_field_numbers() {
    // Permission: permType = 1 (READ = 0, WRITE = 1, READWRITE = 2), key = 2, range_end = 3.
    let mut wire = Vec::new();
    push_varint_field(&mut wire, 1, 2);
    push_len_field(&mut wire, 2, b"a");
    push_len_field(&mut wire, 3, b"b");
    let expected = authpb::Permission {
        perm_type: authpb::permission::Type::Readwrite as i32,
        key: Bytes::from_static(b"a"),
        range_end: Bytes::from_static(b"b"),
    };
    assert_wire_round_trip(&wire, &expected);
}

#[test]
fn decoded_bytes_fields_share_the_input_buffer() {
    // With `bytes::Bytes` fields, decoding from a `Bytes` slices it instead of copying.
    let input = Bytes::from(
        PutRequest {
            value: Bytes::from(vec![7; 64]),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let decoded = PutRequest::decode(input.clone()).expect("decodes");
    let input_range = input.as_ptr_range();
    let value_range = decoded.value.as_ptr_range();
    assert!(input_range.start <= value_range.start && value_range.end <= input_range.end);
}
