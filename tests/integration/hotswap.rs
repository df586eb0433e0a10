//! `deploy --hotswap` on the emulator, on the `hotswap` fixture (one
//! dependency-free handler crate, built in about a second): a changed handler
//! and a changed environment go through the Lambda API alone, the stack is left
//! drifted until a full deploy converges it, a template change falls back to a
//! full deploy, and a protected stage refuses without `--force`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::deploy::{sdk, Emulator};
use super::harness::{self, Run};

/// A fresh copy of `tests/fixtures/hotswap` whose commands talk to `endpoint`.
pub(super) struct Fixture {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub endpoint: String,
}

impl Fixture {
    pub fn new(endpoint: String) -> Self {
        let (tmp, root) = harness::copy_project(&harness::fixture("hotswap"));
        Fixture {
            _tmp: tmp,
            root,
            endpoint,
        }
    }

    /// `barkctl ARGS --endpoint-url …`, cargo's target dir inside the copy.
    pub fn command(&self, args: &[&str], call_log: Option<&Path>) -> Command {
        let mut cmd = harness::barkctl(&self.root);
        cmd.args(args)
            .args(["--endpoint-url", &self.endpoint])
            .env("CI", "1")
            .env("CARGO_TARGET_DIR", self.root.join("target"))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("BARKCTL_CALL_LOG");
        if let Some(log) = call_log {
            cmd.env("BARKCTL_CALL_LOG", log);
        }
        cmd
    }

    pub fn run(&self, args: &[&str], call_log: Option<&Path>) -> Run {
        Run::from(self.command(args, call_log).output().expect("barkctl runs"))
    }

    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.root.join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{} lacks {from:?}", path.display());
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
    }

    /// Lambda's CodeSha256 of the bundle built last: base64 of the zip's sha256.
    pub fn built_sha(&self) -> String {
        let zip = self.root.join("target/lambda/greet/bootstrap.zip");
        let bytes = std::fs::read(&zip).unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
        super::deploy::base64(&Sha256::digest(bytes))
    }
}

pub(super) const FUNCTION: &str = "swapfix-local-clock-greet";
const STACK: &str = "swapfix-local-clock";

/// What GetFunction says of a function: CodeSha256, LastUpdateStatus, environment.
#[derive(Debug)]
pub(super) struct Function {
    pub sha: String,
    pub status: Option<String>,
    pub env: HashMap<String, String>,
}

pub(super) fn get_function(endpoint: &str, name: &str) -> Function {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk(endpoint).await);
        let out = lambda
            .get_function()
            .function_name(name)
            .send()
            .await
            .expect("GetFunction");
        let c = out.configuration().expect("configuration");
        Function {
            sha: c.code_sha256().unwrap_or_default().to_string(),
            status: c.last_update_status().map(|s| s.as_str().to_string()),
            env: c
                .environment()
                .and_then(|e| e.variables())
                .cloned()
                .unwrap_or_default(),
        }
    })
}

/// The stack's parameters and LastUpdatedTime, from DescribeStacks.
fn stack(endpoint: &str) -> (HashMap<String, String>, Option<String>) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let cfn = aws_sdk_cloudformation::Client::new(&sdk(endpoint).await);
        let out = cfn
            .describe_stacks()
            .stack_name(STACK)
            .send()
            .await
            .expect("DescribeStacks");
        let s = &out.stacks()[0];
        (
            s.parameters()
                .iter()
                .map(|p| {
                    (
                        p.parameter_key().unwrap_or_default().to_string(),
                        p.parameter_value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            s.last_updated_time().map(|t| t.to_string()),
        )
    })
}

/// The summary table's action for the stack.
fn action(run: &Run) -> String {
    run.stderr
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(STACK)).then(|| w.next().unwrap_or_default().to_string())
        })
        .unwrap_or_else(|| panic!("no summary line for {STACK}:\n{}", run.stderr))
}

fn mutating(log: &Path) -> Vec<String> {
    let calls = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    calls
        .lines()
        .filter(|c| !barkctl::aws::is_read_only(c))
        .map(str::to_string)
        .collect()
}

fn cloudformation(calls: &[String]) -> Vec<&String> {
    calls
        .iter()
        .filter(|c| c.to_lowercase().starts_with("cloudformation"))
        .collect()
}

#[test]
fn hotswap_updates_code_and_environment_through_lambda_only_and_a_full_deploy_converges() {
    let emu = Emulator::start();
    let p = Fixture::new(emu.url());
    let log = p.root.join("calls.log");
    p.run(&["deploy", "--stage", "local"], None).assert_ok();
    let first = get_function(&p.endpoint, FUNCTION);
    assert_eq!(first.sha, p.built_sha());
    let (params_before, updated_before) = stack(&p.endpoint);
    let key_before = params_before["GreetCodeKey"].clone();

    // The plan says what would be hotswapped, and changes nothing.
    p.edit("lambdas/greet/src/main.rs", "\"v1\"", "\"v2\"");
    let dry = p.run(
        &["deploy", "--stage", "local", "--hotswap", "--dry-run"],
        None,
    );
    dry.assert_ok();
    assert!(
        dry.stdout
            .contains(&format!("hotswap  ({FUNCTION} code through the Lambda API")),
        "{}",
        dry.stdout
    );
    assert_eq!(get_function(&p.endpoint, FUNCTION).sha, first.sha);

    // A changed handler: UpdateFunctionCode, no stack operation.
    let swapped = p.run(&["deploy", "--stage", "local", "--hotswap"], Some(&log));
    swapped.assert_ok();
    assert_eq!(action(&swapped), "hotswapped", "{}", swapped.stderr);
    assert!(swapped.stderr.contains("drifted"), "{}", swapped.stderr);
    let calls = mutating(&log);
    assert!(cloudformation(&calls).is_empty(), "{calls:?}");
    assert!(
        calls.iter().any(|c| c.ends_with(".UpdateFunctionCode")),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.ends_with(".UpdateFunctionConfiguration")),
        "{calls:?}"
    );
    let after = get_function(&p.endpoint, FUNCTION);
    assert_ne!(after.sha, first.sha);
    assert_eq!(after.sha, p.built_sha());
    assert!(
        matches!(after.status.as_deref(), None | Some("Successful")),
        "{after:?}"
    );
    // The stack is drifted: CloudFormation still has the old bundle key.
    let (params, updated) = stack(&p.endpoint);
    assert_eq!(params["GreetCodeKey"], key_before);
    assert_eq!(updated, updated_before);

    // A changed environment variable: UpdateFunctionConfiguration; the variable
    // only CloudFormation resolves keeps its value.
    p.edit("stacks/clock.yaml", "greeting: hello", "greeting: howdy");
    let env = p.run(&["deploy", "--stage", "local", "--hotswap"], Some(&log));
    env.assert_ok();
    assert_eq!(action(&env), "hotswapped", "{}", env.stderr);
    let calls = mutating(&log);
    assert!(cloudformation(&calls).is_empty(), "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| c.ends_with(".UpdateFunctionConfiguration")),
        "{calls:?}"
    );
    let after_env = get_function(&p.endpoint, FUNCTION);
    assert_eq!(after_env.env["GREETING"], "howdy");
    assert_eq!(after_env.env["ROLE_ARN"], first.env["ROLE_ARN"]);
    assert!(!first.env["ROLE_ARN"].is_empty(), "{first:?}");
    assert_eq!(after_env.sha, after.sha);

    // A full deploy after the hotswaps is no no-op: it brings the stack's
    // parameters and template up to what runs.
    let full = p.run(&["deploy", "--stage", "local"], Some(&log));
    full.assert_ok();
    assert_eq!(action(&full), "updated", "{}", full.stderr);
    let (params, _) = stack(&p.endpoint);
    assert_ne!(params["GreetCodeKey"], key_before);
    assert!(!cloudformation(&mutating(&log)).is_empty());
    let again = p.run(&["deploy", "--stage", "local", "--hotswap"], None);
    again.assert_ok();
    assert_eq!(action(&again), "unchanged", "{}", again.stderr);

    // Anything beyond code and environment: a full deploy, saying why.
    p.edit("lambdas/greet/src/main.rs", "\"v2\"", "\"v3\"");
    p.edit(
        "templates/clock.yaml.hbs",
        "Greets on a schedule",
        "Greets every hour",
    );
    let full = p.run(&["deploy", "--stage", "local", "--hotswap"], Some(&log));
    full.assert_ok();
    assert_eq!(action(&full), "updated", "{}", full.stderr);
    assert!(
        full.stderr
            .contains("no hotswap: resource `Schedule` changed"),
        "{}",
        full.stderr
    );
    let calls = mutating(&log);
    assert!(!cloudformation(&calls).is_empty(), "{calls:?}");
    assert!(
        !calls.iter().any(|c| c.ends_with(".UpdateFunctionCode")),
        "{calls:?}"
    );
    assert_eq!(get_function(&p.endpoint, FUNCTION).sha, p.built_sha());

    // `--force` gets a protected stage past the refusal (here: its first deploy,
    // which creates the stack). moto answers UpdateTerminationProtection with a
    // 500, so the run itself ends in an error after the create.
    let forced = p.run(
        &["deploy", "--stage", "guarded", "--hotswap", "--force"],
        None,
    );
    assert_ne!(forced.code, 2, "{forced:#?}");
    assert!(!forced.stderr.contains("refusing"), "{}", forced.stderr);
    assert!(
        forced
            .stderr
            .contains("swapfix-guarded-clock (AWS::CloudFormation::Stack) CREATE_COMPLETE"),
        "{}",
        forced.stderr
    );
}

#[test]
fn hotswap_and_watch_refuse_a_protected_stage_without_force() {
    let p = Fixture::new("http://127.0.0.1:9".into());
    let deploy = p.run(&["deploy", "--stage", "guarded", "--hotswap"], None);
    deploy.assert_invalid(&["stage `guarded`", "termination protection", "--force"]);
    let watch = p.run(&["watch", "--stage", "guarded"], None);
    watch.assert_invalid(&["stage `guarded`", "termination protection", "--force"]);
    // `--force` belongs to `--hotswap`.
    let bare = p.run(&["deploy", "--stage", "guarded", "--force"], None);
    assert_eq!(bare.code, 2, "{bare:#?}");
}

/// The bundles build while the toolkit stack is ensured and the stage lock is
/// taken (deploy no longer waits for one before the other): a handler that does
/// not compile must still end the deploy with cargo's error, deploy nothing of
/// the project, and leave the lock free for the next run.
#[test]
fn a_handler_that_does_not_compile_fails_the_deploy_and_releases_the_stage_lock() {
    let emu = Emulator::start();
    let p = Fixture::new(emu.url());
    p.edit("lambdas/greet/src/main.rs", "\"v1\"", "\"v1\" + 1");
    let broken = p.run(&["deploy", "--stage", "local"], None);
    assert_eq!(broken.code, 3, "{broken:#?}");
    assert!(broken.stderr.contains("error[E0"), "{}", broken.stderr);
    assert!(
        broken.stderr.contains("cargo's errors are printed above"),
        "{}",
        broken.stderr
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let described = rt.block_on(async {
        let cfn = aws_sdk_cloudformation::Client::new(&sdk(&p.endpoint).await);
        cfn.describe_stacks().stack_name(STACK).send().await
    });
    assert!(described.is_err(), "the stack was deployed: {described:?}");

    // Fixed, the next deploy takes the lock at once (`--lock-timeout 0`).
    p.edit("lambdas/greet/src/main.rs", "\"v1\" + 1", "\"v1\"");
    let fixed = p.run(&["deploy", "--stage", "local", "--lock-timeout", "0"], None);
    fixed.assert_ok();
    assert_eq!(get_function(&p.endpoint, FUNCTION).sha, p.built_sha());
}
