//! `synod bench` against a real three-member cluster: every workload runs for about a second,
//! and its JSON report must show work done, no errors and percentiles in order.

#![cfg(feature = "bench")]

mod common;

use std::process::Command;

use common::{Cluster, wait_ready};
use serde_json::Value;

/// Runs `synod bench` with `args` against `cluster` and returns (success, stdout, stderr).
fn bench(cluster: &Cluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .arg("bench")
        .arg("--endpoints")
        .arg(cluster.endpoints())
        .args(args)
        .env("SYNOD_LOG_LEVEL", "warn")
        .output()
        .expect("synod bench runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `synod bench --json` and parses its report.
fn bench_json(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = bench(cluster, &all);
    assert!(
        ok,
        "synod bench {args:?} failed\nstdout: {stdout}\nstderr: {stderr}\n{}",
        cluster.logs()
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the report is not JSON ({e}): {stdout}"))
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is missing or not a number in {report}"))
}

fn assert_percentiles_in_order(report: &Value) {
    let fields = [
        "latency_us_min",
        "latency_us_p50",
        "latency_us_p90",
        "latency_us_p99",
        "latency_us_p999",
        "latency_us_max",
    ];
    let values: Vec<f64> = fields.iter().map(|f| number(report, f)).collect();
    assert!(
        values.windows(2).all(|pair| pair[0] <= pair[1]),
        "percentiles out of order: {report}"
    );
    assert!(values[0] >= 1.0, "a zero latency: {report}");
    let mean = number(report, "latency_us_mean");
    assert!(
        values[0] <= mean && mean <= values[5],
        "mean outside [min, max]: {report}"
    );
}

#[test]
fn every_workload_runs_for_a_second_without_errors() {
    let cluster = Cluster::start(3, "raft", &[]);
    wait_ready(&cluster);
    for workload in ["put", "get", "get-serializable", "txn", "mixed"] {
        let report = bench_json(
            &cluster,
            &[
                "--workload",
                workload,
                "--clients",
                "4",
                "--conns",
                "2",
                "--key-space",
                "100",
                "--duration",
                "1s",
                "--warmup",
                "200ms",
            ],
        );
        assert_eq!(report["workload"], workload, "{report}");
        assert_eq!(report["clients"], 4, "{report}");
        assert_eq!(report["conns"], 2, "{report}");
        assert_eq!(report["value_size_bytes"], 256, "{report}");
        assert!(number(&report, "requests") > 0.0, "{report}");
        assert!(number(&report, "throughput_per_second") > 0.0, "{report}");
        assert_eq!(report["errors"], 0, "{report}");
        assert!(report["first_error"].is_null(), "{report}");
        let elapsed = number(&report, "elapsed_seconds");
        assert!((1.0..5.0).contains(&elapsed), "elapsed {elapsed}: {report}");
        assert_percentiles_in_order(&report);
        if workload != "txn" {
            assert_eq!(report["conflicts"], 0, "{report}");
        }
    }
}

#[test]
fn compare_and_swap_on_one_key_counts_conflicts_not_errors() {
    let cluster = Cluster::start(3, "raft", &[]);
    wait_ready(&cluster);
    // Eight clients updating one key: most compares fail, because another client wrote the
    // key between a client's get and its txn.
    let report = bench_json(
        &cluster,
        &[
            "--workload",
            "txn",
            "--clients",
            "8",
            "--conns",
            "3",
            "--key-space",
            "1",
            "--duration",
            "1s",
            "--warmup",
            "0s",
        ],
    );
    assert_eq!(report["errors"], 0, "{report}");
    let conflicts = number(&report, "conflicts");
    let requests = number(&report, "requests");
    assert!(conflicts > 0.0, "{report}");
    assert!(
        conflicts < requests,
        "no compare-and-swap succeeded: {report}"
    );
    assert_percentiles_in_order(&report);
}

#[test]
fn a_run_by_count_sends_exactly_that_many_and_prints_a_table() {
    let cluster = Cluster::start(3, "raft", &[]);
    wait_ready(&cluster);
    let report = bench_json(
        &cluster,
        &[
            "--total",
            "300",
            "--clients",
            "7",
            "--warmup",
            "0s",
            "--value-size",
            "10",
        ],
    );
    assert_eq!(
        number(&report, "requests") + number(&report, "errors"),
        300.0,
        "{report}"
    );
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["value_size_bytes"], 10, "{report}");
    // --conns above --clients is cut to one connection per client; here the default of 1.
    assert_eq!(report["conns"], 1, "{report}");

    let (ok, stdout, stderr) = bench(
        &cluster,
        &[
            "--workload",
            "get",
            "--total",
            "50",
            "--key-space",
            "5",
            "--warmup",
            "0s",
        ],
    );
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    for row in [
        "workload",
        "throughput",
        "errors",
        "latency p50",
        "latency p99.9",
    ] {
        assert!(stdout.contains(row), "no {row:?} row in\n{stdout}");
    }
    // stderr is not a terminal here, so the progress bar draws nothing.
    assert!(!stderr.contains('['), "progress output on a pipe: {stderr}");
}

#[test]
fn an_unreachable_cluster_fails_within_the_timeout() {
    let port = common::free_port();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["bench", "--endpoints", &format!("127.0.0.1:{port}")])
        .args([
            "--duration",
            "500ms",
            "--warmup",
            "0s",
            "--timeout",
            "300ms",
            "--json",
        ])
        .env("SYNOD_LOG_LEVEL", "warn")
        .output()
        .expect("synod bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the report is not JSON ({e}): {stdout}\n{stderr}"));
    assert_eq!(report["requests"], 0, "{report}");
    assert!(number(&report, "errors") > 0.0, "{report}");
    assert!(report["first_error"].is_string(), "{report}");
    assert!(stderr.contains("no request succeeded"), "{stderr}");
}

#[test]
fn failover_kills_the_leader_and_times_the_next_write() {
    let mut cluster = Cluster::start(3, "raft", &[]);
    wait_ready(&cluster);
    let pids: Vec<String> = cluster
        .procs
        .iter()
        .map(|p| p.child.as_ref().expect("running").id().to_string())
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["bench", "failover", "--endpoints", &cluster.endpoints()])
        .args(["--pids", &pids.join(","), "--json"])
        .env("SYNOD_LOG_LEVEL", "warn")
        .output()
        .expect("synod bench failover runs");
    let (ok, stdout, stderr) = (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}\n{}", cluster.logs());
    let trial: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the trial is not JSON ({e}): {stdout}"));
    // The test cluster elects within 200-400 ms of silence (--election-timeout 200).
    let failover_ms = number(&trial, "failover_ms");
    assert!((1.0..10_000.0).contains(&failover_ms), "{trial}");
    assert!(number(&trial, "attempts") >= 1.0, "{trial}");
    let killed = trial["leader_pid"].to_string();
    let leader = trial["leader_endpoint"].as_str().expect("an endpoint");
    // Exactly the leader's process died, and the survivors named another leader.
    for (i, p) in cluster.procs.iter_mut().enumerate() {
        let child = p.child.as_mut().expect("a child");
        // The kill came before the first write succeeded, long enough ago to have landed.
        let exited = child.try_wait().expect("try_wait").is_some();
        assert_eq!(exited, pids[i] == killed, "member {i}: {trial}");
        assert_eq!(p.endpoint() == leader, pids[i] == killed, "{trial}");
    }
    let new_leader = trial["new_leader_endpoint"].as_str().expect("a new leader");
    assert_ne!(new_leader, leader, "{trial}");
}

#[test]
fn failover_refuses_mismatched_pids() {
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args([
            "bench",
            "failover",
            "--endpoints",
            "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
        ])
        .args(["--pids", "1,2"])
        .env("SYNOD_LOG_LEVEL", "warn")
        .output()
        .expect("synod bench failover runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--pids 2"), "{stderr}");
}

/// `synod bench report` over a results directory made of real runs (the same cluster stands in
/// for both systems): the document has its tables and links its plots, which are PNGs.
#[test]
fn report_writes_the_document_and_its_plots() {
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    if !std::path::Path::new(font).exists() {
        eprintln!("skipped: no {font} (Debian's fonts-dejavu-core) for the plots' text");
        return;
    }
    let cluster = Cluster::start(3, "raft", &[]);
    wait_ready(&cluster);
    let dir = tempfile::tempdir().expect("a temp dir");
    let results = dir.path().join("results");
    std::fs::create_dir_all(results.join("runs")).expect("runs/");
    std::fs::write(results.join("settings.txt"), "mode: test\nrounds: 1\n").expect("settings");
    for system in ["etcd", "synod"] {
        for clients in ["1", "4"] {
            let (ok, stdout, stderr) = bench(
                &cluster,
                &[
                    "--workload",
                    "put",
                    "--clients",
                    clients,
                    "--key-space",
                    "100",
                    "--duration",
                    "300ms",
                    "--warmup",
                    "0s",
                    "--json",
                ],
            );
            assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
            let name = format!("{system}.r1.put.c{clients}.json");
            std::fs::write(results.join("runs").join(name), stdout).expect("a run");
        }
    }
    let out_file = dir.path().join("BENCHMARKS.md");
    let plots = dir.path().join("plots");
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["bench", "report", "--font", font, "--notes", "/dev/null"])
        .arg("--results")
        .arg(&results)
        .arg("--out")
        .arg(&out_file)
        .arg("--plots")
        .arg(&plots)
        .env("SYNOD_LOG_LEVEL", "warn")
        .output()
        .expect("synod bench report runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let document = std::fs::read_to_string(&out_file).expect("the document");
    assert!(document.contains("| put | 4 |"), "{document}");
    assert!(document.contains("](plots/throughput.png)"), "{document}");
    assert!(
        document.contains("put, 1 client: p50 latency"),
        "{document}"
    );
    for png in ["throughput.png", "latency-cdf-put.png"] {
        let bytes = std::fs::read(plots.join(png)).expect("a plot");
        assert!(bytes.starts_with(b"\x89PNG"), "{png} is not a PNG");
    }
}
