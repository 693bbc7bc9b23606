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
    drop(c);
    k.delete_topics().await;
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

/// Kills the shared broker (SIGKILL) and starts it again, so it is not part
/// of the parallel suite: `scripts/test.sh` runs it on its own after
/// everything else. Topics, messages and a group's committed offsets must
/// all survive.
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
    // The group reads two and commits (offset 2) before the crash.
    {
        let c = consumer(&k);
        c.subscribe(&[&topic]).unwrap();
        for i in 0..2 {
            assert_eq!(next_payload(&c).await.0, format!("d{i}"));
        }
    }

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let status = std::process::Command::new(format!("{root}/scripts/stack.sh"))
        .args(["restart-kafka", "--kill"])
        .status()
        .expect("run scripts/stack.sh restart-kafka --kill");
    assert!(status.success(), "broker restart failed");

    // Messages: read the partition directly (no group, no commits).
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

    // Committed offsets: the group's position is still 2, and a new member
    // of the group resumes there.
    let c = consumer(&k);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let name = topic.as_str();
    let committed = testkit::eventually(
        Duration::from_secs(60),
        "the group's committed offset after the restart",
        || {
            let c = &c;
            let tpl = tpl.clone();
            async move {
                c.committed_offsets(tpl, Duration::from_secs(5))
                    .ok()
                    .and_then(|t| t.find_partition(name, 0).map(|p| p.offset()))
            }
        },
    )
    .await;
    assert_eq!(
        committed,
        rdkafka::Offset::Offset(2),
        "committed offset lost across the broker restart"
    );
    c.subscribe(&[&topic]).unwrap();
    assert_eq!(
        next_payload(&c).await.0,
        "d2",
        "the group must resume from its committed offset after the restart"
    );
    drop(c);
    k.delete_topics().await;
}
