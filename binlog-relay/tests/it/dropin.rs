//! The Debezium drop-in encoding (`debezium.value_encoding = debezium`,
//! issue #20): values, envelope, key and schema block as Debezium and
//! Kafka Connect's JsonConverter write them, from a real binlog.

use binlog_relay::config::ValueEncoding;
use binlog_relay::{RunOptions, Settings};
use serde_json::{Value, json};

use crate::helpers::{Env, Msg, consume_until};

const TABLE: &str = "CREATE TABLE kinds (
    id INT UNSIGNED NOT NULL,
    big BIGINT UNSIGNED NULL,
    amount DECIMAL(10,2) NULL,
    at_ms DATETIME(3) NULL,
    at_us DATETIME(6) NULL,
    stamp TIMESTAMP(3) NULL DEFAULT NULL,
    day DATE NULL,
    span TIME(6) NULL,
    flag BIT(1) NULL,
    mask BIT(12) NULL,
    doc JSON NULL,
    raw VARBINARY(8) NULL,
    mood ENUM('sad','ok','happy') NULL,
    name VARCHAR(20) NULL,
    PRIMARY KEY (id)
)";

async fn run(env: &Env, schemas: bool) -> Vec<Msg> {
    env.exec(TABLE).await;
    env.create_topics(&["kinds"]).await;
    let mut settings: Settings = env.settings();
    settings.debezium.value_encoding = ValueEncoding::Debezium;
    settings.debezium.schemas_enable = schemas;
    let relay = env.start_with(settings, RunOptions::default()).await;
    env.exec(
        "INSERT INTO kinds VALUES (1, 18446744073709551615, -123.45, '2026-12-01 06:36:11.106', \
         '2026-12-01 06:36:11.106207', '2026-12-01 06:36:11.106', '1970-01-02', '-01:00:00.5', \
         b'1', b'000100000010', '{\"b\": 1, \"a\": [true]}', x'fbff', 'ok', 'héllo 🎉')",
    )
    .await;
    // A key change: delete + tombstone under the old key, create under the new.
    env.exec("UPDATE kinds SET id = 2, name = NULL WHERE id = 1")
        .await;
    let topic = env.topic("kinds");
    let msgs = consume_until(
        env,
        std::slice::from_ref(&topic),
        "insert, delete, tombstone, create",
        |m| m.len() >= 4,
    )
    .await;
    relay.stop().await.expect("clean stop");
    msgs
}

fn payload(m: &Msg, schemas: bool) -> &Value {
    let v = m.value.as_ref().expect("a value");
    if schemas { &v["payload"] } else { v }
}

#[tokio::test]
async fn values_envelope_and_key_changes_are_debeziums() {
    let env = Env::new().await;
    let msgs = run(&env, false).await;
    let ops: Vec<Option<&str>> = msgs
        .iter()
        .map(|m| m.value.as_ref().map(|v| v["op"].as_str().unwrap()))
        .collect();
    assert_eq!(ops, [Some("c"), Some("d"), None, Some("c")]);
    let keys: Vec<Value> = msgs.iter().map(|m| m.key.clone().unwrap()).collect();
    assert_eq!(
        keys,
        [
            json!({"id": 1}),
            json!({"id": 1}),
            json!({"id": 1}),
            json!({"id": 2})
        ]
    );

    let c = payload(&msgs[0], false);
    assert_eq!(
        c["after"],
        json!({
            "id": 1,
            "big": -1,
            "amount": "z8c=",
            "at_ms": 1_796_106_971_106i64,
            "at_us": 1_796_106_971_106_207i64,
            "stamp": "2026-12-01T06:36:11.106Z",
            "day": 1,
            "span": -3_600_500_000i64,
            "flag": true,
            "mask": "AgE=",
            "doc": "{\"b\": 1, \"a\": [true]}",
            "raw": "+/8=",
            "mood": "ok",
            "name": "héllo 🎉",
        })
    );
    let source = c["source"].as_object().unwrap();
    let fields: Vec<&str> = source.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "version",
            "connector",
            "name",
            "ts_ms",
            "snapshot",
            "db",
            "sequence",
            "ts_us",
            "ts_ns",
            "table",
            "server_id",
            "gtid",
            "file",
            "pos",
            "row",
            "thread",
            "query"
        ]
    );
    assert_eq!(source["connector"], "mariadb");
    assert_eq!(source["snapshot"], "false");
    assert_eq!(source["ts_us"], source["ts_ms"].as_i64().unwrap() * 1000);
    let top: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        top,
        [
            "before",
            "after",
            "source",
            "transaction",
            "op",
            "ts_ms",
            "ts_us",
            "ts_ns"
        ]
    );
    // The key change: the delete carries the old row, the create the new.
    assert_eq!(payload(&msgs[1], false)["before"]["id"], 1);
    assert_eq!(payload(&msgs[1], false)["after"], Value::Null);
    assert_eq!(payload(&msgs[3], false)["after"]["id"], 2);
    assert_eq!(payload(&msgs[3], false)["after"]["name"], Value::Null);
    env.cleanup().await;
}

#[tokio::test]
async fn the_schema_block_describes_every_column() {
    let env = Env::new().await;
    let msgs = run(&env, true).await;
    let v = msgs[0].value.as_ref().unwrap();
    let schema = &v["schema"];
    assert_eq!(
        schema["name"],
        format!("{}.{}.kinds.Envelope", env.kafka.prefix, env.db.name)
    );
    assert_eq!(schema["version"], 2);
    let after = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "after")
        .unwrap();
    let field = |name: &str| {
        after["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .unwrap_or_else(|| panic!("no field {name}"))
            .clone()
    };
    assert_eq!(
        field("id"),
        json!({"type": "int64", "optional": false, "field": "id"})
    );
    assert_eq!(
        field("amount"),
        json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
               "parameters": {"scale": "2", "connect.decimal.precision": "10"},
               "optional": true, "field": "amount"})
    );
    assert_eq!(field("at_ms")["name"], "io.debezium.time.Timestamp");
    assert_eq!(field("at_us")["name"], "io.debezium.time.MicroTimestamp");
    assert_eq!(field("stamp")["name"], "io.debezium.time.ZonedTimestamp");
    assert_eq!(field("day")["name"], "io.debezium.time.Date");
    assert_eq!(field("span")["name"], "io.debezium.time.MicroTime");
    assert_eq!(field("flag")["type"], "boolean");
    assert_eq!(field("mask")["parameters"]["length"], "12");
    // MariaDB's JSON is a LONGTEXT alias: a plain string to Debezium too.
    assert_eq!(
        field("doc"),
        json!({"type": "string", "optional": true, "field": "doc"})
    );
    assert_eq!(field("raw")["type"], "bytes");
    assert_eq!(field("mood")["parameters"]["allowed"], "sad,ok,happy");
    assert_eq!(v["payload"]["after"]["id"], 1);
    // The key carries its own schema.
    let key = msgs[0].key.as_ref().unwrap();
    assert_eq!(key["payload"], json!({"id": 1}));
    assert_eq!(
        key["schema"]["name"],
        format!("{}.{}.kinds.Key", env.kafka.prefix, env.db.name)
    );
    env.cleanup().await;
}

#[tokio::test]
async fn snapshot_rows_carry_debeziums_markers() {
    let env = Env::new().await;
    for t in ["s1", "s2"] {
        env.exec(&format!("CREATE TABLE {t} (id INT PRIMARY KEY)"))
            .await;
        env.exec(&format!("INSERT INTO {t} VALUES (1), (2)")).await;
    }
    env.create_topics(&["s1", "s2"]).await;
    let mut settings: Settings = env.settings();
    settings.debezium.value_encoding = ValueEncoding::Debezium;
    let db = env.db.name.clone();
    let relay = env
        .start_with(
            settings,
            RunOptions {
                snapshot: vec![format!("{db}.s1"), format!("{db}.s2")],
                ..RunOptions::default()
            },
        )
        .await;
    let topics = [env.topic("s1"), env.topic("s2")];
    let msgs = consume_until(&env, &topics, "4 snapshot rows", |m| m.len() >= 4).await;
    let mut markers: Vec<(String, i64, String)> = msgs
        .iter()
        .filter_map(|m| m.value.as_ref())
        .map(|v| {
            assert_eq!(v["op"], "r");
            (
                v["source"]["table"].as_str().unwrap().to_owned(),
                v["after"]["id"].as_i64().unwrap(),
                v["source"]["snapshot"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    markers.sort();
    let want: Vec<(String, i64, String)> = [
        ("s1", 1, "first"),
        ("s1", 2, "last_in_data_collection"),
        ("s2", 1, "first_in_data_collection"),
        ("s2", 2, "last"),
    ]
    .iter()
    .map(|(t, i, m)| ((*t).to_owned(), *i, (*m).to_owned()))
    .collect();
    assert_eq!(markers, want);
    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}
