//! The repository's own BarkBase project and `examples/hello`: `synth` writes one
//! template per stack, `cfn-lint` (the real linter, from the tools venv) finds no
//! error and no warning in them, `validate` passes for every stage, and the facts
//! the issue asks for are pinned in the rendered JSON.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness;

const STACKS: [&str; 5] = ["network", "database", "realtime", "jobs", "experience"];

/// Templates synthesised into a temp dir (kept alive with them).
struct Synth {
    _tmp: tempfile::TempDir,
    files: Vec<PathBuf>,
    app: String,
    stage: String,
}

impl Synth {
    fn template(&self, stack: &str) -> Value {
        let want = format!("{}-{}-{stack}.template.json", self.app, self.stage);
        let path = self
            .files
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == want.as_str()))
            .unwrap_or_else(|| panic!("no {want} among {:?}", self.files));
        let text = std::fs::read_to_string(path).expect("read template");
        serde_json::from_str(&text).expect("template is JSON")
    }
}

/// `barkctl synth --stage S --out DIR` in `project_dir`; checks that stdout lists
/// exactly the files written to DIR.
fn synth(project_dir: &Path, app: &str, stage: &str) -> Synth {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out");
    let run = harness::run(
        project_dir,
        &[
            "synth",
            "--stage",
            stage,
            "--out",
            out.to_str().expect("utf-8 temp path"),
        ],
    );
    run.assert_ok();
    let listed: Vec<PathBuf> = run.stdout.lines().map(PathBuf::from).collect();
    let written: BTreeSet<PathBuf> = std::fs::read_dir(&out)
        .expect("out dir exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(
        listed.iter().cloned().collect::<BTreeSet<_>>(),
        written,
        "stdout must list exactly the written files:\n{}",
        run.stdout
    );
    assert_eq!(listed.len(), written.len(), "a path listed twice");
    Synth {
        _tmp: tmp,
        files: listed,
        app: app.to_string(),
        stage: stage.to_string(),
    }
}

/// One cfn-lint run over all `files` (one process is much cheaper than one per
/// file). Fails on errors (bit 2), a crash (bit 1) and warnings (bit 4): the
/// templates are kept warning-free, so a new warning is a regression to look at.
fn lint(files: &[PathBuf]) {
    let bin = harness::tool("cfn-lint");
    let out = Command::new(&bin)
        .arg("--")
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run the tests with `bash scripts/test.sh`",
                bin.display()
            )
        });
    let code = out.status.code().unwrap_or(-1);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(code >= 0, "cfn-lint killed by a signal:\n{report}");
    assert_eq!(code & 1, 0, "cfn-lint crashed (exit {code}):\n{report}");
    assert_eq!(
        code & 2,
        0,
        "cfn-lint found errors (exit {code}):\n{report}"
    );
    if code & 4 != 0 {
        println!("cfn-lint warnings:\n{report}");
    }
    assert_eq!(code, 0, "cfn-lint found warnings:\n{report}");
}

fn synth_barkbase(stage: &str) -> (tempfile::TempDir, Synth) {
    let (tmp, dir) = harness::copy_barkbase();
    let s = synth(&dir, "barkbase", stage);
    (tmp, s)
}

fn resources_of<'a>(t: &'a Value, ty: &str) -> Vec<(&'a String, &'a Value)> {
    t["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .collect()
}

fn assert_outputs(t: &Value, stack: &str, names: &[&str]) {
    let outputs = t["Outputs"].as_object().expect("Outputs");
    for n in names {
        assert!(
            outputs.contains_key(*n),
            "{stack} lacks output {n}; has {:?}",
            outputs.keys().collect::<Vec<_>>()
        );
    }
}

fn assert_five_templates(s: &Synth) {
    let names: BTreeSet<String> = s
        .files
        .iter()
        .map(|p| {
            p.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let want: BTreeSet<String> = STACKS
        .iter()
        .map(|st| format!("barkbase-{}-{st}.template.json", s.stage))
        .collect();
    assert_eq!(names, want);
}

#[test]
fn synth_dev_writes_five_templates_that_cfn_lint_accepts() {
    let (_tmp, s) = synth_barkbase("dev");
    assert_five_templates(&s);
    lint(&s.files);
}

#[test]
fn synth_prod_writes_five_templates_that_cfn_lint_accepts() {
    let (_tmp, s) = synth_barkbase("prod");
    assert_five_templates(&s);
    lint(&s.files);
}

#[test]
fn validate_passes_for_every_stage_of_the_repo_project() {
    let (_tmp, dir) = harness::copy_barkbase();
    let run = harness::run(&dir, &["validate"]);
    run.assert_ok();
    for stage in ["dev", "local", "prod"] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with(&format!("{stage}: 5 stacks, ")) && l.ends_with(": ok")),
            "no ok line for {stage}: {run:#?}"
        );
    }
}

#[test]
fn hello_example_validates_synthesises_and_lints_clean() {
    let example = harness::repo_root().join("examples").join("hello");
    let run = harness::run(
        &harness::repo_root(),
        &[
            "--project",
            example.to_str().expect("utf-8 path"),
            "validate",
        ],
    );
    run.assert_ok();
    assert!(run.stderr.contains("dev: 2 stacks, "), "{run:#?}");
    assert!(run.stderr.contains("local: 2 stacks, "), "{run:#?}");

    // From a copy: synth's default output folder would be inside the repository.
    let (_tmp, dir) = harness::copy_project(&example);
    let s = synth(&dir, "hello", "dev");
    let names: Vec<String> = s
        .files
        .iter()
        .map(|p| {
            p.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // Deploy order: the queue before the topic that needs its outputs.
    assert_eq!(
        names,
        [
            "hello-dev-queue.template.json",
            "hello-dev-alerts.template.json"
        ]
    );
    let alerts = s.template("alerts");
    assert_eq!(
        alerts["Parameters"]["QueueQueueArn"]["Type"], "String",
        "needs become parameters"
    );
    assert_eq!(
        alerts["Resources"]["QueueSubscription"]["Properties"]["Endpoint"]["Ref"],
        "QueueQueueArn"
    );
    lint(&s.files);
}

#[test]
fn network_has_one_nat_gateway_in_dev_and_one_per_az_in_prod() {
    for (stage, nats) in [("dev", 1), ("local", 1), ("prod", 2)] {
        let (_tmp, s) = synth_barkbase(stage);
        let t = s.template("network");
        assert_eq!(
            resources_of(&t, "AWS::EC2::NatGateway").len(),
            nats,
            "{stage}"
        );
        assert_eq!(resources_of(&t, "AWS::EC2::EIP").len(), nats, "{stage}");
        // Both private subnets route somewhere: B through its own gateway in prod.
        let route_b = &t["Resources"]["PrivateDefaultRouteB"]["Properties"]["NatGatewayId"];
        let want = if nats == 2 {
            "NatGatewayB"
        } else {
            "NatGatewayA"
        };
        assert_eq!(route_b["Ref"], want, "{stage}");
        assert_eq!(resources_of(&t, "AWS::EC2::Subnet").len(), 6, "{stage}");
        assert_eq!(
            t["Resources"]["Vpc"]["Properties"]["CidrBlock"],
            "10.0.0.0/16"
        );
        // The database group admits 5432 from the Lambda group and nothing else.
        let ingress = &t["Resources"]["DbSecurityGroup"]["Properties"]["SecurityGroupIngress"];
        assert_eq!(ingress.as_array().map(Vec::len), Some(1));
        assert_eq!(ingress[0]["FromPort"], 5432);
        assert_eq!(ingress[0]["ToPort"], 5432);
        assert_eq!(
            ingress[0]["SourceSecurityGroupId"]["Ref"],
            "LambdaSecurityGroup"
        );
        assert_outputs(
            &t,
            "network",
            &[
                "VpcId",
                "PrivateSubnetIds",
                "IsolatedSubnetIds",
                "LambdaSecurityGroupId",
                "DbSecurityGroupId",
            ],
        );
    }
}

#[test]
fn a_nat_gateway_count_other_than_1_or_2_is_refused_by_validate() {
    let (_tmp, dir) = harness::copy_barkbase();
    let path = dir.join("stacks").join("network.yaml");
    let text = std::fs::read_to_string(&path).expect("network.yaml");
    assert!(text.contains("nat_gateways: 2"));
    harness::write(&path, &text.replace("nat_gateways: 2", "nat_gateways: 3"));
    harness::run(&dir, &["validate"])
        .assert_invalid(&["templates/network.yaml.hbs", "nat_gateways_must_be_1_or_2"]);
}

#[test]
fn database_is_encrypted_snapshotted_and_protected_in_prod() {
    for (stage, protected, class) in [
        ("dev", false, "db.t4g.micro"),
        ("prod", true, "db.t4g.medium"),
    ] {
        let (_tmp, s) = synth_barkbase(stage);
        let t = s.template("database");
        let db = &t["Resources"]["DbInstance"];
        assert_eq!(db["Type"], "AWS::RDS::DBInstance");
        assert_eq!(db["DeletionPolicy"], "Snapshot");
        assert_eq!(db["UpdateReplacePolicy"], "Snapshot");
        let p = &db["Properties"];
        assert_eq!(p["StorageEncrypted"], true);
        assert_eq!(p["PubliclyAccessible"], false);
        assert_eq!(p["DeletionProtection"], protected, "{stage}");
        assert_eq!(p["MultiAZ"], protected, "{stage}");
        assert_eq!(p["DBInstanceClass"], class, "{stage}");
        // Handlebars would eat a bare `{{`: the dynamic reference must survive rendering.
        assert_eq!(
            p["MasterUserPassword"]["Fn::Join"],
            serde_json::json!([
                "",
                [
                    "{{resolve:secretsmanager:",
                    {"Ref": "DbSecret"},
                    ":SecretString:password}}"
                ]
            ])
        );
        let secret = &t["Resources"]["DbSecret"]["Properties"];
        assert_eq!(
            secret["Name"],
            format!("barkbase/{stage}/postgres/credentials")
        );
        assert_eq!(
            secret["GenerateSecretString"]["GenerateStringKey"],
            "password"
        );
        let attach = &t["Resources"]["DbSecretAttachment"];
        assert_eq!(
            attach["Type"],
            "AWS::SecretsManager::SecretTargetAttachment"
        );
        assert_eq!(attach["Properties"]["TargetId"]["Ref"], "DbInstance");
        assert_outputs(
            &t,
            "database",
            &[
                "DbHost",
                "DbPort",
                "DbName",
                "DbSecretArn",
                "DbHealthcheckFunctionName",
            ],
        );
        // The local emulator answers 3306 for Endpoint.Port: the port is a literal.
        assert_eq!(t["Outputs"]["DbPort"]["Value"], "5432");
        let f = &t["Resources"]["HealthcheckFunction"]["Properties"];
        assert_eq!(
            (f["MemorySize"].as_u64(), f["Timeout"].as_u64()),
            (Some(256), Some(30))
        );
    }
}

#[test]
fn realtime_api_table_and_functions_follow_the_contract() {
    let (_tmp, s) = synth_barkbase("dev");
    let t = s.template("realtime");
    let api = &t["Resources"]["WebSocketApi"]["Properties"];
    assert_eq!(api["Name"], "barkbase-dev-realtime");
    assert_eq!(api["ProtocolType"], "WEBSOCKET");
    assert_eq!(api["RouteSelectionExpression"], "$request.body.action");
    let routes: BTreeSet<&str> = resources_of(&t, "AWS::ApiGatewayV2::Route")
        .into_iter()
        .filter_map(|(_, r)| r["Properties"]["RouteKey"].as_str())
        .collect();
    assert_eq!(
        routes,
        BTreeSet::from([
            "$connect",
            "$disconnect",
            "$default",
            "broadcast",
            "refresh"
        ])
    );
    assert_eq!(resources_of(&t, "AWS::ApiGatewayV2::Integration").len(), 5);
    // One per route, and the sweeper's schedule.
    assert_eq!(resources_of(&t, "AWS::Lambda::Permission").len(), 6);
    let stage = &t["Resources"]["WebSocketStage"]["Properties"];
    assert_eq!(stage["StageName"], "dev");
    assert_eq!(stage["AutoDeploy"], true);
    assert!(stage["DefaultRouteSettings"]["ThrottlingBurstLimit"].is_u64());
    assert!(stage["DefaultRouteSettings"]["ThrottlingRateLimit"].is_u64());

    let table = &t["Resources"]["ConnectionsTable"];
    assert_eq!(table["DeletionPolicy"], "Retain");
    let tp = &table["Properties"];
    assert_eq!(tp["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(tp["KeySchema"][0]["AttributeName"], "connectionId");
    assert_eq!(tp["TimeToLiveSpecification"]["AttributeName"], "expiresAt");
    assert_eq!(tp["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        tp["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    let gsis: Vec<(String, Vec<String>)> = tp["GlobalSecondaryIndexes"]
        .as_array()
        .expect("GSIs")
        .iter()
        .map(|g| {
            assert_eq!(g["Projection"]["ProjectionType"], "ALL");
            let keys = g["KeySchema"]
                .as_array()
                .expect("key schema")
                .iter()
                .map(|k| format!("{}:{}", k["AttributeName"], k["KeyType"]).replace('"', ""))
                .collect();
            (
                g["IndexName"].as_str().unwrap_or_default().to_string(),
                keys,
            )
        })
        .collect();
    assert_eq!(
        gsis,
        vec![
            ("userId-index".to_string(), vec!["userId:HASH".to_string()]),
            (
                "tenantId-index".to_string(),
                vec!["tenantId:HASH".to_string()]
            ),
            (
                "channel-index".to_string(),
                vec!["channel:HASH".to_string(), "connectionId:RANGE".to_string()]
            ),
        ]
    );

    let jwt = &t["Resources"]["JwtSecret"]["Properties"];
    assert_eq!(jwt["Name"], "barkbase/dev/realtime/jwt");
    assert_eq!(jwt["GenerateSecretString"]["SecretStringTemplate"], "{}");
    assert_eq!(jwt["GenerateSecretString"]["GenerateStringKey"], "secret");

    for (key, memory, timeout) in [
        ("connect", 512, 10),
        ("disconnect", 512, 10),
        ("message", 512, 10),
        ("broadcast", 512, 10),
        ("sweeper", 256, 60),
    ] {
        let id = format!("{}Function", key[..1].to_uppercase() + &key[1..]);
        let p = &t["Resources"][&id]["Properties"];
        assert_eq!(p["FunctionName"], format!("barkbase-dev-realtime-{key}"));
        assert_eq!(p["MemorySize"], memory, "{key}");
        assert_eq!(p["Timeout"], timeout, "{key}");
        assert!(p["VpcConfig"]["SubnetIds"].is_object(), "{key} in the VPC");
        // One role per function: no shared RealtimeRole.
        assert_eq!(
            p["Role"]["Fn::GetAtt"],
            serde_json::json!([format!("{}Role", &id[..id.len() - "Function".len()]), "Arn"]),
            "{key}"
        );
        assert_eq!(
            p["Environment"]["Variables"]["CONNECTION_TTL_SECONDS"],
            "7200"
        );
        let log = &t["Resources"][format!("{id}LogGroup")]["Properties"];
        assert_eq!(
            log["LogGroupName"],
            format!("/aws/lambda/barkbase-dev-realtime-{key}")
        );
        assert_eq!(log["RetentionInDays"], 7);
    }
    assert!(t["Resources"].get("RealtimeRole").is_none());
    assert_eq!(
        t["Resources"]["SweeperFunction"]["Properties"]["Description"],
        "closes connections whose token expired"
    );

    for role in resources_of(&t, "AWS::IAM::Role") {
        for policy in role.1["Properties"]["Policies"]
            .as_array()
            .expect("policies")
        {
            for st in policy["PolicyDocument"]["Statement"]
                .as_array()
                .expect("statements")
            {
                if st["Resource"] == "*" {
                    assert!(
                        st["Action"].to_string().contains("xray:"),
                        "only X-Ray may use Resource *: {st}"
                    );
                }
            }
        }
    }
    assert_outputs(
        &t,
        "realtime",
        &[
            "WebSocketUrl",
            "WebSocketApiId",
            "ManagementEndpoint",
            "ConnectionsTableName",
            "HistoryTableName",
            "BroadcastFunctionArn",
        ],
    );
    assert_eq!(
        t["Outputs"]["WebSocketUrl"]["Value"]["Fn::Sub"],
        "wss://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/dev"
    );
}

/// A role's `access` grants as `action resource` lines: `Table.Arn` for
/// `!GetAtt`, the `!Ref` name, or the `!Sub` text without the ARN prefix.
fn grants(t: &Value, role: &str) -> BTreeSet<String> {
    let policies = t["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .unwrap_or_else(|| panic!("{role} has policies"));
    let access = policies
        .iter()
        .find(|p| p["PolicyName"] == "access")
        .unwrap_or_else(|| panic!("{role} has an access policy"));
    let one_or_many = |v: &Value| match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let label = |r: &Value| {
        if let Some(name) = r["Ref"].as_str() {
            name.to_string()
        } else if let Some(parts) = r["Fn::GetAtt"].as_array() {
            format!(
                "{}.{}",
                parts[0].as_str().unwrap_or_default(),
                parts[1].as_str().unwrap_or_default()
            )
        } else {
            r["Fn::Sub"]
                .as_str()
                .unwrap_or_else(|| panic!("unexpected resource {r}"))
                .replace(
                    "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:",
                    "",
                )
                .replace(
                    "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:",
                    "",
                )
        }
    };
    let mut out = BTreeSet::new();
    for st in access["PolicyDocument"]["Statement"]
        .as_array()
        .expect("statements")
    {
        assert_eq!(st["Effect"], "Allow", "{role}: {st}");
        for action in one_or_many(&st["Action"]) {
            for r in one_or_many(&st["Resource"]) {
                out.insert(format!(
                    "{} {}",
                    action.as_str().unwrap_or_default(),
                    label(&r)
                ));
            }
        }
    }
    out
}

fn lines(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn env_keys(t: &Value, function: &str) -> BTreeSet<String> {
    t["Resources"][function]["Properties"]["Environment"]["Variables"]
        .as_object()
        .unwrap_or_else(|| panic!("{function} has an environment"))
        .keys()
        .cloned()
        .collect()
}

const COMMON_ENV: [&str; 5] = [
    "CONNECTIONS_TABLE",
    "WEBSOCKET_MANAGEMENT_ENDPOINT",
    "STAGE",
    "CONNECTION_TTL_SECONDS",
    "BROADCAST_CONCURRENCY",
];

/// Issue 11: every realtime function read the JWT signing secret and the
/// database secret and got `DB_*` through one shared role. Now each function has
/// its own role and environment, and only `$connect` gets the JWT secret (and,
/// with verify_user_active, on prod, the database).
#[test]
fn realtime_functions_get_only_the_settings_and_grants_their_code_uses() {
    for stage in ["dev", "local", "prod"] {
        let (_tmp, s) = synth_barkbase(stage);
        let t = s.template("realtime");
        let prod = stage == "prod";
        let db_env = ["DB_HOST", "DB_PORT", "DB_NAME", "DB_SECRET_ARN"];

        let mut connect_env = lines(&COMMON_ENV);
        connect_env.extend(lines(&[
            "JWT_SECRET_ARN",
            "JWT_ALGORITHM",
            "JWT_ISSUER",
            "JWT_AUDIENCE",
            "MAX_CONNECTIONS_PER_USER",
            "VERIFY_USER_ACTIVE",
            "RESUME_FUNCTION",
        ]));
        if prod {
            connect_env.extend(lines(&db_env));
        }
        assert_eq!(env_keys(&t, "ConnectFunction"), connect_env, "{stage}");
        let mut delivery_env = lines(&COMMON_ENV);
        delivery_env.extend(lines(&[
            "HISTORY_TABLE",
            "HISTORY_TTL_SECONDS",
            "MESSAGE_RATE_PER_SECOND",
            "MESSAGE_BURST",
            "RATE_LIMIT_STRIKES",
        ]));
        assert_eq!(env_keys(&t, "MessageFunction"), delivery_env, "{stage}");
        assert_eq!(env_keys(&t, "BroadcastFunction"), delivery_env, "{stage}");
        assert_eq!(
            env_keys(&t, "DisconnectFunction"),
            lines(&COMMON_ENV),
            "{stage}"
        );
        assert_eq!(
            env_keys(&t, "SweeperFunction"),
            lines(&COMMON_ENV),
            "{stage}"
        );

        let connect = &t["Resources"]["ConnectFunction"]["Properties"]["Environment"]["Variables"];
        assert_eq!(connect["JWT_SECRET_ARN"]["Ref"], "JwtSecret");
        assert_eq!(connect["RESUME_FUNCTION"]["Ref"], "MessageFunction");
        assert!(
            connect.get("HISTORY_TABLE").is_none(),
            "connect never reads the history"
        );
        assert_eq!(connect["JWT_ISSUER"], "barkbase-auth");
        assert_eq!(connect["JWT_AUDIENCE"], "barkbase-realtime");
        assert_eq!(connect["MAX_CONNECTIONS_PER_USER"], "5");
        assert_eq!(
            connect["VERIFY_USER_ACTIVE"],
            if prod { "true" } else { "false" }
        );
        if prod {
            assert_eq!(connect["DB_HOST"]["Ref"], "DatabaseDbHost");
            assert_eq!(connect["DB_SECRET_ARN"]["Ref"], "DatabaseDbSecretArn");
        }
        let message = &t["Resources"]["MessageFunction"]["Properties"]["Environment"]["Variables"];
        assert_eq!(message["HISTORY_TTL_SECONDS"], "86400");
        assert_eq!(message["MESSAGE_RATE_PER_SECOND"], "10");
        assert_eq!(message["MESSAGE_BURST"], "20");
        assert_eq!(message["RATE_LIMIT_STRIKES"], "10");

        let post = format!("${{WebSocketApi}}/{stage}/POST/@connections/*");
        let delete = format!("${{WebSocketApi}}/{stage}/DELETE/@connections/*");
        let manage = |methods: &[&String]| -> Vec<String> {
            methods
                .iter()
                .map(|m| format!("execute-api:ManageConnections {m}"))
                .collect()
        };
        let table = "ConnectionsTable.Arn";
        let index = "${ConnectionsTable.Arn}/index/*";
        let on = |actions: &[&str], resources: &[&str]| -> Vec<String> {
            actions
                .iter()
                .flat_map(|a| resources.iter().map(move |r| format!("dynamodb:{a} {r}")))
                .collect()
        };

        let mut want: BTreeSet<String> = on(
            &["GetItem", "PutItem", "UpdateItem", "DeleteItem"],
            &[table],
        )
        .into_iter()
        .collect();
        want.insert("dynamodb:Query ${ConnectionsTable.Arn}/index/userId-index".into());
        want.insert("secretsmanager:GetSecretValue JwtSecret".into());
        if prod {
            want.insert("secretsmanager:GetSecretValue DatabaseDbSecretArn".into());
        }
        want.extend(manage(&[&post, &delete]));
        want.insert("lambda:InvokeFunction MessageFunction.Arn".into());
        assert_eq!(grants(&t, "ConnectRole"), want, "{stage}");

        let mut want: BTreeSet<String> = on(
            &["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"],
            &[table, index],
        )
        .into_iter()
        .collect();
        want.extend(on(
            &["PutItem", "UpdateItem", "Query"],
            &["HistoryTable.Arn"],
        ));
        want.extend(manage(&[&post, &delete]));
        assert_eq!(grants(&t, "MessageRole"), want, "{stage}");

        let mut want: BTreeSet<String> = on(
            &["GetItem", "UpdateItem", "DeleteItem", "Query", "Scan"],
            &[table, index],
        )
        .into_iter()
        .collect();
        want.extend(on(&["PutItem", "UpdateItem"], &["HistoryTable.Arn"]));
        want.extend(manage(&[&post, &delete]));
        assert_eq!(grants(&t, "BroadcastRole"), want, "{stage}");

        let mut want: BTreeSet<String> = on(&["DeleteItem", "Query"], &[table, index])
            .into_iter()
            .collect();
        want.extend(manage(&[&post]));
        assert_eq!(grants(&t, "DisconnectRole"), want, "{stage}");

        let mut want: BTreeSet<String> = on(&["Scan", "DeleteItem", "Query"], &[table, index])
            .into_iter()
            .collect();
        want.extend(manage(&[&post, &delete]));
        assert_eq!(grants(&t, "SweeperRole"), want, "{stage}");

        // Nothing outside connect names a secret, in its grants or its environment.
        let text = t["Resources"].to_string();
        for (id, r) in t["Resources"].as_object().expect("Resources") {
            if id.starts_with("Connect") || id == "JwtSecret" {
                continue;
            }
            let r = r.to_string();
            assert!(!r.contains("JwtSecret"), "{stage}: {id} names JwtSecret");
            assert!(
                !r.contains("DatabaseDb"),
                "{stage}: {id} names a database output"
            );
        }
        assert!(text.contains("ReadJwtSecret"));
        assert!(!text.contains("ReadJwtAndDbSecrets"));
    }
}

/// Connections end with their token: a sweeper runs every minute and closes the
/// expired ones; `refresh` reaches connect through a route of its own.
#[test]
fn realtime_sweeper_runs_every_minute_and_refresh_routes_to_connect() {
    let (_tmp, s) = synth_barkbase("dev");
    let t = s.template("realtime");
    let res = &t["Resources"];
    let rule = &res["SweeperSchedule"];
    assert_eq!(rule["Type"], "AWS::Events::Rule");
    let rp = &rule["Properties"];
    assert_eq!(rp["Name"], "barkbase-dev-realtime-sweeper-schedule");
    assert_eq!(rp["ScheduleExpression"], "rate(1 minute)");
    assert_eq!(rp["State"], "ENABLED");
    assert_eq!(
        rp["Targets"][0]["Arn"]["Fn::GetAtt"],
        serde_json::json!(["SweeperFunction", "Arn"])
    );
    let perm = &res["SweeperSchedulePermission"]["Properties"];
    assert_eq!(perm["Principal"], "events.amazonaws.com");
    assert_eq!(perm["FunctionName"]["Ref"], "SweeperFunction");
    assert_eq!(perm["SourceArn"]["Fn::GetAtt"][0], "SweeperSchedule");
    let invoke = &res["SweeperInvokeConfig"]["Properties"];
    assert_eq!(invoke["MaximumRetryAttempts"], 0);
    let alarm = &res["SweeperErrorsAlarm"]["Properties"];
    assert_eq!(alarm["Dimensions"][0]["Value"]["Ref"], "SweeperFunction");
    assert_eq!(alarm["AlarmActions"][0]["Ref"], "AlarmTopic");

    let route = &res["RefreshRoute"]["Properties"];
    assert_eq!(route["RouteKey"], "refresh");
    assert_eq!(
        res["RefreshIntegration"]["Properties"]["IntegrationUri"]["Fn::Sub"][1]["FunctionArn"]
            ["Fn::GetAtt"],
        serde_json::json!(["ConnectFunction", "Arn"])
    );
    let perm = &res["RefreshInvokePermission"]["Properties"];
    assert_eq!(perm["FunctionName"]["Ref"], "ConnectFunction");
    assert_eq!(perm["Principal"], "apigateway.amazonaws.com");
    assert_eq!(
        perm["SourceArn"]["Fn::Sub"],
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/*/refresh"
    );
    // connect keeps its $connect permission: one per route key.
    assert_eq!(
        res["ConnectInvokePermission"]["Properties"]["FunctionName"]["Ref"],
        "ConnectFunction"
    );

    let history = &res["HistoryTable"];
    assert_eq!(history["DeletionPolicy"], "Retain");
    let hp = &history["Properties"];
    assert_eq!(hp["TableName"], "barkbase-dev-realtime-history");
    assert_eq!(hp["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        hp["KeySchema"],
        serde_json::json!([
            {"AttributeName": "stream", "KeyType": "HASH"},
            {"AttributeName": "id", "KeyType": "RANGE"}
        ])
    );
    assert_eq!(
        hp["AttributeDefinitions"],
        serde_json::json!([
            {"AttributeName": "stream", "AttributeType": "S"},
            {"AttributeName": "id", "AttributeType": "N"}
        ])
    );
    assert_eq!(hp["TimeToLiveSpecification"]["AttributeName"], "expiresAt");
    assert_eq!(hp["TimeToLiveSpecification"]["Enabled"], true);
}

/// A stack setting that is not a boolean would be truthy in the template and
/// grant the database secret: validate refuses it.
#[test]
fn a_verify_user_active_that_is_not_a_boolean_is_refused_by_validate() {
    let (_tmp, dir) = harness::copy_barkbase();
    let path = dir.join("stacks").join("realtime.yaml");
    let text = std::fs::read_to_string(&path).expect("realtime.yaml");
    assert!(text.contains("  verify_user_active: false\n"));
    harness::write(
        &path,
        &text.replace(
            "  verify_user_active: false\n",
            "  verify_user_active: \"false\"\n",
        ),
    );
    harness::run(&dir, &["validate"]).assert_invalid(&[
        "templates/realtime.yaml.hbs",
        "verify_user_active_must_be_true_or_false",
    ]);
}

#[test]
fn prod_keeps_function_logs_thirty_days() {
    let (_tmp, s) = synth_barkbase("prod");
    for stack in ["realtime", "jobs", "database"] {
        let t = s.template(stack);
        for (id, log) in resources_of(&t, "AWS::Logs::LogGroup") {
            assert_eq!(log["Properties"]["RetentionInDays"], 30, "{stack}.{id}");
        }
    }
}

#[test]
fn jobs_run_on_their_schedules_with_retries_and_alarms() {
    let (_tmp, s) = synth_barkbase("dev");
    let t = s.template("jobs");
    let res = &t["Resources"];
    for (key, id, cron, state, retries, timeout) in [
        (
            "property-archival",
            "PropertyArchivalFunction",
            "cron(0 2 * * ? *)",
            "ENABLED",
            2,
            300,
        ),
        (
            "property-deletion",
            "PropertyDeletionFunction",
            "cron(0 3 * * ? *)",
            "ENABLED",
            2,
            300,
        ),
        (
            "migration",
            "MigrationFunction",
            "cron(0 4 1 * ? *)",
            "DISABLED",
            1,
            900,
        ),
    ] {
        let f = &res[id]["Properties"];
        assert_eq!(f["Timeout"], timeout, "{key}");
        assert_eq!(f["MemorySize"], 512, "{key}");
        assert_eq!(
            f["Environment"]["Variables"]["DB_SECRET_ARN"]["Ref"],
            "DatabaseDbSecretArn"
        );

        let rule = &res[format!("{id}Schedule")];
        assert_eq!(rule["Type"], "AWS::Events::Rule");
        let rp = &rule["Properties"];
        assert_eq!(rp["Name"], format!("barkbase-dev-{key}-schedule"));
        assert_eq!(rp["ScheduleExpression"], cron, "{key}");
        assert_eq!(rp["State"], state, "{key}");
        assert_eq!(rp["Targets"][0]["Arn"]["Fn::GetAtt"][0], id);

        let perm = &res[format!("{id}SchedulePermission")]["Properties"];
        assert_eq!(perm["Principal"], "events.amazonaws.com");
        assert_eq!(perm["SourceArn"]["Fn::GetAtt"][0], format!("{id}Schedule"));

        let invoke = &res[format!("{id}InvokeConfig")];
        assert_eq!(invoke["Type"], "AWS::Lambda::EventInvokeConfig");
        assert_eq!(invoke["Properties"]["Qualifier"], "$LATEST");
        assert_eq!(
            invoke["Properties"]["MaximumRetryAttempts"], retries,
            "{key}"
        );

        let alarm = &res[format!("{id}ErrorsAlarm")]["Properties"];
        assert_eq!(alarm["MetricName"], "Errors");
        assert_eq!(alarm["Namespace"], "AWS/Lambda");
        assert_eq!(alarm["Dimensions"][0]["Value"]["Ref"], id);
        assert_eq!(alarm["AlarmActions"][0]["Ref"], "AlarmTopic");
    }
    assert_eq!(resources_of(&t, "AWS::SNS::Topic").len(), 1);
}

#[test]
fn experience_stream_mapping_bisects_and_reports_item_failures() {
    let (_tmp, s) = synth_barkbase("dev");
    let t = s.template("experience");
    let table = &t["Resources"]["MetricsTable"];
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(
        table["Properties"]["StreamSpecification"]["StreamViewType"],
        "NEW_AND_OLD_IMAGES"
    );
    let mappings = resources_of(&t, "AWS::Lambda::EventSourceMapping");
    assert_eq!(mappings.len(), 1);
    let m = &mappings[0].1["Properties"];
    assert_eq!(
        m["EventSourceArn"]["Fn::GetAtt"],
        serde_json::json!(["MetricsTable", "StreamArn"])
    );
    assert_eq!(m["BatchSize"], 100);
    assert_eq!(m["MaximumBatchingWindowInSeconds"], 5);
    assert_eq!(m["MaximumRetryAttempts"], 3);
    assert_eq!(m["BisectBatchOnFunctionError"], true);
    assert_eq!(m["StartingPosition"], "LATEST");
    assert_eq!(
        m["FunctionResponseTypes"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    let env = &t["Resources"]["StreamProcessorFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["CONNECTIONS_TABLE"]["Ref"],
        "RealtimeConnectionsTableName"
    );
    assert_eq!(
        env["WEBSOCKET_MANAGEMENT_ENDPOINT"]["Ref"],
        "RealtimeManagementEndpoint"
    );
    assert_eq!(env["METRICS_CHANNEL"], "metrics");
    // The connections table and API belong to the realtime stack: their ARNs are
    // built from the names it hands over, and scoped to what the processor does:
    // Query on the channel index, DeleteItem for 410 Gone, POST to this stage.
    assert_eq!(
        grants(&t, "StreamProcessorRole"),
        lines(&[
            "dynamodb:DescribeStream MetricsTable.StreamArn",
            "dynamodb:GetRecords MetricsTable.StreamArn",
            "dynamodb:GetShardIterator MetricsTable.StreamArn",
            "dynamodb:ListStreams MetricsTable.StreamArn",
            "dynamodb:Query table/${RealtimeConnectionsTableName}/index/channel-index",
            "dynamodb:DeleteItem table/${RealtimeConnectionsTableName}",
            "execute-api:ManageConnections ${RealtimeWebSocketApiId}/dev/POST/@connections/*",
        ])
    );
    let f = &t["Resources"]["StreamProcessorFunction"]["Properties"];
    assert_eq!(
        (f["MemorySize"].as_u64(), f["Timeout"].as_u64()),
        (Some(512), Some(300))
    );
}

/// What every function of every stack shares, whatever the stack.
#[test]
fn every_function_is_a_traced_al2023_bootstrap_with_its_own_log_group_first() {
    let (_tmp, s) = synth_barkbase("dev");
    let mut count = 0;
    for stack in STACKS {
        let t = s.template(stack);
        for (id, f) in resources_of(&t, "AWS::Lambda::Function") {
            count += 1;
            let p = &f["Properties"];
            assert_eq!(p["Runtime"], "provided.al2023", "{stack}.{id}");
            assert_eq!(p["Handler"], "bootstrap", "{stack}.{id}");
            assert_eq!(p["TracingConfig"]["Mode"], "Active", "{stack}.{id}");
            let arch = p["Architectures"][0].as_str().unwrap_or_default();
            assert!(matches!(arch, "x86_64" | "arm64"), "{stack}.{id}: {arch}");
            assert_eq!(p["Code"]["S3Bucket"]["Ref"], "AssetsBucket");
            let key_param = p["Code"]["S3Key"]["Ref"].as_str().unwrap_or_default();
            assert!(
                t["Parameters"].get(key_param).is_some(),
                "{stack}.{id}: code key parameter {key_param}"
            );
            assert_eq!(p["Environment"]["Variables"]["STAGE"], "dev");
            let log = format!("{id}LogGroup");
            assert_eq!(f["DependsOn"], log.as_str(), "{stack}.{id}");
            let name = p["FunctionName"].as_str().unwrap_or_default();
            assert_eq!(
                t["Resources"][&log]["Properties"]["LogGroupName"],
                format!("/aws/lambda/{name}")
            );
            assert!(
                p["Tags"].to_string().contains("barkctl:stage"),
                "{stack}.{id} tagged"
            );
        }
    }
    assert_eq!(count, 10, "one function per contract entry");
}

/// Cost reports and clean-up scripts find resources by the barkctl tags: every
/// resource type that takes tags gets them.
#[test]
fn every_taggable_resource_carries_the_stage_tags() {
    let untaggable = [
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::Route",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::SecretsManager::SecretTargetAttachment",
        "AWS::Lambda::Permission",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::ApiGatewayV2::Integration",
        "AWS::ApiGatewayV2::Route",
    ];
    let (_tmp, s) = synth_barkbase("prod");
    for stack in STACKS {
        let t = s.template(stack);
        for (id, r) in t["Resources"].as_object().expect("Resources") {
            let ty = r["Type"].as_str().unwrap_or_default();
            if untaggable.contains(&ty) {
                continue;
            }
            let tags = &r["Properties"]["Tags"];
            // Lists of {Key, Value} for most types; a plain map for API Gateway v2.
            let stage = match tags {
                Value::Array(list) => list
                    .iter()
                    .find(|t| t["Key"] == "barkctl:stage")
                    .map(|t| t["Value"].clone()),
                Value::Object(map) => map.get("barkctl:stage").cloned(),
                _ => None,
            };
            assert_eq!(
                stage,
                Some(Value::from("prod")),
                "{stack}.{id} ({ty}) lacks the barkctl:stage tag"
            );
        }
    }
}

#[test]
fn ticker_example_synthesises_a_schedule_and_lints_clean() {
    let example = harness::repo_root().join("examples").join("ticker");
    let (_tmp, dir) = harness::copy_project(&example);
    let s = synth(&dir, "ticker", "dev");
    let clock = s.template("clock");
    let rule = &clock["Resources"]["TickSchedule"]["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 minute)");
    assert_eq!(rule["State"], "ENABLED");
    assert_eq!(
        clock["Resources"]["BrokenFunction"]["Properties"]["Environment"]["Variables"]
            ["EXIT_AT_INIT"],
        "1"
    );
    assert!(
        clock["Resources"]["TickFunction"]["Properties"]["Environment"]["Variables"]
            .get("EXIT_AT_INIT")
            .is_none()
    );
    lint(&s.files);
}
