//! Message key columns: which columns make a table's Kafka message key
//! (`message_key_columns` / `RELAY_MESSAGE_KEY_COLUMNS`, Debezium's
//! `message.key.columns`).
//!
//! # Syntax
//! `<db>.<table>:<column>[,<column>...]` entries separated by `;`, e.g.
//! `.*\.counter:owner_id;.*\.follow:from_id,to_id`. As in Debezium, the
//! table part is a regular expression matched against the whole `db.table`
//! name (anchored at both ends, case-sensitive like the relay's filter), so a
//! plain `sluice.counter` names just that table, and `.*\.counter` a
//! `counter` table in any database. Columns are names, matched without regard
//! to case (as MySQL does); the key carries each under its name in the
//! table. The first entry that matches a table decides its key; a table no
//! entry matches is keyed by its primary key. An empty setting keys every
//! table by its primary key.
//!
//! # Default
//! [`DEFAULT`]: a user's two counters share the key `{"owner_id":7}`, so
//! one partition (and one syncer member) gets every write to that user's
//! counters, in commit order; a follow pair keeps the key
//! `{"from_id":1,"to_id":2}` through follow, unfollow and re-follow, even
//! when a re-follow is a new row with a new id. The patterns match any
//! database, because the relay has no "source database" setting of its own
//! (its filter may relay several, and every test runs in a database of its
//! own) and sluice's schema is the same wherever it is migrated.
//!
//! # Checks
//! A column an entry names must exist in every table the entry matches and
//! be published as is (not excluded, hashed or replaced: the key and the
//! consumers' order depend on it). At start-up the relay checks every
//! existing table that its filter relays and an entry matches
//! ([`check_tables`]) and refuses to start, naming the table and column;
//! a table created or altered later is checked when its first row arrives
//! ([`crate::table::TableInfo::apply_key_columns`]), and the relay stops
//! there with the same error. A key is never built from a missing column.

use std::collections::HashSet;

use regex::Regex;
use sqlx::MySqlPool;

use crate::columns::{ColumnRule, ColumnRules};
use crate::config::Filter;
use crate::error::{Error, Result};
use crate::schema;

/// The shipped rules: `counter` keyed by `owner_id`, `follow` by
/// `(from_id, to_id)`, in any database.
pub const DEFAULT: &str = r".*\.counter:owner_id;.*\.follow:from_id,to_id";

/// The setting's name, for error messages.
const SETTING: &str = "message_key_columns";

/// One `<db>.<table>:<columns>` entry.
#[derive(Debug, Clone)]
struct Entry {
    /// The table part as written.
    table: String,
    /// `table`, anchored.
    pattern: Regex,
    columns: Vec<String>,
}

/// The parsed `message_key_columns` setting.
#[derive(Debug, Clone, Default)]
pub struct KeyColumns {
    entries: Vec<Entry>,
}

impl KeyColumns {
    /// Parses the setting; an error names the entry and what is wrong with it.
    pub fn parse(setting: &str) -> std::result::Result<Self, String> {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        for raw in setting.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: &str| format!("{SETTING}: entry \"{raw}\": {why}");
            let shape = "expected <db>.<table>:<column>[,<column>...]";
            let Some((table, columns)) = raw.split_once(':') else {
                return Err(bad(shape));
            };
            let table = table.trim();
            if table.is_empty() || !table.contains('.') {
                return Err(bad(&format!(
                    "the table part must name <db>.<table>; {shape}"
                )));
            }
            let pattern = Regex::new(&format!("^(?:{table})$")).map_err(|e| {
                // The regex error spans lines (the pattern, a caret, the
                // reason); its last line is the reason.
                let text = e.to_string();
                bad(&format!(
                    "bad table pattern: {}",
                    text.lines().last().unwrap_or_default().trim()
                ))
            })?;
            let columns: Vec<String> = columns.split(',').map(|c| c.trim().to_owned()).collect();
            if columns.iter().any(String::is_empty) {
                return Err(bad(&format!("empty column name; {shape}")));
            }
            let mut names = HashSet::new();
            if let Some(dup) = columns
                .iter()
                .find(|c| !names.insert(c.to_ascii_lowercase()))
            {
                return Err(bad(&format!("column \"{dup}\" is named twice")));
            }
            if !seen.insert(table.to_owned()) {
                return Err(bad(&format!("\"{table}\" has an earlier entry")));
            }
            entries.push(Entry {
                table: table.to_owned(),
                pattern,
                columns,
            });
        }
        Ok(Self { entries })
    }

    /// Whether every table is keyed by its primary key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry_for(&self, db: &str, table: &str) -> Option<&Entry> {
        if self.entries.is_empty() {
            return None;
        }
        let full = format!("{db}.{table}");
        self.entries.iter().find(|e| e.pattern.is_match(&full))
    }

    /// Whether an entry names the key columns of `db.table`.
    pub fn matches(&self, db: &str, table: &str) -> bool {
        self.entry_for(db, table).is_some()
    }

    /// The key columns of `db.table` as indexes into `columns` (the table's
    /// column names in order), in the entry's order; `Ok(None)` when no
    /// entry matches (the primary key is the key). An error names the table
    /// and the missing column.
    pub fn resolve<'a>(
        &self,
        db: &str,
        table: &str,
        columns: impl Iterator<Item = &'a str> + Clone,
    ) -> std::result::Result<Option<Vec<usize>>, String> {
        let Some(entry) = self.entry_for(db, table) else {
            return Ok(None);
        };
        entry
            .columns
            .iter()
            .map(|want| {
                columns
                    .clone()
                    .position(|c| c.eq_ignore_ascii_case(want))
                    .ok_or_else(|| {
                        format!(
                            "{SETTING}: table {db}.{table} has no column \"{want}\" \
                             (entry \"{}:{}\"; its columns: {})",
                            entry.table,
                            entry.columns.join(","),
                            columns.clone().collect::<Vec<_>>().join(", ")
                        )
                    })
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// The error of a key column that a column rule excludes or masks.
pub fn masked_key_column(db: &str, table: &str, column: &str) -> Error {
    config_error(format!(
        "column rule on {db}.{table}.{column}: a {SETTING} column cannot be excluded or masked"
    ))
}

/// A configuration error of the relay.
pub fn config_error(message: String) -> Error {
    Error::Config(common::config::ConfigError::Invalid(message))
}

/// Start-up check: every existing base table the filter relays and an entry
/// matches has the entry's columns, none excluded or masked by `rules`.
/// Tables created later are checked at their first row.
pub async fn check_tables(
    pool: &MySqlPool,
    filter: &Filter,
    keys: &KeyColumns,
    rules: &ColumnRules,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
    )
    .fetch_all(pool)
    .await?;
    for (db, table) in tables {
        if !filter.allows(&db, &table) || !keys.matches(&db, &table) {
            continue;
        }
        let known = schema::load_known_columns(pool, &db, &table).await?;
        if known.is_empty() {
            // Dropped since the list was read.
            continue;
        }
        let Some(key) = keys
            .resolve(&db, &table, known.iter().map(|c| c.name.as_str()))
            .map_err(config_error)?
        else {
            continue;
        };
        for i in key {
            let column = &known[i].name;
            if rules.rule_for(&db, &table, column) != ColumnRule::Keep {
                return Err(masked_key_column(&db, &table, column));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNTER: [&str; 4] = ["owner_id", "kind", "value", "updated_at"];
    const FOLLOW: [&str; 5] = ["id", "from_id", "to_id", "created_at", "deleted_at"];

    fn resolve(keys: &KeyColumns, db: &str, table: &str, cols: &[&str]) -> Option<Vec<usize>> {
        keys.resolve(db, table, cols.iter().copied()).unwrap()
    }

    #[test]
    fn the_default_keys_counters_by_owner_and_follows_by_pair_in_any_database() {
        let keys = KeyColumns::parse(DEFAULT).unwrap();
        for db in ["sluice", "it_1234"] {
            assert_eq!(resolve(&keys, db, "counter", &COUNTER), Some(vec![0]));
            assert_eq!(resolve(&keys, db, "follow", &FOLLOW), Some(vec![1, 2]));
            assert_eq!(resolve(&keys, db, "user", &["id", "username"]), None);
        }
        // The dot is literal and the pattern anchored: no look-alike tables.
        for (db, table) in [("a", "bcounter"), ("a", "counters"), ("a", "follower")] {
            assert!(!keys.matches(db, table), "{db}.{table}");
        }
    }

    #[test]
    fn an_empty_setting_keys_every_table_by_its_primary_key() {
        for empty in ["", "  ", ";", " ; ;"] {
            let keys = KeyColumns::parse(empty).unwrap();
            assert!(keys.is_empty(), "{empty:?}");
            assert_eq!(resolve(&keys, "sluice", "counter", &COUNTER), None);
        }
    }

    #[test]
    fn plain_names_regexes_order_and_case() {
        let keys =
            KeyColumns::parse(" shop.orders : Customer_Id , id ; (shop|crm)\\..*:tenant ").unwrap();
        assert_eq!(
            resolve(&keys, "shop", "orders", &["id", "customer_id", "tenant"]),
            Some(vec![1, 0]),
            "entry order, columns matched without case"
        );
        assert!(!keys.matches("shopXorders", "x"));
        assert!(!keys.matches("other", "orders"));
        // The first matching entry decides.
        assert_eq!(
            resolve(&keys, "crm", "lead", &["id", "tenant"]),
            Some(vec![1])
        );
        assert_eq!(
            resolve(&keys, "shop", "items", &["tenant", "id"]),
            Some(vec![0])
        );
    }

    #[test]
    fn a_missing_column_names_the_table_and_the_column() {
        let keys = KeyColumns::parse(DEFAULT).unwrap();
        let err = keys
            .resolve("app", "counter", ["id", "kind"].into_iter())
            .unwrap_err();
        assert!(err.contains("app.counter"), "{err}");
        assert!(err.contains("\"owner_id\""), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
        let err = keys
            .resolve("app", "follow", ["id", "from_id"].into_iter())
            .unwrap_err();
        assert!(
            err.contains("app.follow") && err.contains("\"to_id\""),
            "{err}"
        );
    }

    #[test]
    fn badly_shaped_entries_are_refused_with_one_line() {
        for (bad, says) in [
            ("sluice.counter", "expected <db>.<table>:<column>"),
            ("counter:owner_id", "<db>.<table>"),
            (":owner_id", "<db>.<table>"),
            ("sluice.counter:", "empty column name"),
            ("sluice.counter:owner_id,,kind", "empty column name"),
            ("sluice.counter:owner_id,OWNER_ID", "named twice"),
            ("[x.counter:owner_id", "bad table pattern"),
            ("a.b:x;a.b:y", "earlier entry"),
        ] {
            let err = KeyColumns::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
            assert!(err.starts_with("message_key_columns: "), "{err}");
            assert!(!err.contains('\n'), "{bad:?}: one line: {err}");
        }
    }
}
