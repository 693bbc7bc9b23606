//! Unit tests of the parent module.

use super::*;
use crate::table::ColumnInfo;
use cdc_event::{Snapshot, TransactionRef};
use mysql_async::consts::ColumnType;
use serde_json::json;

fn col(name: &str, col_type: ColumnType, unsigned: bool) -> ColumnInfo {
    ColumnInfo::text_column(name, col_type, unsigned)
}

/// `account (id BIGINT UNSIGNED PK, name VARCHAR, balance DECIMAL, note TEXT NULL)`.
fn table() -> TableInfo {
    use ColumnType::*;
    TableInfo {
        db: "shop".into(),
        table: "account".into(),
        columns: vec![
            col("id", MYSQL_TYPE_LONGLONG, true),
            col("name", MYSQL_TYPE_VARCHAR, false),
            col("balance", MYSQL_TYPE_NEWDECIMAL, false),
            col("note", MYSQL_TYPE_BLOB, false),
        ],
        pk: vec![0],
        key: None,
        wire: None,
    }
}

fn row(v: Value) -> Row {
    v.as_object().unwrap().clone()
}

/// A row whose id is above `i64::MAX` and whose note is NULL.
fn first() -> Row {
    row(json!({"id": 18446744073709551615u64, "name": "ann", "balance": "12.50", "note": null}))
}

fn second() -> Row {
    row(json!({"id": 18446744073709551615u64, "name": "ann", "balance": "-0.75", "note": "hi"}))
}

fn meta(gtid: Option<&str>) -> ChangeMeta<'_> {
    ChangeMeta {
        name: "sluice",
        server_id: 1001,
        gtid,
        file: "mysql-bin.000003",
        pos: 1234,
        ts_ms: 1_764_151_117_000,
        row: 0,
        snapshot: Snapshot::False,
        thread: None,
        transaction: Some(TransactionRef {
            id: gtid.unwrap_or("mysql-bin.000003:1200").to_owned(),
            total_order: 1,
            data_collection_order: 1,
        }),
        now_ms: 1_764_151_117_250,
    }
}

fn change(op: Op, before: Option<Row>, after: Option<Row>) -> RowChange {
    RowChange { op, before, after }
}

fn encoded(format: Format, c: RowChange, gtid: Option<&str>) -> String {
    let p = encode(format, &table(), c, meta(gtid), 77).unwrap();
    String::from_utf8(p.bytes).unwrap()
}

const CANAL_TYPES: &str =
    r#""mysqlType":{"id":"bigint unsigned","name":"varchar","balance":"decimal","note":"text"}"#;
const CANAL_SQL_TYPES: &str = r#""sqlType":{"id":-5,"name":12,"balance":3,"note":2005}"#;

fn canal_expect(data: &str, old: &str, ty: &str) -> String {
    format!(
        r#"{{"data":{data},"database":"shop","es":1764151117000,"id":77,"isDdl":false,{CANAL_TYPES},"old":{old},"pkNames":["id"],"sql":"",{CANAL_SQL_TYPES},"table":"account","ts":1764151117250,"type":"{ty}"}}"#
    )
}

#[test]
fn canal_insert_has_string_values_null_and_big_unsigned() {
    let got = encoded(
        Format::Canal,
        change(Op::Create, None, Some(first())),
        Some("0-1-42"),
    );
    let data = r#"[{"id":"18446744073709551615","name":"ann","balance":"12.50","note":null}]"#;
    assert_eq!(got, canal_expect(data, "null", "INSERT"));
}

#[test]
fn canal_update_old_holds_only_changed_columns() {
    let got = encoded(
        Format::Canal,
        change(Op::Update, Some(first()), Some(second())),
        Some("0-1-42"),
    );
    let data = r#"[{"id":"18446744073709551615","name":"ann","balance":"-0.75","note":"hi"}]"#;
    let old = r#"[{"balance":"12.50","note":null}]"#;
    assert_eq!(got, canal_expect(data, old, "UPDATE"));
}

#[test]
fn canal_update_without_changes_has_null_old() {
    let got = encoded(
        Format::Canal,
        change(Op::Update, Some(first()), Some(first())),
        None,
    );
    assert!(got.contains(r#""old":null"#), "{got}");
}

#[test]
fn canal_delete_carries_the_deleted_row() {
    let got = encoded(
        Format::Canal,
        change(Op::Delete, Some(second()), None),
        Some("0-1-42"),
    );
    let data = r#"[{"id":"18446744073709551615","name":"ann","balance":"-0.75","note":"hi"}]"#;
    assert_eq!(got, canal_expect(data, "null", "DELETE"));
}

#[test]
fn canal_snapshot_rows_are_inserts_and_tables_without_pk_have_null_pk_names() {
    let mut t = table();
    t.pk.clear();
    let p = encode(
        Format::Canal,
        &t,
        change(Op::Read, None, Some(first())),
        meta(None),
        1,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&p.bytes).unwrap();
    assert_eq!(v["type"], "INSERT");
    assert_eq!(v["pkNames"], Value::Null);
    assert_eq!(key(Format::Canal, &t, &first()), None);
}

fn maxwell_expect(ty: &str, data: &str, old: Option<&str>) -> String {
    let old = old.map(|o| format!(r#","old":{o}"#)).unwrap_or_default();
    format!(
        r#"{{"database":"shop","table":"account","type":"{ty}","ts":1764151117,"xid":42,"position":"mysql-bin.000003:1234","gtid":"0-1-42","server_id":1001,"primary_key":{{"id":18446744073709551615}},"data":{data}{old}}}"#
    )
}

#[test]
fn maxwell_insert_is_typed_with_null_and_big_unsigned() {
    let got = encoded(
        Format::Maxwell,
        change(Op::Create, None, Some(first())),
        Some("0-1-42"),
    );
    let data = r#"{"id":18446744073709551615,"name":"ann","balance":"12.50","note":null}"#;
    assert_eq!(got, maxwell_expect("insert", data, None));
}

#[test]
fn maxwell_update_old_holds_only_changed_columns() {
    let got = encoded(
        Format::Maxwell,
        change(Op::Update, Some(first()), Some(second())),
        Some("0-1-42"),
    );
    let data = r#"{"id":18446744073709551615,"name":"ann","balance":"-0.75","note":"hi"}"#;
    let old = r#"{"balance":"12.50","note":null}"#;
    assert_eq!(got, maxwell_expect("update", data, Some(old)));
}

#[test]
fn maxwell_update_without_changes_has_no_old() {
    let got = encoded(
        Format::Maxwell,
        change(Op::Update, Some(first()), Some(first())),
        Some("0-1-42"),
    );
    assert!(!got.contains("\"old\""), "{got}");
}

#[test]
fn maxwell_delete_carries_the_deleted_row() {
    let got = encoded(
        Format::Maxwell,
        change(Op::Delete, Some(second()), None),
        Some("0-1-42"),
    );
    let data = r#"{"id":18446744073709551615,"name":"ann","balance":"-0.75","note":"hi"}"#;
    assert_eq!(got, maxwell_expect("delete", data, None));
}

#[test]
fn maxwell_commit_is_inserted_after_xid_once() {
    let mut p = encode(
        Format::Maxwell,
        &table(),
        change(Op::Create, None, Some(first())),
        meta(Some("0-1-42")),
        1,
    )
    .unwrap();
    assert!(p.mark_commit());
    assert!(!p.mark_commit(), "only once");
    let got = String::from_utf8(p.bytes).unwrap();
    assert!(
        got.starts_with(
            r#"{"database":"shop","table":"account","type":"insert","ts":1764151117,"xid":42,"commit":true,"position":"#
        ),
        "{got}"
    );
    serde_json::from_str::<Value>(&got).unwrap();
}

#[test]
fn maxwell_snapshot_rows_are_bootstrap_inserts_without_xid_or_commit() {
    let mut m = meta(None);
    m.transaction = None;
    let mut p = encode(
        Format::Maxwell,
        &table(),
        change(Op::Read, None, Some(first())),
        m,
        1,
    )
    .unwrap();
    assert!(!p.mark_commit());
    let v: Value = serde_json::from_slice(&p.bytes).unwrap();
    assert_eq!(v["type"], "bootstrap-insert");
    assert!(v.get("xid").is_none() && v.get("commit").is_none() && v.get("gtid").is_none());
}

#[test]
fn maxwell_xid_comes_from_the_gtid_or_the_start_position() {
    assert_eq!(xid(&meta(Some("0-1-42"))), Some(42));
    assert_eq!(
        xid(&meta(Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:23"))),
        Some(23)
    );
    assert_eq!(xid(&meta(None)), Some((3u64 << 32) | 1200));
}

#[test]
fn maxwell_key_names_database_table_and_pk_columns() {
    let mut t = table();
    t.columns
        .push(col("kind", ColumnType::MYSQL_TYPE_TINY, false));
    t.pk = vec![0, 4];
    let mut r = first();
    r.insert("kind".into(), json!(2));
    assert_eq!(
        key(Format::Maxwell, &t, &r).unwrap(),
        r#"{"database":"shop","table":"account","pk.id":18446744073709551615,"pk.kind":2}"#
    );
    assert_eq!(
        key(Format::Canal, &t, &r).unwrap(),
        r#"{"id":18446744073709551615,"kind":2}"#
    );
    t.pk.clear();
    assert_eq!(key(Format::Maxwell, &t, &r), None);
}

#[test]
fn key_columns_make_the_debezium_and_canal_key_and_place_maxwell_rows() {
    let mut t = table();
    t.columns
        .push(col("owner_id", ColumnType::MYSQL_TYPE_LONGLONG, true));
    t.apply_key_columns(&crate::keys::KeyColumns::parse(r"shop\.account:owner_id").unwrap())
        .unwrap();
    let mut rows = [first(), second()];
    rows[0].insert("owner_id".into(), json!(7));
    rows[1].insert("id".into(), json!(8));
    rows[1].insert("owner_id".into(), json!(7));
    let debezium_key = r#"{"owner_id":7}"#;
    for r in &rows {
        assert_eq!(key(Format::Debezium, &t, r).unwrap(), debezium_key);
        assert_eq!(key(Format::Canal, &t, r).unwrap(), debezium_key);
        assert!(
            key(Format::Maxwell, &t, r).unwrap().contains(r#""pk.id":"#),
            "Maxwell's key stays the primary key"
        );
        assert_eq!(partition(Format::Debezium, &t, r, 4), None);
        assert_eq!(partition(Format::Canal, &t, r, 4), None);
        // Where the partitioner puts the debezium key.
        assert_eq!(
            partition(Format::Maxwell, &t, r, 4),
            partition_of(debezium_key.as_bytes(), 4)
        );
    }
    assert_ne!(
        key(Format::Maxwell, &t, &rows[0]),
        key(Format::Maxwell, &t, &rows[1])
    );
    // Without key columns the Maxwell key places the row.
    t.key = None;
    assert!(!picks_partition(Format::Maxwell, &t));
    assert_eq!(partition(Format::Maxwell, &t, &rows[0], 4), None);
}

#[test]
fn partitions_are_librdkafkas_crc32_of_the_key() {
    // CRC-32 (IEEE) of "123456789" is 0xCBF43926 = 3421780262.
    assert_eq!(
        partition_of(b"123456789", 1_000_000),
        Some((3_421_780_262u32 % 1_000_000) as i32)
    );
    assert_eq!(partition_of(b"123456789", 1), Some(0));
    assert_eq!(partition_of(b"x", 0), None);
    assert_eq!(partition_of(b"x", -1), None);
}

#[test]
fn debezium_is_the_envelope_unchanged() {
    let c = change(Op::Update, Some(first()), Some(second()));
    let want = serde_json::to_vec(&crate::decode::envelope(
        &table(),
        c.clone(),
        meta(Some("0-1-42")),
    ))
    .unwrap();
    let mut got = encode(Format::Debezium, &table(), c, meta(Some("0-1-42")), 5).unwrap();
    assert_eq!(got.bytes, want);
    assert!(!got.mark_commit());
    assert!(Format::Debezium.emits_tombstones());
    assert!(!Format::Canal.emits_tombstones() && !Format::Maxwell.emits_tombstones());
}

#[test]
fn type_texts_and_codes_follow_the_column() {
    use ColumnType::*;
    let mut e = col("e", MYSQL_TYPE_ENUM, false);
    e.enum_labels = vec!["small".into(), "it's".into()];
    assert_eq!(MysqlType(&e).to_string(), "enum('small','it''s')");
    assert_eq!(sql_type(&e), 4);
    let mut b = col("b", MYSQL_TYPE_BLOB, false);
    b.charset = Some(crate::table::BINARY_CHARSET);
    assert_eq!(
        (MysqlType(&b).to_string(), sql_type(&b)),
        ("blob".into(), 2004)
    );
    let mut j = col("j", MYSQL_TYPE_BLOB, false);
    j.json = true;
    assert_eq!(
        (MysqlType(&j).to_string(), sql_type(&j)),
        ("json".into(), 12)
    );
    let mut vb = col("vb", MYSQL_TYPE_VARCHAR, false);
    vb.charset = Some(crate::table::BINARY_CHARSET);
    assert_eq!(sql_type(&vb), -3);
    let t = col("t", MYSQL_TYPE_TINY, true);
    assert_eq!(
        (MysqlType(&t).to_string(), sql_type(&t)),
        ("tinyint unsigned".into(), -6)
    );
    for (ty, code) in [
        (MYSQL_TYPE_DATETIME2, 93),
        (MYSQL_TYPE_TIMESTAMP2, 93),
        (MYSQL_TYPE_NEWDATE, 91),
        (MYSQL_TYPE_TIME2, 92),
        (MYSQL_TYPE_YEAR, 12),
        (MYSQL_TYPE_BIT, -7),
        (MYSQL_TYPE_STRING, 1),
        (MYSQL_TYPE_FLOAT, 7),
        (MYSQL_TYPE_DOUBLE, 8),
        (MYSQL_TYPE_INT24, 4),
        (MYSQL_TYPE_SHORT, 5),
    ] {
        assert_eq!(sql_type(&col("c", ty, false)), code, "{ty:?}");
    }
}

#[test]
fn format_names_parse_and_bad_ones_list_the_choices() {
    assert_eq!("canal".parse::<Format>().unwrap(), Format::Canal);
    assert_eq!(" Maxwell ".parse::<Format>().unwrap(), Format::Maxwell);
    let err = "avro".parse::<Format>().unwrap_err().to_string();
    assert!(err.contains("debezium, canal or maxwell"), "{err}");
    assert_eq!(
        serde_json::to_string(&Format::Maxwell).unwrap(),
        "\"maxwell\""
    );
    let err = serde_json::from_str::<Format>("\"xml\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("debezium, canal or maxwell"), "{err}");
}
