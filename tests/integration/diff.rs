//! `barkctl diff` against the local emulator: a project's stacks are deployed
//! (synthesized by barkctl, created through the CloudFormation API with the
//! parameters deploy passes), then diffed before and after a parameter change.
//! Also pins that diff is read-only: stacks, templates and change-set lists are
//! the same before and after it runs, change-set method included.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::config::Credentials;
use aws_sdk_cloudformation::types::{Capability, Parameter};
use serde_json::Value;

use crate::harness::{self, repo_root, Run};

const BUCKET: &str = "barkctl-diff-test-assets";

/// A copy of the BarkBase project with its own emulator on a free port.
/// Dropping it runs `local down`, which stops the server it started.
struct Local {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    port: u16,
}

impl Local {
    fn new((tmp, dir): (tempfile::TempDir, PathBuf)) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
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
        let out = harness::barkctl(&self.dir)
            .args(args)
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

    async fn s3(&self) -> aws_sdk_s3::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
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

/// `PropertyArchival` from `property-archival`, as barkctl names parameters.
fn pascal(s: &str) -> String {
    s.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Create every stack from `barkctl synth` output in deploy order, filling the
/// parameters barkctl adds: upstream outputs by name, the asset bucket, code keys
/// of zips that exist in the bucket (moto's Lambda reads them).
async fn deploy(local: &Local, synth_dir: &Path, sc: &Scenario) {
    let s3 = local.s3().await;
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    s3.put_object()
        .bucket(BUCKET)
        .key("bundles/test.zip")
        .body(minimal_zip().into())
        .send()
        .await
        .expect("put bundle");
    let cfn = local.client().await;
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    for stack in sc.stacks {
        let name = format!("{}-local-{stack}", sc.app);
        let body = std::fs::read_to_string(synth_dir.join(format!("{name}.template.json")))
            .expect("synthesized template");
        let template: Value = serde_json::from_str(&body).expect("template JSON");
        let mut params = Vec::new();
        for p in template["Parameters"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let value = if p == "AssetsBucket" {
                BUCKET.to_string()
            } else if p.ends_with("CodeKey") {
                "bundles/test.zip".to_string()
            } else if let Some(v) = outputs.get(&p) {
                v.clone()
            } else {
                // A template parameter with a Default: deploy passes nothing.
                continue;
            };
            params.push(
                Parameter::builder()
                    .parameter_key(p)
                    .parameter_value(value)
                    .build(),
            );
        }
        // The tags deploy sets: barkctl's own plus the project's.
        let tags = [
            ("barkctl:app", sc.app.to_string()),
            ("barkctl:stage", "local".to_string()),
            ("barkctl:stack", stack.to_string()),
            ("project", sc.app.to_string()),
        ]
        .map(|(k, v)| {
            aws_sdk_cloudformation::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
        });
        cfn.create_stack()
            .stack_name(&name)
            .set_tags(Some(tags.to_vec()))
            .template_body(body)
            .set_parameters(Some(params))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = cfn
                .describe_stacks()
                .stack_name(&name)
                .send()
                .await
                .expect("describe");
            let s = &d.stacks()[0];
            let status = s
                .stack_status()
                .map(|x| x.as_str().to_string())
                .unwrap_or_default();
            if status == "CREATE_COMPLETE" {
                for o in s.outputs() {
                    if let (Some(k), Some(v)) = (o.output_key(), o.output_value()) {
                        outputs.insert(format!("{}{k}", pascal(stack)), v.to_string());
                    }
                }
                break;
            }
            assert!(
                status.ends_with("IN_PROGRESS") && Instant::now() < deadline,
                "{name}: {status}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The smallest valid zip archive (an empty one): moto stores it as the code.
fn minimal_zip() -> Vec<u8> {
    let mut z = vec![0x50, 0x4b, 0x05, 0x06];
    z.extend_from_slice(&[0u8; 18]);
    z
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
    /// `barkctl deploy --stage local`, else the stacks are created directly from
    /// `barkctl synth` output (projects whose bundles cannot be built in a temp
    /// copy: their lambda sources are not copied).
    deploy_with_barkctl: bool,
    /// Deploy order.
    stacks: &'static [&'static str],
    changed: &'static str,
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
    if sc.deploy_with_barkctl {
        local.run(&["deploy", "--stage", "local"]).assert_ok();
    } else {
        let synth = local.dir.join("synth-out");
        local
            .run(&[
                "synth",
                "--stage",
                "local",
                "--out",
                synth.to_str().expect("utf-8 path"),
            ])
            .assert_ok();
        rt.block_on(deploy(&local, &synth, &sc));
    }
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

    // Read-only: the stacks, their templates and change-set lists are as before.
    let after = rt.block_on(snapshot(&local, &sc));
    assert_eq!(before, after);
}

#[test]
fn diff_of_the_hello_example_is_exact_and_read_only() {
    run_scenario(
        harness::copy_project(&repo_root().join("examples/hello")),
        Scenario {
            app: "hello",
            deploy_with_barkctl: true,
            stacks: &["queue", "alerts"],
            changed: "queue",
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
#[test]
fn diff_of_barkbase_is_exact_and_read_only() {
    run_scenario(
        harness::copy_barkbase(),
        Scenario {
            app: "barkbase",
            deploy_with_barkctl: false,
            stacks: &["network", "database", "realtime", "jobs", "experience"],
            changed: "realtime",
            edit: ("\nparams:\n", "\nparams:\n  log_retention_days: 14\n"),
            resource_type: "AWS::Logs::LogGroup",
            // connect, disconnect, message, broadcast, sweeper
            resources: 5,
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
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
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
