//! Read-your-writes through the whole pipeline: relation-service writes,
//! the relay streams the binlog, the syncer applies and publishes its
//! watermark, and a read carrying the write's token must see the write.

use std::time::{Duration, Instant};

use proto::relation::v1::{FollowRequest, GetRelationCountRequest, IsFollowRequest};
use tonic::Request;

use crate::harness::Harness;
use crate::harness::start_pipeline;

const ITERATIONS: usize = 1000;

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("consistency-token", token.parse().expect("ascii token"));
    req
}

fn source<T>(resp: &tonic::Response<T>) -> String {
    testkit::read_source(resp).unwrap_or_default()
}

#[tokio::test]
async fn reads_with_the_write_token_never_see_an_older_state() {
    let h = Harness::new().await;
    h.add_users(3).await;
    let (_relay, mut client) = start_pipeline(&h).await;

    // User 3 follows user 2 for good, so the count toggles between 2 and 1
    // (a counter that is absent from Redis is read from MySQL and could not
    // be stale). The pipeline is up once these writes are applied (topics
    // created, the syncer subscribed): the testkit barrier waits for that.
    client
        .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            3,
            FollowRequest {
                from_id: 3,
                to_id: 2,
            },
        ))
        .await
        .unwrap();
    let first = client
        .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            1,
            FollowRequest {
                from_id: 1,
                to_id: 2,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    h.redis
        .await_applied(&first.consistency_token, Duration::from_secs(120))
        .await;

    let (mut stale_without, mut synced, mut primary) = (0usize, 0usize, 0usize);
    let mut waits = Vec::with_capacity(ITERATIONS);
    for i in 0..ITERATIONS {
        // Alternate: unfollow, follow, unfollow, …
        let following = i % 2 == 1;
        let pair = FollowRequest {
            from_id: 1,
            to_id: 2,
        };
        let w = if following {
            client
                .follow(service_kit::mesh_auth::MeshAuth::dev().acting(pair.from_id, pair))
                .await
        } else {
            client
                .unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(pair.from_id, pair))
                .await
        }
        .unwrap()
        .into_inner();
        assert!(w.changed, "iteration {i}: the write changed nothing");
        let expected = 1 + u64::from(following);

        // Without the token: may be stale; counted, not hidden.
        let plain = client
            .get_relation_count(GetRelationCountRequest { user_id: 2 })
            .await
            .unwrap()
            .into_inner();
        if plain.follower_count != expected {
            stale_without += 1;
        }

        // With the token: never stale.
        let started = Instant::now();
        let counted = client
            .get_relation_count(with_token(
                GetRelationCountRequest { user_id: 2 },
                &w.consistency_token,
            ))
            .await
            .unwrap();
        waits.push(started.elapsed());
        match source(&counted).as_str() {
            "synced-cache" => synced += 1,
            "primary" => primary += 1,
            other => panic!("iteration {i}: unexpected read-source {other:?}"),
        }
        let c = counted.into_inner();
        assert_eq!(
            c.follower_count, expected,
            "iteration {i}: stale follower count with the token"
        );
        let is = client
            .is_follow(with_token(
                IsFollowRequest {
                    from_id: 1,
                    to_id: 2,
                },
                &w.consistency_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            is.following, following,
            "iteration {i}: stale is_follow with the token"
        );
    }
    waits.sort();
    let pct = |p: usize| waits[(waits.len() * p / 100).min(waits.len() - 1)];
    println!(
        "read-your-writes over {ITERATIONS} writes: 0 stale with the token \
         ({synced} from the synced cache, {primary} from MySQL after the wait); \
         {stale_without} stale without it; token read p50 {:?} p99 {:?}",
        pct(50),
        pct(99)
    );
    // The barrier must do its job through the cache, not by always giving
    // up and reading MySQL.
    assert!(
        synced * 10 >= ITERATIONS * 9,
        "only {synced} of {ITERATIONS} token reads were served by the cache ({primary} fell back)"
    );
}
