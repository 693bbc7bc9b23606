//! relation-service entry point: `relation-service [--config FILE]`. Settings come from the file (if
//! given) and `RELATION_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

use std::process::ExitCode;

use relation_service::config::Settings;
use relation_service::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    common::service::main(
        "relation-service",
        "sluice relation-service: follows, follow lists and IsFollow over gRPC",
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
