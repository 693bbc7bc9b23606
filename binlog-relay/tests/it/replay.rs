//! Checkpoints, restarts and replays.

use std::collections::BTreeMap;

use binlog_relay::RunOptions;
use binlog_relay::position::StartFrom;

use crate::helpers::{Env, Msg, consume_until};

fn ids(msgs: &[Msg]) -> BTreeMap<i64, usize> {
    let mut count = BTreeMap::new();
    for m in msgs {
        if let Some(id) = m
            .value
            .as_ref()
            .and_then(|v| v["after"]["owner_id"].as_i64())
        {
            *count.entry(id).or_insert(0) += 1;
        }
    }
    count
}

async fn insert_counters(env: &Env, range: std::ops::Range<i64>) {
    for id in range {
        env.exec(&format!(
            "INSERT INTO counter (owner_id, kind, value, updated_at) VALUES ({id}, 1, {id}, NOW(6))"
        ))
        .await;
    }
}

#[tokio::test]
async fn a_restart_resumes_from_the_checkpoint_and_loses_nothing() {
    let env = Env::new().await;
    env.create_topics(&["counter"]).await;
    let topic = env.topic("counter");

    let relay = env.start(RunOptions::default()).await;
    insert_counters(&env, 0..30).await;
    consume_until(&env, std::slice::from_ref(&topic), "first 30 rows", |m| {
        ids(m).len() >= 30
    })
    .await;
    relay.stop().await.expect("clean stop");
    let saved =
        std::fs::read_to_string(env.state_dir.join("checkpoint.json")).expect("checkpoint written");
    assert!(saved.contains("\"changes\": 30"), "{saved}");

    // Written while the relay is down.
    insert_counters(&env, 30..60).await;
    let relay = env.start(RunOptions::default()).await;
    insert_counters(&env, 60..70).await;
    let msgs = consume_until(&env, std::slice::from_ref(&topic), "all 70 rows", |m| {
        ids(m).len() >= 70
    })
    .await;
    let count = ids(&msgs);
    assert_eq!(
        count.keys().copied().collect::<Vec<_>>(),
        (0..70).collect::<Vec<_>>()
    );
    assert!(
        count.values().all(|n| *n == 1),
        "a clean stop re-emits nothing: {count:?}"
    );
    let seqs: Vec<u64> = msgs.iter().map(Msg::seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers continue across restarts"
    );

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

#[tokio::test]
async fn from_a_recorded_position_re_emits_exactly_the_changes_after_it() {
    let env = Env::new().await;
    env.create_topics(&["counter"]).await;
    insert_counters(&env, 0..5).await;
    let mark = env.binlog_end().await;
    insert_counters(&env, 5..10).await;

    let from: StartFrom = mark.parse().expect("position");
    let relay = env
        .start(RunOptions {
            from: Some(from),
            ..RunOptions::default()
        })
        .await;
    let topic = env.topic("counter");
    // A marker row written later bounds the wait: everything before it is in.
    insert_counters(&env, 100..101).await;
    let msgs = consume_until(
        &env,
        std::slice::from_ref(&topic),
        "rows 5..10 and the marker",
        |m| ids(m).contains_key(&100),
    )
    .await;
    let count = ids(&msgs);
    assert_eq!(
        count.keys().copied().collect::<Vec<_>>(),
        [5, 6, 7, 8, 9, 100],
        "exactly the changes after the position"
    );
    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

#[tokio::test]
async fn purged_and_non_boundary_positions_are_refused_clearly() {
    let env = Env::new().await;
    let end = env.binlog_end().await;
    let (file, _) = end.rsplit_once(':').unwrap();

    let purged: StartFrom = "mysql-bin.999999:4".parse().unwrap();
    let e = binlog_relay::Application::build(
        env.settings(),
        RunOptions {
            from: Some(purged),
            ..RunOptions::default()
        },
    )
    .await
    .err()
    .expect("refused");
    assert!(e.to_string().contains("not on the server"), "{e}");

    // Offset 5 is inside the format description event.
    let inside: StartFrom = format!("{file}:5").parse().unwrap();
    let e = binlog_relay::Application::build(
        env.settings(),
        RunOptions {
            from: Some(inside),
            ..RunOptions::default()
        },
    )
    .await
    .err()
    .expect("refused");
    assert!(e.to_string().contains("not an event boundary"), "{e}");
    env.cleanup().await;
}
