//! The one crmsync binary: the API with its in-process worker (`serve`, the
//! default), a worker alone, migrations, the schema, tokens, and the sandbox CRMs.

mod config;
mod demo;
mod run;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use crmsync_entity::enums::Role;

use crate::config::Config;

/// mimalloc: glibc's malloc spent about half of a sync's CPU time on its many
/// small allocations freed across threads (BENCHMARKS.md, the 100k-contact export).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "crmsync", version, about = "Two-way CRM contact sync backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API and an in-process worker (the default command).
    Serve {
        /// Also start sandbox CRMs in-process, create a demo tenant with contacts and
        /// connectors, and print the GraphiQL URL and an admin token.
        #[arg(long)]
        demo: bool,
        /// Serve the API only: sync jobs are left to `crmsync worker` processes
        /// on the shared database and queue.
        #[arg(long, conflicts_with = "demo")]
        no_worker: bool,
        /// Sync runs the in-process worker carries out at once.
        #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
    },
    /// Run a worker only: it takes sync jobs from the shared queue.
    Worker {
        /// Sync runs this worker carries out at once.
        #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Mint a JWT with the configured HS256 secret and print it alone on stdout.
    Token {
        /// The token's role.
        #[arg(long, value_enum)]
        role: CliRole,
        /// The tenant's slug (required for admin and viewer).
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// Start the sandbox CRMs. The first line on stdout is a JSON
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

/// Runs one worker process carries out at once, unless told otherwise.
const DEFAULT_CONCURRENCY: u16 = 4;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CliRole {
    Operator,
    Admin,
    Viewer,
}

impl From<CliRole> for Role {
    fn from(role: CliRole) -> Self {
        match role {
            CliRole::Operator => Role::Operator,
            CliRole::Admin => Role::Admin,
            CliRole::Viewer => Role::Viewer,
        }
    }
}

/// `90s`, `30m`, `1h`, `7d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("\"{s}\": expected a number and a unit, e.g. 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("\"{s}\": unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("must be longer than 0".into());
    }
    Ok(Duration::from_secs(secs))
}

/// An error ends the process with its message and causes on one line, never a
/// backtrace (whatever `RUST_BACKTRACE` says): every error that reaches here is
/// an expected one, such as a bad variable or a port already taken.
fn main() -> std::process::ExitCode {
    match cli() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn cli() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A log line that cannot be written (its reader gone: a closed pipe)
        // is dropped: reporting it would print to that same stderr, and a
        // failed print panics the task that logged, SIGTERM's handler among
        // them.
        .log_internal_errors(false)
        // Colours for a person at a terminal; plain text for log files and collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CRMSYNC_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let default = Command::Serve {
        demo: false,
        no_worker: false,
        concurrency: DEFAULT_CONCURRENCY,
    };
    match cli.command.unwrap_or(default) {
        Command::Serve {
            demo,
            no_worker,
            concurrency,
        } => {
            let worker = (!no_worker).then_some(usize::from(concurrency));
            run::serve(Config::load()?, demo, worker).await
        }
        Command::Worker { concurrency } => {
            run::worker(Config::load()?, usize::from(concurrency)).await
        }
        Command::Migrate => run::migrate(Config::load()?).await,
        Command::Schema => {
            print!("{}", crmsync_api::sdl());
            Ok(())
        }
        Command::Token { role, tenant, ttl } => {
            run::token(Config::load()?, role.into(), tenant, ttl).await
        }
        Command::Sandbox { bind, seed, people } => sandbox(bind, seed, people).await,
    }
}

async fn sandbox(bind: SocketAddr, seed: u64, people: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let config = crmsync_sandbox::SandboxConfig { bind, seed, people };
    let signalled = run::shutdown_signal()?;
    let sandbox = crmsync_sandbox::Sandbox::start(config)
        .await
        .with_context(|| format!("cannot listen on {bind} (--bind)"))?;
    let line = serde_json::to_string(sandbox.description())?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(url = %sandbox.base_url(), "sandbox CRMs ready; Ctrl-C stops them");
    signalled.await;
    sandbox.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("0m").is_err());
    }
}
