//! etcdctl 3.4, unchanged, against three real `synod serve` processes on loopback, for each
//! engine. The assertions are on what etcdctl prints, as a user reads it: full stdout wherever
//! it is deterministic, and etcd's exact error messages.
//!
//! What varies from run to run is taken from etcdctl's own output and put back into the
//! expected text, never skipped: the revision the store starts from (`wait_ready` may have
//! written more than once), member ids, the member that answered and the term in a response
//! header. Tables are parsed, checked cell by cell, and rendered again the way etcdctl's table
//! writer does, so that the layout is compared in full as well.
//!
//! etcdctl 3.4 has no `get --count-only` (it came with 3.5); the count is checked in `-w json`
//! and `-w fields` output, where etcdctl prints it.

mod common;

use std::time::Duration;

use common::{Cluster, etcdctl, eventually, wait_ready};

/// The engines `synod serve --engine` accepts.
const ENGINES: [&str; 2] = ["raft", "multipaxos"];

/// How long a loop waits for something that happens in a healthy cluster within milliseconds
/// (a follower applying a committed write, a leader being known everywhere).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// A running 3-member cluster that has committed a write, and the etcdctl calls on it.
struct Ctl {
    cluster: Cluster,
}

impl Ctl {
    /// Starts a cluster whose three members all answer. The harness picks ports by binding
    /// and releasing them, so a member may find its port taken by the time it starts (other
    /// tests run clusters and etcdctl at the same time); such a cluster is thrown away and
    /// started again on new ports, a bounded number of times.
    fn start(engine: &str) -> Ctl {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let cluster = Cluster::start(3, engine, &[]);
            wait_ready(&cluster);
            // Each endpoint answers, and for this cluster (one cluster id, three members): a
            // port taken by another test's cluster would answer for that one.
            let headers: Vec<(u64, u64)> = cluster
                .procs
                .iter()
                .filter_map(|p| {
                    eventually(SETTLE_TIMEOUT, || {
                        let (ok, json, _) =
                            etcdctl(&p.endpoint(), &["endpoint", "status", "-w", "json"], None);
                        let cluster_id = json_numbers(&json, "cluster_id").first().copied();
                        let member_id = json_numbers(&json, "member_id").first().copied();
                        ok.then_some(cluster_id.zip(member_id)).flatten()
                    })
                })
                .collect();
            let mut members: Vec<u64> = headers.iter().map(|h| h.1).collect();
            members.sort();
            members.dedup();
            if headers.len() == 3
                && members.len() == 3
                && headers.iter().all(|h| h.0 == headers[0].0)
            {
                return Ctl { cluster };
            }
            assert!(
                attempt < ATTEMPTS,
                "a member never answered for its cluster, {ATTEMPTS} times\n{}",
                cluster.logs()
            );
            eprintln!(
                "a member never answered for its cluster; starting it again\n{}",
                cluster.logs()
            );
        }
        unreachable!("the last attempt returns or panics")
    }

    fn endpoints(&self) -> String {
        self.cluster.endpoints()
    }

    /// Runs etcdctl against every member, asserts that it succeeded and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_on(&self.endpoints(), args, None)
    }

    /// `ok` with stdin.
    fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        self.ok_on(&self.endpoints(), args, Some(stdin))
    }

    fn ok_on(&self, endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, stdout, stderr) = etcdctl(endpoints, args, stdin);
        assert!(
            ok,
            "etcdctl {args:?} failed ({} engine)\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
            self.cluster.engine,
            self.cluster.logs()
        );
        stdout
    }

    /// Runs etcdctl, asserts that it failed and printed nothing on stdout, and returns the
    /// last line of its stderr (etcdctl's `Error: ...`; the lines before it are the client
    /// library's retry log).
    fn fails(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = etcdctl(&self.endpoints(), args, None);
        assert!(
            !ok,
            "etcdctl {args:?} should have failed ({} engine)\nstdout:\n{stdout}",
            self.cluster.engine
        );
        assert_eq!(stdout, "", "etcdctl {args:?} failed but printed on stdout");
        stderr.lines().last().unwrap_or_default().to_string()
    }

    /// The store's current revision, from a response header.
    fn revision(&self) -> i64 {
        let json = self.ok(&["get", "__ready", "-w", "json"]);
        json_numbers(&json, "revision")[0] as i64
    }

    /// Checks, on each member alone, that a serializable read eventually prints `expected`
    /// (a follower serves it from what it has applied, which may lag by a few milliseconds).
    fn serializable_everywhere(&self, args: &[&str], expected: &str) {
        let mut args = args.to_vec();
        args.push("--consistency=s");
        for p in &self.cluster.procs {
            let mut last = String::new();
            let seen = eventually(SETTLE_TIMEOUT, || {
                let (ok, stdout, _) = etcdctl(&p.endpoint(), &args, None);
                last = stdout;
                (ok && last == expected).then_some(())
            });
            assert!(
                seen.is_some(),
                "{} never printed {expected:?} for {args:?}; last: {last:?}",
                p.name
            );
        }
    }
}

/// Every number that follows `"field":` in JSON text, in order.
fn json_numbers(json: &str, field: &str) -> Vec<u64> {
    let pattern = format!("\"{field}\":");
    json.match_indices(&pattern)
        .map(|(at, _)| {
            let rest = &json[at + pattern.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end]
                .parse()
                .unwrap_or_else(|_| panic!("{field} is not a number in {json}"))
        })
        .collect()
}

/// Replaces the value of each of `fields` (numbers, in JSON `"f":1` or etcdctl's fields
/// format `"F" : 1`) with the field's name in capitals, so that text that differs only in which
/// member answered, or in the term, compares equal. The cluster id must be the same
/// throughout and not zero.
fn normalize(text: &str, fields: &[&str]) -> String {
    let mut out = text.to_string();
    for field in fields {
        for separator in [":", " : "] {
            let pattern = format!("\"{field}\"{separator}");
            let mut result = String::new();
            let mut rest = out.as_str();
            while let Some(at) = rest.find(&pattern) {
                let after = &rest[at + pattern.len()..];
                let digits = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                assert!(digits > 0, "{field} is not a number in {text}");
                result.push_str(&rest[..at + pattern.len()]);
                result.push_str(&field.to_uppercase());
                rest = &after[digits..];
            }
            result.push_str(rest);
            out = result;
        }
    }
    out
}

fn normalize_header(json: &str) -> String {
    let clusters = json_numbers(json, "cluster_id");
    assert!(
        clusters.iter().all(|&c| c != 0 && c == clusters[0]),
        "cluster ids in {json}"
    );
    normalize(json, &["cluster_id", "member_id", "raft_term"])
}

/// The rows of a table etcdctl printed (header first), cells trimmed.
fn table_rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|line| line.starts_with('|'))
        .map(|line| {
            let inner = line.trim_start_matches('|').trim_end_matches('|');
            inner.split('|').map(|c| c.trim().to_string()).collect()
        })
        .collect()
}

/// A table as etcdctl 3.4 renders it (olekukonko/tablewriter, right-aligned cells): a border,
/// the header centred (the odd space of padding on the right), a border, the rows, a border.
fn render_table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let border = widths
        .iter()
        .fold(String::from("+"), |s, w| s + &"-".repeat(w + 2) + "+");
    let line = |row: &Vec<String>, centred: bool| {
        let mut s = String::from("|");
        for (cell, &width) in row.iter().zip(&widths) {
            // Widths count characters, as etcdctl's table writer does ("859.071µs" is 9).
            let gap = width - cell.chars().count();
            let left = if centred { gap / 2 } else { gap };
            s += &format!(" {}{cell}{} |", " ".repeat(left), " ".repeat(gap - left));
        }
        s
    };
    let mut out = vec![border.clone(), line(&rows[0], true), border.clone()];
    out.extend(rows[1..].iter().map(|r| line(r, false)));
    out.push(border);
    out.join("\n") + "\n"
}

/// Parses a table etcdctl printed, checks that it is laid out exactly as etcdctl lays it out
/// and that its header is `header`, and returns the body rows.
fn parse_table(table: &str, header: &[&str]) -> Vec<Vec<String>> {
    let rows = table_rows(table);
    assert_eq!(rows[0], header, "table header in\n{table}");
    assert_eq!(render_table(&rows), table, "table layout");
    rows[1..].to_vec()
}

// ---------------------------------------------------------------------------------------------
// put, get, del

fn put_get_del(engine: &str) {
    let ctl = Ctl::start(engine);
    let base = ctl.revision();
    // Revisions of the writes below: a base+1; b base+2, again base+4; c base+3; d base+5;
    // aa base+6.
    for (key, value) in [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("b", "22"),
        ("d", "4"),
        ("aa", "0"),
    ] {
        assert_eq!(ctl.ok(&["put", key, value]), "OK\n");
    }
    let now = base + 6;
    assert_eq!(ctl.revision(), now);

    // A range [a, c), a prefix, from a key, a limit, keys only.
    assert_eq!(ctl.ok(&["get", "a", "c"]), "a\n1\naa\n0\nb\n22\n");
    assert_eq!(ctl.ok(&["get", "--prefix", "a"]), "a\n1\naa\n0\n");
    assert_eq!(
        ctl.ok(&["get", "a", "--from-key"]),
        "a\n1\naa\n0\nb\n22\nc\n3\nd\n4\n"
    );
    assert_eq!(
        ctl.ok(&["get", "a", "--from-key", "--limit", "3"]),
        "a\n1\naa\n0\nb\n22\n"
    );
    assert_eq!(
        ctl.ok(&["get", "a", "--from-key", "--keys-only"]),
        "a\n\naa\n\nb\n\nc\n\nd\n\n"
    );
    assert_eq!(ctl.ok(&["get", "nothing"]), "");
    assert_eq!(
        ctl.ok(&["get", "--prefix", "b", "--print-value-only"]),
        "22\n"
    );

    // Sorting: etcd keeps ties in key order whichever the direction (b has version 2, the
    // others version 1).
    let sorted = |target: &str, order: &str| {
        ctl.ok(&[
            "get",
            "a",
            "z",
            "--keys-only",
            &format!("--sort-by={target}"),
            &format!("--order={order}"),
        ])
        .lines()
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
    };
    assert_eq!(sorted("KEY", "ASCEND"), "a aa b c d");
    assert_eq!(sorted("KEY", "DESCEND"), "d c b aa a");
    assert_eq!(sorted("VERSION", "ASCEND"), "a aa c d b");
    assert_eq!(sorted("VERSION", "DESCEND"), "b a aa c d");
    assert_eq!(sorted("CREATE", "ASCEND"), "a b c d aa");
    assert_eq!(sorted("CREATE", "DESCEND"), "aa d c b a");
    assert_eq!(sorted("MODIFY", "ASCEND"), "a c b d aa");
    assert_eq!(sorted("MODIFY", "DESCEND"), "aa d b c a");
    assert_eq!(sorted("VALUE", "ASCEND"), "aa a b c d");
    assert_eq!(sorted("VALUE", "DESCEND"), "d c b a aa");
    // A sort target with no order sorts ascending (etcd's server default); sorting happens
    // before the limit.
    assert_eq!(
        ctl.ok(&["get", "a", "z", "--sort-by=VALUE"]),
        "aa\n0\na\n1\nb\n22\nc\n3\nd\n4\n"
    );
    assert_eq!(
        ctl.ok(&[
            "get",
            "a",
            "z",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "--limit",
            "2"
        ]),
        "aa\n0\nd\n4\n"
    );

    // Reads at older revisions.
    assert_eq!(
        ctl.ok(&["get", "b", "--rev", &(base + 3).to_string()]),
        "b\n2\n"
    );
    assert_eq!(
        ctl.ok(&["get", "a", "z", "--rev", &(base + 2).to_string()]),
        "a\n1\nb\n2\n"
    );
    assert_eq!(ctl.ok(&["get", "d", "--rev", &(base + 4).to_string()]), "");
    assert_eq!(
        ctl.fails(&["get", "a", "--rev", &(now + 1000).to_string()]),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );

    // JSON: keys and values in base64 ("b" is Yg==, "22" MjI=, "a" YQ==, "1" MQ==, "aa" YWE=,
    // "0" MA==, "2" Mg==); the header carries the current revision even for an older read.
    assert_eq!(
        normalize_header(&ctl.ok(&["get", "b", "-w", "json"])),
        format!(
            "{{\"header\":{{\"cluster_id\":CLUSTER_ID,\"member_id\":MEMBER_ID,\"revision\":{now},\"raft_term\":RAFT_TERM}},\"kvs\":[{{\"key\":\"Yg==\",\"create_revision\":{},\"mod_revision\":{},\"version\":2,\"value\":\"MjI=\"}}],\"count\":1}}\n",
            base + 2,
            base + 4
        )
    );
    assert_eq!(
        normalize_header(&ctl.ok(&["get", "b", "-w", "json", "--rev", &(base + 2).to_string()])),
        format!(
            "{{\"header\":{{\"cluster_id\":CLUSTER_ID,\"member_id\":MEMBER_ID,\"revision\":{now},\"raft_term\":RAFT_TERM}},\"kvs\":[{{\"key\":\"Yg==\",\"create_revision\":{0},\"mod_revision\":{0},\"version\":1,\"value\":\"Mg==\"}}],\"count\":1}}\n",
            base + 2
        )
    );
    // A limit: `more` and the count of the whole range.
    assert_eq!(
        normalize_header(&ctl.ok(&["get", "a", "z", "--limit", "2", "-w", "json"])),
        format!(
            "{{\"header\":{{\"cluster_id\":CLUSTER_ID,\"member_id\":MEMBER_ID,\"revision\":{now},\"raft_term\":RAFT_TERM}},\"kvs\":[{{\"key\":\"YQ==\",\"create_revision\":{0},\"mod_revision\":{0},\"version\":1,\"value\":\"MQ==\"}},{{\"key\":\"YWE=\",\"create_revision\":{1},\"mod_revision\":{1},\"version\":1,\"value\":\"MA==\"}}],\"more\":true,\"count\":5}}\n",
            base + 1,
            base + 6
        )
    );
    // Nothing found: no kvs, no count (zero fields are left out).
    assert_eq!(
        normalize_header(&ctl.ok(&["get", "nothing", "-w", "json"])),
        format!(
            "{{\"header\":{{\"cluster_id\":CLUSTER_ID,\"member_id\":MEMBER_ID,\"revision\":{now},\"raft_term\":RAFT_TERM}}}}\n"
        )
    );
    // The fields format, keys only.
    assert_eq!(
        normalize(
            &ctl.ok(&[
                "get",
                "a",
                "z",
                "--keys-only",
                "--limit",
                "1",
                "--write-out=fields"
            ]),
            &["ClusterID", "MemberID", "RaftTerm"]
        ),
        format!(
            "\"ClusterID\" : CLUSTERID\n\"MemberID\" : MEMBERID\n\"Revision\" : {now}\n\"RaftTerm\" : RAFTTERM\n\"Key\" : \"a\"\n\"CreateRevision\" : {0}\n\"ModRevision\" : {0}\n\"Version\" : 1\n\"Value\" : \"\"\n\"Lease\" : 0\n\"More\" : true\n\"Count\" : 5\n",
            base + 1
        )
    );

    // Serializable reads, on each member alone.
    ctl.serializable_everywhere(&["get", "a", "c"], "a\n1\naa\n0\nb\n22\n");
    ctl.serializable_everywhere(&["get", "b", "--rev", &(base + 3).to_string()], "b\n2\n");

    // put --prev-kv prints the pair it replaced.
    assert_eq!(ctl.ok(&["put", "c", "33", "--prev-kv"]), "OK\nc\n3\n");
    assert_eq!(ctl.ok(&["put", "e", "5", "--prev-kv"]), "OK\n");
    let now = now + 2;

    // del: the count, then with --prev-kv the deleted pairs.
    assert_eq!(
        ctl.ok(&["del", "--prefix", "a", "--prev-kv"]),
        "2\na\n1\naa\n0\n"
    );
    assert_eq!(ctl.ok(&["del", "nothing"]), "0\n");
    assert_eq!(ctl.ok(&["del", "b", "d", "--prev-kv"]), "2\nb\n22\nc\n33\n");
    assert_eq!(ctl.ok(&["del", "e"]), "1\n");
    assert_eq!(ctl.ok(&["get", "a", "--from-key"]), "d\n4\n");
    // A delete that deleted nothing made no revision.
    assert_eq!(ctl.revision(), now + 3);
    // History is still readable.
    assert_eq!(
        ctl.ok(&["get", "--prefix", "a", "--rev", &now.to_string()]),
        "a\n1\naa\n0\n"
    );
    ctl.serializable_everywhere(&["get", "a", "--from-key"], "d\n4\n");
}

#[test]
fn put_get_del_raft() {
    put_get_del(ENGINES[0]);
}

#[test]
fn put_get_del_multipaxos() {
    put_get_del(ENGINES[1]);
}

// ---------------------------------------------------------------------------------------------
// txn

fn txn(engine: &str) {
    let ctl = Ctl::start(engine);
    assert_eq!(ctl.ok(&["put", "k", "v"]), "OK\n");
    let k_mod = ctl.revision();

    // Plain `txn` reads stdin without prompts: compares, a blank line, success requests, a
    // blank line, failure requests, a blank line. Every compare holds.
    let input = format!(
        "mod(\"k\") = \"{k_mod}\"\nvalue(\"k\") = \"v\"\nversion(\"k\") > \"0\"\ncreate(\"new\") = \"0\"\n\nput k v2\nget k\n\nput k bad\n\n"
    );
    assert_eq!(ctl.ok_stdin(&["txn"], &input), "SUCCESS\n\nOK\n\nk\nv2\n");
    assert_eq!(ctl.ok(&["get", "k"]), "k\nv2\n");

    // One compare fails (the value is v2 now): the failure branch runs.
    let input = "version(\"k\") = \"2\"\nvalue(\"k\") = \"v\"\n\nput k never\n\nget k\nput other o\ndel k --prev-kv\nget --prefix k\n\n";
    assert_eq!(
        ctl.ok_stdin(&["txn"], input),
        "FAILURE\n\nk\nv2\n\nOK\n\n1\nk\nv2\n\n"
    );
    assert_eq!(ctl.ok(&["get", "k"]), "");
    assert_eq!(ctl.ok(&["get", "other"]), "other\no\n");

    // `txn -i` prompts on stdout; `create("k") = "0"` holds for a key that does not exist.
    let input = "create(\"k\") = \"0\"\nmod(\"other\") > \"1\"\n\nput k again\n\nput other no\n\n";
    assert_eq!(
        ctl.ok_stdin(&["txn", "-i"], input),
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n"
    );
    let input = "create(\"k\") = \"0\"\n\nput k never\n\nget k --keys-only\n\n";
    assert_eq!(
        ctl.ok_stdin(&["txn", "--interactive"], input),
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nFAILURE\n\nk\n\n"
    );
    assert_eq!(ctl.ok(&["get", "k"]), "k\nagain\n");

    // JSON: one revision for the whole transaction. As in etcd, only the outer header names
    // the cluster, the member and the term; each inner response carries the revision it was
    // served at: a read before the transaction's first write the revision before it, the
    // writes and later reads the transaction's revision.
    let before = ctl.revision();
    let after = before + 1;
    let input = "\nget k\nput w 1\nget w\ndel nothing\n\n\n";
    assert_eq!(
        normalize_header(&ctl.ok_stdin(&["txn", "-w", "json"], input)),
        format!(
            "{{\"header\":{{\"cluster_id\":CLUSTER_ID,\"member_id\":MEMBER_ID,\"revision\":{after},\"raft_term\":RAFT_TERM}},\"succeeded\":true,\"responses\":[\
             {{\"Response\":{{\"ResponseRange\":{{\"header\":{{\"revision\":{before}}},\"kvs\":[{{\"key\":\"aw==\",\"create_revision\":{before},\"mod_revision\":{before},\"version\":1,\"value\":\"YWdhaW4=\"}}],\"count\":1}}}}}},\
             {{\"Response\":{{\"ResponsePut\":{{\"header\":{{\"revision\":{after}}}}}}}}},\
             {{\"Response\":{{\"ResponseRange\":{{\"header\":{{\"revision\":{after}}},\"kvs\":[{{\"key\":\"dw==\",\"create_revision\":{after},\"mod_revision\":{after},\"version\":1,\"value\":\"MQ==\"}}],\"count\":1}}}}}},\
             {{\"Response\":{{\"ResponseDeleteRange\":{{\"header\":{{\"revision\":{after}}}}}}}}}]}}\n"
        )
    );
    // A read-only transaction makes no revision.
    let input = "\nget w\n\n\n";
    assert_eq!(
        normalize_header(&ctl.ok_stdin(&["txn", "-w", "json"], input)),
        format!(
            "{{\"header\":{{\"cluster_id\":CLUSTER_ID,\"member_id\":MEMBER_ID,\"revision\":{after},\"raft_term\":RAFT_TERM}},\"succeeded\":true,\"responses\":[\
             {{\"Response\":{{\"ResponseRange\":{{\"header\":{{\"revision\":{after}}},\"kvs\":[{{\"key\":\"dw==\",\"create_revision\":{after},\"mod_revision\":{after},\"version\":1,\"value\":\"MQ==\"}}],\"count\":1}}}}}}]}}\n"
        )
    );
    assert_eq!(ctl.revision(), after);

    // etcd refuses a transaction that writes a key twice.
    let (ok, _, stderr) = etcdctl(&ctl.endpoints(), &["txn"], Some("\nput x 1\nput x 2\n\n\n"));
    assert!(!ok);
    assert_eq!(
        stderr.lines().last(),
        Some("Error: etcdserver: duplicate key given in txn request")
    );
}

#[test]
fn txn_raft() {
    txn(ENGINES[0]);
}

#[test]
fn txn_multipaxos() {
    txn(ENGINES[1]);
}

// ---------------------------------------------------------------------------------------------
// compaction

fn compaction(engine: &str) {
    let ctl = Ctl::start(engine);
    let base = ctl.revision();
    for value in ["1", "2", "3", "4"] {
        assert_eq!(ctl.ok(&["put", "c", value]), "OK\n");
    }
    let rev = |n: i64| (base + n).to_string();
    assert_eq!(ctl.ok(&["get", "c", "--rev", &rev(1)]), "c\n1\n");
    assert_eq!(
        ctl.ok(&["compaction", &rev(2)]),
        format!("compacted revision {}\n", rev(2))
    );
    let compacted = "Error: etcdserver: mvcc: required revision has been compacted";
    assert_eq!(ctl.fails(&["get", "c", "--rev", &rev(1)]), compacted);
    // The compacted revision itself is still readable, and so is every later one.
    assert_eq!(ctl.ok(&["get", "c", "--rev", &rev(2)]), "c\n2\n");
    assert_eq!(ctl.ok(&["get", "c", "--rev", &rev(3)]), "c\n3\n");
    assert_eq!(ctl.ok(&["get", "c"]), "c\n4\n");
    // Every member compacted: a serializable read of the compacted revision fails on each.
    for p in &ctl.cluster.procs {
        let mut last = (String::new(), String::new());
        let refused = eventually(SETTLE_TIMEOUT, || {
            let (ok, stdout, stderr) = etcdctl(
                &p.endpoint(),
                &["get", "c", "--rev", &rev(1), "--consistency=s"],
                None,
            );
            let done = !ok && stderr.lines().last() == Some(compacted);
            last = (stdout, stderr);
            done.then_some(())
        });
        assert!(
            refused.is_some(),
            "{} still serves a compacted revision; last stdout {:?}, stderr {:?}\n{}",
            p.name,
            last.0,
            last.1,
            ctl.cluster.logs()
        );
    }
    // Compacting again at or below the compacted revision, or beyond the current one, fails.
    assert_eq!(ctl.fails(&["compaction", &rev(2)]), compacted);
    assert_eq!(ctl.fails(&["compaction", &rev(1)]), compacted);
    assert_eq!(
        ctl.fails(&["compaction", &rev(100)]),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(
        ctl.fails(&["get", "c", "--rev", &rev(100)]),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );
    // --physical waits for the compaction to be applied; the answer reads the same.
    assert_eq!(
        ctl.ok(&["compaction", "--physical", &rev(3)]),
        format!("compacted revision {}\n", rev(3))
    );
    assert_eq!(ctl.fails(&["get", "c", "--rev", &rev(2)]), compacted);
    assert_eq!(ctl.ok(&["get", "c", "--rev", &rev(3)]), "c\n3\n");
    // Compaction makes no revision.
    assert_eq!(ctl.revision(), base + 4);
}

#[test]
fn compaction_raft() {
    compaction(ENGINES[0]);
}

#[test]
fn compaction_multipaxos() {
    compaction(ENGINES[1]);
}

// ---------------------------------------------------------------------------------------------
// member list, endpoint status, endpoint health

fn cluster_commands(engine: &str) {
    let ctl = Ctl::start(engine);
    let procs = &ctl.cluster.procs;

    // member list: "ID, status, name, peer URLs, client URLs, is learner", the id in hex.
    let listed = ctl.ok(&["member", "list"]);
    let mut ids = Vec::new();
    let mut expected = String::new();
    for line in listed.lines() {
        let id = line.split(", ").next().unwrap_or_default();
        assert!(
            u64::from_str_radix(id, 16).is_ok_and(|id| id != 0),
            "member id {id:?} in {listed}"
        );
        let name = line.split(", ").nth(2).unwrap_or_default();
        let p = procs
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("an unknown member in\n{listed}"));
        ids.push((p.name.clone(), id.to_string()));
        expected += &format!(
            "{id}, started, {}, http://127.0.0.1:{}, http://127.0.0.1:{}, false\n",
            p.name, p.peer_port, p.client_port
        );
    }
    assert_eq!(listed, expected);
    ids.sort();
    ids.dedup_by(|a, b| a.1 == b.1);
    assert_eq!(ids.len(), 3, "three members with distinct ids:\n{listed}");
    let id_of = |name: &str| ids.iter().find(|(n, _)| n == name).unwrap().1.clone();

    // The same as a table.
    let table = ctl.ok(&["member", "list", "-w", "table"]);
    let rows = parse_table(
        &table,
        &[
            "ID",
            "STATUS",
            "NAME",
            "PEER ADDRS",
            "CLIENT ADDRS",
            "IS LEARNER",
        ],
    );
    let from_table: String = rows.iter().map(|r| r.join(", ") + "\n").collect();
    assert_eq!(from_table, listed);
    // Each member alone lists the same members.
    for p in procs {
        assert_eq!(ctl.ok_on(&p.endpoint(), &["member", "list"], None), listed);
    }

    // endpoint status: one row per endpoint, in the order given; exactly one leader, whom
    // every member names.
    let header = [
        "ENDPOINT",
        "ID",
        "VERSION",
        "DB SIZE",
        "IS LEADER",
        "IS LEARNER",
        "RAFT TERM",
        "RAFT INDEX",
        "RAFT APPLIED INDEX",
        "ERRORS",
    ];
    let mut last = String::new();
    let settled = eventually(SETTLE_TIMEOUT, || {
        let (ok, table, _) = etcdctl(
            &ctl.endpoints(),
            &["endpoint", "status", "-w", "table"],
            None,
        );
        last = table.clone();
        let rows = table_rows(&table);
        let leaders = rows
            .iter()
            .filter(|r| r.get(4).is_some_and(|c| c == "true"))
            .count();
        (ok && rows.len() == 4 && leaders == 1).then_some(table)
    });
    let table = settled.unwrap_or_else(|| {
        panic!(
            "endpoint status never showed three members and one leader:\n{last}\n{}",
            ctl.cluster.logs()
        )
    });
    let rows = parse_table(&table, &header);
    for (row, p) in rows.iter().zip(procs) {
        assert_eq!(row[0], p.endpoint());
        assert_eq!(row[1], id_of(&p.name), "the member id of {}", p.name);
        let version = row[2].split('+').next().unwrap_or_default();
        let parts: Vec<&str> = version.split('.').collect();
        assert!(
            parts.len() == 3
                && parts[0] == "3"
                && parts[1] == "5"
                && parts[2].parse::<u32>().is_ok(),
            "version {:?} is not 3.5.x",
            row[2]
        );
        assert!(
            row[3].ends_with(" B") || row[3].ends_with(" kB") || row[3].ends_with(" MB"),
            "db size {:?}",
            row[3]
        );
        assert!(row[4] == "true" || row[4] == "false");
        assert_eq!(row[5], "false", "is learner");
        let term: u64 = row[6].parse().expect("a raft term");
        let index: u64 = row[7].parse().expect("a raft index");
        let applied: u64 = row[8].parse().expect("a raft applied index");
        assert!(term >= 1, "term {term}");
        assert!(
            index >= 1 && applied >= 1,
            "index {index}, applied {applied}"
        );
        assert_eq!(row[9], "", "errors");
    }
    let leader_row = rows.iter().find(|r| r[4] == "true").unwrap();
    let leader_id = u64::from_str_radix(&leader_row[1], 16).unwrap();
    let named = eventually(SETTLE_TIMEOUT, || {
        let json = ctl.ok(&["endpoint", "status", "-w", "json"]);
        let leaders = json_numbers(&json, "leader");
        (leaders.len() == 3 && leaders.iter().all(|&l| l == leader_id)).then_some(())
    });
    assert!(named.is_some(), "members disagree on the leader");

    // The simple format: the same cells, comma-separated.
    let simple = ctl.ok(&["endpoint", "status"]);
    assert_eq!(simple.lines().count(), 3, "{simple}");
    for (line, p) in simple.lines().zip(procs) {
        assert!(
            line.starts_with(&format!("{}, {}, ", p.endpoint(), id_of(&p.name))),
            "{line}"
        );
    }

    // endpoint health goes to stderr, one line per endpoint, in whatever order they answer.
    let (ok, stdout, stderr) = etcdctl(&ctl.endpoints(), &["endpoint", "health"], None);
    assert!(ok, "endpoint health failed:\n{stderr}");
    assert_eq!(stdout, "");
    let mut lines: Vec<&str> = stderr.lines().collect();
    lines.sort();
    let mut endpoints: Vec<String> = procs.iter().map(|p| p.endpoint()).collect();
    endpoints.sort();
    assert_eq!(lines.len(), 3, "{stderr}");
    for (line, endpoint) in lines.iter().zip(&endpoints) {
        let prefix = format!("{endpoint} is healthy: successfully committed proposal: took = ");
        assert!(line.starts_with(&prefix), "{line:?} in\n{stderr}");
        let took = &line[prefix.len()..];
        assert!(took.ends_with('s'), "a duration: {took:?}");
    }
    let table = ctl.ok(&["endpoint", "health", "-w", "table"]);
    let mut rows = parse_table(&table, &["ENDPOINT", "HEALTH", "TOOK", "ERROR"]);
    rows.sort();
    assert_eq!(rows.len(), 3);
    for (row, endpoint) in rows.iter().zip(&endpoints) {
        assert_eq!(
            (&row[0], row[1].as_str(), row[3].as_str()),
            (endpoint, "true", "")
        );
    }
}

#[test]
fn member_list_and_endpoint_status_raft() {
    cluster_commands(ENGINES[0]);
}

#[test]
fn member_list_and_endpoint_status_multipaxos() {
    cluster_commands(ENGINES[1]);
}
