//! When a connection accepted from the leader ends, the transport tells the engine, and the
//! follower campaigns without waiting out its election timeout.
//!
//! Member `a` (id 1) runs for real; member `b` (id 2) is played by the test: it connects, says
//! hello, sends one heartbeat as the leader of term 5, and hangs up. The election timeout is
//! set to 5 s (the most the flags allow for a 100 ms heartbeat), so `a` cannot campaign on its
//! own timer within the 4 s this test waits.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use synod_core::Role;
use synod_raft::{Message, MessageKind};
use synod_server::transport::Frame;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

mod common;

/// Well under the 5 s minimum election timeout.
const WAIT: Duration = Duration::from_secs(4);

/// `a`'s timing: the longest election timeout the flags allow for a 100 ms heartbeat.
fn settings(dir: &std::path::Path) -> synod_server::settings::Settings {
    common::settings(dir, Duration::from_millis(100), Duration::from_millis(5000))
}

fn frame(frame: &Frame<Message>) -> Bytes {
    Bytes::from(synod_core::wire::encode(frame))
}

async fn wait_for(
    member: &synod_server::Member,
    what: &str,
    done: impl Fn(&synod_server::node::NodeStatus) -> bool,
) {
    let started = Instant::now();
    let mut status = member.handle().status.clone();
    while !done(&status.borrow_and_update()) {
        assert!(
            started.elapsed() < WAIT,
            "{what}: not within {WAIT:?}; status {:?}",
            *status.borrow()
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), status.changed()).await;
    }
}

#[tokio::test]
async fn a_follower_whose_connection_from_the_leader_closes_campaigns_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let cluster_id = s.cluster_id();
    let member = synod_server::start(s).await.unwrap();

    let stream = TcpStream::connect(member.peer_addr).await.unwrap();
    let mut conn = Framed::new(stream, LengthDelimitedCodec::new());
    let hello = Frame::Hello {
        token: "token-1".into(),
        cluster_id,
        from: 2,
        to: 1,
        client_urls: vec![],
    };
    conn.send(frame(&hello)).await.unwrap();
    let welcome = conn.next().await.expect("an answer").expect("a frame");
    assert!(matches!(
        synod_core::wire::decode::<Frame<Message>>(&welcome),
        Ok(Frame::Welcome { .. })
    ));
    let heartbeat = Frame::Message(Message {
        term: 5,
        kind: MessageKind::Heartbeat {
            commit: 0,
            round: 0,
        },
    });
    conn.send(frame(&heartbeat)).await.unwrap();
    wait_for(&member, "following member 2", |s| {
        s.leader == Some(2) && s.term == 5 && s.role == Some(Role::Follower)
    })
    .await;

    drop(conn);
    wait_for(&member, "campaigning once member 2 hung up", |s| {
        s.leader.is_none() && s.role == Some(Role::PreCandidate)
    })
    .await;

    member.stopper().stop();
    member.wait().await.unwrap();
}
