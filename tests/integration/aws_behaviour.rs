//! The change-set deploy path (the one AWS stages take) against the AWS-behaviour
//! proxy (`tests/harness/cfn_proxy.py`) in front of moto: asynchronous operations,
//! per-resource events over several pages, AWS's empty change sets, `Replacement`
//! from the resource schemas, and injected faults.
//!
//! barkctl takes the change-set path for any stage without `local: true`; these
//! tests add a `ci` stage whose `endpoint_url` is the proxy, as a user would point
//! a stage at any AWS-compatible endpoint. Polls are 20 ms apart
//! (`BARKCTL_POLL_MAX_MS`), so the asynchronous operations cost little time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::deploy::Emulator;
use super::harness::{self, repo_root, Run};

/// moto (through barkctl's launcher) and the proxy in front of it, on free ports.
pub(super) struct Proxy {
    child: Child,
    port: u16,
    _emu: Emulator,
    _dir: tempfile::TempDir,
}

use super::harness::free_port;

/// One HTTP/1.0 exchange: (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

impl Proxy {
    pub(super) fn start() -> Self {
        let emu = Emulator::start();
        let port = free_port();
        let dir = tempfile::tempdir().expect("tmp");
        let log = std::fs::File::create(dir.path().join("proxy.log")).expect("log");
        let python = harness::tool("python");
        let child = Command::new(&python)
            .arg(repo_root().join("tests/harness/cfn_proxy.py"))
            .args(["--upstream", &emu.url(), "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let proxy = Proxy {
            child,
            port,
            _emu: emu,
            _dir: dir,
        };
        let started = Instant::now();
        while http(port, "GET", "/_proxy/stats", "").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the proxy did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Merge `json` into the proxy's config (faults, poll counts, page sizes).
    pub(super) fn config(&self, json: &str) {
        let (status, body) = http(self.port, "POST", "/_proxy/config", json).expect("config");
        assert_eq!(status, 200, "{body}");
    }

    pub(super) fn stats(&self) -> Value {
        let (_, body) = http(self.port, "GET", "/_proxy/stats", "").expect("stats");
        serde_json::from_str(&body).expect("stats JSON")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A project copy with a `ci` stage (not `local: true`) whose endpoint is `url`.
fn with_ci_stage(project: &Path, url: &str) {
    let path = project.join("stacks/project.yaml");
    let mut text = std::fs::read_to_string(&path).expect("read");
    let stages = text.find("\nstages:\n").expect("a stages: map") + "\nstages:\n".len();
    text.insert_str(
        stages,
        &format!("  ci:\n    endpoint_url: {url}\n    region: us-east-1\n"),
    );
    std::fs::write(&path, text).expect("write");
}

pub(super) fn hello(proxy: &Proxy) -> (tempfile::TempDir, PathBuf) {
    let (tmp, project) = harness::copy_project(&repo_root().join("examples/hello"));
    with_ci_stage(&project, &proxy.url());
    (tmp, project)
}

fn barkctl(project: &Path, args: &[&str], call_log: &Path) -> Run {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let out = harness::barkctl(project)
        .args(args)
        .env("CI", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("BARKCTL_POLL_MAX_MS", "20")
        .env("BARKCTL_CARGO_PROFILE", "dev")
        .env("CARGO_TARGET_DIR", target_dir)
        .env("BARKCTL_CALL_LOG", call_log)
        .stdin(Stdio::null())
        .output()
        .expect("barkctl runs");
    Run::from(out)
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

/// Stack name -> action in the summary table.
fn actions(run: &Run) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_table = false;
    for line in run.stderr.lines() {
        if line.starts_with("stack ") && line.contains("action") {
            in_table = true;
            continue;
        }
        if in_table {
            if line.trim().is_empty() || line.starts_with("error:") || line.starts_with("retried") {
                break;
            }
            let mut w = line.split_whitespace();
            if let (Some(n), Some(a)) = (w.next(), w.next()) {
                out.push((n.to_string(), a.to_string()));
            }
        }
    }
    out.sort();
    out
}

fn expect_actions(run: &Run, want: &[(&str, &str)]) {
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(s, a)| (s.to_string(), a.to_string()))
        .collect();
    want.sort();
    assert_eq!(actions(run), want, "summary differs:\n{}", run.stderr);
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

/// `retried N AWS requests ...` from the summary.
fn retried(run: &Run) -> usize {
    run.stderr
        .lines()
        .find_map(|l| l.strip_prefix("retried "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn five_stacks_deploy_and_no_op_redeploy_through_the_proxy_with_change_sets() {
    let proxy = Proxy::start();
    let (_tmp, project) = super::deploy::copy_workspace();
    with_ci_stage(&project, &proxy.url());
    let stacks = ["database", "experience", "jobs", "network", "realtime"];
    let named = |action: &'static str| -> Vec<(String, &'static str)> {
        stacks
            .iter()
            .map(|s| (format!("barkbase-ci-{s}"), action))
            .collect()
    };
    let as_refs = |v: &[(String, &'static str)]| -> Vec<(String, String)> {
        v.iter().map(|(s, a)| (s.clone(), a.to_string())).collect()
    };

    // 1. From nothing, approved: each stack through CREATE change sets, each
    // operation asynchronous with per-resource events.
    let log = project.join("calls-first.log");
    let first = barkctl(&project, &["deploy", "--stage", "ci", "--yes"], &log);
    first.assert_ok();
    let mut want = as_refs(&named("created"));
    want.sort();
    assert_eq!(actions(&first), want, "{}", first.stderr);
    let writes = mutating(&log);
    assert!(
        writes
            .iter()
            .filter(|c| c.ends_with("ExecuteChangeSet"))
            .count()
            >= 5,
        "{writes:?}"
    );
    assert!(
        !writes
            .iter()
            .any(|c| c.ends_with("CreateStack") || c.ends_with("UpdateStack")),
        "the change-set path applied a stack directly: {writes:?}"
    );
    // Per-resource events were streamed (the proxy's, named by logical id).
    assert!(
        first.stderr.contains("ConnectionsTable") && first.stderr.contains("CREATE_COMPLETE"),
        "{}",
        first.stderr
    );

    // 2. Nothing changed: every stack unchanged and only read calls.
    let log = project.join("calls-noop.log");
    let noop = barkctl(&project, &["deploy", "--stage", "ci"], &log);
    noop.assert_ok();
    let mut want = as_refs(&named("unchanged"));
    want.sort();
    assert_eq!(actions(&noop), want, "{}", noop.stderr);
    assert_eq!(
        mutating(&log),
        Vec::<String>::new(),
        "no-op made mutating calls"
    );

    // 3. A conditional replacement of the connections table (a key schema change:
    // the schema's conditional create-only property) is refused without
    // --allow-replace, and the change set is deleted.
    edit(
        &project.join("templates/realtime.yaml.hbs"),
        "      KeySchema:\n        - AttributeName: connectionId\n          KeyType: HASH\n",
        "      KeySchema:\n        - AttributeName: connectionId\n          KeyType: HASH\n        - AttributeName: channel\n          KeyType: RANGE\n",
    );
    let log = project.join("calls-replace.log");
    let refused = barkctl(
        &project,
        &["deploy", "--stage", "ci", "realtime", "--yes"],
        &log,
    );
    assert_eq!(refused.code, 3, "{refused:#?}");
    assert!(
        refused.stderr.contains(
            "`ConnectionsTable` (AWS::DynamoDB::Table) may be replaced (the change set says `Replacement: Conditional`)"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--allow-replace"),
        "{}",
        refused.stderr
    );
    let writes = mutating(&log);
    assert!(
        writes.iter().any(|c| c.ends_with("DeleteChangeSet"))
            && !writes.iter().any(|c| c.ends_with("ExecuteChangeSet")),
        "{writes:?}"
    );
}

#[test]
fn throttling_on_30_percent_of_polls_the_deploy_succeeds_and_counts_the_retries() {
    let proxy = Proxy::start();
    let (_tmp, project) = hello(&proxy);
    proxy.config(
        r#"{"throttle": {"rate": 0.3, "seed": 7,
             "actions": ["DescribeStacks", "DescribeStackEvents", "DescribeChangeSet"]},
            "in_progress_polls": 4}"#,
    );
    let log = project.join("calls.log");
    let run = barkctl(&project, &["deploy", "--stage", "ci", "--yes"], &log);
    run.assert_ok();
    expect_actions(
        &run,
        &[
            ("hello-ci-queue", "created"),
            ("hello-ci-alerts", "created"),
        ],
    );
    let throttled = proxy.stats()["throttled"].as_u64().unwrap_or(0) as usize;
    assert!(throttled >= 3, "the proxy throttled {throttled} polls");
    // Every throttled answer was repeated, by the SDK or by barkctl's polling.
    assert!(
        retried(&run) >= throttled,
        "summary says {} retries for {throttled} throttled polls:\n{}",
        retried(&run),
        run.stderr
    );
}

/// The queue deployed, then an update of it that the proxy fails and rolls back.
fn deploy_then_fail_an_update(proxy: &Proxy, project: &Path) -> Run {
    let first = barkctl(
        project,
        &["deploy", "--stage", "ci", "--yes"],
        &project.join("calls-first.log"),
    );
    first.assert_ok();
    proxy.config(
        r#"{"faults": {"hello-ci-queue": {"outcome": "rollback", "resource": "Queue",
              "reason": "Resource handler returned message: \"Value 4000 for VisibilityTimeout is invalid\" (HandlerErrorCode: InvalidRequest)",
              "filler": 5, "reveal_at_end": true}},
            "events_page_size": 5, "clock_skew_seconds": -30}"#,
    );
    edit(
        &project.join("stacks/queue.yaml"),
        "visibility_timeout_seconds: 60",
        "visibility_timeout_seconds: 4000",
    );
    barkctl(
        project,
        &["deploy", "--stage", "ci", "--yes"],
        &project.join("calls-fail.log"),
    )
}

#[test]
fn a_rollback_whose_root_cause_is_on_the_third_events_page_is_printed_as_the_cause() {
    let proxy = Proxy::start();
    let (_tmp, project) = hello(&proxy);
    let failed = deploy_then_fail_an_update(&proxy, &project);
    assert_eq!(failed.code, 3, "{failed:#?}");
    assert!(
        failed.stderr.contains(
            "Queue (AWS::SQS::Queue) UPDATE_FAILED: Resource handler returned message: \"Value 4000 for VisibilityTimeout is invalid\""
        ),
        "{}",
        failed.stderr
    );
    // Read back through three pages; the event timestamps were 30 s behind
    // barkctl's clock, which a clock filter would have dropped.
    let pages = proxy.stats()["event_pages"]["hello-ci-queue"]
        .as_u64()
        .unwrap_or(0);
    assert!(pages >= 3, "read {pages} event pages");
    assert!(
        failed.stderr.contains("not started: `hello-ci-alerts`"),
        "{}",
        failed.stderr
    );
}

#[test]
fn a_stale_update_rollback_complete_from_an_earlier_run_is_not_taken_for_this_runs() {
    let proxy = Proxy::start();
    let (_tmp, project) = hello(&proxy);
    let failed = deploy_then_fail_an_update(&proxy, &project);
    assert_eq!(failed.code, 3, "{failed:#?}");
    // The stack is UPDATE_ROLLBACK_COMPLETE now. The next update shows only after
    // three polls that still answer that status (and the earlier run's events).
    proxy.config(r#"{"faults": {}, "start_lag_polls": 3}"#);
    let run = barkctl(
        &project,
        &["deploy", "--stage", "ci", "--yes"],
        &project.join("calls-rerun.log"),
    );
    run.assert_ok();
    expect_actions(
        &run,
        &[
            ("hello-ci-queue", "updated"),
            ("hello-ci-alerts", "unchanged"),
        ],
    );
    assert!(
        !run.stderr.contains("VisibilityTimeout is invalid"),
        "the earlier run's failure was reported again:\n{}",
        run.stderr
    );
}

#[test]
fn an_added_iam_statement_is_refused_without_yes_and_no_tty_through_the_proxy() {
    let proxy = Proxy::start();
    let (_tmp, project) = hello(&proxy);
    let log = project.join("calls.log");
    let refused = barkctl(&project, &["deploy", "--stage", "ci"], &log);
    refused.assert_invalid(&[
        "refusing to deploy `hello-ci-alerts` without approval",
        "hint: rerun with --yes to approve",
    ]);
    assert_eq!(mutating(&log), Vec::<String>::new());
}

#[test]
fn transient_errors_and_a_reset_connection_while_waiting_do_not_fail_the_deploy() {
    let proxy = Proxy::start();
    let (_tmp, project) = hello(&proxy);
    proxy.config(
        r#"{"errors": [{"action": "DescribeStacks", "status": 500, "times": 3},
                       {"action": "DescribeStackEvents", "status": "reset", "times": 2}],
            "in_progress_polls": 3}"#,
    );
    let run = barkctl(
        &project,
        &["deploy", "--stage", "ci", "--yes"],
        &project.join("calls.log"),
    );
    run.assert_ok();
    let stats = proxy.stats();
    assert_eq!(stats["errors"], 3, "{stats}");
    assert_eq!(stats["resets"], 2, "{stats}");
    assert!(retried(&run) >= 5, "{}", run.stderr);
}

#[test]
fn update_rollback_failed_stops_with_the_hint_to_continue_the_rollback() {
    let proxy = Proxy::start();
    let (_tmp, project) = hello(&proxy);
    barkctl(
        &project,
        &["deploy", "--stage", "ci", "queue", "--yes"],
        &project.join("calls-first.log"),
    )
    .assert_ok();
    proxy.config(
        r#"{"faults": {"hello-ci-queue": {"outcome": "rollback_failed", "resource": "Queue",
              "reason": "Resource handler returned message: \"Access denied\""}}}"#,
    );
    edit(
        &project.join("stacks/queue.yaml"),
        "visibility_timeout_seconds: 60",
        "visibility_timeout_seconds: 90",
    );
    let failed = barkctl(
        &project,
        &["deploy", "--stage", "ci", "queue", "--yes"],
        &project.join("calls-fail.log"),
    );
    assert_eq!(failed.code, 3, "{failed:#?}");
    assert!(failed.stderr.contains("Access denied"), "{}", failed.stderr);
    // The next run finds the stack blocked and says what a person must do.
    proxy.config(r#"{"faults": {}}"#);
    let blocked = barkctl(
        &project,
        &["deploy", "--stage", "ci", "queue", "--yes"],
        &project.join("calls-blocked.log"),
    );
    assert_eq!(blocked.code, 3, "{blocked:#?}");
    assert!(
        blocked.stderr.contains("UPDATE_ROLLBACK_FAILED"),
        "{}",
        blocked.stderr
    );
    assert!(
        blocked.stderr.contains("continue-update-rollback") || blocked.stderr.contains("rollback"),
        "{}",
        blocked.stderr
    );
}

#[test]
fn ctrl_c_mid_wave_names_the_stacks_still_in_progress_and_the_rerun_succeeds() {
    let proxy = Proxy::start();
    let (_tmp, project) = hello(&proxy);
    // The queue's create stays CREATE_IN_PROGRESS until the fault is dropped.
    proxy.config(r#"{"faults": {"hello-ci-queue": {"outcome": "stuck"}}}"#);
    let child = harness::barkctl(&project)
        .args(["deploy", "--stage", "ci", "--yes"])
        .env("CI", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("BARKCTL_POLL_MAX_MS", "20")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("barkctl starts");
    let started = Instant::now();
    // The toolkit stack's create is the first ExecuteChangeSet; the queue's is
    // the second.
    while proxy.stats()["requests"]["ExecuteChangeSet"]
        .as_u64()
        .unwrap_or(0)
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no ExecuteChangeSet"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A few polls into the operation, then Ctrl-C.
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let run = Run::from(child.wait_with_output().expect("barkctl ends"));
    assert_eq!(run.code, 130, "{run:#?}");
    assert!(
        run.stderr.contains(
            "interrupted: CloudFormation keeps running `hello-ci-queue` (CREATE_IN_PROGRESS)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: run the same deploy again"),
        "{}",
        run.stderr
    );

    // CloudFormation finishes on its own; the rerun waits for it, then continues.
    // `--lock-timeout 0`: the interrupted run released the stage lock.
    proxy.config(r#"{"faults": {}}"#);
    let rerun = barkctl(
        &project,
        &["deploy", "--stage", "ci", "--yes", "--lock-timeout", "0"],
        &project.join("calls-rerun.log"),
    );
    rerun.assert_ok();
    expect_actions(
        &rerun,
        &[
            ("hello-ci-queue", "unchanged"),
            ("hello-ci-alerts", "created"),
        ],
    );
}
