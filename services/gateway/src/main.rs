//! gateway entry point: `gateway [--config FILE]`. Settings come from the file (if
//! given) and `GATEWAY_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

use std::process::ExitCode;

use gateway::config::Settings;
use gateway::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    common::service::main(
        "gateway",
        "sluice gateway: the REST API over the sluice gRPC services",
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
