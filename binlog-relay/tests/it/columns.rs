//! Column rules (issue #17, finding 1): `user.password_hash` never reaches
//! a topic, in any format, from the snapshot or the stream, nor in a dry
//! run; `hash` and `replace` rules mask values.

use binlog_relay::format::Format;
use binlog_relay::{RunOptions, Settings};
use serde_json::Value;

use crate::helpers::{Env, Msg, consume_until};

const SECRET: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2VjcmV0LXNhbHQ$SECRET-HASH";

/// sha256("pepper" + "hello"), the `hash:pepper` mask of `hello`.
const HELLO_HASHED: &str = "711394d33945fda478f3c0c38d0211ccf58e1f50416321a305e09e6709d00564";

fn insert_user(id: u32, signature: &str) -> String {
    format!(
        "INSERT INTO user (id, username, password_hash, signature, avatar) \
         VALUES ({id}, 'u{id}', '{SECRET}', '{signature}', 'https://img/{id}')"
    )
}

/// Every image of a message in `format`, as JSON objects.
fn images(format: Format, v: &Value) -> Vec<&serde_json::Map<String, Value>> {
    let fields: &[&str] = match format {
        Format::Debezium => &["before", "after"],
        Format::Canal => &["data", "old", "mysqlType", "sqlType"],
        Format::Maxwell => &["data", "old"],
    };
    let mut out = Vec::new();
    for f in fields {
        match v.get(f) {
            Some(Value::Object(o)) => out.push(o),
            Some(Value::Array(a)) => out.extend(a.iter().filter_map(Value::as_object)),
            _ => {}
        }
    }
    out
}

/// A snapshot of one user, then an insert, a password change and a delete;
/// returns the messages of the user topic.
async fn run_user_changes(env: &Env, settings: Settings) -> Vec<Msg> {
    env.create_topics(&["user"]).await;
    env.exec(&insert_user(1, "hello")).await;
    let db = env.db.name.clone();
    let relay = env
        .start_with(
            settings,
            RunOptions {
                snapshot: vec![format!("{db}.user")],
                ..RunOptions::default()
            },
        )
        .await;
    // The snapshot copies user 1 before anything else is written: writes
    // racing the copy would be read by it too (a row inserted and updated
    // before the copy reaches it is copied as it is then).
    consume_until(env, &[env.topic("user")], "the snapshot of user 1", |m| {
        m.iter().any(|m| m.value.is_some())
    })
    .await;
    env.exec(&insert_user(2, "hello")).await;
    env.exec("UPDATE user SET password_hash = 'NEW-SECRET', signature = 'hi' WHERE id = 2")
        .await;
    env.exec("DELETE FROM user WHERE id = 1").await;
    let msgs = consume_until(
        env,
        &[env.topic("user")],
        "snapshot, insert, update, delete",
        |m| m.iter().filter(|m| m.value.is_some()).count() >= 4,
    )
    .await;
    relay.stop().await.expect("relay stops cleanly");
    msgs.into_iter().filter(|m| m.value.is_some()).collect()
}

fn assert_no_password_hash(format: Format, msgs: &[Msg]) {
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    for m in msgs {
        let v = m.value.as_ref().expect("value");
        let text = v.to_string();
        assert!(!text.contains("password_hash"), "{format}: {text}");
        assert!(!text.contains("SECRET"), "{format}: {text}");
        let imgs = images(format, v);
        assert!(!imgs.is_empty(), "{format}: no images in {text}");
        assert!(
            imgs.iter().any(|o| o.contains_key("username")),
            "{format}: other columns stay: {text}"
        );
    }
}

#[tokio::test]
async fn password_hashes_are_excluded_by_default_on_the_fast_path() {
    let env = Env::new().await;
    let msgs = run_user_changes(&env, env.settings()).await;
    assert_no_password_hash(Format::Debezium, &msgs);
    // Tombstones follow deletes as before.
    env.cleanup().await;
}

#[tokio::test]
async fn canal_with_a_hash_rule_masks_and_excludes() {
    let env = Env::new().await;
    let mut settings = Settings {
        format: Format::Canal,
        ..env.settings()
    };
    settings.columns.insert(
        format!("{}.user.signature", env.db.name),
        "hash:pepper".into(),
    );
    let msgs = run_user_changes(&env, settings).await;
    assert_no_password_hash(Format::Canal, &msgs);
    let first = msgs[0].value.as_ref().unwrap();
    let sig = &first["data"][0]["signature"];
    assert_eq!(sig, HELLO_HASHED, "{first}");
    let text = format!("{msgs:?}");
    assert!(!text.contains("hello"), "{first}");
    env.cleanup().await;
}

#[tokio::test]
async fn maxwell_with_a_replace_rule_masks_and_excludes() {
    let env = Env::new().await;
    let mut settings = Settings {
        format: Format::Maxwell,
        ..env.settings()
    };
    settings
        .columns
        .insert("*.user.avatar".into(), "replace:[hidden]".into());
    let msgs = run_user_changes(&env, settings).await;
    assert_no_password_hash(Format::Maxwell, &msgs);
    for m in &msgs {
        let data = &m.value.as_ref().unwrap()["data"];
        assert_eq!(data["avatar"], "[hidden]", "{data}");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn a_rule_on_a_key_column_stops_the_relay_with_a_clear_error() {
    let env = Env::new().await;
    env.create_topics(&["user"]).await;
    let mut settings = env.settings();
    settings
        .columns
        .insert("*.user.id".into(), "exclude".into());
    let relay = env.start_with(settings, RunOptions::default()).await;
    env.exec(&insert_user(3, "x")).await;
    let result = tokio::time::timeout(crate::helpers::DEADLINE, relay.handle)
        .await
        .expect("the relay stops by itself")
        .expect("relay task");
    let err = result.expect_err("a key column rule is an error");
    assert!(err.to_string().contains("primary-key"), "{err}");
    env.cleanup().await;
}

#[tokio::test]
async fn the_dry_run_prints_no_password_hash() {
    let env = Env::new().await;
    let from = env.binlog_end().await;
    env.exec(&insert_user(4, "dry")).await;
    let until = env.binlog_end().await;
    env.exec(&insert_user(5, "after")).await;
    let s = env.settings();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_binlog-relay"));
    cmd.args(["run", "--dry-run", "--from", &from, "--until", &until])
        .env("SLUICE_DEV", "true")
        .env("RELAY_MYSQL__URL", &env.db.url)
        .env("RELAY_KAFKA__BROKERS", &s.kafka.brokers)
        .env("RELAY_KAFKA__TOPIC_PREFIX", &s.kafka.topic_prefix)
        .env(
            "RELAY_FILTER__INCLUDE_DATABASES",
            format!("[{}]", env.db.name),
        )
        .env("RELAY_SERVER_ID", s.server_id.to_string())
        .env("RELAY_STATE_DIR", &s.state_dir)
        .env("RELAY_ADMIN__ADDR", "127.0.0.1:0");
    let out = tokio::time::timeout(
        crate::helpers::DEADLINE,
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("the dry run ends at --until")
    .expect("task")
    .expect("binlog-relay runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("\"u4\"")).collect();
    assert_eq!(lines.len(), 1, "the insert is printed once: {stdout}");
    assert!(!stdout.contains("password_hash"), "{stdout}");
    assert!(!stdout.contains("SECRET"), "{stdout}");
    env.cleanup().await;
}
