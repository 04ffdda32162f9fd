//! The member directory: every member's name and URLs, as the initial cluster describes them
//! and as peers announce their client URLs when they connect.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use synod_core::NodeId;

use crate::settings::Settings;

/// What is known about one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its id.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs (empty until it has announced them).
    pub client_urls: Vec<String>,
}

/// The shared directory.
#[derive(Clone, Debug, Default)]
pub struct Members {
    inner: Arc<RwLock<BTreeMap<NodeId, MemberInfo>>>,
}

impl Members {
    /// The initial cluster, with this member's own client URLs filled in.
    pub fn from_settings(settings: &Settings) -> Members {
        let me = settings.me().ok().map(|p| p.id);
        let map = settings
            .initial_cluster
            .iter()
            .map(|p| {
                let client_urls = if Some(p.id) == me {
                    settings.advertise_client_urls.clone()
                } else {
                    Vec::new()
                };
                (
                    p.id,
                    MemberInfo {
                        id: p.id,
                        name: p.name.clone(),
                        peer_urls: vec![p.peer_url.clone()],
                        client_urls,
                    },
                )
            })
            .collect();
        Members {
            inner: Arc::new(RwLock::new(map)),
        }
    }

    /// One member.
    pub fn get(&self, id: NodeId) -> Option<MemberInfo> {
        self.read().get(&id).cloned()
    }

    /// Every member, by id.
    pub fn all(&self) -> Vec<MemberInfo> {
        self.read().values().cloned().collect()
    }

    /// Records the client URLs a member announced.
    pub fn set_client_urls(&self, id: NodeId, urls: Vec<String>) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = map.get_mut(&id) {
            info.client_urls = urls;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<NodeId, MemberInfo>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}
