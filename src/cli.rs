//! Command-line definitions (clap derive). Arguments are parsed and validated here;
//! nothing is done.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "barkctl",
    version,
    about = "Ship a realtime serverless backend on AWS from Rust",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Project folder (default: the nearest folder upward with `stacks/project.yaml`)
    #[arg(long, global = true, env = "BARKCTL_PROJECT")]
    pub project: Option<PathBuf>,
    /// Stage to act on (a key of `stages` in project.yaml)
    #[arg(long, short = 's', global = true, env = "BARKCTL_STAGE")]
    pub stage: Option<String>,
    /// AWS region (default: the stage's, then project.yaml's)
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS profile from the shared config files
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// AWS endpoint URL (default: the stage's; `local` stages use the emulator)
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// More output (repeat for more)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less output: only errors and data
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// When to use colour
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render templates to a folder (no AWS calls)
    Synth(SynthArgs),
    /// Build the Lambda bundles the selected stacks use
    Build(BuildArgs),
    /// Build, render, upload and deploy stacks in dependency order
    Deploy(DeployArgs),
    /// Show what a deploy would change
    Diff(DiffArgs),
    /// Print deployed stacks' outputs
    Outputs(OutputsArgs),
    /// Delete stacks in reverse dependency order
    Destroy(DestroyArgs),
    /// Create the asset bucket (toolkit stack) for the app and region
    Bootstrap,
    /// Print the dependency graph
    Graph(GraphArgs),
    /// Load, render and check every stack (no AWS calls)
    Validate(ValidateArgs),
    /// Manage the local AWS emulator
    Local(LocalArgs),
    /// Run a deployed local stage: Lambda runtime, WebSocket gateway, triggers
    Dev(DevArgs),
    /// Invoke a deployed function of a local stage and print its response
    Invoke(InvokeArgs),
    /// Deploy, then redeploy on changes under lambdas/, stacks/ and templates/
    /// (hotswapping functions where only their code or environment changed)
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port of the (first) WebSocket API; further APIs take the next ports
    #[arg(long, default_value_t = 3011)]
    pub port: u16,
    /// Port of the Lambda Runtime and Invoke API (0: any free port)
    #[arg(long, default_value_t = 0)]
    pub runtime_port: u16,
    /// Instances per function when invocations overlap
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Fire these schedule rules once at start (rule name), whatever their state
    #[arg(long, value_name = "RULE")]
    pub fire: Vec<String>,
    /// Close WebSocket connections idle this many seconds (API Gateway: 600)
    #[arg(long, default_value_t = 600)]
    pub idle_timeout: u64,
    /// Close WebSocket connections after this many seconds (API Gateway: 7200)
    #[arg(long, default_value_t = 7200)]
    pub max_connection_seconds: u64,
    /// Rebuild on changes under `lambdas/` and swap the changed functions' binaries
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// `stack.function`, a function key or the deployed function name
    pub function: String,
    /// The event: JSON text, or `@file` to read it from a file (default: `{}`)
    #[arg(long)]
    pub payload: Option<String>,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Stacks to render (default: all)
    pub stacks: Vec<String>,
    /// Output folder (default: `.barkctl/synth/<stage>/`)
    #[arg(long, short = 'o', conflicts_with = "stdout")]
    pub out: Option<PathBuf>,
    /// Print one stack's template to stdout instead of writing files
    #[arg(long)]
    pub stdout: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Functions to build, as `stack.function` or `function` (default: all)
    pub functions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Bar,
    Events,
    Quiet,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Stacks to deploy (default: all), plus the stacks they need
    pub stacks: Vec<String>,
    /// Deploy only the named stacks, not what they need
    #[arg(long, short = 'e')]
    pub exclusively: bool,
    /// Stacks of one wave deployed at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Approve security-sensitive changes without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Allow replacing or deleting stateful resources
    #[arg(long)]
    pub allow_replace: bool,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Merge the deployed stacks' outputs into this JSON file
    #[arg(long)]
    pub outputs_file: Option<PathBuf>,
    /// How progress is shown
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Update stacks whose only changes are functions' code or environment through
    /// the Lambda API (the stack drifts until the next full deploy); others deploy fully
    #[arg(long)]
    pub hotswap: bool,
    /// With --hotswap: hotswap a stage that has termination protection
    #[arg(long, requires = "hotswap")]
    pub force: bool,
    /// Seconds to wait for another deploy or destroy of the stage to end (0: fail at once)
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_timeout: u64,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Stacks to deploy (default: all), plus the stacks they need
    pub stacks: Vec<String>,
    /// Approve security-sensitive changes without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Hotswap a stage that has termination protection
    #[arg(long)]
    pub force: bool,
    /// Seconds each round waits for another deploy or destroy of the stage to end
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffMethod {
    Template,
    ChangeSet,
    Auto,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Stacks to compare (default: all)
    pub stacks: Vec<String>,
    /// Exit with code 1 when any stack differs
    #[arg(long)]
    pub fail: bool,
    /// Print one JSON document to stdout
    #[arg(long)]
    pub json: bool,
    /// How changes are classified
    #[arg(long, value_enum, default_value_t = DiffMethod::Auto)]
    pub method: DiffMethod,
    /// Lines of context around changed long strings
    #[arg(long, default_value_t = 3)]
    pub context: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputsFormat {
    Table,
    Json,
    Env,
}

#[derive(Debug, Args)]
pub struct OutputsArgs {
    /// Stacks to read (default: all)
    pub stacks: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputsFormat::Table)]
    pub format: OutputsFormat,
    /// Same as --format json
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Stacks to delete (default: all)
    pub stacks: Vec<String>,
    /// Do not ask for confirmation (required without a TTY)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Delete even when the stage has termination protection
    #[arg(long)]
    pub force: bool,
    /// Seconds to wait for another deploy or destroy of the stage to end (0: fail at once)
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Stages to validate (default: every stage in project.yaml)
    #[arg(long = "all-stages")]
    pub all_stages: bool,
}

#[derive(Debug, Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    pub command: LocalCommand,
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Start the emulator on 127.0.0.1 (installs it on first use)
    Up,
    /// Stop the emulator this project started
    Down,
    /// Say whether the emulator runs and where
    Status,
}
