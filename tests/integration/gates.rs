//! The broadening gate of `barkctl deploy` against the emulator, on a stage that
//! is NOT `local: true` (a `ci` stage whose `endpoint_url` is the emulator), so the
//! gate applies as it does on AWS: an added IAM statement without `--yes` and
//! without a TTY is refused with exit 2 before any mutating call, and deployed with
//! `--yes`. The `local` stage of the same project is exempt.
//!
//! Only the `queue` stack of `examples/hello` is deployed: moto's CREATE change
//! sets leave a stack without outputs, which would starve `alerts` of `QueueArn`.

use std::path::Path;
use std::process::Stdio;

use super::deploy::{sdk, Emulator};
use super::harness::{self, Run};

const QUEUE: &str = "hello-ci-queue";

/// A queue policy the first deploy does not have: one new IAM statement.
const POLICY: &str = r#"
  QueuePolicy:
    Type: AWS::SQS::QueuePolicy
    Properties:
      Queues: [!Ref Queue]
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Sid: AllowPublisher
            Effect: Allow
            Principal:
              Service: events.amazonaws.com
            Action: sqs:SendMessage
            Resource: !GetAtt Queue.Arn
"#;

fn barkctl(project: &Path, endpoint: &str, args: &[&str], call_log: &Path) -> Run {
    let out = harness::barkctl(project)
        .args(args)
        .env("CI", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env_remove("AWS_PROFILE")
        .env("BARKCTL_CALL_LOG", call_log)
        // No TTY: stdin is not a terminal (stderr is a pipe under `output()`).
        .stdin(Stdio::null())
        .output()
        .expect("barkctl runs");
    Run::from(out)
}

fn mutating(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|c| !barkctl::aws::is_read_only(c))
        .map(str::to_string)
        .collect()
}

async fn deployed_template(endpoint: &str, stack_name: &str) -> String {
    let conf = sdk(endpoint).await;
    aws_sdk_cloudformation::Client::new(&conf)
        .get_template()
        .stack_name(stack_name)
        .send()
        .await
        .expect("get template")
        .template_body()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn gates_an_added_iam_statement_on_a_non_local_stage() {
    let emu = Emulator::start();
    let endpoint = emu.url();
    let (_tmp, project) = harness::copy_project(&harness::repo_root().join("examples/hello"));
    let project_yaml = project.join("stacks/project.yaml");
    let mut text = std::fs::read_to_string(&project_yaml).expect("read");
    // Not `local: true`: change sets are executed and the gate applies.
    text.push_str(&format!(
        "  ci:\n    endpoint_url: {endpoint}\n    region: us-east-1\n"
    ));
    // The exempt local stage, on this test's emulator.
    text = text.replace("http://127.0.0.1:4566", &endpoint);
    std::fs::write(&project_yaml, text).expect("write");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let log = |name: &str| project.join(format!("calls-{name}.log"));

    // 1. First deploy, approved.
    let first = barkctl(
        &project,
        &endpoint,
        &["deploy", "--stage", "ci", "queue", "--yes"],
        &log("first"),
    );
    first.assert_ok();
    assert!(first.stderr.contains("created"), "{}", first.stderr);
    let before = rt.block_on(deployed_template(&endpoint, QUEUE));
    assert!(!before.contains("QueuePolicy"), "{before}");

    // 2. The template gains an IAM statement.
    let template = project.join("templates/queue.yaml.hbs");
    let t = std::fs::read_to_string(&template).expect("read");
    assert!(t.contains("\nOutputs:"), "{t}");
    std::fs::write(
        &template,
        t.replacen("\nOutputs:", &format!("{POLICY}\nOutputs:"), 1),
    )
    .expect("write");

    // `--dry-run` shows the addition and what the gate will ask.
    let dry = barkctl(
        &project,
        &endpoint,
        &["deploy", "--stage", "ci", "queue", "--dry-run"],
        &log("dry"),
    );
    dry.assert_ok();
    assert!(
        dry.stdout.contains(
            "+ IAM QueuePolicy: Allow sqs:SendMessage on ${Queue.Arn} to Service:events.amazonaws.com"
        ),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("security: hello-ci-queue broadens"),
        "{}",
        dry.stdout
    );
    assert_eq!(mutating(&log("dry")), Vec::<String>::new());

    // 3. No --yes, no TTY: refused with exit 2, naming the stack and the statement,
    // with no mutating call; the deployed template is as it was.
    let refused = barkctl(
        &project,
        &endpoint,
        &["deploy", "--stage", "ci", "queue"],
        &log("refused"),
    );
    refused.assert_invalid(&[
        "refusing to deploy `hello-ci-queue` without approval",
        "+ IAM QueuePolicy: Allow sqs:SendMessage on ${Queue.Arn} to Service:events.amazonaws.com",
        "hint: rerun with --yes to approve",
    ]);
    assert_eq!(
        mutating(&log("refused")),
        Vec::<String>::new(),
        "the refused deploy made mutating calls"
    );
    assert_eq!(rt.block_on(deployed_template(&endpoint, QUEUE)), before);

    // 4. With --yes: updated, the policy deployed.
    let approved = barkctl(
        &project,
        &endpoint,
        &["deploy", "--stage", "ci", "queue", "--yes"],
        &log("approved"),
    );
    approved.assert_ok();
    assert!(approved.stderr.contains("updated"), "{}", approved.stderr);
    let after = rt.block_on(deployed_template(&endpoint, QUEUE));
    assert!(
        after.contains("QueuePolicy") && after.contains("AllowPublisher"),
        "{after}"
    );

    // 5. Nothing new now: no --yes needed.
    let again = barkctl(
        &project,
        &endpoint,
        &["deploy", "--stage", "ci", "queue"],
        &log("again"),
    );
    again.assert_ok();
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);

    // 6. A `local: true` stage is exempt: the same grant deploys without --yes.
    let local = barkctl(
        &project,
        &endpoint,
        &["deploy", "--stage", "local", "queue"],
        &log("local"),
    );
    local.assert_ok();
    assert!(
        local.stderr.contains("hello-local-queue"),
        "{}",
        local.stderr
    );
    assert!(rt
        .block_on(deployed_template(&endpoint, "hello-local-queue"))
        .contains("AllowPublisher"));
}
