//! cache-syncer entry point: `run` (default), `rebuild`, `verify [--repair]`.

use std::path::PathBuf;

use anyhow::Context;
use cache_syncer::config::Settings;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cache-syncer",
    version,
    about = "Kafka CDC topics → Redis + user counter columns"
)]
struct Cli {
    /// TOML settings file (env `SYNCER_…` overrides it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume and apply (the default).
    Run,
    /// Refill Redis and the user counter columns from MySQL (stop the syncer first).
    Rebuild,
    /// Compare Redis and the user counter columns with MySQL; exit 1 on differences.
    Verify {
        /// Rewrite what differs from MySQL.
        #[arg(long)]
        repair: bool,
        /// Print at most this many differences.
        #[arg(long, default_value_t = 50)]
        show: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = common::telemetry::init("cache-syncer");
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let app = cache_syncer::startup::Application::build(settings)
                .await
                .context("starting cache-syncer")?;
            app.run_until_stopped(common::shutdown::signal()).await?;
        }
        Command::Rebuild => {
            let applier = cache_syncer::startup::connect(&settings).await?;
            let r = cache_syncer::rebuild::rebuild(&applier).await?;
            println!(
                "rebuilt: {} counters, {} follows ({} stale keys removed)",
                r.counters, r.follows, r.keys_deleted
            );
        }
        Command::Verify { repair, show } => {
            let applier = cache_syncer::startup::connect(&settings).await?;
            let r = cache_syncer::verify::verify(&applier, repair).await?;
            for d in r.diffs.iter().take(show) {
                println!("{d}");
            }
            if r.diffs.len() > show {
                println!("... and {} more", r.diffs.len() - show);
            }
            println!(
                "checked {} counters, {} users, {} follows: {} differences{}",
                r.counters_checked,
                r.users_checked,
                r.follows_checked,
                r.diffs.len(),
                if repair {
                    format!(", {} repaired", r.repaired)
                } else {
                    String::new()
                }
            );
            if !r.diffs.is_empty() && !repair {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
