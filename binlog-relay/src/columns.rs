//! Column rules: what the relay publishes of each column.
//!
//! A rule names a column as `db.table.column`, where `db` and `table` may be
//! `*`, and says one of:
//! - `keep`: publish the value as read (the default for every column);
//! - `exclude`: leave the column out of every image, as if the table did not
//!   have it (it is not even selected by a snapshot);
//! - `hash:<salt>`: publish the lowercase hex SHA-256 of the salt followed by
//!   the value's text (a string's characters, or the JSON text of any other
//!   value), so equal values stay joinable without being readable;
//! - `replace:<text>`: publish `<text>` instead of any non-NULL value.
//!
//! NULL stays NULL under every rule. The most specific rule wins (an exact
//! database over `*`, then an exact table over `*`). Primary-key columns
//! cannot be excluded or masked: the message key and the consumers' per-row
//! order depend on them, so such a rule stops the relay with a clear error
//! when it first meets the table. The same holds for the columns
//! `message_key_columns` names ([`crate::keys`]).
//!
//! Rules are applied once, to the `TableInfo` of each table map or
//! snapshot (`TableInfo::apply_rules`), so the general decoder, the fast decoder, the snapshot, every
//! output format and the dry run all see the same columns. The fast decoder
//! handles `exclude` by skipping the column; a table with a `hash` or
//! `replace` rule is decoded by the general decoder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The column rules of the shipped configuration: password hashes never
/// leave the database (the syncer does not need them).
pub fn default_rules() -> BTreeMap<String, String> {
    BTreeMap::from([("*.user.password_hash".to_owned(), "exclude".to_owned())])
}

/// What is published of one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ColumnRule {
    #[default]
    Keep,
    Exclude,
    /// SHA-256 of the salt followed by the value's text, in hex.
    Hash(Arc<str>),
    /// A fixed text instead of the value.
    Replace(Arc<str>),
}

impl FromStr for ColumnRule {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            None if s == "keep" => Ok(Self::Keep),
            None if s == "exclude" => Ok(Self::Exclude),
            Some(("hash", salt)) if !salt.is_empty() => Ok(Self::Hash(salt.into())),
            Some(("hash", _)) => Err("hash needs a salt: hash:<salt>".into()),
            Some(("replace", text)) => Ok(Self::Replace(text.into())),
            _ => Err(format!(
                "{s:?} is not a column rule (keep, exclude, hash:<salt> or replace:<text>)"
            )),
        }
    }
}

impl ColumnRule {
    /// Whether the column appears in images at all.
    pub fn publishes(&self) -> bool {
        !matches!(self, Self::Exclude)
    }

    /// The value to publish for `v`; `None` for an excluded column.
    pub fn apply(&self, v: Value) -> Option<Value> {
        match self {
            Self::Keep => Some(v),
            Self::Exclude => None,
            _ if v.is_null() => Some(v),
            Self::Replace(text) => Some(Value::String(text.to_string())),
            Self::Hash(salt) => {
                let mut h = Sha256::new();
                h.update(salt.as_bytes());
                match &v {
                    Value::String(s) => h.update(s.as_bytes()),
                    other => h.update(other.to_string().as_bytes()),
                }
                let mut hex = String::with_capacity(64);
                for b in h.finalize() {
                    let _ = write!(hex, "{b:02x}");
                }
                Some(Value::String(hex))
            }
        }
    }
}

/// `db.table.column` with `*` allowed for `db` and `table`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    db: Option<String>,
    table: Option<String>,
    column: String,
}

impl Pattern {
    fn parse(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let [db, table, column] = parts[..] else {
            return Err(format!("{s:?} is not db.table.column"));
        };
        if [db, table, column].iter().any(|p| p.is_empty()) || column == "*" {
            return Err(format!(
                "{s:?}: every part must be non-empty and the column exact"
            ));
        }
        let part = |p: &str| (p != "*").then(|| p.to_owned());
        Ok(Self {
            db: part(db),
            table: part(table),
            column: column.to_owned(),
        })
    }

    /// How specific a match is (higher wins), or `None` when it does not match.
    fn rank(&self, db: &str, table: &str, column: &str) -> Option<u8> {
        let fits = |p: &Option<String>, v: &str| p.as_deref().is_none_or(|p| p == v);
        (self.column == column && fits(&self.db, db) && fits(&self.table, table))
            .then(|| u8::from(self.db.is_some()) * 2 + u8::from(self.table.is_some()))
    }
}

/// Every configured column rule.
#[derive(Debug, Clone, Default)]
pub struct ColumnRules {
    rules: Vec<(Pattern, ColumnRule)>,
}

impl ColumnRules {
    /// Parses the `columns` setting (`db.table.column` → rule).
    pub fn parse(map: &BTreeMap<String, String>) -> std::result::Result<Self, String> {
        let rules = map
            .iter()
            .map(|(k, v)| {
                let rule = v.parse().map_err(|e| format!("columns.{k:?}: {e}"))?;
                Ok((
                    Pattern::parse(k).map_err(|e| format!("columns: {e}"))?,
                    rule,
                ))
            })
            .collect::<std::result::Result<_, String>>()?;
        Ok(Self { rules })
    }

    /// Whether there is no rule at all (every column kept).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule of one column.
    pub fn rule_for(&self, db: &str, table: &str, column: &str) -> ColumnRule {
        self.rules
            .iter()
            .filter_map(|(p, r)| Some((p.rank(db, table, column)?, r)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(pairs: &[(&str, &str)]) -> ColumnRules {
        let map = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ColumnRules::parse(&map).unwrap()
    }

    #[test]
    fn rule_texts_parse_and_bad_ones_are_refused() {
        assert_eq!("keep".parse(), Ok(ColumnRule::Keep));
        assert_eq!("exclude".parse(), Ok(ColumnRule::Exclude));
        assert_eq!("hash:s1".parse(), Ok(ColumnRule::Hash("s1".into())));
        assert_eq!("replace:***".parse(), Ok(ColumnRule::Replace("***".into())));
        assert_eq!("replace:".parse(), Ok(ColumnRule::Replace("".into())));
        for bad in ["", "drop", "hash", "hash:", "mask:x"] {
            assert!(bad.parse::<ColumnRule>().is_err(), "{bad:?} accepted");
        }
        for bad in ["user.password_hash", "a.b.c.d", "a..c", "a.b.*", ".b.c"] {
            let map = BTreeMap::from([(bad.to_owned(), "exclude".to_owned())]);
            assert!(ColumnRules::parse(&map).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let r = rules(&[
            ("*.user.email", "exclude"),
            ("app.user.email", "hash:s"),
            ("app.*.email", "replace:x"),
            ("*.*.note", "replace:-"),
        ]);
        assert_eq!(
            r.rule_for("app", "user", "email"),
            ColumnRule::Hash("s".into())
        );
        assert_eq!(
            r.rule_for("app", "other", "email"),
            ColumnRule::Replace("x".into())
        );
        assert_eq!(r.rule_for("shop", "user", "email"), ColumnRule::Exclude);
        assert_eq!(
            r.rule_for("shop", "order", "note"),
            ColumnRule::Replace("-".into())
        );
        assert_eq!(r.rule_for("shop", "order", "email"), ColumnRule::Keep);
    }

    #[test]
    fn masks_keep_null_and_hash_the_value_text() {
        let hash = ColumnRule::Hash("salt".into());
        let a = hash.apply(json!("secret")).unwrap();
        assert_eq!(
            a,
            json!("bede90386d450cea8b77b822f8887065e4e5abf132c2f9dccfcc7fbd4cba5e35"),
            "sha256(\"saltsecret\")"
        );
        assert_ne!(a, hash.apply(json!("secrets")).unwrap());
        assert_eq!(a, hash.apply(json!("secret")).unwrap(), "deterministic");
        assert_ne!(
            a,
            ColumnRule::Hash("other".into())
                .apply(json!("secret"))
                .unwrap()
        );
        // A number hashes as its JSON text.
        assert_eq!(hash.apply(json!(42)), hash.apply(json!("42")));
        assert_eq!(hash.apply(Value::Null), Some(Value::Null));
        let replace = ColumnRule::Replace("***".into());
        assert_eq!(replace.apply(json!(7)), Some(json!("***")));
        assert_eq!(replace.apply(Value::Null), Some(Value::Null));
        assert_eq!(ColumnRule::Exclude.apply(json!(1)), None);
        assert_eq!(ColumnRule::Keep.apply(json!(1)), Some(json!(1)));
    }
}
