//! Message keys: the row's key columns as a JSON object, in key order. The
//! key columns are the relay's `message_key_columns` for the table, else its
//! primary key in index order: by default `{"owner_id":7}` for `counter` (both
//! counters of a user share it), `{"from_id":1,"to_id":2}` for `follow` (one
//! key per pair, whatever the row's id), `{"id":42}` for `user`; with the
//! setting empty, `{"owner_id":7,"kind":2}` and `{"id":42}`. Same key → same
//! partition → per-key order (so per-row order while a row's key columns do
//! not change).

use serde_json::{Map, Value};

/// Builds the key for a row from its key columns (in key order).
/// Columns missing from the row are encoded as `null`.
pub fn encode_key(key_columns: &[&str], row: &Map<String, Value>) -> String {
    let mut key = Map::with_capacity(key_columns.len());
    for col in key_columns {
        key.insert(
            (*col).to_owned(),
            row.get(*col).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(key).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_keeps_index_order_not_alphabetical_order() {
        let row = json!({"value": 3, "owner_id": 7, "kind": 2});
        let key = encode_key(&["owner_id", "kind"], row.as_object().unwrap());
        assert_eq!(key, r#"{"owner_id":7,"kind":2}"#);
    }
}
