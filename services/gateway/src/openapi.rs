//! `/openapi.json`: the OpenAPI 3.1 document of the REST API, built from
//! [`ROUTES`] — the same table the integration tests walk to prove every
//! documented route is mounted.
//!
//! # What the document promises
//! - Each parameter's and body field's schema accepts what the handler
//!   and the service behind it accept, and nothing else: the patterns are
//!   built here from the same bounds, and the unit tests below hold them
//!   against the parsers and validators themselves. Two rules JSON Schema
//!   cannot state exactly are described in words: a password counts bytes
//!   (the schema bounds its characters, 2..=72), and a cursor must be one
//!   the server handed out (the schema gives its form).
//! - Each operation lists every status it can answer, each error with its
//!   one `code`; `default` stays as the catch-all (500 `internal`, 405).
//!   Every route may answer 429 (too many requests in flight) and 503 (a
//!   service down, the request timed out), both with `Retry-After`.
//! - Response objects name every field the gateway sends, as `required`,
//!   and no other (`additionalProperties: false`).
//!
//! `scripts/schemathesis.sh` checks the running gateway against it.
//!
//! Patterns are ECMA-262 (JSON Schema's dialect), written in the subset
//! that Rust's `regex` and Python's `re` read the same way: the tests
//! compile them with `regex`, schemathesis with `re`.

use serde_json::{Map, Value, json};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No token read.
    None,
    /// A token is optional: it makes `me` usable and sets the viewer (a bad
    /// token is still a 401).
    Optional,
    /// `Authorization: Bearer <jwt>` required.
    Required,
}

/// A query parameter of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `cursor` of the lists.
    Cursor,
    /// `limit` of the lists (1..=100, default 20).
    ListLimit,
    /// `user_ids` of `/v1/counts`.
    UserIds,
    /// `kinds` of `/v1/counts`.
    Kinds,
    /// `limit` of the leaderboard (1..=100, default 10).
    LeaderboardLimit,
}

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    /// Path template, axum/OpenAPI style (`/v1/users/{id}`).
    pub path: &'static str,
    /// OpenAPI `operationId`: camelCase, unique.
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    /// Register or login: password work behind attempt limits and a bounded
    /// hashing queue, so 429 and 503 are part of its normal answers.
    pub throttled: bool,
    /// Reads the `Consistency-Token` request header (read-your-writes) and
    /// may answer `Read-Source`.
    pub reads_token: bool,
    /// Name of the request body schema, if any.
    pub body: Option<&'static str>,
    /// Success status and name of its schema.
    pub ok: (u16, &'static str),
    /// Query parameters.
    pub query: &'static [Query],
    /// Error statuses the route answers besides the 429 and 503 of every
    /// route ([`ALWAYS`]).
    pub errors: &'static [u16],
}

impl RouteDoc {
    /// A write: answers the commit's `Consistency-Token` header.
    pub fn writes(&self) -> bool {
        matches!(self.method, "put" | "patch" | "delete")
    }

    /// Every error status of the route, ascending.
    pub fn error_statuses(&self) -> Vec<u16> {
        let mut all: Vec<u16> = self.errors.iter().chain(ALWAYS).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// Statuses any route may answer: the in-flight limit (429) and the
/// request timeout or a service down (503).
pub const ALWAYS: &[u16] = &[429, 503];

/// Every error status a route may list, with its error `code` (the JSON
/// body's `error.code`, one per status) and what it means in general.
pub const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "bad_request",
        "malformed request: JSON syntax, a path id or query value that is not a number, a Consistency-Token that is not a GTID or is ahead of every commit",
    ),
    (
        401,
        "unauthenticated",
        "missing, forged or expired bearer token (or wrong username or password)",
    ),
    (403, "forbidden", "acting for another user"),
    (404, "not_found", "no such user"),
    (409, "conflict", "username already taken (ignoring case)"),
    (413, "payload_too_large", "body over GATEWAY_BODY_LIMIT"),
    (
        415,
        "unsupported_media_type",
        "body without Content-Type: application/json",
    ),
    (422, "invalid_argument", "well-formed but invalid"),
    (
        429,
        "too_many_requests",
        "too many requests in flight (GATEWAY_MAX_IN_FLIGHT)",
    ),
    (
        503,
        "unavailable",
        "a service or MySQL is down, or the request exceeded GATEWAY_REQUEST_TIMEOUT",
    ),
];

/// Codes only the catch-all `default` response carries.
pub const DEFAULT_CODES: &[&str] = &["method_not_allowed", "internal"];

const LIST_QUERY: &[Query] = &[Query::Cursor, Query::ListLimit];

/// Every REST route of the gateway.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "post",
        path: "/v1/users",
        operation_id: "registerUser",
        summary: "Register a user",
        auth: Auth::None,
        throttled: true,
        reads_token: false,
        body: Some("Credentials"),
        ok: (201, "Registered"),
        query: &[],
        errors: &[400, 409, 413, 415, 422],
    },
    RouteDoc {
        method: "post",
        path: "/v1/sessions",
        operation_id: "logIn",
        summary: "Log in (issues a JWT)",
        auth: Auth::None,
        throttled: true,
        reads_token: false,
        body: Some("Credentials"),
        ok: (200, "Session"),
        query: &[],
        errors: &[400, 401, 413, 415, 422],
    },
    RouteDoc {
        method: "get",
        path: "/v1/users/{id}",
        operation_id: "getUser",
        summary: "A profile with counters and is_follow for the caller (`me` with a token)",
        auth: Auth::Optional,
        throttled: false,
        reads_token: true,
        body: None,
        ok: (200, "User"),
        query: &[],
        errors: &[400, 401, 404],
    },
    RouteDoc {
        method: "patch",
        path: "/v1/users/{id}",
        operation_id: "updateProfile",
        summary: "Update avatar / signature / background_image (`me` or your own id)",
        auth: Auth::Required,
        throttled: false,
        reads_token: false,
        body: Some("ProfilePatch"),
        ok: (200, "ProfileUpdated"),
        query: &[],
        errors: &[400, 401, 403, 404, 413, 415, 422],
    },
    RouteDoc {
        method: "put",
        path: "/v1/users/{id}/following/{target}",
        operation_id: "followUser",
        summary: "Follow target (idempotent; `me` or your own id)",
        auth: Auth::Required,
        throttled: false,
        reads_token: false,
        body: None,
        ok: (200, "FollowResult"),
        query: &[],
        errors: &[400, 401, 403, 404, 422],
    },
    RouteDoc {
        method: "delete",
        path: "/v1/users/{id}/following/{target}",
        operation_id: "unfollowUser",
        summary: "Unfollow target (idempotent; `me` or your own id)",
        auth: Auth::Required,
        throttled: false,
        reads_token: false,
        body: None,
        ok: (200, "FollowResult"),
        query: &[],
        errors: &[400, 401, 403, 404, 422],
    },
    RouteDoc {
        method: "get",
        path: "/v1/users/{id}/following/{target}",
        operation_id: "isFollowing",
        summary: "Whether id follows target",
        auth: Auth::Optional,
        throttled: false,
        reads_token: true,
        body: None,
        ok: (200, "IsFollow"),
        query: &[],
        errors: &[400, 401],
    },
    RouteDoc {
        method: "get",
        path: "/v1/users/{id}/following",
        operation_id: "listFollowing",
        summary: "Users id follows, newest first",
        auth: Auth::Optional,
        throttled: false,
        reads_token: true,
        body: None,
        ok: (200, "Page"),
        query: LIST_QUERY,
        errors: &[400, 401, 422],
    },
    RouteDoc {
        method: "get",
        path: "/v1/users/{id}/followers",
        operation_id: "listFollowers",
        summary: "Users following id, newest first",
        auth: Auth::Optional,
        throttled: false,
        reads_token: true,
        body: None,
        ok: (200, "Page"),
        query: LIST_QUERY,
        errors: &[400, 401, 422],
    },
    RouteDoc {
        method: "get",
        path: "/v1/counts",
        operation_id: "getCounts",
        summary: "Counters of up to 1,000 users, in request order (each id once)",
        auth: Auth::None,
        throttled: false,
        reads_token: true,
        body: None,
        ok: (200, "Counts"),
        query: &[Query::UserIds, Query::Kinds],
        errors: &[400, 422],
    },
    RouteDoc {
        method: "get",
        path: "/v1/leaderboard/followers",
        operation_id: "getFollowersLeaderboard",
        summary: "The most-followed users, live (most followers first; equal counts: lower id first)",
        auth: Auth::None,
        throttled: false,
        reads_token: true,
        body: None,
        ok: (200, "Leaderboard"),
        query: &[Query::LeaderboardLimit],
        errors: &[400],
    },
    RouteDoc {
        method: "get",
        path: "/openapi.json",
        operation_id: "getOpenApi",
        summary: "This document",
        auth: Auth::None,
        throttled: false,
        reads_token: false,
        body: None,
        ok: (200, "OpenApi"),
        query: &[],
        errors: &[],
    },
];

/// Largest page of the lists and of the leaderboard.
pub const MAX_PAGE: u32 = 100;
/// Most ids one `/v1/counts` call may name (duplicates included).
pub const MAX_COUNT_IDS: usize = 1000;
/// Username length, in characters.
pub const MAX_USERNAME: usize = 32;
/// Password length in bytes (UTF-8), as user-service checks it.
pub const PASSWORD_BYTES: (usize, usize) = (8, 72);
/// Longest avatar / background image URL and signature, in characters.
pub const MAX_IMAGE_URL: usize = 1024;
pub const MAX_SIGNATURE: usize = 512;
/// A cursor: 16 bytes in unpadded base64url.
pub const CURSOR_LEN: usize = 22;

/// One character of what Rust's `char::is_whitespace` (Unicode
/// White_Space) and so `str::trim` take away.
pub const BLANK: &str = r"[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// Unicode control characters (Cc, `char::is_control`).
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";

/// What an image URL may not contain: controls and White_Space (the two
/// ranges meet at U+0020 and U+00A0).
const NOT_IN_URL: &str = r"\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// Decimal numbers 1..=`max` without leading zeros, as one group.
fn positive_up_to(max: u64) -> String {
    let digits = max.to_string();
    let n = digits.len();
    let mut alts = Vec::new();
    match n {
        1 => {}
        2 => alts.push("[1-9]".to_owned()),
        _ => alts.push(format!("[1-9][0-9]{{0,{}}}", n - 2)),
    }
    // n digits below max: max's first i digits, a smaller digit, any rest.
    for (i, d) in digits.bytes().map(|b| b - b'0').enumerate() {
        let lowest = u8::from(i == 0);
        if d <= lowest {
            continue;
        }
        let class = if d - 1 == lowest {
            lowest.to_string()
        } else {
            format!("[{lowest}-{}]", d - 1)
        };
        let rest = match n - i - 1 {
            0 => String::new(),
            k => format!("[0-9]{{{k}}}"),
        };
        alts.push(format!("{}{class}{rest}", &digits[..i]));
    }
    alts.push(digits.clone());
    format!("(?:{})", alts.join("|"))
}

/// A user id as the gateway reads one (`extract::parse_id`): ASCII digits,
/// leading zeros allowed, 1..=2^64-1.
fn user_id_digits() -> String {
    format!("0*{}", positive_up_to(u64::MAX))
}

/// `{target}`, and each id of `user_ids`.
pub fn user_id_pattern() -> String {
    format!("^{}$", user_id_digits())
}

/// `{id}`: a user id or `me`.
pub fn path_id_pattern() -> String {
    format!("^(?:me|{})$", user_id_digits())
}

/// `user_ids`: 1..=1000 ids, comma-separated; blanks around an id and
/// empty items are ignored (duplicates count toward the 1,000).
pub fn user_ids_pattern() -> String {
    let id = format!("{BLANK}*{}{BLANK}*", user_id_digits());
    format!(
        "^(?:{BLANK}*,)*{id}(?:,(?:{BLANK}*,)*{id}){{0,{}}}(?:,{BLANK}*)*$",
        MAX_COUNT_IDS - 1
    )
}

/// `kinds`: any number of 1 (following) and 2 (followers),
/// comma-separated; blanks and empty items ignored; none = both.
pub fn kinds_pattern() -> String {
    let item = format!("{BLANK}*(?:0*[12]{BLANK}*)?");
    format!("^{item}(?:,{item})*$")
}

/// `cursor` (and `next_cursor`): 16 bytes in unpadded base64url, whose last
/// character carries no stray bits; empty = the first page.
pub const CURSOR_PATTERN: &str = "^(?:[A-Za-z0-9_-]{21}[AQgw])?$";

/// `avatar` and `background_image`: empty, or an absolute http(s) URL
/// (scheme in any case) with a host, without whitespace or controls.
pub fn image_url_pattern() -> String {
    format!("^(?:[Hh][Tt][Tt][Pp][Ss]?://[^/?#{NOT_IN_URL}][^{NOT_IN_URL}]*)?$")
}

/// `signature`: no control characters.
pub fn signature_pattern() -> String {
    format!("^[^{CONTROL}]*$")
}

/// `username`: 1-32 of `A-Z a-z 0-9 _ . -`.
pub fn username_pattern() -> String {
    format!("^[A-Za-z0-9_.-]{{1,{MAX_USERNAME}}}$")
}

/// A JWT as the server issues them (three base64url parts).
const JWT_PATTERN: &str = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$";

/// A consistency token as writes return them: a MariaDB GTID
/// (`domain-server-seq`) or a MySQL one (`uuid:n`).
const GTID_PATTERN: &str = "^(?:[0-9]+-[0-9]+-[0-9]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[0-9]+)$";

fn query_param(q: Query) -> Value {
    let (name, required, schema, description) = match q {
        Query::Cursor => (
            "cursor",
            false,
            json!({"type": "string", "maxLength": CURSOR_LEN, "pattern": CURSOR_PATTERN}),
            "opaque: the previous page's next_cursor (absent or empty: the first page). A cursor of this form that the server did not hand out may be refused with 422.",
        ),
        Query::ListLimit => (
            "limit",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 20}),
            "page size (an empty value: the default); another number is 422, not a number 400",
        ),
        Query::UserIds => (
            "user_ids",
            true,
            json!({"type": "string", "pattern": user_ids_pattern()}),
            "1 to 1,000 user ids, comma-separated (`1,2,3`; blanks around an id and empty items are ignored, duplicates count and are answered once). Missing, empty, 0 or more than 1,000: 422 or 400.",
        ),
        Query::Kinds => (
            "kinds",
            false,
            json!({"type": "string", "pattern": kinds_pattern()}),
            "which counters, comma-separated: 1 = following (follow_count), 2 = followers (follower_count); absent or empty: both. Another number is 422.",
        ),
        Query::LeaderboardLimit => (
            "limit",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 10}),
            "entries (an empty value: the default); anything else is 400",
        ),
    };
    json!({"name": name, "in": "query", "required": required, "schema": schema, "description": description})
}

fn path_params(r: &RouteDoc) -> Vec<Value> {
    r.path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let (pattern, description) = match (name, r.auth) {
                ("id", Auth::Required) => (
                    path_id_pattern(),
                    "`me` or your own user id (digits); another user's id is 403",
                ),
                ("id", _) => (
                    path_id_pattern(),
                    "a user id (digits), or `me` (needs a bearer token, else 401)",
                ),
                _ => (user_id_pattern(), "a user id (digits)"),
            };
            json!({"name": name, "in": "path", "required": true,
                "schema": {"type": "string", "pattern": pattern}, "description": description})
        })
        .collect()
}

fn schemas() -> Value {
    let object = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required, "additionalProperties": false});
    let user_id = json!({"type": "integer", "minimum": 1, "maximum": u64::MAX});
    let count = json!({"type": "integer", "minimum": 0});
    let time = json!({"type": "string", "format": "date-time"});
    let jwt = json!({"type": "string", "pattern": JWT_PATTERN});
    let image =
        json!({"type": "string", "maxLength": MAX_IMAGE_URL, "pattern": image_url_pattern()});
    let signature =
        json!({"type": "string", "maxLength": MAX_SIGNATURE, "pattern": signature_pattern()});
    let user_fields = [
        "id",
        "username",
        "avatar",
        "background_image",
        "signature",
        "follow_count",
        "follower_count",
        "is_follow",
        "created_at",
    ];
    let user = object(
        json!({
            "id": user_id, "username": {"type": "string", "pattern": username_pattern()},
            "avatar": image, "background_image": image, "signature": signature,
            "follow_count": count, "follower_count": count,
            "is_follow": {"type": "boolean", "description": "whether the caller (the bearer token's user) follows this user; false without a token"},
            "created_at": time}),
        &user_fields,
    );
    let nullable = |s: &Value| {
        let mut s = s.clone();
        s["type"] = json!(["string", "null"]);
        s
    };
    let patch_fields = ["avatar", "signature", "background_image"];
    let set_one: Vec<Value> = patch_fields
        .iter()
        .map(|f| json!({"required": [f], "properties": {*f: {"type": "string"}}}))
        .collect();
    let mut patch = object(
        json!({"avatar": nullable(&image), "signature": nullable(&signature), "background_image": nullable(&image)}),
        &[],
    );
    patch["minProperties"] = json!(1);
    patch["anyOf"] = json!(set_one);
    patch["description"] = json!(
        "The fields to change; at least one must be a string (an empty patch, or only nulls, is 422; null leaves a field as it is). \
         No field may contain control characters; avatar and background_image are empty or an absolute http:// or https:// URL with a host and no whitespace."
    );
    let error_code = {
        let mut codes: Vec<&str> = ERRORS.iter().map(|(_, c, _)| *c).collect();
        codes.extend(DEFAULT_CODES);
        json!({"type": "string", "enum": codes})
    };
    let gtid = json!({"type": "string", "pattern": GTID_PATTERN, "description": "GTID of the commit: send it back as the Consistency-Token header to read your write"});
    let page_items = json!({"type": "array", "maxItems": MAX_PAGE,
        "items": object(json!({"user_id": user_id, "followed_at": time}), &["user_id", "followed_at"])});
    json!({
        "Credentials": object(json!({
            "username": {"type": "string", "pattern": username_pattern(),
                "description": "1-32 characters of A-Z a-z 0-9 _ . -; unique ignoring case"},
            "password": {"type": "string", "minLength": 2, "maxLength": PASSWORD_BYTES.1,
                "description": format!("{}-{} bytes of UTF-8 (JSON Schema counts characters, so the schema can only bound them at 2..=72). Register answers another length with 422; login answers it with 401, like a wrong password.", PASSWORD_BYTES.0, PASSWORD_BYTES.1)}}),
            &["username", "password"]),
        "ProfilePatch": patch,
        "Registered": object(json!({"id": user_id, "username": {"type": "string", "pattern": username_pattern()}, "token": jwt}), &["id", "username", "token"]),
        "Session": object(json!({"user_id": user_id, "token": jwt}), &["user_id", "token"]),
        "User": user,
        "ProfileUpdated": object(json!({"user": {"$ref": "#/components/schemas/User"}, "consistency_token": {"type": "string", "description": "GTID of the commit"}}), &["user", "consistency_token"]),
        "FollowResult": object(json!({"following": {"type": "boolean"}, "changed": {"type": "boolean"},
            "consistency_token": {"type": "string", "description": "GTID of the commit; empty when nothing changed"}}),
            &["following", "changed", "consistency_token"]),
        "IsFollow": object(json!({"following": {"type": "boolean"}}), &["following"]),
        "Page": object(json!({"items": page_items,
            "next_cursor": {"type": ["string", "null"], "maxLength": CURSOR_LEN, "pattern": CURSOR_PATTERN, "description": "null on the last page"}}),
            &["items", "next_cursor"]),
        "Counts": object(json!({"counts": {"type": "array", "maxItems": MAX_COUNT_IDS,
            "items": object(json!({"user_id": user_id, "follow_count": count, "follower_count": count}), &["user_id"])}}),
            &["counts"]),
        "Leaderboard": object(json!({"items": {"type": "array", "maxItems": MAX_PAGE,
            "items": object(json!({"user_id": user_id, "follower_count": {"type": "integer", "minimum": 1}}), &["user_id", "follower_count"])}}),
            &["items"]),
        "OpenApi": {"type": "object", "required": ["openapi", "info", "paths"]},
        "Error": object(json!({"error": object(json!({"code": error_code, "message": {"type": "string"}}), &["code", "message"])}), &["error"]),
        "Gtid": gtid,
    })
}

/// The error response of `status` on `r`.
fn error_response(r: &RouteDoc, status: u16) -> Value {
    let (_, code, general) = ERRORS
        .iter()
        .find(|(s, _, _)| *s == status)
        .copied()
        .unwrap_or((status, "internal", "error"));
    let description = match status {
        429 if r.throttled => {
            "too many attempts: from this client address (GATEWAY_AUTH_PER_CLIENT) or for this username (USER_PASSWORD__PER_USERNAME), or too many requests in flight"
        }
        503 if r.throttled => {
            "password hashing saturated (no slot within USER_PASSWORD__QUEUE_WAIT), a service down, or the request timed out"
        }
        401 if r.path == "/v1/sessions" => "wrong username or password (one answer for both)",
        422 => match r.operation_id {
            "registerUser" => "bad username or password, unknown or missing field",
            "logIn" => "unknown or missing field, or a field that is not a string",
            "updateProfile" => {
                "nothing to change, a field too long, with control characters or (images) not an http(s) URL; unknown field"
            }
            "followUser" | "unfollowUser" => "following yourself",
            "listFollowing" | "listFollowers" => {
                "limit outside 1..=100, or a cursor the server did not hand out"
            }
            "getCounts" => "no user_ids, more than 1,000, or a kind other than 1 and 2",
            _ => general,
        },
        _ => general,
    };
    let schema = json!({"allOf": [
        {"$ref": "#/components/schemas/Error"},
        {"properties": {"error": {"properties": {"code": {"const": code}}}}},
    ]});
    let mut resp =
        json!({"description": description, "content": {"application/json": {"schema": schema}}});
    match status {
        401 => {
            resp["headers"] = json!({"WWW-Authenticate": {"required": true, "schema": {"type": "string", "const": "Bearer"}}});
        }
        429 | 503 => {
            resp["headers"] = json!({"Retry-After": {"required": true, "description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}});
        }
        _ => {}
    }
    resp
}

fn success_response(r: &RouteDoc) -> Value {
    let mut resp = json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", r.ok.1)}}}});
    if r.reads_token {
        resp["headers"] = json!({"Read-Source": {"required": false,
            "description": "where a read was served from: cache, synced-cache (after waiting for a Consistency-Token) or primary (MySQL)",
            "schema": {"type": "string", "enum": ["cache", "synced-cache", "primary"]}}});
    }
    if r.writes() {
        resp["headers"] = json!({"Consistency-Token": {"required": false,
            "description": "the commit's GTID (as consistency_token in the body), when the write changed something",
            "schema": {"$ref": "#/components/schemas/Gtid"}}});
    }
    resp
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        let mut params = path_params(r);
        params.extend(r.query.iter().map(|q| query_param(*q)));
        if r.reads_token {
            params.push(json!({"name": "Consistency-Token", "in": "header", "required": false, "schema": {"type": "string", "maxLength": 80},
                "description": "read-your-writes: a consistency_token from an earlier write. The read waits (bounded) until the cache reflects that write, else reads the database; the Read-Source response header says which (synced-cache or primary). A malformed or future token is a 400."}));
        }
        let mut responses = Map::new();
        responses.insert(r.ok.0.to_string(), success_response(r));
        for status in r.error_statuses() {
            responses.insert(status.to_string(), error_response(r, status));
        }
        responses.insert("default".into(), json!({"description": "any other error: 405 method_not_allowed, 500 internal (a bug or a database error)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        let mut op = json!({
            "operationId": r.operation_id,
            "summary": r.summary,
            "parameters": params,
            "responses": responses,
        });
        if let Some(body) = r.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
        }
        match r.auth {
            Auth::None => {}
            Auth::Optional => op["security"] = json!([{}, {"bearer": []}]),
            Auth::Required => op["security"] = json!([{"bearer": []}]),
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
    use crate::error::ApiError;

    fn regex(pattern: &str) -> regex::Regex {
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 30)
            .build()
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    /// The schema of `name` in `op`'s parameters.
    fn param<'a>(op: &'a Value, name: &str) -> &'a Value {
        op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    }

    /// Strings around the interesting edges of a number parser.
    fn number_like() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            "0",
            "00",
            "1",
            "01",
            "007",
            "9",
            "10",
            "99",
            "100",
            "101",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1.5",
            "1e3",
            "abc",
            "me",
            "ME",
            "0x10",
            "١",
            "４",
            "18446744073709551615",
            "18446744073709551616",
            "018446744073709551615",
            "19999999999999999999",
            "18446744073709551614",
            "18446744073709551625",
            "99999999999999999999",
            "10000000000000000000",
            "9999999999999999999",
            "184467440737095516150",
            "4294967295",
            "4294967296",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let max = u64::MAX as u128;
        for n in [
            max - 1,
            max,
            max + 1,
            max + 10,
            max / 10,
            1 << 63,
            (1 << 64) + 5,
        ] {
            v.push(n.to_string());
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            // xorshift: numbers of every length
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 21) as usize;
            let s: String = x.to_string().chars().cycle().take(len).collect();
            v.push(s.clone());
            v.push(format!("0{s}"));
            v.push(format!("{s}9"));
        }
        v
    }

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
    fn every_route_has_a_unique_camel_case_operation_id() {
        let doc = document();
        let camel = regex("^[a-z][a-zA-Z0-9]*$");
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(camel.is_match(r.operation_id), "{}", r.operation_id);
            assert!(seen.insert(r.operation_id), "{} twice", r.operation_id);
            assert_eq!(
                doc["paths"][r.path][r.method]["operationId"],
                r.operation_id
            );
        }
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
        // Other routes are shed only for load, never for attempts.
        let counts = &doc["paths"]["/v1/counts"]["get"]["responses"]["429"];
        assert!(counts["headers"]["Retry-After"].is_object());
        assert!(
            !counts["description"]
                .as_str()
                .unwrap()
                .contains("PER_USERNAME")
        );
    }

    #[test]
    fn every_route_lists_429_503_and_each_error_with_the_code_the_gateway_sends() {
        let doc = document();
        for (status, code, _) in ERRORS {
            let made = match status {
                400 => ApiError::bad_request(""),
                401 => ApiError::unauthenticated(""),
                403 => ApiError::forbidden(""),
                404 => ApiError::not_found(""),
                409 => ApiError::from(tonic::Status::already_exists("")),
                413 | 415 => continue, // built in extract::json_rejection
                422 => ApiError::invalid(""),
                429 => ApiError::too_many_requests(""),
                503 => ApiError::unavailable(""),
                _ => panic!("{status} is not checked"),
            };
            assert_eq!((made.status.as_u16(), made.code), (*status, *code));
        }
        for r in ROUTES {
            let responses = doc["paths"][r.path][r.method]["responses"]
                .as_object()
                .unwrap();
            for status in ALWAYS {
                assert!(responses.contains_key(&status.to_string()), "{}", r.path);
            }
            for status in r.error_statuses() {
                let resp = &responses[&status.to_string()];
                let code = &resp["content"]["application/json"]["schema"]["allOf"][1]["properties"]
                    ["error"]["properties"]["code"]["const"];
                let expected = ERRORS.iter().find(|(s, _, _)| *s == status).unwrap().1;
                assert_eq!(code, expected, "{} {} {status}", r.method, r.path);
            }
            assert!(responses.contains_key("default"));
            let auth_errors = r.errors.contains(&401);
            assert_eq!(
                auth_errors,
                r.auth != Auth::None || r.operation_id == "logIn",
                "{}",
                r.operation_id
            );
            assert_eq!(r.errors.contains(&403), r.auth == Auth::Required);
            assert_eq!(
                r.errors.contains(&415),
                r.body.is_some(),
                "{}",
                r.operation_id
            );
        }
    }

    #[test]
    fn the_positive_id_pattern_is_exactly_1_to_u64_max() {
        for max in [
            1, 2, 9, 10, 11, 19, 20, 99, 100, 101, 109, 190, 1000, 4096, 65535,
        ] {
            let re = regex(&format!("^{}$", positive_up_to(max)));
            for n in 0..=max * 3 + 20 {
                assert_eq!(
                    re.is_match(&n.to_string()),
                    (1..=max).contains(&n),
                    "{n} vs {max}"
                );
            }
        }
    }

    #[test]
    fn id_patterns_accept_exactly_what_parse_id_reads() {
        use crate::extract::{Actor, Viewer, acting_as, parse_id, subject};
        let target = regex(&user_id_pattern());
        let id = regex(&path_id_pattern());
        for s in number_like() {
            assert_eq!(target.is_match(&s), parse_id(&s).is_ok(), "{s:?}");
            assert_eq!(
                id.is_match(&s),
                subject(&s, Viewer(Some(7))).is_ok(),
                "{s:?}"
            );
        }
        assert!(id.is_match("me") && !target.is_match("me"));
        assert_eq!(acting_as("me", Actor(7)).unwrap(), 7);
        assert!(!id.is_match("me ") && !id.is_match("Me"));
    }

    #[test]
    fn the_blank_class_is_rusts_white_space() {
        let blank = regex(&format!("^{BLANK}$"));
        let control = regex(&format!("^[{CONTROL}]$"));
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let s = c.to_string();
            assert_eq!(blank.is_match(&s), c.is_whitespace(), "{c:?}");
            assert_eq!(control.is_match(&s), c.is_control(), "{c:?}");
        }
    }

    /// What `/v1/counts` accepts: the gateway's parse, then count-service's checks.
    fn counts_accept(user_ids: &str, kinds: Option<&str>) -> bool {
        use crate::counts::{parse_kinds, parse_user_ids};
        let (Ok(user_ids), Ok(kinds)) = (parse_user_ids(Some(user_ids)), parse_kinds(kinds)) else {
            return false;
        };
        count_service::grpc::parse_request(&proto::count::v1::GetCountsRequest { user_ids, kinds })
            .is_ok()
    }

    #[test]
    fn user_ids_and_kinds_patterns_accept_exactly_what_counts_accepts() {
        let ids = regex(&user_ids_pattern());
        let kinds = regex(&kinds_pattern());
        let n = |k: usize| (1..=k).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let mut cases: Vec<String> = vec![
            "".into(),
            ",".into(),
            " ".into(),
            "1".into(),
            " 1 ".into(),
            "1,2".into(),
            "1, 2".into(),
            ",,1,,".into(),
            "1,,2,".into(),
            "1 2".into(),
            "1;2".into(),
            "+1".into(),
            "0".into(),
            "1,0".into(),
            "01,002".into(),
            "1,x".into(),
            "1,\u{3000}2\u{2003}".into(),
            "1,\u{feff}2".into(),
            "1,\u{0}2".into(),
            "18446744073709551615".into(),
            "18446744073709551616".into(),
            "-1".into(),
            n(999),
            n(1000),
            n(1001),
            format!("{},,", n(1000)),
            format!(" ,{}", n(1000)),
            vec!["5"; 1000].join(","),
            vec!["5"; 1001].join(","),
        ];
        cases.extend(number_like());
        for s in &cases {
            assert_eq!(ids.is_match(s), counts_accept(s, None), "user_ids={s:?}");
        }
        for k in [
            "",
            "1",
            "2",
            "1,2",
            "2,1,1",
            " 1 , 2 ",
            ",,",
            "0",
            "3",
            "1,3",
            "01",
            "+1",
            "1 2",
            "4294967297",
            "00000000000000000000002",
            "x",
            "1,\u{a0}",
            "-2",
        ] {
            assert_eq!(
                kinds.is_match(k),
                counts_accept("1", Some(k)),
                "kinds={k:?}"
            );
        }
    }

    #[test]
    fn limits_match_the_handlers_and_services() {
        use crate::counts::leaderboard_limit;
        use crate::relations::list_limit;
        let doc = document();
        let list = param(&doc["paths"]["/v1/users/{id}/followers"]["get"], "limit");
        let board = param(&doc["paths"]["/v1/leaderboard/followers"]["get"], "limit");
        for p in [list, board] {
            assert_eq!(p["schema"]["type"], "integer");
            assert_eq!(
                (&p["schema"]["minimum"], &p["schema"]["maximum"]),
                (&json!(1), &json!(100))
            );
        }
        assert_eq!(list["schema"]["default"], crate::relations::DEFAULT_LIMIT);
        assert_eq!(
            board["schema"]["default"],
            crate::counts::DEFAULT_LEADERBOARD_LIMIT
        );
        assert_eq!(MAX_PAGE, relation_service::list::MAX_LIMIT);
        assert_eq!(MAX_PAGE, count_service::grpc::MAX_LEADERBOARD);
        assert_eq!(MAX_PAGE, crate::counts::MAX_LEADERBOARD_LIMIT);
        for n in 0..=300u64 {
            let s = n.to_string();
            let in_doc = (1..=u64::from(MAX_PAGE)).contains(&n);
            let listed = list_limit(Some(&s))
                .ok()
                .is_some_and(|l| relation_service::list::check_limit(l).is_ok());
            assert_eq!(listed, in_doc, "list limit {n}");
            assert_eq!(
                leaderboard_limit(Some(&s)).is_ok(),
                in_doc,
                "leaderboard limit {n}"
            );
        }
        assert_eq!(list_limit(None).unwrap(), crate::relations::DEFAULT_LIMIT);
        assert_eq!(
            leaderboard_limit(Some("")).unwrap(),
            crate::counts::DEFAULT_LEADERBOARD_LIMIT
        );
        assert_eq!(MAX_COUNT_IDS, count_service::grpc::MAX_USERS);
    }

    #[test]
    fn the_cursor_pattern_is_the_form_of_the_cursors_the_server_hands_out() {
        use relation_service::list::Cursor;
        let re = regex(CURSOR_PATTERN);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = Cursor {
                followed_at_us: (x >> 1) as i64,
                user_id: x.rotate_left(17) | 1,
            };
            let s = c.encode();
            assert!(re.is_match(&s) && s.len() == CURSOR_LEN, "{s}");
            // Another last character: stray bits, never a cursor.
            let changed = format!("{}B", &s[..CURSOR_LEN - 1]);
            assert!(
                !re.is_match(&changed) && Cursor::decode(&changed).is_err(),
                "{changed}"
            );
        }
        for bad in [
            "garbage",
            "AAAA",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAB",
            "AAAAAAAAAAAAAAAAAAAA==",
        ] {
            assert!(!re.is_match(bad) && Cursor::decode(bad).is_err(), "{bad}");
        }
        assert!(re.is_match(""));
    }

    #[test]
    fn credentials_bound_what_user_service_accepts() {
        use user_service::account::{
            MAX_USERNAME as MAX, PASSWORD_BYTES as BYTES, validate_password, validate_username,
        };
        assert_eq!(MAX_USERNAME, MAX);
        assert_eq!(PASSWORD_BYTES, (*BYTES.start(), *BYTES.end()));
        let name = regex(&username_pattern());
        for s in [
            "",
            "a",
            "Alice_01",
            "x.y-z",
            &"a".repeat(32),
            &"a".repeat(33),
            "a b",
            "émile",
            "a/b",
            "a\n",
        ] {
            assert_eq!(name.is_match(s), validate_username(s).is_ok(), "{s:?}");
        }
        let doc = document();
        let pw = &doc["components"]["schemas"]["Credentials"]["properties"]["password"];
        let (min, max) = (
            pw["minLength"].as_u64().unwrap() as usize,
            pw["maxLength"].as_u64().unwrap() as usize,
        );
        // Every password user-service takes has a length the schema allows,
        // and both bounds are reached.
        for s in [
            "12345678",
            &"x".repeat(72),
            &"€".repeat(24),
            "\u{1F980}\u{1F980}",
            "é1234567",
        ] {
            assert!(validate_password(s).is_ok(), "{s:?}");
            assert!((min..=max).contains(&s.chars().count()), "{s:?}");
        }
        assert!(validate_password(&"\u{1F980}".repeat(2)).is_ok() && min == 2);
        assert!(validate_password(&"x".repeat(73)).is_err() && max == 72);
    }

    #[test]
    fn the_profile_patch_schema_is_user_services_rules() {
        use user_service::profile::{
            MAX_AVATAR, MAX_BACKGROUND, MAX_SIGNATURE as SIG, ProfileChange,
        };
        assert_eq!(
            (MAX_IMAGE_URL, MAX_IMAGE_URL, MAX_SIGNATURE),
            (MAX_AVATAR, MAX_BACKGROUND, SIG)
        );
        let image = regex(&image_url_pattern());
        let signature = regex(&signature_pattern());
        let avatar = |v: &str| ProfileChange {
            avatar: Some(v.into()),
            ..Default::default()
        };
        let sig = |v: &str| ProfileChange {
            signature: Some(v.into()),
            ..Default::default()
        };
        let mut values: Vec<String> = [
            "",
            "https://img.example/a.png",
            "HTTP://x.example/p?q=1",
            "hTtPs://x",
            "http://x",
            "https://",
            "http://",
            "https:///path",
            "https://?q",
            "https://#f",
            "https:// x",
            "https://a b",
            "https://a\u{a0}b",
            "https://a\u{85}b",
            "https://a\u{2028}",
            "https://a\u{feff}b",
            "https://a\u{7f}",
            "https://é.example",
            "http://s://x",
            "javascript:alert(1)",
            "data:text/html,<script>",
            "//evil.example/x",
            "img.png",
            "ftp://x",
            "https:\\\\x",
            "héllo, world 🦀",
            "a\u{1b}[31mred",
            "nul\0",
            "line\nbreak",
            "bidi\u{85}",
            "tab\t",
            "\u{9f}",
            "\u{a0}",
            "https://x\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for c in [
            '\u{0}', '\u{1f}', ' ', '\u{7f}', '\u{a0}', '\u{3000}', '/', '?', '#', 'a', 'é',
        ] {
            values.push(format!("https://{c}x"));
            values.push(format!("https://x{c}"));
        }
        for v in &values {
            assert_eq!(
                image.is_match(v),
                avatar(v).validate().is_ok(),
                "avatar {v:?}"
            );
            assert_eq!(
                signature.is_match(v),
                sig(v).validate().is_ok(),
                "signature {v:?}"
            );
        }
        let long = format!("https://{}", "x".repeat(MAX_IMAGE_URL - 8));
        assert!(image.is_match(&long) && avatar(&long).validate().is_ok());
        assert!(avatar(&format!("{long}x")).validate().is_err());
        assert!(sig(&"é".repeat(MAX_SIGNATURE)).validate().is_ok());
        assert!(sig(&"é".repeat(MAX_SIGNATURE + 1)).validate().is_err());

        let doc = document();
        let patch = &doc["components"]["schemas"]["ProfilePatch"];
        assert_eq!(patch["minProperties"], 1);
        assert_eq!(patch["additionalProperties"], false);
        // Nothing to change (absent or null everywhere) is refused: the
        // anyOf wants one field given as a string.
        assert!(ProfileChange::default().validate().is_err());
        assert_eq!(patch["anyOf"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn responses_require_every_field_the_gateway_sends() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let user = crate::users::user_json(&proto::user::v1::User::default());
        let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
        let required: Vec<&str> = schemas["User"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(keys, required);
        for name in [
            "Registered",
            "Session",
            "User",
            "ProfileUpdated",
            "FollowResult",
            "IsFollow",
            "Page",
            "Leaderboard",
            "Counts",
            "Error",
        ] {
            let s = &schemas[name];
            assert_eq!(s["additionalProperties"], false, "{name}");
            let props: Vec<&String> = s["properties"].as_object().unwrap().keys().collect();
            let required = s["required"].as_array().unwrap();
            if name != "Counts" {
                assert_eq!(
                    props.len(),
                    required.len(),
                    "{name}: every field is always sent"
                );
            }
        }
        for (schema, field) in [("User", "follow_count"), ("User", "follower_count")] {
            assert_eq!(schemas[schema]["properties"][field]["minimum"], 0);
        }
        assert_eq!(schemas["User"]["properties"]["id"]["minimum"], 1);
        assert_eq!(
            schemas["Leaderboard"]["properties"]["items"]["items"]["properties"]["follower_count"]
                ["minimum"],
            1
        );
    }

    #[test]
    fn only_reads_take_a_consistency_token_and_only_writes_answer_one() {
        let doc = document();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method];
            let takes = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "Consistency-Token");
            assert_eq!(takes, r.reads_token, "{}", r.operation_id);
            assert!(!(r.reads_token && r.writes()), "{}", r.operation_id);
            let headers = &op["responses"][r.ok.0.to_string()]["headers"];
            assert_eq!(
                headers["Consistency-Token"].is_object(),
                r.writes(),
                "{}",
                r.operation_id
            );
        }
    }
}
