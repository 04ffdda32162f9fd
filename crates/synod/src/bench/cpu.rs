//! CPU time spent by processes during a run, read from `/proc/<pid>/stat`.
//!
//! On a machine where the load generator shares the cores with the cluster, a throughput ratio
//! can only go as far as the client's own cost allows. Reporting the CPU each side spends per
//! request separates the two: the servers' CPU per request compares the systems themselves,
//! and the client's shows how much of the machine the load generator takes.

use std::path::Path;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`): 100 on every Linux architecture's
/// user-space ABI.
const USER_HZ: f64 = 100.0;

/// The user plus system CPU seconds that process `pid` (all its threads) has used, or `None`
/// if it cannot be read (the process is gone, or this is not Linux).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    read_cpu_seconds(&Path::new("/proc").join(pid.to_string()).join("stat"))
}

/// [`process_cpu_seconds`] of this process.
pub fn own_cpu_seconds() -> Option<f64> {
    read_cpu_seconds(Path::new("/proc/self/stat"))
}

fn read_cpu_seconds(path: &Path) -> Option<f64> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// `utime + stime` from the text of a `stat` file, in seconds. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so fields are counted from the last
/// `)`: utime and stime are fields 14 and 15, the 12th and 13th after it.
fn parse_stat(text: &str) -> Option<f64> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The CPU seconds of a set of processes and of this one, at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Sum over the watched processes (`None` if any could not be read).
    pub servers: Option<f64>,
    /// This process.
    pub client: Option<f64>,
}

impl Sample {
    /// Samples `servers` and this process now.
    pub fn take(servers: &[u32]) -> Sample {
        let servers = (!servers.is_empty())
            .then(|| servers.iter().map(|&p| process_cpu_seconds(p)).sum())
            .flatten();
        Sample {
            servers,
            client: own_cpu_seconds(),
        }
    }

    /// Microseconds of CPU per request between `self` (earlier) and `later`, for the servers
    /// and for the client.
    pub fn per_request_us(&self, later: &Sample, requests: u64) -> (Option<f64>, Option<f64>) {
        let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if requests > 0 && b >= a => Some((b - a) * 1e6 / requests as f64),
            _ => None,
        };
        (
            per(self.servers, later.servers),
            per(self.client, later.client),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime ...
        let text = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_stat(text), Some(3.0));
        assert_eq!(parse_stat("42 (x) S 1"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process_reads_the_same_through_its_pid_and_self() {
        let by_self = own_cpu_seconds().expect("/proc/self/stat is readable on Linux");
        let by_pid = process_cpu_seconds(std::process::id()).expect("readable by pid");
        assert!(
            by_pid >= by_self && by_pid - by_self < 1.0,
            "{by_self} then {by_pid}"
        );
        assert_eq!(process_cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn per_request_cost_is_the_difference_over_the_requests() {
        let a = Sample {
            servers: Some(1.0),
            client: Some(0.5),
        };
        let b = Sample {
            servers: Some(3.0),
            client: Some(1.5),
        };
        assert_eq!(a.per_request_us(&b, 1_000_000), (Some(2.0), Some(1.0)));
        assert_eq!(a.per_request_us(&b, 0), (None, None));
        let gone = Sample {
            servers: None,
            client: Some(1.5),
        };
        assert_eq!(a.per_request_us(&gone, 10), (None, Some(100_000.0)));
    }
}
