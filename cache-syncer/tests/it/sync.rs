use cdc_event::Op;
use redis::AsyncCommands;
use serde_json::json;

use crate::harness::{Harness, T1, T1_US, T2};

fn follow_row(
    id: u64,
    from: u64,
    to: u64,
    created: &str,
    deleted: Option<&str>,
) -> serde_json::Value {
    json!({"id": id, "from_id": from, "to_id": to, "created_at": created, "deleted_at": deleted})
}

fn counter_row(owner: u64, kind: u8, value: i64) -> serde_json::Value {
    json!({"owner_id": owner, "kind": kind, "value": value, "updated_at": T1})
}

#[tokio::test]
async fn follow_and_counter_events_converge_redis_and_user_columns() {
    let mut h = Harness::new().await;
    h.add_users(3).await;
    let (mut syncer, status) = h.syncer().await;

    // The rows the changes come from (the user columns are read from them),
    // committed before their changes are streamed, as in MySQL: the syncer
    // runs in the background and may apply a change as soon as it is sent.
    h.set_counter(1, 1, 1).await;
    h.set_counter(2, 2, 1).await;
    let e = h.event(
        "follow",
        Op::Create,
        None,
        Some(follow_row(1, 1, 2, T1, None)),
    );
    h.send(r#"{"id":1}"#, &e, None).await;
    let e = h.event("counter", Op::Create, None, Some(counter_row(1, 1, 1)));
    h.send(r#"{"owner_id":1}"#, &e, None).await;
    let e = h.event("counter", Op::Create, None, Some(counter_row(2, 2, 1)));
    h.send(r#"{"owner_id":2}"#, &e, None).await;
    h.drain(&mut syncer, 3).await;

    let keys = h.settings.redis.keys();
    let mut r = h.redis.conn.clone();
    let slot = keys.counter(2, 2);
    assert_eq!(
        r.hget::<_, _, Option<i64>>(&slot.key, slot.field)
            .await
            .unwrap(),
        Some(1)
    );
    let following: Vec<(u64, i64)> = r.zrange_withscores(keys.following(1), 0, -1).await.unwrap();
    assert_eq!(following, [(2, T1_US)]);
    let followers: Vec<u64> = r.zrange(keys.followers(2), 0, -1).await.unwrap();
    assert_eq!(followers, [1]);
    let cols: (u64, u64) =
        sqlx::query_as("SELECT follow_count, follower_count FROM user WHERE id = 1")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(cols, (1, 0));
    let frc: u64 = sqlx::query_scalar("SELECT follower_count FROM user WHERE id = 2")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(frc, 1);

    // Unfollow: soft delete and counters back to 0.
    h.set_counter(2, 2, 0).await;
    let e = h.event(
        "follow",
        Op::Update,
        Some(follow_row(1, 1, 2, T1, None)),
        Some(follow_row(1, 1, 2, T1, Some(T2))),
    );
    h.send(r#"{"id":1}"#, &e, None).await;
    let e = h.event(
        "counter",
        Op::Update,
        Some(counter_row(2, 2, 1)),
        Some(counter_row(2, 2, 0)),
    );
    h.send(r#"{"owner_id":2}"#, &e, None).await;
    h.drain(&mut syncer, 2).await;
    let followers: Vec<u64> = r.zrange(keys.followers(2), 0, -1).await.unwrap();
    assert!(followers.is_empty());
    assert_eq!(
        r.hget::<_, _, Option<i64>>(&slot.key, slot.field)
            .await
            .unwrap(),
        Some(0)
    );
    let frc: u64 = sqlx::query_scalar("SELECT follower_count FROM user WHERE id = 2")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(frc, 0);
    assert_eq!(status.lock().unwrap().events_applied, 5);
    syncer.stop().await;
}

#[tokio::test]
async fn lists_keep_only_the_newest_entries() {
    let mut h = Harness::new().await;
    let (mut syncer, _) = h.syncer().await;
    for i in 0..5u64 {
        let at = format!("2026-11-26T10:00:0{i}.000000");
        let e = h.event(
            "follow",
            Op::Create,
            None,
            Some(follow_row(10 + i, 100 + i, 7, &at, None)),
        );
        h.send(&format!(r#"{{"id":{}}}"#, 10 + i), &e, None).await;
    }
    h.drain(&mut syncer, 5).await;
    let mut r = h.redis.conn.clone();
    let followers: Vec<u64> = r
        .zrevrange(h.settings.redis.keys().followers(7), 0, -1)
        .await
        .unwrap();
    assert_eq!(followers, [104, 103, 102], "cap of 3 keeps the newest");
}

#[tokio::test]
async fn duplicated_and_redelivered_messages_leave_redis_unchanged() {
    let mut h = Harness::new().await;
    h.add_users(2).await;
    let (mut syncer, status) = h.syncer().await;
    let e = h.event(
        "follow",
        Op::Create,
        None,
        Some(follow_row(1, 1, 2, T1, None)),
    );
    let s1 = h.send(r#"{"id":1}"#, &e, None).await;
    let c = h.event("counter", Op::Create, None, Some(counter_row(2, 2, 1)));
    let s2 = h.send(r#"{"owner_id":2}"#, &c, None).await;
    h.drain(&mut syncer, 2).await;
    let before = h.redis_state().await;

    // Copies of older changes again (a relay's duplicate or replay carries
    // the number the change had the first time, below what was applied).
    h.send(r#"{"id":1}"#, &e, Some(s1 - 1)).await;
    h.send(r#"{"owner_id":2}"#, &c, Some(s2 - 1)).await;
    h.drain(&mut syncer, 2).await;
    assert_eq!(
        status.lock().unwrap().events_skipped,
        2,
        "old seqs are skipped"
    );
    assert_eq!(h.redis_state().await, before);

    // Redelivery to a fresh group member that re-applies on purpose.
    syncer.stop().await;
    h.settings.group_id = format!("{}-again", h.settings.group_id);
    h.settings.reapply = true;
    let (mut again, st) = h.syncer().await;
    h.drain(&mut again, 4).await;
    assert_eq!(st.lock().unwrap().events_applied, 4);
    assert_eq!(
        h.redis_state().await,
        before,
        "re-applying everything changes nothing"
    );
}

#[tokio::test]
async fn replaying_a_partition_twice_leaves_redis_unchanged() {
    let mut h = Harness::new().await;
    h.add_users(4).await;
    let (mut syncer, _) = h.syncer().await;
    let mut n = 0;
    for (id, from, to) in [(1u64, 1u64, 2u64), (2, 3, 2), (3, 2, 4)] {
        let e = h.event(
            "follow",
            Op::Create,
            None,
            Some(follow_row(id, from, to, T1, None)),
        );
        h.send(&format!(r#"{{"id":{id}}}"#), &e, None).await;
        n += 1;
    }
    let e = h.event(
        "follow",
        Op::Update,
        Some(follow_row(2, 3, 2, T1, None)),
        Some(follow_row(2, 3, 2, T1, Some(T2))),
    );
    h.send(r#"{"id":2}"#, &e, None).await;
    n += 1;
    h.drain(&mut syncer, n).await;
    syncer.stop().await;
    let before = h.redis_state().await;

    h.settings.reapply = true;
    for round in 0..2 {
        h.settings.group_id = format!("{}-replay{round}", h.kafka.group);
        let (mut s, _) = h.syncer().await;
        h.drain(&mut s, n).await;
        s.stop().await;
        assert_eq!(
            h.redis_state().await,
            before,
            "replay {round} changed redis"
        );
    }
}

#[tokio::test]
async fn a_poison_message_lands_in_the_dlq_and_the_stream_goes_on() {
    let mut h = Harness::new().await;
    h.add_users(2).await;
    let (mut syncer, status) = h.syncer().await;
    let topic = h.topic("counter");
    h.send_raw(&topic, r#"{"owner_id":1}"#, Some(b"{not json"), Some(1))
        .await;
    let bad = h.event(
        "counter",
        Op::Create,
        None,
        Some(json!({"owner_id": "x", "kind": 1, "value": 1})),
    );
    h.send(r#"{"owner_id":9}"#, &bad, Some(2)).await;
    // A tombstone is skipped, not dead-lettered.
    h.send_raw(&topic, r#"{"owner_id":1}"#, None, None).await;
    h.seq = 2;
    let good = h.event("counter", Op::Create, None, Some(counter_row(1, 1, 1)));
    h.send(r#"{"owner_id":1}"#, &good, None).await;
    h.drain(&mut syncer, 4).await;

    assert_eq!(counter_in_redis(&h, 1, 1).await, Some(1));
    assert_eq!(status.lock().unwrap().dead_lettered, 2);

    let reasons = dead_letter_reasons(&h, 2).await;
    assert!(reasons[0].contains("invalid envelope"), "{reasons:?}");
    assert!(reasons[1].contains("owner_id"), "{reasons:?}");
}

#[tokio::test]
async fn schema_changes_leave_the_syncer_alone_unless_a_column_it_reads_is_gone() {
    let mut h = Harness::new().await;
    h.add_users(1).await;
    let (mut syncer, status) = h.syncer().await;
    // A column added to `counter` (ALTER TABLE … ADD COLUMN): applied as before.
    let mut row = counter_row(1, 1, 5);
    row["note"] = json!("added later");
    let wider = h.event("counter", Op::Create, None, Some(row));
    h.send(r#"{"owner_id":1}"#, &wider, None).await;
    // `value` dropped (ALTER TABLE … DROP COLUMN): dead-lettered, named.
    let narrower = h.event(
        "counter",
        Op::Update,
        None,
        Some(json!({"owner_id": 1, "kind": 1, "updated_at": T1})),
    );
    h.send(r#"{"owner_id":1}"#, &narrower, None).await;
    // TRUNCATE's `t` event: dead-lettered with what to do.
    let truncate = h.event("follow", Op::Truncate, None, None);
    h.send("", &truncate, None).await;
    h.drain(&mut syncer, 3).await;

    assert_eq!(counter_in_redis(&h, 1, 1).await, Some(5));
    assert_eq!(status.lock().unwrap().dead_lettered, 2);
    let reasons = dead_letter_reasons(&h, 2).await;
    assert!(
        reasons[0].contains("TRUNCATE of follow") && reasons[0].contains("rebuild"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("column value missing"), "{reasons:?}");
}

#[tokio::test]
async fn watermark_follows_relay_heartbeats_once_partitions_are_drained() {
    let mut h = Harness::new().await;
    h.add_users(3).await;
    let (mut syncer, status) = h.syncer().await;
    let mut last = 0;
    for (id, from, to) in [(1u64, 1u64, 2u64), (2, 2, 3), (3, 3, 1)] {
        let e = h.event(
            "follow",
            Op::Create,
            None,
            Some(follow_row(id, from, to, T1, None)),
        );
        last = h.send(&format!(r#"{{"id":{id}}}"#), &e, None).await;
    }
    // The relay's heartbeat: its acknowledged position and where the
    // messages up to it landed (`acked_offsets`, as the relay sends them).
    let beat = json!({"ts_ms": 0, "pos": "mysql-bin.000001:4", "gtid": "0-1-3", "seq": last,
                      "acked_seq": last, "acked_gtid": "0-1-3",
                      "acked_offsets": h.acked_offsets()});
    h.drain(&mut syncer, 3).await;
    h.send_heartbeat(&beat).await;
    // Applied partitions turn the heartbeat into the watermark (poll, no sleep).
    let w = testkit::eventually(
        std::time::Duration::from_secs(30),
        "watermark never reached the heartbeat",
        || async { status.lock().unwrap().watermark.clone() },
    )
    .await;
    assert_eq!((w.seq, w.gtid.as_deref()), (last, Some("0-1-3")));
    let mut r = h.redis.conn.clone();
    let stored: std::collections::HashMap<String, String> = r
        .hgetall(h.settings.redis.keys().watermark())
        .await
        .unwrap();
    assert_eq!(stored.get("gtid").map(String::as_str), Some("0-1-3"));
    assert_eq!(stored.get("seq"), Some(&last.to_string()));
}

#[tokio::test]
async fn a_batch_whose_mysql_half_fails_records_no_progress_and_applies_on_redelivery() {
    use cache_syncer::apply::{Progress, Record};
    use cache_syncer::plan::Effect;
    let h = Harness::new().await;
    h.add_users(1).await;
    h.set_counter(1, 2, 5).await;
    let applier = h.applier().await;
    let effects = [Effect::SetCounter {
        owner: 1,
        kind: 2,
        value: 5,
    }];
    let mut progress = Progress::new();
    progress.insert("topic/0".into(), 7);
    let progress = Record::seqs(progress);
    let mut conn = h.redis.conn.clone();
    let applied_key = applier.keys.syncer_applied();
    // The counter columns cannot be written while the table is away.
    sqlx::query("RENAME TABLE user TO user_away")
        .execute(&h.db.pool)
        .await
        .unwrap();
    assert!(applier.apply(&effects, &progress).await.is_err());
    let applied: Option<u64> = conn.hget(&applied_key, "topic/0").await.unwrap();
    assert_eq!(
        applied, None,
        "progress recorded although the batch did not reach MySQL: a redelivery would skip it"
    );
    sqlx::query("RENAME TABLE user_away TO user")
        .execute(&h.db.pool)
        .await
        .unwrap();
    // The redelivered batch applies and is recorded.
    applier.apply(&effects, &progress).await.unwrap();
    let slot = applier.keys.counter(2, 1);
    let cached: Option<i64> = conn.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(cached, Some(5));
    let applied: Option<u64> = conn.hget(&applied_key, "topic/0").await.unwrap();
    assert_eq!(applied, Some(7));
    let column: i64 =
        sqlx::query_scalar("SELECT CAST(follower_count AS SIGNED) FROM user WHERE id = 1")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(column, 5);
}

#[tokio::test]
async fn replayed_older_changes_behind_newer_ones_never_roll_a_counter_back() {
    // The running syncer decodes the next batch while the previous one is
    // being applied; a replayed older change must be skipped even when the
    // newer one is still in flight or in the same batch.
    let mut h = Harness::new().await;
    h.add_users(2).await;
    // MySQL's counter row as the last change leaves it: the user columns
    // are computed from it.
    h.set_counter(2, 2, 4).await;
    let key = r#"{"owner_id":2}"#;
    let mut seqs = Vec::new();
    for value in 1..=3 {
        let c = h.event("counter", Op::Create, None, Some(counter_row(2, 2, value)));
        seqs.push((h.send(key, &c, None).await, c));
    }
    // The relay replays values 1 and 2 with their old seqs, then goes on.
    for (seq, c) in &seqs[..2] {
        h.send(key, c, Some(*seq)).await;
    }
    let c = h.event("counter", Op::Create, None, Some(counter_row(2, 2, 4)));
    let last = h.send(key, &c, None).await;

    let app = cache_syncer::startup::Application::build(h.settings.clone())
        .await
        .expect("syncer builds");
    let status = app.status();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let st = status.lock().unwrap().clone();
        if st.events_applied + st.events_skipped >= 6 {
            assert_eq!(
                (st.events_applied, st.events_skipped),
                (4, 2),
                "the replayed seqs are skipped"
            );
            let applied: Vec<_> = st
                .partitions
                .values()
                .filter_map(|p| p.applied_seq)
                .collect();
            assert_eq!(applied, [last]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "syncer handled only {} of 6 events",
            st.events_applied + st.events_skipped
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap().expect("clean shutdown");
    let slot = h.settings.redis.keys().counter(2, 2);
    let mut r = h.redis.conn.clone();
    let value: Option<i64> = r.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(value, Some(4));
    let frc: u64 = sqlx::query_scalar("SELECT follower_count FROM user WHERE id = 2")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(frc, 4);
}

#[tokio::test]
async fn user_columns_come_from_the_counter_table_so_a_late_batch_cannot_roll_them_back() {
    // A former owner's batch landing after the new owner's carries an older
    // counter value; the columns are read from `counter` inside the UPDATE,
    // so it writes today's value whatever the batch says.
    use cache_syncer::apply::Record;
    use cache_syncer::plan::Effect;
    let h = Harness::new().await;
    h.add_users(3).await;
    h.set_counter(1, 1, 10).await;
    h.set_counter(1, 2, 20).await;
    h.set_counter(2, 2, 7).await;
    let applier = h.applier().await;
    let late = [
        Effect::SetCounter {
            owner: 1,
            kind: 1,
            value: 3,
        },
        Effect::SetCounter {
            owner: 2,
            kind: 2,
            value: 1,
        },
        Effect::SetCounter {
            owner: 99,
            kind: 1,
            value: 1,
        },
    ];
    applier.apply(&late, &Record::default()).await.unwrap();
    let cols = |id: u64| {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT CAST(follow_count AS SIGNED), CAST(follower_count AS SIGNED) FROM user WHERE id = ?",
        )
        .bind(id)
        .fetch_one(&h.db.pool)
    };
    assert_eq!(cols(1).await.unwrap(), (10, 20));
    assert_eq!(cols(2).await.unwrap(), (0, 7), "no counter row counts 0");
    assert_eq!(
        cols(3).await.unwrap(),
        (0, 0),
        "a user not in the batch is left alone"
    );
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(users, 3, "an unknown user is not created");
}

#[tokio::test]
async fn the_user_columns_wait_for_a_writer_still_holding_the_counter_row() {
    // MariaDB sends a transaction down the binlog before its InnoDB commit
    // lets other sessions see it, so the syncer can be applying a change a
    // plain read of `counter` misses. The UPDATE's reads are locking reads:
    // they wait for the transaction holding the row and take what it
    // committed (a plain read would write 5 here at once).
    use cache_syncer::plan::Effect;
    let h = Harness::new().await;
    h.add_users(1).await;
    h.set_counter(1, 1, 5).await;
    let applier = h.applier().await;
    let effects = [Effect::SetCounter {
        owner: 1,
        kind: 1,
        value: 6,
    }];
    apply_while_held(
        &h,
        &applier,
        "UPDATE counter SET value = 6 WHERE owner_id = 1 AND kind = 1",
        &effects,
        "UPDATE user SET%",
    )
    .await;
    let column: i64 =
        sqlx::query_scalar("SELECT CAST(follow_count AS SIGNED) FROM user WHERE id = 1")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(column, 6, "the value the holder committed");
}

/// 2026-11-26T10:00:00 UTC in µs, as the relay renders DATETIME(6): when
/// user 50 follows 60 in the capped-list tests (61, 62 and 63 a second
/// apart after it, 59 a second before).
const AT_60_US: i64 = 1_795_687_200_000_000;

/// The unfollow of 63 (follow row 103, soft deleted) committed in MySQL, as
/// relation-service commits it.
async fn unfollow_63(h: &Harness) {
    sqlx::query("UPDATE follow SET deleted_at = NOW(6) WHERE id = 103")
        .execute(&h.db.pool)
        .await
        .unwrap();
}

/// User 50 follows 60, 61, 62 and 63, a second apart, in MySQL, and their
/// follows are applied: `following:50` holds the newest 3 (list_cap).
async fn following_60_to_63(h: &Harness, applier: &cache_syncer::apply::Applier) {
    use cache_syncer::apply::Record;
    use cache_syncer::plan::Effect;
    let mut adds = Vec::new();
    for (i, to) in [60u64, 61, 62, 63].into_iter().enumerate() {
        sqlx::query("INSERT INTO follow (id, from_id, to_id, created_at) VALUES (?, 50, ?, ?)")
            .bind(100 + i as u64)
            .bind(to)
            .bind(format!("2026-11-26T10:00:0{i}.000000"))
            .execute(&h.db.pool)
            .await
            .unwrap();
        adds.push(Effect::AddEdge {
            from: 50,
            to,
            at_us: AT_60_US + i as i64 * 1_000_000,
        });
    }
    applier.apply(&adds, &Record::default()).await.unwrap();
}

/// Applies `effects` while another transaction holds the rows `held`
/// (an UPDATE) wrote, as when the binlog carries a change MySQL does not
/// show yet. The holder commits only once a statement LIKE `waiting` runs
/// in the test's database (deadline 30 s): the syncer's read is there to
/// wait on it. A read that does not wait finishes at once with the old
/// value, which the caller's assertion then catches.
async fn apply_while_held(
    h: &Harness,
    applier: &cache_syncer::apply::Applier,
    held: &'static str,
    effects: &[cache_syncer::plan::Effect],
    waiting: &str,
) {
    let mut holder = h.db.pool.begin().await.unwrap();
    sqlx::query(held).execute(&mut *holder).await.unwrap();
    let apply = tokio::spawn({
        let (applier, effects) = (applier.clone(), effects.to_vec());
        async move {
            let record = cache_syncer::apply::Record::default();
            applier.apply(&effects, &record).await
        }
    });
    let db = &h.db;
    testkit::eventually(
        std::time::Duration::from_secs(30),
        &format!("a statement LIKE {waiting:?} waiting on the held rows"),
        || async {
            let running: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE DB = ? AND COMMAND IN ('Query', 'Execute') AND INFO LIKE ?",
            )
            .bind(&db.name)
            .bind(waiting)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            (running > 0).then_some(())
        },
    )
    .await;
    holder.commit().await.unwrap();
    apply.await.unwrap().unwrap();
}

/// Polls the syncer's status until `done` holds (deadline: 60 s); returns it.
async fn status_when(
    status: &cache_syncer::consumer::StatusHandle,
    what: &str,
    done: impl Fn(&cache_syncer::consumer::SyncStatus) -> bool,
) -> cache_syncer::consumer::SyncStatus {
    testkit::eventually(std::time::Duration::from_secs(60), what, || async {
        let st = status.lock().unwrap().clone();
        done(&st).then_some(st)
    })
    .await
}

/// The watermark rests on applied positions, never on what was fetched: a
/// heartbeat that covers a consumed change whose apply is held must not move
/// it until that apply is done. Deterministic: each apply waits for a
/// permit of the syncer's test gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_never_moves_the_watermark_past_a_consumed_but_unapplied_change() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    use std::sync::Arc;

    let h = Harness::new().await;
    h.add_users(1).await;
    h.set_counter(1, 1, 7).await;
    let (syncer, status) = h.build_syncer().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let syncer = syncer.with_apply_gate(Arc::clone(&gate));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(syncer.run(async {
        let _ = stopped.await;
    }));

    // M: counter (1, following) = 7, seq 1, on counter/0 (offset 0).
    let counter = h.topic("counter");
    let e = h.event("counter", Op::Create, None, Some(counter_row(1, 1, 7)));
    let payload = serde_json::to_vec(&e).unwrap();
    let delivered = h
        .producer
        .send(
            FutureRecord::<str, [u8]>::to(&counter)
                .partition(0)
                .key(r#"{"owner_id":1}"#)
                .payload(&payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: cdc_event::HEADER_SEQ,
                    value: Some("1"),
                })),
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("produce");
    assert_eq!(
        (delivered.partition, delivered.offset),
        (0, 0),
        "a fresh partition"
    );
    // Consumed into a batch whose apply waits at the gate.
    status_when(&status, "the change consumed", |s| s.events_received >= 1).await;

    // H: the relay's heartbeat saying change seq 1 landed on counter/0
    // before offset 1.
    let beat = json!({"ts_ms": 0, "pos": "mysql-bin.000001:4", "gtid": "0-1-1", "seq": 1,
                      "acked_seq": 1, "acked_gtid": "0-1-1",
                      "acked_offsets": [{"topic": counter, "partition": 0, "next": 1}]});
    h.send_heartbeat(&beat).await;
    let st = status_when(&status, "the heartbeat read", |s| {
        s.watermark.is_some() || s.watermark_pending > 0
    })
    .await;
    assert_eq!(
        st.watermark, None,
        "the watermark covers a change that is consumed but not applied"
    );
    let keys = h.settings.redis.keys();
    let slot = keys.counter(1, 1);
    let mut r = h.redis.conn.clone();
    let value: Option<i64> = r.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(value, None, "M must still be unapplied here");

    // M's batch applies: now the watermark covers it.
    gate.add_permits(1);
    let st = status_when(&status, "the watermark at seq 1", |s| {
        s.watermark.as_ref().map(|w| w.seq) == Some(1)
    })
    .await;
    assert_eq!(st.watermark.unwrap().gtid.as_deref(), Some("0-1-1"));
    let value: Option<i64> = r.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(value, Some(7));

    gate.add_permits(1_000);
    let _ = stop.send(());
    task.await.unwrap().expect("syncer stops cleanly");
    h.kafka.delete_topics().await;
}

/// The first `n` messages of the dead-letter topic: (key, reason).
/// The cached value of `owner`'s counter of `kind`.
async fn counter_in_redis(h: &Harness, owner: u64, kind: u8) -> Option<i64> {
    let keys = h.settings.redis.keys();
    let slot = keys.counter(kind, owner);
    let mut r = h.redis.conn.clone();
    r.hget(&slot.key, slot.field).await.unwrap()
}

/// The reasons of the first `n` dead letters, sorted.
async fn dead_letter_reasons(h: &Harness, n: usize) -> Vec<String> {
    let mut reasons: Vec<String> = dead_letters(h, n)
        .await
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    reasons.sort();
    reasons
}

async fn dead_letters(h: &Harness, n: usize) -> Vec<(String, String)> {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Headers;
    let c: StreamConsumer = h
        .kafka
        .client_config()
        .set("group.id", format!("{}-dlq", h.kafka.group))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[&cdc_event::topic::dlq_topic(&h.kafka.prefix)])
        .unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(std::time::Duration::from_secs(30), c.recv())
            .await
            .expect("dlq message")
            .unwrap();
        let reason = m
            .headers()
            .and_then(|hs| hs.iter().find(|x| x.key == cdc_event::HEADER_DLQ_REASON))
            .and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            .expect("reason header");
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        out.push((key, reason));
    }
    out
}

#[tokio::test]
async fn a_change_redis_cannot_take_goes_to_the_dlq_while_other_follows_converge() {
    let mut h = Harness::new().await;
    h.add_users(4).await;
    let keys = h.settings.redis.keys();
    let mut r = h.redis.conn.clone();
    // A string where user 1's following list (a ZSET) belongs: every write
    // to it fails with WRONGTYPE, however often it is retried.
    let _: () = r.set(keys.following(1), "not a zset").await.unwrap();
    let (mut syncer, status) = h.syncer().await;

    let bad = h.event(
        "follow",
        Op::Create,
        None,
        Some(follow_row(1, 1, 2, T1, None)),
    );
    h.send(r#"{"id":1}"#, &bad, None).await;
    let good = h.event(
        "follow",
        Op::Create,
        None,
        Some(follow_row(2, 3, 4, T1, None)),
    );
    h.send(r#"{"id":2}"#, &good, None).await;
    let count = h.event("counter", Op::Create, None, Some(counter_row(4, 2, 1)));
    h.send(r#"{"owner_id":4}"#, &count, None).await;
    let started = std::time::Instant::now();
    h.drain(&mut syncer, 3).await;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(30),
        "the bad change held the stream for {took:?}"
    );

    let st = status.lock().unwrap().clone();
    assert_eq!((st.dead_lettered, st.events_applied), (1, 2), "{st:?}");
    assert_eq!(st.retrying, None, "nothing is left retrying");
    let followers: Vec<u64> = r.zrange(keys.followers(4), 0, -1).await.unwrap();
    assert_eq!(followers, [3], "the other user's follow is in");
    let slot = keys.counter(2, 4);
    let n: Option<i64> = r.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(n, Some(1));

    let dead = dead_letters(&h, 1).await;
    assert_eq!(dead[0].0, r#"{"id":1}"#);
    assert!(
        dead[0].1.starts_with("apply:") && dead[0].1.contains("WRONGTYPE"),
        "{dead:?}"
    );

    // The stream goes on past it.
    let later = h.event(
        "follow",
        Op::Create,
        None,
        Some(follow_row(3, 2, 4, T2, None)),
    );
    h.send(r#"{"id":3}"#, &later, None).await;
    h.drain(&mut syncer, 1).await;
    let mut followers: Vec<u64> = r.zrange(keys.followers(4), 0, -1).await.unwrap();
    followers.sort();
    assert_eq!(followers, [2, 3]);
}

#[tokio::test]
async fn a_change_marked_as_an_operators_replay_is_applied_again() {
    let mut h = Harness::new().await;
    h.add_users(2).await;
    let (mut syncer, status) = h.syncer().await;
    let key = r#"{"owner_id":2}"#;
    let one = h.event("counter", Op::Create, None, Some(counter_row(2, 2, 1)));
    let two = h.event("counter", Op::Create, None, Some(counter_row(2, 2, 2)));
    let s1 = h.send(key, &one, None).await;
    let s2 = h.send(key, &two, None).await;
    h.drain(&mut syncer, 2).await;

    // An operator replays from before both: the relay marks the changes,
    // and the syncer applies them in order although their numbers are old.
    h.send_replayed(key, &one, s1).await;
    h.drain(&mut syncer, 1).await;
    let slot = h.settings.redis.keys().counter(2, 2);
    let mut r = h.redis.conn.clone();
    let n: Option<i64> = r.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(n, Some(1), "the replayed change is applied");
    h.send_replayed(key, &two, s2).await;
    h.drain(&mut syncer, 1).await;
    let n: Option<i64> = r.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(n, Some(2), "the replay ends where the source is");
    assert_eq!(status.lock().unwrap().events_skipped, 0);
}

#[tokio::test]
async fn a_batch_fenced_by_a_newer_claim_writes_nothing_and_names_the_lost_partition() {
    // A former owner's batch carries the epoch it claimed the partition
    // with; once another member raised it, the batch writes nothing (no
    // effect, no seq, no offset) and reports the partition lost.
    use cache_syncer::apply::{Outcome, Record};
    use cache_syncer::plan::Effect;
    let h = Harness::new().await;
    let applier = h.applier().await;
    let keys = h.settings.redis.keys();
    let mut r = h.redis.conn.clone();
    let _: () = r.hset(keys.syncer_epochs(), "t/0", 2).await.unwrap();
    let _: () = r.hset(keys.syncer_epochs(), "t/1", 5).await.unwrap();
    let effects = [Effect::SetCounter {
        owner: 1,
        kind: 2,
        value: 9,
    }];
    let record = |epoch0: i64| Record {
        epochs: [("t/0".to_owned(), epoch0), ("t/1".to_owned(), 5)].into(),
        seqs: [("t/0".to_owned(), 40)].into(),
        offsets: [("t/0".to_owned(), 12), ("t/1".to_owned(), 3)].into(),
    };
    let slot = keys.counter(2, 1);

    let late = applier.apply(&effects, &record(1)).await.unwrap();
    assert_eq!(late, Outcome::Lost(vec!["t/0".to_owned()]));
    let value: Option<i64> = r.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(value, None, "a fenced batch wrote an effect");
    let seq: Option<u64> = r.hget(keys.syncer_applied(), "t/0").await.unwrap();
    let offset: Option<i64> = r.hget(keys.syncer_offsets(), "t/1").await.unwrap();
    assert_eq!(
        (seq, offset),
        (None, None),
        "a fenced batch recorded progress"
    );

    // The current owner's batch lands, with its positions.
    let current = applier.apply(&effects, &record(2)).await.unwrap();
    assert_eq!(current, Outcome::Applied);
    let value: Option<i64> = r.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(value, Some(9));
    let seq: Option<u64> = r.hget(keys.syncer_applied(), "t/0").await.unwrap();
    let offset: Option<i64> = r.hget(keys.syncer_offsets(), "t/0").await.unwrap();
    assert_eq!((seq, offset), (Some(40), Some(12)));
}

#[tokio::test]
async fn a_full_list_gets_its_next_older_entry_back_when_a_newer_one_is_unfollowed() {
    // list_cap is 3: following 4 users keeps the newest 3; unfollowing the
    // newest must bring the oldest back (from MySQL), as verify expects.
    let mut h = Harness::new().await;
    let (mut syncer, _) = h.syncer().await;
    let at = |s: u64| format!("2026-11-26T10:00:0{s}.000000");
    for (i, to) in [60u64, 61, 62, 63].into_iter().enumerate() {
        let created = at(i as u64);
        sqlx::query("INSERT INTO follow (id, from_id, to_id, created_at) VALUES (?, 50, ?, ?)")
            .bind(100 + i as u64)
            .bind(to)
            .bind(&created)
            .execute(&h.db.pool)
            .await
            .unwrap();
        let e = h.event(
            "follow",
            Op::Create,
            None,
            Some(follow_row(100 + i as u64, 50, to, &created, None)),
        );
        h.send(&format!(r#"{{"from_id":50,"to_id":{to}}}"#), &e, None)
            .await;
    }
    h.drain(&mut syncer, 4).await;
    let key = h.settings.redis.keys().following(50);
    let mut r = h.redis.conn.clone();
    let newest: Vec<u64> = r.zrevrange(&key, 0, -1).await.unwrap();
    assert_eq!(newest, [63, 62, 61], "capped at 3");

    unfollow_63(&h).await;
    let e = h.event(
        "follow",
        Op::Update,
        Some(follow_row(103, 50, 63, &at(3), None)),
        Some(follow_row(103, 50, 63, &at(3), Some(T2))),
    );
    h.send(r#"{"from_id":50,"to_id":63}"#, &e, None).await;
    h.drain(&mut syncer, 1).await;
    let newest: Vec<(u64, i64)> = r.zrevrange_withscores(&key, 0, -1).await.unwrap();
    assert_eq!(
        newest.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        [62, 61, 60],
        "the oldest entry came back"
    );
    assert_eq!(newest[2].1, AT_60_US, "its score is its follow time");
    let owed: usize = r
        .hlen(h.settings.redis.keys().syncer_refills())
        .await
        .unwrap();
    assert_eq!(owed, 0, "the refill the batch owed is settled");
    syncer.stop().await;
}

#[tokio::test]
async fn a_refill_left_owed_by_a_killed_member_is_run_by_the_next_idle_one() {
    // A member killed between a batch (recorded with its writes) and that
    // batch's refill leaves the list one short; the batch is never applied
    // again. It left the refill owed, and an idle member runs it.
    let h = Harness::new().await;
    let applier = h.applier().await;
    following_60_to_63(&h, &applier).await;
    unfollow_63(&h).await;
    // What the unfollow's batch wrote before its member died: the ZREM and
    // the owed refill (one MULTI/EXEC, per slot on a cluster).
    let keys = h.settings.redis.keys();
    let (list, owed) = (keys.following(50), keys.syncer_refills());
    let batch = vec![
        redis::Cmd::zrem(&list, 63),
        redis::Cmd::hincr(&owed, "following:50", 1),
    ];
    h.redis.conn.run(batch, true).await.unwrap();
    // Then a late ZADD of an older follow (its partition waited out a
    // rebalance) filled the gap: the list is full again, and wrong.
    let late = follow_of_59_older(&h).await;
    h.redis.conn.run(late, true).await.unwrap();
    let (syncer, _) = h.syncer().await;
    testkit::eventually(
        std::time::Duration::from_secs(60),
        "an idle syncer running the owed refill",
        || async {
            let mut r = h.redis.conn.clone();
            let members: Vec<u64> = r.zrevrange(&list, 0, -1).await.unwrap();
            let left: usize = r.hlen(&owed).await.unwrap();
            (members == [62, 61, 60] && left == 0).then_some(())
        },
    )
    .await;
    syncer.stop().await;
}

#[tokio::test]
async fn a_late_older_follow_filling_an_unfollows_gap_does_not_stand_in_for_the_dropped_entry() {
    // One batch: the unfollow of 63 shortens the full list, and a late
    // follow of 59 (older than every entry, from a partition that waited
    // out a rebalance) fills it again. The list is full, but 60, which the
    // full list had dropped, is what must come back.
    use cache_syncer::apply::Record;
    use cache_syncer::plan::Effect;
    let h = Harness::new().await;
    let applier = h.applier().await;
    following_60_to_63(&h, &applier).await;
    follow_of_59_older(&h).await;
    unfollow_63(&h).await;
    let batch = [
        Effect::RemoveEdge { from: 50, to: 63 },
        Effect::AddEdge {
            from: 50,
            to: 59,
            at_us: AT_60_US - 1_000_000,
        },
    ];
    applier.apply(&batch, &Record::default()).await.unwrap();
    let mut r = h.redis.conn.clone();
    let keys = h.settings.redis.keys();
    let newest: Vec<u64> = r.zrevrange(keys.following(50), 0, -1).await.unwrap();
    assert_eq!(newest, [62, 61, 60], "MySQL's newest 3, not the late 59");
    let owed: usize = r.hlen(keys.syncer_refills()).await.unwrap();
    assert_eq!(owed, 0, "the refill the batch owed is settled");
}

/// User 50 also follows 59, a second before 60 (so never among the newest 3
/// of [`following_60_to_63`]), in MySQL; returns its late follow's Redis
/// write (ZADD, then the trim), for a test to apply where it wants.
async fn follow_of_59_older(h: &Harness) -> Vec<redis::Cmd> {
    sqlx::query(
        "INSERT INTO follow (id, from_id, to_id, created_at) \
         VALUES (99, 50, 59, '2026-11-26T09:59:59.000000')",
    )
    .execute(&h.db.pool)
    .await
    .unwrap();
    let list = h.settings.redis.keys().following(50);
    vec![
        redis::Cmd::zadd(&list, 59, AT_60_US - 1_000_000),
        redis::Cmd::zremrangebyrank(&list, 0, -4),
    ]
}

#[tokio::test]
async fn a_list_refill_waits_for_an_unfollow_still_holding_its_row() {
    // The binlog can carry an unfollow before other sessions see it (see
    // the user-column test above). Its ZREM shortens a full list, and the
    // refill must not read the member back as still followed: its reads
    // of `follow` wait for the transaction holding the row.
    use cache_syncer::plan::Effect;
    let h = Harness::new().await;
    let applier = h.applier().await;
    following_60_to_63(&h, &applier).await;
    let key = h.settings.redis.keys().following(50);
    let mut r = h.redis.conn.clone();
    let newest: Vec<u64> = r.zrevrange(&key, 0, -1).await.unwrap();
    assert_eq!(newest, [63, 62, 61], "capped at 3");

    // The unfollow of 63, not yet committed; its change is being applied.
    apply_while_held(
        &h,
        &applier,
        "UPDATE follow SET deleted_at = NOW(6) WHERE id = 103",
        &[Effect::RemoveEdge { from: 50, to: 63 }],
        "SELECT % FROM follow %",
    )
    .await;
    let newest: Vec<u64> = r.zrevrange(&key, 0, -1).await.unwrap();
    assert_eq!(
        newest,
        [62, 61, 60],
        "the unfollowed member is not written back"
    );
}

#[tokio::test]
async fn a_batch_over_many_slots_lands_whole_with_its_replies_in_order() {
    // On a Redis Cluster `Redis::run` splits a batch per hash slot and puts
    // the replies back in the batch's order; on one server it is one
    // pipeline. Either way: every write lands, every reply is its own.
    let mut h = Harness::new().await;
    let conn = h.redis.conn.clone();
    let ns = &h.redis.namespace;
    let keys: Vec<String> = (0..300).map(|i| format!("{ns}:slots:{i}")).collect();
    let writes = keys
        .iter()
        .enumerate()
        .map(|(i, k)| redis::Cmd::set(k, i))
        .collect();
    conn.run(writes, true).await.unwrap();
    let reads = keys.iter().map(redis::Cmd::get).collect();
    let got: Vec<Option<usize>> = conn.query_each(reads).await.unwrap();
    let want: Vec<Option<usize>> = (0..300).map(Some).collect();
    assert_eq!(got, want);
    if testkit::redis_cluster() {
        let slots: std::collections::HashSet<_> = keys
            .iter()
            .map(|k| common::redis_conn::slot_of(k.as_bytes()))
            .collect();
        assert!(slots.len() > 100, "the keys span {} slots", slots.len());
    }
    // An error in one slot's part fails the whole call, as on one server.
    let bad = vec![
        redis::Cmd::set(&keys[0], 1),
        redis::Cmd::hset(&keys[1], "f", 1),
    ];
    assert!(conn.run(bad, true).await.is_err());
    h.redis.cleanup().await;
}
