//! Cursor pagination.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proto::relation::v1::{FollowRequest, ListRequest};
use tonic::Code;

use crate::helpers::spawn_app;

#[tokio::test]
async fn lists_are_newest_first_and_end_with_an_empty_cursor() {
    let app = spawn_app().await;
    let ids = app.users(4).await;
    let (star, fans) = (ids[0], &ids[1..]);
    let mut c = app.client.clone();
    for &f in fans {
        c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            f,
            FollowRequest {
                from_id: f,
                to_id: star,
            },
        ))
        .await
        .unwrap();
        c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            star,
            FollowRequest {
                from_id: star,
                to_id: f,
            },
        ))
        .await
        .unwrap();
    }
    let page = c
        .follower_list(ListRequest {
            user_id: star,
            cursor: String::new(),
            limit: 2,
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<u64> = page.items.iter().map(|e| e.user_id).collect();
    assert_eq!(got, vec![fans[2], fans[1]]);
    assert!(!page.next_cursor.is_empty());
    let page2 = c
        .follower_list(ListRequest {
            user_id: star,
            cursor: page.next_cursor,
            limit: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page2.items.iter().map(|e| e.user_id).collect::<Vec<_>>(),
        vec![fans[0]]
    );
    assert!(page2.next_cursor.is_empty());
    let following = c
        .following_list(ListRequest {
            user_id: star,
            cursor: String::new(),
            limit: 100,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(following.items.len(), 3);
    assert!(
        following
            .items
            .windows(2)
            .all(|w| w[0].followed_at_us >= w[1].followed_at_us)
    );
    app.cleanup().await;
}

#[tokio::test]
async fn garbage_cursors_and_page_sizes_outside_1_to_100_are_invalid() {
    let app = spawn_app().await;
    let [a] = app.users(1).await[..] else {
        unreachable!()
    };
    let mut c = app.client.clone();
    for (cursor, limit) in [
        ("", 0),
        ("", 101),
        ("not a cursor", 10),
        ("AAAA", 10),
        ("%%%", 10),
    ] {
        let e = c
            .following_list(ListRequest {
                user_id: a,
                cursor: cursor.into(),
                limit,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{cursor:?} {limit}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn walking_followers_while_new_follows_arrive_returns_every_old_follower_exactly_once() {
    let app = spawn_app().await;
    let ids = app.users(121).await;
    let star = ids[0];
    let old = &ids[1..81];
    let newcomers = ids[81..].to_vec();
    // Old followers, half of them sharing one created_at to exercise the tie-break.
    for (i, &f) in old.iter().enumerate() {
        let at = if i % 2 == 0 {
            "2026-01-01 00:00:00.000000".to_owned()
        } else {
            format!("2026-01-02 00:00:{:02}.000000", i % 60)
        };
        sqlx::query("INSERT INTO follow (from_id, to_id, created_at) VALUES (?, ?, ?)")
            .bind(f)
            .bind(star)
            .bind(at)
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut c = app.client.clone();
        let done = done.clone();
        tokio::spawn(async move {
            for f in newcomers {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
                    f,
                    FollowRequest {
                        from_id: f,
                        to_id: star,
                    },
                ))
                .await
                .unwrap();
            }
        })
    };
    let mut c = app.client.clone();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .follower_list(ListRequest {
                user_id: star,
                cursor: cursor.clone(),
                limit: 7,
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.items.iter().map(|e| e.user_id));
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    done.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let unique: HashSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    for f in old {
        assert!(unique.contains(f), "old follower {f} missing");
    }
    app.cleanup().await;
}
