//! `/openapi.json`: the OpenAPI 3.1 document of the REST API, built from
//! [`ROUTES`] — the same table the integration tests walk to prove every
//! documented route is mounted.

use serde_json::{Map, Value, json};

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    /// Path template, axum/OpenAPI style (`/v1/users/{id}`).
    pub path: &'static str,
    pub summary: &'static str,
    /// Needs `Authorization: Bearer <jwt>`.
    pub auth: bool,
    /// Register or login: password work behind attempt limits and a bounded
    /// hashing queue, so 429 and 503 are part of its normal answers.
    pub throttled: bool,
    /// Name of the request body schema, if any.
    pub body: Option<&'static str>,
    /// Success status and name of its schema.
    pub ok: (u16, &'static str),
    /// Query parameters.
    pub query: &'static [(&'static str, &'static str)],
}

const LIST_QUERY: &[(&str, &str)] = &[
    (
        "cursor",
        "opaque cursor from the previous page's next_cursor",
    ),
    ("limit", "page size 1..=100, default 20"),
];

/// Every REST route of the gateway.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "post",
        path: "/v1/users",
        summary: "Register a user",
        auth: false,
        throttled: true,
        body: Some("Credentials"),
        ok: (201, "Registered"),
        query: &[],
    },
    RouteDoc {
        method: "post",
        path: "/v1/sessions",
        summary: "Log in (issues a JWT)",
        auth: false,
        throttled: true,
        body: Some("Credentials"),
        ok: (200, "Session"),
        query: &[],
    },
    RouteDoc {
        method: "get",
        path: "/v1/users/{id}",
        summary: "A profile with counters and is_follow for the caller (`me` with a token)",
        auth: false,
        throttled: false,
        body: None,
        ok: (200, "User"),
        query: &[],
    },
    RouteDoc {
        method: "patch",
        path: "/v1/users/{id}",
        summary: "Update avatar / signature / background_image (`me` or your own id)",
        auth: true,
        throttled: false,
        body: Some("ProfilePatch"),
        ok: (200, "ProfileUpdated"),
        query: &[],
    },
    RouteDoc {
        method: "put",
        path: "/v1/users/{id}/following/{target}",
        summary: "Follow target (idempotent; `me` or your own id)",
        auth: true,
        throttled: false,
        body: None,
        ok: (200, "FollowResult"),
        query: &[],
    },
    RouteDoc {
        method: "delete",
        path: "/v1/users/{id}/following/{target}",
        summary: "Unfollow target (idempotent; `me` or your own id)",
        auth: true,
        throttled: false,
        body: None,
        ok: (200, "FollowResult"),
        query: &[],
    },
    RouteDoc {
        method: "get",
        path: "/v1/users/{id}/following/{target}",
        summary: "Whether id follows target",
        auth: false,
        throttled: false,
        body: None,
        ok: (200, "IsFollow"),
        query: &[],
    },
    RouteDoc {
        method: "get",
        path: "/v1/users/{id}/following",
        summary: "Users id follows, newest first",
        auth: false,
        throttled: false,
        body: None,
        ok: (200, "Page"),
        query: LIST_QUERY,
    },
    RouteDoc {
        method: "get",
        path: "/v1/users/{id}/followers",
        summary: "Users following id, newest first",
        auth: false,
        throttled: false,
        body: None,
        ok: (200, "Page"),
        query: LIST_QUERY,
    },
    RouteDoc {
        method: "get",
        path: "/v1/counts",
        summary: "Counters of up to 1,000 users",
        auth: false,
        throttled: false,
        body: None,
        ok: (200, "Counts"),
        query: &[
            ("user_ids", "comma-separated user ids (1..=1000)"),
            ("kinds", "optional: 1 = following, 2 = followers"),
        ],
    },
    RouteDoc {
        method: "get",
        path: "/v1/leaderboard/followers",
        summary: "The most-followed users, live (most followers first; equal counts: lower id first)",
        auth: false,
        throttled: false,
        body: None,
        ok: (200, "Leaderboard"),
        query: &[("limit", "entries 1..=100, default 10")],
    },
    RouteDoc {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        auth: false,
        throttled: false,
        body: None,
        ok: (200, "OpenApi"),
        query: &[],
    },
];

fn schemas() -> Value {
    let s = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required, "additionalProperties": false});
    let user = json!({"type": "object", "properties": {
        "id": {"type": "integer"}, "username": {"type": "string"}, "avatar": {"type": "string"},
        "background_image": {"type": "string"}, "signature": {"type": "string"},
        "follow_count": {"type": "integer"}, "follower_count": {"type": "integer"},
        "is_follow": {"type": "boolean"}, "created_at": {"type": "string", "format": "date-time"}}});
    json!({
        "Credentials": s(json!({
            "username": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"},
            "password": {"type": "string", "description": "8-72 bytes"}}), &["username", "password"]),
        "ProfilePatch": s(json!({
            "avatar": {"type": "string", "maxLength": 1024},
            "signature": {"type": "string", "maxLength": 512},
            "background_image": {"type": "string", "maxLength": 1024}}), &[]),
        "Registered": {"type": "object", "properties": {"id": {"type": "integer"}, "username": {"type": "string"}, "token": {"type": "string"}}},
        "Session": {"type": "object", "properties": {"user_id": {"type": "integer"}, "token": {"type": "string"}}},
        "User": user,
        "ProfileUpdated": {"type": "object", "properties": {"user": {"$ref": "#/components/schemas/User"}, "consistency_token": {"type": "string"}}},
        "FollowResult": {"type": "object", "properties": {"following": {"type": "boolean"}, "changed": {"type": "boolean"}, "consistency_token": {"type": "string", "description": "GTID of the commit; empty when nothing changed"}}},
        "IsFollow": {"type": "object", "properties": {"following": {"type": "boolean"}}},
        "Page": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {"user_id": {"type": "integer"}, "followed_at": {"type": "string", "format": "date-time"}}}},
            "next_cursor": {"type": ["string", "null"]}}},
        "Counts": {"type": "object", "properties": {"counts": {"type": "array", "items": {"type": "object", "properties": {
            "user_id": {"type": "integer"}, "follow_count": {"type": "integer"}, "follower_count": {"type": "integer"}}}}}},
        "Leaderboard": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
            "user_id": {"type": "integer"}, "follower_count": {"type": "integer"}}}}}},
        "OpenApi": {"type": "object"},
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}, "required": ["code", "message"]}}},
    })
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"},
            "description": if name == "id" { "user id, or `me`" } else { "user id" }})
        })
        .collect()
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        let mut params = path_params(r.path);
        params.extend(r.query.iter().map(|(n, d)| json!({"name": n, "in": "query", "required": false, "schema": {"type": "string"}, "description": d})));
        params.push(json!({"name": "Consistency-Token", "in": "header", "required": false, "schema": {"type": "string"},
            "description": "read-your-writes: a consistency_token from an earlier write. The read waits (bounded) until the cache reflects that write, else reads the database; the Read-Source response header says which (synced-cache or primary). A malformed or future token is a 400."}));
        let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let mut op = json!({
            "summary": r.summary,
            "parameters": params,
            "responses": {
                r.ok.0.to_string(): {"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", r.ok.1)}}}},
                "default": error,
            },
        });
        if let Some(body) = r.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
        }
        if r.auth {
            op["security"] = json!([{"bearer": []}]);
        }
        if r.throttled {
            let retry_after = json!({"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}});
            let refusal = |description: &str| json!({"description": description, "headers": retry_after, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
            op["responses"]["429"] = refusal(
                "too many attempts: from this client address (GATEWAY_AUTH_PER_CLIENT) or for this username (USER_PASSWORD__PER_USERNAME), or too many requests in flight",
            );
            op["responses"]["503"] = refusal(
                "password hashing saturated (no slot within USER_PASSWORD__QUEUE_WAIT), a service down, or the request timed out",
            );
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "sluice REST API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_with_its_path_parameters() {
        let doc = document();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method];
            assert!(op.is_object(), "{} {}", r.method, r.path);
            let n = r.path.matches('{').count();
            let path_params = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .count();
            assert_eq!(path_params, n, "{}", r.path);
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn register_and_login_document_429_and_503_with_retry_after() {
        let doc = document();
        for (path, method) in [("/v1/users", "post"), ("/v1/sessions", "post")] {
            for status in ["429", "503"] {
                let r = &doc["paths"][path][method]["responses"][status];
                assert!(
                    r["headers"]["Retry-After"].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
        assert!(doc["paths"]["/v1/counts"]["get"]["responses"]["429"].is_null());
    }
}
