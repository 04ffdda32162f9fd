//! The peer transport refuses a member with the wrong cluster token, another cluster's id, an
//! unknown member id, or a frame that is not a hello; and it survives garbage.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use synod_server::transport::Frame;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

mod common;

/// `a`'s timing: fast, so that the tests are quick.
fn settings(dir: &std::path::Path) -> synod_server::settings::Settings {
    common::settings(dir, Duration::from_millis(20), Duration::from_millis(200))
}

async fn hello(addr: std::net::SocketAddr, frame: Frame<synod_raft::Message>) -> Option<String> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut conn = Framed::new(stream, LengthDelimitedCodec::new());
    conn.send(Bytes::from(synod_core::wire::encode(&frame)))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .expect("an answer, not a hang")?
        .ok()?;
    match synod_core::wire::decode::<Frame<synod_raft::Message>>(&reply).ok()? {
        Frame::Refused { reason } => Some(format!("refused: {reason}")),
        Frame::Welcome { .. } => Some("welcome".into()),
        _ => Some("other".into()),
    }
}

#[tokio::test]
async fn the_handshake_refuses_strangers_and_welcomes_members() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let cluster_id = s.cluster_id();
    let member = synod_server::start(s).await.unwrap();
    let addr = member.peer_addr;
    let good = |token: &str, cluster_id: u64, from: u64, to: u64| Frame::Hello {
        token: token.into(),
        cluster_id,
        from,
        to,
        client_urls: vec![],
    };
    let answer = hello(addr, good("token-2", cluster_id, 2, 1))
        .await
        .unwrap();
    assert!(answer.contains("cluster token mismatch"), "{answer}");
    let answer = hello(addr, good("token-1", cluster_id ^ 1, 2, 1))
        .await
        .unwrap();
    assert!(answer.contains("cluster id mismatch"), "{answer}");
    let answer = hello(addr, good("token-1", cluster_id, 7, 1))
        .await
        .unwrap();
    assert!(answer.contains("not a member"), "{answer}");
    let answer = hello(addr, good("token-1", cluster_id, 2, 3))
        .await
        .unwrap();
    assert!(answer.contains("not member 3"), "{answer}");
    // Not a hello first: the connection is closed without an answer.
    assert_eq!(hello(addr, Frame::SnapshotEnd).await, None);
    // Garbage: closed too.
    {
        use tokio::io::AsyncWriteExt;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&[0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])
            .await
            .unwrap();
        let mut conn = Framed::new(stream, LengthDelimitedCodec::new());
        let next = tokio::time::timeout(Duration::from_secs(5), conn.next())
            .await
            .expect("closed, not hung");
        assert!(next.is_none() || next.is_some_and(|r| r.is_err()));
    }
    // A real member is welcome.
    assert_eq!(
        hello(addr, good("token-1", cluster_id, 2, 1))
            .await
            .as_deref(),
        Some("welcome")
    );
    member.stopper().stop();
    member.wait().await.unwrap();
}
