//! Integration tests of count-service against the real local stack: a fresh
//! database and Redis namespace per test, the service in-process on port 0.

use count_service::config::Settings;
use count_service::startup::Application;
use proto::count::v1::GetCountsRequest;
use proto::count::v1::count_service_client::CountServiceClient;
use redis::AsyncCommands;
use testkit::{TestDb, TestRedis};
use tonic::Code;
use tonic::transport::Channel;

async fn start(
    db: &TestDb,
    redis: &TestRedis,
) -> CountServiceClient<service_kit::mesh_auth::MeshChannel> {
    start_with_ports(db, redis).await.0
}

/// The client, the gRPC port and the admin port.
async fn start_with_ports(
    db: &TestDb,
    redis: &TestRedis,
) -> (
    CountServiceClient<service_kit::mesh_auth::MeshChannel>,
    u16,
    u16,
) {
    let s = Settings {
        service: testkit::service_common(db, redis),
        // Generous: the shared test machine can be slow, and these tests assert Redis answers.
        cache: count_service::config::CacheSettings {
            redis_timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        },
    };
    let app = Application::build(s).await.expect("build count-service");
    let (port, admin) = (app.port(), app.admin_port());
    tokio::spawn(app.run_until(std::future::pending()));
    let client =
        CountServiceClient::new(testkit::mesh_channel(format!("http://127.0.0.1:{port}")).await);
    (client, port, admin)
}

#[tokio::test]
async fn a_thousand_users_are_answered_from_mysql_in_request_order() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    for owner in (1..=1000u64).step_by(3) {
        sqlx::query("INSERT INTO counter (owner_id, kind, value) VALUES (?, 2, ?), (?, 1, 1)")
            .bind(owner)
            .bind(owner * 10)
            .bind(owner)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let mut c = start(&db, &redis).await;
    let ids: Vec<u64> = (1..=1000).rev().collect();
    let r = c
        .get_counts(GetCountsRequest {
            user_ids: ids.clone(),
            kinds: vec![2],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.counts.len(), 1000);
    for (c, id) in r.counts.iter().zip(&ids) {
        assert_eq!(c.owner_id, *id);
        assert_eq!(c.kind, 2);
        assert_eq!(c.value, if (id - 1) % 3 == 0 { id * 10 } else { 0 });
    }
    let both = c
        .get_counts(GetCountsRequest {
            user_ids: vec![1, 2],
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(u64, u32, u64)> = both
        .counts
        .iter()
        .map(|c| (c.owner_id, c.kind, c.value))
        .collect();
    assert_eq!(got, vec![(1, 1, 1), (1, 2, 10), (2, 1, 0), (2, 2, 0)]);
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn redis_buckets_filled_by_the_syncer_are_preferred() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let keys = redis.keys(common::keys::DEFAULT_COUNTER_BUCKETS);
    let mut conn = redis.conn.clone();
    for (kind, value) in [(1u8, 3u64), (2, 4)] {
        let slot = keys.counter(kind, 5000);
        let _: () = conn.hset(slot.key, slot.field, value).await.unwrap();
    }
    let mut c = start(&db, &redis).await;
    let r = c
        .get_counts(GetCountsRequest {
            user_ids: vec![5000],
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.counts.iter().map(|c| c.value).collect::<Vec<_>>(),
        vec![3, 4]
    );
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_kind_absent_beside_a_synced_one_is_zero_without_asking_mysql() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let keys = redis.keys(common::keys::DEFAULT_COUNTER_BUCKETS);
    let mut conn = redis.conn.clone();
    let slot = keys.counter(2, 5001);
    let _: () = conn.hset(slot.key, slot.field, 4u64).await.unwrap();
    // A row MySQL has but Redis does not: were MySQL asked, 9 would show.
    sqlx::query("INSERT INTO counter (owner_id, kind, value) VALUES (5001, 1, 9)")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut c = start(&db, &redis).await;
    let r = c
        .get_counts(GetCountsRequest {
            user_ids: vec![5001, 5002],
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    // 5001: Redis answers (following absent = 0); 5002: nothing in Redis,
    // so MySQL decides (no rows: 0).
    assert_eq!(
        r.counts.iter().map(|c| c.value).collect::<Vec<_>>(),
        vec![0, 4, 0, 0]
    );
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn unknown_kinds_empty_and_oversized_batches_are_invalid_arguments() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let mut c = start(&db, &redis).await;
    for req in [
        GetCountsRequest {
            user_ids: vec![],
            kinds: vec![],
        },
        GetCountsRequest {
            user_ids: (1..=1001).collect(),
            kinds: vec![],
        },
        GetCountsRequest {
            user_ids: vec![1],
            kinds: vec![7],
        },
    ] {
        assert_eq!(
            c.get_counts(req).await.unwrap_err().code(),
            Code::InvalidArgument
        );
    }
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_path_the_server_does_not_serve_adds_no_metric_labels() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (db, redis) = (TestDb::new().await, TestRedis::new().await);
    let (_client, port, admin) = start_with_ports(&db, &redis).await;
    // Another service's method on this port: answered UNIMPLEMENTED.
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut other = proto::user::v1::user_service_client::UserServiceClient::new(channel);
    for _ in 0..3 {
        let err = other
            .get_user(proto::user::v1::GetUserRequest {
                user_id: 1,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    }
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut metrics = String::new();
    conn.read_to_string(&mut metrics).await.unwrap();
    assert!(metrics.contains("grpc_server_requests_total"), "{metrics}");
    assert!(
        !metrics.contains("user.v1.UserService"),
        "a path the server does not serve became a label"
    );
    assert!(
        metrics.contains("service=\"unknown\""),
        "counted as unknown"
    );
}
