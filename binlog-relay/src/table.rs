//! A table as the decoders need it, as plain data: its columns (name, real
//! type, signedness, character set, ENUM/SET labels, JSON-ness, the column
//! rule), primary key and message key columns, and the binlog layout the
//! fast decoder reads.
//! Built by [`crate::schema`] from table maps and `information_schema`, by
//! [`crate::snapshot`] from `information_schema` alone; read by the
//! decoders and the formats. No I/O.

use mysql_async::consts::ColumnType;

use crate::columns::{ColumnRule, ColumnRules};
use crate::error::{Error, Result};
use crate::keys::{self, KeyColumns};

/// The `binary` character set id: values of such columns are bytes, not text.
pub const BINARY_CHARSET: u16 = 63;

/// One column as the rows event needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    /// The real column type (ENUM/SET resolved).
    pub col_type: ColumnType,
    pub unsigned: bool,
    /// Character set id for character columns, when the binlog says.
    pub charset: Option<u16>,
    /// ENUM labels, 1-based index in the binlog → `labels[i-1]`.
    pub enum_labels: Vec<String>,
    /// SET labels, bit i → `labels[i]`.
    pub set_labels: Vec<String>,
    /// A JSON column (MySQL's native type or MariaDB's LONGTEXT alias).
    pub json: bool,
    /// What is published of the column ([`crate::columns`]).
    pub rule: ColumnRule,
    /// Size, precision and nullability: what Debezium's encoding and schema
    /// block need beyond the type ([`crate::format::connect`]).
    pub shape: Shape,
}

/// A column's declared size, precision and nullability, from the table
/// map's metadata (binlog) or `information_schema` (snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Fractional-second digits of DATETIME, TIME and TIMESTAMP (0–6).
    pub fsp: u8,
    /// DECIMAL's precision and scale.
    pub precision: u8,
    pub scale: u8,
    /// BIT(n)'s n.
    pub bits: u16,
    /// CHAR(n) / BINARY(n): n in bytes (the binlog drops BINARY's trailing
    /// zero bytes).
    pub length: u16,
    pub nullable: bool,
    /// A JSON column whose values are kept as their text (MariaDB's
    /// `LONGTEXT … json_valid` alias in Debezium's encoding, which sends
    /// JSON as a string).
    pub json_text: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            fsp: 0,
            precision: 0,
            scale: 0,
            bits: 0,
            length: 0,
            nullable: true,
            json_text: false,
        }
    }
}

impl ColumnInfo {
    /// A column with the utf8mb4 character set and no labels (unit tests).
    #[cfg(test)]
    pub fn text_column(name: &str, col_type: ColumnType, unsigned: bool) -> Self {
        Self {
            name: name.into(),
            col_type,
            unsigned,
            charset: Some(45),
            enum_labels: vec![],
            set_labels: vec![],
            json: false,
            rule: ColumnRule::Keep,
            shape: Shape::default(),
        }
    }

    /// Whether string values of this column are binary (emitted as base64).
    pub fn is_binary(&self) -> bool {
        self.charset == Some(BINARY_CHARSET)
    }
}

/// A table as seen by one TABLE_MAP event.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub db: String,
    pub table: String,
    pub columns: Vec<ColumnInfo>,
    /// Indexes of the primary-key columns, in key order.
    pub pk: Vec<usize>,
    /// Indexes of the message key's columns, in key order, when
    /// `message_key_columns` names them for this table ([`crate::keys`]);
    /// `None`: the primary key. Resolved once per table
    /// ([`TableInfo::apply_key_columns`]), read per row by
    /// [`crate::image::key`].
    pub key: Option<Vec<usize>>,
    /// The columns' binlog layout for the fast decoder (`None`: tables not
    /// read from a table map, or with a type it does not handle).
    pub wire: Option<Vec<Wire>>,
}

impl TableInfo {
    /// `db.table`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.db, self.table)
    }

    /// Sets every column's rule from `rules` ([`crate::columns`]). A table
    /// with a `hash` or `replace` rule loses its fast layout (the general
    /// decoder masks); a rule on a primary-key column is an error.
    pub fn apply_rules(&mut self, rules: &ColumnRules) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let mut masked = false;
        for (i, col) in self.columns.iter_mut().enumerate() {
            col.rule = rules.rule_for(&self.db, &self.table, &col.name);
            if col.rule == ColumnRule::Keep {
                continue;
            }
            if self.pk.contains(&i) {
                return Err(Error::Config(common::config::ConfigError::Invalid(
                    format!(
                        "column rule on {}.{}.{}: a primary-key column cannot be excluded or masked",
                        self.db, self.table, col.name
                    ),
                )));
            }
            masked |= col.rule.publishes();
        }
        if masked {
            self.wire = None;
        }
        Ok(())
    }

    /// Resolves the message key columns from `keys` (after
    /// [`TableInfo::apply_rules`]): an error, naming the table and the
    /// column, when the table lacks a named column or a column rule
    /// excludes or masks one.
    pub fn apply_key_columns(&mut self, keys: &KeyColumns) -> Result<()> {
        self.key = keys
            .resolve(
                &self.db,
                &self.table,
                self.columns.iter().map(|c| c.name.as_str()),
            )
            .map_err(keys::config_error)?;
        for &i in self.key.as_deref().unwrap_or_default() {
            if self.columns[i].rule != ColumnRule::Keep {
                return Err(keys::masked_key_column(
                    &self.db,
                    &self.table,
                    &self.columns[i].name,
                ));
            }
        }
        Ok(())
    }

    /// Indexes of the message key's columns, in key order: the configured
    /// key columns, else the primary key.
    pub fn key_columns(&self) -> &[usize] {
        self.key.as_deref().unwrap_or(&self.pk)
    }

    /// The Debezium drop-in encoding sends JSON columns as their text:
    /// MariaDB's `LONGTEXT … json_valid` columns keep their bytes as
    /// written instead of being parsed (`Shape::json_text` remembers that
    /// they are JSON, for the schema block).
    pub fn keep_json_text(&mut self) {
        for c in &mut self.columns {
            if c.json {
                c.json = false;
                c.shape.json_text = true;
            }
        }
    }

    /// Names of the primary-key columns, in key order.
    pub fn pk_names(&self) -> Vec<&str> {
        self.pk
            .iter()
            .filter_map(|&i| self.columns.get(i))
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// How one column's value is laid out in a row image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Little-endian integer of 1, 2, 3, 4 or 8 bytes.
    Int { len: u8, unsigned: bool },
    /// A length prefix of 1–4 bytes, then the bytes (VARCHAR, CHAR, BLOB, TEXT).
    Bytes { prefix: u8 },
    /// Anything else: parsed by `mysql_common` with the table map's type and
    /// metadata.
    Other {
        ty: ColumnType,
        meta: [u8; 2],
        unsigned: bool,
    },
}
