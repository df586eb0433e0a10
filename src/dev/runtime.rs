//! The Lambda Runtime API on 127.0.0.1 and the function instances behind it.
//!
//! One port serves every instance: an instance's `AWS_LAMBDA_RUNTIME_API` is
//! `127.0.0.1:{port}/i/{instance}`, so `lambda_runtime` calls
//! `/i/{instance}/2018-06-01/runtime/invocation/next` and the server knows which
//! process asks. An invocation is handed to one instance (an idle warm one, or a
//! new one while fewer than the function's concurrency run); the answer comes
//! back through `/response` or `/error`, or as a timeout (the instance is killed)
//! or a crash (the process exited while it held the invocation). Only a clean
//! answer returns an instance to the warm pool.
//!
//! The same port also answers Lambda's `Invoke` API
//! (`POST /2015-03-31/functions/{name}/invocations`), so `barkctl invoke` and
//! `aws lambda invoke --endpoint-url` reach a running `barkctl dev`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::invoke::{Invocation, InvokeError, InvokeFuture, Outcome};
use super::Invoke;

/// Lines of stderr kept per instance for a crash report.
const STDERR_TAIL: usize = 20;

/// Extra time a cold instance gets for its init before the invocation times out
/// (Lambda gives init its own 10 s).
const INIT_GRACE: Duration = Duration::from_secs(10);

/// One function as the runtime runs it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Deployed name (`barkbase-local-realtime-connect`).
    pub name: String,
    pub arn: String,
    /// The host-arch executable (`bootstrap`).
    pub binary: PathBuf,
    /// The whole environment of an instance apart from the runtime's own
    /// variables (the deployed environment, credentials, region, endpoints).
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// At most this many instances at once.
    pub concurrency: usize,
}

/// Where an instance's output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What the runtime tells the person watching.
#[derive(Debug, Clone)]
pub enum RuntimeEvent {
    /// A process started for `function` (a cold start).
    InstanceStarted {
        function: String,
        instance: u64,
        pid: u32,
    },
    /// The instance asked for its first invocation: init is done.
    InstanceReady {
        function: String,
        instance: u64,
        init: Duration,
    },
    /// A line the instance printed.
    Log {
        function: String,
        instance: u64,
        stream: Stream,
        line: String,
    },
    /// The instance's process ended (killed after a timeout, crashed, or stopped).
    InstanceExited {
        function: String,
        instance: u64,
        how: String,
    },
    /// An invocation finished.
    Invoked {
        function: String,
        request_id: String,
        error: Option<(String, String)>,
        duration: Duration,
    },
}

pub type OnEvent = Arc<dyn Fn(RuntimeEvent) + Send + Sync>;

/// An invocation on its way to an instance.
struct Job {
    request_id: String,
    payload: Vec<u8>,
    done: oneshot::Sender<Outcome>,
    /// Told when `/next` hands the job out: the function's timeout runs from then.
    taken: oneshot::Sender<()>,
}

/// The invocation an instance holds between `/next` and its answer.
struct Current {
    request_id: String,
    done: oneshot::Sender<Outcome>,
}

struct Instance {
    id: u64,
    function: Arc<FunctionState>,
    started: Instant,
    jobs: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    inbox: mpsc::Sender<Job>,
    /// Held from assignment until the answer: what the instance must answer.
    current: Mutex<Option<Current>>,
    /// Set when the job is handed out by `/next`, so a late answer is matched.
    ready: Mutex<bool>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    stderr: Mutex<VecDeque<String>>,
    init_error: Mutex<Option<String>>,
    exited: Mutex<Option<String>>,
    pid: Mutex<Option<u32>>,
    on_event: OnEvent,
    /// The function's generation when this instance started.
    generation: u64,
}

struct FunctionState {
    spec: FunctionSpec,
    /// The executable new instances start: `spec.binary` until `--watch` swaps it.
    binary: Mutex<PathBuf>,
    /// Bumped by each swap; instances of an older generation are not reused.
    generation: AtomicU64,
    idle: Mutex<Vec<Arc<Instance>>>,
    slots: Arc<Semaphore>,
}

struct Shared {
    addr: SocketAddr,
    functions: HashMap<String, Arc<FunctionState>>,
    instances: Mutex<HashMap<u64, Arc<Instance>>>,
    next_id: AtomicU64,
    on_event: OnEvent,
    stopping: Mutex<bool>,
}

/// A running Runtime API and its instances. Dropping it does not stop the
/// processes: call [`Runtime::shutdown`].
pub struct Runtime {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

impl Runtime {
    /// Listen on 127.0.0.1:`port` (0: any free port). No process starts until
    /// the first invocation of a function.
    pub async fn start(
        functions: Vec<FunctionSpec>,
        port: u16,
        on_event: OnEvent,
    ) -> Result<Runtime, RuntimeError> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| RuntimeError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| RuntimeError::Bind { port, source })?;
        let functions = functions
            .into_iter()
            .map(|spec| {
                let slots = Arc::new(Semaphore::new(spec.concurrency.max(1)));
                (
                    spec.name.clone(),
                    Arc::new(FunctionState {
                        binary: Mutex::new(spec.binary.clone()),
                        generation: AtomicU64::new(0),
                        spec,
                        idle: Mutex::new(Vec::new()),
                        slots,
                    }),
                )
            })
            .collect();
        let shared = Arc::new(Shared {
            addr,
            functions,
            instances: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            on_event,
            stopping: Mutex::new(false),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Runtime { shared, server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Deployed names of the functions this runtime runs, sorted.
    pub fn function_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.functions.keys().cloned().collect();
        names.sort();
        names
    }

    /// Pids of the instance processes alive now.
    pub fn pids(&self) -> Vec<u32> {
        let instances = lock(&self.shared.instances);
        instances
            .values()
            .filter(|i| lock(&i.exited).is_none())
            .filter_map(|i| i.pid())
            .collect()
    }

    /// Run `binary` for `function` from now on: idle instances are stopped, busy
    /// ones finish their invocation and are not reused. False for an unknown name.
    pub fn replace_binary(&self, function: &str, binary: PathBuf) -> bool {
        let Some(state) = self.shared.functions.get(function) else {
            return false;
        };
        *lock(&state.binary) = binary;
        state.generation.fetch_add(1, Ordering::SeqCst);
        let idle: Vec<Arc<Instance>> = lock(&state.idle).drain(..).collect();
        for i in idle {
            i.kill();
        }
        true
    }

    /// Kill every instance and stop listening. Pending invocations end as crashed.
    pub async fn shutdown(&self) {
        *lock(&self.shared.stopping) = true;
        let instances: Vec<Arc<Instance>> =
            lock(&self.shared.instances).values().cloned().collect();
        for i in &instances {
            i.kill();
        }
        // Wait (bounded) for the exit watchers to reap the processes.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && instances.iter().any(|i| lock(&i.exited).is_none()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.server.abort();
    }
}

impl Invoke for Runtime {
    fn invoke<'a>(&'a self, function: &'a str, payload: Vec<u8>) -> InvokeFuture<'a> {
        let shared = self.shared.clone();
        Box::pin(async move { invoke(&shared, function, payload).await })
    }
}

impl Invoke for Arc<Runtime> {
    fn invoke<'a>(&'a self, function: &'a str, payload: Vec<u8>) -> InvokeFuture<'a> {
        self.as_ref().invoke(function, payload)
    }
}

async fn invoke(
    shared: &Arc<Shared>,
    function: &str,
    payload: Vec<u8>,
) -> Result<Invocation, InvokeError> {
    let state =
        shared
            .functions
            .get(function)
            .cloned()
            .ok_or_else(|| InvokeError::UnknownFunction {
                name: function.to_string(),
            })?;
    let permit = state
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| InvokeError::Stopped)?;
    if *lock(&shared.stopping) {
        return Err(InvokeError::Stopped);
    }
    let request_id = request_id(shared);
    let started = Instant::now();
    let (done, mut answer) = oneshot::channel();
    let (taken, handed) = oneshot::channel();
    let warm = lock(&state.idle).pop();
    let (instance, cold) = match warm {
        Some(i) => (i, false),
        None => (spawn_instance(shared, &state), true),
    };
    let job = Job {
        request_id: request_id.clone(),
        payload,
        done,
        taken,
    };
    if instance.inbox.try_send(job).is_err() {
        return Err(InvokeError::Stopped);
    }
    // A process that could not even start has already ended: fail the job now.
    let exited = lock(&instance.exited).clone();
    if let Some(how) = exited {
        instance.fail_current(&how);
    }
    // A cold instance gets INIT_GRACE to reach `/next`; the function's own
    // timeout then runs from the moment it took the event, as on Lambda.
    let init_limit = if cold { INIT_GRACE } else { state.spec.timeout };
    let mut early = None;
    tokio::select! {
        r = &mut answer => early = Some(r),
        r = tokio::time::timeout(init_limit, handed) => {
            if r.is_err() {
                instance.kill();
            }
        }
    }
    let result = match early {
        Some(r) => Ok(r),
        None => tokio::time::timeout(state.spec.timeout, answer).await,
    };
    let outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => instance.crash_outcome(),
        Err(_) => {
            instance.kill();
            // The process may have answered in the same instant; the timeout wins.
            lock(&instance.current).take();
            Outcome::Timeout {
                seconds: state.spec.timeout.as_secs(),
            }
        }
    };
    let duration = started.elapsed();
    finish(shared, &state, &instance, &outcome, permit);
    (shared.on_event)(RuntimeEvent::Invoked {
        function: function.to_string(),
        request_id: request_id.clone(),
        error: outcome.error(),
        duration,
    });
    Ok(Invocation {
        request_id,
        outcome,
        duration,
    })
}

/// A clean answer puts the instance back in the warm pool; anything else ends it.
fn finish(
    _shared: &Arc<Shared>,
    state: &Arc<FunctionState>,
    instance: &Arc<Instance>,
    outcome: &Outcome,
    permit: OwnedSemaphorePermit,
) {
    let alive = lock(&instance.exited).is_none()
        && instance.generation == state.generation.load(Ordering::SeqCst);
    match outcome {
        Outcome::Response(_) | Outcome::FunctionError { .. } if alive => {
            lock(&state.idle).push(instance.clone());
        }
        _ => instance.kill(),
    }
    drop(permit);
}

/// A v4-shaped UUID, unique per runtime and process (no RNG dependency).
fn request_id(shared: &Shared) -> String {
    use sha2::{Digest, Sha256};
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::new()
        .chain_update(nanos.to_le_bytes())
        .chain_update(n.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .chain_update(shared.addr.port().to_le_bytes())
        .finalize();
    let h = hex::encode(&digest[..16]);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn spawn_instance(shared: &Arc<Shared>, state: &Arc<FunctionState>) -> Arc<Instance> {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (inbox, jobs) = mpsc::channel(1);
    let instance = Arc::new(Instance {
        id,
        function: state.clone(),
        started: Instant::now(),
        jobs: tokio::sync::Mutex::new(jobs),
        inbox,
        current: Mutex::new(None),
        ready: Mutex::new(false),
        kill: Mutex::new(None),
        stderr: Mutex::new(VecDeque::new()),
        init_error: Mutex::new(None),
        exited: Mutex::new(None),
        pid: Mutex::new(None),
        on_event: shared.on_event.clone(),
        generation: state.generation.load(Ordering::SeqCst),
    });
    lock(&shared.instances).insert(id, instance.clone());
    let spec = &state.spec;
    let binary = lock(&state.binary).clone();
    // The instance runs in the binary's folder: a relative path would not resolve there.
    let binary = if binary.is_relative() {
        std::env::current_dir()
            .map(|d| d.join(&binary))
            .unwrap_or(binary)
    } else {
        binary
    };
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.env_clear()
        .envs(&spec.environment)
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://{}/i/{id}", shared.addr),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        )
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("barkctl-dev/{id}"))
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("_HANDLER", "bootstrap")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = binary.parent() {
        cmd.current_dir(dir).env("LAMBDA_TASK_ROOT", dir);
    }
    match cmd.spawn() {
        Ok(child) => {
            (shared.on_event)(RuntimeEvent::InstanceStarted {
                function: spec.name.clone(),
                instance: id,
                pid: child.id().unwrap_or_default(),
            });
            let (kill_tx, kill_rx) = oneshot::channel();
            *lock(&instance.kill) = Some(kill_tx);
            watch(shared.clone(), instance.clone(), child, kill_rx);
        }
        Err(e) => {
            let how = format!("cannot start `{}`: {e}", binary.display());
            *lock(&instance.exited) = Some(how.clone());
            instance.fail_current(&how);
            (shared.on_event)(RuntimeEvent::InstanceExited {
                function: spec.name.clone(),
                instance: id,
                how,
            });
        }
    }
    instance
}

/// Forward the instance's output and wait for it to exit (or be killed).
fn watch(
    shared: Arc<Shared>,
    instance: Arc<Instance>,
    mut child: tokio::process::Child,
    kill: oneshot::Receiver<()>,
) {
    let pid = child.id();
    let name = instance.function.spec.name.clone();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(forward(
            shared.clone(),
            instance.clone(),
            Stream::Stdout,
            BufReader::new(out),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(forward(
            shared.clone(),
            instance.clone(),
            Stream::Stderr,
            BufReader::new(err),
        )));
    }
    *lock(&instance.pid) = pid;
    tokio::spawn(async move {
        let how = tokio::select! {
            status = child.wait() => match status {
                Ok(s) => describe_exit(s),
                Err(e) => format!("lost track of the process: {e}"),
            },
            _ = kill => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                "killed".to_string()
            }
        };
        // The last lines arrive after the exit; give the readers a moment.
        for r in readers {
            let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
        }
        *lock(&instance.exited) = Some(how.clone());
        lock(&instance.function.idle).retain(|i| i.id != instance.id);
        lock(&shared.instances).remove(&instance.id);
        instance.fail_current(&how);
        (shared.on_event)(RuntimeEvent::InstanceExited {
            function: name,
            instance: instance.id,
            how,
        });
    });
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(
    shared: Arc<Shared>,
    instance: Arc<Instance>,
    stream: Stream,
    reader: BufReader<R>,
) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if stream == Stream::Stderr {
            let mut tail = lock(&instance.stderr);
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        (shared.on_event)(RuntimeEvent::Log {
            function: instance.function.spec.name.clone(),
            instance: instance.id,
            stream,
            line,
        });
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "exited".to_string(),
    }
}

impl Instance {
    fn pid(&self) -> Option<u32> {
        *lock(&self.pid)
    }

    fn kill(&self) {
        if let Some(k) = lock(&self.kill).take() {
            let _ = k.send(());
        }
    }

    /// What a job gets when the process ends before answering it.
    fn crash_outcome(&self) -> Outcome {
        let how = lock(&self.exited)
            .clone()
            .unwrap_or_else(|| "the process ended".into());
        Outcome::Crashed {
            message: self.crash_message(&how),
        }
    }

    fn crash_message(&self, how: &str) -> String {
        let init = lock(&self.init_error).clone();
        let tail: Vec<String> = lock(&self.stderr).iter().cloned().collect();
        let mut message = format!("the function's process {how} before answering");
        if let Some(init) = init {
            message.push_str(&format!("; init error: {init}"));
        }
        if !tail.is_empty() {
            message.push_str(":\n");
            message.push_str(&tail.join("\n"));
        }
        message
    }

    fn fail_current(&self, how: &str) {
        let message = self.crash_message(how);
        if let Some(c) = lock(&self.current).take() {
            let _ = c.done.send(Outcome::Crashed { message });
        }
        // A job still waiting in the inbox (the process died during init).
        if let Ok(mut jobs) = self.jobs.try_lock() {
            while let Ok(job) = jobs.try_recv() {
                let _ = job.done.send(Outcome::Crashed {
                    message: self.crash_message(how),
                });
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn json_reply(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut r = reply(status, value.to_string());
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    match (method, segments.as_slice()) {
        (Method::GET, ["i", id, "2018-06-01", "runtime", "invocation", "next"]) => {
            match instance(&shared, id) {
                Some(i) => next(i).await,
                None => reply(StatusCode::NOT_FOUND, "unknown instance"),
            }
        }
        (Method::POST, ["i", id, "2018-06-01", "runtime", "invocation", rid, kind]) => {
            let Some(i) = instance(&shared, id) else {
                return reply(StatusCode::NOT_FOUND, "unknown instance");
            };
            let error_type = req
                .headers()
                .get("Lambda-Runtime-Function-Error-Type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = read_body(req).await;
            answer(&i, rid, kind, error_type, body)
        }
        (Method::POST, ["i", id, "2018-06-01", "runtime", "init", "error"]) => {
            if let Some(i) = instance(&shared, id) {
                let body = read_body(req).await;
                let (t, m) = error_fields(&body, None);
                *lock(&i.init_error) = Some(format!("{t}: {m}"));
            }
            json_reply(StatusCode::ACCEPTED, serde_json::json!({"status": "OK"}))
        }
        (Method::POST, ["2015-03-31", "functions", name, "invocations"]) => {
            let name = percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .to_string();
            let name = name.rsplit(':').next().unwrap_or(&name).to_string();
            let asynchronous = req
                .headers()
                .get("x-amz-invocation-type")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"Event"));
            let payload = read_body(req).await;
            if asynchronous {
                // `InvocationType: Event`: queued, answered 202 at once; the outcome
                // shows in the invocation's own log lines.
                if !shared.functions.contains_key(&name) {
                    return not_found_function(&name);
                }
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = invoke(&shared, &name, payload).await;
                });
                return reply(StatusCode::ACCEPTED, "");
            }
            match invoke(&shared, &name, payload).await {
                Err(e) => {
                    let mut r = json_reply(
                        StatusCode::NOT_FOUND,
                        serde_json::json!({"Type": "User", "message": e.to_string()}),
                    );
                    r.headers_mut().insert(
                        "x-amzn-errortype",
                        hyper::header::HeaderValue::from_static("ResourceNotFoundException"),
                    );
                    r
                }
                Ok(inv) => invoke_reply(inv),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "not a Lambda Runtime API path"),
    }
}

fn not_found_function(name: &str) -> Response<Body> {
    let mut r = json_reply(
        StatusCode::NOT_FOUND,
        serde_json::json!({"Type": "User", "message": format!("no function `{name}` in this dev runtime")}),
    );
    r.headers_mut().insert(
        "x-amzn-errortype",
        hyper::header::HeaderValue::from_static("ResourceNotFoundException"),
    );
    r
}

/// Lambda's Invoke answer: 200 with the body; a function error is still 200,
/// with `X-Amz-Function-Error: Unhandled` and `{errorType, errorMessage}`.
fn invoke_reply(inv: Invocation) -> Response<Body> {
    let mut r = match &inv.outcome {
        Outcome::Response(body) => reply(StatusCode::OK, body.clone()),
        other => {
            let (t, m) = other.error().unwrap_or_default();
            let mut r = json_reply(
                StatusCode::OK,
                serde_json::json!({"errorType": t, "errorMessage": m}),
            );
            r.headers_mut().insert(
                "X-Amz-Function-Error",
                hyper::header::HeaderValue::from_static("Unhandled"),
            );
            r
        }
    };
    if let Ok(v) = hyper::header::HeaderValue::from_str(&inv.request_id) {
        r.headers_mut().insert("x-amzn-RequestId", v);
    }
    r.headers_mut().insert(
        "X-Amz-Executed-Version",
        hyper::header::HeaderValue::from_static("$LATEST"),
    );
    r
}

fn instance(shared: &Shared, id: &str) -> Option<Arc<Instance>> {
    let id: u64 = id.parse().ok()?;
    lock(&shared.instances).get(&id).cloned()
}

async fn read_body(req: Request<Incoming>) -> Vec<u8> {
    match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    }
}

/// `/next`: hand the instance its job (long poll until there is one).
async fn next(instance: Arc<Instance>) -> Response<Body> {
    let first = {
        let mut ready = lock(&instance.ready);
        let first = !*ready;
        *ready = true;
        first
    };
    if first {
        let (function, id) = (instance.function.spec.name.clone(), instance.id);
        let init = instance.started.elapsed();
        (instance.on_event)(RuntimeEvent::InstanceReady {
            function,
            instance: id,
            init,
        });
    }
    let job = {
        let mut jobs = instance.jobs.lock().await;
        jobs.recv().await
    };
    let Some(job) = job else {
        return reply(StatusCode::GONE, "runtime stopping");
    };
    let spec = &instance.function.spec;
    let deadline = SystemTime::now()
        .checked_add(spec.timeout)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    *lock(&instance.current) = Some(Current {
        request_id: job.request_id.clone(),
        done: job.done,
    });
    let _ = job.taken.send(());
    let mut r = reply(StatusCode::OK, job.payload);
    let headers = r.headers_mut();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    set("Lambda-Runtime-Aws-Request-Id", job.request_id.clone());
    set("Lambda-Runtime-Deadline-Ms", deadline.to_string());
    set("Lambda-Runtime-Invoked-Function-Arn", spec.arn.clone());
    set(
        "Lambda-Runtime-Trace-Id",
        format!(
            "Root=1-{:08x}-{};Parent={};Sampled=0",
            deadline / 1000,
            job.request_id.replace('-', "").get(..24).unwrap_or("0"),
            job.request_id.replace('-', "").get(..16).unwrap_or("0"),
        ),
    );
    set("Content-Type", "application/json".into());
    r
}

fn answer(
    instance: &Arc<Instance>,
    request_id: &str,
    kind: &str,
    error_type: Option<String>,
    body: Vec<u8>,
) -> Response<Body> {
    let current = {
        let mut cur = lock(&instance.current);
        match cur.as_ref() {
            Some(c) if c.request_id == request_id => cur.take(),
            _ => None,
        }
    };
    let Some(current) = current else {
        return json_reply(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"errorMessage": "invalid request id", "errorType": "InvalidRequestID"}),
        );
    };
    let outcome = match kind {
        "response" => Outcome::Response(body),
        "error" => {
            let (error_type, error_message) = error_fields(&body, error_type);
            Outcome::FunctionError {
                error_type,
                error_message,
            }
        }
        _ => return reply(StatusCode::NOT_FOUND, "unknown invocation call"),
    };
    let _ = current.done.send(outcome);
    json_reply(StatusCode::ACCEPTED, serde_json::json!({"status": "OK"}))
}

fn error_fields(body: &[u8], header: Option<String>) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let t = v
        .get("errorType")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .or(header)
        .unwrap_or_else(|| "Unhandled".into());
    let m = v
        .get("errorMessage")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (t, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(binary: &str) -> FunctionSpec {
        FunctionSpec {
            name: "f".into(),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            binary: PathBuf::from(binary),
            environment: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            memory_mb: 128,
            concurrency: 2,
        }
    }

    /// Regression: a binary that cannot start used to leave its invocation
    /// waiting for the whole timeout.
    #[tokio::test]
    async fn a_binary_that_cannot_start_fails_its_invocation_at_once() {
        let rt = Runtime::start(vec![spec("/nonexistent/bootstrap")], 0, Arc::new(|_| {}))
            .await
            .expect("runtime");
        let inv = rt.invoke("f", b"{}".to_vec()).await.expect("invoke");
        match &inv.outcome {
            Outcome::Crashed { message } => {
                assert!(message.contains("cannot start"), "{message}")
            }
            other => panic!("expected a crash, got {other:?}"),
        }
        assert!(inv.duration < Duration::from_secs(30), "{:?}", inv.duration);
        assert!(matches!(
            rt.invoke("g", Vec::new()).await,
            Err(InvokeError::UnknownFunction { .. })
        ));
        rt.shutdown().await;
    }

    /// A process that exits at once (here `false`) is a crash with its exit status.
    #[tokio::test]
    async fn a_process_that_exits_before_next_is_a_crash_with_its_status() {
        let rt = Runtime::start(vec![spec("/bin/false")], 0, Arc::new(|_| {}))
            .await
            .expect("runtime");
        let inv = rt.invoke("f", b"{}".to_vec()).await.expect("invoke");
        match &inv.outcome {
            Outcome::Crashed { message } => {
                assert!(message.contains("exited with status 1"), "{message}")
            }
            other => panic!("expected a crash, got {other:?}"),
        }
        assert!(rt.pids().is_empty());
        rt.shutdown().await;
    }
}
