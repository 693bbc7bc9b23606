//! Message keys: the row's primary key as a JSON object with the key columns in
//! index order, e.g. `{"id":42}` or `{"owner_id":7,"kind":2}`. Same key → same
//! partition → per-row order.

use serde_json::{Map, Value};

/// Builds the key for a row from its primary-key columns (in index order).
/// Columns missing from the row are encoded as `null`.
pub fn encode_key(pk_columns: &[&str], row: &Map<String, Value>) -> String {
    let mut key = Map::with_capacity(pk_columns.len());
    for col in pk_columns {
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
