//! The schema history across a replay, on rows written while the server's
//! `binlog_row_metadata` was MINIMAL (table maps without column names).
//!
//! A test binary of its own: the setting is global on MariaDB, and the
//! relay tests of `it` must not see their rows written without names.

#[allow(dead_code)]
#[path = "it/helpers.rs"]
mod helpers;

use std::collections::BTreeMap;

use binlog_relay::RunOptions;
use binlog_relay::position::StartFrom;
use serde_json::Value;

use helpers::{Env, Msg, consume_until};

/// Sets the server's `binlog_row_metadata` to MINIMAL and back to its old
/// value when dropped, panics included.
struct Minimal {
    url: String,
    old: String,
}

impl Minimal {
    async fn set(env: &Env) -> Self {
        let (old,): (String,) = sqlx::query_as("SELECT CAST(@@GLOBAL.binlog_row_metadata AS CHAR)")
            .fetch_one(&env.db.pool)
            .await
            .expect("binlog_row_metadata");
        env.exec("SET GLOBAL binlog_row_metadata = MINIMAL").await;
        Self {
            url: env.db.url.clone(),
            old,
        }
    }
}

impl Drop for Minimal {
    fn drop(&mut self) {
        let (url, old) = (self.url.clone(), self.old.clone());
        // Drop cannot await: restore on a runtime of its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let pool = sqlx::MySqlPool::connect(&url).await.expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SET GLOBAL binlog_row_metadata = {old}"
                )))
                .execute(&pool)
                .await
                .expect("restore binlog_row_metadata");
            });
        })
        .join()
        .expect("restore thread");
    }
}

/// Each row's id → its sorted column names, from the replayed messages.
fn columns_by_id(msgs: &[Msg]) -> BTreeMap<i64, Vec<String>> {
    let mut out = BTreeMap::new();
    for m in msgs {
        if m.headers.get(cdc_event::HEADER_REPLAY).map(String::as_str) != Some("1") {
            continue;
        }
        let Some(after) = m.value.as_ref().map(|v| &v["after"]) else {
            continue;
        };
        if let (Some(id), Some(o)) = (after["id"].as_i64(), after.as_object()) {
            let mut cols: Vec<String> = o.keys().cloned().collect();
            cols.sort();
            out.insert(id, cols);
        }
    }
    out
}

#[tokio::test]
async fn a_replay_across_an_add_column_decodes_every_minimal_metadata_row_with_the_schema_of_its_time()
 {
    let env = Env::new().await;
    env.create_topics(&["t"]).await;
    let topic = env.topic("t");
    let relay = env.start(RunOptions::default()).await;

    env.exec("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(20) NOT NULL)")
        .await;
    let before_rows = env.binlog_end().await;
    {
        let _minimal = Minimal::set(&env).await;
        env.exec("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
            .await;
        env.exec("ALTER TABLE t ADD COLUMN b INT NOT NULL DEFAULT 7 AFTER id")
            .await;
        env.exec("INSERT INTO t (id, b, a) VALUES (3, 30, 'three')")
            .await;
    }
    // The live relay decoded them too, and recorded the history.
    let live = consume_until(&env, std::slice::from_ref(&topic), "rows 1-3 live", |m| {
        m.iter()
            .any(|m| m.value.as_ref().is_some_and(|v| v["after"]["id"] == 3))
    })
    .await;
    let row3 = live
        .iter()
        .filter_map(|m| m.value.as_ref())
        .find(|v| v["after"]["id"] == 3)
        .unwrap();
    assert_eq!(row3["after"]["b"], 30);
    relay.stop().await.expect("clean stop");

    // Today's schema has three columns; rows 1 and 2 have two. A relay
    // without this history (another topic prefix) still refuses to guess:
    // it stops with the diff.
    let mut bare = env.settings();
    bare.kafka.topic_prefix = format!("{}-nohistory", env.kafka.prefix);
    bare.state_dir = env.state_dir.join("nohistory");
    let app = binlog_relay::Application::build(
        bare,
        RunOptions {
            from: Some(before_rows.parse::<StartFrom>().expect("position")),
            ..RunOptions::default()
        },
    )
    .await
    .expect("relay builds");
    let outcome = tokio::time::timeout(
        helpers::DEADLINE,
        app.run_until_stopped(std::future::pending()),
    )
    .await
    .expect("a relay without history stops by itself");
    let e = outcome.expect_err("rows without names and no history");
    assert!(e.to_string().contains("column count"), "{e}");

    let relay = env
        .start(RunOptions {
            from: Some(before_rows.parse::<StartFrom>().expect("position")),
            ..RunOptions::default()
        })
        .await;
    let msgs = consume_until(
        &env,
        std::slice::from_ref(&topic),
        "rows 1-3 replayed",
        |m| columns_by_id(m).len() >= 3,
    )
    .await;
    let cols = columns_by_id(&msgs);
    let v = |cols: &[&str]| cols.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
    assert_eq!(cols[&1], v(&["a", "id"]));
    assert_eq!(cols[&2], v(&["a", "id"]));
    assert_eq!(cols[&3], v(&["a", "b", "id"]));
    let replayed: Vec<&Value> = msgs
        .iter()
        .filter(|m| m.headers.get(cdc_event::HEADER_REPLAY).map(String::as_str) == Some("1"))
        .filter_map(|m| m.value.as_ref())
        .collect();
    let one = replayed
        .iter()
        .find(|v| v["after"]["id"] == 1)
        .expect("row 1");
    assert_eq!(one["after"]["a"], "one", "values land in the right columns");
    let three = replayed
        .iter()
        .find(|v| v["after"]["id"] == 3)
        .expect("row 3");
    assert_eq!(three["after"]["a"], "three");
    assert_eq!(three["after"]["b"], 30);
    assert_eq!(relay.status().await["state"], "streaming");

    relay.stop().await.expect("clean stop");
    env.cleanup().await;
}
