//! Kafka credentials (issue #17, finding 7): with `kafka.username` and
//! `kafka.password` the relay authenticates with SASL/PLAIN and publishes;
//! with a wrong password it cannot even read the broker's metadata. Runs
//! against the local stack's SASL listener (`SLUICE_KAFKA_SASL_PORT`).

use std::time::Duration;

use binlog_relay::{RunOptions, Settings};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use secrecy::SecretString;

use crate::helpers::{Env, consume_until};

fn sasl_settings(env: &Env, password: &str) -> Settings {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let mut s = env.settings();
    s.kafka.brokers = format!("127.0.0.1:{}", var("SLUICE_KAFKA_SASL_PORT", "9094"));
    s.kafka.username = Some(var("SLUICE_KAFKA_SASL_USER", "sluice"));
    s.kafka.password = Some(SecretString::from(password.to_owned()));
    s
}

fn dev_password() -> String {
    std::env::var("SLUICE_KAFKA_SASL_PASSWORD")
        .unwrap_or_else(|_| "sluice-dev-kafka-password".into())
}

#[tokio::test]
async fn the_relay_publishes_through_an_authenticated_listener() {
    let env = Env::new().await;
    env.create_topics(&["counter"]).await;
    let settings = sasl_settings(&env, &dev_password());
    settings.validate().expect("valid SASL settings");
    let relay = env.start_with(settings, RunOptions::default()).await;
    env.exec(
        "INSERT INTO counter (owner_id, kind, value, updated_at) \
         VALUES (3, 1, 9, '2026-11-30T10:00:00.000001')",
    )
    .await;
    // Read back through the plain listener: the same broker.
    let msgs = consume_until(&env, &[env.topic("counter")], "the insert", |m| {
        !m.is_empty()
    })
    .await;
    assert_eq!(msgs[0].value.as_ref().unwrap()["after"]["value"], 9);
    relay.stop().await.expect("relay stops cleanly");
    env.cleanup().await;
}

#[tokio::test]
async fn a_wrong_kafka_password_reads_nothing() {
    let env = Env::new().await;
    let metadata = |settings: Settings| {
        tokio::task::spawn_blocking(move || {
            let admin: AdminClient<DefaultClientContext> =
                binlog_relay::sink::client_config(&settings)
                    .create()
                    .expect("admin client");
            admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|m| m.topics().len())
        })
    };
    let good = metadata(sasl_settings(&env, &dev_password()))
        .await
        .unwrap();
    assert!(good.is_ok(), "{good:?}");
    let bad = metadata(sasl_settings(&env, "not-the-password"))
        .await
        .unwrap();
    assert!(bad.is_err(), "a wrong password read metadata: {bad:?}");
    env.cleanup().await;
}
