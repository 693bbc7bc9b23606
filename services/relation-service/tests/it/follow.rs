//! The follow / unfollow transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proto::relation::v1::FollowRequest;
use rand::Rng;
use tonic::Code;

use crate::helpers::spawn_app;

#[tokio::test]
async fn follow_then_unfollow_moves_both_counters_and_returns_a_gtid() {
    let app = spawn_app().await;
    let [a, b] = app.users(2).await[..] else {
        unreachable!()
    };
    let mut c = app.client.clone();

    let r = c
        .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: b,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.following && r.changed);
    assert!(
        r.consistency_token.starts_with("0-"),
        "gtid token, got {:?}",
        r.consistency_token
    );
    assert!(app.active(a, b).await);
    assert_eq!(app.counter(a, 1).await, Some(1));
    assert_eq!(app.counter(b, 2).await, Some(1));

    let r = c
        .unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: b,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.following && r.changed && !r.consistency_token.is_empty());
    assert!(!app.active(a, b).await);
    assert_eq!(app.counter(a, 1).await, Some(0));
    assert_eq!(app.counter(b, 2).await, Some(0));

    // Reviving the soft-deleted row counts again and refreshes created_at.
    let before: chrono::NaiveDateTime =
        sqlx::query_scalar("SELECT created_at FROM follow WHERE from_id = ? AND to_id = ?")
            .bind(a)
            .bind(b)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let r = c
        .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: b,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.changed);
    let after: chrono::NaiveDateTime =
        sqlx::query_scalar("SELECT created_at FROM follow WHERE from_id = ? AND to_id = ?")
            .bind(a)
            .bind(b)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(after > before);
    assert_eq!(app.follow_rows().await, 1, "revived, not re-inserted");
    assert_eq!(app.counter(b, 2).await, Some(1));
    app.cleanup().await;
}

#[tokio::test]
async fn duplicate_follow_and_unfollow_are_idempotent_and_never_negative() {
    let app = spawn_app().await;
    let [a, b] = app.users(2).await[..] else {
        unreachable!()
    };
    let mut c = app.client.clone();

    let r = c
        .unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: b,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.following && !r.changed && r.consistency_token.is_empty());
    assert_eq!(app.counter_rows().await, 0, "nothing written");

    c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
        a,
        FollowRequest {
            from_id: a,
            to_id: b,
        },
    ))
    .await
    .unwrap();
    let r = c
        .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: b,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.following && !r.changed && r.consistency_token.is_empty());
    assert_eq!(app.counter(b, 2).await, Some(1), "no double count");

    c.unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(
        a,
        FollowRequest {
            from_id: a,
            to_id: b,
        },
    ))
    .await
    .unwrap();
    let r = c
        .unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: b,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.changed);
    assert_eq!(app.counter(b, 2).await, Some(0));
    assert_eq!(app.counter(a, 1).await, Some(0));
    app.cleanup().await;
}

#[tokio::test]
async fn self_follow_and_unknown_users_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let [a] = app.users(1).await[..] else {
        unreachable!()
    };
    let mut c = app.client.clone();

    let e = c
        .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: a,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: 999_999,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            999_999,
            FollowRequest {
                from_id: 999_999,
                to_id: a,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        !e.message().to_lowercase().contains("select"),
        "no SQL in errors"
    );

    let e = c
        .unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(
            a,
            FollowRequest {
                from_id: a,
                to_id: 999_999,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    assert_eq!(app.follow_rows().await, 0);
    assert_eq!(app.counter_rows().await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn sixty_four_tasks_following_crossing_pairs_never_see_a_deadlock_and_counters_match_rows() {
    let app = spawn_app().await;
    let users = Arc::new(app.users(6).await);
    let ops = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for t in 0..64 {
        let mut c = app.client.clone();
        let users = users.clone();
        let ops = ops.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while Instant::now() < deadline {
                // Half the tasks hammer one crossing pair (A→B while B→A), the rest random pairs.
                let (from, to, follow) = {
                    let mut rng = rand::rng();
                    let (i, j) = if t % 2 == 0 {
                        if rng.random_bool(0.5) { (0, 1) } else { (1, 0) }
                    } else {
                        let i = rng.random_range(0..users.len());
                        let j = (i + rng.random_range(1..users.len())) % users.len();
                        (i, j)
                    };
                    (users[i], users[j], rng.random_bool(0.5))
                };
                let req = FollowRequest {
                    from_id: from,
                    to_id: to,
                };
                let res = if follow {
                    c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(req.from_id, req))
                        .await
                } else {
                    c.unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(req.from_id, req))
                        .await
                };
                match res {
                    Ok(_) => {
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.push(format!("{:?}: {}", e.code(), e.message())),
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.unwrap());
    }
    assert!(
        errors.is_empty(),
        "{} errors reached clients, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(
        ops.load(Ordering::Relaxed) > 100,
        "the test did some work: {}",
        ops.load(Ordering::Relaxed)
    );

    let mismatches: Vec<(u64, u8, i64, i64)> = sqlx::query_as(
        "SELECT c.owner_id, c.kind, c.value, \
           (SELECT COUNT(*) FROM follow f WHERE f.deleted_at IS NULL AND \
              ((c.kind = 1 AND f.from_id = c.owner_id) OR (c.kind = 2 AND f.to_id = c.owner_id))) AS actual \
         FROM counter c HAVING c.value <> actual",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert!(
        mismatches.is_empty(),
        "counter rows differ from active follow rows: {mismatches:?}"
    );
    let missing: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM follow f WHERE f.deleted_at IS NULL AND NOT EXISTS \
         (SELECT 1 FROM counter c WHERE c.owner_id = f.to_id AND c.kind = 2)",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(missing, 0);
    app.cleanup().await;
}

/// Issue #17, finding 5: the service trusted the body, so anyone reaching
/// the port could follow as anyone. Now a call needs the mesh's proof, and
/// a follow the gateway's assertion of who acts.
#[tokio::test]
async fn a_follow_without_the_mesh_credential_is_unauthenticated_and_writes_nothing() {
    use proto::relation::v1::relation_service_client::RelationServiceClient;
    use service_kit::mesh_auth::MeshAuth;
    let app = spawn_app().await;
    let [a, b] = app.users(2).await[..] else {
        unreachable!()
    };
    let req = || FollowRequest {
        from_id: a,
        to_id: b,
    };
    // A plain client, as a port scanner or another container would use.
    let mut bare = RelationServiceClient::connect(app.grpc_url.clone())
        .await
        .expect("connect");
    let e = bare.follow(req()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // Signed with another mesh's key.
    let other = MeshAuth::new("a-different-mesh-secret-of-32-bytes!".to_owned().into());
    let e = bare.follow(other.acting(a, req())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // A member, but acting for nobody: the body alone is not trusted.
    let mut member = app.client.clone();
    let e = member.follow(req()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // A member acting for someone else than the body's follower.
    let e = member
        .follow(MeshAuth::dev().acting(b, req()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(app.follow_rows().await, 0, "nothing written");
    assert_eq!(app.counter_rows().await, 0, "nothing written");
    // Reads need membership too.
    let e = bare
        .following_list(proto::relation::v1::ListRequest {
            user_id: a,
            cursor: String::new(),
            limit: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // With the credential and the right actor it goes through.
    let r = member
        .follow(MeshAuth::dev().acting(a, req()))
        .await
        .unwrap()
        .into_inner();
    assert!(r.following && r.changed);
    app.cleanup().await;
}
