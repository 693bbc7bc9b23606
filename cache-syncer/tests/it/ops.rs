use redis::AsyncCommands;

use crate::harness::Harness;

/// Writes users, follows and counters straight into MySQL, the way
/// relation-service's transactions leave them.
async fn seed(h: &Harness, users: u64) {
    h.add_users(users).await;
    let mut pairs = Vec::new();
    for from in 1..=users {
        for to in 1..=users {
            if from != to && (from * 7 + to * 3) % 4 == 0 {
                pairs.push((from, to));
            }
        }
    }
    for (i, (from, to)) in pairs.iter().enumerate() {
        sqlx::query(
            "INSERT INTO follow (from_id, to_id, created_at, deleted_at) VALUES (?, ?, NOW(6) - INTERVAL ? SECOND, \
             IF(? % 5 = 0, NOW(6), NULL))",
        )
        .bind(from)
        .bind(to)
        .bind(i as u64)
        .bind(i as u64)
        .execute(&h.db.pool)
        .await
        .unwrap();
    }
    for (kind, col) in [(1, "from_id"), (2, "to_id")] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO counter (owner_id, kind, value, updated_at) \
             SELECT {col}, {kind}, COUNT(*), NOW(6) FROM follow WHERE deleted_at IS NULL GROUP BY {col}"
        )))
        .execute(&h.db.pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn wiped_redis_is_restored_by_rebuild_and_verify_reports_no_difference() {
    let h = Harness::new().await;
    seed(&h, 12).await;
    let applier = h.applier().await;

    let before = cache_syncer::verify::verify(&applier, false).await.unwrap();
    assert!(
        !before.diffs.is_empty(),
        "an empty cache must not verify clean"
    );

    let report = cache_syncer::rebuild::rebuild(&applier).await.unwrap();
    assert!(report.counters > 0 && report.follows > 0, "{report:?}");
    let after = cache_syncer::verify::verify(&applier, false).await.unwrap();
    assert!(after.diffs.is_empty(), "{:#?}", after.diffs);
    assert_eq!(after.users_checked, 12);
}

#[tokio::test]
async fn verify_finds_a_corrupted_bucket_and_repair_fixes_it() {
    let mut h = Harness::new().await;
    seed(&h, 8).await;
    let applier = h.applier().await;
    cache_syncer::rebuild::rebuild(&applier).await.unwrap();

    let (owner, kind, value): (u64, u8, i64) =
        sqlx::query_as("SELECT owner_id, kind, value FROM counter ORDER BY owner_id LIMIT 1")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    let slot = h.settings.redis.keys().counter(kind, owner);
    let _: () = h
        .redis
        .conn
        .hset(&slot.key, slot.field, value + 41)
        .await
        .unwrap();
    // A counter MySQL has never had, and a user column gone wrong.
    let stray = h.settings.redis.keys().counter(2, 999);
    let _: () = h.redis.conn.hset(&stray.key, stray.field, 5).await.unwrap();
    sqlx::query("UPDATE user SET follower_count = follower_count + 3 WHERE id = 2")
        .execute(&h.db.pool)
        .await
        .unwrap();
    let zkey = h.settings.redis.keys().following(1);
    let _: () = h.redis.conn.zadd(&zkey, 77, 1).await.unwrap();

    let found = cache_syncer::verify::verify(&applier, false).await.unwrap();
    let text: Vec<String> = found.diffs.iter().map(ToString::to_string).collect();
    assert_eq!(found.diffs.len(), 4, "{text:#?}");
    assert!(
        text.iter()
            .any(|d| d.contains(&format!("owner={owner} kind={kind}"))),
        "{text:#?}"
    );

    let fixed = cache_syncer::verify::verify(&applier, true).await.unwrap();
    assert_eq!(fixed.repaired, 4);
    let clean = cache_syncer::verify::verify(&applier, false).await.unwrap();
    assert!(clean.diffs.is_empty(), "{:#?}", clean.diffs);
}
