//! `barkctl invoke` and `barkctl dev` on a moto server of their own: the
//! deployed bundles run for real behind the local Lambda runtime.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::deploy::Emulator;
use super::harness::{self, repo_root, Run};

/// The ticker example in place (its function crate is a member of this
/// workspace); every command talks to `endpoint`.
pub(super) struct Project {
    pub root: PathBuf,
    pub endpoint: String,
}

impl Project {
    pub fn ticker(endpoint: String) -> Self {
        Project {
            root: repo_root().join("examples").join("ticker"),
            endpoint,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = harness::barkctl(&self.root);
        cmd.args(args)
            .args(["--endpoint-url", &self.endpoint])
            .env("CI", "1")
            .env("BARKCTL_CARGO_PROFILE", "dev")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .env_remove("RUST_BACKTRACE");
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            cmd.env("CARGO_TARGET_DIR", repo_root().join("target"));
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("barkctl runs"))
    }
}

/// Tests that run the ticker example in place share its `.barkctl/dev/local.json`
/// (a running `dev` there takes every `invoke` of the project) and its sources
/// (the watch test edits one): they take turns.
static TICKER_IN_PLACE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ticker_turn() -> std::sync::MutexGuard<'static, ()> {
    TICKER_IN_PLACE.lock().unwrap_or_else(|e| e.into_inner())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn invoke_runs_the_deployed_function_and_reports_failures_like_lambda() {
    let _turn = ticker_turn();
    let emu = Emulator::start();
    let p = Project::ticker(emu.url());
    p.run(&["deploy", "--stage", "local"]).assert_ok();

    let ok = p.run(&[
        "invoke",
        "clock.tick",
        "--stage",
        "local",
        "--payload",
        r#"{"x":1}"#,
    ]);
    ok.assert_ok();
    let answer = json(&ok.stdout);
    assert_eq!(answer["received"]["x"], 1, "{answer}");
    assert_eq!(answer["function"], "ticker-local-clock-tick");
    // The deployed environment reaches the process.
    assert_eq!(answer["greeting"], "hello from ticker-local-clock");

    // Timeout 2 s: killed and reported as Lambda words it; the next call works.
    let started = Instant::now();
    let slow = p.run(&[
        "invoke",
        "tick",
        "--stage",
        "local",
        "--payload",
        r#"{"sleep":6}"#,
    ]);
    assert_eq!(slow.code, 3, "{slow:#?}");
    assert!(
        slow.stderr
            .contains("Sandbox.Timedout: Task timed out after 2 seconds"),
        "{}",
        slow.stderr
    );
    assert!(!slow.stdout.contains("slept"), "{}", slow.stdout);
    assert!(started.elapsed() >= Duration::from_secs(2));
    let again = p.run(&[
        "invoke",
        "tick",
        "--stage",
        "local",
        "--payload",
        r#"{"sleep":0}"#,
    ]);
    again.assert_ok();
    assert_eq!(json(&again.stdout)["slept"], 0.0);

    let panic = p.run(&[
        "invoke",
        "tick",
        "--stage",
        "local",
        "--payload",
        r#"{"panic":"boom"}"#,
    ]);
    assert_eq!(panic.code, 3, "{panic:#?}");
    assert!(
        panic.stderr.contains("asked to panic: boom"),
        "{}",
        panic.stderr
    );

    let fail = p.run(&[
        "invoke",
        "tick",
        "--stage",
        "local",
        "--payload",
        r#"{"fail":"why"}"#,
    ]);
    assert_eq!(fail.code, 3, "{fail:#?}");
    assert!(
        fail.stderr.contains("asked to fail: why"),
        "{}",
        fail.stderr
    );

    // Exits before its first /next: exit 3 with what it wrote to stderr.
    let broken = p.run(&["invoke", "clock.broken", "--stage", "local"]);
    assert_eq!(broken.code, 3, "{broken:#?}");
    assert!(
        broken.stderr.contains("Runtime.ExitError")
            && broken.stderr.contains("EXIT_AT_INIT is set, exiting"),
        "{}",
        broken.stderr
    );

    let payload = p.root.join(".barkctl").join("payload-test.json");
    harness::write(&payload, r#"{"from": "a file"}"#);
    let from_file = p.run(&[
        "invoke",
        "ticker-local-clock-tick",
        "--stage",
        "local",
        "--payload",
        &format!("@{}", payload.display()),
    ]);
    from_file.assert_ok();
    assert_eq!(json(&from_file.stdout)["received"]["from"], "a file");

    // Regression: a relative `--project` left the fetched binary's path relative
    // to a folder the instance does not run in.
    let mut relative = p.command(&["invoke", "tick", "--stage", "local"]);
    relative
        .current_dir(repo_root())
        .args(["--project", "examples/ticker"]);
    Run::from(relative.output().expect("barkctl runs")).assert_ok();

    p.run(&["invoke", "nope", "--stage", "local"])
        .assert_invalid(&["no deployed function `nope`", "clock.tick", "clock.broken"]);
    p.run(&[
        "invoke",
        "tick",
        "--stage",
        "local",
        "--payload",
        r#"{"a": x}"#,
    ])
    .assert_invalid(&["not valid JSON at byte offset 6"]);
}

#[test]
fn invoke_on_a_stage_that_is_not_deployed_says_so() {
    let _turn = ticker_turn();
    let emu = Emulator::start();
    let p = Project::ticker(emu.url());
    let run = p.run(&["invoke", "tick", "--stage", "local"]);
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(
        run.stderr.contains("is not deployed on the emulator")
            && run.stderr.contains("barkctl deploy --stage local"),
        "{}",
        run.stderr
    );
    let dev_stage = p.run(&["invoke", "tick", "--stage", "dev"]);
    dev_stage.assert_invalid(&["not a local stage"]);
}

/// A running `barkctl dev` whose stderr lines are collected.
pub(super) struct Dev {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Dev {
    pub fn start(p: &Project, args: &[&str]) -> Dev {
        let mut cmd = p.command(&[&["dev", "--stage", "local"], args].concat());
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("barkctl dev starts");
        let stderr = child.stderr.take().expect("stderr");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let dev = Dev { child, lines };
        dev.wait_for("ready: Ctrl-C stops", Duration::from_secs(120));
        dev
    }

    pub fn text(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Wait until a line contains `needle`; the whole output on failure.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            assert!(
                started.elapsed() < limit,
                "no line with {needle:?} within {limit:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pids of every instance process this dev started (`started (pid N)` lines).
    pub fn instance_pids(&self) -> Vec<u32> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| l.split("started (pid ").nth(1))
            .filter_map(|rest| rest.trim_end_matches(')').parse().ok())
            .collect()
    }

    /// SIGINT, as Ctrl-C; the exit code.
    pub fn interrupt(mut self) -> (i32, Vec<u32>, String) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let started = Instant::now();
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code().unwrap_or(-1);
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                break -1;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread may still be draining the last lines.
        std::thread::sleep(Duration::from_millis(200));
        (code, self.instance_pids(), self.text())
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn dev_serves_invokes_warm_and_leaves_nothing_running_after_ctrl_c() {
    let _turn = ticker_turn();
    let emu = Emulator::start();
    let p = Project::ticker(emu.url());
    // Not deployed yet: dev deploys the stage first, as deploy would.
    let dev = Dev::start(&p, &[]);
    assert!(
        dev.text()
            .contains("is not deployed on the emulator: deploying it first"),
        "{}",
        dev.text()
    );
    // Through the running dev: the same instance answers twice (warm).
    for n in 1..=2 {
        let run = p.run(&[
            "invoke",
            "tick",
            "--stage",
            "local",
            "--payload",
            &format!(r#"{{"n":{n}}}"#),
        ]);
        run.assert_ok();
        assert_eq!(json(&run.stdout)["received"]["n"], n);
    }
    let started: Vec<String> = dev
        .text()
        .lines()
        .filter(|l| l.contains("[clock-tick] instance") && l.contains("started"))
        .map(str::to_string)
        .collect();
    assert_eq!(started.len(), 1, "one cold start, then warm: {started:?}");
    dev.wait_for("[clock-tick] REPORT RequestId", Duration::from_secs(5));

    // Overlapping invocations get instances of their own (up to --concurrency).
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let cmd = p.command(&[
                "invoke",
                "tick",
                "--stage",
                "local",
                "--payload",
                r#"{"sleep":1.5}"#,
            ]);
            std::thread::spawn(move || {
                let mut cmd = cmd;
                Run::from(cmd.output().expect("barkctl runs"))
            })
        })
        .collect();
    for c in calls {
        c.join().expect("thread").assert_ok();
    }
    let instances = dev
        .text()
        .lines()
        .filter(|l| l.contains("[clock-tick] instance") && l.contains("started"))
        .count();
    assert_eq!(
        instances,
        3,
        "one warm + two more for the overlap:\n{}",
        dev.text()
    );

    // The ENABLED rate(1 minute) rule fires a minute after dev started, with
    // EventBridge's scheduled event (the function logs its `time`).
    let fired = dev.wait_for("fired clock-tick", Duration::from_secs(80));
    assert!(fired.contains(": ok in"), "{fired}");
    dev.wait_for(
        "[clock-tick] tick: scheduled event for",
        Duration::from_secs(5),
    );

    let (code, pids, text) = dev.interrupt();
    assert_eq!(code, 0, "{text}");
    assert!(!pids.is_empty(), "{text}");
    for pid in pids {
        assert!(
            !alive(pid),
            "instance pid {pid} still runs after Ctrl-C:\n{text}"
        );
    }
    assert!(
        !p.root.join(".barkctl/dev/local.json").exists(),
        "the dev record is removed on exit"
    );
}

/// SQL through Debian's `psql` (a client nobody here wrote), as the local
/// server's superuser over 127.0.0.1; the output rows, unaligned.
fn psql(port: u16, db: &str, sql: &str) -> String {
    let psql = ["/usr/bin/psql", "psql"]
        .into_iter()
        .find(|p| !p.contains('/') || Path::new(p).is_file())
        .unwrap_or("psql");
    let out = Command::new(psql)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Tests that run BarkBase in place (the repository's own `.barkctl/`: one
/// `barkctl dev` record and one PostgreSQL server) take turns.
pub(super) static BARKBASE_IN_PLACE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// BarkBase itself (in place, its own emulator): the database stack's functions
/// run against the real PostgreSQL barkctl starts, with the credentials of the
/// stack's secret; the metrics stream reaches the stream processor under `dev`.
#[test]
fn barkbase_functions_run_against_a_real_postgres_and_the_metrics_stream() {
    use barkctl::local::postgres::{self, PgStatus};
    let _one = BARKBASE_IN_PLACE.lock().unwrap_or_else(|e| e.into_inner());
    let emu = Emulator::start();
    let p = Project {
        root: repo_root(),
        endpoint: emu.url(),
    };
    let pg_was_running = matches!(postgres::status(&p.root), Ok(PgStatus::Running(_)));
    p.run(&["deploy", "--stage", "local"]).assert_ok();

    let health = p.run(&["invoke", "database.healthcheck", "--stage", "local"]);
    health.assert_ok();
    let answer = json(&health.stdout);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["database"]["connected"], true, "{answer}");
    assert!(answer["database"]["serverTime"].is_string(), "{answer}");
    let Ok(PgStatus::Running(server)) = postgres::status(&p.root) else {
        panic!("invoke left no PostgreSQL server running");
    };
    // A clean database: the migration job must create the schema itself.
    psql(
        server.port,
        "postgres",
        "DROP DATABASE IF EXISTS barkbase WITH (FORCE)",
    );

    let first = p.run(&["invoke", "jobs.migration", "--stage", "local"]);
    first.assert_ok();
    assert_eq!(
        json(&first.stdout)["applied"].as_array().map(Vec::len),
        Some(4),
        "{}",
        first.stdout
    );
    let second = p.run(&["invoke", "jobs.migration", "--stage", "local"]);
    second.assert_ok();
    assert_eq!(
        json(&second.stdout)["applied"],
        serde_json::json!([]),
        "{}",
        second.stdout
    );
    assert_eq!(
        psql(
            server.port,
            "barkbase",
            "SELECT count(*) FROM schema_migrations"
        ),
        "4"
    );

    psql(
        server.port,
        "barkbase",
        "INSERT INTO tenants (name, slug) VALUES ('T', 't'); \
         INSERT INTO properties (tenant_id, name, last_activity_at, marked_for_archival) \
         SELECT 1, 'old ' || g, now() - interval '400 days', false FROM generate_series(1, 4) g; \
         INSERT INTO properties (tenant_id, name, marked_for_archival) VALUES (1, 'marked', true), (1, 'fresh', false);",
    );
    let archival = p.run(&["invoke", "jobs.property-archival", "--stage", "local"]);
    archival.assert_ok();
    assert_eq!(json(&archival.stdout)["archived"], 5, "{}", archival.stdout);
    assert_eq!(
        psql(
            server.port,
            "barkbase",
            "SELECT string_agg(name, ',' ORDER BY id) FROM properties WHERE archived_at IS NULL"
        ),
        "fresh"
    );

    // Under dev: a metrics write reaches the stream processor (batching window
    // 5 s); the disabled migration rule never fires.
    let dev = Dev::start(&p, &["--port", "0"]);
    let sdk = tokio::runtime::Runtime::new()
        .expect("rt")
        .block_on(super::deploy::sdk(&p.endpoint));
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let put = std::time::Instant::now();
    tokio::runtime::Runtime::new().expect("rt").block_on(async {
        ddb.put_item()
            .table_name("barkbase-local-experience-metrics")
            .item(
                "metricId",
                aws_sdk_dynamodb::types::AttributeValue::S("occupancy".into()),
            )
            .item(
                "timestamp",
                aws_sdk_dynamodb::types::AttributeValue::N("1764684000".into()),
            )
            .item(
                "tenantId",
                aws_sdk_dynamodb::types::AttributeValue::S("t1".into()),
            )
            .item(
                "value",
                aws_sdk_dynamodb::types::AttributeValue::N("42".into()),
            )
            .send()
            .await
            .expect("put item");
    });
    dev.wait_for(
        "stream -> experience-stream-processor: batch of 1 record(s)",
        Duration::from_secs(7 + 5),
    );
    eprintln!(
        "metrics PutItem -> stream processor batch: {:?}",
        put.elapsed()
    );

    // The server stopped: the health check still answers, connected:false.
    postgres::down(&p.root).expect("stop postgres");
    let down = p.run(&["invoke", "database.healthcheck", "--stage", "local"]);
    down.assert_ok();
    let answer = json(&down.stdout);
    assert_eq!(answer["database"]["connected"], false, "{answer}");
    assert!(answer["database"]["error"].is_string(), "{answer}");

    let (code, pids, text) = dev.interrupt();
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains("barkbase-local-migration-schedule fired"),
        "{text}"
    );
    assert!(
        text.contains("barkbase-local-migration-schedule cron(0 4 1 * ? *): disabled"),
        "{text}"
    );
    for pid in pids {
        assert!(!alive(pid), "instance pid {pid} still runs:\n{text}");
    }
    if pg_was_running {
        let _ = postgres::up(&p.root, &|_| {});
    }
}

/// Puts a file back as it was when dropped (the watch test edits a source file).
struct Restore {
    path: PathBuf,
    text: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.text);
    }
}

#[test]
fn dev_watch_rebuilds_an_edited_function_and_swaps_its_binary() {
    let _turn = ticker_turn();
    let emu = Emulator::start();
    let p = Project::ticker(emu.url());
    p.run(&["deploy", "--stage", "local"]).assert_ok();
    let dev = Dev::start(&p, &["--watch"]);
    let before = p.run(&["invoke", "clock.tick", "--stage", "local"]);
    before.assert_ok();
    assert_eq!(json(&before.stdout)["hello"], "world");

    let main = p.root.join("lambdas/ticker-tick/src/main.rs");
    let text = std::fs::read_to_string(&main).expect("read main.rs");
    let _restore = Restore {
        path: main.clone(),
        text: text.clone(),
    };
    assert!(text.contains(r#""hello": "world","#));
    std::fs::write(
        &main,
        text.replace(r#""hello": "world","#, r#""hello": "watched","#),
    )
    .expect("edit main.rs");
    let swapped = dev.wait_for("watch: rebuilt in", Duration::from_secs(240));
    assert!(
        swapped.contains("clock.tick") && swapped.contains("clock.broken"),
        "{swapped}"
    );
    let after = p.run(&["invoke", "clock.tick", "--stage", "local"]);
    after.assert_ok();
    assert_eq!(json(&after.stdout)["hello"], "watched", "{}", dev.text());
    let (code, pids, text) = dev.interrupt();
    assert_eq!(code, 0, "{text}");
    for pid in pids {
        assert!(!alive(pid), "instance pid {pid} still runs");
    }
}
