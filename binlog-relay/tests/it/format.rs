//! Output formats: canal flat messages and Maxwell rows from real writes.

use binlog_relay::format::Format;
use binlog_relay::{RunOptions, Settings};
use serde_json::{Value, json};

use crate::helpers::{Env, Msg, Running, consume_until};

async fn start_in(env: &Env, format: Format) -> Running {
    env.create_topics(&["counter"]).await;
    let settings = Settings {
        format,
        ..env.settings()
    };
    env.start_with(settings, RunOptions::default()).await
}

/// Insert, update and delete of one counter row, then a transaction of two
/// inserts: a tombstone after the delete would show up before them.
async fn write_changes(env: &Env) {
    env.exec(
        "INSERT INTO counter (owner_id, kind, value, updated_at) \
         VALUES (7, 2, 1, '2026-11-26 10:00:00.000001')",
    )
    .await;
    env.exec("UPDATE counter SET value = 2 WHERE owner_id = 7 AND kind = 2")
        .await;
    env.exec("DELETE FROM counter WHERE owner_id = 7 AND kind = 2")
        .await;
    env.exec_tx(&[
        "INSERT INTO counter (owner_id, kind, value, updated_at) \
         VALUES (8, 1, 5, '2026-11-26 10:00:00.000002')",
        "INSERT INTO counter (owner_id, kind, value, updated_at) \
         VALUES (9, 1, 6, '2026-11-26 10:00:00.000003')",
    ])
    .await;
}

async fn five_messages(env: &Env) -> Vec<Msg> {
    let topic = env.topic("counter");
    let msgs = consume_until(
        env,
        std::slice::from_ref(&topic),
        "insert, update, delete and two inserts",
        |m| m.len() >= 5,
    )
    .await;
    assert_eq!(msgs.len(), 5, "{msgs:#?}");
    assert!(
        msgs.iter().all(|m| m.value.is_some()),
        "no tombstones: {msgs:#?}"
    );
    for m in &msgs {
        for h in [
            cdc_event::HEADER_GTID,
            cdc_event::HEADER_POS,
            cdc_event::HEADER_SEQ,
        ] {
            assert!(m.headers.contains_key(h), "header {h}: {m:#?}");
        }
    }
    msgs
}

/// Removes `field` from the object and returns it.
fn take(v: &mut Value, field: &str) -> Value {
    v.as_object_mut()
        .and_then(|o| o.remove(field))
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

#[tokio::test]
async fn canal_format_writes_flat_messages() {
    let env = Env::new().await;
    let relay = start_in(&env, Format::Canal).await;
    write_changes(&env).await;
    let msgs = five_messages(&env).await;

    let db = env.db.name.as_str();
    let row = |value: &str| json!({"owner_id": "7", "kind": "2", "value": value, "updated_at": "2026-11-26T10:00:00.000001"});
    let expect = |ty: &str, data: Value, old: Value| {
        json!({
            "data": [data],
            "database": db,
            "isDdl": false,
            "mysqlType": {"owner_id": "bigint unsigned", "kind": "tinyint unsigned", "value": "bigint", "updated_at": "datetime"},
            "old": old,
            "pkNames": ["owner_id", "kind"],
            "sql": "",
            "sqlType": {"owner_id": -5, "kind": -6, "value": -5, "updated_at": 93},
            "table": "counter",
            "type": ty,
        })
    };
    let want = [
        expect("INSERT", row("1"), Value::Null),
        expect("UPDATE", row("2"), json!([{"value": "1"}])),
        expect("DELETE", row("2"), Value::Null),
    ];
    for (m, want) in msgs.iter().zip(want) {
        // canal's key is the debezium key: the key columns.
        assert_eq!(m.key, Some(json!({"owner_id": 7})), "{m:#?}");
        let mut v = m.value.clone().unwrap();
        assert_eq!(
            take(&mut v, "id").as_u64(),
            Some(m.seq()),
            "id is sluice.seq"
        );
        let es = take(&mut v, "es").as_i64().expect("es");
        let ts = take(&mut v, "ts").as_i64().expect("ts");
        assert!(es > 0 && ts >= es, "es {es}, ts {ts}");
        assert_eq!(v, want);
    }
    let tx: Vec<Value> = msgs[3..]
        .iter()
        .map(|m| m.value.as_ref().unwrap()["data"][0]["owner_id"].clone())
        .collect();
    assert_eq!(tx, [json!("8"), json!("9")]);
    assert_eq!(msgs[3].value.as_ref().unwrap()["type"], "INSERT");

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

#[tokio::test]
async fn maxwell_format_writes_rows_with_commit_on_the_last_of_each_transaction() {
    let env = Env::new().await;
    let relay = start_in(&env, Format::Maxwell).await;
    write_changes(&env).await;
    let msgs = five_messages(&env).await;

    let db = env.db.name.as_str();
    let row = |owner: u64, kind: u64, value: i64, us: u32| {
        json!({"owner_id": owner, "kind": kind, "value": value,
               "updated_at": format!("2026-11-26T10:00:00.{us:06}")})
    };
    let expect = |ty: &str, commit: bool, data: Value, old: Option<Value>| {
        let mut v = json!({
            "database": db,
            "table": "counter",
            "type": ty,
            "primary_key": {"owner_id": data["owner_id"], "kind": data["kind"]},
            "data": data,
        });
        if commit {
            v["commit"] = json!(true);
        }
        if let Some(old) = old {
            v["old"] = old;
        }
        v
    };
    let want = [
        expect("insert", true, row(7, 2, 1, 1), None),
        expect("update", true, row(7, 2, 2, 1), Some(json!({"value": 1}))),
        expect("delete", true, row(7, 2, 2, 1), None),
        expect("insert", false, row(8, 1, 5, 2), None),
        expect("insert", true, row(9, 1, 6, 3), None),
    ];
    let mut xids = Vec::new();
    for (m, want) in msgs.iter().zip(want) {
        let mut v = m.value.clone().unwrap();
        let gtid = &m.headers[cdc_event::HEADER_GTID];
        assert_eq!(
            m.key,
            Some(json!({"database": db, "table": "counter",
                        "pk.owner_id": want["data"]["owner_id"], "pk.kind": want["data"]["kind"]})),
            "{m:#?}"
        );
        let gtid_seq: u64 = gtid.rsplit('-').next().unwrap().parse().unwrap();
        let xid = take(&mut v, "xid").as_u64().expect("xid");
        assert_eq!(xid, gtid_seq, "xid is the GTID's sequence number");
        xids.push(xid);
        assert_eq!(take(&mut v, "gtid"), json!(gtid));
        assert_eq!(
            take(&mut v, "position"),
            json!(m.headers[cdc_event::HEADER_POS])
        );
        assert_eq!(take(&mut v, "server_id"), json!(env.server_id));
        assert!(
            take(&mut v, "ts")
                .as_i64()
                .is_some_and(|t| t > 1_000_000_000)
        );
        assert_eq!(v, want);
    }
    assert_eq!(xids[3], xids[4], "one transaction, one xid");
    assert!(xids[0] < xids[1] && xids[1] < xids[2] && xids[2] < xids[3]);

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

/// Maxwell's key stays the primary key (Maxwell's meaning), but a table with
/// key columns is partitioned by them: both counters of a user land on the
/// partition their debezium key `{"owner_id":…}` would.
#[tokio::test]
async fn maxwell_rows_keep_primary_key_keys_and_are_partitioned_by_the_key_columns() {
    const PARTITIONS: i32 = 4;
    let env = Env::new().await;
    let topic = env.topic("counter");
    env.kafka
        .create_topics(&[topic.as_str(), env.tx_topic().as_str()], PARTITIONS)
        .await;
    let settings = Settings {
        format: Format::Maxwell,
        ..env.settings()
    };
    let relay = env.start_with(settings, RunOptions::default()).await;
    let owners = 7..=12u64;
    for owner in owners.clone() {
        env.exec_tx(&[
            &format!(
                "INSERT INTO counter (owner_id, kind, value, updated_at) VALUES ({owner}, 1, 1, NOW(6))"
            ),
            &format!(
                "INSERT INTO counter (owner_id, kind, value, updated_at) VALUES ({owner}, 2, 1, NOW(6))"
            ),
        ])
        .await;
    }
    let rows = 2 * owners.clone().count();
    let msgs = consume_until(&env, std::slice::from_ref(&topic), "every row", |m| {
        m.len() >= rows
    })
    .await;
    assert_eq!(msgs.len(), rows, "{msgs:#?}");
    let db = env.db.name.as_str();
    for m in &msgs {
        let data = &m.value.as_ref().unwrap()["data"];
        assert_eq!(
            m.key,
            Some(json!({"database": db, "table": "counter",
                        "pk.owner_id": data["owner_id"], "pk.kind": data["kind"]})),
            "{m:#?}"
        );
        let placed_by = json!({"owner_id": data["owner_id"]}).to_string();
        assert_eq!(
            Some(m.partition),
            binlog_relay::format::partition_of(placed_by.as_bytes(), PARTITIONS),
            "{m:#?}"
        );
    }

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}
