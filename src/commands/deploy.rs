//! `barkctl deploy`: plan, then carry the plan out wave by wave.
//!
//! Order of work (DESIGN.md "Deploy"): select and render (invalid input stops here,
//! before any AWS call), then build the bundles on a thread of their own while the
//! local emulator starts (local stages), and, when no approval needs the bundles,
//! while the toolkit stack (asset bucket, lock table) is ensured and the stage lock
//! taken. Where the broadening gate asks (read-only calls), it waits for the build
//! first. Then upload missing bundles, deploy, and release the lock (on errors and
//! Ctrl-C too). A cold first run and a no-change deploy each wait for the longer of
//! the build and the AWS set-up, not for their sum.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use super::{Ctx, Session};
use crate::aws::{self, Target};
use crate::cli::DeployArgs;
use crate::deploy::{self, assets, DeployInput, Reporter, StackInput, StackResult};
use crate::plan::{Approval, Approved, Broadening, ParamValue};
use crate::render::{ParamSource, Rendered};
use crate::report::progress;
use crate::{Error, Result};

pub fn run(ctx: &Ctx, args: &DeployArgs) -> Result<i32> {
    execute(ctx, args).map(|_| crate::exit::OK)
}

/// The deploy, with each stack's result (none for a dry run or a declined prompt).
/// `barkctl watch` runs it once per round.
pub(crate) fn execute(ctx: &Ctx, args: &DeployArgs) -> Result<Vec<StackResult>> {
    let session = ctx.session()?;
    let stage = session.stage()?.clone();
    // A hotswap leaves stacks drifted from their templates: not on a protected
    // stage unless asked for. A dry run changes nothing, so it may plan one.
    if args.hotswap && stage.termination_protection && !args.force && !args.dry_run {
        return Err(deploy::Error::ProtectedHotswap {
            stage: stage.name.clone(),
        }
        .into());
    }
    let selected = session.select(&args.stacks, args.exclusively)?;
    let waves = session.graph().waves_of(&selected)?;
    let ordered: Vec<String> = waves.iter().flatten().cloned().collect();
    let rendered = session.render(&ordered)?;
    // CloudFormation's own limit, checked before anything is built or called.
    for r in &rendered {
        let bytes = serde_json::to_string(&r.template).map_or(0, |s| s.len());
        if bytes > aws::TEMPLATE_URL_LIMIT {
            return Err(deploy::Error::TemplateTooLarge {
                stack_name: r.stack_name.clone(),
                bytes,
            }
            .into());
        }
    }

    std::thread::scope(|scope| {
        let mut build = Build {
            running: Some(scope.spawn(|| build_bundles(&session, &ordered, ctx))),
            bundles: BTreeMap::new(),
        };
        let target = match target(&session, &stage) {
            Ok(t) => t,
            // A failed build is the error to show: it is about the user's code.
            Err(e) => return Err(build.wait().err().unwrap_or(e)),
        };
        let reporter = progress::reporter(ctx.term, args.progress);
        super::block_on(async {
            let sdk = aws::sdk_config(&target).await;
            let cfn = aws::cloudformation(&sdk);
            let s3 = aws::s3(&sdk);
            let lambda = args.hotswap.then(|| aws::lambda(&sdk));
            let app = session.project.app.clone();
            let needs_bucket = |bundles: &BTreeMap<String, assets::Asset>| {
                !bundles.is_empty()
                    || rendered.iter().any(|r| {
                        serde_json::to_string(&r.template).map_or(0, |s| s.len())
                            > assets::INLINE_TEMPLATE_LIMIT
                    })
            };

            if args.dry_run {
                let bundles = build.wait()?;
                let bucket = if needs_bucket(bundles) {
                    toolkit_bucket(&cfn, &app).await?
                } else {
                    None
                };
                let approved = if args.yes {
                    Approved::All
                } else {
                    Approved::Only(BTreeMap::new())
                };
                let input = deploy_input(
                    &session, &stage, &target, &waves, &rendered, bundles, bucket, args, approved,
                );
                let plan = deploy::dry_run(cfn, &input).await?;
                if args.json {
                    ctx.term
                        .data(&serde_json::to_string_pretty(&plan).unwrap_or_default());
                } else {
                    for line in crate::report::summary::plan_lines(&plan) {
                        ctx.term.data(&line);
                    }
                }
                return Ok(Vec::new());
            }

            // The broadening gate, before the first mutating call (the toolkit stack).
            // `--yes` approves everything; `local: true` stages are not gated (README
            // "deploy"). Otherwise a read-only plan lists each stack's added IAM
            // statements and security-group rules, and a person approves them here.
            let approved = if args.yes || stage.local {
                Approved::All
            } else {
                let bundles = build.wait()?;
                let input = deploy_input(
                    &session,
                    &stage,
                    &target,
                    &waves,
                    &rendered,
                    bundles,
                    None,
                    args,
                    Approved::Only(BTreeMap::new()),
                );
                let plan = deploy::dry_run(cfn.clone(), &input).await?;
                match plan.approval {
                    Approval::Required { stacks } => match confirm_broadening(&stacks)? {
                        Some(approved) => approved,
                        None => {
                            ctx.term.info("nothing deployed");
                            return Ok(Vec::new());
                        }
                    },
                    // Nothing to approve now; the run refuses any grant that appears
                    // before it gets to a stack.
                    _ => Approved::Only(BTreeMap::new()),
                }
            };

            // The toolkit stack (asset bucket, lock table), then the stage lock. From
            // here on Ctrl-C releases the lock before barkctl stops.
            let toolkit = ensure_toolkit(&cfn, &s3, &target, &app, reporter.clone()).await?;
            let interrupted = tokio::signal::ctrl_c();
            tokio::pin!(interrupted);
            let lock = tokio::select! {
                l = lock_stage(ctx, &sdk, &toolkit, &stage.name, "deploy", args.lock_timeout) => l?,
                _ = &mut interrupted => {
                    return Err(deploy::Error::Interrupted { in_progress: Vec::new(), command: "deploy" }.into());
                }
            };
            // Under the lock, each stack's deployed state is read while cargo
            // may still be building (a no-change run: most of its AWS reads).
            let prefetching = tokio::spawn({
                let cfn = cfn.clone();
                let names = rendered.iter().map(|r| r.stack_name.clone()).collect();
                async move { deploy::prefetch(&cfn, names).await }
            });
            let bundles = match build.wait() {
                Ok(b) => b,
                Err(e) => {
                    prefetching.abort();
                    unlock_stage(ctx, lock, &stage.name).await;
                    return Err(e);
                }
            };
            let prefetched = prefetching.await.unwrap_or_default();
            let in_flight: deploy::InFlight = Default::default();
            let work = async {
                let bucket = if needs_bucket(bundles) {
                    let bucket = toolkit.bucket(&app)?;
                    let all: Vec<&assets::Asset> = bundles.values().collect();
                    assets::upload_all(&s3, &bucket, &all, reporter.as_ref()).await?;
                    Some(bucket)
                } else {
                    None
                };
                let mut input = deploy_input(
                    &session, &stage, &target, &waves, &rendered, bundles, bucket, args, approved,
                );
                input.in_flight = in_flight.clone();
                input.lambda = lambda;
                input.prefetched = prefetched;
                Ok::<_, Error>(
                    deploy::deploy(cfn.clone(), s3.clone(), input, reporter.clone()).await,
                )
            };
            // Ctrl-C stops barkctl, not CloudFormation: say which operations go on.
            let finished = tokio::select! {
                r = work => Some(r),
                _ = &mut interrupted => None,
            };
            unlock_stage(ctx, lock, &stage.name).await;
            let report = match finished {
                Some(r) => r?,
                None => {
                    progress::finish(reporter.as_ref());
                    return Err(deploy::Error::interrupted(&in_flight, "deploy").into());
                }
            };
            progress::finish(reporter.as_ref());
            for line in crate::report::summary::table(&ctx.term, &report.results) {
                ctx.term.info(&line);
            }
            let swapped: Vec<String> = report
                .results
                .iter()
                .filter(|r| r.outcome == deploy::Outcome::Hotswapped)
                .map(|r| format!("`{}`", r.stack_name))
                .collect();
            if !swapped.is_empty() {
                ctx.term.info(&format!(
                "hotswap: {} changed through the Lambda API only; CloudFormation still holds the old code keys and environment, so the stack is drifted until the next full `barkctl deploy` (without --hotswap)",
                swapped.join(", ")
            ));
            }
            let retries = aws::retries();
            if retries > 0 {
                ctx.term.info(&format!(
                    "retried {retries} AWS request{} after throttling or transient errors",
                    if retries == 1 { "" } else { "s" }
                ));
            }
            if let Some(path) = &args.outputs_file {
                let deployed: BTreeMap<_, _> = report
                    .outputs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                deploy::outputs::merge_file(path, &deployed)?;
            }
            match report.error {
                Some(e) => Err(Error::from(e)),
                None => Ok(report.results),
            }
        })?
    })
}

type Bundles = BTreeMap<String, assets::Asset>;

/// The bundle build running beside the AWS set-up, waited for where its
/// bundles are first needed.
struct Build<'scope> {
    running: Option<std::thread::ScopedJoinHandle<'scope, Result<Bundles>>>,
    bundles: Bundles,
}

impl Drop for Build<'_> {
    /// A deploy that stops before it needed the bundles (an error, Ctrl-C)
    /// still waits for cargo; a panic in the build is not repeated here.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.join();
        }
    }
}

impl Build<'_> {
    /// The bundles, once the build has finished (a panic in it is an error).
    /// After an error the deploy stops, so it is returned once.
    fn wait(&mut self) -> Result<&Bundles> {
        if let Some(running) = self.running.take() {
            let joined = || {
                running
                    .join()
                    .unwrap_or_else(|_| Err(Error::Failed("the bundle build panicked".into())))
            };
            // Inside the async body this blocks a runtime worker: tell tokio.
            self.bundles = match tokio::runtime::Handle::try_current() {
                Ok(_) => tokio::task::block_in_place(joined)?,
                Err(_) => joined()?,
            };
        }
        Ok(&self.bundles)
    }
}

/// Ask once on a TTY (stdin and stderr) whether the listed additions may be
/// deployed: `Some` with what was approved, `None` when the answer is no. Without
/// a TTY the deploy is refused (exit 2) naming the stacks and the additions.
fn confirm_broadening(stacks: &[Broadening]) -> Result<Option<Approved>> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(deploy::Error::Unapproved {
            stacks: stacks.to_vec(),
        }
        .into());
    }
    for line in crate::report::summary::broadening_lines(stacks) {
        eprintln!("{line}");
    }
    eprint!("deploy these changes? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Failed(format!("cannot read the answer: {e}")))?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        return Ok(None);
    }
    Ok(Some(Approved::Only(
        stacks
            .iter()
            .map(|b| (b.stack_name.clone(), b.additions.clone()))
            .collect(),
    )))
}

/// Where AWS calls go; local stages get their emulator started first.
pub(crate) fn target(session: &Session, stage: &crate::project::Stage) -> Result<Target> {
    let g = &session.global;
    let target = Target::resolve(
        &session.project,
        stage,
        g.region.as_deref(),
        g.endpoint_url.as_deref(),
        g.profile.as_deref(),
    );
    crate::aws::check_profile(&target).map_err(|message| Error::Usage { message })?;
    if stage.local {
        if let Some(url) = &target.endpoint_url {
            let root = &session.project.root;
            crate::local::ensure_running(root, url, &super::local::on_event(session.term, root))?;
        }
    }
    Ok(target)
}

/// Build the bundles of `stacks`; crate name -> asset to upload.
fn build_bundles(
    session: &Session,
    stacks: &[String],
    ctx: &Ctx,
) -> Result<BTreeMap<String, assets::Asset>> {
    let any = stacks
        .iter()
        .any(|s| !session.project.stacks[s].functions.is_empty());
    if !any {
        return Ok(BTreeMap::new());
    }
    let stage = session.stage()?;
    let functions = crate::bundle::functions_of(&session.project, stage, stacks)?;
    let options = crate::bundle::BuildOptions {
        // The stage the templates were rendered for: same architectures.
        stage: stage.clone(),
        quiet: true,
        color: ctx.term.color,
    };
    let reporter = crate::report::build::BuildProgress::new(ctx.term);
    let built = crate::bundle::build_functions(&session.project, &functions, &options, &reporter)?;
    Ok(built
        .into_iter()
        .map(|(name, b)| {
            let asset = assets::Asset {
                key: b.s3_key(&session.project.app),
                path: b.zip.clone(),
                bytes: b.zip_bytes,
            };
            (name, asset)
        })
        .collect())
}

/// The asset bucket of an existing toolkit stack, without creating anything.
async fn toolkit_bucket(cfn: &aws_sdk_cloudformation::Client, app: &str) -> Result<Option<String>> {
    let name = assets::toolkit_stack_name(app);
    let outs = deploy::outputs::read(cfn, &[(name.clone(), name.clone())]).await?;
    Ok(outs
        .get(&name)
        .and_then(|o| o.as_ref())
        .and_then(|o| o.get(assets::BUCKET_OUTPUT))
        .cloned())
}

/// What the toolkit stack gives a deploy or destroy.
pub(crate) struct Toolkit {
    /// The asset bucket (`None` when the endpoint reports no outputs for the
    /// stack: moto after a CREATE change set).
    pub bucket: Option<String>,
    /// The stage lock table.
    pub lock_table: String,
}

impl Toolkit {
    pub fn bucket(&self, app: &str) -> Result<String> {
        self.bucket.clone().ok_or_else(|| {
            Error::Failed(format!(
                "the toolkit stack `{}` has no `{}` output",
                assets::toolkit_stack_name(app),
                assets::BUCKET_OUTPUT
            ))
        })
    }
}

/// Create or update the toolkit stack (no call when it is up to date): the
/// asset bucket and the stage lock table.
pub(crate) async fn ensure_toolkit(
    cfn: &aws_sdk_cloudformation::Client,
    s3: &aws_sdk_s3::Client,
    target: &Target,
    app: &str,
    reporter: Arc<dyn Reporter>,
) -> Result<Toolkit> {
    let name = assets::toolkit_stack_name(app);
    let input = DeployInput {
        stage: "toolkit".into(),
        app: app.to_string(),
        region: target.region.clone(),
        stack_names: BTreeMap::from([("toolkit".to_string(), name.clone())]),
        waves: vec![vec![StackInput {
            stack: "toolkit".into(),
            stack_name: name.clone(),
            template: assets::toolkit_template(app),
            parameters: BTreeMap::new(),
            tags: assets::toolkit_tags(app),
        }]],
        concurrency: 1,
        allow_replace: false,
        termination_protection: false,
        local: target.local,
        bucket: None,
        // barkctl's own stack: its grants are barkctl's, not the project's.
        approved: Approved::All,
        in_flight: Default::default(),
        hotswap: false,
        lambda: None,
        prefetched: Default::default(),
    };
    let report = deploy::deploy(cfn.clone(), s3.clone(), input, reporter).await;
    if let Some(e) = report.error {
        return Err(e.into());
    }
    Ok(Toolkit {
        bucket: report
            .outputs
            .get("toolkit")
            .and_then(|o| o.get(assets::BUCKET_OUTPUT))
            .cloned(),
        lock_table: deploy::lock::table_name(app),
    })
}

/// Take the lock of `stage` for `command` (deploy, destroy), waiting up to
/// `timeout` seconds: one line on stderr per holder waited for.
pub(crate) async fn lock_stage(
    ctx: &Ctx,
    sdk: &aws_config::SdkConfig,
    toolkit: &Toolkit,
    stage: &str,
    command: &str,
    timeout: u64,
) -> Result<deploy::lock::StageLock> {
    let me = deploy::lock::Holder::this_process(command);
    let term = ctx.term;
    let on_wait = move |held: &deploy::lock::Held| {
        term.info(&format!(
            "waiting for the lock of stage `{stage}`: held by {} for {}s (up to {timeout}s; expires at {} unless renewed)",
            held.holder.describe(),
            held.holder.held_for().as_secs(),
            held.expires()
        ));
    };
    Ok(deploy::lock::acquire(
        &aws::dynamodb(sdk),
        &toolkit.lock_table,
        stage,
        &me,
        deploy::lock::lease(),
        std::time::Duration::from_secs(timeout),
        &on_wait,
    )
    .await?)
}

/// Release `lock`; say so when it was lost while held.
pub(crate) async fn unlock_stage(ctx: &Ctx, lock: deploy::lock::StageLock, stage: &str) {
    if !lock.release().await {
        ctx.term.info(&format!(
            "warning: the lock of stage `{stage}` was taken over while this run held it (it was not renewed within {}s); another run may have overlapped with this one",
            deploy::lock::lease().as_secs()
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn deploy_input(
    session: &Session,
    stage: &crate::project::Stage,
    target: &Target,
    waves: &[Vec<String>],
    rendered: &[Rendered],
    bundles: &BTreeMap<String, assets::Asset>,
    bucket: Option<String>,
    args: &DeployArgs,
    approved: Approved,
) -> DeployInput {
    let project = &session.project;
    let by_name: BTreeMap<&str, &Rendered> =
        rendered.iter().map(|r| (r.stack.as_str(), r)).collect();
    let stack_input = |name: &String| -> Option<StackInput> {
        let r = by_name.get(name.as_str())?;
        let stack = &project.stacks[name];
        let parameters = r
            .parameters
            .iter()
            .map(|(p, source)| {
                let value = match source {
                    ParamSource::Output { stack, output } => ParamValue::Pending {
                        stack: stack.clone(),
                        output: output.clone(),
                    },
                    ParamSource::AssetsBucket => match &bucket {
                        Some(b) => ParamValue::Known(b.clone()),
                        None => ParamValue::Pending {
                            stack: "toolkit".into(),
                            output: assets::BUCKET_OUTPUT.into(),
                        },
                    },
                    ParamSource::CodeKey { function } => {
                        let krate = &stack.functions[function].crate_name;
                        match bundles.get(krate) {
                            Some(a) => ParamValue::Known(a.key.clone()),
                            None => ParamValue::Pending {
                                stack: "bundle".into(),
                                output: krate.clone(),
                            },
                        }
                    }
                };
                (p.clone(), value)
            })
            .collect();
        Some(StackInput {
            stack: name.clone(),
            stack_name: r.stack_name.clone(),
            template: r.template.clone(),
            parameters,
            tags: project.tags_for(stack, stage),
        })
    };
    DeployInput {
        stage: stage.name.clone(),
        app: project.app.clone(),
        region: target.region.clone(),
        stack_names: project
            .stacks
            .keys()
            .map(|s| (s.clone(), project.stack_name(&stage.name, s)))
            .collect(),
        waves: waves
            .iter()
            .map(|w| w.iter().filter_map(stack_input).collect())
            .collect(),
        concurrency: usize::from(args.concurrency),
        allow_replace: args.allow_replace,
        termination_protection: stage.termination_protection,
        local: target.local,
        bucket,
        approved,
        in_flight: Default::default(),
        hotswap: args.hotswap,
        lambda: None,
        prefetched: Default::default(),
    }
}
