//! `barkctl deploy`, `outputs` and `destroy` against the local emulator: the five
//! BarkBase stacks from nothing, checked through each service's own API, then a
//! no-op redeploy (zero mutating calls), a one-parameter change, a failing
//! template and its fix, and a destroy.
//!
//! One test function on one emulator: the handler crates are built once (with the
//! `dev` profile through `BARKCTL_CARGO_PROFILE`: what is checked is what gets
//! deployed, and a cold optimised build costs minutes), and every step depends on
//! the state the previous one left.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::harness::{self, repo_root, Run};

/// A moto server started through barkctl's own launcher (so the resource types
/// moto skips exist), on a free port; killed when dropped.
pub(super) struct Emulator {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Emulator {
    pub(super) fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// With moto settings in its environment (`S3_UPLOAD_PART_MIN_SIZE`, ...).
    pub(super) fn start_with_env(env: &[(&str, &str)]) -> Self {
        let port = harness::free_port();
        let dir = tempfile::tempdir().expect("tmp");
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("log");
        let python = harness::tool("python");
        let child = Command::new(&python)
            .arg(repo_root().join("src/local/moto_ext.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let emu = Emulator {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while !emu.ready() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        emu
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn ready(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace (root package, handler crates, stacks, templates) in a temp dir,
/// so the test may edit stack files and templates. Builds share the repository's
/// target dir: only the workspace's own crates compile again.
pub(super) fn copy_workspace() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dst = tmp.path().join("barkbase");
    let root = repo_root();
    for f in ["Cargo.toml", "Cargo.lock"] {
        harness::write(
            &dst.join(f),
            &std::fs::read_to_string(root.join(f)).expect("read"),
        );
    }
    // `examples/` too: its function crates are workspace members; `crates/`
    // holds the workspace-hack every member depends on.
    for d in ["src", "stacks", "templates", "examples", "crates"] {
        harness::copy_dir(&root.join(d), &dst.join(d));
    }
    for e in std::fs::read_dir(root.join("lambdas"))
        .expect("lambdas")
        .flatten()
    {
        if !e.path().join("Cargo.toml").is_file() {
            continue;
        }
        // The whole crate: sources, tests, and data compiled in (migrations/).
        harness::copy_dir(&e.path(), &dst.join("lambdas").join(e.file_name()));
    }
    (tmp, dst)
}

struct Env {
    project: PathBuf,
    endpoint: String,
    target_dir: PathBuf,
}

impl Env {
    fn barkctl(&self, args: &[&str], call_log: Option<&Path>) -> Run {
        let mut cmd = harness::barkctl(&self.project);
        cmd.args(args)
            .args(["--endpoint-url", &self.endpoint])
            .env("CI", "1")
            .env("BARKCTL_CARGO_PROFILE", "dev")
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .env_remove("BARKCTL_CALL_LOG");
        if let Some(log) = call_log {
            cmd.env("BARKCTL_CALL_LOG", log);
        }
        let out = cmd.output().expect("barkctl runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The summary table's action for each stack: `barkbase-local-network  created ...`.
fn actions(run: &Run) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in run.stderr.lines() {
        if line.starts_with("stack ") && line.contains("action") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        // The table ends at the first blank or `error:` line; failure details
        // that follow it name stacks too.
        if line.trim().is_empty() || line.starts_with("error:") {
            break;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(action)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(stack) = name.strip_prefix("barkbase-local-") else {
            continue;
        };
        let action = if action == "not" {
            "not started".to_string()
        } else {
            action.to_string()
        };
        out.insert(stack.to_string(), action);
    }
    out
}

fn expect_actions(run: &Run, want: &[(&str, &str)]) {
    let got = actions(run);
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(s, a)| (s.to_string(), a.to_string()))
        .collect();
    assert_eq!(got, want, "summary differs:\n{}", run.stderr);
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Mutating calls on stacks and assets; the stage lock's own writes (every
/// deploy takes and releases it) are not counted.
fn mutating(log: &Path) -> Vec<String> {
    calls(log)
        .into_iter()
        .filter(|c| !barkctl::aws::is_read_only(c) && !barkctl::aws::is_lock_call(c))
        .collect()
}

/// Lambda reports CodeSha256 as base64 of the zip's sha256.
pub(super) fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `PrivateSubnetIds` of `network` arrives as parameter `NetworkPrivateSubnetIds`.
fn needs_param(upstream: &str, output: &str) -> String {
    barkctl::render::needs_param(upstream, output)
}

pub(super) async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// Stack name -> its parameters, from DescribeStacks.
async fn stack_parameters(
    cfn: &aws_sdk_cloudformation::Client,
    stack_name: &str,
) -> BTreeMap<String, String> {
    let out = cfn
        .describe_stacks()
        .stack_name(stack_name)
        .send()
        .await
        .expect("describe stack");
    out.stacks()[0]
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_key().unwrap_or_default().to_string(),
                p.parameter_value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Everything the first deploy must have created, read through each service.
async fn check_resources(endpoint: &str, project: &Path) {
    let conf = sdk(endpoint).await;

    // WebSocket API and its routes.
    let apigw = aws_sdk_apigatewayv2::Client::new(&conf);
    let apis = apigw.get_apis().send().await.expect("get apis");
    let api = apis
        .items()
        .iter()
        .find(|a| a.name() == Some("barkbase-local-realtime"))
        .unwrap_or_else(|| panic!("no WebSocket API: {apis:?}"));
    assert_eq!(api.protocol_type().map(|p| p.as_str()), Some("WEBSOCKET"));
    let routes = apigw
        .get_routes()
        .api_id(api.api_id().expect("api id"))
        .send()
        .await
        .expect("get routes");
    let keys: Vec<&str> = routes
        .items()
        .iter()
        .filter_map(|r| r.route_key())
        .collect();
    for k in ["$connect", "$disconnect", "$default"] {
        assert!(keys.contains(&k), "route {k} missing: {keys:?}");
    }

    // Connections table (key, indexes) and metrics table with its stream.
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let t = ddb
        .describe_table()
        .table_name("barkbase-local-realtime-connections")
        .send()
        .await
        .expect("connections table");
    let t = t.table().expect("table");
    assert_eq!(t.key_schema()[0].attribute_name(), "connectionId");
    let mut gsis: Vec<&str> = t
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name())
        .collect();
    gsis.sort();
    assert_eq!(gsis, ["channel-index", "tenantId-index", "userId-index"]);
    let m = ddb
        .describe_table()
        .table_name("barkbase-local-experience-metrics")
        .send()
        .await
        .expect("metrics table");
    let m = m.table().expect("table");
    assert!(
        m.latest_stream_arn().is_some(),
        "metrics table has no stream"
    );
    assert_eq!(
        m.stream_specification().map(|s| s.stream_enabled()),
        Some(true)
    );

    // Every function, with the code barkctl uploaded to the asset bucket.
    let cfn = aws_sdk_cloudformation::Client::new(&conf);
    let toolkit = cfn
        .describe_stacks()
        .stack_name("barkctl-barkbase-toolkit")
        .send()
        .await
        .expect("toolkit stack");
    let bucket = toolkit.stacks()[0]
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("AssetsBucketName"))
        .and_then(|o| o.output_value())
        .expect("bucket output")
        .to_string();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let lambda = aws_sdk_lambda::Client::new(&conf);
    let project_yaml = barkctl::project::load(project).expect("project loads");
    let mut checked = 0;
    for stack in project_yaml.stacks.values() {
        let params = stack_parameters(&cfn, &format!("barkbase-local-{}", stack.name)).await;
        for key in stack.functions.keys() {
            let name = format!("barkbase-local-{}-{key}", stack.name);
            let f = lambda
                .get_function()
                .function_name(&name)
                .send()
                .await
                .unwrap_or_else(|e| panic!("function {name}: {e:?}"));
            let conf = f.configuration().expect("configuration");
            let code_key = &params[&barkctl::render::code_key_param(key)];
            assert_eq!(params["AssetsBucket"], bucket);
            let obj = s3
                .get_object()
                .bucket(&bucket)
                .key(code_key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("bundle {code_key}: {e:?}"));
            let bytes = obj.body.collect().await.expect("body").into_bytes();
            assert_eq!(conf.code_size(), bytes.len() as i64, "{name} code size");
            assert_eq!(
                conf.code_sha256(),
                Some(base64(&Sha256::digest(&bytes)).as_str()),
                "{name} runs other code than {code_key}"
            );
            assert_eq!(conf.handler(), Some("bootstrap"));
            checked += 1;
        }
    }
    assert_eq!(checked, 10, "every BarkBase function is checked");

    // Scheduled jobs: three rules, the migration one disabled; and the realtime
    // sweeper's, every minute.
    let events = aws_sdk_eventbridge::Client::new(&conf);
    let rules = events
        .list_rules()
        .name_prefix("barkbase-local-")
        .send()
        .await
        .expect("rules");
    let states: BTreeMap<&str, &str> = rules
        .rules()
        .iter()
        .filter_map(|r| Some((r.name()?, r.state()?.as_str())))
        .collect();
    assert_eq!(states.len(), 4, "{states:?}");
    assert_eq!(
        states.values().filter(|s| **s == "DISABLED").count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states.get("barkbase-local-migration-schedule"),
        Some(&"DISABLED")
    );
    assert_eq!(
        states.get("barkbase-local-realtime-sweeper-schedule"),
        Some(&"ENABLED"),
        "{states:?}"
    );

    // Database credentials and the instance.
    let secrets = aws_sdk_secretsmanager::Client::new(&conf);
    secrets
        .describe_secret()
        .secret_id("barkbase/local/postgres/credentials")
        .send()
        .await
        .expect("db secret");
    let rds = aws_sdk_rds::Client::new(&conf);
    let dbs = rds
        .describe_db_instances()
        .send()
        .await
        .expect("db instances");
    assert!(
        dbs.db_instances()
            .iter()
            .any(|d| d.engine() == Some("postgres")),
        "no postgres instance: {dbs:?}"
    );
}

/// Each downstream stack's `needs` parameters equal the upstream outputs that
/// `barkctl outputs --format json` prints.
async fn check_hand_off(endpoint: &str, project: &Path, outputs_json: &str) -> usize {
    let outputs: Value = serde_json::from_str(outputs_json).expect("outputs json");
    let conf = sdk(endpoint).await;
    let cfn = aws_sdk_cloudformation::Client::new(&conf);
    let p = barkctl::project::load(project).expect("project loads");
    let mut handed = 0;
    for stack in p.stacks.values() {
        let params = stack_parameters(&cfn, &format!("barkbase-local-{}", stack.name)).await;
        for (up, names) in &stack.needs {
            for o in names {
                let want = outputs[up][o]
                    .as_str()
                    .unwrap_or_else(|| panic!("outputs lack {up}.{o}: {outputs_json}"));
                assert_eq!(
                    params.get(&needs_param(up, o)).map(String::as_str),
                    Some(want),
                    "{} got a stale {up}.{o}",
                    stack.name
                );
                handed += 1;
            }
        }
    }
    handed
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn five_stacks_deploy_redeploy_change_fail_and_destroy_on_the_emulator() {
    let emu = Emulator::start();
    let (_tmp, project) = copy_workspace();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let env = Env {
        project: project.clone(),
        endpoint: emu.url(),
        target_dir,
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let all = |action: &'static str| -> Vec<(&'static str, &'static str)> {
        ["database", "experience", "jobs", "network", "realtime"]
            .into_iter()
            .map(|s| (s, action))
            .collect()
    };

    // 1. From nothing: every stack created, in dependency order.
    let first = env.barkctl(&["deploy", "--stage", "local"], None);
    first.assert_ok();
    expect_actions(&first, &all("created"));
    assert!(!first.stderr.contains('\x1b'), "escape codes under CI");
    rt.block_on(check_resources(&env.endpoint, &project));

    let outputs = env.barkctl(&["outputs", "--stage", "local", "--format", "json"], None);
    outputs.assert_ok();
    let handed = rt.block_on(check_hand_off(&env.endpoint, &project, &outputs.stdout));
    assert_eq!(handed, 19, "every `needs` entry of the five stacks");

    // 2. Nothing changed: every stack unchanged, and only read calls.
    let log = project.join("calls-noop.log");
    let noop = env.barkctl(&["deploy", "--stage", "local"], Some(&log));
    noop.assert_ok();
    expect_actions(&noop, &all("unchanged"));
    assert!(!calls(&log).is_empty(), "the call log records calls");
    assert_eq!(
        mutating(&log),
        Vec::<String>::new(),
        "no-op made mutating calls"
    );

    // 3. One realtime parameter: realtime updated, nothing upstream or beside it.
    edit(
        &project.join("stacks/realtime.yaml"),
        "connection_ttl_seconds: 7200",
        "connection_ttl_seconds: 3600",
    );
    let log = project.join("calls-param.log");
    let changed = env.barkctl(&["deploy", "--stage", "local"], Some(&log));
    changed.assert_ok();
    let mut want = all("unchanged");
    want.retain(|(s, _)| *s != "realtime");
    want.push(("realtime", "updated"));
    expect_actions(&changed, &want);
    let writes = mutating(&log);
    assert!(
        writes
            .iter()
            .any(|c| c.ends_with("UpdateStack") || c.ends_with("ExecuteChangeSet")),
        "{writes:?}"
    );
    assert!(
        !writes
            .iter()
            .any(|c| c.ends_with("CreateStack") || c.ends_with("PutObject")),
        "{writes:?}"
    );
    let ttl = rt.block_on(async {
        let conf = sdk(&env.endpoint).await;
        aws_sdk_lambda::Client::new(&conf)
            .get_function_configuration()
            .function_name("barkbase-local-realtime-connect")
            .send()
            .await
            .expect("connect function")
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get("CONNECTION_TTL_SECONDS").cloned())
    });
    assert_eq!(ttl.as_deref(), Some("3600"));

    // 4. A template the emulator rejects: exit 3, the stack and the reason named,
    // its dependent not started; fixing it and deploying again succeeds.
    let template = project.join("templates/realtime.yaml.hbs");
    let good = std::fs::read_to_string(&template).expect("read");
    edit(
        &template,
        "\nResources:\n",
        "\nResources:\n  BrokenQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: \"not a valid queue name!\"\n",
    );
    let failed = env.barkctl(&["deploy", "--stage", "local"], None);
    assert_eq!(failed.code, 3, "{failed:#?}");
    let err = failed.stderr.split("error: ").last().unwrap_or_default();
    assert!(
        err.contains("`barkbase-local-realtime`"),
        "{}",
        failed.stderr
    );
    assert!(err.contains("alphanumeric characters"), "{}", failed.stderr);
    assert!(
        err.contains("not started: `barkbase-local-experience`"),
        "{}",
        failed.stderr
    );
    let got = actions(&failed);
    assert_eq!(got["realtime"], "failed");
    assert_eq!(got["experience"], "not started");
    assert_eq!(got["network"], "unchanged");

    std::fs::write(&template, good).expect("restore");
    let fixed = env.barkctl(&["deploy", "--stage", "local"], None);
    fixed.assert_ok();
    let got = actions(&fixed);
    // Updated when the emulator left the failed update half-applied, unchanged
    // when it refused the change before touching the stack.
    assert!(
        ["updated", "unchanged"].contains(&got["realtime"].as_str()),
        "{}",
        fixed.stderr
    );
    assert_eq!(got["experience"], "unchanged", "{}", fixed.stderr);
    assert_eq!(got["network"], "unchanged", "{}", fixed.stderr);

    // 5. Destroy: without a TTY it needs --yes; then dependents go first.
    let refused = env.barkctl(&["destroy", "--stage", "local"], None);
    assert_eq!(refused.code, 2, "{refused:#?}");
    let log = project.join("calls-destroy.log");
    let destroyed = env.barkctl(&["destroy", "--stage", "local", "--yes"], Some(&log));
    destroyed.assert_ok();
    expect_actions(&destroyed, &all("deleted"));
    let order: Vec<String> = actions_order(&destroyed);
    let pos = |s: &str| order.iter().position(|o| o == s).expect("listed");
    assert!(pos("experience") < pos("realtime"));
    assert!(pos("realtime") < pos("database") && pos("jobs") < pos("database"));
    assert!(pos("database") < pos("network"));
    assert!(
        destroyed.stderr.contains("kept: ConnectionsTable"),
        "retained resources are listed: {}",
        destroyed.stderr
    );
    let left = rt.block_on(async {
        let conf = sdk(&env.endpoint).await;
        aws_sdk_cloudformation::Client::new(&conf)
            .describe_stacks()
            .send()
            .await
            .expect("list stacks")
            .stacks()
            .iter()
            .filter_map(|s| s.stack_name().map(str::to_string))
            .filter(|n| n.starts_with("barkbase-local-"))
            .collect::<Vec<_>>()
    });
    assert_eq!(left, Vec::<String>::new());
}

/// Stacks in the order the summary lists them.
fn actions_order(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .skip_while(|l| !(l.starts_with("stack ") && l.contains("action")))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("error:"))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.strip_prefix("barkbase-local-"))
        .map(str::to_string)
        .collect()
}
