//! Every bad input answered with the right status, and nothing written.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use service_kit::jwt::{Claims, JwtCodec};

use crate::helpers::{assert_error, jwt_secret, spawn_mesh, spawn_mesh_with};

#[tokio::test]
async fn missing_forged_and_expired_tokens_are_401_and_write_nothing() {
    let m = spawn_mesh().await;
    let (_alice, _) = m.register("alice").await;
    let (bob, _) = m.register("bob").await;
    let before = m.rows().await;
    let path = format!("/v1/users/me/following/{bob}");

    let r = m.send(Method::PUT, &path, None, None).await;
    assert_error(&r, 401, "unauthenticated");
    assert_eq!(r.headers["www-authenticate"], "Bearer");

    let forged = JwtCodec::new(
        "some-other-secret-some-other-secret!!".to_owned().into(),
        std::time::Duration::from_secs(60),
    )
    .issue(1);
    let r = m.send(Method::PUT, &path, Some(&forged), None).await;
    assert_error(&r, 401, "unauthenticated");

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired =
        JwtCodec::new(jwt_secret(), std::time::Duration::from_secs(60)).issue_claims(&Claims {
            sub: "1".into(),
            iat: now - 120,
            exp: now - 60,
        });
    let r = m.send(Method::PUT, &path, Some(&expired), None).await;
    assert_error(&r, 401, "unauthenticated");
    assert_eq!(r.body["error"]["message"], "token expired");

    let r = m.send(Method::PUT, &path, Some("garbage"), None).await;
    assert_error(&r, 401, "unauthenticated");
    let r = m
        .send(
            Method::PATCH,
            "/v1/users/me",
            None,
            Some(r#"{"signature":"x"}"#),
        )
        .await;
    assert_error(&r, 401, "unauthenticated");
    let r = m.send(Method::DELETE, &path, None, None).await;
    assert_error(&r, 401, "unauthenticated");

    assert_eq!(m.rows().await, before);
    m.cleanup().await;
}

#[tokio::test]
async fn acting_for_another_user_is_403_and_writes_nothing() {
    let m = spawn_mesh().await;
    let (alice, alice_token) = m.register("alice").await;
    let (bob, _) = m.register("bob").await;
    let (carol, _) = m.register("carol").await;
    let before = m.rows().await;
    let r = m
        .send(
            Method::PUT,
            &format!("/v1/users/{bob}/following/{carol}"),
            Some(&alice_token),
            None,
        )
        .await;
    assert_error(&r, 403, "forbidden");
    let r = m
        .send(
            Method::DELETE,
            &format!("/v1/users/{bob}/following/{carol}"),
            Some(&alice_token),
            None,
        )
        .await;
    assert_error(&r, 403, "forbidden");
    let r = m
        .send(
            Method::PATCH,
            &format!("/v1/users/{bob}"),
            Some(&alice_token),
            Some(r#"{"signature":"pwned"}"#),
        )
        .await;
    assert_error(&r, 403, "forbidden");
    assert_eq!(m.rows().await, before);
    let sig: String = sqlx::query_scalar("SELECT signature FROM user WHERE id = ?")
        .bind(bob)
        .fetch_one(&m.db.pool)
        .await
        .unwrap();
    assert_eq!(sig, "");
    let _ = alice;
    m.cleanup().await;
}

#[tokio::test]
async fn self_follow_unknown_target_duplicate_follow_and_lonely_unfollow_are_handled() {
    let m = spawn_mesh().await;
    let (alice, token) = m.register("alice").await;
    let (bob, _) = m.register("bob").await;
    let before = m.rows().await;

    let r = m
        .send(
            Method::PUT,
            &format!("/v1/users/me/following/{alice}"),
            Some(&token),
            None,
        )
        .await;
    assert_error(&r, 422, "invalid_argument");
    let r = m
        .send(
            Method::PUT,
            "/v1/users/me/following/987654",
            Some(&token),
            None,
        )
        .await;
    assert_error(&r, 404, "not_found");
    let r = m
        .send(
            Method::PUT,
            "/v1/users/me/following/abc",
            Some(&token),
            None,
        )
        .await;
    assert_error(&r, 400, "bad_request");
    let r = m
        .send(
            Method::DELETE,
            &format!("/v1/users/me/following/{bob}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["changed"], false);
    assert_eq!(m.rows().await, before, "nothing written, no negative count");

    for expected_change in [true, false] {
        let r = m
            .send(
                Method::PUT,
                &format!("/v1/users/me/following/{bob}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["changed"], expected_change);
    }
    let followers: i64 =
        sqlx::query_scalar("SELECT value FROM counter WHERE owner_id = ? AND kind = 2")
            .bind(bob)
            .fetch_one(&m.db.pool)
            .await
            .unwrap();
    assert_eq!(followers, 1, "no double count");
    for _ in 0..2 {
        m.send(
            Method::DELETE,
            &format!("/v1/users/me/following/{bob}"),
            Some(&token),
            None,
        )
        .await;
    }
    let min: i64 = m.count("SELECT MIN(value) FROM counter").await;
    assert_eq!(min, 0, "never negative");
    m.cleanup().await;
}

#[tokio::test]
async fn malformed_json_unknown_fields_wrong_types_and_oversized_bodies_are_refused() {
    let m = spawn_mesh_with(|s| s.body_limit = 1024).await;
    let (_, token) = m.register("alice").await;
    let before = m.rows().await;

    let r = m
        .send(
            Method::POST,
            "/v1/users",
            None,
            Some(r#"{"username":"x","password":"#),
        )
        .await;
    assert_error(&r, 400, "bad_request");
    let r = m
        .send(
            Method::POST,
            "/v1/users",
            None,
            Some(r#"{"username":"dave","password":"password1","admin":true}"#),
        )
        .await;
    assert_error(&r, 422, "invalid_argument");
    let r = m
        .send(
            Method::POST,
            "/v1/users",
            None,
            Some(r#"{"username":"dave"}"#),
        )
        .await;
    assert_error(&r, 422, "invalid_argument");
    let r = m
        .send(
            Method::POST,
            "/v1/users",
            None,
            Some(r#"{"username":5,"password":"password1"}"#),
        )
        .await;
    assert_error(&r, 422, "invalid_argument");
    let r = m
        .send(
            Method::PATCH,
            "/v1/users/me",
            Some(&token),
            Some(r#"{"signature":"x","role":"admin"}"#),
        )
        .await;
    assert_error(&r, 422, "invalid_argument");
    let big = format!(r#"{{"username":"dave","password":"{}"}}"#, "p".repeat(4096));
    let r = m.send(Method::POST, "/v1/users", None, Some(&big)).await;
    assert_error(&r, 413, "payload_too_large");
    let r = m
        .send_with(Method::POST, "/v1/users", None, None, &[])
        .await;
    assert_error(&r, 415, "unsupported_media_type");

    // Username / password rules.
    for body in [
        r#"{"username":"","password":"password1"}"#,
        r#"{"username":"a b","password":"password1"}"#,
        r#"{"username":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","password":"password1"}"#,
        r#"{"username":"dave","password":"short"}"#,
    ] {
        let r = m.send(Method::POST, "/v1/users", None, Some(body)).await;
        assert_error(&r, 422, "invalid_argument");
    }
    assert_eq!(m.rows().await, before);
    m.cleanup().await;
}

#[tokio::test]
async fn taken_usernames_conflict_and_bad_logins_look_alike() {
    let m = spawn_mesh().await;
    m.register("alice").await;
    let r = m
        .send(
            Method::POST,
            "/v1/users",
            None,
            Some(r#"{"username":"ALICE","password":"password1"}"#),
        )
        .await;
    assert_error(&r, 409, "conflict");
    let wrong_pw = m
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(r#"{"username":"alice","password":"password2"}"#),
        )
        .await;
    let no_user = m
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(r#"{"username":"nobody","password":"password1"}"#),
        )
        .await;
    assert_error(&wrong_pw, 401, "unauthenticated");
    assert_eq!(wrong_pw.body, no_user.body);
    assert_eq!(wrong_pw.status, no_user.status);
    m.cleanup().await;
}

#[tokio::test]
async fn page_sizes_outside_1_to_100_and_garbage_cursors_are_refused() {
    let m = spawn_mesh().await;
    let (alice, _) = m.register("alice").await;
    for q in [
        "limit=0",
        "limit=101",
        "limit=99999999999",
        "cursor=garbage",
        "cursor=AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = m
            .send(
                Method::GET,
                &format!("/v1/users/{alice}/followers?{q}"),
                None,
                None,
            )
            .await;
        assert_error(&r, 422, "invalid_argument");
    }
    let r = m
        .send(
            Method::GET,
            &format!("/v1/users/{alice}/following?limit=ten"),
            None,
            None,
        )
        .await;
    assert_error(&r, 400, "bad_request");
    let r = m
        .send(Method::GET, "/v1/users/0/following", None, None)
        .await;
    assert_error(&r, 400, "bad_request");
    let r = m.send(Method::GET, "/v1/users/424242", None, None).await;
    assert_error(&r, 404, "not_found");
    let r = m
        .send(Method::GET, "/v1/counts?user_ids=1,x", None, None)
        .await;
    assert_error(&r, 400, "bad_request");
    let r = m.send(Method::GET, "/v1/counts", None, None).await;
    assert_error(&r, 422, "invalid_argument");
    let ids: Vec<String> = (1..=1001).map(|i| i.to_string()).collect();
    let r = m
        .send(
            Method::GET,
            &format!("/v1/counts?user_ids={}", ids.join(",")),
            None,
            None,
        )
        .await;
    assert_error(&r, 422, "invalid_argument");
    m.cleanup().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let m = spawn_mesh().await;
    let r = m.send(Method::GET, "/v2/nothing", None, None).await;
    assert_error(&r, 404, "not_found");
    let r = m.send(Method::POST, "/v1/counts", None, Some("{}")).await;
    assert_error(&r, 405, "method_not_allowed");
    m.cleanup().await;
}

#[tokio::test]
async fn services_that_are_down_give_503_and_overload_gives_429() {
    let m = spawn_mesh_with(|s| {
        s.user_url = "http://127.0.0.1:1".into();
    })
    .await;
    let r = m.send(Method::GET, "/v1/users/1", None, None).await;
    assert_error(&r, 503, "unavailable");
    m.cleanup().await;

    let m = spawn_mesh_with(|s| s.max_in_flight = 1).await;
    let (alice, _) = m.register("alice").await;
    let path = format!("/v1/users/{alice}/followers");
    let calls = (0..32).map(|_| m.send(Method::GET, &path, None, None));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "some shed: {statuses:?}");
    m.cleanup().await;
}

/// Issue #17, point 9: each of these was answered wrongly before (a plain
/// text 400, a silently ignored header, an accepted `+1`, the database's
/// GTID position echoed to the client, script URLs stored).
#[tokio::test]
async fn odd_ids_tokens_and_profile_fields_get_json_400s_that_leak_nothing() {
    use axum::body::Body;
    use axum::http::{HeaderValue, Request};
    let m = spawn_mesh().await;
    let (alice, token) = m.register("alice").await;
    let before = m.rows().await;

    // Invalid UTF-8 after percent-decoding: JSON, like every other error.
    let req = Request::get("/v1/users/%FF%FE")
        .body(Body::empty())
        .unwrap();
    let r = m.send_request(req).await;
    assert_error(&r, 400, "bad_request");

    // `+1` is not an id.
    let r = m.send(Method::GET, "/v1/users/+1", None, None).await;
    assert_error(&r, 400, "bad_request");
    let r = m
        .send(Method::PUT, "/v1/users/me/following/+1", Some(&token), None)
        .await;
    assert_error(&r, 400, "bad_request");
    // Nor in `/v1/counts`: its ids and kinds have the one spelling too (a
    // `+` in a query is `%2B`; a bare `+` is a blank, which is trimmed).
    for q in ["user_ids=%2B1", "user_ids=1,0", "user_ids=1&kinds=%2B1"] {
        let r = m
            .send(Method::GET, &format!("/v1/counts?{q}"), None, None)
            .await;
        assert_error(&r, 400, "bad_request");
    }
    let r = m
        .send(
            Method::GET,
            "/v1/counts?user_ids=+1,,002+&kinds=",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A Consistency-Token that is not ASCII is refused, not ignored.
    let mut req = Request::get(format!("/v1/users/{alice}"))
        .body(Body::empty())
        .unwrap();
    req.headers_mut().insert(
        "consistency-token",
        HeaderValue::from_bytes(b"0-1-\xff7").unwrap(),
    );
    let r = m.send_request(req).await;
    assert_error(&r, 400, "bad_request");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|s| s.contains("Consistency-Token")),
        "{}",
        r.body
    );

    // A token from the future: 400 without the database's position.
    let server: String = sqlx::query_scalar("SELECT @@gtid_binlog_pos")
        .fetch_one(&m.db.pool)
        .await
        .unwrap();
    let r = m
        .send_with(
            Method::GET,
            &format!("/v1/users/{alice}"),
            None,
            None,
            &[("consistency-token", "0-1-999999999999")],
        )
        .await;
    assert_error(&r, 400, "bad_request");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(!server.is_empty());
    assert!(!message.contains(&server), "{message} leaks {server}");
    assert!(message.contains("ahead"), "{message}");

    // Script URLs and control characters never reach the profile.
    for body in [
        r#"{"avatar":"javascript:alert(1)"}"#,
        r#"{"background_image":"data:text/html,<b>"}"#,
        r#"{"signature":"a\u001b[2Jb"}"#,
    ] {
        let r = m
            .send(Method::PATCH, "/v1/users/me", Some(&token), Some(body))
            .await;
        assert_error(&r, 422, "invalid_argument");
    }
    assert_eq!(m.rows().await, before);
    let sig: String = sqlx::query_scalar("SELECT signature FROM user WHERE id = ?")
        .bind(alice)
        .fetch_one(&m.db.pool)
        .await
        .unwrap();
    assert_eq!(sig, "");
    m.cleanup().await;
}
