//! How much memory the store takes for many keys, through the server's own apply path.
//!
//! Encodes each put as the server proposes it ([`CommandEnvelope::encode`] into a log entry),
//! decodes it as every member does before applying, and applies it. Prints the live heap (a
//! counting allocator around the system's) and the process's resident set (`VmRSS` from
//! `/proc/self/status`) as it goes, and, with `--snapshot-every N`, serializes the store every
//! N puts as the server does at its `--snapshot-count`, then rebuilds the map
//! ([`MvccStore::shrink_to_fit`]), as the server also does.
//!
//! It runs on the system allocator (glibc's malloc), not the synod binary's mimalloc. At 1M
//! keys: heap 376 MiB and VmRSS 411 MiB; with `--snapshot-every 100000`, 323 and 362 MiB.
//!
//! ```text
//! cargo run --release -p synod-kv --example memory -- --keys 1000000 --value-size 256
//! ```
//!
//! The keys are the load generator's (`bench/0000000000`: 16 bytes), written once each in
//! order, as `synod bench`'s preload does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use synod_kv::{Command, CommandEnvelope, MvccStore, PutRequest};

/// The system allocator, counting the bytes and blocks it has handed out and not taken back.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A field of `/proc/self/status` in KiB (0 where there is none, as off Linux).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field)?
                    .strip_prefix(':')?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

fn report(what: &str, keys: u64) {
    let live = LIVE_BYTES.load(Ordering::Relaxed).max(0) as u64;
    let blocks = LIVE_BLOCKS.load(Ordering::Relaxed).max(0) as u64;
    let rss_kib = status_kib("VmRSS");
    let per_key = |bytes: u64| bytes.checked_div(keys).unwrap_or(0);
    println!(
        "{what:<28} keys {keys:>8}  heap {:>7.1} MiB ({:>4} B/key, {:>4.1} blocks/key)  VmRSS {:>7.1} MiB ({:>4} B/key)  VmHWM {:>7.1} MiB",
        live as f64 / 1048576.0,
        per_key(live),
        if keys == 0 {
            0.0
        } else {
            blocks as f64 / keys as f64
        },
        rss_kib as f64 / 1024.0,
        per_key(rss_kib * 1024),
        status_kib("VmHWM") as f64 / 1024.0,
    );
}

fn main() {
    let mut keys: u64 = 1_000_000;
    let mut value_size: usize = 256;
    let mut snapshot_every: u64 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || {
            args.next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{arg} takes a number"))
        };
        match arg.as_str() {
            "--keys" => keys = number(),
            "--value-size" => value_size = number() as usize,
            "--snapshot-every" => snapshot_every = number(),
            _ => panic!("usage: memory [--keys N] [--value-size BYTES] [--snapshot-every N]"),
        }
    }
    let value: Vec<u8> = (0..value_size).map(|i| b'a' + (i % 26) as u8).collect();
    report("start", 0);
    let mut store = MvccStore::new();
    let step = (keys / 10).max(1);
    for index in 0..keys {
        // The server: the client's request becomes an envelope, the envelope a log entry.
        let envelope = CommandEnvelope {
            origin: 1,
            request_id: index,
            command: Command::Put(PutRequest {
                key: Bytes::from(format!("bench/{index:010}")),
                value: Bytes::copy_from_slice(&value),
                ..PutRequest::default()
            }),
        };
        let entry = Bytes::from(envelope.encode());
        drop(envelope);
        // Every member: decode the entry and apply it.
        let applied = CommandEnvelope::decode(&entry).expect("an entry just encoded");
        store.apply(&applied.command).expect("a put applies");
        if snapshot_every > 0 && (index + 1) % snapshot_every == 0 {
            // The server: serialize, then rebuild the map with full nodes.
            let bytes = store.snapshot_with_applied_index(index + 1);
            std::hint::black_box(&bytes);
            drop(bytes);
            store.shrink_to_fit();
        }
        if (index + 1) % step == 0 {
            report("applied", index + 1);
        }
    }
    report("done", keys);
    let bytes = store.snapshot();
    report("holding a snapshot", keys);
    println!("snapshot: {:.1} MiB", bytes.len() as f64 / 1048576.0);
    drop(store);
    report("store dropped", 0);
    let store = MvccStore::restore(&bytes).expect("a snapshot just taken");
    drop(bytes);
    report("restored from the snapshot", keys);
    assert_eq!(store.revision(), keys as i64 + 1);
}
