//! Unit tests of the parent module.

use super::*;
use crate::columns::default_rules;
use std::collections::BTreeMap;

fn rules(pairs: &[(&str, &str)]) -> ColumnRules {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ColumnRules::parse(&map).unwrap()
}

fn user_table() -> TableInfo {
    let col = |n: &str| ColumnInfo::text_column(n, ColumnType::MYSQL_TYPE_VARCHAR, false);
    TableInfo {
        db: "sluice".into(),
        table: "user".into(),
        columns: vec![col("id"), col("username"), col("password_hash")],
        pk: vec![0],
        key: None,
        wire: Some(vec![]),
    }
}

#[test]
fn applying_sets_rules_and_refuses_key_columns() {
    let mut t = user_table();
    t.apply_rules(&ColumnRules::parse(&default_rules()).unwrap())
        .unwrap();
    assert_eq!(t.columns[2].rule, ColumnRule::Exclude);
    assert_eq!(t.columns[1].rule, ColumnRule::Keep);
    assert!(t.wire.is_some(), "exclusion alone keeps the fast path");

    let mut t = user_table();
    t.apply_rules(&rules(&[("sluice.user.username", "hash:s")]))
        .unwrap();
    assert!(
        t.wire.is_none(),
        "a masked table goes to the general decoder"
    );

    let mut t = user_table();
    let err = t
        .apply_rules(&rules(&[("*.user.id", "exclude")]))
        .unwrap_err();
    assert!(err.to_string().contains("primary-key"), "{err}");
}

fn known(name: &str, ty: &str) -> KnownColumn {
    KnownColumn {
        name: name.into(),
        data_type: ty.into(),
        json: false,
        primary: false,
    }
}

#[test]
fn matching_schemas_have_no_diff() {
    let types = [
        ColumnType::MYSQL_TYPE_LONGLONG,
        ColumnType::MYSQL_TYPE_VARCHAR,
        ColumnType::MYSQL_TYPE_DATETIME2,
    ];
    let cols = [
        known("id", "bigint"),
        known("name", "varchar"),
        known("at", "datetime"),
    ];
    assert_eq!(diff_columns(&types, &cols), None);
}

#[test]
fn an_added_column_is_reported_with_a_diff() {
    let types = [
        ColumnType::MYSQL_TYPE_LONGLONG,
        ColumnType::MYSQL_TYPE_VARCHAR,
    ];
    let cols = [
        known("id", "bigint"),
        known("name", "varchar"),
        known("bio", "text"),
    ];
    let diff = diff_columns(&types, &cols).unwrap();
    assert!(
        diff.contains("column count: binlog event has 2, schema has 3"),
        "{diff}"
    );
    assert!(
        diff.contains("#2 bio: in schema (text), not in binlog event"),
        "{diff}"
    );
}

#[test]
fn a_changed_type_is_reported_with_both_sides() {
    let types = [ColumnType::MYSQL_TYPE_LONGLONG, ColumnType::MYSQL_TYPE_LONG];
    let cols = [known("id", "bigint"), known("name", "varchar")];
    let diff = diff_columns(&types, &cols).unwrap();
    assert!(
        diff.contains("#1 name: binlog integer, schema varchar"),
        "{diff}"
    );
}

#[test]
fn without_names_a_mismatch_stops_instead_of_misaligning() {
    let map = MapColumns {
        wire: None,
        types: vec![ColumnType::MYSQL_TYPE_LONGLONG],
        names: None,
        unsigned: vec![false],
        charsets: vec![None],
        enums: vec![vec![]],
        sets: vec![vec![]],
        pk: vec![],
        shapes: vec![Shape::default()],
    };
    let cols = [known("id", "bigint"), known("extra", "int")];
    let err = build_info("d", "t", map.clone(), Some(&cols), &mut HashSet::new()).unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    let mut pk = known("id", "bigint");
    pk.primary = true;
    let info = build_info("d", "t", map, Some(&[pk]), &mut HashSet::new()).unwrap();
    assert_eq!(info.pk_names(), ["id"]);
}
