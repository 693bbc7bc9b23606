//! count-service entry point: `count-service [--config FILE]`. Settings come from the file (if
//! given) and `COUNT_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

service_kit::service_main!(
    "count-service",
    "sluice count-service: counters and read-your-writes waits over gRPC",
    count_service
);
