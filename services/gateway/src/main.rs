//! gateway entry point: `gateway [--config FILE]`. Settings come from the file (if
//! given) and `GATEWAY_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

service_kit::service_main!(
    "gateway",
    "sluice gateway: the REST API over the sluice gRPC services",
    gateway
);
