//! BENCHMARKS.md: the comparison of synod with etcd as a document, from its results.
//!
//! Every figure comes from the results directory; the prose says how they were measured. Ratios
//! are always synod ÷ etcd: above 1 is better for throughput, below 1 is better for latency,
//! failover time and memory.

use std::fmt::Write as _;

use super::report::Report;
use super::results::{BASELINE, CANDIDATE, CHOSEN_RUN_RULE, Results, WORKLOADS, nearest_rank};
use super::targets::{
    Target, failover_ms, format_kib, format_ratio, format_us, group_digits, judge,
};

/// Where the document finds the plots (a path relative to the document), and which exist.
pub struct Plots {
    /// The directory of the plots as the document links it, e.g. `bench`.
    pub link_dir: String,
    /// The file names that were drawn.
    pub files: Vec<String>,
}

impl Plots {
    fn link(&self, file: &str) -> Option<String> {
        self.files
            .iter()
            .any(|f| f == file)
            .then(|| format!("{}/{file}", self.link_dir))
    }
}

/// The document.
pub fn render(results: &Results, plots: &Plots, notes: Option<&str>) -> String {
    let mut out = String::new();
    let w = &mut out;
    let mode = results.setting("mode").unwrap_or("unknown");
    line(w, "# synod and etcd, side by side");
    line(w, "");
    line(
        w,
        &format!(
            "Written by `bench/compare.sh` ({mode} mode){}. Every figure below comes from the raw \
             results in `{}`; `synod bench report --results {}` writes this file again from them. \
             Ratios are always synod ÷ etcd: above 1× is better for throughput, below 1× is \
             better for latency, failover time and memory.",
            results
                .setting("date")
                .map(|d| format!(" on {d}"))
                .unwrap_or_default(),
            results.setting("results_dir").unwrap_or("bench/results"),
            results.setting("results_dir").unwrap_or("bench/results"),
        ),
    );
    line(w, "");
    targets_section(w, &judge(results));
    machine_section(w, results);
    method_section(w, results);
    throughput_section(w, results, plots);
    cpu_section(w, results);
    failover_section(w, results, plots);
    memory_section(w, results);
    if let Some(notes) = notes.map(str::trim).filter(|n| !n.is_empty()) {
        line(w, "## Observations");
        line(w, "");
        line(w, notes);
        line(w, "");
    }
    all_runs_section(w, results);
    out
}

fn line(out: &mut String, text: &str) {
    writeln!(out, "{text}").expect("writing to a String");
}

fn targets_section(w: &mut String, targets: &[Target]) {
    line(w, "## The targets of issue 7");
    line(w, "");
    line(w, "| target | goal | measured (synod ÷ etcd) | verdict |");
    line(w, "|---|---|---|---|");
    for t in targets {
        line(
            w,
            &format!(
                "| {} | {} | {} | {} |",
                t.what,
                t.goal,
                t.measured,
                t.verdict.word()
            ),
        );
    }
    line(w, "");
}

fn machine_section(w: &mut String, results: &Results) {
    line(w, "## Machine and versions");
    line(w, "");
    if results.machine.is_empty() {
        line(w, "Not recorded.");
    } else {
        line(w, "| | |");
        line(w, "|---|---|");
        for (key, value) in &results.machine {
            line(w, &format!("| {key} | {value} |"));
        }
    }
    line(w, "");
}

fn method_section(w: &mut String, results: &Results) {
    let setting = |key: &str| results.setting(key).unwrap_or("?").to_string();
    line(w, "## How it was measured");
    line(w, "");
    let items = [
        format!(
            "Two clusters of three members each on loopback, each member its own process (`etcd` \
             and `synod serve`, with etcd's flags), both with their defaults: fsync on every \
             commit, heartbeat 100 ms, election timeout 1 s, snapshot every 100,000 entries. Data \
             lives in a temporary directory on the machine's disk ({}).",
            setting("data_dir_filesystem")
        ),
        "Never both at once, so that neither competes with the other for the two cores: a \
         cluster is started, measured and stopped, then the other. The throughput rounds \
         alternate etcd, synod, etcd, synod, …, each on a freshly started cluster."
            .to_string(),
        format!(
            "The load is `synod bench`, the same closed-loop generator over the same client (the \
             etcd-client crate) for both, on the same machine as the cluster, so it takes part \
             of the two cores itself. Each run warms up for {} s unrecorded, then measures for {} \
             s. Keys: {} distinct, picked uniformly; values {} bytes. Clients share {}; \
             connection i goes to endpoint i mod 3, and the endpoints are listed leader first, so \
             a single client talks to the leader in both systems.",
            setting("warmup_seconds"),
            setting("duration_seconds"),
            setting("key_space"),
            setting("value_size_bytes"),
            setting("conns_rule"),
        ),
        "Workloads: `put`; `get`, linearizable; `get-serializable`, answered by the member \
         asked; `txn`, the Kubernetes update (a linearizable get of the key's mod_revision, then \
         a Txn that puts only if it is unchanged; latency covers both, a failed compare is a \
         conflict, not an error); `mixed`, 90% linearizable gets and 10% puts."
            .to_string(),
        format!(
            "Rounds: {} per system. Each table row and plot point is {CHOSEN_RUN_RULE}.",
            setting("rounds")
        ),
        format!(
            "Failover: {} trials per system. In each, `synod bench failover` waits until every \
             member knows the leader and commits a write through it, kills the leader with \
             SIGKILL, and from the moment kill returns starts a put through a survivor every {} \
             (each with its own {} timeout) until one succeeds; the time is kill to that \
             success. The script then restarts the killed member with the same command. \
             Percentiles are nearest-rank, so with 20 trials p99 is the slowest trial.",
            setting("failover_trials"),
            setting("failover_probe_interval"),
            setting("failover_attempt_timeout"),
        ),
        format!(
            "Memory: a fresh cluster, {} keys of {} bytes written once each through `synod \
             bench`'s preloading ({} puts in flight), then, after {} s, VmRSS (and the peak, VmHWM) from \
             `/proc/<pid>/status` of each member. etcd's VmRSS includes the pages of its \
             memory-mapped bbolt file that it touched.",
            setting("memory_keys"),
            setting("value_size_bytes"),
            setting("memory_preload_concurrency"),
            setting("memory_settle_seconds"),
        ),
    ];
    for item in items {
        line(w, &format!("- {item}"));
    }
    line(w, "");
    if !results.commands.trim().is_empty() {
        line(
            w,
            "The commands, exactly as run (one of each kind; `$D` is the data directory):",
        );
        line(w, "");
        line(w, "```sh");
        line(w, results.commands.trim_end());
        line(w, "```");
        line(w, "");
    }
}

fn throughput_section(w: &mut String, results: &Results, plots: &Plots) {
    line(w, "## Throughput and latency");
    line(w, "");
    if results.runs.is_empty() {
        line(w, "Not measured.");
        line(w, "");
        return;
    }
    if let Some(link) = plots.link(super::plots::THROUGHPUT_PNG) {
        line(w, &format!("![throughput against clients]({link})"));
        line(w, "");
    }
    line(
        w,
        "Throughput in requests per second; latencies of the same run. Ratio = synod ÷ etcd.",
    );
    line(w, "");
    line(
        w,
        "| workload | clients | etcd req/s | synod req/s | ratio | etcd p50 | synod p50 | ratio | \
         etcd p99 | synod p99 | ratio |",
    );
    line(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (workload, clients, e, s) in chosen_pairs(results) {
        line(
            w,
            &format!(
                "| {workload} | {clients} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
                e.throughput_per_second,
                s.throughput_per_second,
                format_ratio(s.throughput_per_second / e.throughput_per_second.max(1e-9)),
                format_us(e.latency_us_p50),
                format_us(s.latency_us_p50),
                format_ratio(s.latency_us_p50 as f64 / e.latency_us_p50.max(1) as f64),
                format_us(e.latency_us_p99),
                format_us(s.latency_us_p99),
                format_ratio(s.latency_us_p99 as f64 / e.latency_us_p99.max(1) as f64),
            ),
        );
    }
    line(w, "");
    let errors: u64 = results.runs.iter().map(|r| r.report.errors).sum();
    let conflicts: Vec<String> = results
        .runs
        .iter()
        .filter(|r| r.report.workload == "txn" && r.report.conflicts > 0)
        .map(|r| {
            format!(
                "{} round {} at {} clients: {} of {} ({:.2}%)",
                r.system,
                r.round,
                r.report.clients,
                r.report.conflicts,
                r.report.requests,
                100.0 * r.report.conflicts as f64 / r.report.requests.max(1) as f64
            )
        })
        .collect();
    line(
        w,
        &format!(
            "Errors over all {} runs: {errors}.{}",
            results.runs.len(),
            if conflicts.is_empty() {
                String::new()
            } else {
                format!(
                    " Txn conflicts (failed compares): {}.",
                    conflicts.join("; ")
                )
            }
        ),
    );
    line(w, "");
    let cdfs: Vec<String> = WORKLOADS
        .iter()
        .filter_map(|workload| {
            plots
                .link(&super::plots::latency_png(workload))
                .map(|link| format!("[{workload}]({link})"))
        })
        .collect();
    if !cdfs.is_empty() {
        line(
            w,
            &format!(
                "Latency distributions, one panel per client count: {}.",
                cdfs.join(", ")
            ),
        );
        line(w, "");
        if let Some(link) = plots.link(&super::plots::latency_png("put")) {
            line(w, &format!("![put latency distributions]({link})"));
            line(w, "");
        }
    }
}

/// etcd's and synod's chosen runs of every workload and client count that both have, in the
/// report's order.
fn chosen_pairs(results: &Results) -> Vec<(&'static str, usize, &Report, &Report)> {
    let mut pairs = Vec::new();
    for workload in WORKLOADS {
        for clients in results.client_counts() {
            if let (Some(e), Some(s)) = (
                results.chosen(BASELINE, workload, clients),
                results.chosen(CANDIDATE, workload, clients),
            ) {
                pairs.push((workload, clients, &e.report, &s.report));
            }
        }
    }
    pairs
}

fn cpu_section(w: &mut String, results: &Results) {
    let measured = results
        .runs
        .iter()
        .any(|r| r.report.server_cpu_us_per_request.is_some());
    if !measured {
        return;
    }
    line(w, "## CPU per request");
    line(w, "");
    line(
        w,
        "CPU time (user + system, from `/proc/<pid>/stat`) per measured request, in \
         microseconds, in the same runs as above: the three members together (server), and \
         the load generator (client), which shares the cores with them. On loopback the \
         kernel's work for a message falls mostly on its sender, so the client's figure \
         includes part of the servers' receive path and the servers' the client's. With both on \
         one machine, no server can push throughput past cores ÷ client CPU per request. \
         Ratio = synod ÷ etcd (below 1: synod spends less).",
    );
    line(w, "");
    line(
        w,
        "| workload | clients | etcd server | synod server | ratio | etcd's client | \
         synod's client |",
    );
    line(w, "|---|---:|---:|---:|---:|---:|---:|");
    let us = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
    for (workload, clients, e, s) in chosen_pairs(results) {
        let ratio = match (e.server_cpu_us_per_request, s.server_cpu_us_per_request) {
            (Some(e), Some(s)) if e > 0.0 => format_ratio(s / e),
            _ => "–".to_string(),
        };
        line(
            w,
            &format!(
                "| {workload} | {clients} | {} | {} | {ratio} | {} | {} |",
                us(e.server_cpu_us_per_request),
                us(s.server_cpu_us_per_request),
                us(e.client_cpu_us_per_request),
                us(s.client_cpu_us_per_request),
            ),
        );
    }
    line(w, "");
}

fn failover_section(w: &mut String, results: &Results, plots: &Plots) {
    line(w, "## Failover");
    line(w, "");
    let etcd = failover_ms(results, BASELINE);
    let synod = failover_ms(results, CANDIDATE);
    if etcd.is_none() && synod.is_none() {
        line(w, "Not measured.");
        line(w, "");
        return;
    }
    line(
        w,
        "Kill -9 of the leader to the first successful write through a survivor, milliseconds.",
    );
    line(w, "");
    line(w, "| | etcd | synod | ratio |");
    line(w, "|---|---:|---:|---:|");
    /// A statistic of the (non-empty) failover times.
    type Statistic = fn(&[f64]) -> f64;
    let stat = |times: &Option<Vec<f64>>, f: Statistic| times.as_deref().map(f);
    let rows: [(&str, Statistic); 6] = [
        ("min", |t| nearest_rank(t, 1e-9).unwrap_or(0.0)),
        ("p50", |t| nearest_rank(t, 0.5).unwrap_or(0.0)),
        ("p90", |t| nearest_rank(t, 0.9).unwrap_or(0.0)),
        ("p99", |t| nearest_rank(t, 0.99).unwrap_or(0.0)),
        ("max", |t| nearest_rank(t, 1.0).unwrap_or(0.0)),
        ("mean", |t| t.iter().sum::<f64>() / t.len() as f64),
    ];
    let trials = |t: &Option<Vec<f64>>| t.as_ref().map_or(0, Vec::len);
    line(
        w,
        &format!("| trials | {} | {} | |", trials(&etcd), trials(&synod)),
    );
    for (name, f) in rows {
        let (e, s) = (stat(&etcd, f), stat(&synod, f));
        let show = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
        let ratio = match (e, s) {
            (Some(e), Some(s)) => format_ratio(s / e.max(1e-9)),
            _ => "–".into(),
        };
        line(
            w,
            &format!("| {name} | {} | {} | {ratio} |", show(e), show(s)),
        );
    }
    line(w, "");
    let failed: u64 = results
        .failover
        .values()
        .flatten()
        .map(|t| t.failed_attempts)
        .sum();
    let trials_total = results.failover.values().map(Vec::len).sum::<usize>();
    let named = results
        .failover
        .values()
        .flatten()
        .filter(|t| t.new_leader_endpoint.is_some())
        .count();
    line(
        w,
        &format!(
            "Probe writes that failed before each trial's first success, all trials together: \
             {failed}. After the first success the survivors named a new leader among themselves \
             in {named} of {trials_total} trials."
        ),
    );
    line(w, "");
    if let Some(link) = plots.link(super::plots::FAILOVER_PNG) {
        line(w, &format!("![failover times]({link})"));
        line(w, "");
    }
}

fn memory_section(w: &mut String, results: &Results) {
    line(w, "## Memory");
    line(w, "");
    let (Some(etcd), Some(synod)) = (results.memory.get(BASELINE), results.memory.get(CANDIDATE))
    else {
        line(w, "Not measured.");
        line(w, "");
        return;
    };
    line(
        w,
        &format!(
            "After writing {} keys of {} bytes (etcd took {:.0} s to load them, synod {:.0} s):",
            group_digits(synod.keys),
            synod.value_size_bytes,
            etcd.load_seconds,
            synod.load_seconds
        ),
    );
    line(w, "");
    line(
        w,
        "| member | etcd VmRSS | synod VmRSS | ratio | etcd peak (VmHWM) | synod peak | etcd data dir | synod data dir |",
    );
    line(w, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (e, s) in etcd.members.iter().zip(&synod.members) {
        let name = if e.name == s.name {
            e.name.clone()
        } else {
            format!("{} / {}", e.name, s.name)
        };
        line(
            w,
            &format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                format_kib(e.vm_rss_kb as f64),
                format_kib(s.vm_rss_kb as f64),
                format_ratio(s.vm_rss_kb as f64 / e.vm_rss_kb.max(1) as f64),
                format_kib(e.vm_hwm_kb as f64),
                format_kib(s.vm_hwm_kb as f64),
                format_kib(e.data_dir_kb as f64),
                format_kib(s.data_dir_kb as f64),
            ),
        );
    }
    line(
        w,
        &format!(
            "| mean | {} | {} | {} | | | | |",
            format_kib(etcd.mean_rss_kb()),
            format_kib(synod.mean_rss_kb()),
            format_ratio(synod.mean_rss_kb() / etcd.mean_rss_kb().max(1e-9)),
        ),
    );
    line(w, "");
}

fn all_runs_section(w: &mut String, results: &Results) {
    if results.runs.is_empty() {
        return;
    }
    line(w, "## Every run");
    line(w, "");
    line(
        w,
        "Each round's figures, to show the spread between rounds; the tables above take one run \
         per row by the rule stated.",
    );
    line(w, "");
    line(
        w,
        "| workload | clients | system | round | req/s | p50 | p99 | p99.9 | max | errors |",
    );
    line(w, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for workload in WORKLOADS {
        for clients in results.client_counts() {
            for system in [BASELINE, CANDIDATE] {
                for run in results.rounds_of(system, workload, clients) {
                    let r = &run.report;
                    line(
                        w,
                        &format!(
                            "| {workload} | {clients} | {system} | {} | {:.0} | {} | {} | {} | {} | {} |",
                            run.round,
                            r.throughput_per_second,
                            format_us(r.latency_us_p50),
                            format_us(r.latency_us_p99),
                            format_us(r.latency_us_p999),
                            format_us(r.latency_us_max),
                            r.errors,
                        ),
                    );
                }
            }
        }
    }
    line(w, "");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_results_render_every_section() {
        let plots = Plots {
            link_dir: "bench".into(),
            files: Vec::new(),
        };
        let text = render(&Results::default(), &plots, Some("A note."));
        for heading in [
            "## The targets of issue 7",
            "## Machine and versions",
            "## How it was measured",
            "## Throughput and latency",
            "## Failover",
            "## Memory",
            "## Observations",
        ] {
            assert!(text.contains(heading), "{heading} missing:\n{text}");
        }
        assert!(text.contains("not measured"));
        assert!(!text.contains("bench/throughput.png"));
    }
}
