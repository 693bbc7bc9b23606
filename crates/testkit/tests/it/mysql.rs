use sqlx::Row;
use testkit::TestDb;

#[tokio::test]
async fn migrations_create_the_three_tables_with_their_indexes() {
    let db = TestDb::new().await;
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name",
    )
    .bind(&db.name)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    tables.sort();
    assert_eq!(tables, ["_sqlx_migrations", "counter", "follow", "user"]);

    let mut idx: Vec<(String, String)> = sqlx::query(
        "SELECT CAST(index_name AS CHAR), CAST(GROUP_CONCAT(column_name ORDER BY seq_in_index) AS CHAR) \
         FROM information_schema.statistics WHERE table_schema = ? AND table_name = 'follow' \
         GROUP BY index_name ORDER BY index_name",
    )
    .bind(&db.name)
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    idx.sort();
    assert_eq!(
        idx,
        [
            ("PRIMARY".to_owned(), "id".to_owned()),
            (
                "idx_follow_followers".into(),
                "to_id,deleted_at,created_at,from_id".into()
            ),
            (
                "idx_follow_following".into(),
                "from_id,deleted_at,created_at,to_id".into()
            ),
            ("uk_follow_pair".into(), "from_id,to_id".into()),
        ]
    );
    db.drop_db().await;
}

#[tokio::test]
async fn migrations_are_idempotent_and_constraints_hold() {
    let db = TestDb::new().await;
    // A second run applies nothing and does not fail.
    common::db::migrate(&db.pool).await.unwrap();

    sqlx::query("INSERT INTO user (username, password_hash) VALUES ('alice', 'x'), ('bob', 'y')")
        .execute(&db.pool)
        .await
        .unwrap();
    let dup = sqlx::query("INSERT INTO user (username, password_hash) VALUES ('ALICE', 'z')")
        .execute(&db.pool)
        .await;
    assert!(dup.is_err(), "usernames must be unique case-insensitively");

    sqlx::query("INSERT INTO follow (from_id, to_id) VALUES (1, 2)")
        .execute(&db.pool)
        .await
        .unwrap();
    let dup = sqlx::query("INSERT INTO follow (from_id, to_id) VALUES (1, 2)")
        .execute(&db.pool)
        .await;
    assert!(dup.is_err(), "a pair is followed at most once");

    sqlx::query("INSERT INTO counter (owner_id, kind, value, updated_at) VALUES (1, 1, 1, NOW(6)) ON DUPLICATE KEY UPDATE value = value + 1")
        .execute(&db.pool)
        .await
        .unwrap();
    let (value, micros): (i64, i64) = sqlx::query_as(
        "SELECT value, MICROSECOND(updated_at) FROM counter WHERE owner_id = 1 AND kind = 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(value, 1);
    assert!((0..1_000_000).contains(&micros));
    db.drop_db().await;
}

#[tokio::test]
async fn server_writes_a_full_row_image_binlog() {
    let db = TestDb::new().await;
    for (var, want) in [
        ("log_bin", "ON"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("binlog_row_metadata", "FULL"),
    ] {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SHOW GLOBAL VARIABLES LIKE '{var}'"
        )))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let value: String = row
            .try_get::<String, _>(1)
            .unwrap_or_else(|_| String::from_utf8(row.get::<Vec<u8>, _>(1)).unwrap());
        assert_eq!(value, want, "{var}");
    }
    db.drop_db().await;
}
