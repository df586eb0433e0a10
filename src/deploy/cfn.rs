//! The one CloudFormation layer deploy, diff, outputs and destroy share: reading
//! stacks and templates, change sets (create, wait, describe every page,
//! execute with a ClientRequestToken, delete), polling with bounded backoff,
//! stack events and root causes.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{
    ChangeSetStatus, ChangeSetType, Parameter, Tag, TemplateStage,
};
use aws_sdk_cloudformation::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde_json::Value;

use super::{Error, Event, Reporter, RootCause};
use crate::aws::{describe_error, error_code};
use crate::plan::{self, Change, ChangeAction, ChangeDetail, Deployed, StackState};

/// How often a read is tried when it meets throttling or a transient error.
const READ_ATTEMPTS: usize = 10;
/// Event pages read per poll at most (100 events each on AWS).
const MAX_EVENT_PAGES: usize = 50;
/// How long barkctl waits for one stack operation before giving up.
pub const WAIT_LIMIT: Duration = Duration::from_secs(3 * 3600);

/// Bounded exponential backoff: 0, 250 ms, 500 ms, 1 s, ... up to the poll
/// interval ([`crate::aws::max_poll_interval`]: 5 s unless `BARKCTL_POLL_MAX_MS`).
/// Emulators finish synchronously, so the first poll is immediate.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Backoff {
            next: Duration::ZERO,
            max: crate::aws::max_poll_interval(),
        }
    }

    pub async fn wait(&mut self) {
        if !self.next.is_zero() {
            tokio::time::sleep(self.next).await;
        }
        self.next = if self.next.is_zero() {
            Duration::from_millis(250).min(self.max)
        } else {
            (self.next * 2).min(self.max)
        };
    }
}

/// A read-only call, repeated after throttling or a transient error (a 5xx, a
/// reset connection, a timeout) with bounded backoff, each repeat counted for the
/// summary. The SDK's own retries come first; this outlasts a longer storm.
pub async fn read<T, E, F, Fut>(
    mut call: F,
) -> Result<T, aws_sdk_cloudformation::error::SdkError<E, HttpResponse>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
        Output = Result<T, aws_sdk_cloudformation::error::SdkError<E, HttpResponse>>,
    >,
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata,
{
    let max = crate::aws::max_poll_interval().max(Duration::from_millis(50));
    let mut pause = Duration::from_millis(100).min(max);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < READ_ATTEMPTS && crate::aws::is_transient_http(&e) => {
                crate::aws::count_retry();
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(max);
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// A ClientRequestToken for one stack operation: its events carry it, which is
/// how barkctl tells this run's events from an earlier operation's.
pub fn request_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("barkctl-{:016x}", h.finish())
}

fn aws_err(stack: &str, operation: &'static str, message: String) -> Error {
    Error::Aws {
        stack: Some(stack.to_string()),
        operation,
        message,
    }
}

/// A "does not exist" answer from DescribeStacks / GetTemplate.
fn is_missing(message: &str) -> bool {
    message.contains("does not exist")
}

/// DescribeStacks for one stack; `None` when it does not exist.
pub async fn describe(
    client: &Client,
    stack_name: &str,
) -> Result<Option<aws_sdk_cloudformation::types::Stack>, Error> {
    match read(|| client.describe_stacks().stack_name(stack_name).send()).await {
        Ok(out) => Ok(out.stacks().first().cloned()),
        Err(e) => {
            let message = describe_error(&e);
            if is_missing(&message) {
                Ok(None)
            } else {
                Err(aws_err(stack_name, "DescribeStacks", message))
            }
        }
    }
}

pub fn state_of(stack: Option<&aws_sdk_cloudformation::types::Stack>) -> StackState {
    StackState::from_status(stack.and_then(|s| s.stack_status()).map(|s| s.as_str()))
}

pub fn outputs_of(stack: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect()
}

/// The parameters a stack was deployed with (those at their `Default` too).
pub fn parameters_of(stack: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_string(),
                p.parameter_value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

pub fn tags_of(stack: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    stack
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

/// The deployed state of a stack: status, template (as submitted), parameters,
/// tags, outputs. The template is only read for stacks that can be updated.
pub async fn deployed(client: &Client, stack_name: &str) -> Result<Deployed, Error> {
    let Some(stack) = describe(client, stack_name).await? else {
        return Ok(Deployed::not_found());
    };
    let state = state_of(Some(&stack));
    let template = match state {
        StackState::Stable(_) => get_template(client, stack_name).await?,
        _ => None,
    };
    Ok(Deployed {
        state,
        template,
        parameters: parameters_of(&stack),
        tags: tags_of(&stack),
        outputs: outputs_of(&stack),
        termination_protection: stack.enable_termination_protection().unwrap_or(false),
    })
}

/// GetTemplate (stage Original), parsed; `None` when the stack is gone.
pub async fn get_template(client: &Client, stack_name: &str) -> Result<Option<Value>, Error> {
    // A body that does not parse is treated as "different": the update rewrites it.
    Ok(template_body(client, stack_name)
        .await?
        .and_then(|b| crate::render::cfn_yaml::parse(&b).ok()))
}

/// GetTemplate (stage Original) as CloudFormation returns it; `None` when the
/// stack is gone.
pub async fn template_body(client: &Client, stack_name: &str) -> Result<Option<String>, Error> {
    let out = match read(|| {
        client
            .get_template()
            .stack_name(stack_name)
            .template_stage(TemplateStage::Original)
            .send()
    })
    .await
    {
        Ok(out) => out,
        Err(e) => {
            let message = describe_error(&e);
            if is_missing(&message) {
                return Ok(None);
            }
            return Err(aws_err(stack_name, "GetTemplate", message));
        }
    };
    Ok(out.template_body().map(str::to_string))
}

/// Where the template goes: inline, or an S3 URL for bodies over the inline limit.
pub enum TemplateSource {
    Body(String),
    Url(String),
}

pub struct ChangeSetRequest<'a> {
    pub stack_name: &'a str,
    /// [`change_set_name`]: unique per change set.
    pub change_set_name: &'a str,
    /// Why the change set exists (`barkctl diff: read, then deleted`).
    pub description: Option<&'a str>,
    pub create: bool,
    pub template: &'a TemplateSource,
    pub parameters: &'a BTreeMap<String, String>,
    /// Parameters passed with UsePreviousValue: their deployed values stay.
    pub previous: &'a [String],
    pub tags: &'a BTreeMap<String, String>,
}

/// A fresh change-set name: `barkctl-` and the time to the millisecond.
pub fn change_set_name() -> String {
    format!("barkctl-{}", chrono::Utc::now().format("%Y%m%d%H%M%S%3f"))
}

/// The result of creating a change set and waiting for it.
pub enum ChangeSetResult {
    Ready {
        id: String,
        changes: Vec<Change>,
    },
    /// The endpoint found nothing to change (the empty change set is deleted).
    NoChanges,
}

fn no_changes(message: &str) -> bool {
    message.contains("No updates are to be performed")
        || message.contains("didn't contain changes")
        || message.contains("does not contain changes")
}

pub async fn create_change_set(
    client: &Client,
    req: &ChangeSetRequest<'_>,
) -> Result<ChangeSetResult, Error> {
    let name = req.change_set_name;
    let mut call = client
        .create_change_set()
        .stack_name(req.stack_name)
        .change_set_name(name)
        .set_description(req.description.map(str::to_string))
        .change_set_type(if req.create {
            ChangeSetType::Create
        } else {
            ChangeSetType::Update
        })
        .set_capabilities(Some(crate::aws::CAPABILITIES.to_vec()))
        .set_parameters(Some(
            req.parameters
                .iter()
                .map(|(k, v)| {
                    Parameter::builder()
                        .parameter_key(k)
                        .parameter_value(v)
                        .build()
                })
                .chain(req.previous.iter().map(|k| {
                    Parameter::builder()
                        .parameter_key(k)
                        .use_previous_value(true)
                        .build()
                }))
                .collect(),
        ))
        .set_tags(Some(
            req.tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ));
    call = match req.template {
        TemplateSource::Body(b) => call.template_body(b),
        TemplateSource::Url(u) => call.template_url(u),
    };
    let id = match call.send().await {
        Ok(out) => out.id().unwrap_or(name).to_string(),
        Err(e) => {
            let message = describe_error(&e);
            if no_changes(&message) {
                return Ok(ChangeSetResult::NoChanges);
            }
            return Err(aws_err(req.stack_name, "CreateChangeSet", message));
        }
    };

    let mut backoff = Backoff::new();
    let started = Instant::now();
    loop {
        backoff.wait().await;
        let out = read(|| {
            client
                .describe_change_set()
                .change_set_name(&id)
                .stack_name(req.stack_name)
                .send()
        })
        .await
        .map_err(|e| aws_err(req.stack_name, "DescribeChangeSet", describe_error(&e)))?;
        match out.status() {
            Some(ChangeSetStatus::CreateComplete) => break,
            Some(ChangeSetStatus::Failed) => {
                let reason = out
                    .status_reason()
                    .unwrap_or("change set failed")
                    .to_string();
                // A failed change set is no use to anyone: it goes, and with a
                // CREATE one the empty REVIEW_IN_PROGRESS stack it made.
                delete_change_set(client, req.stack_name, &id).await;
                if no_changes(&reason) {
                    return Ok(ChangeSetResult::NoChanges);
                }
                if req.create {
                    discard_review_stack(client, req.stack_name).await;
                }
                return Err(Error::StackFailed {
                    stack_name: req.stack_name.to_string(),
                    summary: format!("change set failed: {reason}"),
                    causes: Vec::new(),
                    not_started: Vec::new(),
                });
            }
            _ if started.elapsed() > WAIT_LIMIT => {
                return Err(Error::WaitTimeout {
                    stack_name: req.stack_name.to_string(),
                    status: "change set CREATE_PENDING".into(),
                    waited: started.elapsed(),
                })
            }
            _ => {}
        }
    }

    let mut changes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = read(|| {
            client
                .describe_change_set()
                .change_set_name(&id)
                .stack_name(req.stack_name)
                .set_next_token(token.clone())
                .send()
        })
        .await
        .map_err(|e| aws_err(req.stack_name, "DescribeChangeSet", describe_error(&e)))?;
        for c in out.changes() {
            if let Some(rc) = c.resource_change() {
                changes.push(Change {
                    action: ChangeAction::parse(rc.action().map(|a| a.as_str()).unwrap_or("")),
                    logical_id: rc.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: rc.resource_type().unwrap_or_default().to_string(),
                    replacement: rc.replacement().map(|r| r.as_str().to_string()),
                    scope: rc.scope().iter().map(|s| s.as_str().to_string()).collect(),
                    details: rc
                        .details()
                        .iter()
                        .filter_map(|d| {
                            let t = d.target()?;
                            let attr = t.attribute().map(|a| a.as_str()).unwrap_or_default();
                            Some(ChangeDetail {
                                path: match t.name() {
                                    Some(n) => format!("{attr}.{n}"),
                                    None => attr.to_string(),
                                },
                                recreation: t.requires_recreation().map(|r| r.as_str().to_string()),
                            })
                        })
                        .collect(),
                });
            }
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(ChangeSetResult::Ready { id, changes })
}

/// Best effort: the empty REVIEW_IN_PROGRESS stack a CREATE change set made,
/// once that change set is refused or failed (deploy recreates it next time).
pub async fn discard_review_stack(client: &Client, stack_name: &str) {
    let _ = client.delete_stack().stack_name(stack_name).send().await;
}

/// Best effort: an empty or refused change set left behind is harmless.
pub async fn delete_change_set(client: &Client, stack_name: &str, id: &str) {
    let _ = try_delete_change_set(client, stack_name, id).await;
}

/// DeleteChangeSet, for callers that must know it is gone (diff leaves no trace).
pub async fn try_delete_change_set(
    client: &Client,
    stack_name: &str,
    id: &str,
) -> Result<(), Error> {
    client
        .delete_change_set()
        .change_set_name(id)
        .stack_name(stack_name)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_err(stack_name, "DeleteChangeSet", describe_error(&e)))
}

/// ExecuteChangeSet. An endpoint that fails the operation synchronously (moto
/// does: HTTP 400 with a message, or 500) is a stack failure with that message as
/// the root cause.
pub async fn execute_change_set(
    client: &Client,
    stack_name: &str,
    id: &str,
    token: &str,
) -> Result<(), Error> {
    client
        .execute_change_set()
        .change_set_name(id)
        .stack_name(stack_name)
        .client_request_token(token)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            rejected(
                stack_name,
                "ExecuteChangeSet",
                describe_error(&e),
                error_code(&e),
            )
        })
}

/// Apply directly with CreateStack / UpdateStack: the emulator path. moto's
/// ExecuteChangeSet applies resources but leaves the stack's outputs, parameters
/// and tags as they were (moto 5.2.5 `execute_change_set`), which would starve
/// downstream stacks of outputs and make every later deploy look changed.
pub async fn apply_directly(
    client: &Client,
    req: &ChangeSetRequest<'_>,
    token: &str,
) -> Result<(), Error> {
    let params: Vec<Parameter> = req
        .parameters
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    let tags: Vec<Tag> = req
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let caps = crate::aws::CAPABILITIES;
    let (operation, sent) = if req.create {
        let mut call = client
            .create_stack()
            .stack_name(req.stack_name)
            .client_request_token(token)
            .set_capabilities(Some(caps.to_vec()))
            .set_parameters(Some(params))
            .set_tags(Some(tags));
        call = match req.template {
            TemplateSource::Body(b) => call.template_body(b),
            TemplateSource::Url(u) => call.template_url(u),
        };
        (
            "CreateStack",
            call.send()
                .await
                .map(|_| ())
                .map_err(|e| (describe_error(&e), error_code(&e))),
        )
    } else {
        let mut call = client
            .update_stack()
            .stack_name(req.stack_name)
            .client_request_token(token)
            .set_capabilities(Some(caps.to_vec()))
            .set_parameters(Some(params))
            .set_tags(Some(tags));
        call = match req.template {
            TemplateSource::Body(b) => call.template_body(b),
            TemplateSource::Url(u) => call.template_url(u),
        };
        (
            "UpdateStack",
            call.send()
                .await
                .map(|_| ())
                .map_err(|e| (describe_error(&e), error_code(&e))),
        )
    };
    sent.map_err(|(message, code)| rejected(req.stack_name, operation, message, code))
}

/// A stack operation the endpoint refused synchronously: the message is the root cause.
fn rejected(
    stack_name: &str,
    operation: &'static str,
    message: String,
    code: Option<String>,
) -> Error {
    Error::StackFailed {
        stack_name: stack_name.to_string(),
        summary: format!(
            "the endpoint rejected {operation}{}",
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        ),
        causes: vec![RootCause {
            logical_id: stack_name.to_string(),
            resource_type: "AWS::CloudFormation::Stack".into(),
            status: format!("{operation} failed"),
            reason: message,
        }],
        not_started: Vec::new(),
    }
}

/// The events of one stack operation, found by identity rather than by clock:
/// the events newer than the newest one before the operation (its `marker`), and
/// of those only the ones carrying the operation's ClientRequestToken where the
/// endpoint reports tokens. Every page back to the marker is read, so a long
/// rollback cannot push the root cause out of sight.
pub struct EventTail {
    marker: Option<String>,
    token: Option<String>,
    seen: HashSet<String>,
    /// An event of this operation has been seen: its statuses are this run's.
    pub started: bool,
    complete: HashSet<String>,
    pub failures: Vec<RootCause>,
}

impl EventTail {
    /// Before starting an operation on `stack_name`: note its newest event.
    pub async fn before(client: &Client, stack_name: &str, token: Option<&str>) -> Self {
        let marker = read(|| client.describe_stack_events().stack_name(stack_name).send())
            .await
            .ok()
            .and_then(|out| {
                out.stack_events()
                    .first()
                    .and_then(|e| e.event_id().map(str::to_string))
            });
        EventTail {
            marker,
            token: token.map(str::to_string),
            seen: HashSet::new(),
            started: false,
            complete: HashSet::new(),
            failures: Vec::new(),
        }
    }

    /// Read the events this operation added since the last poll (every page
    /// back to what was seen) and report them oldest first.
    pub async fn poll(
        &mut self,
        client: &Client,
        stack: &str,
        stack_name: &str,
        total: usize,
        reporter: &dyn Reporter,
    ) {
        let mut fresh = Vec::new();
        let mut next: Option<String> = None;
        'pages: for _ in 0..MAX_EVENT_PAGES {
            let Ok(out) = read(|| {
                client
                    .describe_stack_events()
                    .stack_name(stack_name)
                    .set_next_token(next.clone())
                    .send()
            })
            .await
            else {
                // Events are informative; the status poll decides. What this
                // poll missed is read by the next one (nothing is marked seen).
                return;
            };
            for e in out.stack_events() {
                let id = e.event_id().unwrap_or_default();
                if self.seen.contains(id) || self.marker.as_deref() == Some(id) {
                    break 'pages;
                }
                // Another token: an earlier operation's events; ours are all newer.
                if let (Some(ours), Some(theirs)) = (&self.token, e.client_request_token()) {
                    if ours != theirs {
                        break 'pages;
                    }
                }
                fresh.push(e.clone());
            }
            next = out.next_token().map(str::to_string);
            if next.is_none() {
                break;
            }
        }
        if !fresh.is_empty() {
            self.started = true;
        }
        for e in fresh.into_iter().rev() {
            self.seen
                .insert(e.event_id().unwrap_or_default().to_string());
            let logical = e.logical_resource_id().unwrap_or_default().to_string();
            let status = e
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            let ty = e.resource_type().unwrap_or_default().to_string();
            let reason = e.resource_status_reason().map(str::to_string);
            let is_stack = ty == "AWS::CloudFormation::Stack" && logical == stack_name;
            if !is_stack && status.ends_with("_COMPLETE") {
                self.complete.insert(logical.clone());
            }
            if status.ends_with("_FAILED") {
                let r = reason.clone().unwrap_or_default();
                // Cancelled siblings are noise, and the stack's own failure only
                // repeats its resources' unless none failed.
                let repeat = is_stack && !self.failures.is_empty();
                if !r.contains("cancelled") && !repeat {
                    self.failures.push(RootCause {
                        logical_id: logical.clone(),
                        resource_type: ty.clone(),
                        status: status.clone(),
                        reason: r,
                    });
                }
            }
            reporter.event(&Event::Resource {
                stack: stack.to_string(),
                timestamp: e.timestamp().map(|t| t.to_string()).unwrap_or_default(),
                logical_id: logical,
                resource_type: ty,
                status,
                reason,
                done: self.complete.len().min(total),
                total,
            });
        }
    }
}

/// Poll a stack until its operation settles. Returns the final stack (None when
/// deleted) and whether the operation succeeded.
pub async fn wait(
    client: &Client,
    stack: &str,
    stack_name: &str,
    total: usize,
    tail: &mut EventTail,
    reporter: &dyn Reporter,
    trust_first: bool,
) -> Result<(Option<aws_sdk_cloudformation::types::Stack>, bool), Error> {
    let mut backoff = Backoff::new();
    let started = Instant::now();
    let mut seen_running = false;
    loop {
        backoff.wait().await;
        tail.poll(client, stack, stack_name, total, reporter).await;
        let current = describe(client, stack_name).await?;
        let Some(status) = current
            .as_ref()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_string())
        else {
            return Ok((None, true));
        };
        let settled = plan::settled(&status);
        seen_running |= settled == plan::Settled::Pending;
        // A settled status before any sign of this operation (its events, or an
        // IN_PROGRESS status) is the previous operation's: CloudFormation has not
        // shown ours yet. Emulators that apply synchronously are trusted.
        let ours = tail.started || seen_running || trust_first;
        match settled {
            plan::Settled::Succeeded | plan::Settled::Failed if !ours => {
                if started.elapsed() > WAIT_LIMIT {
                    return Err(Error::WaitTimeout {
                        stack_name: stack_name.to_string(),
                        status,
                        waited: started.elapsed(),
                    });
                }
            }
            plan::Settled::Succeeded => return Ok((current, true)),
            plan::Settled::Failed => {
                // One more read: the failure events may land after the status.
                tail.poll(client, stack, stack_name, total, reporter).await;
                return Ok((current, false));
            }
            plan::Settled::Pending if started.elapsed() > WAIT_LIMIT => {
                return Err(Error::WaitTimeout {
                    stack_name: stack_name.to_string(),
                    status,
                    waited: started.elapsed(),
                })
            }
            plan::Settled::Pending => {}
        }
    }
}

/// Wait for an operation someone else started, without streaming its events.
pub async fn wait_quietly(client: &Client, stack_name: &str) -> Result<StackState, Error> {
    let mut backoff = Backoff::new();
    let started = Instant::now();
    loop {
        backoff.wait().await;
        let state = state_of(describe(client, stack_name).await?.as_ref());
        if !state.is_in_progress() {
            return Ok(state);
        }
        if started.elapsed() > WAIT_LIMIT {
            return Err(Error::WaitTimeout {
                stack_name: stack_name.to_string(),
                status: state.status().to_string(),
                waited: started.elapsed(),
            });
        }
    }
}

/// DeleteStack and wait until it is gone. Some endpoints answer DeleteStack
/// with an error yet remove the stack (moto: HTTP 500 for a stack stuck in
/// progress, DependencyViolation for route tables), so the answer that counts
/// is the stack's absence afterwards.
pub async fn delete_and_wait(
    client: &Client,
    stack: &str,
    stack_name: &str,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let token = request_token();
    let mut tail = EventTail::before(client, stack_name, Some(&token)).await;
    let sent = client
        .delete_stack()
        .stack_name(stack_name)
        .client_request_token(&token)
        .send()
        .await;
    let (after, ok) = wait(client, stack, stack_name, 0, &mut tail, reporter, false).await?;
    let gone = after.is_none()
        || after
            .as_ref()
            .and_then(|s| s.stack_status())
            .is_some_and(|s| s.as_str() == "DELETE_COMPLETE");
    if gone && ok {
        return Ok(());
    }
    let mut summary = match sent {
        Err(e) => format!("DeleteStack: {}", describe_error(&e)),
        Ok(_) => "the stack could not be deleted".to_string(),
    };
    if let Some(s) = after.as_ref().and_then(|s| s.stack_status_reason()) {
        summary = format!("{summary} ({s})");
    }
    Err(Error::StackFailed {
        stack_name: stack_name.to_string(),
        summary,
        causes: tail.failures,
        not_started: Vec::new(),
    })
}

pub async fn set_termination_protection(
    client: &Client,
    stack_name: &str,
    enabled: bool,
) -> Result<(), Error> {
    client
        .update_termination_protection()
        .stack_name(stack_name)
        .enable_termination_protection(enabled)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            aws_err(
                stack_name,
                "UpdateTerminationProtection",
                describe_error(&e),
            )
        })
}
