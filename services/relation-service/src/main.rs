//! relation-service entry point: `relation-service [--config FILE]`. Settings come from the file (if
//! given) and `RELATION_*` environment variables; a bad setting
//! or an unreachable dependency ends the process with one line on stderr.

use std::process::ExitCode;

use relation_service::config::Settings;
use relation_service::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = common::telemetry::init("relation-service");
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relation-service: {e:#}");
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
