//! Shared steps of `barkctl dev` and `barkctl invoke`: read the stage, fetch the
//! binaries, build the runtime's function specs, and the `dev.json` record that
//! lets `barkctl invoke` reach a running `barkctl dev`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::deployed::{self, DeployedStage, Function};
use super::runtime::FunctionSpec;
use super::stage::{self, Rewrites};
use super::{bundles, Error};

/// Read the deployed stage; a stage with no stack is an error.
pub async fn load(
    sdk: &aws_config::SdkConfig,
    app: &str,
    stage: &str,
) -> Result<DeployedStage, Error> {
    let deployed = deployed::read(sdk, app, stage).await?;
    if deployed.functions.is_empty()
        && deployed.websocket_apis.is_empty()
        && deployed.databases.is_empty()
    {
        let exists = !deployed_stacks(sdk, app, stage).await.is_empty();
        if !exists {
            return Err(Error::NotDeployed {
                stage: stage.to_string(),
                endpoint: sdk.endpoint_url().unwrap_or("AWS").to_string(),
                prefix: format!("{app}-{stage}-"),
            });
        }
    }
    Ok(deployed)
}

/// Names of the stage's stacks that exist (empty: nothing deployed).
pub async fn deployed_stacks(sdk: &aws_config::SdkConfig, app: &str, stage: &str) -> Vec<String> {
    let cfn = crate::aws::cloudformation(sdk);
    let prefix = format!("{app}-{stage}-");
    let mut names = Vec::new();
    let mut pages = cfn.describe_stacks().into_paginator().send();
    while let Some(Ok(page)) = pages.next().await {
        for s in page.stacks() {
            let name = s.stack_name().unwrap_or_default();
            let gone = matches!(
                s.stack_status(),
                Some(aws_sdk_cloudformation::types::StackStatus::DeleteComplete)
            );
            if name.starts_with(&prefix) && !gone {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// The asset bucket of the app's toolkit stack.
pub async fn asset_bucket(sdk: &aws_config::SdkConfig, app: &str) -> Result<String, Error> {
    let name = crate::deploy::assets::toolkit_stack_name(app);
    let cfn = crate::aws::cloudformation(sdk);
    let outs = crate::deploy::outputs::read(&cfn, &[(name.clone(), name.clone())])
        .await
        .map_err(|e| Error::NoToolkit {
            stack: format!("{name} ({e})"),
        })?;
    outs.get(&name)
        .and_then(|o| o.as_ref())
        .and_then(|o| o.get(crate::deploy::assets::BUCKET_OUTPUT))
        .cloned()
        .ok_or(Error::NoToolkit { stack: name })
}

/// Fetch the binaries of `functions` and describe them for the runtime.
pub async fn specs(
    sdk: &aws_config::SdkConfig,
    app: &str,
    stage: &DeployedStage,
    functions: &[&Function],
    rewrites: &Rewrites,
    cache: &Path,
    concurrency: usize,
) -> Result<Vec<FunctionSpec>, Error> {
    if functions.is_empty() {
        return Ok(Vec::new());
    }
    let bucket = asset_bucket(sdk, app).await?;
    let s3 = crate::aws::s3(sdk);
    let mut out = Vec::new();
    for f in functions {
        let binary = bundles::executable(&s3, &bucket, f, cache).await?;
        out.push(stage::spec(stage, f, binary, rewrites, concurrency));
    }
    Ok(out)
}

/// Where fetched binaries are kept.
pub fn cache_dir(project_root: &Path) -> PathBuf {
    project_root.join(".barkctl").join("dev").join("bundles")
}

/// What a running `barkctl dev` records for other barkctl processes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevRecord {
    pub pid: u32,
    pub stage: String,
    /// `127.0.0.1:port` of the runtime (Lambda's Invoke API answers there).
    pub runtime: String,
    pub gateways: Vec<GatewayRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayRecord {
    pub api_id: String,
    pub stack: String,
    pub url: String,
    pub management_endpoint: String,
}

pub fn record_path(project_root: &Path, stage: &str) -> PathBuf {
    project_root
        .join(".barkctl")
        .join("dev")
        .join(format!("{stage}.json"))
}

pub fn write_record(project_root: &Path, record: &DevRecord) -> std::io::Result<()> {
    let path = record_path(project_root, &record.stage);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(record).unwrap_or_default())
}

/// The record of a `barkctl dev` of `stage` that is still alive.
pub fn running(project_root: &Path, stage: &str) -> Option<DevRecord> {
    let text = std::fs::read(record_path(project_root, stage)).ok()?;
    let record: DevRecord = serde_json::from_slice(&text).ok()?;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", record.pid)).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains("barkctl")
        .then_some(record)
}

pub fn remove_record(project_root: &Path, stage: &str) {
    let _ = std::fs::remove_file(record_path(project_root, stage));
}

/// Invoke through a running `barkctl dev`'s Lambda Invoke API (plain HTTP/1.1
/// over loopback). Returns the body and the `X-Amz-Function-Error` flag.
pub async fn invoke_remote(
    address: &str,
    function: &str,
    payload: &[u8],
) -> Result<(Vec<u8>, bool), Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let unreachable = |reason: String| Error::DevUnreachable {
        address: address.to_string(),
        reason,
    };
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let head = format!(
        "POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    stream
        .write_all(payload)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| unreachable("no HTTP response".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = raw[split + 4..].to_vec();
    if !head.starts_with("http/1.1 200") {
        let status = head.lines().next().unwrap_or_default().to_string();
        return Err(unreachable(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    Ok((body, head.contains("x-amz-function-error")))
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        let end = (start + size).min(body.len());
        out.extend_from_slice(&body[start..end]);
        body = body.get(end + 2..).unwrap_or_default();
    }
    out
}
