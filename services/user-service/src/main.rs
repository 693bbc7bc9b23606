//! user-service entry point: `user-service [--config FILE]`. Settings come from the file (if
//! given) and `USER_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

service_kit::service_main!(
    "user-service",
    "sluice user-service: accounts, profiles and tokens over gRPC",
    user_service
);
