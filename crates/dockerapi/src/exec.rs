//! Docker's exec instances: `POST /containers/{id}/exec` records one (in memory: Docker
//! forgets them too), `POST /exec/{id}/start` runs it through `berth-runtime exec`
//! (`Engine::exec`) on a hijacked connection (hijack.rs), `POST /exec/{id}/resize` and
//! `GET /exec/{id}/json`. With `Tty` the process gets a terminal made by the runtime,
//! whose master comes back over a `--console-socket` (SCM_RIGHTS, as runc's).

use crate::hijack::{self, Conn};
use crate::{ApiError, ApiResult, Json};
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One exec instance.
#[derive(Clone)]
struct Rec {
    container: String,
    opts: engine::ExecOpts,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    pid: u32,
    /// The terminal's master while the process runs.
    master: Option<Arc<OwnedFd>>,
    /// A size asked for before the terminal existed.
    size: Option<(u16, u16)>,
}

static EXECS: LazyLock<Mutex<HashMap<String, Rec>>> = LazyLock::new(Default::default);

fn execs() -> std::sync::MutexGuard<'static, HashMap<String, Rec>> {
    EXECS.lock().unwrap_or_else(|p| p.into_inner())
}

fn update(id: &str, f: impl FnOnce(&mut Rec)) {
    if let Some(r) = execs().get_mut(id) {
        f(r);
    }
}

fn no_such(id: &str) -> ApiError {
    ApiError::NotFound(format!("No such exec instance: {id}"))
}

/// 64 random hex digits.
fn new_id() -> Result<String, ApiError> {
    let mut b = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom")
            .map_err(|e| ApiError::Internal(format!("open /dev/urandom: {e}")))?,
        &mut b,
    )
    .map_err(|e| ApiError::Internal(format!("read /dev/urandom: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn body_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// `POST /containers/{id}/exec`.
pub async fn create(e: engine::Engine, id: String, body: Bytes) -> ApiResult {
    let b = body_json(&body)?;
    let args = crate::strs(&b["Cmd"], "Cmd")?;
    if args.is_empty() {
        return Err(ApiError::BadRequest("No exec command specified".into()));
    }
    if crate::bool_of(&b["Privileged"], "Privileged")? {
        return Err(ApiError::BadRequest(
            "privileged exec is not supported by berth: the process gets the container's \
             capabilities"
                .into(),
        ));
    }
    let opts = engine::ExecOpts {
        args,
        env: crate::strs(&b["Env"], "Env")?,
        user: crate::opt_str(&b["User"], "User")?,
        workdir: crate::opt_str(&b["WorkingDir"], "WorkingDir")?,
        ..Default::default()
    };
    for kv in &opts.env {
        if !kv.contains('=') || kv.starts_with('=') {
            return Err(ApiError::BadRequest(format!(
                "Env: invalid environment variable {kv:?} (K=V)"
            )));
        }
    }
    if opts.workdir.as_ref().is_some_and(|w| !w.starts_with('/')) {
        return Err(ApiError::BadRequest(
            "WorkingDir: not an absolute path".into(),
        ));
    }
    let c = crate::blocking(move || Ok(e.inspect(&id)?)).await?;
    if c.state != engine::types::State::Running {
        return Err(ApiError::Conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let xid = new_id()?;
    let cmdline = opts.args.join(" ");
    execs().insert(
        xid.clone(),
        Rec {
            container: c.id.clone(),
            opts,
            tty: crate::bool_of(&b["Tty"], "Tty")?,
            stdin: crate::bool_of(&b["AttachStdin"], "AttachStdin")?,
            stdout: crate::bool_of(&b["AttachStdout"], "AttachStdout")?,
            stderr: crate::bool_of(&b["AttachStderr"], "AttachStderr")?,
            started: false,
            running: false,
            exit_code: None,
            pid: 0,
            master: None,
            size: None,
        },
    );
    crate::events::container(&c, &format!("exec_create: {cmdline}"), &[("execID", &xid)]);
    Ok((StatusCode::CREATED, Json(json!({"Id": xid}))).into_response())
}

/// `GET /exec/{id}/json`.
pub fn inspect(id: &str) -> ApiResult {
    let r = execs().get(id).cloned().ok_or_else(|| no_such(id))?;
    let (ep, args) = r
        .opts
        .args
        .split_first()
        .map_or((String::new(), vec![]), |(a, b)| (a.clone(), b.to_vec()));
    Ok(Json(json!({
        "ID": id,
        "ContainerID": r.container,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "Pid": r.pid,
        "OpenStdin": r.stdin,
        "OpenStdout": r.stdout,
        "OpenStderr": r.stderr,
        "CanRemove": false,
        "DetachKeys": "",
        "ProcessConfig": {
            "tty": r.tty,
            "entrypoint": ep,
            "arguments": args,
            "privileged": false,
            "user": r.opts.user.clone().unwrap_or_default(),
        },
    }))
    .into_response())
}

/// `POST /exec/{id}/resize?h&w`.
pub fn resize(id: &str, q: &std::collections::BTreeMap<String, String>) -> ApiResult {
    let (h, w) = hijack::size(q)?;
    let mut all = execs();
    let r = all.get_mut(id).ok_or_else(|| no_such(id))?;
    match &r.master {
        Some(m) => {
            sys::process::set_window_size(m.as_fd(), h, w)
                .map_err(|e| ApiError::Internal(format!("resize the exec's terminal: {e}")))?;
        }
        None => r.size = Some((h, w)),
    }
    Ok(StatusCode::CREATED.into_response())
}

/// `POST /exec/{id}/start` (`{"Detach", "Tty"}`).
pub async fn start(e: engine::Engine, id: String, body: Bytes, req: Request) -> ApiResult {
    let b = body_json(&body)?;
    let detach = crate::bool_of(&b["Detach"], "Detach")?;
    let rec = {
        let mut all = execs();
        let r = all.get_mut(&id).ok_or_else(|| no_such(&id))?;
        if r.started {
            return Err(ApiError::Conflict(format!(
                "exec {id} has already been started"
            )));
        }
        r.started = true;
        r.clone()
    };
    let tty = rec.tty && !detach;
    // The console socket: where the runtime sends the terminal's master.
    let console = if tty {
        let path = std::path::PathBuf::from(format!("/tmp/.berth-exec-{}.sock", &id[..16]));
        let _ = std::fs::remove_file(&path);
        let l = tokio::net::UnixListener::bind(&path)
            .map_err(|x| ApiError::Internal(format!("bind {}: {x}", path.display())))?;
        Some((l, path))
    } else {
        None
    };
    let mut opts = rec.opts.clone();
    opts.console_socket = console.as_ref().map(|(_, p)| p.clone());
    let ctr = rec.container.clone();
    let e2 = e.clone();
    let cmd = crate::blocking(move || Ok(e2.exec(&ctr, &opts)?)).await;
    let cmd = match cmd {
        Ok(c) => c,
        Err(err) => {
            if let Some((_, p)) = &console {
                let _ = std::fs::remove_file(p);
            }
            update(&id, |r| r.exit_code = Some(126));
            return Err(err);
        }
    };
    let c = {
        let (e2, ctr) = (e.clone(), rec.container.clone());
        crate::blocking(move || Ok(e2.inspect(&ctr)?)).await?
    };
    crate::events::container(
        &c,
        &format!("exec_start: {}", rec.opts.args.join(" ")),
        &[("execID", &id)],
    );
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    if detach {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn(&id, &mut cmd)?;
        tokio::spawn(finish(id, c, child));
        return Ok(StatusCode::OK.into_response());
    }
    Ok(hijack::hijack(req, tty, move |conn| async move {
        match console {
            Some((l, path)) => run_tty(id, c, cmd, l, path, conn).await,
            None => run_pipes(id, c, rec, cmd, conn).await,
        }
    }))
}

fn spawn(id: &str, cmd: &mut tokio::process::Command) -> Result<tokio::process::Child, ApiError> {
    let child = cmd.spawn().map_err(|x| {
        update(id, |r| r.exit_code = Some(126));
        ApiError::Internal(format!("run berth-runtime exec: {x}"))
    })?;
    let pid = child.id().unwrap_or(0);
    update(id, |r| {
        r.running = true;
        r.pid = pid;
    });
    Ok(child)
}

/// Waits for the process; records its exit code (128 + signal when killed).
async fn finish(id: String, c: engine::Container, mut child: tokio::process::Child) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    let code = match child.wait().await {
        Ok(st) => st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
        Err(_) => -1,
    };
    update(&id, |r| {
        r.running = false;
        r.exit_code = Some(code);
        r.master = None;
    });
    crate::events::container(
        &c,
        "exec_die",
        &[("execID", &id), ("exitCode", &code.to_string())],
    );
    code
}

/// Without a terminal: stdin, stdout and stderr are pipes; the output multiplexed.
async fn run_pipes(
    id: String,
    c: engine::Container,
    rec: Rec,
    mut cmd: tokio::process::Command,
    conn: Conn,
) {
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(piped(rec.stdin))
        .stdout(piped(rec.stdout))
        .stderr(piped(rec.stderr));
    let (mut crd, cwr) = tokio::io::split(conn);
    let (tx, writer) = hijack::writer(cwr);
    let mut child = match spawn(&id, &mut cmd) {
        Ok(ch) => ch,
        Err(err) => {
            let _ = tx
                .send(hijack::frame(2, format!("{err}\n").as_bytes(), false))
                .await;
            drop(tx);
            let _ = writer.await;
            return;
        }
    };
    let mut stdin = child.stdin.take();
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match crd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(s) = stdin.as_mut() {
                        if s.write_all(&buf[..n]).await.is_err() {
                            stdin = None;
                        }
                    }
                }
            }
        }
        // EOF from the client closes the process's stdin.
        drop(stdin);
        std::future::pending::<()>().await;
    });
    let copy = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>, stream: u8| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let Some(mut r) = r else { return };
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0
                    || tx
                        .send(hijack::frame(stream, &buf[..n], false))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        })
    };
    let out = copy(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        1,
    );
    let err = copy(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        2,
    );
    let _ = out.await;
    let _ = err.await;
    // The exit code is recorded before the client sees the end of the stream (it asks
    // for it right after).
    finish(id, c, child).await;
    drop(tx);
    input.abort();
    let _ = writer.await;
}

/// On a terminal: the runtime sends its master to our console socket; the client's bytes
/// go to it and what it prints goes back raw.
async fn run_tty(
    id: String,
    c: engine::Container,
    mut cmd: tokio::process::Command,
    l: tokio::net::UnixListener,
    path: std::path::PathBuf,
    conn: Conn,
) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (mut crd, cwr) = tokio::io::split(conn);
    let (tx, writer) = hijack::writer(cwr);
    let mut child = spawn(&id, &mut cmd);
    let master = match child {
        Ok(ref mut ch) => {
            let got = tokio::select! {
                a = l.accept() => a.ok(),
                _ = ch.wait() => None,
                _ = tokio::time::sleep(Duration::from_secs(10)) => None,
            };
            got.and_then(|(s, _)| s.into_std().ok()).and_then(|s| {
                let _ = s.set_nonblocking(false);
                sys::fd::recv_fd(s.as_fd()).ok()
            })
        }
        Err(_) => None,
    };
    let _ = std::fs::remove_file(&path);
    drop(l);
    let (Ok(mut child), Some(master)) = (child, master) else {
        let _ = tx
            .send(b"berth: the exec's terminal could not be set up\r\n".to_vec())
            .await;
        drop(tx);
        let _ = writer.await;
        update(&id, |r| {
            r.running = false;
            r.exit_code.get_or_insert(126);
        });
        return;
    };
    let master = Arc::new(master);
    let size = {
        let mut all = execs();
        all.get_mut(&id).and_then(|r| {
            r.master = Some(master.clone());
            r.size.take()
        })
    };
    if let Some((h, w)) = size {
        let _ = sys::process::set_window_size(master.as_fd(), h, w);
    }
    let (rd, wr) = match (master.try_clone(), master.try_clone()) {
        (Ok(a), Ok(b)) => (std::fs::File::from(a), std::fs::File::from(b)),
        _ => {
            let _ = child.start_kill();
            return;
        }
    };
    // Blocking threads on the master: its reader ends with EIO once the process is gone.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    std::thread::spawn(move || {
        let mut rd = rd;
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = std::io::Read::read(&mut rd, &mut buf) {
            if n == 0 || out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut wr = wr;
        while let Ok(d) = in_rx.recv() {
            if std::io::Write::write_all(&mut wr, &d).is_err() {
                break;
            }
        }
    });
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = crd.read(&mut buf).await {
            if n == 0 || in_tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
        std::future::pending::<()>().await;
    });
    let mut wait = Box::pin(finish(id, c, child));
    loop {
        tokio::select! {
            d = out_rx.recv() => match d {
                Some(d) => { let _ = tx.send(d).await; }
                None => { (&mut wait).await; break; }
            },
            _ = &mut wait => {
                // What the process printed last, if it comes soon.
                while let Ok(Some(d)) =
                    tokio::time::timeout(Duration::from_millis(100), out_rx.recv()).await
                {
                    let _ = tx.send(d).await;
                }
                break;
            }
        }
    }
    input.abort();
    drop(tx);
    let _ = writer.await;
}
