//! A three-member Raft cluster in memory: elect a leader, replicate commands, crash the leader,
//! elect another, and show that nothing committed was lost.
//!
//! Run: `cargo run --release -p synod-raft --example cluster`

use bytes::Bytes;
use synod_raft::cluster::Cluster;

fn status_line(cluster: &Cluster) {
    for id in cluster.ids() {
        let member = cluster.member(id);
        match &member.node {
            Some(node) => {
                let s = node.status();
                println!(
                    "  member {id}: {:<13} term {:>2}  leader {:<7} last {:>3}  commit {:>3}  applied {:>3}",
                    s.soft_state.role.to_string(),
                    s.soft_state.term,
                    s.soft_state
                        .leader
                        .map_or("-".to_string(), |l| l.to_string()),
                    s.last_index,
                    s.commit,
                    s.applied,
                );
            }
            None => println!("  member {id}: crashed"),
        }
    }
}

fn main() {
    let mut cluster = Cluster::new(3, 42);
    let leader = cluster
        .run_until_leader(1_000)
        .expect("a leader is elected");
    println!("elected member {leader}:");
    status_line(&cluster);

    for i in 0..20u32 {
        let command = Bytes::from(format!("set k{i}={i}"));
        cluster
            .node_mut(leader)
            .propose(command)
            .expect("the leader accepts proposals");
    }
    cluster.deliver_all(100_000);
    cluster.run_ticks(10);
    println!("\nreplicated 20 commands:");
    status_line(&cluster);

    cluster.crash(leader);
    let next = cluster
        .run_until_leader(1_000)
        .expect("the survivors elect a leader");
    println!("\ncrashed member {leader}; member {next} took over:");
    status_line(&cluster);

    cluster
        .node_mut(next)
        .propose(Bytes::from_static(b"set after=crash"))
        .expect("leader");
    cluster.restart(leader);
    cluster.run_ticks(30);
    println!("\nrestarted member {leader}; it caught up:");
    status_line(&cluster);

    cluster.check_state_machine_safety();
    let commands = cluster.applied_commands(leader);
    println!(
        "\nmember {leader} applied {} commands, the last one {:?}",
        commands.len(),
        String::from_utf8_lossy(commands.last().expect("commands were applied"))
    );
}
