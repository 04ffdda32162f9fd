//! The performance targets of issue 7, judged against a comparison's results.
//!
//! Each target compares synod's chosen run (see [`super::results::CHOSEN_RUN_RULE`]) with
//! etcd's on the same workload and client count, except failover, which is an absolute bound.

use super::results::{BASELINE, CANDIDATE, Results, nearest_rank};

/// Whether a target was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Met.
    Met,
    /// Missed.
    Missed,
    /// Not measured (the comparison lacks the runs it needs).
    Unmeasured,
}

impl Verdict {
    fn from_bool(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    /// The word shown in the report.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Met => "**met**",
            Verdict::Missed => "**missed**",
            Verdict::Unmeasured => "not measured",
        }
    }
}

/// One target and what was measured against it.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is measured, e.g. "put, 1 client: p50 latency".
    pub what: String,
    /// The goal, in words.
    pub goal: String,
    /// The measurement, in words, with the ratio.
    pub measured: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// The targets of issue 7 (put latency and throughput, reads, failover, memory).
pub fn judge(results: &Results) -> Vec<Target> {
    vec![
        put_latency_one_client(results),
        put_throughput_256_clients(results),
        read_throughput(results, "get", "linearizable get, 64 clients: throughput"),
        read_throughput(
            results,
            "get-serializable",
            "serializable get, 64 clients: throughput",
        ),
        failover_p99(results),
        memory(results),
    ]
}

/// The failover bound, in milliseconds.
pub const FAILOVER_P99_MS_MAX: f64 = 500.0;

fn put_latency_one_client(results: &Results) -> Target {
    let what = "put, 1 client: p50 latency".to_string();
    let goal = "≤ 1/3 of etcd's (ratio ≤ 0.33×)".to_string();
    let (Some(synod), Some(etcd)) = (
        results.chosen(CANDIDATE, "put", 1),
        results.chosen(BASELINE, "put", 1),
    ) else {
        return unmeasured(what, goal);
    };
    let (s, e) = (synod.report.latency_us_p50, etcd.report.latency_us_p50);
    let ratio = s as f64 / e.max(1) as f64;
    Target {
        what,
        goal,
        measured: format!(
            "{} (synod {}, etcd {}){}",
            format_ratio(ratio),
            format_us(s),
            format_us(e),
            results
                .floor
                .as_ref()
                .map(|f| {
                    let mut text = format!(
                        "; the floor (one fdatasync {} + one loopback round trip {}) is {}: \
                         synod takes {:.1}× it, etcd {:.1}×",
                        format_us(f.fdatasync_append_us_p50.round() as u64),
                        format_us(f.loopback_rtt_us_p50.round() as u64),
                        format_us(f.floor_us_p50.round() as u64),
                        s as f64 / f.floor_us_p50.max(1.0),
                        e as f64 / f.floor_us_p50.max(1.0),
                    );
                    if f.floor_shared_disk_us_p50 > 0.0 {
                        text.push_str(&format!(
                            ". With three members syncing this one disk at once, the second \
                             of three syncs takes {}, so the floor is {}: synod {:.1}×, etcd \
                             {:.1}×",
                            format_us(f.fdatasync_quorum_us_p50.round() as u64),
                            format_us(f.floor_shared_disk_us_p50.round() as u64),
                            s as f64 / f.floor_shared_disk_us_p50,
                            e as f64 / f.floor_shared_disk_us_p50,
                        ));
                    }
                    if let Some(rtt) = client_round_trip_us(results) {
                        let floor = f.floor_shared_disk_us_p50.max(f.floor_us_p50);
                        text.push_str(&format!(
                            ". This client's own round trip to a member that touches no disk \
                             (serializable get, 1 client, the faster system) is {}; with the \
                             floor, {} is {:.2}× etcd's p50, against the 0.33× asked",
                            format_us(rtt),
                            format_us((rtt as f64 + floor).round() as u64),
                            (rtt as f64 + floor) / e.max(1) as f64,
                        ));
                    }
                    text
                })
                .unwrap_or_default()
        ),
        verdict: Verdict::from_bool(3 * s <= e),
    }
}

/// The p50 of a serializable get at one client, the faster of the two systems: a gRPC round
/// trip through the load generator's client to a member that answers from memory.
fn client_round_trip_us(results: &Results) -> Option<u64> {
    [CANDIDATE, BASELINE]
        .into_iter()
        .filter_map(|system| results.chosen(system, "get-serializable", 1))
        .map(|run| run.report.latency_us_p50)
        .min()
}

fn put_throughput_256_clients(results: &Results) -> Target {
    let what = "put, 256 clients: throughput, and p99 latency".to_string();
    let goal = "≥ 3× etcd's throughput, with p99 no worse than etcd's".to_string();
    let (Some(synod), Some(etcd)) = (
        results.chosen(CANDIDATE, "put", 256),
        results.chosen(BASELINE, "put", 256),
    ) else {
        return unmeasured(what, goal);
    };
    let throughput_ratio =
        synod.report.throughput_per_second / etcd.report.throughput_per_second.max(1e-9);
    let (s99, e99) = (synod.report.latency_us_p99, etcd.report.latency_us_p99);
    Target {
        what,
        goal,
        measured: format!(
            "throughput {} ({:.0} vs {:.0} req/s); p99 {} ({} vs {})",
            format_ratio(throughput_ratio),
            synod.report.throughput_per_second,
            etcd.report.throughput_per_second,
            format_ratio(s99 as f64 / e99.max(1) as f64),
            format_us(s99),
            format_us(e99),
        ),
        verdict: Verdict::from_bool(throughput_ratio >= 3.0 && s99 <= e99),
    }
}

fn read_throughput(results: &Results, workload: &str, what: &str) -> Target {
    let what = what.to_string();
    let goal = "≥ 3× etcd's".to_string();
    let (Some(synod), Some(etcd)) = (
        results.chosen(CANDIDATE, workload, 64),
        results.chosen(BASELINE, workload, 64),
    ) else {
        return unmeasured(what, goal);
    };
    let ratio = synod.report.throughput_per_second / etcd.report.throughput_per_second.max(1e-9);
    Target {
        what,
        goal,
        measured: format!(
            "{} ({:.0} vs {:.0} req/s)",
            format_ratio(ratio),
            synod.report.throughput_per_second,
            etcd.report.throughput_per_second
        ),
        verdict: Verdict::from_bool(ratio >= 3.0),
    }
}

fn failover_p99(results: &Results) -> Target {
    let what = "failover: kill -9 of the leader to the first successful write, p99".to_string();
    let goal = format!("≤ {FAILOVER_P99_MS_MAX:.0} ms");
    let Some(synod) = failover_ms(results, CANDIDATE) else {
        return unmeasured(what, goal);
    };
    let p99 = nearest_rank(&synod, 0.99).expect("trials are not empty");
    let etcd = failover_ms(results, BASELINE).and_then(|etcd| nearest_rank(&etcd, 0.99));
    let measured = match etcd {
        Some(e) => format!(
            "{p99:.0} ms over {} trials (etcd {e:.0} ms; ratio {})",
            synod.len(),
            format_ratio(p99 / e.max(1e-9))
        ),
        None => format!("{p99:.0} ms over {} trials", synod.len()),
    };
    Target {
        what,
        goal,
        measured,
        verdict: Verdict::from_bool(p99 <= FAILOVER_P99_MS_MAX),
    }
}

fn memory(results: &Results) -> Target {
    let what = "resident memory per member after loading the keys".to_string();
    let goal = "≤ etcd's (mean VmRSS of the three members)".to_string();
    let (Some(synod), Some(etcd)) = (results.memory.get(CANDIDATE), results.memory.get(BASELINE))
    else {
        return unmeasured(what, goal);
    };
    let (s, e) = (synod.mean_rss_kb(), etcd.mean_rss_kb());
    Target {
        what,
        goal,
        measured: format!(
            "{} ({} vs {}, {} keys)",
            format_ratio(s / e.max(1e-9)),
            format_kib(s),
            format_kib(e),
            group_digits(synod.keys)
        ),
        verdict: Verdict::from_bool(s <= e),
    }
}

/// The failover times of `system`, if it has trials.
pub fn failover_ms(results: &Results, system: &str) -> Option<Vec<f64>> {
    let trials = results.failover.get(system)?;
    if trials.is_empty() {
        return None;
    }
    Some(trials.iter().map(|t| t.failover_ms).collect())
}

fn unmeasured(what: String, goal: String) -> Target {
    Target {
        what,
        goal,
        measured: "not measured".into(),
        verdict: Verdict::Unmeasured,
    }
}

/// A ratio as `2.31×`.
pub fn format_ratio(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{ratio:.1}×")
    } else {
        format!("{ratio:.2}×")
    }
}

/// A latency in microseconds, in µs below a millisecond and in ms above.
pub fn format_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.0} ms", us as f64 / 1e3)
    } else if us >= 1_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// A size in KiB, as MiB.
pub fn format_kib(kib: f64) -> String {
    format!("{:.0} MiB", kib / 1024.0)
}

/// 1000000 → 1,000,000.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_ratio(2.314), "2.31×");
        assert_eq!(format_ratio(12.34), "12.3×");
        assert_eq!(format_us(950), "950 µs");
        assert_eq!(format_us(1_234), "1.23 ms");
        assert_eq!(format_us(12_345), "12 ms");
        assert_eq!(group_digits(1_000_000), "1,000,000");
        assert_eq!(group_digits(100), "100");
        assert_eq!(format_kib(2048.0), "2 MiB");
    }

    #[test]
    fn the_put_latency_target_sets_the_client_round_trip_beside_the_floor() {
        // The comparison's own results, as committed.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results");
        let results = Results::load(&dir).expect("the committed results load");
        let floor = results.floor.as_ref().expect("the results hold a floor");
        let fastest_get = [CANDIDATE, BASELINE]
            .iter()
            .map(|system| {
                results
                    .chosen(system, "get-serializable", 1)
                    .expect("a serializable get at 1 client")
                    .report
                    .latency_us_p50
            })
            .min()
            .unwrap();
        assert_eq!(client_round_trip_us(&results), Some(fastest_get));
        let etcd_put = results
            .chosen(BASELINE, "put", 1)
            .unwrap()
            .report
            .latency_us_p50;
        let lower_bound =
            fastest_get as f64 + floor.floor_shared_disk_us_p50.max(floor.floor_us_p50);
        let target = put_latency_one_client(&results);
        let expected = format!("{:.2}× etcd's p50", lower_bound / etcd_put as f64);
        assert!(target.measured.contains(&expected), "{}", target.measured);
        assert!(target.measured.contains(&format_us(fastest_get)));
    }

    #[test]
    fn empty_results_measure_nothing() {
        let targets = judge(&Results::default());
        assert_eq!(targets.len(), 6);
        assert!(targets.iter().all(|t| t.verdict == Verdict::Unmeasured));
    }
}
