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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_mysql_is_unreachable_and_serving_again_after() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let (db, redis) = (TestDb::new().await, TestRedis::new().await);
    // MySQL unreachable for this service only, through a proxy it can cut.
    let mut proxy = testkit::TcpProxy::for_url(&testkit::mysql_server_url()).await;
    let mut service = testkit::service_common(&db, &redis);
    service.mysql.url = Some(secrecy::SecretString::from(proxy.url(&db.url)));
    let app = Application::build(Settings {
        service,
        ..Default::default()
    })
    .await
    .expect("build count-service");
    let port = app.port();
    tokio::spawn(app.run_until(std::future::pending()));
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy();
    let status = |name: &'static str| {
        let mut health = HealthClient::new(channel.clone());
        async move {
            health
                .check(HealthCheckRequest {
                    service: name.into(),
                })
                .await
                .ok()
                .map(|r| r.into_inner().status)
        }
    };
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    for (what, want) in [
        ("SERVING with MySQL up", serving),
        ("NOT_SERVING with MySQL unreachable", not_serving),
        ("SERVING again once MySQL is back", serving),
    ] {
        if want == not_serving {
            proxy.down().await;
        } else if what.contains("again") {
            proxy.up().await;
        }
        testkit::eventually(std::time::Duration::from_secs(30), what, || async {
            let (svc, all) = (status("count.v1.CountService").await, status("").await);
            (svc == Some(want) && all == Some(want)).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn reflection_lists_this_ports_service_only_in_v1_and_v1alpha() {
    let (db, redis) = (TestDb::new().await, TestRedis::new().await);
    let (_, port, _) = start_with_ports(&db, &redis).await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy();

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient as V1;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest as V1Req;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse as V1Resp;
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(V1Req::ListServices(String::new())),
    };
    let mut answers = V1::new(channel.clone())
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .expect("reflection v1")
        .into_inner();
    let answer = answers.message().await.expect("v1 answer").expect("one");
    let Some(V1Resp::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list")
    };
    let mut v1: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    v1.sort();
    assert_eq!(
        v1,
        [
            "count.v1.CountService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection"
        ]
    );

    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as V1a;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as V1aReq;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as V1aResp;
    let req = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(V1aReq::ListServices(String::new())),
    };
    let mut answers = V1a::new(channel)
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("v1alpha answer")
        .expect("one");
    let Some(V1aResp::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list")
    };
    let sluice: Vec<String> = list
        .service
        .into_iter()
        .map(|s| s.name)
        .filter(|n| !n.starts_with("grpc."))
        .collect();
    assert_eq!(
        sluice,
        ["count.v1.CountService"],
        "one sluice service per port"
    );
}

#[tokio::test]
async fn the_leaderboard_orders_ties_by_id_from_redis_and_from_mysql_alike() {
    use proto::count::v1::LeaderboardRequest;
    let (db, redis) = (TestDb::new().await, TestRedis::new().await);
    // Followers: user 1 → 9, users 10 and 11 → 5 each (a tie), user 3 → 2.
    let rows = [(1u64, 9i64), (10, 5), (11, 5), (3, 2)];
    for (owner, value) in rows {
        sqlx::query("INSERT INTO counter (owner_id, kind, value) VALUES (?, 2, ?), (?, 1, 7)")
            .bind(owner)
            .bind(value)
            .bind(owner)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let (mut c, _, _) = start_with_ports(&db, &redis).await;
    let top = |limit: u32| LeaderboardRequest { limit };
    let entries = |r: tonic::Response<proto::count::v1::LeaderboardResponse>| {
        let source = testkit::read_source(&r).unwrap_or_default();
        let e: Vec<(u64, u64)> = r
            .into_inner()
            .entries
            .into_iter()
            .map(|e| (e.user_id, e.followers))
            .collect();
        (e, source)
    };

    // Nothing in Redis yet: MySQL answers.
    let (e, source) = entries(c.leaderboard(top(2)).await.unwrap());
    assert_eq!((e, source.as_str()), (vec![(1, 9), (10, 5)], "primary"));

    // The syncer's ZSET: the same order, although Redis orders the tie
    // "11" before "10" (members compare as strings).
    let mut r = redis.conn.clone();
    let board = redis.keys(4096).leaderboard_followers();
    for (owner, value) in rows {
        let _: () = r.zadd(&board, owner, value).await.unwrap();
    }
    let (e, source) = entries(c.leaderboard(top(2)).await.unwrap());
    assert_eq!((e, source.as_str()), (vec![(1, 9), (10, 5)], "cache"));
    let (e, _) = entries(c.leaderboard(top(100)).await.unwrap());
    assert_eq!(e, vec![(1, 9), (10, 5), (11, 5), (3, 2)]);
    // Cut from the top 100 kept in process: the same prefix.
    let (e, source) = entries(c.leaderboard(top(3)).await.unwrap());
    assert_eq!(
        (e, source.as_str()),
        (vec![(1, 9), (10, 5), (11, 5)], "cache")
    );

    for bad in [0, 101] {
        let err = c.leaderboard(top(bad)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "limit {bad}");
    }
}
