//! A benchmark's figures, printed as a table for people or as JSON for scripts.
//!
//! The JSON field names are stable: scripts and the integration test read them. Latencies
//! are in microseconds and come from an HDR histogram with three significant digits, so each
//! percentile is within 0.1% of the exact one. `latency_us_by_quantile` is a ladder of
//! [`LADDER_QUANTILES`] for plotting the latency distribution (`synod bench report` draws it).

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::driver::Tally;
use super::workload::Spec;

/// The quantiles of the latency ladder: every 2% up to 98%, then the tail, then the maximum.
/// Enough points for a smooth distribution plot, few enough to keep a report to one line.
pub const LADDER_QUANTILES: [f64; 56] = {
    let mut ladder = [0.0; 56];
    let mut i = 0;
    while i < 50 {
        ladder[i] = i as f64 / 50.0;
        i += 1;
    }
    let tail = [0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0];
    let mut j = 0;
    while j < tail.len() {
        ladder[50 + j] = tail[j];
        j += 1;
    }
    ladder
};

const _: () = assert!(LADDER_QUANTILES[49] < LADDER_QUANTILES[50] && LADDER_QUANTILES[55] == 1.0);

/// What one run measured, with the settings that produced it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The workload's name (`put`, `get`, `get-serializable`, `txn`, `mixed`).
    pub workload: String,
    /// The endpoints driven.
    pub endpoints: Vec<String>,
    /// Concurrent closed-loop clients.
    pub clients: usize,
    /// gRPC connections the clients shared.
    pub conns: usize,
    /// Distinct keys.
    pub key_space: u64,
    /// Bytes per written value.
    pub value_size_bytes: usize,
    /// The unrecorded warm-up before measuring.
    pub warmup_seconds: f64,
    /// From the start of measurement to the return of the last request.
    pub elapsed_seconds: f64,
    /// Requests that returned without error (conflicts included).
    pub requests: u64,
    /// Requests that failed or timed out.
    pub errors: u64,
    /// Compare-and-swaps whose compare failed (`txn` only).
    pub conflicts: u64,
    /// `requests` per second of `elapsed_seconds`.
    pub throughput_per_second: f64,
    /// Latency percentiles of the successful requests, in microseconds (0 if there were none).
    pub latency_us_min: u64,
    /// The mean latency.
    pub latency_us_mean: f64,
    /// The median latency.
    pub latency_us_p50: u64,
    /// The 90th percentile.
    pub latency_us_p90: u64,
    /// The 99th percentile.
    pub latency_us_p99: u64,
    /// The 99.9th percentile.
    pub latency_us_p999: u64,
    /// The largest latency.
    pub latency_us_max: u64,
    /// The first error's message, if there was one.
    pub first_error: Option<String>,
    /// `[quantile, latency_us]` for each of [`LADDER_QUANTILES`], in order (empty if no request
    /// succeeded). Reports written before the ladder existed lack it.
    #[serde(default)]
    pub latency_us_by_quantile: Vec<(f64, u64)>,
    /// CPU (user + system) the members given by `--server-pids` spent per measured request, in
    /// microseconds, over all of them together; `None` without `--server-pids`.
    #[serde(default)]
    pub server_cpu_us_per_request: Option<f64>,
    /// CPU the load generator itself spent per measured request, in microseconds.
    #[serde(default)]
    pub client_cpu_us_per_request: Option<f64>,
}

impl Report {
    /// The report of a run of `spec` that measured `tally`.
    pub fn new(
        spec: &Spec,
        endpoints: &[String],
        clients: usize,
        conns: usize,
        warmup: Duration,
        tally: &Tally,
    ) -> Report {
        let latency = &tally.latency_us;
        let requests = latency.len();
        assert!(
            tally.conflicts <= requests,
            "conflicts are recorded requests"
        );
        let elapsed_seconds = tally.elapsed.as_secs_f64();
        let throughput_per_second = if elapsed_seconds > 0.0 {
            requests as f64 / elapsed_seconds
        } else {
            0.0
        };
        let percentile = |q: f64| {
            if requests == 0 {
                0
            } else {
                latency.value_at_quantile(q)
            }
        };
        let report = Report {
            workload: spec.workload.name().to_string(),
            endpoints: endpoints.to_vec(),
            clients,
            conns,
            key_space: spec.key_space,
            value_size_bytes: spec.value_size,
            warmup_seconds: warmup.as_secs_f64(),
            elapsed_seconds,
            requests,
            errors: tally.errors,
            conflicts: tally.conflicts,
            throughput_per_second,
            latency_us_min: if requests == 0 { 0 } else { latency.min() },
            latency_us_mean: if requests == 0 { 0.0 } else { latency.mean() },
            latency_us_p50: percentile(0.50),
            latency_us_p90: percentile(0.90),
            latency_us_p99: percentile(0.99),
            latency_us_p999: percentile(0.999),
            latency_us_max: if requests == 0 { 0 } else { latency.max() },
            first_error: tally.first_error.clone(),
            server_cpu_us_per_request: None,
            client_cpu_us_per_request: None,
            latency_us_by_quantile: if requests == 0 {
                Vec::new()
            } else {
                LADDER_QUANTILES
                    .iter()
                    .map(|&q| (q, latency.value_at_quantile(q)))
                    .collect()
            },
        };
        debug_assert!(report.percentiles_in_order(), "{report:?}");
        report
    }

    /// Whether min ≤ p50 ≤ p90 ≤ p99 ≤ p99.9 ≤ max, as a histogram guarantees.
    pub fn percentiles_in_order(&self) -> bool {
        let ordered = [
            self.latency_us_min,
            self.latency_us_p50,
            self.latency_us_p90,
            self.latency_us_p99,
            self.latency_us_p999,
            self.latency_us_max,
        ];
        let ladder_ordered = self
            .latency_us_by_quantile
            .windows(2)
            .all(|pair| pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1);
        ordered.windows(2).all(|pair| pair[0] <= pair[1]) && ladder_ordered
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }

    /// The report as a table for people, one figure per line.
    pub fn to_table(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("workload", self.workload.clone()),
            ("endpoints", self.endpoints.join(",")),
            (
                "clients",
                format!("{} on {} connections", self.clients, self.conns),
            ),
            (
                "keys",
                format!("{} ({}-byte values)", self.key_space, self.value_size_bytes),
            ),
            ("elapsed", format!("{:.2} s", self.elapsed_seconds)),
            ("requests", self.requests.to_string()),
            (
                "throughput",
                format!("{:.1} requests/s", self.throughput_per_second),
            ),
            ("errors", self.errors.to_string()),
        ];
        if self.workload == "txn" {
            rows.push(("conflicts", self.conflicts.to_string()));
        }
        let latencies = [
            ("latency min", self.latency_us_min),
            ("latency p50", self.latency_us_p50),
            ("latency p90", self.latency_us_p90),
            ("latency p99", self.latency_us_p99),
            ("latency p99.9", self.latency_us_p999),
            ("latency max", self.latency_us_max),
        ];
        rows.push(("latency mean", format_us(self.latency_us_mean)));
        for (name, us) in latencies {
            rows.push((name, format_us(us as f64)));
        }
        if let Some(us) = self.server_cpu_us_per_request {
            rows.push(("server CPU", format!("{us:.1} µs per request")));
        }
        if let Some(us) = self.client_cpu_us_per_request {
            rows.push(("client CPU", format!("{us:.1} µs per request")));
        }
        if let Some(error) = &self.first_error {
            rows.push(("first error", error.clone()));
        }
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (name, value) in rows {
            writeln!(out, "{name:<width$}  {value}").expect("writing to a String");
        }
        out
    }
}

/// A latency in microseconds, with milliseconds beside it once it is large enough to matter.
fn format_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{us:.0} µs ({:.2} ms)", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workload::Workload;

    fn spec() -> Spec {
        Spec {
            workload: Workload::Put,
            key_space: 10,
            value_size: 256,
        }
    }

    #[test]
    fn figures_come_from_the_histogram() {
        let mut latency_us =
            hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for us in 1..=1000 {
            latency_us.record(us).expect("in range");
        }
        let tally = Tally {
            latency_us,
            errors: 2,
            conflicts: 0,
            first_error: Some("boom".into()),
            elapsed: Duration::from_secs(2),
        };
        let report = Report::new(&spec(), &["e".into()], 4, 2, Duration::ZERO, &tally);
        assert_eq!(report.requests, 1000);
        assert_eq!(report.throughput_per_second, 500.0);
        assert_eq!(report.latency_us_p50, 500);
        assert_eq!(report.latency_us_p90, 900);
        assert_eq!(report.latency_us_max, 1000);
        assert!(report.percentiles_in_order());
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        assert_eq!(json["latency_us_p99"], 990);
        assert_eq!(json["errors"], 2);
        assert_eq!(json["first_error"], "boom");
        let ladder = json["latency_us_by_quantile"].as_array().expect("a ladder");
        assert_eq!(ladder.len(), LADDER_QUANTILES.len());
        assert_eq!(ladder[25][0], 0.5);
        assert_eq!(ladder[25][1], 500);
        assert_eq!(ladder[55][1], 1000);
        let parsed: Report = serde_json::from_str(&report.to_json()).expect("a report parses");
        assert_eq!(parsed.latency_us_by_quantile, report.latency_us_by_quantile);
        let table = report.to_table();
        assert!(table.contains("latency p99.9"), "{table}");
    }

    #[test]
    fn an_empty_run_reports_zeros() {
        let tally = Tally {
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
            errors: 0,
            conflicts: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        };
        let report = Report::new(&spec(), &[], 1, 1, Duration::ZERO, &tally);
        assert_eq!(report.throughput_per_second, 0.0);
        assert_eq!(report.latency_us_max, 0);
        assert!(report.latency_us_by_quantile.is_empty());
        assert!(report.percentiles_in_order());
    }
}
