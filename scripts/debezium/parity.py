#!/usr/bin/env python3
"""Compares the relay's drop-in topics with Debezium's, message by message
(scripts/parity-vs-debezium.sh writes the dumps: one `key<TAB>value` line
per message, `null` for a null key or value).

Every key and value is compared whole (schema and payload, the Debezium
prefix replaced by the relay's), except the fields that differ by nature:
processing times (the envelope's and the transaction records' `ts_*`
outside `source`), and the fields listed in EXPLAINED with the reason,
which the README repeats. Exit status 1 when any other difference remains.
"""

import argparse
import json
import re
import sys

# Top-level fields that are processing times (when each tool wrote the
# message), not properties of the change.
PROCESSING_TIMES = {"ts_ms", "ts_us", "ts_ns"}

# Paths (regular expressions over `key` / `value.payload.source.thread`
# style paths) that differ for a stated reason.
EXPLAINED = {
    r"^value\.(payload\.)?source\.version$": "each tool writes its own version",
}


def load(path, replace):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            for old, new in replace:
                line = line.replace(old, new)
            key, _, value = line.partition("\t")
            try:
                key = json.loads(key)
            except json.JSONDecodeError:
                key = f"<not JSON: {key[:60]}>"
            out.append((key, json.loads(value)))
    return out


def strip_processing_times(value):
    if not isinstance(value, dict):
        return value
    payload = value.get("payload", value) if "schema" in value else value
    if isinstance(payload, dict):
        for f in PROCESSING_TIMES:
            payload.pop(f, None)
    return value


def diff(path, a, b, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a.keys()) + [k for k in b if k not in a]:
            diff(f"{path}.{k}" if path else k, a.get(k, "<absent>"), b.get(k, "<absent>"), out)
        if list(a.keys()) != list(b.keys()) and set(a.keys()) == set(b.keys()):
            out.append((path + " (field order)", list(a.keys()), list(b.keys())))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(f"{path}[{i}]", x, y, out)
    elif a != b:
        out.append((path, a, b))


def explained(path):
    for pattern, reason in EXPLAINED.items():
        if re.search(pattern, path):
            return reason
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice-prefix", required=True)
    ap.add_argument("--debezium-prefix", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("tables", nargs="+")
    args = ap.parse_args()
    replace = [(args.debezium_prefix, args.sluice_prefix)]
    unexplained, explained_seen, compared = 0, {}, 0
    # One line per differing path (message index left out), with its first
    # example and how many messages differ there.
    seen = {}
    for table in args.tables + ["transaction"]:
        s = load(f"{args.dir}/sluice.{table}.tsv", [])
        d = load(f"{args.dir}/debezium.{table}.tsv", replace)
        print(f"{table}: {len(s)} messages from the relay, {len(d)} from Debezium")
        if len(s) != len(d):
            unexplained += 1
            print(f"  DIFFERENT message counts: {len(s)} vs {len(d)}")
        for i, ((sk, sv), (dk, dv)) in enumerate(zip(s, d)):
            compared += 1
            out = []
            diff("key", sk, dk, out)
            diff("value", strip_processing_times(sv), strip_processing_times(dv), out)
            for path, a, b in out:
                reason = explained(path)
                if reason:
                    explained_seen[reason] = explained_seen.get(reason, 0) + 1
                    continue
                unexplained += 1
                where = f"{table}: {path}"
                if where not in seen:
                    seen[where] = [i, a, b, 0]
                seen[where][3] += 1
    for where, (i, a, b, n) in seen.items():
        print(f"  {where} ({n}x, first #{i}): relay {json.dumps(a)[:160]} | debezium {json.dumps(b)[:160]}")
    print(f"{compared} message pairs compared; {unexplained} unexplained differences")
    for reason, n in explained_seen.items():
        print(f"  explained ({n}): {reason}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
