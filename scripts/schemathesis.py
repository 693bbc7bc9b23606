#!/usr/bin/env python3
"""The REST contract check (#21): schemathesis against the running gateway.

    scripts/schemathesis.sh [SECONDS] [schemathesis run options…]

1. Seeds, through the gateway (SLUICE_GATEWAY_URL, default
   http://127.0.0.1:8888): registers six users, makes them follow each
   other, and keeps the first one's JWT, the follow writes' consistency
   tokens and cursors of real list pages.
2. Runs `schemathesis run <gateway>/openapi.json` for SECONDS (default
   300), every phase (examples, coverage, fuzzing, stateful), positive and
   negative data, with the token as `Authorization` and the checks
   not_a_server_error (a 503 is documented on every route, so only other
   5xx fail), status_code_conformance, content_type_conformance,
   response_headers_conformance and response_schema_conformance.
3. Prints what the gateway answered (requests, 2xx, count per status) and
   the failures, from schemathesis's NDJSON report; exits non-zero when
   schemathesis found any failure (a server error or a response the
   document does not describe).

Generated values stay what the document allows: the seeded values reach
the requests through schemathesis dictionaries bound to parameters with a
probability (the rest is drawn from the schemas as usual), and
schemathesis uses a dictionary entry for a positive case only when it
matches the parameter's schema, for a negative case only when it does
not. So `{id}` is often `me` or a seeded user, `{target}` a seeded user,
a `Consistency-Token` a real one, `cursor` a real one, and a login the
seeded credentials; everything else, including all negative cases, is
schemathesis's own.

Reports (NDJSON, JSON, the generated config) go to
$SLUICE_STATE/schemathesis/<time>/.
"""
import collections
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

GATEWAY = os.environ.get("SLUICE_GATEWAY_URL", "http://127.0.0.1:8888").rstrip("/")
STATE = os.environ.get("SLUICE_STATE") or os.path.join(os.path.dirname(__file__), "..", ".state")
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]
USERS = 6


def call(method, path, body=None, token=None):
    """(status, JSON body) of one gateway call."""
    req = urllib.request.Request(GATEWAY + path, method=method)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, data, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_for_gateway(seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if call("GET", "/openapi.json")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"the gateway does not answer at {GATEWAY}/openapi.json (is the mesh up? make up)")
        time.sleep(0.5)


def must(status_body, want, what):
    status, body = status_body
    if status != want:
        sys.exit(f"seeding: {what} answered {status}: {body}")
    return body


def seed():
    """Users, follows, tokens and cursors for the dictionaries."""
    run = secrets.token_hex(4)
    password = f"contract-{secrets.token_hex(6)}"
    users = []
    for i in range(USERS):
        name = f"st{run}_{i}"
        r = must(call("POST", "/v1/users", {"username": name, "password": password}), 201, f"register {name}")
        users.append((r["id"], name, r["token"]))
    (me, _, token), others = users[0], users[1:]
    tokens = []
    follows = [(users[0], o) for o in others[:3]] + [(o, users[0]) for o in others]
    follows += [(others[0], o) for o in others[1:]]
    for (a, _, a_token), (b, _, _) in follows:
        r = must(call("PUT", f"/v1/users/me/following/{b}", token=a_token), 200, f"{a} follows {b}")
        tokens.append(r["consistency_token"])
    r = must(call("PATCH", "/v1/users/me", {"signature": "contract check"}, token=token), 200, "profile")
    tokens.append(r["consistency_token"])
    cursors = set()
    for user, _, _ in users[:2]:
        for path in ("followers", "following"):
            for limit in (1, 2):
                page = must(call("GET", f"/v1/users/{user}/{path}?limit={limit}"), 200, "list")
                if page["next_cursor"]:
                    cursors.add(page["next_cursor"])
    ids = [str(u[0]) for u in users]
    return {
        "me": me,
        "token": token,
        "dictionaries": {
            "subjects": ["me"] + ids,
            "self": ["me", str(me)],
            "targets": ids[1:],
            "user_ids": [",".join(ids), ids[0], ",".join(ids[1:4]), f"{ids[1]}, {ids[2]}"],
            "tokens": [t for t in tokens if t],
            "cursors": sorted(cursors),
            "usernames": [u[1] for u in users],
            "passwords": [password],
        },
    }


def toml_config(dictionaries):
    """schemathesis.toml: the 503 every route documents, and the seeded
    values bound to parameters (each with a probability, the rest generated)."""
    q = json.dumps  # a JSON string is a TOML basic string
    lines = [
        "[checks.not_a_server_error]",
        'expected-statuses = ["2xx", "3xx", "4xx", "503"]',
        "",
    ]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = [{', '.join(q(v) for v in values)}]", ""]
    bind = lambda d, p: f'{{ dictionary = "{d}", probability = {p} }}'  # noqa: E731
    lines += [
        "[parameters]",
        f'"path.id" = {bind("subjects", 0.6)}',
        f'"path.target" = {bind("targets", 0.7)}',
        f'"query.user_ids" = {bind("user_ids", 0.5)}',
        f'"query.cursor" = {bind("cursors", 0.5)}',
        f'"header.Consistency-Token" = {bind("tokens", 0.9)}',
        "",
        "[[operations]]",
        'include-operation-id = ["updateProfile", "followUser", "unfollowUser"]',
        f'parameters = {{ "path.id" = {bind("self", 0.8)} }}',
        "",
        "[[operations]]",
        'include-operation-id = "logIn"',
        f'parameters = {{ "body.username" = {bind("usernames", 0.8)}, "body.password" = {bind("passwords", 0.8)} }}',
        "",
        "[[operations]]",
        'include-operation-id = "registerUser"',
        f'parameters = {{ "body.password" = {bind("passwords", 0.5)} }}',
        "",
    ]
    return "\n".join(lines)


def summarize(ndjson_path):
    """Status counts of every request, and the failed checks."""
    statuses = collections.Counter()
    per_op = collections.defaultdict(collections.Counter)
    failures = {}
    with open(ndjson_path) as f:
        for line in f:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder") or {}
            cases = recorder.get("cases", {})
            interactions = recorder.get("interactions", {})
            for case_id, interaction in interactions.items():
                response = interaction.get("response")
                status = response["status_code"] if response else "no response"
                statuses[status] += 1
                case = cases.get(case_id, {}).get("value", {})
                per_op[f"{case.get('method', '?')} {case.get('path', '?')}"][status] += 1
            for case_id, checks in recorder.get("checks", {}).items():
                for check in checks:
                    if check.get("status") == "success":
                        continue
                    info = (check.get("failure_info") or {}).get("failure") or {}
                    case = cases.get(case_id, {}).get("value", {})
                    response = (interactions.get(case_id) or {}).get("response") or {}
                    key = (check["name"], info.get("operation"), info.get("title"), info.get("message"))
                    entry = failures.setdefault(key, {"count": 0, "example": None})
                    entry["count"] += 1
                    if entry["example"] is None:
                        entry["example"] = {
                            "status": response.get("status_code"),
                            "path_parameters": case.get("path_parameters"),
                            "query": case.get("query"),
                            "body": case.get("body"),
                            "headers": {k: v for k, v in (case.get("headers") or {}).items() if k.lower() != "authorization"},
                        }
    return statuses, per_op, failures


def main():
    args = sys.argv[1:]
    seconds = 300
    if args and args[0].isdigit():
        seconds = int(args.pop(0))
    wait_for_gateway()
    seeded = seed()
    run_dir = os.path.abspath(os.path.join(STATE, "schemathesis", time.strftime("%Y%m%dT%H%M%S")))
    os.makedirs(run_dir, exist_ok=True)
    config = os.path.join(run_dir, "schemathesis.toml")
    with open(config, "w") as f:
        f.write(toml_config(seeded["dictionaries"]))
    ndjson = os.path.join(run_dir, "events.ndjson")
    command = [
        os.environ.get("SCHEMATHESIS_BIN", "schemathesis"),
        "--config-file", config, "--no-color",
        "run", f"{GATEWAY}/openapi.json",
        "--header", "Authorization: Bearer {token}",
        "--max-time", str(seconds),
        "--checks", ",".join(CHECKS),
        "--report", "ndjson,json",
        "--report-ndjson-path", ndjson,
        "--report-json-path", os.path.join(run_dir, "report.json"),
        *args,
    ]
    print(f"seeded users {seeded['dictionaries']['subjects'][1:]} (acting as {seeded['me']}); reports in {run_dir}")
    print("$ " + " ".join(command), flush=True)
    command = [a.replace("{token}", seeded["token"]) for a in command]
    # In the run folder: whatever schemathesis keeps (its example database) stays there.
    code = subprocess.call(command, cwd=run_dir)

    statuses, per_op, failures = summarize(ndjson)
    total = sum(statuses.values())
    ok = sum(n for s, n in statuses.items() if isinstance(s, int) and 200 <= s < 300)
    server_errors = sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500 and s != 503)
    print("\n=== sluice contract check ===")
    print(f"requests: {total}")
    print(f"2xx: {ok} ({ok / total:.1%})" if total else "2xx: 0")
    print("per status: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(), key=lambda x: str(x[0]))))
    print("per operation:")
    for op, counts in sorted(per_op.items()):
        print(f"  {op}: " + ", ".join(f"{s}: {n}" for s, n in sorted(counts.items(), key=lambda x: str(x[0]))))
    print(f"server errors (5xx other than 503): {server_errors}")
    print(f"failures: {sum(e['count'] for e in failures.values())} ({len(failures)} distinct)")
    for (check, op, title, message), entry in sorted(failures.items(), key=lambda x: str(x[0])):
        print(f"  - {op}: {check} ({title}), {entry['count']}x")
        if message:
            print("      " + message.strip().replace("\n", "\n      ")[:600])
        print(f"      e.g. {json.dumps(entry['example'])[:400]}")
    if total and ok * 3 < total:
        print("note: fewer than a third of the requests were answered 2xx")
    if code == 0 and (server_errors or failures):
        code = 1
    print("result: " + ("PASS" if code == 0 else f"FAIL (schemathesis exit code {code})"))
    return code


if __name__ == "__main__":
    sys.exit(main())
