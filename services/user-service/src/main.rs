//! user-service entry point: `user-service [--config FILE]`. Settings come from the file (if
//! given) and `USER_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

use std::process::ExitCode;

use user_service::config::Settings;
use user_service::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = common::telemetry::init("user-service");
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("user-service: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let file = std::env::args()
        .skip_while(|a| a != "--config")
        .nth(1)
        .map(std::path::PathBuf::from);
    let settings = Settings::load(file.as_deref())?;
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}
