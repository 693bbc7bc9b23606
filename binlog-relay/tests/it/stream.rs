//! Streaming: envelopes, images, tombstones, transactions, types, DDL, admin.

use binlog_relay::RunOptions;
use serde_json::json;

use crate::helpers::{Env, Msg, consume_until, http_get};

fn values(msgs: &[Msg], topic: &str) -> Vec<serde_json::Value> {
    msgs.iter()
        .filter(|m| m.topic == topic)
        .filter_map(|m| m.value.clone())
        .collect()
}

#[tokio::test]
async fn insert_update_delete_carry_before_and_after_images_and_a_tombstone() {
    let env = Env::new().await;
    env.create_topics(&["counter"]).await;
    let relay = env.start(RunOptions::default()).await;

    env.exec("INSERT INTO counter (owner_id, kind, value, updated_at) VALUES (7, 2, 1, NOW(6))")
        .await;
    env.exec("UPDATE counter SET value = 2 WHERE owner_id = 7 AND kind = 2")
        .await;
    env.exec("DELETE FROM counter WHERE owner_id = 7 AND kind = 2")
        .await;

    let topic = env.topic("counter");
    let msgs = consume_until(
        &env,
        std::slice::from_ref(&topic),
        "c, u, d and a tombstone",
        |m| m.len() >= 4,
    )
    .await;
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    // The default message_key_columns: counter rows by owner_id, the
    // tombstone included.
    let key = json!({"owner_id": 7});
    assert!(
        msgs.iter().all(|m| m.key.as_ref() == Some(&key)),
        "every message, the tombstone too, is keyed by owner_id: {msgs:#?}"
    );

    let (c, u, d, tomb) = (&msgs[0], &msgs[1], &msgs[2], &msgs[3]);
    let c = c.value.as_ref().unwrap();
    assert_eq!(c["op"], "c");
    assert!(c["before"].is_null());
    assert_eq!(c["after"]["value"], 1);
    assert_eq!(c["source"]["db"], env.db.name.as_str());
    assert_eq!(c["source"]["table"], "counter");
    assert_eq!(c["source"]["connector"], "sluice");
    assert_eq!(c["source"]["snapshot"], "false");

    let u = u.value.as_ref().unwrap();
    assert_eq!(u["op"], "u");
    assert_eq!(
        u["before"]["value"], 1,
        "update carries the full before image"
    );
    assert_eq!(u["after"]["value"], 2);
    assert_eq!(u["before"]["owner_id"], 7);

    let dv = d.value.as_ref().unwrap();
    assert_eq!(dv["op"], "d");
    assert_eq!(dv["before"]["value"], 2, "delete carries the before image");
    assert!(dv["after"].is_null());
    assert!(tomb.value.is_none(), "a tombstone follows the delete");

    let seqs: Vec<u64> = msgs.iter().take(3).map(Msg::seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sluice.seq increases: {seqs:?}"
    );
    for m in &msgs[..3] {
        let gtid = m.headers.get(cdc_event::HEADER_GTID).expect("gtid header");
        assert_eq!(m.value.as_ref().unwrap()["source"]["gtid"], gtid.as_str());
        assert!(
            m.headers
                .get(cdc_event::HEADER_POS)
                .is_some_and(|p| p.contains(':'))
        );
    }

    // Admin: status has a position and a checkpoint; metrics count the events.
    let port = relay.port;
    let status = testkit::eventually(
        crate::helpers::DEADLINE,
        "a checkpoint in /status",
        || async {
            let s = relay.status().await;
            (!s["checkpoint"].is_null()).then_some(s)
        },
    )
    .await;
    assert!(
        status["position"].as_str().is_some_and(|p| p.contains(':')),
        "{status}"
    );
    assert_eq!(status["state"], "streaming");
    let (code, metrics) = http_get(port, "/metrics").await.expect("metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("binlog_relay_events_total"), "{metrics}");
    assert_eq!(http_get(port, "/healthz").await.map(|r| r.0), Some(200));

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

#[tokio::test]
async fn a_multi_statement_transaction_arrives_in_commit_order_with_begin_and_end() {
    let env = Env::new().await;
    env.create_topics(&["follow", "counter"]).await;
    let relay = env.start(RunOptions::default()).await;

    env.exec_tx(&[
        "INSERT INTO follow (from_id, to_id, created_at) VALUES (1, 2, NOW(6))",
        "INSERT INTO counter (owner_id, kind, value, updated_at) VALUES (1, 1, 1, NOW(6))",
        "INSERT INTO counter (owner_id, kind, value, updated_at) VALUES (2, 2, 1, NOW(6))",
    ])
    .await;

    let topics = vec![env.topic("follow"), env.topic("counter"), env.tx_topic()];
    let msgs = consume_until(&env, &topics, "3 changes + BEGIN + END", |m| {
        m.iter().filter(|m| m.topic == topics[2]).count() >= 2 && m.len() >= 5
    })
    .await;
    let tx = values(&msgs, &topics[2]);
    assert_eq!(tx[0]["status"], "BEGIN");
    assert_eq!(tx[1]["status"], "END");
    assert_eq!(tx[1]["event_count"], 3);
    assert_eq!(tx[0]["id"], tx[1]["id"]);
    let mut colls: Vec<(String, u64)> = tx[1]["data_collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["data_collection"].as_str().unwrap().to_owned(),
                c["event_count"].as_u64().unwrap(),
            )
        })
        .collect();
    colls.sort();
    assert_eq!(
        colls,
        vec![
            (format!("{}.counter", env.db.name), 2),
            (format!("{}.follow", env.db.name), 1)
        ]
    );

    let mut changes: Vec<&Msg> = msgs.iter().filter(|m| m.topic != topics[2]).collect();
    changes.sort_by_key(|m| m.seq());
    let orders: Vec<u64> = changes
        .iter()
        .map(|m| {
            m.value.as_ref().unwrap()["transaction"]["total_order"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(orders, [1, 2, 3], "commit order");
    assert_eq!(changes[0].topic, topics[0], "the follow insert came first");
    assert_eq!(changes[1].value.as_ref().unwrap()["after"]["owner_id"], 1);
    assert_eq!(changes[2].value.as_ref().unwrap()["after"]["owner_id"], 2);
    assert_eq!(
        changes[2].value.as_ref().unwrap()["transaction"]["data_collection_order"],
        2
    );
    for c in &changes {
        assert_eq!(c.value.as_ref().unwrap()["transaction"]["id"], tx[0]["id"]);
    }

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

#[tokio::test]
async fn every_column_type_round_trips_into_the_envelope() {
    let env = Env::new().await;
    env.exec(
        "CREATE TABLE types (
            id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
            ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, i INT, bi BIGINT,
            dec_col DECIMAL(20,6), f FLOAT, d DOUBLE,
            vc VARCHAR(64), tx TEXT, bin VARBINARY(16), bl BLOB,
            dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(3), yr YEAR,
            en ENUM('small','large'), st SET('a','b','c'), bt BIT(12), js JSON, nul INT NULL
        ) CHARACTER SET utf8mb4",
    )
    .await;
    env.create_topics(&["types"]).await;
    let relay = env.start(RunOptions::default()).await;
    env.exec("SET time_zone = '+00:00'").await;
    env.exec(
        "INSERT INTO types VALUES (18446744073709551615, -128, 65535, -8388608, -2147483648, -9223372036854775808,
            -12345678901234.123456, 1.5, 2.25e-100,
            'héllo 🦀', 'long text ✓', X'00FF10', X'DEADBEEF',
            '2026-11-26', '2026-11-26 10:38:37.123456', '2026-11-26 10:38:37.654321', '-838:59:58.500', 2024,
            'large', 'a,c', b'101000000001', '{\"k\": [1, 2, {\"x\": null}]}', NULL)",
    )
    .await;

    let topic = env.topic("types");
    let msgs = consume_until(&env, std::slice::from_ref(&topic), "the typed row", |m| {
        !m.is_empty()
    })
    .await;
    let after = &msgs[0].value.as_ref().unwrap()["after"];
    let expect = json!({
        "id": 18446744073709551615u64, "ti": -128, "si": 65535, "mi": -8388608, "i": -2147483648i64,
        "bi": -9223372036854775808i64, "dec_col": "-12345678901234.123456", "f": 1.5, "d": 2.25e-100,
        "vc": "héllo 🦀", "tx": "long text ✓", "bin": "AP8Q", "bl": "3q2+7w==",
        "dt": "2026-11-26", "dtm": "2026-11-26T10:38:37.123456", "tm": "-838:59:58.500000", "yr": 2024,
        "en": "large", "st": "a,c", "bt": 2561, "js": {"k": [1, 2, {"x": null}]}, "nul": null
    });
    for (k, v) in expect.as_object().unwrap() {
        assert_eq!(&after[k], v, "column {k}: {after}");
    }
    // TIMESTAMP is UTC with a Z; the session wrote it in UTC on some connection
    // of the pool, so only the shape is checked exactly.
    let ts = after["ts"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.contains(".654321"), "{ts}");
    assert_eq!(msgs[0].key, Some(json!({"id": 18446744073709551615u64})));

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

#[tokio::test]
async fn a_column_added_mid_stream_appears_in_later_events() {
    let env = Env::new().await;
    env.exec("CREATE TABLE evolving (id INT PRIMARY KEY, a VARCHAR(10))")
        .await;
    env.create_topics(&["evolving"]).await;
    let relay = env.start(RunOptions::default()).await;
    env.exec("INSERT INTO evolving VALUES (1, 'one')").await;
    env.exec("ALTER TABLE evolving ADD COLUMN b INT NOT NULL DEFAULT 5")
        .await;
    env.exec("INSERT INTO evolving VALUES (2, 'two', 6)").await;
    env.exec("UPDATE evolving SET a = 'uno' WHERE id = 1").await;

    let topic = env.topic("evolving");
    let msgs = consume_until(&env, std::slice::from_ref(&topic), "3 changes", |m| {
        m.len() >= 3
    })
    .await;
    let v: Vec<&serde_json::Value> = msgs.iter().map(|m| m.value.as_ref().unwrap()).collect();
    assert_eq!(
        v[0]["after"],
        json!({"id": 1, "a": "one"}),
        "the old row keeps the old shape"
    );
    assert_eq!(v[1]["after"], json!({"id": 2, "a": "two", "b": 6}));
    assert_eq!(v[2]["before"], json!({"id": 1, "a": "one", "b": 5}));
    assert_eq!(v[2]["after"], json!({"id": 1, "a": "uno", "b": 5}));

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

/// The server-wide `log_bin_compress` switch, turned back off on drop.
struct CompressedBinlog(sqlx::MySqlPool);

impl CompressedBinlog {
    async fn on(pool: &sqlx::MySqlPool) -> Self {
        sqlx::query("SET GLOBAL log_bin_compress_min_len = 10")
            .execute(pool)
            .await
            .expect("set log_bin_compress_min_len");
        sqlx::query("SET GLOBAL log_bin_compress = ON")
            .execute(pool)
            .await
            .expect("set log_bin_compress");
        Self(pool.clone())
    }

    async fn off(self) {
        sqlx::query("SET GLOBAL log_bin_compress = OFF")
            .execute(&self.0)
            .await
            .expect("reset log_bin_compress");
    }
}

#[tokio::test]
#[ignore = "turns MariaDB's log_bin_compress on for the whole server; run alone by scripts/test.sh"]
async fn an_event_the_relay_cannot_read_stops_it_with_the_events_name() {
    let env = Env::new().await;
    env.create_topics(&["counter"]).await;
    let relay = env.start(RunOptions::default()).await;
    // Preflight passed; now the server starts writing compressed row events.
    let compressed = CompressedBinlog::on(&env.db.pool).await;
    env.exec(
        "INSERT INTO counter (owner_id, kind, value, updated_at) VALUES \
         (1, 1, 1, NOW(6)), (2, 1, 2, NOW(6)), (3, 1, 3, NOW(6)), (4, 1, 4, NOW(6))",
    )
    .await;
    // Off again at once: other relays on this server (the mesh's) pass over
    // compressed events of tables they do not include, but nothing else
    // should be written compressed meanwhile.
    compressed.off().await;
    let ended = tokio::time::timeout(crate::helpers::DEADLINE, relay.handle).await;
    let result = ended
        .expect("the relay stops instead of skipping the event")
        .expect("relay task");
    let err = result.expect_err("the relay must not go on past an event it cannot read");
    let text = err.to_string();
    assert!(
        text.contains("ROWS_COMPRESSED_EVENT") && text.contains("log_bin_compress"),
        "{text}"
    );
    assert!(
        !err.is_transient(),
        "retrying cannot read it either: {text}"
    );
    eprintln!("the relay stopped with: {text}");
    env.cleanup().await;
}
