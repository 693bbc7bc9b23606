//! The cached read path: Redis when the syncer filled it, MySQL otherwise.

use proto::relation::v1::{FollowRequest, GetRelationCountRequest, IsFollowRequest};
use redis::AsyncCommands;
use secrecy::SecretString;
use testkit::{TestDb, TestRedis};

use crate::helpers::{settings, spawn_app, spawn_with};

#[tokio::test]
async fn counts_and_is_follow_come_from_mysql_when_redis_is_empty() {
    let app = spawn_app().await;
    let [a, b] = app.users(2).await[..] else {
        unreachable!()
    };
    let mut c = app.client.clone();
    c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
        a,
        FollowRequest {
            from_id: a,
            to_id: b,
        },
    ))
    .await
    .unwrap();
    let counts = c
        .get_relation_count(GetRelationCountRequest { user_id: b })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((counts.follow_count, counts.follower_count), (0, 1));
    assert!(
        c.is_follow(IsFollowRequest {
            from_id: a,
            to_id: b
        })
        .await
        .unwrap()
        .into_inner()
        .following
    );
    assert!(
        !c.is_follow(IsFollowRequest {
            from_id: b,
            to_id: a
        })
        .await
        .unwrap()
        .into_inner()
        .following
    );
    app.cleanup().await;
}

#[tokio::test]
async fn counts_are_read_from_the_syncers_redis_buckets_when_present() {
    let app = spawn_app().await;
    let mut conn = app.redis.conn.clone();
    let keys = app.redis.keys(common::keys::DEFAULT_COUNTER_BUCKETS);
    let owner = 123_456u64;
    for (kind, value) in [(1u8, 7u64), (2, 9)] {
        let slot = keys.counter(kind, owner);
        let _: () = conn.hset(slot.key, slot.field, value).await.unwrap();
    }
    let mut c = app.client.clone();
    let counts = c
        .get_relation_count(GetRelationCountRequest { user_id: owner })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((counts.follow_count, counts.follower_count), (7, 9));
    // A consistency token forces MySQL (where this user has no rows).
    let mut req = tonic::Request::new(GetRelationCountRequest { user_id: owner });
    req.metadata_mut()
        .insert("consistency-token", "0-1-1".parse().unwrap());
    let fresh = c.get_relation_count(req).await.unwrap().into_inner();
    assert_eq!((fresh.follow_count, fresh.follower_count), (0, 0));
    app.cleanup().await;
}

#[tokio::test]
async fn reads_and_writes_work_from_mysql_when_redis_is_down() {
    let db = TestDb::new().await;
    let redis = TestRedis::new().await;
    let mut s = settings(&db, &redis);
    s.service.redis.url = Some(SecretString::from("redis://127.0.0.1:1"));
    let app = spawn_with(s, db, redis).await;
    let [a, b] = app.users(2).await[..] else {
        unreachable!()
    };
    let mut c = app.client.clone();
    c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
        a,
        FollowRequest {
            from_id: a,
            to_id: b,
        },
    ))
    .await
    .unwrap();
    let counts = c
        .get_relation_count(GetRelationCountRequest { user_id: a })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counts.follow_count, 1);
    assert!(
        c.is_follow(IsFollowRequest {
            from_id: a,
            to_id: b
        })
        .await
        .unwrap()
        .into_inner()
        .following
    );
    app.cleanup().await;
}

#[tokio::test]
async fn admin_port_serves_health_readiness_and_metrics() {
    let app = spawn_app().await;
    let port = app.admin_port;
    let get = |path: &'static str| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    // One gRPC call that succeeds and one that fails show up in the RED
    // metrics with their status names.
    let mut c = app.client.clone();
    c.is_follow(IsFollowRequest {
        from_id: 1,
        to_id: 2,
    })
    .await
    .unwrap();
    let bad = c
        .is_follow(IsFollowRequest {
            from_id: 0,
            to_id: 2,
        })
        .await;
    assert_eq!(bad.unwrap_err().code(), tonic::Code::InvalidArgument);
    let metrics = get("/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"));
    for series in [
        r#"grpc_server_requests_total{service="relation.v1.RelationService",method="IsFollow",code="OK"}"#,
        r#"grpc_server_requests_total{service="relation.v1.RelationService",method="IsFollow",code="InvalidArgument"}"#,
        r#"grpc_server_request_duration_seconds_bucket{service="relation.v1.RelationService",method="IsFollow",le="0.001"}"#,
    ] {
        assert!(metrics.contains(series), "{series} missing from\n{metrics}");
    }
    testkit::eventually(
        std::time::Duration::from_secs(10),
        "readyz turns 200",
        || async {
            get("/readyz")
                .await
                .starts_with("HTTP/1.1 200")
                .then_some(())
        },
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn grpc_reflection_and_health_answer_like_grpcurl_expects() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = spawn_app().await;
    let endpoint = app.grpc_url.clone();
    let channel = tonic::transport::Channel::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    // SERVING once the first readiness check has found MySQL.
    let health = HealthClient::new(channel.clone());
    testkit::eventually(std::time::Duration::from_secs(10), "SERVING", || {
        let mut health = health.clone();
        async move {
            let status = health
                .check(HealthCheckRequest {
                    service: "relation.v1.RelationService".into(),
                })
                .await
                .ok()?
                .into_inner()
                .status;
            (status == ServingStatus::Serving as i32).then_some(())
        }
    })
    .await;

    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream
        .message()
        .await
        .unwrap()
        .expect("one reflection answer");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected {resp:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"relation.v1.RelationService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn is_follow_trusts_a_clear_bloom_bit_and_confirms_a_maybe_in_mysql() {
    let app = spawn_app().await;
    let [a, b, c_id] = app.users(3).await[..] else {
        unreachable!()
    };
    let mut c = app.client.clone();
    c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
        a,
        FollowRequest {
            from_id: a,
            to_id: b,
        },
    ))
    .await
    .unwrap();
    c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
        a,
        FollowRequest {
            from_id: a,
            to_id: c_id,
        },
    ))
    .await
    .unwrap();
    // The syncer's filter as it would stand had it seen only a→b (not a→c):
    let keys = app.redis.keys(common::keys::DEFAULT_COUNTER_BUCKETS);
    let mut conn = app.redis.conn.clone();
    for bit in keys.bloom().positions(a, b) {
        let _: () = conn
            .setbit(keys.follow_bloom(a, b), bit as usize, true)
            .await
            .unwrap();
    }
    // A filter sharded over a cluster answers only from shards that exist
    // (a missing one may be a wiped Redis): the syncer's would all exist.
    for key in keys.follow_bloom_keys() {
        let _: () = conn.append(key, "").await.unwrap();
    }
    let ask = |from_id, to_id| {
        let mut c = app.client.clone();
        async move {
            c.is_follow(IsFollowRequest { from_id, to_id })
                .await
                .unwrap()
                .into_inner()
                .following
        }
    };
    assert!(ask(a, b).await, "all bits set: a maybe, confirmed in MySQL");
    assert!(
        !ask(a, c_id).await,
        "a clear bit is a final no (the filter lags MySQL here on purpose)"
    );
    assert!(!ask(b, a).await);
    // With a consistency token the caches are skipped.
    let mut req = tonic::Request::new(IsFollowRequest {
        from_id: a,
        to_id: c_id,
    });
    req.metadata_mut()
        .insert("consistency-token", "0-1-1".parse().unwrap());
    assert!(c.is_follow(req).await.unwrap().into_inner().following);
    app.cleanup().await;
}

/// One page of `user`'s following list through the service: its user ids,
/// next cursor and `read-source`.
async fn following_page(
    c: &mut proto::relation::v1::relation_service_client::RelationServiceClient<
        service_kit::mesh_auth::MeshChannel,
    >,
    user: u64,
    cursor: &str,
    limit: u32,
) -> (Vec<u64>, String, String) {
    let resp = c
        .following_list(proto::relation::v1::ListRequest {
            user_id: user,
            cursor: cursor.to_owned(),
            limit,
        })
        .await
        .expect("following page");
    let source = testkit::read_source(&resp).expect("a list answer names its source");
    let page = resp.into_inner();
    let ids = page.items.iter().map(|e| e.user_id).collect();
    (ids, page.next_cursor, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_counts_and_is_follow_answer_from_mysql_while_redis_is_down_and_from_redis_once_back()
{
    use relation_service::list::Direction;
    use std::time::Duration;
    let db = TestDb::new().await;
    let redis = TestRedis::single().await;
    // Redis reachable through a proxy this test cuts and restores.
    let mut proxy = testkit::TcpProxy::for_url(&redis.url).await;
    let mut s = settings(&db, &redis);
    s.service.redis.url = Some(SecretString::from(proxy.url(&redis.url)));
    s.cache.redis_timeout = Duration::from_millis(500);
    // First pages are also kept in process: briefly, so reads reach Redis.
    s.cache.ttl = Duration::from_millis(50);
    let app = spawn_with(s, db, redis).await;
    let [a, b, c_id, d] = app.users(4).await[..] else {
        unreachable!()
    };
    let mut c = app.client.clone();
    for to in [b, c_id, d] {
        c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: to,
            },
        ))
        .await
        .unwrap();
    }
    // What the syncer would have written for a: its following ZSET (scores
    // = MySQL's follow times) and its following counter.
    let mysql = relation_service::list::page(&app.db.pool, Direction::Following, a, "", 10)
        .await
        .unwrap();
    let newest_first: Vec<u64> = mysql.items.iter().map(|e| e.user_id).collect();
    assert_eq!(newest_first.len(), 3);
    let keys = app.redis.keys(common::keys::DEFAULT_COUNTER_BUCKETS);
    let mut conn = app.redis.conn.clone();
    for e in &mysql.items {
        let _: () = conn
            .zadd(keys.following(a), e.user_id, e.followed_at_us)
            .await
            .unwrap();
    }
    let slot = keys.counter(common::keys::CounterKind::Following.code(), a);
    let _: () = conn.hset(&slot.key, slot.field, 3).await.unwrap();

    // Walks a's following list two at a time: ids and the sources seen.
    let walk = |mut c: proto::relation::v1::relation_service_client::RelationServiceClient<_>| async move {
        let (first, next, s1) = following_page(&mut c, a, "", 2).await;
        let (rest, end, s2) = following_page(&mut c, a, &next, 2).await;
        assert!(end.is_empty(), "two pages hold three entries");
        ([first, rest].concat(), [s1, s2])
    };
    let counts = |mut c: proto::relation::v1::relation_service_client::RelationServiceClient<_>| async move {
        let n = c
            .get_relation_count(GetRelationCountRequest { user_id: a })
            .await
            .unwrap()
            .into_inner();
        let yes = c
            .is_follow(IsFollowRequest {
                from_id: a,
                to_id: b,
            })
            .await
            .unwrap()
            .into_inner()
            .following;
        let no = c
            .is_follow(IsFollowRequest {
                from_id: b,
                to_id: a,
            })
            .await
            .unwrap()
            .into_inner()
            .following;
        (n.follow_count, yes, no)
    };

    // Redis up: both pages from the ZSET, equal to MySQL's.
    let (ids, sources) = walk(c.clone()).await;
    assert_eq!(ids, newest_first);
    assert_eq!(sources, ["cache", "cache"]);
    assert_eq!(counts(c.clone()).await, (3, true, false));

    // Redis down: the same answers, from MySQL.
    proxy.down().await;
    testkit::eventually(Duration::from_secs(30), "pages from MySQL", || async {
        let (ids, sources) = walk(c.clone()).await;
        assert_eq!(ids, newest_first, "a page while Redis is down");
        (sources == ["primary", "primary"]).then_some(())
    })
    .await;
    assert_eq!(counts(c.clone()).await, (3, true, false));
    // A write while Redis is down lands in MySQL and is read back.
    c.unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(
        a,
        FollowRequest {
            from_id: a,
            to_id: d,
        },
    ))
    .await
    .unwrap();
    let (ids, _, source) = following_page(&mut c, a, "", 10).await;
    assert_eq!(
        ids,
        newest_first
            .iter()
            .copied()
            .filter(|&u| u != d)
            .collect::<Vec<_>>()
    );
    assert_eq!(source, "primary");

    // Redis back (the syncer would have applied the unfollow): the ZSET
    // answers again.
    proxy.up().await;
    let _: () = conn.zrem(keys.following(a), d).await.unwrap();
    let _: () = conn.hset(&slot.key, slot.field, 2).await.unwrap();
    let want: Vec<u64> = newest_first.into_iter().filter(|&u| u != d).collect();
    testkit::eventually(
        Duration::from_secs(30),
        "pages from Redis again",
        || async {
            let mut c = c.clone();
            let (ids, next, source) = following_page(&mut c, a, "", 1).await;
            let (rest, _, source2) = following_page(&mut c, a, &next, 1).await;
            assert_eq!([ids, rest].concat(), want, "a page once Redis is back");
            (source == "cache" && source2 == "cache").then_some(())
        },
    )
    .await;
    assert_eq!(counts(c.clone()).await, (2, true, false));
    app.cleanup().await;
}
