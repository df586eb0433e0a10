//! Carrying out a hotswap ([`crate::plan::Action::Hotswap`]): UpdateFunctionCode
//! and UpdateFunctionConfiguration on each function, each followed by polling
//! GetFunction until `LastUpdateStatus` is `Successful`. No stack operation: the
//! stack keeps its old parameters and template (it is drifted) until the next
//! full deploy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{Environment, LastUpdateStatus};

use super::cfn::Backoff;
use super::{Error, Event, Reporter};
use crate::aws::describe_error;
use crate::plan::hotswap::{EnvValue, FunctionSwap};

/// How long one function update may stay `InProgress`.
const UPDATE_LIMIT: Duration = Duration::from_secs(600);

/// Update every function of the plan (concurrently); the functions' names.
pub async fn apply(
    lambda: &aws_sdk_lambda::Client,
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    stack_name: &str,
    functions: &[FunctionSwap],
    reporter: &dyn Reporter,
) -> Result<Vec<String>, Error> {
    let jobs = functions.iter().map(|f| async move {
        let name = match &f.function_name {
            Some(n) => n.clone(),
            None => physical_id(cfn, stack_name, &f.logical_id).await?,
        };
        swap(lambda, stack_name, &name, f).await?;
        reporter.event(&Event::Note {
            stack: stack.to_string(),
            text: format!("hotswapped `{name}` ({})", f.what()),
        });
        Ok::<_, Error>(name)
    });
    futures::future::try_join_all(jobs).await
}

fn aws_err(stack_name: &str, operation: &'static str, message: String) -> Error {
    Error::Aws {
        stack: Some(stack_name.to_string()),
        operation,
        message,
    }
}

/// The function's name as the stack created it (a template without a literal
/// `FunctionName`).
async fn physical_id(
    cfn: &aws_sdk_cloudformation::Client,
    stack_name: &str,
    logical_id: &str,
) -> Result<String, Error> {
    let out = cfn
        .describe_stack_resource()
        .stack_name(stack_name)
        .logical_resource_id(logical_id)
        .send()
        .await
        .map_err(|e| aws_err(stack_name, "DescribeStackResource", describe_error(&e)))?;
    out.stack_resource_detail()
        .and_then(|d| d.physical_resource_id())
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            aws_err(
                stack_name,
                "DescribeStackResource",
                format!("`{logical_id}` has no physical id"),
            )
        })
}

async fn swap(
    lambda: &aws_sdk_lambda::Client,
    stack_name: &str,
    name: &str,
    f: &FunctionSwap,
) -> Result<(), Error> {
    if let Some(code) = &f.code {
        lambda
            .update_function_code()
            .function_name(name)
            .s3_bucket(&code.s3_bucket)
            .s3_key(&code.s3_key)
            .send()
            .await
            .map_err(|e| aws_err(stack_name, "UpdateFunctionCode", describe_error(&e)))?;
        wait_updated(lambda, stack_name, name, "UpdateFunctionCode").await?;
    }
    if let Some(env) = &f.environment {
        let mut current: HashMap<String, String> = HashMap::new();
        if env.values().any(|v| *v == EnvValue::Deployed) {
            let out = lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| aws_err(stack_name, "GetFunctionConfiguration", describe_error(&e)))?;
            current = out
                .environment()
                .and_then(|e| e.variables())
                .cloned()
                .unwrap_or_default();
        }
        let mut variables = HashMap::new();
        for (k, v) in env {
            let value = match v {
                EnvValue::Value(s) => s.clone(),
                EnvValue::Deployed => current.get(k).cloned().unwrap_or_default(),
            };
            variables.insert(k.clone(), value);
        }
        lambda
            .update_function_configuration()
            .function_name(name)
            .environment(
                Environment::builder()
                    .set_variables(Some(variables))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                aws_err(
                    stack_name,
                    "UpdateFunctionConfiguration",
                    describe_error(&e),
                )
            })?;
        wait_updated(lambda, stack_name, name, "UpdateFunctionConfiguration").await?;
    }
    Ok(())
}

/// Poll GetFunction until the update `operation` started settles. An endpoint that
/// does not report `LastUpdateStatus` applied the update synchronously.
async fn wait_updated(
    lambda: &aws_sdk_lambda::Client,
    stack_name: &str,
    name: &str,
    operation: &'static str,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        backoff.wait().await;
        let out = lambda
            .get_function()
            .function_name(name)
            .send()
            .await
            .map_err(|e| aws_err(stack_name, "GetFunction", describe_error(&e)))?;
        let conf = out.configuration();
        match conf.and_then(|c| c.last_update_status()) {
            None | Some(LastUpdateStatus::Successful) => return Ok(()),
            Some(LastUpdateStatus::Failed) => {
                let reason = conf
                    .and_then(|c| c.last_update_status_reason())
                    .unwrap_or("no reason given");
                return Err(aws_err(
                    stack_name,
                    operation,
                    format!("the update of `{name}` failed: {reason}"),
                ));
            }
            Some(_) if started.elapsed() > UPDATE_LIMIT => {
                return Err(aws_err(
                    stack_name,
                    "GetFunction",
                    format!(
                        "`{name}` is still updating after {}s",
                        UPDATE_LIMIT.as_secs()
                    ),
                ));
            }
            Some(_) => {}
        }
    }
}
