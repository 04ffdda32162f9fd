//! The raw results of a comparison (`bench/compare.sh`), loaded from its directory, and the
//! rule that picks one run out of the rounds.
//!
//! The directory holds, as the script writes them:
//!
//! | path | what |
//! |---|---|
//! | `machine.txt` | `key: value` lines: cores, memory, kernel, disk, versions |
//! | `settings.txt` | `key: value` lines: the mode and each parameter of the run |
//! | `commands.txt` | the exact commands, as a shell snippet |
//! | `runs/<system>.r<round>.<workload>.c<clients>.json` | one `synod bench --json` report |
//! | `failover/<system>.t<trial>.json` | one `synod bench failover --json` trial |
//! | `memory/<system>.json` | a [`Memory`] measurement |
//!
//! The system names are free, but the report compares [`CANDIDATE`] with [`BASELINE`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::failover::Trial;
use super::report::Report;

/// The system the comparison is made against.
pub const BASELINE: &str = "etcd";
/// The system being compared.
pub const CANDIDATE: &str = "synod";

/// The workloads in the order the report shows them.
pub const WORKLOADS: [&str; 5] = ["put", "get", "get-serializable", "txn", "mixed"];

/// One benchmark run of one system in one round.
#[derive(Debug, Clone)]
pub struct Run {
    /// `etcd` or `synod`.
    pub system: String,
    /// The round, from 1: each round ran every workload on a freshly started cluster.
    pub round: u32,
    /// What `synod bench --json` printed.
    pub report: Report,
}

/// Resident memory after loading keys, one system.
#[derive(Debug, Clone, Deserialize)]
pub struct Memory {
    /// Keys written before measuring.
    pub keys: u64,
    /// Bytes per value.
    pub value_size_bytes: u64,
    /// How long loading the keys took.
    pub load_seconds: f64,
    /// Each member, in the order they were started.
    pub members: Vec<MemberMemory>,
}

/// One member's memory, from `/proc/<pid>/status`, and its data directory's size.
#[derive(Debug, Clone, Deserialize)]
pub struct MemberMemory {
    /// The member's name.
    pub name: String,
    /// Resident set size (VmRSS), KiB.
    pub vm_rss_kb: u64,
    /// Peak resident set size (VmHWM), KiB.
    pub vm_hwm_kb: u64,
    /// `du -sk` of the data directory, KiB.
    pub data_dir_kb: u64,
}

impl Memory {
    /// The mean VmRSS over the members, KiB.
    pub fn mean_rss_kb(&self) -> f64 {
        assert!(
            !self.members.is_empty(),
            "a memory measurement without members"
        );
        self.members.iter().map(|m| m.vm_rss_kb as f64).sum::<f64>() / self.members.len() as f64
    }
}

/// Everything a comparison produced.
#[derive(Debug, Default)]
pub struct Results {
    /// Facts about the machine and the versions, in the script's order.
    pub machine: Vec<(String, String)>,
    /// The parameters of the comparison, in the script's order.
    pub settings: Vec<(String, String)>,
    /// The commands, as a shell snippet.
    pub commands: String,
    /// Every run, in no particular order.
    pub runs: Vec<Run>,
    /// Failover trials by system, in trial order.
    pub failover: BTreeMap<String, Vec<Trial>>,
    /// Memory by system.
    pub memory: BTreeMap<String, Memory>,
    /// The floor of a replicated write on this machine (`synod bench floor`), if measured.
    pub floor: Option<super::floor::Floor>,
}

impl Results {
    /// Loads the results directory `dir`. Missing parts (a comparison cut short) are empty;
    /// a file that is there but does not parse is an error.
    pub fn load(dir: &Path) -> anyhow::Result<Results> {
        if !dir.is_dir() {
            bail!("{} is not a results directory", dir.display());
        }
        let mut results = Results {
            machine: read_facts(&dir.join("machine.txt"))?,
            settings: read_facts(&dir.join("settings.txt"))?,
            commands: read_optional(&dir.join("commands.txt"))?.unwrap_or_default(),
            ..Results::default()
        };
        for (name, text) in read_dir_files(&dir.join("runs"), "json")? {
            let (system, round) = parse_run_name(&name)
                .with_context(|| format!("runs/{name}: expected <system>.r<round>.…json"))?;
            let report: Report = serde_json::from_str(text.trim())
                .with_context(|| format!("runs/{name} is not a bench report"))?;
            results.runs.push(Run {
                system,
                round,
                report,
            });
        }
        let mut trials: Vec<(String, u32, Trial)> = Vec::new();
        for (name, text) in read_dir_files(&dir.join("failover"), "json")? {
            let (system, trial) = parse_trial_name(&name)
                .with_context(|| format!("failover/{name}: expected <system>.t<trial>.json"))?;
            let parsed: Trial = serde_json::from_str(text.trim())
                .with_context(|| format!("failover/{name} is not a failover trial"))?;
            trials.push((system, trial, parsed));
        }
        trials.sort_by_key(|(system, trial, _)| (system.clone(), *trial));
        for (system, _, trial) in trials {
            results.failover.entry(system).or_default().push(trial);
        }
        for (name, text) in read_dir_files(&dir.join("memory"), "json")? {
            let system = name.trim_end_matches(".json").to_string();
            let memory: Memory = serde_json::from_str(text.trim())
                .with_context(|| format!("memory/{name} is not a memory measurement"))?;
            if memory.members.is_empty() {
                bail!("memory/{name} has no members");
            }
            results.memory.insert(system, memory);
        }
        if let Some(text) = read_optional(&dir.join("floor.json"))? {
            results.floor = Some(
                serde_json::from_str(text.trim())
                    .context("floor.json is not the output of synod bench floor --json")?,
            );
        }
        Ok(results)
    }

    /// A setting's value, if the script wrote it.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The client counts that were run, ascending.
    pub fn client_counts(&self) -> Vec<usize> {
        let mut counts: Vec<usize> = self.runs.iter().map(|r| r.report.clients).collect();
        counts.sort_unstable();
        counts.dedup();
        counts
    }

    /// Every run of `system` with `workload` and `clients`, by round.
    pub fn rounds_of(&self, system: &str, workload: &str, clients: usize) -> Vec<&Run> {
        let mut runs: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| {
                r.system == system && r.report.workload == workload && r.report.clients == clients
            })
            .collect();
        runs.sort_by_key(|r| r.round);
        runs
    }

    /// The run that stands for `system` with `workload` and `clients`: see [`chosen_run`].
    pub fn chosen(&self, system: &str, workload: &str, clients: usize) -> Option<&Run> {
        chosen_run(&self.rounds_of(system, workload, clients))
    }
}

/// The rule that picks one run out of the rounds: the run with the median throughput; with an
/// even number of rounds, the better of the two middle ones (so with two rounds, the better
/// one). Its latencies are that run's own, never mixed across runs.
pub const CHOSEN_RUN_RULE: &str = "the run with the median throughput over the rounds (with \
    an even number of rounds, the better of the two middle ones, so with two rounds the \
    better); its latencies are that same run's";

/// Applies [`CHOSEN_RUN_RULE`] to `runs` (the rounds of one system, workload and client count).
pub fn chosen_run<'a>(runs: &[&'a Run]) -> Option<&'a Run> {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| {
        a.report
            .throughput_per_second
            .total_cmp(&b.report.throughput_per_second)
    });
    sorted.get(sorted.len() / 2).copied()
}

/// The nearest-rank percentile `q` (0 < q ≤ 1) of `values`: the smallest value that at least
/// a fraction q of them do not exceed. With 20 values, p99 is the largest.
pub fn nearest_rank(values: &[f64], q: f64) -> Option<f64> {
    assert!(q > 0.0 && q <= 1.0, "a percentile outside (0, 1]: {q}");
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// `key: value` lines; blank lines and lines starting with `#` are skipped. A missing file is
/// empty.
fn read_facts(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let Some(text) = read_optional(path)? else {
        return Ok(Vec::new());
    };
    let mut facts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((key, value)) => facts.push((key.trim().to_string(), value.trim().to_string())),
            None => bail!("{}: {line:?} is not `key: value`", path.display()),
        }
    }
    Ok(facts)
}

fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The files of `dir` whose names end in `.extension`, with their text, sorted by name. A
/// missing directory has none.
fn read_dir_files(dir: &Path, extension: &str) -> anyhow::Result<Vec<(String, String)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(&format!(".{extension}")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        files.push((name, text));
    }
    files.sort();
    Ok(files)
}

/// `etcd.r2.put.c16.json` → (`etcd`, 2).
fn parse_run_name(name: &str) -> Option<(String, u32)> {
    let mut parts = name.split('.');
    let system = parts.next()?.to_string();
    let round = parts.next()?.strip_prefix('r')?.parse().ok()?;
    Some((system, round))
}

/// `synod.t7.json` → (`synod`, 7).
fn parse_trial_name(name: &str) -> Option<(String, u32)> {
    let mut parts = name.split('.');
    let system = parts.next()?.to_string();
    let trial = parts.next()?.strip_prefix('t')?.parse().ok()?;
    Some((system, trial))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: u32, throughput: f64) -> Run {
        let json = format!(
            r#"{{"workload":"put","endpoints":["e"],"clients":1,"conns":1,"key_space":10,
            "value_size_bytes":256,"warmup_seconds":1.0,"elapsed_seconds":1.0,"requests":1,
            "errors":0,"conflicts":0,"throughput_per_second":{throughput},"latency_us_min":1,
            "latency_us_mean":1.0,"latency_us_p50":1,"latency_us_p90":1,"latency_us_p99":1,
            "latency_us_p999":1,"latency_us_max":1,"first_error":null}}"#
        );
        Run {
            system: "etcd".into(),
            round,
            report: serde_json::from_str(&json).expect("a report"),
        }
    }

    #[test]
    fn the_chosen_run_is_the_upper_median_by_throughput() {
        let (a, b, c) = (run(1, 300.0), run(2, 100.0), run(3, 200.0));
        assert_eq!(chosen_run(&[&a, &b, &c]).map(|r| r.round), Some(3));
        assert_eq!(chosen_run(&[&a, &b]).map(|r| r.round), Some(1));
        assert_eq!(chosen_run(&[&b]).map(|r| r.round), Some(2));
        assert!(chosen_run(&[]).is_none());
        // A report without the latency ladder (an older bench) still parses.
        assert!(a.report.latency_us_by_quantile.is_empty());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&twenty, 0.5), Some(10.0));
        assert_eq!(nearest_rank(&twenty, 0.9), Some(18.0));
        assert_eq!(nearest_rank(&twenty, 0.99), Some(20.0));
        assert_eq!(nearest_rank(&twenty, 1.0), Some(20.0));
        assert_eq!(nearest_rank(&[5.0], 0.01), Some(5.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn file_names_give_system_round_and_trial() {
        assert_eq!(
            parse_run_name("etcd.r2.get-serializable.c64.json"),
            Some(("etcd".into(), 2))
        );
        assert_eq!(parse_run_name("etcd.put.json"), None);
        assert_eq!(
            parse_trial_name("synod.t17.json"),
            Some(("synod".into(), 17))
        );
        assert_eq!(parse_trial_name("synod.json"), None);
    }

    #[test]
    fn a_results_directory_loads() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(
            dir.path().join("machine.txt"),
            "# comment\ncores: 2\nkernel: 6.1\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("runs")).unwrap();
        let report = serde_json::to_string(&run(1, 10.0).report).unwrap();
        std::fs::write(dir.path().join("runs/synod.r1.put.c1.json"), &report).unwrap();
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(
            dir.path().join("memory/etcd.json"),
            r#"{"keys":100,"value_size_bytes":256,"load_seconds":1.5,
               "members":[{"name":"m1","vm_rss_kb":1000,"vm_hwm_kb":1200,"data_dir_kb":50},
                          {"name":"m2","vm_rss_kb":2000,"vm_hwm_kb":2100,"data_dir_kb":50}]}"#,
        )
        .unwrap();
        let results = Results::load(dir.path()).expect("loads");
        assert_eq!(results.machine[0], ("cores".into(), "2".into()));
        assert_eq!(results.runs.len(), 1);
        assert_eq!(results.runs[0].system, "synod");
        assert_eq!(results.client_counts(), vec![1]);
        assert!(results.chosen("synod", "put", 1).is_some());
        assert!(results.chosen("etcd", "put", 1).is_none());
        assert_eq!(results.memory["etcd"].mean_rss_kb(), 1500.0);
        assert!(results.failover.is_empty());
    }
}
