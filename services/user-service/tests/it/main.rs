//! Integration tests of user-service against the real local stack: a fresh
//! database and Redis namespace per test, the service in-process on port 0.

use std::time::Duration;

use proto::user::v1::user_service_client::UserServiceClient;
use proto::user::v1::*;
use redis::AsyncCommands;
use secrecy::SecretString;
use service_kit::jwt::{JwtCodec, JwtSettings};
use testkit::{TestDb, TestRedis};
use tonic::Code;
use user_service::config::Settings;
use user_service::startup::Application;

const SECRET: &str = "user-service-test-secret-user-service-test";

fn settings(db: &TestDb, redis: &TestRedis) -> Settings {
    Settings {
        service: testkit::service_common(db, redis),
        jwt: JwtSettings {
            secret: Some(SecretString::from(SECRET)),
            ..Default::default()
        },
        // Generous: the shared test machine can be slow, and these tests assert Redis answers.
        cache: user_service::config::CacheSettings {
            redis_timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn start(s: Settings) -> UserServiceClient<service_kit::mesh_auth::MeshChannel> {
    let app = Application::build(s).await.expect("build user-service");
    let port = app.port();
    tokio::spawn(app.run_until(std::future::pending()));
    UserServiceClient::new(testkit::mesh_channel(format!("http://127.0.0.1:{port}")).await)
}

async fn register(
    c: &mut UserServiceClient<service_kit::mesh_auth::MeshChannel>,
    name: &str,
) -> u64 {
    c.register(RegisterRequest {
        username: name.into(),
        password: "password1".into(),
    })
    .await
    .unwrap()
    .into_inner()
    .id
}

async fn follow(db: &TestDb, from: u64, to: u64) {
    // What relation-service's transaction leaves behind, and what the
    // cache-syncer then writes into the user rows' redundant columns.
    sqlx::query(
        "UPDATE user SET follow_count = follow_count + (id = ?), \
         follower_count = follower_count + (id = ?) WHERE id IN (?, ?)",
    )
    .bind(from)
    .bind(to)
    .bind(from)
    .bind(to)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO follow (from_id, to_id) VALUES (?, ?)")
        .bind(from)
        .bind(to)
        .execute(&db.pool)
        .await
        .unwrap();
    for (owner, kind) in [(from, 1), (to, 2)] {
        sqlx::query("INSERT INTO counter (owner_id, kind, value) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE value = value + 1")
            .bind(owner)
            .bind(kind)
            .execute(&db.pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn register_stores_an_argon2_hash_and_login_issues_a_verifiable_jwt() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let mut c = start(settings(&db, &redis)).await;
    let r = c
        .register(RegisterRequest {
            username: "alice".into(),
            password: "password1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM user WHERE id = ?")
        .bind(r.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let codec = JwtCodec::new(SecretString::from(SECRET), Duration::from_secs(60));
    assert_eq!(codec.verify(&r.token).unwrap().user_id().unwrap(), r.id);

    let l = c
        .login(LoginRequest {
            username: "alice".into(),
            password: "password1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.user_id, r.id);
    assert_eq!(codec.verify(&l.token).unwrap().user_id().unwrap(), r.id);

    let wrong = c
        .login(LoginRequest {
            username: "alice".into(),
            password: "password2".into(),
        })
        .await
        .unwrap_err();
    let unknown = c
        .login(LoginRequest {
            username: "nobody".into(),
            password: "password1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (wrong.code(), wrong.message()),
        (unknown.code(), unknown.message())
    );
    assert_eq!(wrong.code(), Code::Unauthenticated);

    let dup = c
        .register(RegisterRequest {
            username: "Alice".into(),
            password: "password1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn get_user_and_batch_return_counters_and_is_follow_for_the_viewer() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let mut c = start(settings(&db, &redis)).await;
    let a = register(&mut c, "a").await;
    let b = register(&mut c, "b").await;
    let x = register(&mut c, "x").await;
    follow(&db, a, b).await;
    follow(&db, x, b).await;

    let u = c
        .get_user(GetUserRequest {
            user_id: b,
            viewer_id: a,
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (
            u.username.as_str(),
            u.follow_count,
            u.follower_count,
            u.is_follow
        ),
        ("b", 0, 2, true)
    );
    let anon = c
        .get_user(GetUserRequest {
            user_id: b,
            viewer_id: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(!anon.is_follow);

    let batch = c
        .batch_get_users(BatchGetUsersRequest {
            user_ids: vec![x, 999_999, b, a, b],
            viewer_id: a,
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    let ids: Vec<u64> = batch.iter().map(|u| u.id).collect();
    assert_eq!(
        ids,
        vec![x, b, a],
        "request order, unknown left out, duplicates once"
    );
    assert_eq!(
        batch.iter().map(|u| u.is_follow).collect::<Vec<_>>(),
        vec![false, true, false]
    );
    assert_eq!(batch[2].follow_count, 1);

    let too_many = c
        .batch_get_users(BatchGetUsersRequest {
            user_ids: (1..=101).collect(),
            viewer_id: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn unknown_ids_are_cached_as_missing_for_the_negative_ttl() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let mut s = settings(&db, &redis);
    s.cache.negative_ttl = Duration::from_secs(60);
    let mut c = start(s).await;
    let e = c
        .get_user(GetUserRequest {
            user_id: 77,
            viewer_id: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // The row appears behind the service's back: the cached "missing" answer
    // proves MySQL is not asked again within the TTL...
    sqlx::query("INSERT INTO user (id, username, password_hash) VALUES (77, 'late', 'x')")
        .execute(&db.pool)
        .await
        .unwrap();
    let e = c
        .get_user(GetUserRequest {
            user_id: 77,
            viewer_id: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // ...while a read with a consistency token goes to MySQL.
    let mut req = tonic::Request::new(GetUserRequest {
        user_id: 77,
        viewer_id: 0,
    });
    req.metadata_mut()
        .insert("consistency-token", "0-1-1".parse().unwrap());
    assert_eq!(
        c.get_user(req)
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap()
            .username,
        "late"
    );
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn profiles_are_cached_aside_in_redis_and_read_from_there() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let mut c = start(settings(&db, &redis)).await;
    let id = register(&mut c, "carol").await;
    c.get_user(GetUserRequest {
        user_id: id,
        viewer_id: 0,
    })
    .await
    .unwrap();
    let key = redis
        .keys(common::keys::DEFAULT_COUNTER_BUCKETS)
        .user_profile(id);
    let mut conn = redis.conn.clone();
    let json: String = conn.get(&key).await.expect("profile cached in redis");
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["username"], "carol");
    v["signature"] = "from redis".into();
    let _: () = conn.set(&key, v.to_string()).await.unwrap();
    // A second instance (cold local cache) reads Redis, not MySQL.
    let mut c2 = start(settings(&db, &redis)).await;
    let u = c2
        .get_user(GetUserRequest {
            user_id: id,
            viewer_id: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(u.signature, "from redis");
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn update_profile_returns_the_new_profile_and_a_gtid_and_checks_lengths() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let mut c = start(settings(&db, &redis)).await;
    let id = register(&mut c, "dave").await;
    let r = c
        .update_profile(service_kit::mesh_auth::MeshAuth::dev().acting(
            id,
            UpdateProfileRequest {
                user_id: id,
                signature: Some("hi".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.user.unwrap().signature, "hi");
    assert!(
        r.consistency_token.starts_with("0-"),
        "{}",
        r.consistency_token
    );
    let long = UpdateProfileRequest {
        user_id: id,
        signature: Some("x".repeat(513)),
        ..Default::default()
    };
    assert_eq!(
        c.update_profile(service_kit::mesh_auth::MeshAuth::dev().acting(long.user_id, long))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let nothing = UpdateProfileRequest {
        user_id: id,
        ..Default::default()
    };
    assert_eq!(
        c.update_profile(service_kit::mesh_auth::MeshAuth::dev().acting(nothing.user_id, nothing))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let unknown = UpdateProfileRequest {
        user_id: 999_999,
        avatar: Some("https://img.example/a.png".into()),
        ..Default::default()
    };
    assert_eq!(
        c.update_profile(service_kit::mesh_auth::MeshAuth::dev().acting(unknown.user_id, unknown))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn logins_beyond_the_hashing_slots_wait_briefly_then_are_refused_with_unavailable() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let mut s = settings(&db, &redis);
    s.password.hash_slots = 1;
    s.password.queue_wait = Duration::from_millis(50);
    let c = start(s).await;
    // Sixteen logins at once, one hash at a time, each waiting 50 ms at most.
    let logins = (0..16).map(|i| {
        let mut c = c.clone();
        async move {
            c.login(LoginRequest {
                username: format!("ghost{i}"),
                password: "password1".into(),
            })
            .await
            .unwrap_err()
        }
    });
    let errors = futures::future::join_all(logins).await;
    let refused: Vec<_> = errors
        .iter()
        .filter(|e| e.code() == Code::Unavailable)
        .collect();
    assert!(
        errors
            .iter()
            .all(|e| matches!(e.code(), Code::Unauthenticated | Code::Unavailable)),
        "{errors:?}"
    );
    assert!(!refused.is_empty(), "none refused: {errors:?}");
    assert!(refused.len() < errors.len(), "none served: {errors:?}");
    for e in refused {
        assert_eq!(
            e.metadata()
                .get(service_kit::grpc::RETRY_AFTER_METADATA)
                .unwrap(),
            "1"
        );
    }
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn attempts_over_the_per_username_limit_are_resource_exhausted_with_retry_after() {
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let mut s = settings(&db, &redis);
    s.password.per_username = common::config::RateLimitSettings::new(2, Duration::from_secs(60));
    let mut c = start(s).await;
    register(&mut c, "erin").await;
    let login = |name: &str| LoginRequest {
        username: name.into(),
        password: "password1".into(),
    };
    c.login(login("erin")).await.unwrap();
    let e = c.login(login("Erin")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    let wait: u64 = e
        .metadata()
        .get(service_kit::grpc::RETRY_AFTER_METADATA)
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    // Registering that name again is an attempt on it too; another name is free.
    let e = c
        .register(RegisterRequest {
            username: "ERIN".into(),
            password: "password1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    register(&mut c, "frank").await;
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_connection_that_never_speaks_http2_is_closed_and_its_slot_goes_to_a_real_client() {
    use tokio::io::AsyncReadExt;
    let (db, mut redis) = (TestDb::new().await, TestRedis::new().await);
    let mut s = settings(&db, &redis);
    s.service.grpc.max_connections = 1;
    s.service.grpc.max_connection_age = Duration::from_secs(1);
    s.service.grpc.max_connection_age_grace = Duration::from_secs(1);
    let app = Application::build(s).await.expect("build user-service");
    let port = app.port();
    tokio::spawn(app.run_until(std::future::pending()));

    // Takes the only slot and never sends a byte.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut c =
        UserServiceClient::new(testkit::mesh_channel(format!("http://127.0.0.1:{port}")).await);
    register(&mut c, "grace").await;
    let waited = started.elapsed();
    // Served only once the silent connection's age (1 s + 1 s grace) ran out.
    assert!(
        waited >= Duration::from_millis(900),
        "served after {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "served after {waited:?}");
    // Whatever the server wrote (its HTTP/2 settings), then the end.
    let until_closed = async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = silent.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), until_closed)
        .await
        .expect("the silent connection is still open");
    redis.cleanup().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_and_counts_answer_from_the_user_row_while_redis_is_down_and_from_redis_once_back()
{
    let (db, mut redis) = (TestDb::new().await, TestRedis::single().await);
    // Redis reachable through a proxy this test cuts and restores.
    let mut proxy = testkit::TcpProxy::for_url(&redis.url).await;
    let mut s = settings(&db, &redis);
    s.service.redis.url = Some(SecretString::from(proxy.url(&redis.url)));
    s.cache.redis_timeout = Duration::from_millis(500);
    // Brief local caches, so reads reach Redis and MySQL.
    s.cache.ttl = Duration::from_millis(50);
    s.cache.profile_ttl = Duration::from_millis(50);
    let mut c = start(s).await;
    let a = register(&mut c, "row_a").await;
    let b = register(&mut c, "row_b").await;
    follow(&db, a, b).await;
    // The syncer's bucket for b says 7 followers (the row says 1): which
    // source answered is visible.
    let keys = redis.keys(common::keys::DEFAULT_COUNTER_BUCKETS);
    let slot = keys.counter(common::keys::CounterKind::Followers.code(), b);
    let mut conn = redis.conn.clone();
    let _: () = conn.hset(&slot.key, slot.field, 7).await.unwrap();
    let reader = c.clone();
    let get = |id: u64| {
        let mut c = reader.clone();
        async move {
            c.get_user(GetUserRequest {
                user_id: id,
                viewer_id: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap()
        }
    };
    let u = get(b).await;
    assert_eq!((u.username.as_str(), u.follower_count), ("row_b", 7));

    // Redis down: profile and counters from the user row.
    proxy.down().await;
    testkit::eventually(Duration::from_secs(30), "counters from the row", || async {
        let u = get(b).await;
        assert_eq!(u.username, "row_b");
        (u.follower_count == 1).then_some(())
    })
    .await;
    let u = get(a).await;
    assert_eq!((u.username.as_str(), u.follow_count), ("row_a", 1));
    let batch = |ids: Vec<u64>| {
        let mut c = reader.clone();
        async move {
            c.batch_get_users(BatchGetUsersRequest {
                user_ids: ids,
                viewer_id: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .users
            .iter()
            .map(|u| (u.id, u.follow_count, u.follower_count))
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(batch(vec![a, b]).await, vec![(a, 1, 0), (b, 0, 1)]);
    // A user registered while Redis is down is read like any other.
    let d = register(&mut c, "row_d").await;
    let u = get(d).await;
    assert_eq!(
        (u.username.as_str(), u.follow_count, u.follower_count),
        ("row_d", 0, 0)
    );

    // Redis back: the buckets answer again.
    proxy.up().await;
    testkit::eventually(
        Duration::from_secs(30),
        "counters from Redis again",
        || async { (get(b).await.follower_count == 7).then_some(()) },
    )
    .await;
    assert_eq!(batch(vec![b]).await, vec![(b, 0, 7)]);
    redis.cleanup().await;
    db.drop_db().await;
}
