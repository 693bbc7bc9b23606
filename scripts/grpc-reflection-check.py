#!/usr/bin/env python3
"""Checks the running mesh's gRPC ports with Python's own clients (#21).

Python's grpcio-reflection speaks reflection v1alpha, which grpcurl (v1)
does not exercise. For each service port it lists the services through
reflection and asserts that exactly one sluice service is there (the
port's own, besides grpc.* ones), and asks the health service for it.

    scripts/grpc-reflection-check.py            # 8080 user, 8081 count, 8082 relation
    scripts/grpc-reflection-check.py 8180:user.v1.UserService

Runs in a virtualenv under the user cache folder (grpcio and
grpcio-reflection from PyPI, installed once): scripts/test.sh calls it
through scripts/grpc-reflection-check.sh.
"""
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

DEFAULT = [
    "8080:user.v1.UserService",
    "8081:count.v1.CountService",
    "8082:relation.v1.RelationService",
]


def check(port: str, expected: str) -> list[str]:
    problems = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        sluice = [s for s in services if not s.startswith("grpc.")]
        print(f"port {port}: {', '.join(sorted(services))}")
        if sluice != [expected]:
            problems.append(f"port {port} lists {sluice}, expected [{expected}]")
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=expected), timeout=5
        )
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)
        print(f"port {port}: health of {expected}: {name}")
        if name != "SERVING":
            problems.append(f"port {port}: {expected} is {name}")
    return problems


def main() -> int:
    problems = []
    for entry in sys.argv[1:] or DEFAULT:
        port, expected = entry.split(":", 1)
        try:
            problems += check(port, expected)
        except grpc.RpcError as e:
            problems.append(f"port {port}: {e.code().name}: {e.details()}")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
