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

/// The primary-key columns as a JSON object in key order, each written by
/// `name` (`{"id":42}`, `{"owner_id":7,"kind":2}`; Maxwell's
/// `"pk.owner_id"`): the debezium and canal key, and the body of Maxwell's.
pub fn write_pk(
    info: &TableInfo,
    img: &impl Image,
    out: &mut Vec<u8>,
    mut name: impl FnMut(&mut Vec<u8>, &str),
) {
    for (k, &c) in info.pk.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        name(out, &info.columns[c].name);
        out.push(b':');
        img.write_column(info, c, out);
    }
}

/// The message key (debezium and canal formats): the primary key as a JSON
/// object, as [`cdc_event::key`] describes it; `None` without a primary key.
pub fn key(info: &TableInfo, img: &impl Image) -> Option<String> {
    if info.pk.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(16 * info.pk.len());
    out.push(b'{');
    write_pk(info, img, &mut out, write_str);
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
