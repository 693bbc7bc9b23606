//! Message key columns (`message_key_columns`) on the real stack: the
//! default keys of `counter` and `follow`, partitions, tombstones, the empty
//! setting, and the checks at start-up and at a table's first row.

use binlog_relay::format::partition_of;
use binlog_relay::{Application, RunOptions, Settings};
use serde_json::{Value, json};

use crate::helpers::{DEADLINE, Env, Msg, consume_until};

const PARTITIONS: i32 = 4;

/// The partition librdkafka's default partitioner gives `key`.
fn partition_for(key: &Value) -> i32 {
    partition_of(key.to_string().as_bytes(), PARTITIONS).expect("partitions")
}

fn image(m: &Msg) -> &Value {
    let v = m.value.as_ref().expect("not a tombstone");
    if v["after"].is_null() {
        &v["before"]
    } else {
        &v["after"]
    }
}

#[tokio::test]
async fn counter_and_follow_rows_are_keyed_by_their_key_columns_one_partition_per_key() {
    let env = Env::new().await;
    let (counter, follow) = (env.topic("counter"), env.topic("follow"));
    env.kafka
        .create_topics(
            &[counter.as_str(), follow.as_str(), env.tx_topic().as_str()],
            PARTITIONS,
        )
        .await;
    // The default message_key_columns.
    let relay = env.start(RunOptions::default()).await;

    // Both counters of user 7, changed together and apart, one deleted;
    // one counter of user 8.
    env.exec_tx(&[
        "INSERT INTO counter (owner_id, kind, value, updated_at) VALUES (7, 1, 1, NOW(6))",
        "INSERT INTO counter (owner_id, kind, value, updated_at) VALUES (7, 2, 1, NOW(6))",
    ])
    .await;
    env.exec("UPDATE counter SET value = 2 WHERE owner_id = 7 AND kind = 2")
        .await;
    env.exec("UPDATE counter SET value = 3 WHERE owner_id = 7 AND kind = 1")
        .await;
    env.exec("INSERT INTO counter (owner_id, kind, value, updated_at) VALUES (8, 1, 1, NOW(6))")
        .await;
    env.exec("DELETE FROM counter WHERE owner_id = 7 AND kind = 2")
        .await;
    // Follow, unfollow, re-follow of 1 → 2; then the row is deleted and the
    // pair followed again as a new row (a new id); 1 → 3 once.
    env.exec("INSERT INTO follow (from_id, to_id) VALUES (1, 2)")
        .await;
    env.exec("UPDATE follow SET deleted_at = NOW(6) WHERE from_id = 1 AND to_id = 2")
        .await;
    env.exec("UPDATE follow SET deleted_at = NULL WHERE from_id = 1 AND to_id = 2")
        .await;
    env.exec("DELETE FROM follow WHERE from_id = 1 AND to_id = 2")
        .await;
    env.exec("INSERT INTO follow (from_id, to_id) VALUES (1, 2)")
        .await;
    env.exec("INSERT INTO follow (from_id, to_id) VALUES (1, 3)")
        .await;

    // counter: 2 + 2 + 1 + delete + tombstone; follow: 3 + delete +
    // tombstone + 2.
    let msgs = consume_until(
        &env,
        &[counter.clone(), follow.clone()],
        "7 counter and 7 follow messages",
        |m| {
            m.iter().filter(|m| m.topic == counter).count() >= 7
                && m.iter().filter(|m| m.topic == follow).count() >= 7
        },
    )
    .await;
    let of = |topic: &str| -> Vec<&Msg> { msgs.iter().filter(|m| m.topic == topic).collect() };
    let (counters, follows) = (of(&counter), of(&follow));
    assert_eq!(counters.len(), 7, "{counters:#?}");
    assert_eq!(follows.len(), 7, "{follows:#?}");

    // Counters: user 7's two rows share one key and one partition, the
    // tombstone included, in commit order.
    let seven = json!({"owner_id": 7});
    let (user7, user8): (Vec<&Msg>, Vec<&Msg>) = counters
        .iter()
        .partition(|m| m.key.as_ref() == Some(&seven));
    assert_eq!(
        user7.len(),
        6,
        "every change of user 7's counters: {counters:#?}"
    );
    assert_eq!(user8.len(), 1, "{counters:#?}");
    assert_eq!(user8[0].key, Some(json!({"owner_id": 8})));
    assert_eq!(image(user8[0])["owner_id"], 8);
    assert!(
        user7.iter().all(|m| m.partition == partition_for(&seven)),
        "one partition for user 7, where the key hashes: {user7:#?}"
    );
    let kinds: Vec<(Value, Value)> = user7[..5]
        .iter()
        .map(|m| {
            (
                image(m)["kind"].clone(),
                m.value.as_ref().unwrap()["op"].clone(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (json!(1), json!("c")),
            (json!(2), json!("c")),
            (json!(2), json!("u")),
            (json!(1), json!("u")),
            (json!(2), json!("d")),
        ],
        "both kinds, in commit order"
    );
    assert!(user7[5].value.is_none(), "the tombstone follows the delete");
    assert_eq!(user7[5].seq(), user7[4].seq(), "{user7:#?}");

    // Follows: one key for the pair across both rows (ids), one partition.
    let pair = json!({"from_id": 1, "to_id": 2});
    let (one_two, one_three): (Vec<&Msg>, Vec<&Msg>) =
        follows.iter().partition(|m| m.key.as_ref() == Some(&pair));
    assert_eq!(one_two.len(), 6, "{follows:#?}");
    assert_eq!(one_three.len(), 1, "{follows:#?}");
    assert_eq!(one_three[0].key, Some(json!({"from_id": 1, "to_id": 3})));
    assert!(
        one_two.iter().all(|m| m.partition == partition_for(&pair)),
        "{one_two:#?}"
    );
    let ops: Vec<Option<Value>> = one_two
        .iter()
        .map(|m| m.value.as_ref().map(|v| v["op"].clone()))
        .collect();
    assert_eq!(
        ops,
        [
            Some(json!("c")),
            Some(json!("u")),
            Some(json!("u")),
            Some(json!("d")),
            None,
            Some(json!("c"))
        ]
    );
    let first_id = &image(one_two[0])["id"];
    let second_id = &image(one_two[5])["id"];
    assert!(
        first_id.is_u64() && first_id != second_id,
        "the re-follow is a new row: {first_id} vs {second_id}"
    );

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

#[tokio::test]
async fn an_empty_message_key_columns_keys_every_table_by_its_primary_key() {
    let env = Env::new().await;
    env.create_topics(&["counter", "follow"]).await;
    let settings = Settings {
        message_key_columns: String::new(),
        ..env.settings()
    };
    let relay = env.start_with(settings, RunOptions::default()).await;
    env.exec("INSERT INTO counter (owner_id, kind, value, updated_at) VALUES (7, 2, 1, NOW(6))")
        .await;
    env.exec("INSERT INTO follow (from_id, to_id) VALUES (1, 2)")
        .await;
    let (counter, follow) = (env.topic("counter"), env.topic("follow"));
    let msgs = consume_until(
        &env,
        &[counter.clone(), follow.clone()],
        "a counter and a follow",
        |m| m.len() >= 2,
    )
    .await;
    let one = |topic: &str| msgs.iter().find(|m| m.topic == topic).expect(topic);
    assert_eq!(
        one(&counter).key,
        Some(json!({"owner_id": 7, "kind": 2})),
        "{msgs:#?}"
    );
    let f = one(&follow);
    assert_eq!(f.key, Some(json!({"id": image(f)["id"]})), "{msgs:#?}");
    assert!(image(f)["id"].is_u64());

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

#[tokio::test]
async fn a_missing_or_masked_key_column_refuses_to_start_naming_table_and_column() {
    let env = Env::new().await;
    let db = env.db.name.clone();
    let refused = |settings: Settings| async move {
        match Application::build(settings, RunOptions::default()).await {
            Ok(_) => panic!("the relay started"),
            Err(e) => e.to_string(),
        }
    };

    let err = refused(Settings {
        message_key_columns: r".*\.counter:owner_idx".into(),
        ..env.settings()
    })
    .await;
    assert!(
        err.contains(&format!("{db}.counter")) && err.contains("\"owner_idx\""),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");

    // The default keys with a rule masking a key column.
    let mut settings = env.settings();
    settings
        .columns
        .insert("*.follow.to_id".into(), "hash:pepper".into());
    let err = refused(settings).await;
    assert!(
        err.contains(&format!("{db}.follow.to_id")) && err.contains("message_key_columns"),
        "{err}"
    );

    // A bad entry is refused before anything else.
    let err = refused(Settings {
        message_key_columns: "counter:owner_id".into(),
        ..env.settings()
    })
    .await;
    assert!(err.contains("message_key_columns"), "{err}");

    env.cleanup().await;
}

#[tokio::test]
async fn a_table_created_later_without_its_key_column_stops_the_relay_at_its_first_row() {
    let env = Env::new().await;
    let settings = Settings {
        message_key_columns: r".*\.later:tenant".into(),
        ..env.settings()
    };
    // No table `later` yet: nothing to check at start-up.
    let relay = env.start_with(settings, RunOptions::default()).await;
    env.exec("CREATE TABLE later (id INT PRIMARY KEY, v INT)")
        .await;
    env.exec("INSERT INTO later VALUES (1, 1)").await;
    let result = tokio::time::timeout(DEADLINE, relay.handle)
        .await
        .expect("the relay stops by itself")
        .expect("relay task");
    let err = result
        .expect_err("a missing key column is an error")
        .to_string();
    assert!(
        err.contains(&format!("{}.later", env.db.name)) && err.contains("\"tenant\""),
        "{err}"
    );
    env.cleanup().await;
}
