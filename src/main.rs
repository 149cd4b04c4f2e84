//! The one crmsync binary.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "crmsync", version, about = "Two-way CRM contact sync backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the sandbox Zoho CRM and Pipedrive. The first line on stdout is a JSON
    /// description (URLs and credentials); request logs go to stderr.
    Sandbox {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: SocketAddr,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// People seeded into each CRM.
        #[arg(long, default_value_t = 250)]
        people: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CRMSYNC_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Sandbox { bind, seed, people }) => sandbox(bind, seed, people).await,
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(())
        }
    }
}

async fn sandbox(bind: SocketAddr, seed: u64, people: usize) -> anyhow::Result<()> {
    let config = crmsync_sandbox::SandboxConfig { bind, seed, people };
    let sandbox = crmsync_sandbox::Sandbox::start(config)
        .await
        .with_context(|| format!("cannot listen on {bind} (--bind)"))?;
    let line = serde_json::to_string(sandbox.description())?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(url = %sandbox.base_url(), "sandbox CRMs ready; Ctrl-C stops them");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sandbox.shutdown().await;
    Ok(())
}
