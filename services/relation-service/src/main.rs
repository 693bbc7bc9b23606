//! relation-service entry point: `relation-service [--config FILE]`. Settings come from the file (if
//! given) and `RELATION_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

service_kit::service_main!(
    "relation-service",
    "sluice relation-service: follows, follow lists and IsFollow over gRPC",
    relation_service
);
