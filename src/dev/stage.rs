//! From the deployed stage to what the runtime runs: each function's binary and
//! its environment as Lambda would give it, with the endpoints that only exist
//! on AWS pointed at their local stand-ins:
//!
//! - every AWS client: `AWS_ENDPOINT_URL` = the emulator, emulator credentials;
//! - an RDS instance's endpoint address (`DB_HOST` and any variable holding it)
//!   -> `127.0.0.1`, and a variable named `*PORT` holding its port -> the local
//!   PostgreSQL server's port; without TLS on that server, `DB_SSLMODE=disable`;
//! - a WebSocket API's management endpoint
//!   (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`) -> the local
//!   gateway's `http://127.0.0.1:{port}/{stage}` while `barkctl dev` runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::deployed::{DeployedStage, Function};
use super::runtime::FunctionSpec;

/// The local PostgreSQL server standing in for an RDS instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDatabase {
    /// The RDS instance's identifier (its endpoint address starts with it), and
    /// the port it was deployed with.
    pub instance_id: String,
    pub port: u16,
    /// Where the local server listens (127.0.0.1).
    pub local_port: u16,
    pub tls: bool,
}

impl LocalDatabase {
    /// `host` is this instance's endpoint address,
    /// `<instance id>.<hash>.<region>.rds.amazonaws.com` as AWS documents it (the
    /// emulator makes up `<id>.aaaaaaaaaa.<region>.rds.amazonaws.com`); RDS
    /// lowercases the identifier in it.
    pub fn is_endpoint(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let id = self.instance_id.to_ascii_lowercase();
        !id.is_empty()
            && host
                .strip_prefix(&id)
                .is_some_and(|rest| rest.starts_with('.'))
            && host.trim_end_matches(".cn").ends_with(".rds.amazonaws.com")
    }
}

/// A local gateway standing in for a WebSocket API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalGateway {
    pub api_id: String,
    /// `http://127.0.0.1:{port}/{stage}`.
    pub management_endpoint: String,
}

/// Endpoint rewrites applied to every function's environment.
#[derive(Debug, Clone, Default)]
pub struct Rewrites {
    pub databases: Vec<LocalDatabase>,
    pub gateways: Vec<LocalGateway>,
    /// The dev runtime's Invoke API (`http://127.0.0.1:{port}`): functions that invoke
    /// other functions reach them there (`AWS_ENDPOINT_URL_LAMBDA`), not on the emulator.
    pub lambda_endpoint: Option<String>,
}

/// The environment an instance of `f` gets (apart from the runtime's own
/// `AWS_LAMBDA_*` variables, which the runtime adds).
pub fn environment(
    stage: &DeployedStage,
    f: &Function,
    rewrites: &Rewrites,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
    env.insert("LANG".into(), "en_US.UTF-8".into());
    env.insert("TZ".into(), ":UTC".into());
    env.insert("AWS_REGION".into(), stage.region.clone());
    env.insert("AWS_DEFAULT_REGION".into(), stage.region.clone());
    env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
    env.insert("AWS_SESSION_TOKEN".into(), "testing".into());
    if !stage.endpoint_url.is_empty() {
        env.insert("AWS_ENDPOINT_URL".into(), stage.endpoint_url.clone());
    }
    if let Some(url) = &rewrites.lambda_endpoint {
        env.insert("AWS_ENDPOINT_URL_LAMBDA".into(), url.clone());
    }
    for k in ["RUST_LOG", "RUST_BACKTRACE"] {
        if let Ok(v) = std::env::var(k) {
            env.insert(k.into(), v);
        }
    }
    let mut uses_db = false;
    for (k, v) in &f.environment {
        let mut value = v.clone();
        for db in &rewrites.databases {
            if db.is_endpoint(&value) {
                value = "127.0.0.1".into();
                uses_db = true;
            } else if k.ends_with("PORT") && value == db.port.to_string() {
                value = db.local_port.to_string();
            }
        }
        for gw in &rewrites.gateways {
            let aws_prefix = format!("https://{}.execute-api.", gw.api_id);
            if value.starts_with(&aws_prefix) {
                value = gw.management_endpoint.clone();
            }
        }
        env.insert(k.clone(), value);
    }
    let plain = rewrites.databases.iter().any(|d| !d.tls);
    if uses_db && plain && !f.environment.contains_key("DB_SSLMODE") {
        env.insert("DB_SSLMODE".into(), "disable".into());
    }
    env
}

/// The runtime's view of `f`.
pub fn spec(
    stage: &DeployedStage,
    f: &Function,
    binary: PathBuf,
    rewrites: &Rewrites,
    concurrency: usize,
) -> FunctionSpec {
    FunctionSpec {
        name: f.name.clone(),
        arn: f.arn.clone(),
        binary,
        environment: environment(stage, f, rewrites),
        timeout: f.timeout.max(Duration::from_secs(1)),
        memory_mb: f.memory_mb,
        concurrency,
    }
}

/// `stack.function`, a function key or a deployed name -> the function.
pub fn find<'a>(stage: &'a DeployedStage, wanted: &str) -> Option<&'a Function> {
    let by = |p: &dyn Fn(&Function) -> bool| stage.functions.iter().find(|f| p(f));
    by(&|f| f.name == wanted)
        .or_else(|| {
            wanted
                .split_once('.')
                .and_then(|(s, k)| by(&|f| f.stack == s && f.key == k))
        })
        .or_else(|| {
            let matches: Vec<&Function> =
                stage.functions.iter().filter(|f| f.key == wanted).collect();
            (matches.len() == 1).then(|| matches[0])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(env: &[(&str, &str)]) -> Function {
        Function {
            name: "app-local-database-healthcheck".into(),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:app-local-database-healthcheck"
                .into(),
            stack: "database".into(),
            key: "healthcheck".into(),
            environment: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timeout: Duration::from_secs(30),
            memory_mb: 256,
            handler: "bootstrap".into(),
            architecture: "x86_64".into(),
            code_sha256: String::new(),
            code_bucket: None,
            code_key: None,
        }
    }

    #[test]
    fn an_instances_endpoint_is_its_identifier_under_rds_amazonaws_com() {
        let db = LocalDatabase {
            instance_id: "BarkDb".into(),
            port: 5432,
            local_port: 54011,
            tls: false,
        };
        assert!(db.is_endpoint("barkdb.aaaaaaaaaa.us-east-1.rds.amazonaws.com"));
        assert!(db.is_endpoint("BARKDB.c9akciq32.eu-west-1.RDS.amazonaws.com"));
        assert!(db.is_endpoint("barkdb.c9akciq32.cn-north-1.rds.amazonaws.com.cn"));
        assert!(!db.is_endpoint("barkdb2.aaaaaaaaaa.us-east-1.rds.amazonaws.com"));
        assert!(!db.is_endpoint("barkdb.example.com"));
        assert!(!db.is_endpoint("barkdb"));
        assert!(!db.is_endpoint("5432"));
    }

    #[test]
    fn rds_endpoint_and_management_endpoint_point_at_local_servers() {
        let stage = DeployedStage {
            region: "us-east-1".into(),
            endpoint_url: "http://127.0.0.1:4566".into(),
            ..DeployedStage::default()
        };
        let f = function(&[
            ("DB_HOST", "db.abc.us-east-1.rds.amazonaws.com"),
            ("DB_PORT", "5432"),
            ("STAGE", "local"),
            (
                "WEBSOCKET_MANAGEMENT_ENDPOINT",
                "https://a1b2.execute-api.us-east-1.amazonaws.com/local",
            ),
        ]);
        let rewrites = Rewrites {
            databases: vec![LocalDatabase {
                instance_id: "db".into(),
                port: 5432,
                local_port: 54011,
                tls: true,
            }],
            gateways: vec![LocalGateway {
                api_id: "a1b2".into(),
                management_endpoint: "http://127.0.0.1:3011/local".into(),
            }],
            lambda_endpoint: Some("http://127.0.0.1:9001".into()),
        };
        let env = environment(&stage, &f, &rewrites);
        assert_eq!(env["AWS_ENDPOINT_URL_LAMBDA"], "http://127.0.0.1:9001");
        assert_eq!(env["DB_HOST"], "127.0.0.1");
        assert_eq!(env["DB_PORT"], "54011");
        assert_eq!(env["STAGE"], "local");
        assert_eq!(
            env["WEBSOCKET_MANAGEMENT_ENDPOINT"],
            "http://127.0.0.1:3011/local"
        );
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:4566");
        assert!(!env.contains_key("DB_SSLMODE"), "TLS server: keep require");

        let plain = Rewrites {
            databases: vec![LocalDatabase {
                tls: false,
                ..rewrites.databases[0].clone()
            }],
            gateways: vec![],
            lambda_endpoint: None,
        };
        assert_eq!(environment(&stage, &f, &plain)["DB_SSLMODE"], "disable");
    }

    #[test]
    fn functions_are_found_by_name_stack_key_or_unique_key() {
        let stage = DeployedStage {
            functions: vec![function(&[])],
            ..DeployedStage::default()
        };
        assert!(find(&stage, "database.healthcheck").is_some());
        assert!(find(&stage, "healthcheck").is_some());
        assert!(find(&stage, "app-local-database-healthcheck").is_some());
        assert!(find(&stage, "jobs.healthcheck").is_none());
        assert!(find(&stage, "nope").is_none());
    }
}
