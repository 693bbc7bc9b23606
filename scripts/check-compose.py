#!/usr/bin/env python3
"""Least-privilege checks of compose/ (issue #17, finding 7), run by
`make test`: there is no Docker engine on the development machines, so the
compose stack is checked by reading it. Each rule names what it guards.
Exit status 1 with one line per violation."""
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose" / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "compose" / ".env.example"
INITDB = ROOT / "compose" / "mysql" / "initdb"

text = COMPOSE.read_text()
doc = yaml.safe_load(text)
services = doc["services"]
sluice = {n: s for n, s in services.items() if s.get("image") == "sluice:local"}
problems = []


def env(svc):
    e = svc.get("environment") or {}
    return e if isinstance(e, dict) else dict(x.split("=", 1) for x in e)


def as_list(v):
    return [] if v is None else ([v] if isinstance(v, str) else [str(x) for x in v])


# 1. No sluice process connects to MySQL as root.
for name, svc in sluice.items():
    for k, v in env(svc).items():
        if re.match(r"mysql://root[:@]", str(v)):
            problems.append(f"{name}: {k} connects to MySQL as root")

# 2. No secret on a command line (visible to `ps` and `docker inspect`).
secret_ref = re.compile(r"\$\{?[A-Z_]*(PASSWORD|SECRET)[A-Z_]*")
for name, svc in services.items():
    for part in as_list(svc.get("command")) + as_list(svc.get("entrypoint")):
        for line in part.splitlines():
            if re.search(r"://[^/\s:@]+:[^@\s]+@", line) or (
                secret_ref.search(line) and not line.lstrip().startswith(("printf", '"sasl.jaas'))
            ):
                problems.append(f"{name}: a secret on the command line: {line.strip()[:80]}")

# 3. Secrets have no default: every ${…PASSWORD/SECRET…} is required (`:?`)
#    and .env.example names it.
example = ENV_EXAMPLE.read_text()
for var, how in re.findall(r"\$\{([A-Z_]*(?:PASSWORD|SECRET)[A-Z_]*)([^}]*)\}", text):
    if not how.startswith(":?"):
        problems.append(f"${{{var}}} has a default or may be empty: use ${{{var}:?…}}")
    if not re.search(rf"(?m)^{var}=", example):
        problems.append(f"{var} is not in compose/.env.example")

# 4. Redis asks for a password, and every redis:// URL carries one.
redis = services["redis"]
if "requirepass" not in "\n".join(as_list(redis.get("command"))):
    problems.append("redis: no requirepass")
for name, svc in sluice.items():
    for k, v in env(svc).items():
        if str(v).startswith("redis://") and not re.match(r"redis://[^@/]*:[^@/]+@", str(v)):
            problems.append(f"{name}: {k} has no Redis password")
for m in re.finditer(r"&redis-url (.+)", text):
    if not re.match(r"redis://[^@/]*:[^@/]+@", m.group(1)):
        problems.append("x-redis-url has no password")

# 5. Kafka: every listener other containers or the host reach needs SASL,
#    and the relay and the syncer authenticate.
kenv = env(services["kafka"])
protocols = dict(p.split(":") for p in kenv["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
for listener in kenv["KAFKA_LISTENERS"].split(","):
    lname, addr = listener.split("://")
    if lname != "CONTROLLER" and not addr.startswith("127.0.0.1:") and not protocols[lname].startswith("SASL"):
        problems.append(f"kafka: listener {lname} ({addr}) takes clients without authentication")
for name, prefix in [("binlog-relay", "RELAY"), ("cache-syncer", "SYNCER")]:
    e = env(services[name])
    if not (e.get(f"{prefix}_KAFKA__USERNAME") and e.get(f"{prefix}_KAFKA__PASSWORD")):
        problems.append(f"{name}: no Kafka credentials")

# 6. The MySQL accounts: the relay reads only, the app account has no DDL.
accounts = "\n".join(p.read_text() for p in sorted(INITDB.iterdir()))
grants = {}
for privileges, user in re.findall(r"GRANT (.+?) ON .+? TO '([a-z_]+)'", accounts):
    grants[user] = grants.get(user, "") + ", " + privileges
relay, app = grants.get("sluice_relay", ""), grants.get("sluice_app", "")
for verb in ["INSERT", "UPDATE", "DELETE", "ALL", "CREATE", "DROP", "ALTER"]:
    if verb in relay:
        problems.append(f"sluice_relay may {verb}")
for verb in ["ALL", "CREATE", "DROP", "ALTER", "GRANT", "REPLICATION"]:
    if verb in app:
        problems.append(f"sluice_app may {verb}")
if not app or not relay:
    problems.append("initdb does not create sluice_relay and sluice_app")

# 7. The gRPC services and the gateway share a mesh secret (no service
#    answers an unauthenticated caller).
for name, prefix in [("user-service", "USER"), ("count-service", "COUNT"),
                     ("relation-service", "RELATION"), ("gateway", "GATEWAY")]:
    if not env(services[name]).get(f"{prefix}_MESH__SECRET"):
        problems.append(f"{name}: no {prefix}_MESH__SECRET: its gRPC calls are not authenticated")

for p in problems:
    print(f"check-compose: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"check-compose: {COMPOSE.relative_to(ROOT)} keeps least privilege ({len(services)} services)")
