//! The stage lock (`deploy::lock`): one deploy or destroy of a stage at a time.
//!
//! The concurrent deploys go through the AWS-behaviour proxy, whose `stuck` fault
//! keeps the first deploy's queue CREATE_IN_PROGRESS (and so its lock held) for
//! as long as the test wants; the lock item is read with barkctl's own
//! `deploy::lock::read` to know when the first deploy holds it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barkctl::deploy::lock;

use super::aws_behaviour::{hello, Proxy};
use super::deploy::{sdk, Emulator};
use super::harness::{self, Run};

const TABLE: &str = "barkctl-hello-locks";

/// `barkctl <args>` on `project` with the proxy tests' environment; `lease`
/// sets `BARKCTL_LOCK_LEASE_SECONDS`.
fn command(project: &Path, args: &[&str], lease: Option<u64>) -> Command {
    let mut cmd = harness::barkctl(project);
    cmd.args(args)
        .env("CI", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("BARKCTL_CALL_LOG")
        .env("BARKCTL_POLL_MAX_MS", "20")
        .stdin(Stdio::null());
    match lease {
        Some(s) => cmd.env(lock::LEASE_ENV, s.to_string()),
        None => cmd.env_remove(lock::LEASE_ENV),
    };
    cmd
}

fn run(project: &Path, args: &[&str]) -> Run {
    Run::from(command(project, args, None).output().expect("barkctl runs"))
}

/// A running barkctl whose stderr is collected as it comes.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("barkctl starts");
        let pipe = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().expect("stderr buffer");
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// Wait until stderr contains `needle` (the process may not end first).
    fn wait_for(&mut self, needle: &str) {
        let started = Instant::now();
        while !self.stderr().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "barkctl ended ({status}) before printing {needle:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no {needle:?} after 120 s:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(mut self) -> Run {
        let status = self.child.wait().expect("barkctl ends");
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The lock item of `stage`, read through `endpoint`.
fn held(rt: &tokio::runtime::Runtime, endpoint: &str, stage: &str) -> Option<lock::Held> {
    rt.block_on(async {
        let client = aws_sdk_dynamodb::Client::new(&sdk(endpoint).await);
        lock::read(&client, TABLE, stage).await.expect("GetItem")
    })
}

/// Wait until the lock of `stage` is held by `pid`.
fn wait_until_held_by(rt: &tokio::runtime::Runtime, endpoint: &str, stage: &str, pid: u32) {
    let started = Instant::now();
    while held(rt, endpoint, stage).map(|h| h.holder.pid) != Some(pid) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "pid {pid} did not take the lock of `{stage}`"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn two_concurrent_deploys_of_one_stage_the_second_waits_then_proceeds() {
    let rt = runtime();
    let proxy = Proxy::start();
    let (_tmp, project) = hello(&proxy);
    run(&project, &["bootstrap", "--stage", "ci"]).assert_ok();

    // The first deploy's queue create stays in progress until the fault goes.
    proxy.config(r#"{"faults": {"hello-ci-queue": {"outcome": "stuck"}}}"#);
    let deploy = ["deploy", "--stage", "ci", "--yes"];
    let first = Running::spawn(command(&project, &deploy, None));
    wait_until_held_by(&rt, &proxy.url(), "ci", first.pid());

    let mut second = Running::spawn(command(
        &project,
        &["deploy", "--stage", "ci", "--yes", "--lock-timeout", "300"],
        None,
    ));
    second.wait_for("waiting for the lock of stage `ci`");
    let waiting = second.stderr();
    assert!(
        waiting.contains(&format!("held by pid {} on host `", first.pid())),
        "{waiting}"
    );
    assert!(waiting.contains("(`barkctl deploy`, since "), "{waiting}");
    // Waiting, the second deploy has not started on any stack.
    assert!(!waiting.contains("hello-ci-queue"), "{waiting}");

    proxy.config(r#"{"faults": {}}"#);
    let first = first.finish();
    first.assert_ok();
    let second = second.finish();
    second.assert_ok();
    // It ran after the first: everything was deployed by then.
    assert!(
        second.stderr.contains("hello-ci-queue") && second.stderr.contains("unchanged"),
        "{}",
        second.stderr
    );
    assert!(
        !second.stderr.contains("created"),
        "the second deploy created stacks the first one deployed:\n{}",
        second.stderr
    );
    assert_eq!(held(&rt, &proxy.url(), "ci"), None, "the lock was released");
}

#[test]
fn a_killed_deploys_lock_expires_and_the_next_deploy_takes_over() {
    let rt = runtime();
    let proxy = Proxy::start();
    let (_tmp, project) = hello(&proxy);
    run(&project, &["bootstrap", "--stage", "ci"]).assert_ok();

    proxy.config(r#"{"faults": {"hello-ci-queue": {"outcome": "stuck"}}}"#);
    let mut killed = Running::spawn(command(
        &project,
        &["deploy", "--stage", "ci", "--yes"],
        Some(2),
    ));
    let pid = killed.pid();
    wait_until_held_by(&rt, &proxy.url(), "ci", pid);
    // Killed while its queue create runs (the bootstrap's toolkit create was the
    // first ExecuteChangeSet).
    let started = Instant::now();
    while proxy.stats()["requests"]["ExecuteChangeSet"]
        .as_u64()
        .unwrap_or(0)
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no ExecuteChangeSet for the queue"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // While it runs, its heartbeat renews the 2 s lease.
    let first = held(&rt, &proxy.url(), "ci").expect("held").expires_at_ms;
    let started = Instant::now();
    while held(&rt, &proxy.url(), "ci").expect("held").expires_at_ms == first {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the lease was never renewed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    killed.child.kill().expect("SIGKILL");
    let _ = killed.child.wait();
    // Nothing released it: the item is still there, naming the killed process.
    let left = held(&rt, &proxy.url(), "ci").expect("the killed deploy's lock");
    assert_eq!(left.holder.pid, pid);
    assert_eq!(left.holder.command, "deploy");

    // CloudFormation goes on without barkctl; the next deploy waits for the
    // lease to run out, then for the queue's operation, then continues.
    proxy.config(r#"{"faults": {}}"#);
    let next = Running::spawn(command(
        &project,
        &["deploy", "--stage", "ci", "--yes", "--lock-timeout", "60"],
        Some(2),
    ))
    .finish();
    next.assert_ok();
    assert!(
        next.stderr.contains(&format!(
            "waiting for the lock of stage `ci`: held by pid {pid} on host `"
        )),
        "{}",
        next.stderr
    );
    assert!(next.stderr.contains("hello-ci-alerts"), "{}", next.stderr);
    assert!(!next.stderr.contains("was taken over"), "{}", next.stderr);
    assert_eq!(held(&rt, &proxy.url(), "ci"), None, "the lock was released");
}

#[test]
fn lock_timeout_0_against_a_held_lock_fails_at_once_naming_the_holder() {
    let rt = runtime();
    let emu = Emulator::start();
    let (_tmp, project) = harness::copy_project(&harness::repo_root().join("examples/hello"));
    let endpoint = emu.url();
    let with_endpoint = |args: &[&str]| -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--endpoint-url", &endpoint]);
        run(&project, &all)
    };
    // A local stage: the lock lives in the emulator's toolkit stack too.
    with_endpoint(&["bootstrap", "--stage", "local"]).assert_ok();

    // Another machine's deploy holds the lock (taken with barkctl's own code).
    let other = lock::Holder {
        host: "build-7".into(),
        pid: 4242,
        started: "2026-12-03T12:00:00.000Z".into(),
        command: "deploy".into(),
    };
    let holding = rt.block_on(async {
        let client = aws_sdk_dynamodb::Client::new(&sdk(&endpoint).await);
        lock::acquire(
            &client,
            TABLE,
            "local",
            &other,
            Duration::from_secs(600),
            Duration::ZERO,
            &|_: &lock::Held| {},
        )
        .await
        .expect("the lock is free")
    });

    let refused = with_endpoint(&["deploy", "--stage", "local", "--lock-timeout", "0"]);
    assert_eq!(refused.code, 3, "{refused:#?}");
    assert!(
        refused.stderr.contains(
            "\nerror: stage `local` is locked by pid 4242 on host `build-7` (`barkctl deploy`, since 2026-12-03T12:00:00.000Z)"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("its lock expires at "),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("waiting for the lock"),
        "{}",
        refused.stderr
    );
    // Nothing was deployed, and the holder's lock is untouched.
    assert!(
        !refused.stderr.contains("hello-local-queue"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        held(&rt, &endpoint, "local").map(|h| h.holder),
        Some(other.clone())
    );

    // Destroy honours the same lock.
    let destroy = with_endpoint(&[
        "destroy",
        "--stage",
        "local",
        "--yes",
        "--lock-timeout",
        "0",
    ]);
    assert_eq!(destroy.code, 3, "{destroy:#?}");
    assert!(
        destroy
            .stderr
            .contains("locked by pid 4242 on host `build-7`"),
        "{}",
        destroy.stderr
    );

    // Released, the same deploy goes through.
    assert!(rt.block_on(holding.release()));
    with_endpoint(&["deploy", "--stage", "local", "--lock-timeout", "0"]).assert_ok();
    assert_eq!(held(&rt, &endpoint, "local"), None);
}

/// The toolkit stack as barkctl made it before the lock table existed.
async fn create_old_toolkit(endpoint: &str) {
    let mut template = barkctl::deploy::assets::toolkit_template("hello");
    template["Resources"]
        .as_object_mut()
        .expect("resources")
        .remove("LockTable");
    template["Outputs"]
        .as_object_mut()
        .expect("outputs")
        .remove("LockTableName");
    let cfn = aws_sdk_cloudformation::Client::new(&sdk(endpoint).await);
    let mut call = cfn
        .create_stack()
        .stack_name("barkctl-hello-toolkit")
        .template_body(template.to_string());
    for (k, v) in barkctl::deploy::assets::toolkit_tags("hello") {
        call = call.tags(
            aws_sdk_cloudformation::types::Tag::builder()
                .key(k)
                .value(v)
                .build(),
        );
    }
    call.send().await.expect("CreateStack");
}

async fn toolkit_resources(endpoint: &str) -> Vec<String> {
    let cfn = aws_sdk_cloudformation::Client::new(&sdk(endpoint).await);
    let out = cfn
        .describe_stack_resources()
        .stack_name("barkctl-hello-toolkit")
        .send()
        .await
        .expect("DescribeStackResources");
    let mut ids: Vec<String> = out
        .stack_resources()
        .iter()
        .filter_map(|r| r.logical_resource_id().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_toolkit_stack_from_before_the_lock_gains_its_table_on_the_next_deploy() {
    let rt = runtime();
    // A local stage: the emulator's direct path.
    let emu = Emulator::start();
    let (_tmp, project) = harness::copy_project(&harness::repo_root().join("examples/hello"));
    rt.block_on(create_old_toolkit(&emu.url()));
    assert_eq!(rt.block_on(toolkit_resources(&emu.url())), ["AssetsBucket"]);
    run(
        &project,
        &["deploy", "--stage", "local", "--endpoint-url", &emu.url()],
    )
    .assert_ok();
    assert_eq!(
        rt.block_on(toolkit_resources(&emu.url())),
        ["AssetsBucket", "LockTable"]
    );
    assert_eq!(held(&rt, &emu.url(), "local"), None);

    // An AWS stage: the toolkit's update goes through a change set.
    let proxy = Proxy::start();
    let (_tmp2, project) = hello(&proxy);
    rt.block_on(create_old_toolkit(&proxy.url()));
    let updated = run(&project, &["deploy", "--stage", "ci", "--yes"]);
    updated.assert_ok();
    assert!(
        updated.stderr.contains("barkctl-hello-toolkit updated"),
        "{}",
        updated.stderr
    );
    assert_eq!(
        rt.block_on(toolkit_resources(&proxy.url())),
        ["AssetsBucket", "LockTable"]
    );
    assert_eq!(held(&rt, &proxy.url(), "ci"), None);
}
