//! `barkctl local up|down|status` against a real moto server on a free port,
//! and the moto extension: resource types moto's CloudFormation skips are
//! created through each service's backend and visible through its own API.
//!
//! The emulator runs from the tools venv (`BARKCTL_TOOLS_VENV`, which
//! scripts/test.sh exports, else the repository's `.barkctl/local/venv`), so no
//! test pays for a pip install when that venv has the pinned moto.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use aws_sdk_cloudformation::config::Credentials;
use serde_json::json;

use crate::harness::{self, repo_root, Run};

/// A temp project with its own emulator port. Dropping it runs `local down`,
/// which stops the server it started (and only that one).
struct Emulator {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    port: u16,
}

impl Emulator {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("project");
        harness::write(
            &dir.join("stacks/project.yaml"),
            "app: demo\nregion: us-east-1\nstages:\n  local: { local: true }\n",
        );
        Emulator {
            _tmp: tmp,
            dir,
            port: free_port(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = harness::barkctl(&self.dir);
        cmd.args(args)
            .env("BARKCTL_LOCAL_PORT", self.port.to_string())
            .env("BARKCTL_TOOLS_VENV", tools_venv());
        let out = cmd.output().expect("barkctl runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join(".barkctl/local/moto.pid")
    }

    /// `local up`, checked; the server's pid.
    fn up(&self) -> u32 {
        let r = self.run(&["local", "up"]);
        r.assert_ok();
        running_pid(&r.stdout, &self.endpoint())
    }

    async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.run(&["local", "down"]);
    }
}

fn tools_venv() -> PathBuf {
    std::env::var_os("BARKCTL_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".barkctl/local/venv"))
}

use super::harness::free_port;

/// The pid in `running: pid N at <endpoint> (log: ...)`.
fn running_pid(stdout: &str, endpoint: &str) -> u32 {
    let line = stdout.trim();
    let rest = line
        .strip_prefix("running: pid ")
        .unwrap_or_else(|| panic!("not a running line: {line:?}"));
    let (pid, tail) = rest.split_once(' ').expect("pid then endpoint");
    assert_eq!(
        tail,
        format!("at {endpoint} (log: .barkctl/local/moto.log)"),
        "{line:?}"
    );
    pid.parse().expect("numeric pid")
}

/// Alive and not a zombie (the server is reparented when barkctl exits, and a
/// container's init may be slow to reap it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn up_status_down_manage_exactly_one_server() {
    let emu = Emulator::new();
    let endpoint = emu.endpoint();

    let r = emu.run(&["local", "status"]);
    r.assert_ok();
    assert_eq!(
        r.stdout,
        format!("stopped: nothing answers at {endpoint}\n")
    );

    let pid = emu.up();
    assert!(alive(pid), "server {pid} is not running");
    let cmd = cmdline(pid);
    assert!(
        cmd.contains(".barkctl/local/moto_ext.py") && cmd.contains(&format!("-p {}", emu.port)),
        "unexpected command line: {cmd}"
    );
    assert!(cmd.contains("-H 127.0.0.1"), "binds loopback only: {cmd}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(emu.pid_file()).expect("pid file"))
            .expect("pid file is JSON");
    assert_eq!(record["pid"], pid);
    assert_eq!(record["port"], emu.port);

    let r = emu.run(&["local", "status"]);
    r.assert_ok();
    assert_eq!(running_pid(&r.stdout, &endpoint), pid);

    // A real API call reaches it.
    rt().block_on(async {
        let s3 = aws_sdk_s3::Client::new(&emu.sdk().await);
        s3.create_bucket()
            .bucket("local-test")
            .send()
            .await
            .expect("create bucket");
        let names: Vec<String> = s3
            .list_buckets()
            .send()
            .await
            .expect("list buckets")
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect();
        assert_eq!(names, ["local-test"]);
    });

    // Idempotent: a second `up` reuses the same server.
    let r = emu.run(&["local", "up"]);
    r.assert_ok();
    assert_eq!(running_pid(&r.stdout, &endpoint), pid);
    assert!(r.stderr.contains("already running"), "{}", r.stderr);

    let r = emu.run(&["local", "down"]);
    r.assert_ok();
    assert_eq!(r.stdout, format!("stopped: pid {pid} at {endpoint}\n"));
    assert!(!alive(pid), "server {pid} still runs after `down`");
    assert!(!emu.pid_file().exists(), "pid file left behind");

    let r = emu.run(&["local", "status"]);
    r.assert_ok();
    assert_eq!(
        r.stdout,
        format!("stopped: nothing answers at {endpoint}\n")
    );

    let r = emu.run(&["local", "down"]);
    r.assert_ok();
    assert_eq!(
        r.stdout,
        "not running: this project has no emulator to stop\n"
    );
}

/// A pid file whose pid now belongs to another program (pids are recycled)
/// must never get that program killed; `up` then starts a fresh server.
#[test]
fn stale_pid_file_never_kills_a_stranger() {
    let emu = Emulator::new();
    let mut stranger = Command::new("sleep").arg("60").spawn().expect("sleep");
    let pid = stranger.id();
    harness::write(
        &emu.pid_file(),
        &json!({
            "pid": pid,
            "port": emu.port,
            "script": emu.dir.join(".barkctl/local/moto_ext.py"),
        })
        .to_string(),
    );

    let r = emu.run(&["local", "status"]);
    r.assert_ok();
    assert!(r.stdout.starts_with("stopped:"), "{}", r.stdout);

    let r = emu.run(&["local", "down"]);
    r.assert_ok();
    assert_eq!(
        r.stdout,
        "not running: this project has no emulator to stop\n"
    );
    assert!(alive(pid), "`down` signalled a process that is not ours");
    assert!(!emu.pid_file().exists(), "stale pid file not removed");

    // The same stale record in front of `up`: replaced by the new server's.
    harness::write(
        &emu.pid_file(),
        &json!({"pid": pid, "port": emu.port, "script": "/elsewhere/moto_ext.py"}).to_string(),
    );
    let new_pid = emu.up();
    assert_ne!(new_pid, pid);
    assert!(alive(pid), "`up` signalled a process that is not ours");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[test]
fn a_port_held_by_another_program_is_reported() {
    let emu = Emulator::new();
    let listener = TcpListener::bind(("127.0.0.1", emu.port)).expect("hold the port");
    // Accept and close connections so the probe sees a non-moto answer.
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            drop(stream);
        }
    });
    let r = emu.run(&["local", "up"]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(
        r.stderr.starts_with(&format!(
            "error: another program listens on `{}` and it is not a moto server",
            emu.endpoint()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
}

#[test]
fn a_non_local_endpoint_is_invalid_input() {
    let emu = Emulator::new();
    let r = emu.run(&[
        "local",
        "up",
        "--endpoint-url",
        "https://cloudformation.us-east-1.amazonaws.com",
    ]);
    r.assert_invalid(&["is not a local emulator endpoint"]);
    assert!(!emu.pid_file().exists());
}

/// Every type the extension adds, in one stack, created through moto's
/// CloudFormation and then read back through each service's own API.
#[test]
fn extension_creates_skipped_types_through_their_services() {
    let emu = Emulator::new();
    emu.up();
    rt().block_on(async {
        let sdk = emu.sdk().await;
        upload_dummy_code(&sdk).await;

        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        cfn.create_stack()
            .stack_name("ext")
            .template_body(extension_template().to_string())
            .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
            .send()
            .await
            .expect("create stack");
        let stack = cfn
            .describe_stacks()
            .stack_name("ext")
            .send()
            .await
            .expect("describe stack");
        let stack = &stack.stacks()[0];
        assert_eq!(
            stack.stack_status().map(|s| s.as_str()),
            Some("CREATE_COMPLETE")
        );
        let outputs: std::collections::BTreeMap<String, String> = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect();
        for key in [
            "ApiId",
            "ApiEndpoint",
            "SecretArn",
            "AlarmArn",
            "RouteId",
            "StageName",
        ] {
            assert!(
                outputs.contains_key(key),
                "output {key} missing: {outputs:?}"
            );
        }

        // ApiGatewayV2: the WebSocket API with its route, integration and stage.
        let apigw = aws_sdk_apigatewayv2::Client::new(&sdk);
        let apis = apigw.get_apis().send().await.expect("get apis");
        let api = apis
            .items()
            .iter()
            .find(|a| a.name() == Some("ext-ws"))
            .expect("api listed by apigatewayv2");
        let api_id = api.api_id().expect("api id");
        assert_eq!(outputs["ApiId"], api_id);
        assert_eq!(api.protocol_type().map(|p| p.as_str()), Some("WEBSOCKET"));
        assert_eq!(
            outputs["ApiEndpoint"],
            format!("wss://{api_id}.execute-api.us-east-1.amazonaws.com")
        );
        let routes = apigw
            .get_routes()
            .api_id(api_id)
            .send()
            .await
            .expect("get routes");
        let route = &routes.items()[0];
        assert_eq!(route.route_key(), Some("$connect"));
        assert_eq!(route.route_id(), Some(outputs["RouteId"].as_str()));
        let integrations = apigw
            .get_integrations()
            .api_id(api_id)
            .send()
            .await
            .expect("get integrations");
        let integration_id = integrations.items()[0].integration_id().expect("id");
        assert_eq!(
            route.target(),
            Some(format!("integrations/{integration_id}").as_str())
        );
        let stages = apigw
            .get_stages()
            .api_id(api_id)
            .send()
            .await
            .expect("get stages");
        assert_eq!(stages.items()[0].stage_name(), Some("local"));
        assert_eq!(outputs["StageName"], "local");

        // SecretsManager: generated from the template, the excluded characters absent.
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        let value = sm
            .get_secret_value()
            .secret_id("ext/db")
            .send()
            .await
            .expect("secret exists");
        assert_eq!(value.arn(), Some(outputs["SecretArn"].as_str()));
        let secret: serde_json::Value =
            serde_json::from_str(value.secret_string().expect("string")).expect("JSON");
        assert_eq!(secret["username"], "bark");
        let password = secret["password"].as_str().expect("password");
        assert_eq!(password.chars().count(), 24);
        assert!(!password.contains(['"', '@', '/', '\\']), "{password}");

        // CloudWatch, through its Query API: aws-sdk-cloudwatch now speaks
        // rpc-v2-cbor, which moto 5.2.5 does not serve (getmoto/moto#9195).
        let alarms = cloudwatch_query(
            emu.port,
            "Action=DescribeAlarms&Version=2010-08-01&AlarmNames.member.1=ext-errors",
        );
        for needle in [
            "<AlarmName>ext-errors</AlarmName>".to_string(),
            format!("<AlarmArn>{}</AlarmArn>", outputs["AlarmArn"]),
            "<Threshold>1.0</Threshold>".to_string(),
            "<Value>ext-fn</Value>".to_string(),
        ] {
            assert!(alarms.contains(&needle), "{needle} not in {alarms}");
        }

        // Lambda: the function's event invoke config.
        let lambda = aws_sdk_lambda::Client::new(&sdk);
        let config = lambda
            .get_function_event_invoke_config()
            .function_name("ext-fn")
            .send()
            .await
            .expect("event invoke config");
        assert_eq!(config.maximum_retry_attempts(), Some(0));
        assert_eq!(config.maximum_event_age_in_seconds(), Some(3600));

        // Deleting the stack removes them again.
        cfn.delete_stack()
            .stack_name("ext")
            .send()
            .await
            .expect("delete stack");
        let apis = apigw.get_apis().send().await.expect("get apis");
        assert!(apis.items().is_empty(), "api left: {apis:?}");
        let alarms = cloudwatch_query(emu.port, "Action=DescribeAlarms&Version=2010-08-01");
        assert!(alarms.contains("<MetricAlarms/>"), "alarm left: {alarms}");
        assert!(
            sm.describe_secret()
                .secret_id("ext/db")
                .send()
                .await
                .is_err(),
            "secret left"
        );
    });
}

/// One CloudWatch Query-protocol call. moto picks the service from the
/// credential scope of the Authorization header and does not check signatures.
fn cloudwatch_query(port: u16, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!(
        "POST / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "{response}"
    );
    response
}

async fn upload_dummy_code(sdk: &aws_config::SdkConfig) {
    let s3 = aws_sdk_s3::Client::new(sdk);
    s3.create_bucket()
        .bucket("assets")
        .send()
        .await
        .expect("bucket");
    s3.put_object()
        .bucket("assets")
        .key("fn.zip")
        .body(dummy_zip().into())
        .send()
        .await
        .expect("upload code");
}

/// moto's Lambda reads the code from S3 and wants a real zip archive.
fn dummy_zip() -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    zip.start_file("bootstrap", zip::write::SimpleFileOptions::default())
        .expect("zip entry");
    zip.write_all(b"#!/bin/sh\n").expect("zip write");
    zip.finish().expect("zip finish");
    buf.into_inner()
}

fn extension_template() -> serde_json::Value {
    json!({
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}}
            },
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "ext-fn",
                    "Runtime": "provided.al2023",
                    "Handler": "bootstrap",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"S3Bucket": "assets", "S3Key": "fn.zip"}
                }
            },
            "Api": {
                "Type": "AWS::ApiGatewayV2::Api",
                "Properties": {
                    "Name": "ext-ws",
                    "ProtocolType": "WEBSOCKET",
                    "RouteSelectionExpression": "$request.body.action"
                }
            },
            "Integration": {
                "Type": "AWS::ApiGatewayV2::Integration",
                "Properties": {
                    "ApiId": {"Ref": "Api"},
                    "IntegrationType": "AWS_PROXY",
                    "IntegrationUri": {"Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Fn.Arn}/invocations"}
                }
            },
            "ConnectRoute": {
                "Type": "AWS::ApiGatewayV2::Route",
                "Properties": {
                    "ApiId": {"Ref": "Api"},
                    "RouteKey": "$connect",
                    "AuthorizationType": "NONE",
                    "Target": {"Fn::Join": ["/", ["integrations", {"Ref": "Integration"}]]}
                }
            },
            "Stage": {
                "Type": "AWS::ApiGatewayV2::Stage",
                "Properties": {
                    "ApiId": {"Ref": "Api"},
                    "StageName": "local",
                    "AutoDeploy": true,
                    "DefaultRouteSettings": {"ThrottlingBurstLimit": 100, "ThrottlingRateLimit": 50}
                }
            },
            "Secret": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {
                    "Name": "ext/db",
                    "GenerateSecretString": {
                        "SecretStringTemplate": "{\"username\": \"bark\"}",
                        "GenerateStringKey": "password",
                        "PasswordLength": 24,
                        "ExcludeCharacters": "\"@/\\"
                    }
                }
            },
            "Alarm": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "AlarmName": "ext-errors",
                    "Namespace": "AWS/Lambda",
                    "MetricName": "Errors",
                    "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "Fn"}}],
                    "Statistic": "Sum",
                    "Period": 60,
                    "EvaluationPeriods": 1,
                    "Threshold": 1,
                    "ComparisonOperator": "GreaterThanOrEqualToThreshold"
                }
            },
            "InvokeConfig": {
                "Type": "AWS::Lambda::EventInvokeConfig",
                "Properties": {
                    "FunctionName": {"Ref": "Fn"},
                    "Qualifier": "$LATEST",
                    "MaximumRetryAttempts": 0,
                    "MaximumEventAgeInSeconds": 3600
                }
            }
        },
        "Outputs": {
            "ApiId": {"Value": {"Ref": "Api"}},
            "ApiEndpoint": {"Value": {"Fn::GetAtt": ["Api", "ApiEndpoint"]}},
            "RouteId": {"Value": {"Ref": "ConnectRoute"}},
            "StageName": {"Value": {"Ref": "Stage"}},
            "SecretArn": {"Value": {"Ref": "Secret"}},
            "AlarmArn": {"Value": {"Fn::GetAtt": ["Alarm", "Arn"]}}
        }
    })
}

/// The Python side on its own, in-process with moto's decorator (no server):
/// dynamic references, the secret attachment and the RDS port fix.
#[test]
fn moto_extension_python_checks_pass() {
    let python = tools_venv().join("bin/python");
    let out = Command::new(&python)
        .arg(repo_root().join("src/local/moto_ext_test.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(repo_root().join("src/local"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "python checks failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
