//! The etcd v3 gRPC services: KV, Maintenance.Status and Cluster.MemberList. Every other
//! method of etcd's API answers Unimplemented (the generated default stubs).

use synod_kv::command::{Command, Response as KvResponse};
use tonic::{Request, Response, Status};

use crate::convert::{self, Header};
use crate::errors::ApiError;
use crate::members::Members;
use crate::node::NodeHandle;
use crate::pb::etcdserverpb as pb;

/// The version Maintenance.Status reports: etcd's API level (3.5), so that clients that
/// check the server version accept synod. The suffix names the synod build.
pub const ETCD_API_VERSION: &str = concat!("3.5.0+synod.", env!("CARGO_PKG_VERSION"));

/// What every service needs.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The node.
    pub node: NodeHandle,
    /// The member directory.
    pub members: Members,
    /// The cluster id.
    pub cluster_id: u64,
    /// This member.
    pub member_id: u64,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--quota-backend-bytes`.
    pub quota_backend_bytes: u64,
}

impl Shared {
    fn header(&self) -> Header {
        Header {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            raft_term: self.node.status.borrow().term,
        }
    }

    /// Refuses a request that asks for a leader (`hasleader` metadata) when none is known.
    fn check_leader<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let wants = request
            .metadata()
            .get("hasleader")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "true");
        if wants && self.node.status.borrow().leader.is_none() {
            return Err(ApiError::NoLeader.into());
        }
        Ok(())
    }

    fn check_size(&self, message: &impl prost::Message) -> Result<(), Status> {
        if message.encoded_len() > self.max_request_bytes {
            return Err(ApiError::TooLarge.into());
        }
        Ok(())
    }

    fn check_quota(&self, command: &Command) -> Result<(), Status> {
        self.node
            .kv()
            .store
            .check_quota(command, self.quota_backend_bytes)
            .map_err(|e| ApiError::Kv(e).into())
    }

    async fn write(&self, command: Command) -> Result<KvResponse, Status> {
        self.check_quota(&command)?;
        Ok(self.node.write(command).await?)
    }
}

/// The KV service.
#[derive(Clone, Debug)]
pub struct KvService(pub Shared);

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let s = &self.0;
        s.check_leader(&request)?;
        let request = request.into_inner();
        s.check_size(&request)?;
        if request.key.is_empty() {
            return Err(ApiError::Kv(synod_kv::KvError::EmptyKey).into());
        }
        let serializable = request.serializable;
        let range = convert::range_request(request)?;
        if !serializable {
            s.node.read_barrier().await?;
        }
        let result = s.node.kv().store.range(&range).map_err(ApiError::Kv)?;
        Ok(Response::new(convert::range_response(s.header(), result)))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let s = &self.0;
        s.check_leader(&request)?;
        let request = request.into_inner();
        s.check_size(&request)?;
        let put = convert::put_request(request)?;
        match s.write(Command::Put(put)).await? {
            KvResponse::Put(r) => Ok(Response::new(convert::put_response(s.header(), r))),
            other => Err(mismatch(&other)),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let s = &self.0;
        s.check_leader(&request)?;
        let request = request.into_inner();
        s.check_size(&request)?;
        let delete = convert::delete_request(request);
        match s.write(Command::DeleteRange(delete)).await? {
            KvResponse::DeleteRange(r) => {
                Ok(Response::new(convert::delete_response(s.header(), r)))
            }
            other => Err(mismatch(&other)),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let s = &self.0;
        s.check_leader(&request)?;
        let request = request.into_inner();
        s.check_size(&request)?;
        let txn = convert::txn_request(request)?;
        match s.write(Command::Txn(txn)).await? {
            KvResponse::Txn(r) => Ok(Response::new(convert::txn_response(s.header(), r))),
            other => Err(mismatch(&other)),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let s = &self.0;
        s.check_leader(&request)?;
        let request = request.into_inner();
        let command = Command::Compact {
            revision: request.revision,
            physical: request.physical,
        };
        match s.write(command).await? {
            KvResponse::Compact { revision } => Ok(Response::new(pb::CompactionResponse {
                header: s.header().at(revision),
            })),
            other => Err(mismatch(&other)),
        }
    }
}

fn mismatch(response: &KvResponse) -> Status {
    Status::internal(format!(
        "synod: the state machine answered with the wrong kind of response: {response:?}"
    ))
}

/// The Maintenance service: Status only.
#[derive(Clone, Debug)]
pub struct MaintenanceService(pub Shared);

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for MaintenanceService {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = &self.0;
        let status = s.node.status.borrow().clone();
        let (revision, db_size) = {
            let kv = s.node.kv();
            (kv.store.revision(), kv.store.size_bytes())
        };
        let mut errors = Vec::new();
        if status.leader.is_none() {
            errors.push("etcdserver: no leader".to_string());
        }
        Ok(Response::new(pb::StatusResponse {
            header: s.header().at(revision),
            version: ETCD_API_VERSION.to_string(),
            db_size: db_size as i64,
            leader: status.leader.unwrap_or(0),
            raft_index: status.commit,
            raft_term: status.term,
            raft_applied_index: status.applied,
            errors,
            db_size_in_use: db_size as i64,
            is_learner: status.learners.contains(&s.member_id),
            ..Default::default()
        }))
    }
}

/// The Cluster service: MemberList only.
#[derive(Clone, Debug)]
pub struct ClusterService(pub Shared);

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn member_list(
        &self,
        request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let s = &self.0;
        if request.get_ref().linearizable {
            s.node.read_barrier().await?;
        }
        let status = s.node.status.borrow().clone();
        let revision = s.node.kv().store.revision();
        let members = s
            .members
            .all()
            .into_iter()
            .filter(|m| status.voters.contains(&m.id) || status.learners.contains(&m.id))
            .map(|m| pb::Member {
                id: m.id,
                name: m.name,
                peer_ur_ls: m.peer_urls,
                client_ur_ls: m.client_urls,
                is_learner: status.learners.contains(&m.id),
            })
            .collect();
        Ok(Response::new(pb::MemberListResponse {
            header: s.header().at(revision),
            members,
        }))
    }
}
