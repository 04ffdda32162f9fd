//! A length prefix on the wire must not make the decoder allocate what it claims: a peer could
//! otherwise exhaust a member's memory with a few bytes. This counts what decoding actually
//! asks of the allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use synod_core::{Entry, Envelope, Membership, SnapshotMeta, wire};

/// The system allocator, recording the bytes requested by the current thread while asked to.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with` because thread-locals may already be gone while a thread exits.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            LARGEST.with(|l| l.set(l.get().max(size)));
            TOTAL.with(|t| t.set(t.get() + size));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// (largest single request, total requested) while running `f` on this thread.
fn measure(f: impl FnOnce()) -> (usize, usize) {
    LARGEST.with(|l| l.set(0));
    TOTAL.with(|t| t.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    (LARGEST.with(Cell::get), TOTAL.with(Cell::get))
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn huge_length_prefixes_allocate_little() {
    // serde preallocates at most 1 MiB for a sequence, whatever its prefix claims.
    const BOUND: usize = 1 << 20;
    // The counter sees an allocation of the kind it looks for.
    let (largest, _) = measure(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(4 * BOUND))));
    assert!(
        largest >= 4 * BOUND,
        "the counting allocator missed an allocation"
    );
    for claim in [1u64 << 32, 1 << 60, u64::MAX] {
        // A command of `claim` bytes.
        let mut command = vec![1, 1, 1];
        command.extend(varint(claim));
        command.extend_from_slice(&[7; 32]);
        // `claim` entries, then one real one.
        let mut entries = varint(claim);
        entries.extend_from_slice(&[1, 1, 0]);
        // `claim` voters.
        let mut voters = varint(claim);
        voters.extend_from_slice(&[1, 2, 3]);
        // A snapshot (from 1 to 2, index 9, term 9, no voters either way) whose membership
        // claims `claim` learners, inside an envelope.
        let mut envelope = vec![1, 2, 9, 9, 0, 0];
        envelope.extend(varint(claim));
        envelope.push(4);

        let (largest, total) = measure(|| {
            assert!(wire::decode::<Entry>(&command).is_err());
            assert!(wire::decode::<Vec<Entry>>(&entries).is_err());
            assert!(wire::decode::<Membership>(&voters).is_err());
            assert!(wire::decode::<Envelope<SnapshotMeta>>(&envelope).is_err());
        });
        assert!(
            largest <= BOUND && total <= 2 * BOUND,
            "a claim of {claim} elements allocated {largest} bytes at once, {total} in all"
        );
    }
}
