//! The happy paths through the gateway.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Mesh, assert_error, http_get, spawn_mesh, spawn_mesh_with};

#[tokio::test]
async fn register_login_follow_list_and_unfollow_end_to_end() {
    let m = spawn_mesh().await;
    let (alice, _) = m.register("alice").await;
    let (bob, bob_token) = m.register("bob").await;

    let login = m
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(r#"{"username":"alice","password":"password1"}"#),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user_id"], alice);
    let alice_token = login.body["token"].as_str().unwrap().to_owned();

    let f = m
        .send(
            Method::PUT,
            &format!("/v1/users/me/following/{bob}"),
            Some(&alice_token),
            None,
        )
        .await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.body);
    assert_eq!(f.body["following"], true);
    assert_eq!(f.body["changed"], true);
    let token = f.body["consistency_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    assert_eq!(f.headers["consistency-token"], token.as_str());
    // Bob follows back using his numeric id instead of `me`.
    let f = m
        .send(
            Method::PUT,
            &format!("/v1/users/{bob}/following/{alice}"),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.body);

    let following = m
        .send(
            Method::GET,
            &format!("/v1/users/{alice}/following"),
            None,
            None,
        )
        .await;
    assert_eq!(following.status, StatusCode::OK);
    assert_eq!(following.body["items"][0]["user_id"], bob);
    assert!(
        following.body["items"][0]["followed_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(following.body["next_cursor"].is_null());
    let followers = m
        .send(
            Method::GET,
            &format!("/v1/users/{bob}/followers?limit=10"),
            None,
            None,
        )
        .await;
    assert_eq!(followers.body["items"][0]["user_id"], alice);

    let is = m
        .send(
            Method::GET,
            &format!("/v1/users/{alice}/following/{bob}"),
            None,
            None,
        )
        .await;
    assert_eq!(is.body["following"], true);

    // Profile of bob as seen by alice, read-your-writes via the token.
    let profile = m
        .send_with(
            Method::GET,
            &format!("/v1/users/{bob}"),
            Some(&alice_token),
            None,
            &[("consistency-token", &token)],
        )
        .await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    // No syncer runs here: the wait ran out and MySQL answered, and the
    // response says so.
    assert_eq!(profile.headers["read-source"], "primary");
    assert_eq!(profile.body["username"], "bob");
    assert_eq!(profile.body["follower_count"], 1);
    assert_eq!(profile.body["follow_count"], 1);
    assert_eq!(profile.body["is_follow"], true);
    assert!(profile.body.get("password_hash").is_none());

    let me = m
        .send(Method::GET, "/v1/users/me", Some(&alice_token), None)
        .await;
    assert_eq!(me.body["id"], alice);

    let counts = m
        .send_with(
            Method::GET,
            &format!("/v1/counts?user_ids={alice},{bob},999999"),
            None,
            None,
            &[("consistency-token", &token)],
        )
        .await;
    assert_eq!(counts.status, StatusCode::OK, "{}", counts.body);
    assert_eq!(
        counts.body["counts"][0],
        json!({"user_id": alice, "follow_count": 1, "follower_count": 1})
    );
    assert_eq!(
        counts.body["counts"][2],
        json!({"user_id": 999999, "follow_count": 0, "follower_count": 0})
    );

    let u = m
        .send(
            Method::DELETE,
            &format!("/v1/users/me/following/{bob}"),
            Some(&alice_token),
            None,
        )
        .await;
    assert_eq!(u.status, StatusCode::OK);
    assert_eq!(u.body["following"], false);
    assert_eq!(u.body["changed"], true);
    let unfollow_token = u.body["consistency_token"].as_str().unwrap().to_owned();
    let following = m
        .send(
            Method::GET,
            &format!("/v1/users/{alice}/following"),
            None,
            None,
        )
        .await;
    assert_eq!(following.body["items"], json!([]));
    let is = m
        .send_with(
            Method::GET,
            &format!("/v1/users/{alice}/following/{bob}"),
            None,
            None,
            &[("consistency-token", &unfollow_token)],
        )
        .await;
    assert_eq!(is.body["following"], false);
    // A token that is not a GTID, or one no commit has reached yet, is the
    // client's mistake: 400 at once, never a wait.
    for bad in ["x", "0-1-", "0-1-999999999999"] {
        let started = std::time::Instant::now();
        let r = m
            .send_with(
                Method::GET,
                &format!("/v1/users/{alice}/following/{bob}"),
                None,
                None,
                &[("consistency-token", bad)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("consistency token")),
            "{}",
            r.body
        );
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "{bad} waited"
        );
    }
    m.cleanup().await;
}

#[tokio::test]
async fn profile_updates_are_visible_with_their_consistency_token() {
    let m = spawn_mesh().await;
    let (id, token) = m.register("carol").await;
    // Warm the caches with the old profile.
    let before = m
        .send(Method::GET, &format!("/v1/users/{id}"), None, None)
        .await;
    assert_eq!(before.body["signature"], "");

    let r = m
        .send(
            Method::PATCH,
            "/v1/users/me",
            Some(&token),
            Some(r#"{"signature":"hello","avatar":"https://a/b.png"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user"]["signature"], "hello");
    let ct = r.body["consistency_token"].as_str().unwrap().to_owned();
    assert!(!ct.is_empty());

    let after = m
        .send_with(
            Method::GET,
            &format!("/v1/users/{id}"),
            None,
            None,
            &[("consistency-token", &ct)],
        )
        .await;
    assert_eq!(after.body["signature"], "hello");
    assert_eq!(after.body["avatar"], "https://a/b.png");
    assert_eq!(after.body["background_image"], "");
    m.cleanup().await;
}

/// Sets the signature of the token's user to "changed"; its consistency token.
async fn sign_changed(m: &Mesh, token: &str) -> String {
    let r = m
        .send(
            Method::PATCH,
            "/v1/users/me",
            Some(token),
            Some(r#"{"signature":"changed"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["consistency_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn anonymous_profile_reads_come_from_the_edge_cache_and_tokens_bypass_it() {
    // A long TTL, so that the kept answer is still there when checked.
    let m = spawn_mesh_with(|s| s.edge_cache_ttl = Duration::from_secs(60)).await;
    let (id, token) = m.register("dave").await;
    let path = format!("/v1/users/{id}");
    let first = m.send(Method::GET, &path, None, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["signature"], "");
    assert_eq!(first.body["username"], "dave");
    assert_eq!(first.headers["content-type"], "application/json");

    let ct = sign_changed(&m, &token).await;

    // No syncer runs here, so drop user-service's Redis copy by hand: the
    // service itself would now answer from MySQL ("changed").
    m.redis.clone().cleanup().await;
    // Anonymous and token-less: the kept answer, within its TTL.
    let kept = m.send(Method::GET, &path, None, None).await;
    assert_eq!(kept.body, first.body);
    // A consistency token or a bearer token never reads the edge cache.
    let fresh = m
        .send_with(
            Method::GET,
            &path,
            None,
            None,
            &[("consistency-token", &ct)],
        )
        .await;
    assert_eq!(fresh.body["signature"], "changed");
    // A viewer's answer is the viewer's own (is_follow), never the kept one.
    let (fan, fan_token) = m.register("dave_fan").await;
    let f = m
        .send(
            Method::PUT,
            &format!("/v1/users/me/following/{id}"),
            Some(&fan_token),
            None,
        )
        .await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.body);
    let viewer = m.send(Method::GET, &path, Some(&fan_token), None).await;
    assert_eq!(viewer.status, StatusCode::OK, "{}", viewer.body);
    assert_eq!(viewer.body["is_follow"], true, "fan {fan}: {}", viewer.body);
    assert_eq!(
        m.send(Method::GET, &path, None, None).await.body["is_follow"],
        false
    );
    // Unknown ids are answered 404 every time (nothing kept).
    for _ in 0..2 {
        let missing = m.send(Method::GET, "/v1/users/999999999", None, None).await;
        assert_error(&missing, 404, "not_found");
    }
    m.cleanup().await;

    // TTL 0 turns the edge cache off: the same steps read the new profile.
    let m = spawn_mesh_with(|s| s.edge_cache_ttl = Duration::ZERO).await;
    let (id, token) = m.register("erin").await;
    let path = format!("/v1/users/{id}");
    let first = m.send(Method::GET, &path, None, None).await;
    assert_eq!(first.body["signature"], "");
    sign_changed(&m, &token).await;
    m.redis.clone().cleanup().await;
    let now = m.send(Method::GET, &path, None, None).await;
    assert_eq!(now.body["signature"], "changed");
    m.cleanup().await;
}

#[tokio::test]
async fn pages_walk_with_cursors_and_every_documented_route_is_mounted() {
    let m = spawn_mesh().await;
    let (star, _) = m.register("star").await;
    let mut fans = Vec::new();
    for i in 0..5 {
        let (id, token) = m.register(&format!("fan{i}")).await;
        let r = m
            .send(
                Method::PUT,
                &format!("/v1/users/me/following/{star}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        fans.push(id);
    }
    let mut seen = Vec::new();
    let mut path = format!("/v1/users/{star}/followers?limit=2");
    loop {
        let page = m.send(Method::GET, &path, None, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["user_id"].as_u64().unwrap()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/users/{star}/followers?limit=2&cursor={c}"),
            None => break,
        }
    }
    fans.reverse();
    assert_eq!(seen, fans, "newest first, each once");

    let doc = m.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    for r in gateway::openapi::ROUTES {
        let path = r
            .path
            .replace("{id}", &star.to_string())
            .replace("{target}", &fans[0].to_string());
        let method: Method = r.method.to_uppercase().parse().unwrap();
        let resp = m.send(method, &path, None, None).await;
        assert_ne!(
            resp.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {}",
            r.method,
            r.path
        );
        assert_ne!(
            resp.body["error"]["message"], "no such route",
            "{} {}",
            r.method, r.path
        );
        assert!(doc.body["paths"][r.path][r.method].is_object());
    }
    m.cleanup().await;
}

#[tokio::test]
async fn sql_injection_like_input_is_refused_or_stored_verbatim() {
    let m = spawn_mesh().await;
    let before = m.rows().await;
    let evil =
        json!({"username": "robert'); DROP TABLE user;--", "password": "password1"}).to_string();
    let r = m.send(Method::POST, "/v1/users", None, Some(&evil)).await;
    assert_error(&r, 422, "invalid_argument");
    assert_eq!(m.rows().await, before, "nothing written");

    // Inside the username alphabet: stored and returned exactly.
    let (id, token) = m.register("--.OR.1-1_").await;
    let login = m
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(r#"{"username":"--.OR.1-1_","password":"password1"}"#),
        )
        .await;
    assert_eq!(login.body["user_id"], id);

    let sig = "'); DELETE FROM follow; UPDATE user SET username='x' WHERE '1'='1";
    let patch = json!({ "signature": sig }).to_string();
    let r = m
        .send(Method::PATCH, "/v1/users/me", Some(&token), Some(&patch))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stored: String = sqlx::query_scalar("SELECT signature FROM user WHERE id = ?")
        .bind(id)
        .fetch_one(&m.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, sig);
    let name: String = sqlx::query_scalar("SELECT username FROM user WHERE id = ?")
        .bind(id)
        .fetch_one(&m.db.pool)
        .await
        .unwrap();
    assert_eq!(name, "--.OR.1-1_");
    assert_eq!(m.count("SELECT COUNT(*) FROM user").await, 1);
    m.cleanup().await;
}

#[tokio::test]
async fn admin_port_reports_ready_once_every_service_is_healthy_and_serves_metrics() {
    let m = spawn_mesh().await;
    let port = m.admin_port;
    testkit::eventually(
        std::time::Duration::from_secs(10),
        "gateway /readyz is 200",
        || async {
            http_get(port, "/readyz")
                .await
                .starts_with("HTTP/1.1 200")
                .then_some(())
        },
    )
    .await;
    assert!(http_get(port, "/healthz").await.starts_with("HTTP/1.1 200"));
    m.send(Method::GET, "/v1/users/1", None, None).await;
    let metrics = http_get(port, "/metrics").await;
    assert!(metrics.contains("gateway_requests_total"), "{metrics}");
    assert!(
        metrics.contains("route=\"/v1/users/{id}\""),
        "route templates, not ids"
    );
    m.cleanup().await;
}

#[tokio::test]
async fn invented_http_methods_add_no_metric_series() {
    let m = spawn_mesh().await;
    let tag: u32 = rand::random();
    for i in 0..20 {
        let method = Method::from_bytes(format!("INVENTED{tag}X{i}").as_bytes()).unwrap();
        let r = m.send(method, "/v1/users/1", None, None).await;
        assert!(r.status.is_client_error(), "{}", r.status);
    }
    let metrics = http_get(m.admin_port, "/metrics").await;
    assert!(
        !metrics.contains(&format!("INVENTED{tag}")),
        "a client's method became a label"
    );
    assert!(metrics.contains("method=\"other\""), "counted as other");
    m.cleanup().await;
}

#[tokio::test]
async fn the_followers_leaderboard_ranks_users_and_refuses_a_bad_limit() {
    let m = spawn_mesh().await;
    let (a, ta) = m.register("lb_a").await;
    let (b, tb) = m.register("lb_b").await;
    let (c, _) = m.register("lb_c").await;
    // c is followed twice, b once.
    for (token, from, to) in [(&ta, a, c), (&tb, b, c), (&ta, a, b)] {
        let r = m
            .send(
                Method::PUT,
                &format!("/v1/users/{from}/following/{to}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // No syncer in this mesh: the leaderboard is read from MySQL.
    let r = m
        .send(Method::GET, "/v1/leaderboard/followers", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["items"],
        json!([{"user_id": c, "follower_count": 2}, {"user_id": b, "follower_count": 1}])
    );
    assert_eq!(
        r.headers.get("read-source").and_then(|v| v.to_str().ok()),
        Some("primary")
    );
    let r = m
        .send(Method::GET, "/v1/leaderboard/followers?limit=1", None, None)
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));
    for bad in ["0", "101", "x"] {
        let r = m
            .send(
                Method::GET,
                &format!("/v1/leaderboard/followers?limit={bad}"),
                None,
                None,
            )
            .await;
        assert_error(&r, 400, "bad_request");
    }
    m.cleanup().await;
}
