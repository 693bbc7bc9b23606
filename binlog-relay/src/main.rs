//! binlog-relay entry point: parse the command line, load settings, run.

use std::path::PathBuf;

use anyhow::Context as _;
use binlog_relay::format::Format;
use binlog_relay::position::{StartFrom, StopAt};
use binlog_relay::{Application, RunOptions, Settings};
use clap::{Parser, Subcommand};

/// Streams MySQL/MariaDB binlog row changes into Kafka.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML settings file (environment variables `RELAY_…` override it).
    #[arg(long, global = true, env = "RELAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Relay changes until stopped (SIGINT/SIGTERM) or --until.
    Run {
        /// earliest | latest | FILE:POS | gtid:D-S-N[,…] | time:RFC3339 (default: the checkpoint, else latest)
        #[arg(long)]
        from: Option<StartFrom>,
        /// Stop before the first transaction at FILE:POS or after gtid:D-S-N.
        #[arg(long)]
        until: Option<StopAt>,
        /// Print what would be emitted as JSON lines; produce and save nothing.
        #[arg(long)]
        dry_run: bool,
        /// Snapshot these tables (db.table, comma-separated) before streaming on.
        #[arg(long, value_delimiter = ',')]
        snapshot: Vec<String>,
        /// Message value format: debezium | canal | maxwell (default: the
        /// `format` setting, `RELAY_FORMAT`, else debezium).
        #[arg(long)]
        format: Option<Format>,
        /// Value encoding of the debezium format: sluice | debezium (the
        /// Debezium drop-in; default: `debezium.value_encoding`,
        /// `RELAY_DEBEZIUM__VALUE_ENCODING`, else sluice).
        #[arg(long)]
        value_encoding: Option<binlog_relay::config::ValueEncoding>,
    },
    /// Make the leader of `ha.name` stand down (standby relays): its lease
    /// session is ended; it stops streaming within a third of the lease
    /// timeout and waits as a standby, and a waiting relay takes over.
    StepDown,
    /// Topic management.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create the topics of the configured tables (existing ones are kept).
    Create,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = common::telemetry::init("binlog-relay");
    let mut settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Run {
            from,
            until,
            dry_run,
            snapshot,
            format,
            value_encoding,
        } => {
            if let Some(format) = format {
                settings.format = format;
            }
            if let Some(encoding) = value_encoding {
                settings.debezium.value_encoding = encoding;
            }
            let app = Application::build(
                settings,
                RunOptions {
                    from,
                    until,
                    dry_run,
                    snapshot,
                },
            )
            .await?;
            tracing::info!(admin_port = app.admin_port(), "binlog-relay started");
            app.run_until_stopped(common::shutdown::signal()).await?;
        }
        Command::StepDown => {
            let url = settings.mysql.resolve_url(settings.dev)?;
            match binlog_relay::ha::step_down(&url, &settings.ha.name)
                .await
                .context("stepping down")?
            {
                None => println!("no relay leads {:?}", settings.ha.name),
                Some(d) => println!(
                    "ended the lease session {} of {:?} (leader {}, epoch {}); it stands down within a third of its lease timeout",
                    d.session,
                    settings.ha.name,
                    d.leader.as_deref().unwrap_or("?"),
                    d.epoch.map_or_else(|| "?".to_owned(), |e| e.to_string()),
                ),
            }
        }
        Command::Topics {
            command: TopicsCommand::Create,
        } => {
            let names = binlog_relay::topics::create(&settings)
                .await
                .context("creating topics")?;
            for n in names {
                println!("{n}");
            }
        }
    }
    Ok(())
}
