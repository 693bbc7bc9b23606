//! Schema changes: DDL in the middle of a row stream becomes schema change
//! events in order, rows around each statement carry the columns of their
//! time, and a consumer can rebuild every table from the events alone.

use std::collections::BTreeMap;

use binlog_relay::RunOptions;
use serde_json::Value;

use crate::helpers::{Env, Msg, consume_until};

/// `sluice.pos` as an ordered pair (file number, offset).
fn position(m: &Msg) -> (u64, u64) {
    let pos = m.headers.get(cdc_event::HEADER_POS).expect("sluice.pos");
    let (file, off) = pos.rsplit_once(':').expect("file:pos");
    let n = file.rsplit_once('.').and_then(|(_, n)| n.parse().ok());
    (n.unwrap_or(0), off.parse().expect("offset"))
}

fn columns_of(row: &Value) -> Vec<String> {
    row.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// What a consumer sees, in binlog order: `("ddl", text)` for schema
/// changes, `("row", table:id:columns)` for row changes, `("t", table)` for
/// truncates.
fn timeline(env: &Env, msgs: &[Msg]) -> Vec<(String, String)> {
    let changes = cdc_event::topic::schema_changes_topic(&env.kafka.prefix);
    let mut items: Vec<((u64, u64), (String, String))> = Vec::new();
    for m in msgs {
        let Some(v) = &m.value else { continue };
        if m.topic == changes {
            items.push((
                position(m),
                ("ddl".into(), v["ddl"].as_str().unwrap().into()),
            ));
            continue;
        }
        let table = v["source"]["table"].as_str().unwrap_or_default().to_owned();
        if v["op"] == "t" {
            items.push((position(m), ("t".into(), table)));
            continue;
        }
        let after = &v["after"];
        let mut cols = columns_of(after);
        cols.sort();
        items.push((
            position(m),
            (
                "row".into(),
                format!("{table}:{}:{}", after["id"], cols.join(",")),
            ),
        ));
    }
    // A TRUNCATE's schema change and `t` event share its position.
    items.sort_by(|(p, (k, _)), (q, (l, _))| p.cmp(q).then((k != "ddl").cmp(&(l != "ddl"))));
    items.into_iter().map(|(_, i)| i).collect()
}

#[tokio::test]
async fn ddl_in_a_row_stream_becomes_ordered_schema_changes_and_rows_keep_their_columns() {
    let env = Env::new().await;
    env.create_topics(&["t", "t2"]).await;
    let changes = cdc_event::topic::schema_changes_topic(&env.kafka.prefix);
    env.kafka.create_topics(&[&changes], 1).await;
    let relay = env.start(RunOptions::default()).await;

    let statements = [
        "CREATE TABLE t (id INT PRIMARY KEY, a INT NOT NULL)",
        "INSERT INTO t VALUES (1, 10)",
        "ALTER TABLE t ADD COLUMN b VARCHAR(10) DEFAULT 'x' AFTER id",
        "INSERT INTO t (id, a, b) VALUES (2, 20, 'y')",
        "ALTER TABLE t MODIFY COLUMN a BIGINT UNSIGNED NOT NULL",
        "INSERT INTO t (id, a, b) VALUES (3, 18446744073709551615, 'z')",
        "ALTER TABLE t DROP COLUMN b",
        "INSERT INTO t VALUES (4, 40)",
        "RENAME TABLE t TO t2",
        "INSERT INTO t2 VALUES (5, 50)",
        "TRUNCATE TABLE t2",
        "INSERT INTO t2 VALUES (6, 60)",
    ];
    for s in statements {
        env.exec(s).await;
    }
    let topics = [env.topic("t"), env.topic("t2"), changes.clone()];
    let msgs = consume_until(&env, &topics, "6 schema changes, 6 rows, 1 truncate", |m| {
        timeline(&env, m).len() >= 13
    })
    .await;
    let got = timeline(&env, &msgs);
    let want: Vec<(String, String)> = [
        ("ddl", statements[0]),
        ("row", "t:1:a,id"),
        ("ddl", statements[2]),
        ("row", "t:2:a,b,id"),
        ("ddl", statements[4]),
        ("row", "t:3:a,b,id"),
        ("ddl", statements[6]),
        ("row", "t:4:a,id"),
        ("ddl", statements[8]),
        ("row", "t2:5:a,id"),
        ("ddl", statements[10]),
        ("t", "t2"),
        ("row", "t2:6:a,id"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(got, want);

    // The unsigned BIGINT after MODIFY keeps its full value.
    let row3 = msgs
        .iter()
        .filter_map(|m| m.value.as_ref())
        .find(|v| v["after"]["id"] == 3)
        .expect("row 3");
    assert_eq!(row3["after"]["a"].to_string(), "18446744073709551615");

    // Debezium's schema change event: keyed by database, the table's
    // columns, types and primary key after each change.
    let events: Vec<&Msg> = msgs.iter().filter(|m| m.topic == changes).collect();
    assert_eq!(
        events[0].key.as_ref().unwrap(),
        &serde_json::json!({"databaseName": env.db.name})
    );
    let alter = events[1].value.as_ref().unwrap();
    assert_eq!(alter["databaseName"], env.db.name.as_str());
    let tc = &alter["tableChanges"][0];
    assert_eq!(tc["type"], "ALTER");
    assert_eq!(tc["id"], format!("\"{}\".\"t\"", env.db.name));
    assert_eq!(
        tc["table"]["primaryKeyColumnNames"],
        serde_json::json!(["id"])
    );
    let names: Vec<&str> = tc["table"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "b", "a"]);
    assert_eq!(tc["table"]["columns"][1]["typeName"], "VARCHAR");
    assert_eq!(tc["table"]["columns"][1]["length"], 10);
    let modify = &events[2].value.as_ref().unwrap()["tableChanges"][0]["table"];
    assert_eq!(modify["columns"][2]["typeName"], "BIGINT UNSIGNED");
    assert_eq!(modify["columns"][2]["optional"], false);

    // A consumer that knows only the schema change topic rebuilds each
    // table's column list, and it matches information_schema.
    let mut rebuilt: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        let v = e.value.as_ref().unwrap();
        for tc in v["tableChanges"].as_array().unwrap() {
            let id = tc["id"].as_str().unwrap().to_owned();
            match tc["type"].as_str().unwrap() {
                "DROP" => {
                    rebuilt.remove(&id);
                }
                _ => {
                    let cols = tc["table"]["columns"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["name"].as_str().unwrap().to_owned())
                        .collect();
                    rebuilt.insert(id, cols);
                }
            }
            // A renamed table names its old id.
            if let Some(old) = tc["previousId"].as_str() {
                rebuilt.remove(old);
            }
        }
    }
    let mut actual: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('t', 't2') ORDER BY TABLE_NAME, ORDINAL_POSITION",
    )
    .fetch_all(&env.db.pool)
    .await
    .expect("information_schema");
    for (t, c) in rows {
        actual
            .entry(format!("\"{}\".\"{t}\"", env.db.name))
            .or_default()
            .push(c);
    }
    assert_eq!(rebuilt, actual);

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}

#[tokio::test]
async fn canal_and_maxwell_formats_send_their_own_ddl_records() {
    for format in [
        binlog_relay::format::Format::Canal,
        binlog_relay::format::Format::Maxwell,
    ] {
        let env = Env::new().await;
        let changes = cdc_event::topic::schema_changes_topic(&env.kafka.prefix);
        env.kafka.create_topics(&[&changes], 1).await;
        let settings = binlog_relay::Settings {
            format,
            ..env.settings()
        };
        let relay = env.start_with(settings, RunOptions::default()).await;
        let ddl = [
            "CREATE TABLE d (id INT PRIMARY KEY)",
            "ALTER TABLE d ADD COLUMN n INT UNSIGNED",
            "DROP TABLE d",
        ];
        for s in ddl {
            env.exec(s).await;
        }
        let msgs = consume_until(&env, std::slice::from_ref(&changes), "3 DDL records", |m| {
            m.len() >= 3
        })
        .await;
        let values: Vec<&Value> = msgs.iter().filter_map(|m| m.value.as_ref()).collect();
        match format {
            binlog_relay::format::Format::Canal => {
                let types: Vec<&str> = values.iter().map(|v| v["type"].as_str().unwrap()).collect();
                assert_eq!(types, ["CREATE", "ALTER", "ERASE"]);
                for (v, sql) in values.iter().zip(ddl) {
                    assert_eq!(v["isDdl"], true);
                    // The server writes DROP TABLE its own way
                    // ("DROP TABLE `d` /* generated by server */").
                    let sent = v["sql"].as_str().unwrap();
                    assert!(sent == sql || sent.starts_with("DROP TABLE `d`"), "{sent}");
                    assert_eq!(v["table"], "d");
                    assert_eq!(v["database"], env.db.name.as_str());
                }
            }
            _ => {
                let types: Vec<&str> = values.iter().map(|v| v["type"].as_str().unwrap()).collect();
                assert_eq!(types, ["table-create", "table-alter", "table-drop"]);
                let def = &values[1]["def"]["columns"];
                assert_eq!(
                    def[1],
                    serde_json::json!({"type": "int", "name": "n", "signed": false})
                );
                assert_eq!(values[1]["old"]["columns"].as_array().unwrap().len(), 1);
                assert_eq!(values[1]["sql"], ddl[1]);
            }
        }
        relay.stop().await.expect("clean stop");
        env.cleanup().await;
    }
}
