//! `berth fn deploy|ls|inspect|rm|scale|invoke|logs`: functions (berth-gateway). Definitions
//! live in `<root>/functions.db`; `berth serve --listen ADDR` runs them. `invoke` goes
//! through the gateway (`--gateway URL`, `$BERTH_GATEWAY`, default http://127.0.0.1:8080).

use crate::Globals;
use anyhow::{bail, Context, Result};
use gateway::def::parse_duration;
use gateway::{Function, Mode};
use std::io::{Read, Write};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Deploy (or redeploy) a function: the image is resolved and unpacked now.
    Deploy(Box<DeployArgs>),
    /// List functions.
    #[command(alias = "list")]
    Ls {
        /// Only names.
        #[arg(short, long)]
        quiet: bool,
        /// `table` or `json`.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show functions' definitions as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove functions (the gateway stops their instances).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Change a function's --min and --max instances.
    Scale {
        name: String,
        #[arg(long)]
        min: Option<u32>,
        #[arg(long)]
        max: Option<u32>,
    },
    /// Call a function through the gateway; its response body goes to stdout.
    Invoke(InvokeArgs),
    /// Print a function's log (its instances' output and stdio-mode stderr).
    Logs {
        /// Keep printing what is appended.
        #[arg(short, long)]
        follow: bool,
        name: String,
    },
}

#[derive(clap::Args, Debug)]
struct DeployArgs {
    /// The function's name (a DNS label: a-z, 0-9, '-').
    name: String,
    /// The image (in the store: build, pull or load it first).
    #[arg(long)]
    image: String,
    /// NAME=VALUE in the instances' environment (repeatable).
    #[arg(short, long)]
    env: Vec<String>,
    /// `http` (the image's server on --port) or `stdio` (a process per request).
    #[arg(long, default_value = "http")]
    mode: String,
    /// The port the image's server listens on (http mode).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Instances kept warm.
    #[arg(long, default_value_t = 0)]
    min: u32,
    /// Most instances at once.
    #[arg(long, default_value_t = 4)]
    max: u32,
    /// Requests in flight per instance.
    #[arg(long, default_value_t = 8)]
    concurrency: u32,
    /// Time limit of one request, queueing and start included (500ms, 30s, 5m).
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// An idle instance is stopped after this long.
    #[arg(long, default_value = "5m")]
    idle_ttl: String,
    /// Memory limit per instance (512k, 128m, 1g).
    #[arg(long)]
    memory: Option<String>,
    /// CPUs per instance (0.5).
    #[arg(long)]
    cpus: Option<f64>,
    /// Requests waiting for an instance at most; more get 429.
    #[arg(long, default_value_t = 100)]
    queue: u32,
    /// KEY=VALUE label (repeatable).
    #[arg(long)]
    label: Vec<String>,
    /// Also invoke it by the clock: five cron fields (UTC) or `@every 30s`.
    #[arg(long)]
    schedule: Option<String>,
}

#[derive(clap::Args, Debug)]
struct InvokeArgs {
    name: String,
    /// The body: `@FILE`, `-` for stdin, or the text itself.
    #[arg(short, long)]
    data: Option<String>,
    /// `NAME:VALUE` request header (repeatable).
    #[arg(short = 'H', long)]
    header: Vec<String>,
    /// The HTTP method (POST when there is a body, else GET).
    #[arg(short = 'X', long)]
    method: Option<String>,
    /// Path and query below the function (`/items?id=1`).
    #[arg(long, default_value = "")]
    path: String,
    /// The gateway's address (default: $BERTH_GATEWAY, else http://127.0.0.1:8080).
    #[arg(long)]
    gateway: Option<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    match a.cmd {
        Sub::Deploy(d) => deploy(g, *d).map(|()| 0),
        Sub::Ls { quiet, format } => ls(g, quiet, &format).map(|()| 0),
        Sub::Inspect { names } => inspect(g, &names),
        Sub::Rm { names } => {
            let mut failed = false;
            for n in names {
                match gateway::remove(&g.root, &n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        Sub::Scale { name, min, max } => {
            if min.is_none() && max.is_none() {
                bail!("fn scale {name}: give --min and/or --max");
            }
            let mut store = gateway::store::Store::open(&g.root)?;
            let f = store.update(&name, |f| {
                if let Some(m) = min {
                    f.min = m;
                }
                if let Some(m) = max {
                    f.max = m;
                }
                Ok(())
            })?;
            println!("{}: min {} max {}", f.name, f.min, f.max);
            Ok(0)
        }
        Sub::Invoke(i) => invoke(i),
        Sub::Logs { follow, name } => logs(g, &name, follow).map(|()| 0),
    }
}

fn deploy(g: &Globals, d: DeployArgs) -> Result<()> {
    let mut f = Function::new(&d.name, &d.image);
    f.env = d.env;
    f.mode = d.mode.parse::<Mode>()?;
    f.port = d.port;
    f.min = d.min;
    f.max = d.max;
    f.concurrency = d.concurrency;
    f.timeout_ms = parse_duration("--timeout", &d.timeout)?.as_millis() as u64;
    f.idle_ttl_ms = parse_duration("--idle-ttl", &d.idle_ttl)?.as_millis() as u64;
    f.memory = d.memory;
    f.cpus = d.cpus;
    f.queue = d.queue;
    f.schedule = d.schedule;
    for l in d.label {
        match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => f.labels.push((k.to_string(), v.to_string())),
            _ => bail!("--label {l:?}: expected KEY=VALUE"),
        }
    }
    let f = gateway::deploy(&g.root, f)?;
    println!("{}", f.name);
    Ok(())
}

fn ls(g: &Globals, quiet: bool, format: &str) -> Result<()> {
    let list = gateway::store::Store::open(&g.root)?.list()?;
    if quiet {
        for f in &list {
            println!("{}", f.name);
        }
        return Ok(());
    }
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&list)?),
        "table" => {
            let mut out =
                String::from("NAME\tIMAGE\tMODE\tMIN\tMAX\tCONCURRENCY\tTIMEOUT\tIDLE-TTL\n");
            for f in &list {
                out += &format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    f.name,
                    f.image,
                    match f.mode {
                        Mode::Http => format!("http:{}", f.port),
                        Mode::Stdio => "stdio".into(),
                    },
                    f.min,
                    f.max,
                    f.concurrency,
                    gateway::server::show_duration(f.timeout()),
                    gateway::server::show_duration(f.idle_ttl()),
                );
            }
            print!("{}", columns(&out));
        }
        other => bail!("--format {other:?}: expected table or json"),
    }
    Ok(())
}

/// Tab-separated rows as columns three spaces apart.
fn columns(s: &str) -> String {
    let rows: Vec<Vec<&str>> = s.lines().map(|l| l.split('\t').collect()).collect();
    super::table::columns(&rows, 3)
        .iter()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

fn inspect(g: &Globals, names: &[String]) -> Result<i32> {
    let mut store = gateway::store::Store::open(&g.root)?;
    let mut found = Vec::new();
    let mut code = 0;
    for n in names {
        match store.get(n) {
            Ok(f) => found.push(f),
            Err(e) => {
                eprintln!("berth: {e}");
                code = 1;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(code)
}

fn invoke(i: InvokeArgs) -> Result<i32> {
    gateway::def::check_name(&i.name)?;
    let body: Option<Vec<u8>> = match i.data.as_deref() {
        None => None,
        Some("-") => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).context("read stdin")?;
            Some(b)
        }
        Some(d) => match d.strip_prefix('@') {
            Some(file) => Some(std::fs::read(file).with_context(|| format!("--data @{file}"))?),
            None => Some(d.as_bytes().to_vec()),
        },
    };
    let method = match &i.method {
        Some(m) => m.to_ascii_uppercase(),
        None if body.is_some() => "POST".into(),
        None => "GET".into(),
    };
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| anyhow::anyhow!("-X {method:?}: not an HTTP method"))?;
    let path = if i.path.is_empty() || i.path.starts_with('/') || i.path.starts_with('?') {
        i.path.clone()
    } else {
        format!("/{}", i.path)
    };
    let gw = i
        .gateway
        .clone()
        .or_else(|| {
            std::env::var("BERTH_GATEWAY")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let url = format!("{}/function/{}{}", gw.trim_end_matches('/'), i.name, path);
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .context("HTTP client")?;
    let mut req = client.request(method, &url);
    for h in &i.header {
        let Some((k, v)) = h.split_once(':') else {
            bail!("--header {h:?}: expected NAME:VALUE");
        };
        req = req.header(k.trim(), v.trim());
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().with_context(|| {
        format!(
            "call the gateway at {} (is `berth serve --listen` running?)",
            gw
        )
    })?;
    let status = resp.status();
    let bytes = resp.bytes().context("read the response")?;
    if status.is_success() {
        std::io::stdout().write_all(&bytes)?;
        Ok(0)
    } else {
        let msg = String::from_utf8_lossy(&bytes);
        eprintln!("berth: fn invoke {}: {status}: {}", i.name, msg.trim());
        Ok(1)
    }
}

fn logs(g: &Globals, name: &str, follow: bool) -> Result<()> {
    gateway::def::check_name(name)?;
    let path = gateway::instance::log_path(&g.root, name);
    let mut store = gateway::store::Store::open(&g.root)?;
    store.get(name)?;
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    };
    let mut out = std::io::stdout();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if let Some(file) = f.as_mut() {
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
            out.flush()?;
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        if f.is_none() {
            f = std::fs::File::open(&path).ok();
        }
    }
}
