use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::TestKafka;

fn consumer(k: &TestKafka) -> StreamConsumer {
    k.client_config()
        .set("group.id", &k.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer")
}

async fn next_payload(c: &StreamConsumer) -> (String, Option<String>) {
    let m = tokio::time::timeout(Duration::from_secs(30), c.recv())
        .await
        .expect("no message within 30s")
        .unwrap();
    let seq = m
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == cdc_event::HEADER_SEQ))
        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()));
    let payload = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
    c.commit_message(&m, CommitMode::Sync).expect("commit");
    (payload, seq)
}

#[tokio::test]
async fn produce_consume_round_trip_resumes_from_committed_offsets() {
    let k = TestKafka::new().await;
    let topic = cdc_event::topic::topic_for(&k.prefix, "db", "t");
    k.create_topics(&[&topic], 1).await;

    let producer: FutureProducer = k
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..10 {
        let headers = OwnedHeaders::new().insert(Header {
            key: cdc_event::HEADER_SEQ,
            value: Some(&i.to_string()),
        });
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(r#"{"id":1}"#)
                    .payload(&format!("m{i}"))
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .expect("delivery acknowledged");
    }

    // First member of the group reads half and commits.
    {
        let c = consumer(&k);
        c.subscribe(&[&topic]).unwrap();
        for i in 0..5 {
            let (payload, seq) = next_payload(&c).await;
            assert_eq!(payload, format!("m{i}"));
            assert_eq!(seq.as_deref(), Some(i.to_string().as_str()));
        }
    }
    // A new member of the same group continues after the committed offset.
    let c = consumer(&k);
    c.subscribe(&[&topic]).unwrap();
    let (payload, _) = next_payload(&c).await;
    assert_eq!(
        payload, "m5",
        "the group must resume from its committed offset"
    );
}

#[tokio::test]
async fn broker_lists_itself_and_the_sluice_topics() {
    let k = TestKafka::new().await;
    let c: StreamConsumer = k.client_config().create().expect("client");
    let md = tokio::task::spawn_blocking(move || {
        c.fetch_metadata(None, Duration::from_secs(10)).map(|m| {
            let brokers: Vec<String> = m
                .brokers()
                .iter()
                .map(|b| format!("{}:{}", b.host(), b.port()))
                .collect();
            let topics: Vec<String> = m.topics().iter().map(|t| t.name().to_owned()).collect();
            (brokers, topics)
        })
    })
    .await
    .unwrap()
    .expect("metadata");
    assert!(
        md.0.iter().any(|b| b.starts_with("127.0.0.1:")),
        "brokers: {:?}",
        md.0
    );
    for t in [
        "sluice.sluice.follow",
        "sluice.sluice.counter",
        "sluice.sluice.user",
        "sluice.heartbeat",
    ] {
        assert!(
            md.1.iter().any(|x| x == t),
            "topic {t} missing from {:?}",
            md.1
        );
    }
}

/// Restarts the shared broker, so it is not part of the parallel suite:
/// `scripts/test.sh` runs it on its own after everything else.
#[tokio::test]
#[ignore = "restarts the shared broker; run alone by scripts/test.sh"]
async fn broker_restart_keeps_topics_and_messages() {
    let k = TestKafka::new().await;
    let topic = cdc_event::topic::topic_for(&k.prefix, "db", "durable");
    k.create_topics(&[&topic], 1).await;
    let producer: FutureProducer = k
        .client_config()
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..3 {
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(&format!("d{i}")),
                Duration::from_secs(10),
            )
            .await
            .expect("delivery acknowledged");
    }
    drop(producer);

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let status = std::process::Command::new(format!("{root}/scripts/stack.sh"))
        .arg("restart-kafka")
        .status()
        .expect("run scripts/stack.sh restart-kafka");
    assert!(status.success(), "broker restart failed");

    // Read the partition directly (no consumer group, no commits): this
    // test is about the broker's storage, not group coordination.
    let c: StreamConsumer = k
        .client_config()
        .set("group.id", format!("{}-restart", k.group))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    // Right after a restart librdkafka may report transient connection
    // errors (AllBrokersDown) while it reconnects; those are not data loss,
    // so keep reading until the deadline and only fail on a wrong payload
    // or on running out of time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    let mut last_err = None;
    while got.len() < 3 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, c.recv()).await {
            Err(_) => panic!(
                "only {} of 3 messages within 60s after the restart (last error: {last_err:?})",
                got.len()
            ),
            Ok(Err(e)) => last_err = Some(e),
            Ok(Ok(m)) => {
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            }
        }
    }
    assert_eq!(
        got,
        ["d0", "d1", "d2"],
        "message lost or reordered across the broker restart"
    );
}
