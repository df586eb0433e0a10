//! `barkctl diff` against the local emulator: a project's stacks are deployed
//! with `barkctl deploy` itself (its names, tags and parameters, no copy of
//! them here), then diffed before and after a parameter change, and the
//! change's `deploy --dry-run --json` plan is checked against what diff shows.
//! Also pins that diff is read-only: stacks, templates and change-set lists are
//! the same before and after it runs, change-set method included.

use std::path::{Path, PathBuf};

use aws_sdk_cloudformation::config::Credentials;
use serde_json::Value;

use crate::harness::{self, fixture, repo_root, Run};

/// A copy of a project with its own emulator on a free port.
/// Dropping it runs `local down`, which stops the server it started.
struct Local {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    port: u16,
}

impl Local {
    fn new((tmp, dir): (tempfile::TempDir, PathBuf)) -> Self {
        let port = harness::free_port();
        let local = Local {
            _tmp: tmp,
            dir,
            port,
        };
        local.run(&["local", "up"]).assert_ok();
        local
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &Path)]) -> Run {
        let out = harness::barkctl(&self.dir)
            .args(args)
            .envs(env.iter().copied())
            .arg("--endpoint-url")
            .arg(self.endpoint())
            .env("BARKCTL_LOCAL_PORT", self.port.to_string())
            .env("BARKCTL_TOOLS_VENV", tools_venv())
            .output()
            .expect("barkctl runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `barkctl diff --stage local …`, with every AWS call it makes appended to
    /// `calls.log` in the project (`BARKCTL_CALL_LOG`).
    fn diff(&self, extra: &[&str]) -> Run {
        let out = harness::barkctl(&self.dir)
            .args([
                "diff",
                "--stage",
                "local",
                "--endpoint-url",
                &self.endpoint(),
            ])
            .args(extra)
            .env("BARKCTL_CALL_LOG", self.dir.join("calls.log"))
            .output()
            .expect("barkctl runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The operations every diff so far made that are not reads, in order.
    fn diff_writes(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !barkctl::aws::is_read_only(l))
            .map(str::to_string)
            .collect()
    }

    async fn client(&self) -> aws_sdk_cloudformation::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        aws_sdk_cloudformation::Client::new(&sdk)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = harness::barkctl(&self.dir)
            .args(["local", "down"])
            .env("BARKCTL_TOOLS_VENV", tools_venv())
            .output();
    }
}

fn tools_venv() -> PathBuf {
    std::env::var_os("BARKCTL_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".barkctl/local/venv"))
}

/// Everything diff must leave alone: per stack its status, last update, template
/// body, parameters and change sets.
async fn snapshot(local: &Local, sc: &Scenario) -> Vec<String> {
    let cfn = local.client().await;
    let listed = cfn.list_stacks().send().await.expect("list stacks");
    let mut out: Vec<String> = listed
        .stack_summaries()
        .iter()
        .map(|s| format!("{:?} {:?}", s.stack_name(), s.stack_status()))
        .collect();
    for stack in sc.stacks {
        let name = format!("{}-local-{stack}", sc.app);
        let d = cfn
            .describe_stacks()
            .stack_name(&name)
            .send()
            .await
            .expect("describe");
        let s = &d.stacks()[0];
        let t = cfn
            .get_template()
            .stack_name(&name)
            .send()
            .await
            .expect("get template");
        let cs = cfn
            .list_change_sets()
            .stack_name(&name)
            .send()
            .await
            .expect("list change sets");
        out.push(format!(
            "{name} {:?} {:?} {:?} params={:?} change_sets={}\n{}",
            s.stack_status(),
            s.last_updated_time(),
            s.stack_id(),
            s.parameters(),
            cs.summaries().len(),
            t.template_body().unwrap_or_default()
        ));
    }
    out
}

/// One project, deployed, then one parameter changed in one stack file.
struct Scenario {
    app: &'static str,
    /// Deploy order.
    stacks: &'static [&'static str],
    changed: &'static str,
    /// Stacks that take the changed stack's outputs as parameters.
    downstream: &'static [&'static str],
    /// The edit of `stacks/<changed>.yaml`: this text becomes that.
    edit: (&'static str, &'static str),
    /// What the change does: resources of this type, each with one property
    /// path going from `old` to `new`, in place.
    resource_type: &'static str,
    resources: usize,
    path: &'static str,
    old: Value,
    new: Value,
    stateful: bool,
}

fn run_scenario(project: (tempfile::TempDir, PathBuf), sc: Scenario) {
    let local = Local::new(project);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    local.run(&["deploy", "--stage", "local"]).assert_ok();
    let before = rt.block_on(snapshot(&local, &sc));
    let name = |stack: &str| format!("{}-local-{stack}", sc.app);

    // Nothing changed: exit 0 with --fail, every stack unchanged.
    let r = local.diff(&["--fail"]);
    assert_eq!(r.code, 0, "{r:#?}");
    for stack in sc.stacks {
        assert!(
            r.stdout.contains(&format!("{}: unchanged", name(stack))),
            "{stack}: {}",
            r.stdout
        );
    }

    // A parameter changes in the project copy: only that shows.
    let file = local.dir.join(format!("stacks/{}.yaml", sc.changed));
    let text = std::fs::read_to_string(&file).expect("stack file");
    assert!(
        text.contains(sc.edit.0),
        "{} has {:?}",
        file.display(),
        sc.edit.0
    );
    std::fs::write(&file, text.replacen(sc.edit.0, sc.edit.1, 1)).expect("write");

    let r = local.diff(&["--fail"]);
    assert_eq!(r.code, 1, "{r:#?}");
    for stack in sc.stacks.iter().filter(|s| **s != sc.changed) {
        assert!(
            r.stdout.contains(&format!("{}: unchanged", name(stack))),
            "{stack}: {}",
            r.stdout
        );
    }
    let summary = format!("{}: changed ({} in place)", name(sc.changed), sc.resources);
    assert!(r.stdout.contains(&summary), "{summary}\n{}", r.stdout);
    let line = format!("{}: {} -> {}", sc.path, sc.old, sc.new);
    assert_eq!(
        r.stdout.matches(&line).count(),
        sc.resources,
        "{line}\n{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("[+]") && !r.stdout.contains("[-]"),
        "{}",
        r.stdout
    );

    // The same as one JSON document, change sets tried (moto's lack Replacement).
    // The text runs use `auto`: on moto that makes one change set per changed
    // stack (to learn it has no Replacement data), and deletes it again.
    let cs_pairs = |n: usize| {
        [
            "CloudFormation.CreateChangeSet",
            "CloudFormation.DeleteChangeSet",
        ]
        .repeat(n)
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    };
    assert_eq!(local.diff_writes(), cs_pairs(1));

    let r = local.diff(&["--method", "template"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(
        local.diff_writes(),
        cs_pairs(1),
        "the template method only reads"
    );

    let r = local.diff(&["--json", "--fail", "--method", "change-set"]);
    assert_eq!(r.code, 1, "{r:#?}");
    let doc: Value = serde_json::from_str(&r.stdout).expect("--json prints one JSON document");
    let stacks = doc["stacks"].as_array().expect("stacks");
    assert_eq!(stacks.len(), sc.stacks.len());
    for s in stacks {
        let changed = s["name"] == name(sc.changed);
        assert_eq!(
            s["status"],
            if changed { "changed" } else { "unchanged" },
            "{s:#}"
        );
        assert_eq!(s["parameters"], serde_json::json!([]), "{s:#}");
        assert_eq!(s["outputs"], serde_json::json!([]), "{s:#}");
        assert_eq!(s["security"]["iam_added"], serde_json::json!([]));
        let resources = s["resources"].as_array().expect("resources");
        if !changed {
            assert!(resources.is_empty(), "{s:#}");
            continue;
        }
        assert_eq!(resources.len(), sc.resources, "{s:#}");
        for r in resources {
            assert_eq!(r["type"], sc.resource_type);
            assert_eq!(r["change"], "modified");
            assert_eq!(r["impact"], "in_place");
            assert_eq!(r["stateful"], sc.stateful);
            let props = r["properties"].as_array().expect("properties");
            assert_eq!(props.len(), 1, "{r:#}");
            assert_eq!(props[0]["path"], sc.path);
            assert_eq!((&props[0]["old"], &props[0]["new"]), (&sc.old, &sc.new));
        }
        let notes = s["notes"].to_string();
        assert!(notes.contains("no `Replacement` data"), "{notes}");
    }

    assert_eq!(local.diff_writes(), cs_pairs(2));

    // Deploy's own plan for the same state agrees: the changed stack is to be
    // updated for its template (stack params render into it); a stack taking
    // its outputs waits for them (they may change), any other is skipped.
    let r = local.run(&["deploy", "--stage", "local", "--dry-run", "--json"]);
    r.assert_ok();
    let plan: Value = serde_json::from_str(&r.stdout).expect("--dry-run --json prints JSON");
    let planned = plan["stacks"].as_array().expect("plan stacks");
    assert_eq!(planned.len(), sc.stacks.len(), "{plan:#}");
    let changed_wave = planned
        .iter()
        .find(|p| p["stack_name"] == name(sc.changed))
        .map(|p| p["wave"].clone())
        .expect("the changed stack is planned");
    for (p, stack) in planned.iter().zip(sc.stacks) {
        assert_eq!(p["stack_name"], name(stack), "deploy order: {plan:#}");
        if *stack == sc.changed {
            assert_eq!(p["action"], "update", "{p:#}");
            assert_eq!(p["what"], serde_json::json!(["template"]), "{p:#}");
        } else if sc.downstream.contains(stack) {
            assert!(p["wave"].as_u64() > changed_wave.as_u64(), "{plan:#}");
            assert_eq!(p["action"], "update", "{p:#}");
            assert_eq!(
                p["what"],
                serde_json::json!(["parameters (pending upstream outputs)"]),
                "{p:#}"
            );
        } else {
            assert_eq!(p["action"], "skip", "{p:#}");
        }
    }

    // Read-only (diff and the dry run): the stacks, their templates and
    // change-set lists are as before.
    let after = rt.block_on(snapshot(&local, &sc));
    assert_eq!(before, after);

    // Deploying the change updates that stack alone (its outputs stay the same,
    // so the stacks taking them find nothing to do), and diff agrees afterwards.
    let plan_log = local.dir.join("plans.log");
    let r = local.run_with(
        &["deploy", "--stage", "local"],
        &[("BARKCTL_PLAN_LOG", &plan_log)],
    );
    r.assert_ok();
    // The plan deploy executed is the one the dry run printed: the same value
    // for each stack whose inputs were all known; a stack that waited for
    // upstream outputs has them filled in when its wave starts (unchanged: skip).
    let executed: Vec<Value> = std::fs::read_to_string(&plan_log)
        .expect("BARKCTL_PLAN_LOG written")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON plan a line"))
        // barkctl's toolkit stack is deployed through the same run first.
        .filter(|e| e["stack"] != "toolkit")
        .collect();
    assert_eq!(executed.len(), planned.len(), "{executed:#?}");
    for dry in planned {
        let done = executed
            .iter()
            .find(|e| e["stack_name"] == dry["stack_name"])
            .unwrap_or_else(|| panic!("{} executed: {executed:#?}", dry["stack_name"]));
        let pending = dry["what"].as_array().is_some_and(|w| {
            w.iter()
                .any(|x| x.as_str().is_some_and(|x| x.contains("pending")))
        });
        if pending {
            let mut filled = dry.clone();
            filled["action"] = serde_json::json!("skip");
            filled["reason"] = serde_json::json!("unchanged");
            filled.as_object_mut().map(|o| o.remove("what"));
            assert_eq!(done, &filled, "completed at its wave");
        } else {
            assert_eq!(done, dry, "executed as planned");
        }
    }
    for stack in sc.stacks {
        let want = if *stack == sc.changed {
            "updated"
        } else {
            "unchanged"
        };
        assert!(
            r.stderr.lines().any(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(name(stack).as_str()) && words.next() == Some(want)
            }),
            "{stack} {want}:\n{}",
            r.stderr
        );
    }
    let r = local.diff(&["--fail", "--method", "template"]);
    assert_eq!(r.code, 0, "{r:#?}");
}

#[test]
fn diff_of_the_hello_example_is_exact_and_read_only() {
    run_scenario(
        harness::copy_project(&repo_root().join("examples/hello")),
        Scenario {
            app: "hello",
            stacks: &["queue", "alerts"],
            changed: "queue",
            downstream: &["alerts"],
            edit: (
                "visibility_timeout_seconds: 60",
                "visibility_timeout_seconds: 90",
            ),
            resource_type: "AWS::SQS::Queue",
            resources: 1,
            path: "Properties.VisibilityTimeout",
            old: serde_json::json!(60),
            new: serde_json::json!(90),
            stateful: false,
        },
    );
}
/// A stateful resource, and a downstream stack that takes the changed stack's
/// outputs as parameters (unchanged: diff resolves them from the deployed stack).
#[test]
fn diff_of_a_stateful_change_with_a_downstream_stack_is_exact_and_read_only() {
    let (tmp, dir) = harness::copy_project(&fixture("minimal"));
    let project = dir.join("stacks/project.yaml");
    let text = std::fs::read_to_string(&project).expect("project.yaml");
    std::fs::write(
        &project,
        text + "  local:\n    local: true\n    endpoint_url: http://127.0.0.1:4566\n    region: us-east-1\n",
    )
    .expect("write project.yaml");
    run_scenario(
        (tmp, dir),
        Scenario {
            app: "mini",
            stacks: &["store", "api"],
            changed: "store",
            downstream: &["api"],
            edit: (
                "table_suffix: items",
                "table_suffix: items\n  retention_days: 14",
            ),
            resource_type: "AWS::Logs::LogGroup",
            resources: 1,
            path: "Properties.RetentionInDays",
            old: serde_json::json!(7),
            new: serde_json::json!(14),
            stateful: true,
        },
    );
}

#[test]
fn diff_exits_2_on_bad_input_and_3_when_aws_cannot_be_reached() {
    let (_tmp, dir) = harness::copy_project(&repo_root().join("examples/hello"));
    let r = harness::run(&dir, &["diff", "--stage", "local", "nosuch"]);
    r.assert_invalid(&["unknown stack `nosuch`"]);

    // A port nothing listens on: the error names the stack and says what to do.
    let port = harness::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    // A non-local stage: on `local` barkctl would start the emulator there.
    let out = harness::barkctl(&dir)
        .args([
            "diff",
            "--stage",
            "dev",
            "--endpoint-url",
            &endpoint,
            "--fail",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("barkctl runs");
    let r = harness::Run::from(out);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(
        r.stderr
            .starts_with("error: cannot describe stack `hello-dev-"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("barkctl local up"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}
