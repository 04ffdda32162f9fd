//! The `synod` command line: version, bad flags and config values, the data-directory lock,
//! settings from the environment and a TOML file, clean shutdown on SIGTERM, and `synod dev`
//! resuming from its data.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, etcdctl, eventually, free_port, wait_ready};

fn synod() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_synod"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SYNOD_") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs synod to completion (it must exit by itself within 20 s).
fn run(command: &mut Command) -> (i32, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("synod starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("synod did not exit by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_prints_the_package_version() {
    let (code, out, _) = run(synod().arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("synod {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_flags_and_values_get_a_clear_message_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["serve", "--no-such-flag"], "--no-such-flag"),
        (
            &["serve", "--data-dir", data, "--heartbeat-interval", "ten"],
            "heartbeat-interval",
        ),
        (
            &[
                "serve",
                "--data-dir",
                data,
                "--initial-cluster-state",
                "old",
            ],
            "--initial-cluster-state",
        ),
        (
            &["serve", "--data-dir", data, "--engine", "zab"],
            "--engine",
        ),
        (
            &[
                "serve",
                "--data-dir",
                data,
                "--listen-client-urls",
                "localhost:2379",
            ],
            "--listen-client-urls",
        ),
        (
            &[
                "serve",
                "--data-dir",
                data,
                "--name",
                "x",
                "--initial-cluster",
                "a=http://127.0.0.1:1",
            ],
            "not one of the members",
        ),
        (
            &[
                "serve",
                "--data-dir",
                data,
                "--heartbeat-interval",
                "100",
                "--election-timeout",
                "200",
            ],
            "--election-timeout",
        ),
        (
            &["serve", "--data-dir", data, "--snapshot-count", "0"],
            "--snapshot-count",
        ),
        (&["--log-level", "loud[", "serve"], "--log-level"),
    ];
    for (args, expect) in cases {
        let (code, _, err) = run(synod().args(*args));
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(
            err.contains(expect),
            "{args:?}: the message should mention {expect:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
    assert!(
        !std::path::Path::new(data).join("member").exists(),
        "a refused start wrote nothing"
    );
}

#[test]
fn a_config_file_and_the_environment_supply_settings_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("synod.toml");
    // An unknown key is refused, naming the key.
    std::fs::write(&config, "name = \"a\"\nheartbeat-intervall = 100\n").unwrap();
    let (code, _, err) = run(synod().arg("serve").arg("--config-file").arg(&config));
    assert_ne!(code, 0);
    assert!(err.contains("heartbeat-intervall"), "{err}");

    // A bad value in the file is refused through the same validation as a flag.
    std::fs::write(&config, "election-timeout = 10\n").unwrap();
    let (code, _, err) = run(synod().arg("serve").arg("--config-file").arg(&config));
    assert_ne!(code, 0);
    assert!(err.contains("--election-timeout"), "{err}");

    // The file names the member, the environment its engine, a flag overrides the file's
    // data directory; the member comes up with all three.
    let (client, peer) = (free_port(), free_port());
    let data = dir.path().join("from-flag");
    std::fs::write(
        &config,
        format!(
            "name = \"solo\"\ndata-dir = \"{}\"\nlisten-client-urls = \"http://127.0.0.1:{client}\"\nlisten-peer-urls = \"http://127.0.0.1:{peer}\"\n",
            dir.path().join("from-file").display()
        ),
    )
    .unwrap();
    let mut child = synod()
        .arg("serve")
        .arg("--config-file")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("SYNOD_ENGINE", "multipaxos")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("127.0.0.1:{client}");
    let up = eventually(Duration::from_secs(20), || {
        etcdctl(&endpoint, &["put", "k", "v"], None).0.then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(up.is_some(), "the configured member did not serve");
    let identity = std::fs::read_to_string(data.join("member/identity")).unwrap();
    assert!(identity.contains("engine=multipaxos"), "{identity}");
    assert!(!dir.path().join("from-file").exists());
}

#[test]
fn a_second_process_on_the_same_data_directory_is_refused() {
    let mut cluster = Cluster::start(1, "raft", &[]);
    wait_ready(&cluster);
    let p = &cluster.procs[0];
    let (code, _, err) = run(synod()
        .arg("serve")
        .arg("--name")
        .arg(&p.name)
        .arg("--data-dir")
        .arg(&p.data_dir)
        .arg("--listen-client-urls")
        .arg(format!("http://127.0.0.1:{}", free_port()))
        .arg("--listen-peer-urls")
        .arg(format!("http://127.0.0.1:{}", free_port()))
        .arg("--initial-cluster")
        .arg(&cluster.initial_cluster)
        .arg("--initial-cluster-token")
        .arg("synod-test"));
    assert_ne!(code, 0);
    assert!(err.contains("in use by another synod process"), "{err}");
    // The first member is unharmed.
    let (ok, out, _) = etcdctl(&cluster.endpoints(), &["get", "__ready"], None);
    assert!(ok);
    assert_eq!(out, "__ready\n1\n");
    cluster.kill(0);
}

#[test]
fn sigterm_stops_members_cleanly_and_they_resume_from_their_data() {
    for engine in ["raft", "multipaxos"] {
        let mut cluster = Cluster::start(3, engine, &[]);
        wait_ready(&cluster);
        let endpoints = cluster.endpoints();
        for i in 0..20 {
            let (ok, _, err) = etcdctl(&endpoints, &["put", &format!("k{i:02}"), "v"], None);
            assert!(ok, "{err}");
        }
        for i in 0..3 {
            assert!(
                cluster.terminate(i),
                "{engine}: member {i} did not exit cleanly on SIGTERM\n{}",
                cluster.logs()
            );
        }
        for i in 0..3 {
            cluster.spawn(i);
        }
        wait_ready(&cluster);
        let (ok, out, err) = etcdctl(
            &cluster.endpoints(),
            &["get", "k", "--prefix", "--keys-only"],
            None,
        );
        assert!(ok, "{err}");
        let keys: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(keys.len(), 20, "{engine}: {out}");
    }
}

#[test]
fn dev_starts_three_members_prints_the_endpoints_and_resumes_from_its_data() {
    // `synod dev` uses etcd's fixed ports.
    for port in [2379, 22379, 32379, 2380, 22380, 32380] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is busy; this test needs etcd's local-cluster ports free"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev-data");
    for round in 0..2 {
        let mut child = synod()
            .arg("dev")
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoints = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379";
        let up = eventually(Duration::from_secs(20), || {
            etcdctl(endpoints, &["put", &format!("round{round}"), "x"], None)
                .0
                .then_some(())
        });
        let (ok, out, _) = etcdctl(
            endpoints,
            &["get", "round", "--prefix", "--keys-only"],
            None,
        );
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = {
            use std::io::Read;
            let mut text = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        };
        assert!(up.is_some(), "round {round}: dev never served\n{stdout}");
        assert!(
            status.is_some_and(|s| s.success()),
            "Ctrl-C did not stop dev cleanly"
        );
        assert!(
            stdout.contains("etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"),
            "{stdout}"
        );
        assert!(ok);
        let expected: String = (0..=round).map(|r| format!("round{r}\n\n")).collect();
        assert_eq!(
            out, expected,
            "round {round}: the earlier round's data is kept"
        );
    }
}
