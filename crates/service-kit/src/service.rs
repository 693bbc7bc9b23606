//! The entry point every sluice service binary shares: telemetry, one
//! command line (`--config FILE`, `--help`), and on failure one line on
//! stderr and a failure exit code.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};

/// A service's command line.
#[derive(Debug, Parser)]
struct Args {
    /// A TOML settings file; environment variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs the service binary `name`: `run` gets the `--config` file and
/// builds and serves until it returns.
pub async fn main<F, Fut>(name: &'static str, about: &'static str, run: F) -> ExitCode
where
    F: FnOnce(Option<PathBuf>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let matches = Args::command().name(name).about(about).try_get_matches();
    let args = match matches.and_then(|m| Args::from_arg_matches(&m)) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let _telemetry = common::telemetry::init(name);
    match run(args.config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The `main` of a service crate with a `config::Settings` (a
/// [`ServiceSettings`](crate::settings::ServiceSettings), loaded with its
/// `load`) and a `startup::Application` (built with
/// `Application::build(settings)`, served with `run_until_stopped`):
/// `service_kit::service_main!("count-service", "what it does", count_service);`
#[macro_export]
macro_rules! service_main {
    ($name:literal, $about:literal, $krate:ident) => {
        #[tokio::main]
        async fn main() -> std::process::ExitCode {
            $crate::service::main($name, $about, |config| async move {
                let settings =
                    <$krate::config::Settings as $crate::settings::ServiceSettings>::load(
                        config.as_deref(),
                    )?;
                $krate::startup::Application::build(settings)
                    .await?
                    .run_until_stopped()
                    .await
            })
            .await
        }
    };
}
