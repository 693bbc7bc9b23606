//! The fast decoder against the general one on a real binlog: every rows
//! event of a database holding every column type, with inserts, updates,
//! deletes, NULLs, multi-row events and wide strings, decoded both ways;
//! envelopes, keys and change times must be the same.

use std::sync::Arc;
use std::time::Duration;

use binlog_relay::decode::{self, ChangeMeta};
use binlog_relay::fastrow;
use binlog_relay::format::{self, Format};
use binlog_relay::image;
use binlog_relay::keys::KeyColumns;
use binlog_relay::position::FilePos;
use binlog_relay::schema::SchemaTracker;
use binlog_relay::source::{self, Flavor, SourceOptions, StreamStart};
use cdc_event::{Snapshot, TransactionRef};
use futures::StreamExt;
use mysql_async::binlog::events::EventData;
use secrecy::SecretString;

use testkit::TestDb;

async fn exec(db: &TestDb, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn meta<'a>(file: &'a str, row: u32) -> ChangeMeta<'a> {
    ChangeMeta {
        name: "parity",
        server_id: 7,
        gtid: Some("0-1-42"),
        file,
        pos: 1234,
        ts_ms: 1_700_000_000_000,
        row,
        snapshot: Snapshot::False,
        thread: None,
        transaction: Some(TransactionRef {
            id: "0-1-42".into(),
            total_order: u64::from(row) + 1,
            data_collection_order: u64::from(row) + 1,
        }),
        now_ms: 1_700_000_000_123,
    }
}

#[tokio::test]
async fn the_fast_decoder_writes_what_the_general_decoder_writes() {
    // Only MariaDB is needed: the binlog is read and decoded, nothing published.
    let db = TestDb::new().await;
    let logs = source::binary_logs(&db.pool)
        .await
        .expect("show binary logs");
    let (f, size) = logs.last().expect("a binlog file").clone();
    let from = FilePos::new(f, size);
    exec(
        &db,
        "CREATE TABLE every_type (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, mu MEDIUMINT UNSIGNED,
            i INT, iu INT UNSIGNED, bi BIGINT,
            dec_col DECIMAL(20,6), small_dec DECIMAL(5,2), f FLOAT, d DOUBLE,
            ch CHAR(3), vc VARCHAR(64), wide VARCHAR(400), tx TEXT, lt LONGTEXT,
            bin BINARY(4), vb VARBINARY(16), bl BLOB,
            dt DATE, dtm DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6), ts TIMESTAMP(6) NULL,
            tm TIME, tm3 TIME(3), yr YEAR, en ENUM('small','large'), st SET('a','b','c'),
            bt BIT(12), js JSON, updated_at DATETIME(6) NOT NULL DEFAULT NOW(6)
        ) CHARACTER SET utf8mb4",
    )
    .await;
    exec(
        &db,
        "CREATE TABLE pair (a INT NOT NULL, b VARCHAR(8) NOT NULL, v INT, PRIMARY KEY (b, a))",
    )
    .await;
    exec(&db, "CREATE TABLE nokey (x INT, y TEXT)").await;
    exec(
        &db,
        "INSERT INTO every_type VALUES (NULL, -128, 255, -32768, -8388608, 16777215, -2147483648,
            4294967295, -9223372036854775808, -12345678901234.123456, 0.5, 1.1, 2.25e-100,
            'ab', 'héllo 🦀 \"q\" \\\\ \\t', REPEAT('w', 300), 'long text ✓', REPEAT('x', 70000),
            X'00FF', X'00FF10', X'DEADBEEF', '2026-11-26', '2026-11-26 10:38:37',
            '2026-11-26 10:38:37.123', '2026-11-26 10:38:37.123456', '2026-11-26 10:38:37.654321',
            '-838:59:58', '12:00:01.5', 2024, 'large', 'a,c', b'101000000001',
            '{\"k\": [1, 2, {\"x\": null}]}', '2026-11-26 10:00:00.000001'),
            (NULL, 127, 0, 32767, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, -999.99,
            -3.4e38, -1.7e308, '', '', '', '', '', X'', X'', X'', '1000-01-01',
            '9999-12-31 23:59:59', '1970-01-01 00:00:00.001', '2038-01-19 03:14:07.999999', NULL,
            '00:00:00', '-00:00:00.001', 1901, 'small', '', b'0', 'null',
            '2026-11-26 10:00:00.000002')",
    )
    .await;
    exec(&db, "INSERT INTO every_type (id) VALUES (NULL), (NULL)").await;
    exec(
        &db,
        "UPDATE every_type SET vc = 'changed', ti = 0, js = '[]', bt = b'1' WHERE id <= 3",
    )
    .await;
    exec(&db, "DELETE FROM every_type WHERE id = 2").await;
    exec(&db, "INSERT INTO pair VALUES (1, 'x', NULL), (2, 'y', 5)").await;
    exec(&db, "UPDATE pair SET v = 6 WHERE a = 2").await;
    exec(&db, "INSERT INTO nokey VALUES (1, 'no key'), (NULL, NULL)").await;
    exec(&db, "DELETE FROM nokey").await;

    let url = db.url.clone();
    let opts = SourceOptions {
        url: SecretString::from(url.clone()),
        server_id: 800_000 + std::process::id() % 100_000,
        flavor: Flavor::MariaDb,
        heartbeat: Duration::from_secs(5),
        non_blocking: true,
    };
    let pool = sqlx::MySqlPool::connect(&url).await.expect("pool");
    let mut stream = source::open(&opts, &StreamStart::FilePos(from.clone()))
        .await
        .expect("binlog stream");
    // Key columns of every shape: a string among them, a nullable one, a
    // table without a primary key.
    let keys = KeyColumns::parse(r".*\.every_type:vc,id;.*\.pair:v,a;.*\.nokey:y").unwrap();
    let mut schema =
        SchemaTracker::new(Some(pool), Default::default()).with_key_columns(Arc::new(keys));
    let mut file = from.file.clone();
    let (mut events, mut rows) = (0, 0);
    while let Some(ev) = stream.next().await {
        let ev = ev.expect("event");
        match ev.read_data().expect("event data") {
            Some(EventData::RotateEvent(r)) => file = source::rotate_file_name(r.name_raw()),
            Some(EventData::RowsEvent(r)) => {
                let Some(tme) = stream.get_tme(r.table_id()) else {
                    continue;
                };
                if tme.database_name() != db.name {
                    continue;
                }
                let at = binlog_relay::position::FilePos::new(file.clone(), 0);
                let info = schema.table_info(tme, &at).await.expect("table info");
                let wire = info.wire.as_ref().expect("every type has a fast layout");
                let fast = fastrow::decode(&info, wire, &r)
                    .expect("fast decode")
                    .expect("full row images take the fast path");
                let op = decode::op_of(&r);
                let general = decode::decode_rows(&info, op, r.rows(tme)).expect("general decode");
                assert_eq!(fast.len(), general.len(), "{}", info.table);
                let key_names = match info.table.as_str() {
                    "every_type" => ["vc", "id"],
                    "pair" => ["v", "a"],
                    _ => ["y", ""],
                };
                for (i, change) in general.into_iter().enumerate() {
                    let (before, after) = fast.change(i);
                    let key = fast
                        .image(i, op)
                        .and_then(|img| format::key(Format::Debezium, &info, &img));
                    assert_eq!(
                        key,
                        change
                            .image()
                            .and_then(|img| format::key(Format::Debezium, &info, img)),
                        "key of {} row {i}",
                        info.table
                    );
                    let key: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(&key.expect("every row has a key")).expect("key JSON");
                    assert_eq!(
                        key.keys().map(String::as_str).collect::<Vec<_>>(),
                        key_names
                            .iter()
                            .copied()
                            .filter(|n| !n.is_empty())
                            .collect::<Vec<_>>(),
                        "key columns of {} row {i}",
                        info.table
                    );
                    assert_eq!(
                        after
                            .or(before)
                            .and_then(|img| image::change_time_us(&info, &img)),
                        change
                            .after
                            .as_ref()
                            .or(change.before.as_ref())
                            .and_then(|img| image::change_time_us(&info, img)),
                        "change time of {} row {i}",
                        info.table
                    );
                    let m = meta(&file, i as u32);
                    let quick = format::debezium(&info, op, before.as_ref(), after.as_ref(), &m);
                    // The reference: serde's envelope of the general path's
                    // typed rows.
                    let slow =
                        serde_json::to_vec(&decode::envelope(&info, change, meta(&file, i as u32)))
                            .expect("general envelope");
                    assert_eq!(
                        String::from_utf8_lossy(&quick.bytes),
                        String::from_utf8_lossy(&slow),
                        "{} row {i}",
                        info.table
                    );
                    rows += 1;
                }
                events += 1;
            }
            _ => {}
        }
    }
    // 3 inserts, 1 update (3 rows) and 1 delete of every_type, 2 + 1 rows
    // of pair, 2 + 2 rows of nokey.
    assert!(events >= 8, "only {events} rows events");
    assert_eq!(rows, 2 + 2 + 3 + 1 + 2 + 1 + 2 + 2);
    db.drop_db().await;
}
