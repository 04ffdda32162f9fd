use synod_raft::cluster::Cluster;

#[test]
fn three_members_elect_and_replicate() {
    let mut c = Cluster::new(3, 1);
    let leader = c.run_until_leader(200).expect("a leader");
    for _ in 0..10 {
        c.propose(leader, b"hello").unwrap();
    }
    c.deliver_all(10_000);
    c.run_ticks(10);
    for id in c.ids() {
        assert_eq!(c.applied_commands(id).len(), 10, "node {id}");
    }
    c.check_state_machine_safety();
}
