#!/usr/bin/env bash
# synod's test command: the README's "test" command, and exactly what CI (.ci/run) runs.
# A fresh machine needs only the Rust toolchain; anything else a test needs is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

# The etcd-client crate used by the integration tests runs `protoc` at build time; protox, a
# pure-Rust protobuf compiler, stands in for it (.cargo/config.toml points PROTOC here).
if [ ! -x target/tools/bin/protox ]; then
    echo "== installing protox (pure-Rust protoc) into target/tools"
    cargo install protox --version 0.10.0 --features bin --locked --root target/tools
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked --features synod/bench -- -D warnings

# crates/synod/tests/etcdctl.rs runs etcdctl 3.4 against real clusters: Debian's etcd-client.
if ! command -v etcdctl >/dev/null; then
    as_root() {
        if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
            sudo "$@"
        else
            "$@"
        fi
    }
    echo "== etcdctl is missing: apt-get install -y etcd-client"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-client; then
        echo "== the install failed: apt-get update, then apt-get install -y etcd-client again"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-client
    fi
    echo "== installed: $(etcdctl version | head -n 1)"
fi

# Tests run optimised but keep debug assertions and overflow checks (profile `test-release`),
# so that the protocol tests and property tests cover many cases quickly and still trap bugs.
echo "== cargo test"
cargo test --workspace --locked --profile test-release --features synod/bench

# Each benchmark runs once, as a test, so that a broken benchmark is caught here too.
echo "== benchmarks, once each"
cargo test --workspace --locked --profile test-release --benches
