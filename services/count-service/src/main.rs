//! count-service entry point: `count-service [--config FILE]`. Settings come from the file (if
//! given) and `COUNT_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

use std::process::ExitCode;

use count_service::config::Settings;
use count_service::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    common::service::main(
        "count-service",
        "sluice count-service: counters and read-your-writes waits over gRPC",
        |config| async move {
            let settings = Settings::load(config.as_deref())?;
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await
        },
    )
    .await
}
