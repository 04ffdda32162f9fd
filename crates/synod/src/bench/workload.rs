//! What one benchmark request does, for each workload, and the preloading of keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp};

/// The kinds of request a benchmark sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Puts of `--value-size`-byte values to random keys.
    Put,
    /// Linearizable gets of random (preloaded) keys.
    Get,
    /// Serializable gets (served by the member that receives them) of random preloaded keys.
    GetSerializable,
    /// Compare-and-swap, the Kubernetes update pattern: a linearizable get of a random key's
    /// `mod_revision` r, then a Txn "if mod_revision == r then put else get". A failed compare
    /// is a conflict, not an error; the latency covers both requests.
    Txn,
    /// 90% linearizable gets and 10% puts, of random preloaded keys.
    Mixed,
}

impl Workload {
    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::GetSerializable => "get-serializable",
            Workload::Txn => "txn",
            Workload::Mixed => "mixed",
        }
    }

    /// Whether the keys must exist before the run (every workload that reads them).
    pub fn needs_preload(self) -> bool {
        !matches!(self, Workload::Put)
    }
}

/// A workload and the shape of its data.
#[derive(Debug, Clone)]
pub struct Spec {
    /// What each request does.
    pub workload: Workload,
    /// The number of distinct keys. Invariant: at least 1.
    pub key_space: u64,
    /// The size of each written value, in bytes.
    pub value_size: usize,
}

/// The key with index `index` (in `0..key_space`).
pub fn key(index: u64) -> String {
    format!("bench/{index:010}")
}

/// The result of one request that returned in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The request succeeded.
    Done,
    /// A compare-and-swap whose compare failed: someone else wrote the key in between.
    Conflict,
    /// The request failed (the server's or the transport's error).
    Failed(String),
}

/// One client's request generator: its own random number stream and value buffer.
pub struct Generator {
    spec: Spec,
    rng: SplitMix64,
    value: Vec<u8>,
}

impl Generator {
    /// The generator of client number `client`; each client draws its own key sequence.
    pub fn new(spec: &Spec, client: u64) -> Generator {
        assert!(spec.key_space >= 1, "the key space is empty");
        Generator {
            spec: spec.clone(),
            rng: SplitMix64(0x5eed_0000_0000_0000 ^ client),
            value: value_bytes(spec.value_size),
        }
    }

    /// Sends one request of the workload through `kv` and waits for its answer.
    pub async fn execute(&mut self, kv: &mut KvClient) -> Outcome {
        let index = self.rng.below(self.spec.key_space);
        let key = key(index);
        let result = match self.spec.workload {
            Workload::Put => kv.put(key, self.value.clone(), None).await.map(drop),
            Workload::Get => kv.get(key, None).await.map(drop),
            Workload::GetSerializable => kv
                .get(key, Some(GetOptions::new().with_serializable()))
                .await
                .map(drop),
            Workload::Mixed => {
                // 10% writes: one draw in ten.
                if self.rng.below(10) == 0 {
                    kv.put(key, self.value.clone(), None).await.map(drop)
                } else {
                    kv.get(key, None).await.map(drop)
                }
            }
            Workload::Txn => return self.compare_and_swap(kv, key).await,
        };
        match result {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// The Kubernetes update: read the object's revision, then write it only if nobody else
    /// has since. A missing key has mod_revision 0, which the compare also accepts.
    async fn compare_and_swap(&mut self, kv: &mut KvClient, key: String) -> Outcome {
        let revision = match kv.get(key.as_str(), None).await {
            Ok(response) => response.kvs().first().map_or(0, |kv| kv.mod_revision()),
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::put(key.as_str(), self.value.clone(), None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        match kv.txn(txn).await {
            Ok(response) if response.succeeded() => Outcome::Done,
            Ok(_) => Outcome::Conflict,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// Writes every key of the key space once, with `concurrency` puts in flight spread over the
/// connections.
///
/// Fails on the first put that fails or takes longer than `timeout`.
pub async fn preload(
    spec: &Spec,
    kv_clients: &[KvClient],
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    assert!(!kv_clients.is_empty(), "preloading without a connection");
    assert!(concurrency >= 1, "preloading with nothing in flight");
    let next = Arc::new(AtomicU64::new(0));
    let value = value_bytes(spec.value_size);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency.min(spec.key_space as usize) {
        let mut kv = kv_clients[worker % kv_clients.len()].clone();
        let next = next.clone();
        let value = value.clone();
        let key_space = spec.key_space;
        tasks.spawn(async move {
            // Bounded: each worker claims distinct indices below key_space.
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= key_space {
                    return Ok(());
                }
                let key = key(index);
                tokio::time::timeout(timeout, kv.put(key.as_str(), value.clone(), None))
                    .await
                    .with_context(|| format!("put {key}: no answer within {timeout:?}"))?
                    .with_context(|| format!("put {key}"))?;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let result: anyhow::Result<()> = joined.context("a preload task panicked")?;
        if let Err(e) = result {
            tasks.abort_all();
            return Err(e);
        }
    }
    Ok(())
}

/// A value of `size` bytes: printable, so that etcdctl shows it legibly.
fn value_bytes(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Steele, Lea and Flood's SplitMix64: a small, fast, seedable stream, plenty for choosing
/// keys (the load generator is not a simulation and need not reproduce runs).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`, by Lemire's multiply-shift without rejection: its bias, at most
    /// bound / 2^64, is far below anything a benchmark could notice.
    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range");
        let drawn = ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64;
        debug_assert!(drawn < bound);
        drawn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_cover_the_key_space_and_stay_inside_it() {
        let mut rng = SplitMix64(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10) as usize] += 1;
        }
        // Uniform: each of ten buckets gets about 1,000 of 10,000 draws.
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn keys_sort_in_index_order_and_values_have_their_size() {
        assert!(key(9) < key(10));
        assert_eq!(key(42), "bench/0000000042");
        assert_eq!(value_bytes(256).len(), 256);
        assert!(value_bytes(0).is_empty());
    }
}
