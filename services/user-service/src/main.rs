//! user-service entry point: `user-service [--config FILE]`. Settings come from the file (if
//! given) and `USER_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

use std::process::ExitCode;

use user_service::config::Settings;
use user_service::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    common::service::main(
        "user-service",
        "sluice user-service: accounts, profiles and tokens over gRPC",
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
