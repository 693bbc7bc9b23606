//! One row image, whichever decoder read it: the general decoder's typed
//! [`Row`] ([`crate::decode`]) or the fast decoder's JSON text
//! ([`crate::fastrow::Image`]). The message key and the change time are
//! computed here once, over this trait, for both.

use cdc_event::Row;
use cdc_event::time::{CHANGE_TIME_COLUMNS, parse_datetime_us};
use cdc_event::write::write_str;
use serde_json::Value;

use crate::table::TableInfo;

/// A decoded row image of a table, read column by column (`c`: the
/// column's index in [`TableInfo::columns`]).
pub trait Image {
    /// Appends column `c`'s value as JSON text (`null` when the image does
    /// not hold it).
    fn write_column(&self, info: &TableInfo, c: usize, out: &mut Vec<u8>);

    /// Column `c` read as a point in time (µs since the epoch): a date-time
    /// string, or a number of microseconds.
    fn column_time_us(&self, info: &TableInfo, c: usize) -> Option<i64>;
}

impl Image for Row {
    fn write_column(&self, info: &TableInfo, c: usize, out: &mut Vec<u8>) {
        let v = self.get(&info.columns[c].name).unwrap_or(&Value::Null);
        // Writing a JSON value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, v);
    }

    fn column_time_us(&self, info: &TableInfo, c: usize) -> Option<i64> {
        match self.get(&info.columns[c].name)? {
            Value::String(s) => parse_datetime_us(s),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
}

/// Writes the image as a JSON object, columns in table order, without the
/// columns a rule excludes ([`crate::columns`]): what the envelope carries
/// as `before`/`after`.
pub fn write_object(info: &TableInfo, img: &impl Image, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for (c, col) in info.columns.iter().enumerate() {
        if !col.rule.publishes() {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_str(out, &col.name);
        out.push(b':');
        img.write_column(info, c, out);
    }
    out.push(b'}');
}

/// The columns `cols` (indexes into [`TableInfo::columns`]) as the members
/// of a JSON object, in that order, each written by `name` (`"id":42`,
/// `"owner_id":7`; Maxwell's `"pk.owner_id":7`): the body of the debezium
/// and canal key (the key columns) and of Maxwell's (the primary key).
pub fn write_columns(
    info: &TableInfo,
    cols: &[usize],
    img: &impl Image,
    out: &mut Vec<u8>,
    mut name: impl FnMut(&mut Vec<u8>, &str),
) {
    for (k, &c) in cols.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        name(out, &info.columns[c].name);
        out.push(b':');
        img.write_column(info, c, out);
    }
}

/// The message key (debezium and canal formats): the table's key columns
/// ([`TableInfo::key_columns`]: the `message_key_columns` of the table,
/// else its primary key) as a JSON object in key order, e.g. `{"id":42}`,
/// `{"owner_id":7}`, `{"from_id":1,"to_id":2}` ([`cdc_event::key`]);
/// `None` for a table with neither. The columns are resolved once per
/// table, so building a key costs what it did for primary keys: one
/// allocation, the returned string.
pub fn key(info: &TableInfo, img: &impl Image) -> Option<String> {
    let cols = info.key_columns();
    if cols.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(16 * cols.len());
    out.push(b'{');
    write_columns(info, cols, img, &mut out, write_str);
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// When the change was made: the latest published change-time column of
/// the image ([`cdc_event::time`]).
pub fn change_time_us(info: &TableInfo, img: &impl Image) -> Option<i64> {
    info.columns
        .iter()
        .enumerate()
        .filter(|(_, col)| col.rule.publishes() && CHANGE_TIME_COLUMNS.contains(&col.name.as_str()))
        .filter_map(|(c, _)| img.column_time_us(info, c))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{self, KeyColumns};
    use crate::table::ColumnInfo;
    use mysql_async::consts::ColumnType::*;
    use serde_json::json;

    fn table(pk: Vec<usize>) -> TableInfo {
        TableInfo {
            db: "d".into(),
            table: "t".into(),
            columns: vec![
                ColumnInfo::text_column("value", MYSQL_TYPE_LONG, false),
                ColumnInfo::text_column("owner_id", MYSQL_TYPE_LONG, false),
                ColumnInfo::text_column("kind", MYSQL_TYPE_TINY, false),
                ColumnInfo::text_column("created_at", MYSQL_TYPE_DATETIME2, false),
                ColumnInfo::text_column("deleted_at", MYSQL_TYPE_DATETIME2, false),
                ColumnInfo::text_column("updated_at", MYSQL_TYPE_DATETIME2, false),
            ],
            pk,
            key: None,
            wire: None,
        }
    }

    #[test]
    fn keys_are_primary_key_json_in_index_order() {
        let row = json!({"value": 3, "owner_id": 7, "kind": 2});
        let row = row.as_object().unwrap();
        assert_eq!(
            key(&table(vec![1, 2]), row).unwrap(),
            r#"{"owner_id":7,"kind":2}"#
        );
        assert_eq!(
            key(&table(vec![1, 2]), row).unwrap(),
            cdc_event::key::encode_key(&["owner_id", "kind"], row)
        );
        assert_eq!(key(&table(vec![]), row), None);
    }

    fn sluice_table(table: &str, names: &[&str], pk: Vec<usize>) -> TableInfo {
        TableInfo {
            db: "sluice".into(),
            table: table.into(),
            columns: names
                .iter()
                .map(|n| ColumnInfo::text_column(n, MYSQL_TYPE_LONGLONG, true))
                .collect(),
            pk,
            key: None,
            wire: None,
        }
    }

    fn counter() -> TableInfo {
        sluice_table(
            "counter",
            &["owner_id", "kind", "value", "updated_at"],
            vec![0, 1],
        )
    }

    fn follow() -> TableInfo {
        sluice_table(
            "follow",
            &["id", "from_id", "to_id", "created_at", "deleted_at"],
            vec![0],
        )
    }

    fn keyed(mut info: TableInfo, setting: &str) -> TableInfo {
        info.apply_key_columns(&KeyColumns::parse(setting).unwrap())
            .unwrap();
        info
    }

    #[test]
    fn the_default_key_columns_key_counters_by_owner_and_follows_by_pair() {
        let counter = keyed(counter(), keys::DEFAULT);
        for kind in [1, 2] {
            let row = json!({"owner_id": 7, "kind": kind, "value": 3, "updated_at": null});
            assert_eq!(
                key(&counter, row.as_object().unwrap()).unwrap(),
                r#"{"owner_id":7}"#,
                "both counters of a user share one key"
            );
        }
        let follow = keyed(follow(), keys::DEFAULT);
        // A re-follow may be a new row with a new id: the key stays.
        for id in [42, 43] {
            let row = json!({"id": id, "from_id": 1, "to_id": 2, "created_at": null});
            assert_eq!(
                key(&follow, row.as_object().unwrap()).unwrap(),
                r#"{"from_id":1,"to_id":2}"#
            );
        }
        assert_eq!(
            key(
                &follow,
                json!({"to_id": 2, "id": 1, "from_id": 1})
                    .as_object()
                    .unwrap()
            )
            .unwrap(),
            r#"{"from_id":1,"to_id":2}"#,
            "the entry's order, not the image's"
        );
        // The same key from the general decoder's reference encoding.
        let row = json!({"id": 9, "from_id": 5, "to_id": 6});
        assert_eq!(
            key(&follow, row.as_object().unwrap()).unwrap(),
            cdc_event::key::encode_key(&["from_id", "to_id"], row.as_object().unwrap())
        );
    }

    #[test]
    fn an_empty_setting_keys_by_the_primary_key_again() {
        let row = json!({"owner_id": 7, "kind": 2, "value": 3});
        let counter = keyed(keyed(counter(), keys::DEFAULT), "");
        assert_eq!(counter.key, None);
        assert_eq!(
            key(&counter, row.as_object().unwrap()).unwrap(),
            r#"{"owner_id":7,"kind":2}"#
        );
        let row = json!({"id": 42, "from_id": 1, "to_id": 2});
        assert_eq!(
            key(&keyed(follow(), ""), row.as_object().unwrap()).unwrap(),
            r#"{"id":42}"#
        );
    }

    #[test]
    fn key_columns_give_a_table_without_primary_key_a_key() {
        let t = keyed(sluice_table("log", &["a", "b"], vec![]), r"sluice\.log:b");
        let row = json!({"a": 1, "b": "x"});
        assert_eq!(key(&t, row.as_object().unwrap()).unwrap(), r#"{"b":"x"}"#);
    }

    #[test]
    fn a_missing_or_masked_key_column_is_an_error_naming_table_and_column() {
        let mut t = sluice_table("counter", &["id", "kind", "value"], vec![0]);
        let err = t
            .apply_key_columns(&KeyColumns::parse(keys::DEFAULT).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sluice.counter") && err.contains("\"owner_id\""),
            "{err}"
        );
        let mut t = follow();
        t.columns[2].rule = crate::columns::ColumnRule::Exclude;
        let err = t
            .apply_key_columns(&KeyColumns::parse(keys::DEFAULT).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sluice.follow.to_id") && err.contains("excluded or masked"),
            "{err}"
        );
    }

    #[test]
    fn the_latest_stamp_of_a_row_is_its_change_time() {
        let row = json!({
            "created_at": "2026-11-26T10:00:00.000000",
            "deleted_at": "2026-11-26T10:00:05.000000",
            "updated_at": null,
        });
        let row = row.as_object().unwrap();
        let info = table(vec![1]);
        assert_eq!(
            change_time_us(&info, row),
            parse_datetime_us("2026-11-26T10:00:05")
        );
        assert_eq!(change_time_us(&info, &Row::new()), None);
        let mut hidden = info.clone();
        hidden.columns[4].rule = crate::columns::ColumnRule::Exclude;
        assert_eq!(
            change_time_us(&hidden, row),
            parse_datetime_us("2026-11-26T10:00:00"),
            "an excluded column is not read"
        );
    }
}
