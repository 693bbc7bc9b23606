#!/usr/bin/env bash
# Prints grpcurl -H arguments that prove membership of the sluice mesh (and,
# with a user id, act for that user for one minute), for calling a service
# by hand:
#   grpcurl -plaintext $(scripts/mesh-proof.sh) 127.0.0.1:8082 list-free-method…
#   grpcurl -plaintext $(scripts/mesh-proof.sh 1) -d '{"from_id":1,"to_id":2}' \
#       127.0.0.1:8082 relation.v1.RelationService/Follow
# The key is $SLUICE_MESH_SECRET, else the dev mesh's (SLUICE_DEV); see
# crates/service-kit/src/mesh_auth.rs for the format.
set -euo pipefail
secret=${SLUICE_MESH_SECRET:-sluice-dev-only-mesh-secret-do-not-use-in-production}
mac() { printf '%s' "$1" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1; }
printf -- "-H sluice-service:%s" "$(mac sluice-mesh-v1)"
if [ $# -ge 1 ]; then
    exp=$(($(date +%s) + 60))
    printf -- " -H sluice-actor:%s.%s.%s" "$1" "$exp" "$(mac "actor.$1.$exp")"
fi
echo
