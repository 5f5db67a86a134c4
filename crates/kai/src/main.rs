//! The `kai` binary: parses the command line, resolves the data directory and configuration
//! layers, and runs the command. Only this crate reads environment variables, configuration
//! files and flags; libraries receive typed settings.

mod artifacts;
mod chat;
mod cli;
mod client;
mod commands;
mod init;
mod logging;
mod memory;
#[cfg(feature = "local-models")]
mod models;
mod node;
mod output;
mod paths;
mod prompts;
mod secure;
mod serve;
mod settings;
mod tasks;

use clap::{CommandFactory as _, Parser as _};
use kai_core::config::ConfigError;

#[cfg(feature = "local-models")]
use crate::cli::ModelsCommand;
use crate::cli::{AuditCommand, Cli, Command, ConfigCommand, IdentityCommand, InitArgs, Shell};
use crate::output::outln;
use crate::paths::{ConfigPaths, DataDir};

/// jemalloc instead of glibc's malloc: with the node's many threads (tokio workers, the SQLite
/// writer, connection threads) glibc's arenas were a quarter of a task step's CPU: lock
/// contention on frees across threads and consolidation of freed chunks (docs/benchmarks.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit code for an invalid configuration (sysexits EX_CONFIG).
const EXIT_CONFIG: i32 = 78;

/// What every command knows.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub data: DataDir,
    pub config_paths: ConfigPaths,
    pub set: Vec<String>,
    pub json: bool,
}

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(config) = e.downcast_ref::<ConfigError>() {
                eprintln!("error: {config}");
                EXIT_CONFIG
            } else {
                eprintln!("error: {e}");
                for cause in e.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
                1
            }
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Completions { shell } = cli.command {
        let shell = match shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        };
        clap_complete::generate(shell, &mut Cli::command(), "kai", &mut std::io::stdout());
        return Ok(0);
    }
    let ctx = Ctx {
        data: DataDir::resolve(cli.data_dir.as_deref())?,
        config_paths: ConfigPaths::resolve(cli.config.as_deref(), cli.environment.as_deref()),
        set: cli.set,
        json: cli.json,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                serve::serve(ctx, args.listen, args.log_level).await.map(|()| 0)
            }
            other => {
                logging::init_quiet();
                dispatch(&ctx, other).await
            }
        }
    })
}

async fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Init(InitArgs { non_interactive }) => {
            let config = settings::load(
                &ctx.config_paths,
                &settings::flag_overrides(&ctx.set, None, None)?,
            )?
            .config;
            let done = init::init(&config, &ctx.data, !non_interactive).await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&done)?);
            } else if done.created {
                outln!("initialized a new kai node in {}", done.data_dir);
                outln!("  identity     {}", done.did);
                outln!(
                    "  owner token  {} (mode 0600; the CLI uses it to talk to the node)",
                    done.admin_token_file
                );
                match &done.owner_password {
                    Some(p) => outln!("  owner login  {} / {p}  (shown once)", done.owner),
                    None => outln!("  owner login  {} (the password you chose)", done.owner),
                }
                if let Some(p) = &done.vault_passphrase {
                    outln!("  vault passphrase  {p}  (shown once; keep it safe)");
                }
                match &done.vault_key_file {
                    Some(k) => {
                        outln!("  vault key file    {k} (mode 0600; `kai serve` unlocks with it)")
                    }
                    None => {
                        outln!("  the vault starts sealed: `kai vault unlock` after `kai serve`")
                    }
                }
                outln!("next: `kai serve`");
            } else {
                outln!("already initialized in {} (identity {})", done.data_dir, done.did);
            }
            Ok(0)
        }
        Command::Status => commands::status(ctx).await,
        Command::Config(ConfigCommand::Show { sources }) => {
            commands::config_show(ctx, sources).map(|()| 0)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            commands::config_check(ctx, file).map(|()| 0)
        }
        Command::Audit(AuditCommand::Verify) => commands::audit_verify(ctx).await,
        Command::Audit(AuditCommand::Tail { lines, follow }) => {
            commands::audit_tail(ctx, lines, follow).await.map(|()| 0)
        }
        Command::Identity(IdentityCommand::Show) => commands::identity_show(ctx).await.map(|()| 0),
        Command::Identity(IdentityCommand::Rotate) => {
            commands::identity_rotate(ctx).await.map(|()| 0)
        }
        Command::Vault(cmd) => secure::vault(ctx, cmd).await.map(|()| 0),
        Command::Token(cmd) => secure::token(ctx, cmd).await.map(|()| 0),
        Command::User(cmd) => secure::user(ctx, cmd).await.map(|()| 0),
        Command::Prompt(cmd) => prompts::run(ctx, cmd).await.map(|()| 0),
        Command::Artifact(cmd) => artifacts::run(ctx, cmd).await.map(|()| 0),
        Command::Usage { hours } => secure::usage(ctx, hours).await.map(|()| 0),
        #[cfg(feature = "local-models")]
        Command::Models(ModelsCommand::Install { names, from_wheel, index_url, force }) => {
            models::install(ctx, &names, &from_wheel, &index_url, force).await.map(|()| 0)
        }
        #[cfg(feature = "local-models")]
        Command::Models(ModelsCommand::List) => models::list(ctx).map(|()| 0),
        #[cfg(not(feature = "local-models"))]
        Command::Models(_) => anyhow::bail!(
            "this kai was built without the embedded models (cargo feature `local-models`)"
        ),
        Command::Memory(cmd) => memory::run(ctx, cmd).await.map(|()| 0),
        Command::Task(cmd) => tasks::run(ctx, cmd).await,
        Command::Agent(cmd) => tasks::agent(ctx, cmd).await,
        Command::Chat { thread, persona, title, message } => {
            let message = (!message.is_empty()).then(|| message.join(" "));
            chat::run(ctx, chat::ChatArgs { thread, persona, title, message }).await.map(|()| 0)
        }
        Command::Serve(_) | Command::Completions { .. } => Ok(0),
    }
}
