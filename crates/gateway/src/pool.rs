//! The instance pool of one function: instances go `preparing` (counted in `starting`) →
//! idle / busy (a slot with `inflight` requests, at most `--concurrency`) → draining (no new
//! request; stopped when its last one ends) → gone (stopped: container deleted, root
//! unmounted, directory removed). At most `--max` instances (starting ones included); a
//! request finding no room starts one if it may, else waits in a queue of at most
//! `--queue` requests, plus what instances being started will take (beyond: refused at
//! once). The tick stops instances idle for
//! `--idle-ttl` down to `--min` and starts instances up to `--min`. An instance whose init
//! dies is removed at once (its requests fail with 502) and the next request replaces it.

use crate::def::Function;
use crate::instance::{self, Conn, Host, Prepared, Started};
use crate::metrics::{Metrics, PoolGauges};
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

/// One running instance.
pub struct Instance {
    pub id: String,
    pub pid: i32,
    pub dir: PathBuf,
    pub conn: Conn,
    pub dead: AtomicBool,
    cleaned: AtomicBool,
    /// Keep-alive connections to an http-mode instance, ready for the next request.
    pub idle_conns: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

struct Slot {
    inst: Arc<Instance>,
    inflight: u32,
    idle_since: Instant,
    draining: bool,
}

struct State {
    def: Function,
    slots: Vec<Slot>,
    starting: u32,
    waiting: u32,
    gone: bool,
    last_fail: Option<Instant>,
    /// An instance prepared ahead (after the function's first start), taken by the next
    /// start.
    spare: Option<Prepared>,
    preparing_spare: bool,
    /// `--schedule`, parsed; its last run and when it was taken up.
    schedule: Option<crate::cron::Schedule>,
    cron_last: Option<std::time::SystemTime>,
    cron_since: std::time::SystemTime,
}

/// Why a request got no instance.
#[derive(Debug)]
pub enum Refused {
    /// The function was removed (or redeployed: the caller looks it up again).
    Gone,
    /// The queue is full.
    QueueFull { queue: u32 },
    /// Starting an instance failed: the reason.
    Start(String),
}

/// The pool of one function.
pub struct Pool {
    /// Keeps the image of this pool's instances from gc while the pool lives.
    _pin: Option<crate::pin::PoolPin>,
    pub name: String,
    host: Arc<Host>,
    image: std::result::Result<image::Image, String>,
    st: Mutex<State>,
    notify: Notify,
    metrics: Arc<Metrics>,
}

/// A request's hold on an instance; released (and the queue woken) on drop.
pub struct Lease {
    pool: Arc<Pool>,
    pub inst: Arc<Instance>,
    /// This request started the instance.
    pub cold: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut stop = None;
        {
            let mut st = self.pool.lock();
            let gone = st.gone;
            if let Some(i) = st.slots.iter().position(|s| s.inst.id == self.inst.id) {
                let s = &mut st.slots[i];
                s.inflight = s.inflight.saturating_sub(1);
                if s.inflight == 0 {
                    s.idle_since = Instant::now();
                    if gone || s.draining {
                        stop = Some(st.slots.remove(i).inst);
                    }
                }
            }
        }
        if let Some(inst) = stop {
            self.pool.stop_instance(inst);
        }
        self.pool.notify.notify_one();
    }
}

/// Decrements the queue count when a waiting request is answered or dropped.
struct Ticket(Arc<Pool>);

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.waiting = st.waiting.saturating_sub(1);
    }
}

impl Pool {
    pub fn new(host: Arc<Host>, def: Function, metrics: Arc<Metrics>) -> Arc<Pool> {
        let image = resolve(&host, &def);
        let pin = image
            .as_ref()
            .ok()
            .and_then(|img| crate::pin::PoolPin::new(&host.root, &def.name, &img.manifest_digest));
        let schedule = parse_schedule(&def);
        Arc::new(Pool {
            _pin: pin,
            name: def.name.clone(),
            host,
            image,
            st: Mutex::new(State {
                def,
                slots: Vec::new(),
                starting: 0,
                waiting: 0,
                gone: false,
                last_fail: None,
                spare: None,
                preparing_spare: false,
                schedule,
                cron_last: None,
                cron_since: std::time::SystemTime::now(),
            }),
            notify: Notify::new(),
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn def(&self) -> Function {
        self.lock().def.clone()
    }

    /// Takes `def`'s limits (min, max, concurrency, timeouts, queue, labels) without
    /// touching the instances.
    pub fn set_limits(&self, def: Function) {
        let mut st = self.lock();
        if st.def.schedule != def.schedule {
            st.schedule = parse_schedule(&def);
            st.cron_since = std::time::SystemTime::now();
        }
        st.def = def;
        drop(st);
        self.notify.notify_waiters();
    }

    /// Whether the schedule wants a run now (and if so, takes it: the next call says no
    /// until the next one is due).
    pub fn cron_due(&self, now: std::time::SystemTime) -> bool {
        let mut st = self.lock();
        if st.gone {
            return false;
        }
        let due = st
            .schedule
            .as_ref()
            .is_some_and(|s| s.due(now, st.cron_last, st.cron_since));
        if due {
            st.cron_last = Some(now);
        }
        due
    }

    pub fn gauges(&self) -> PoolGauges {
        let st = self.lock();
        PoolGauges {
            name: self.name.clone(),
            instances: st.slots.len(),
            busy: st.slots.iter().filter(|s| s.inflight > 0).count(),
            queued: st.waiting,
            starting: st.starting,
            spare_ready: st.spare.is_some(),
        }
    }

    /// An instance with room for one more request: a warm one, a new one, or one freed
    /// while this request waited in the queue.
    pub async fn acquire(self: &Arc<Self>) -> std::result::Result<Lease, Refused> {
        let mut ticket: Option<Ticket> = None;
        let mut my_start: Option<oneshot::Receiver<std::result::Result<(), String>>> = None;
        let mut started = false;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if st.gone {
                    return Err(Refused::Gone);
                }
                let conc = st.def.concurrency;
                // The fullest instance with room: load is packed on few instances, so the
                // others go idle and are stopped.
                if let Some(slot) = st
                    .slots
                    .iter_mut()
                    .filter(|s| {
                        !s.draining && s.inflight < conc && !s.inst.dead.load(Ordering::Relaxed)
                    })
                    .max_by_key(|s| s.inflight)
                {
                    slot.inflight += 1;
                    return Ok(Lease {
                        pool: self.clone(),
                        inst: slot.inst.clone(),
                        cold: started,
                    });
                }
                let live = st.slots.iter().filter(|s| !s.draining).count() as u32;
                if !started && live + st.starting < st.def.max {
                    my_start = Some(self.spawn_start(&mut st));
                    started = true;
                } else if !started && ticket.is_none() {
                    // Instances being started will take `concurrency` requests each (one
                    // is the request that started it): those wait beyond the queue.
                    let soon = st.starting * st.def.concurrency.saturating_sub(1);
                    if st.waiting >= st.def.queue + soon {
                        return Err(Refused::QueueFull {
                            queue: st.def.queue,
                        });
                    }
                    st.waiting += 1;
                    ticket = Some(Ticket(self.clone()));
                }
            }
            match my_start.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        r = rx => {
                            my_start = None;
                            if let Ok(Err(msg)) = r {
                                return Err(Refused::Start(msg));
                            }
                        }
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Starts an instance in the background (counted in `starting` until it is adopted or
    /// failed); the receiver learns how it went.
    fn spawn_start(
        self: &Arc<Self>,
        st: &mut State,
    ) -> oneshot::Receiver<std::result::Result<(), String>> {
        st.starting += 1;
        let (tx, rx) = oneshot::channel();
        let pool = self.clone();
        let def = st.def.clone();
        let spare = st.spare.take();
        tokio::spawn(async move {
            let host = pool.host.clone();
            let img = pool.image.clone();
            let res = tokio::task::spawn_blocking(move || match spare {
                Some(p) if p.is_dead_zygote() => {
                    instance::discard(&host, p);
                    let img = img?;
                    instance::start(&host, &def, &img).map_err(|e| e.to_string())
                }
                Some(p) => instance::launch(&host, &def, p).map_err(|e| e.to_string()),
                None => {
                    let img = img?;
                    instance::start(&host, &def, &img).map_err(|e| e.to_string())
                }
            })
            .await
            .unwrap_or_else(|e| Err(format!("the start task failed: {e}")));
            let out = match res {
                Ok(started) => {
                    pool.metrics.cold_start(&pool.name);
                    pool.adopt(started);
                    Ok(())
                }
                Err(msg) => {
                    tracing::warn!(function = %pool.name, error = %msg, "instance start failed");
                    let mut st = pool.lock();
                    st.starting = st.starting.saturating_sub(1);
                    st.last_fail = Some(Instant::now());
                    Err(msg)
                }
            };
            pool.notify.notify_waiters();
            let _ = tx.send(out);
            pool.refill_spare();
        });
        rx
    }

    /// Prepares the next start's instance in the background unless one is there (or being
    /// made), the pool is gone, or spares are off.
    ///
    /// While the function has instances (and an idle TTL of 1 s or more, or a `--min`) the
    /// spare is a zygote (its container created, the
    /// init parked: a start is one `berth-runtime start`); with none (scaled to zero) it
    /// has no process (root mounted, config.json written).
    fn refill_spare(self: &Arc<Self>) {
        let (def, zygote) = {
            let mut st = self.lock();
            if !self.host.spares || st.gone || st.spare.is_some() || st.preparing_spare {
                return;
            }
            st.preparing_spare = true;
            // Below 1 s of idle TTL (and no --min) a zygote would mostly be removed before
            // any use: the spare has no process then.
            let lasting = st.def.min > 0 || st.def.idle_ttl() >= Duration::from_secs(1);
            (st.def.clone(), lasting && !st.slots.is_empty())
        };
        let pool = self.clone();
        let spawn = tokio::runtime::Handle::try_current();
        let work = move || {
            let made = match &pool.image {
                Ok(img) if zygote => {
                    instance::prepare_created(&pool.host, &def, img).map_err(|e| e.to_string())
                }
                Ok(img) => instance::prepare(&pool.host, &def, img).map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            let mut st = pool.lock();
            st.preparing_spare = false;
            match made {
                Ok(p) if st.gone => {
                    drop(st);
                    instance::discard(&pool.host, p);
                }
                Ok(p) => st.spare = Some(p),
                Err(e) => {
                    tracing::warn!(function = %pool.name, error = %e, "prepare a spare instance")
                }
            }
        };
        match spawn {
            Ok(h) => {
                h.spawn_blocking(work);
            }
            Err(_) => work(),
        }
    }

    /// Takes a started instance into the pool and watches its init.
    fn adopt(self: &Arc<Self>, s: Started) {
        let inst = Arc::new(Instance {
            id: s.id,
            pid: s.pid,
            dir: s.dir,
            conn: s.conn,
            dead: AtomicBool::new(false),
            cleaned: AtomicBool::new(false),
            idle_conns: Mutex::new(Vec::new()),
        });
        let gone = {
            let mut st = self.lock();
            st.starting = st.starting.saturating_sub(1);
            if !st.gone {
                st.slots.push(Slot {
                    inst: inst.clone(),
                    inflight: 0,
                    idle_since: Instant::now(),
                    draining: false,
                });
            }
            st.gone
        };
        let pool = self.clone();
        let watched = inst.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("wait-{}", inst.pid))
            .spawn(move || {
                wait_exit(watched.pid);
                pool.on_death(&watched);
            });
        if let Err(e) = spawned {
            tracing::warn!(instance = %inst.id, error = %e, "cannot watch the instance");
        }
        if gone {
            self.stop_instance(inst);
        }
    }

    /// The init of `inst` exited: out of the pool, and cleaned unless we stopped it.
    fn on_death(&self, inst: &Arc<Instance>) {
        inst.dead.store(true, Ordering::Relaxed);
        {
            let mut st = self.lock();
            st.slots.retain(|s| s.inst.id != inst.id);
        }
        self.notify.notify_waiters();
        if !inst.cleaned.swap(true, Ordering::AcqRel) {
            tracing::warn!(function = %self.name, instance = %inst.id, "instance died; it is replaced on demand");
            instance::stop(&self.host, &inst.id, &inst.dir);
        }
    }

    /// Marks `inst` dead after a failed request (its connection broke): it gets no new
    /// request and is stopped.
    pub fn discard(&self, inst: &Arc<Instance>) {
        inst.dead.store(true, Ordering::Relaxed);
        let mut st = self.lock();
        if let Some(s) = st.slots.iter_mut().find(|s| s.inst.id == inst.id) {
            s.draining = true;
        }
    }

    /// Stops `inst` in the background (once).
    fn stop_instance(&self, inst: Arc<Instance>) {
        if inst.cleaned.swap(true, Ordering::AcqRel) {
            return;
        }
        let host = self.host.clone();
        let run = move || instance::stop(&host, &inst.id, &inst.dir);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(run);
            }
            Err(_) => run(),
        }
    }

    /// The periodic pass: idle instances past `--idle-ttl` stopped down to `--min`;
    /// instances started up to `--min` (not within 5 s of a failed start).
    pub fn tick(self: &Arc<Self>) {
        let mut stop = Vec::new();
        let mut zygote = None;
        {
            let mut st = self.lock();
            if st.gone {
                return;
            }
            let now = Instant::now();
            let ttl = st.def.idle_ttl();
            let min = st.def.min as usize;
            let mut live = st.slots.iter().filter(|s| !s.draining).count();
            let mut idle: Vec<usize> = (0..st.slots.len())
                .filter(|&i| {
                    let s = &st.slots[i];
                    !s.draining && s.inflight == 0 && now.duration_since(s.idle_since) >= ttl
                })
                .collect();
            idle.sort_by_key(|&i| st.slots[i].idle_since);
            for i in idle {
                if live <= min {
                    break;
                }
                st.slots[i].draining = true;
                live -= 1;
            }
            let mut i = 0;
            while i < st.slots.len() {
                if st.slots[i].draining && st.slots[i].inflight == 0 {
                    stop.push(st.slots.remove(i).inst);
                } else {
                    i += 1;
                }
            }
            // Scaled to zero: no process is left, a zygote's parked init included (the
            // spare is made again without a process).
            if st.slots.is_empty()
                && st.starting == 0
                && st.spare.as_ref().is_some_and(|p| p.is_created())
            {
                zygote = st.spare.take();
            }
            let recent_fail = st
                .last_fail
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(5));
            while !recent_fail && live + (st.starting as usize) < min {
                drop(self.spawn_start(&mut st));
                live += 1;
            }
        }
        for inst in stop {
            tracing::debug!(function = %self.name, instance = %inst.id, "idle: stopped");
            self.stop_instance(inst);
        }
        if let Some(p) = zygote {
            tracing::debug!(function = %self.name, instance = %p.id, "scaled to zero: zygote removed");
            let pool = self.clone();
            let work = move || {
                instance::discard(&pool.host, p);
                pool.refill_spare();
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn_blocking(work);
                }
                Err(_) => work(),
            }
        }
    }

    /// The function is removed or redeployed: no new request; idle instances stop now,
    /// busy ones when their requests end.
    pub fn retire(&self) {
        let mut stop = Vec::new();
        let spare = {
            let mut st = self.lock();
            st.gone = true;
            let mut i = 0;
            while i < st.slots.len() {
                if st.slots[i].inflight == 0 {
                    stop.push(st.slots.remove(i).inst);
                } else {
                    st.slots[i].draining = true;
                    i += 1;
                }
            }
            st.spare.take()
        };
        self.notify.notify_waiters();
        for inst in stop {
            self.stop_instance(inst);
        }
        if let Some(p) = spare {
            let host = self.host.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn_blocking(move || instance::discard(&host, p));
                }
                Err(_) => instance::discard(&host, p),
            }
        }
    }

    /// Stops everything now (gateway shutdown), waiting for starts in progress (up to the
    /// start timeout) so no instance outlives the gateway. Blocking.
    pub fn stop_all_blocking(&self) {
        let deadline = Instant::now() + self.host.start_timeout + Duration::from_secs(1);
        loop {
            let (all, busy, spare) = {
                let mut st = self.lock();
                st.gone = true;
                (
                    std::mem::take(&mut st.slots),
                    st.starting > 0 || st.preparing_spare,
                    st.spare.take(),
                )
            };
            if let Some(p) = spare {
                instance::discard(&self.host, p);
            }
            for s in all {
                if !s.inst.cleaned.swap(true, Ordering::AcqRel) {
                    instance::stop(&self.host, &s.inst.id, &s.inst.dir);
                }
            }
            if !busy || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.notify.notify_waiters();
    }
}

fn parse_schedule(def: &Function) -> Option<crate::cron::Schedule> {
    let text = def.schedule.as_deref()?;
    match crate::cron::Schedule::parse(text) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(function = %def.name, error = %e, "schedule ignored");
            None
        }
    }
}

/// The function's image from the store (resolved once per pool).
fn resolve(host: &Host, def: &Function) -> std::result::Result<image::Image, String> {
    let store = image::ImageStore::open(&host.root).map_err(|e| e.to_string())?;
    let digest: content::Digest = def
        .image_id
        .parse()
        .map_err(|_| format!("function {}: bad image id {:?}", def.name, def.image_id))?;
    store
        .image(&digest)
        .map_err(|e| format!("function {}: image {}: {e}", def.name, def.image))
}

/// Blocks until `pid` (a child of this process, as a subreaper) has exited.
fn wait_exit(pid: i32) {
    use nix::sys::wait::waitpid;
    let p = nix::unistd::Pid::from_raw(pid);
    loop {
        match waitpid(p, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(..))
            | Ok(nix::sys::wait::WaitStatus::Signaled(..)) => return,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            // Not our child (no subreaper): watch /proc instead.
            Err(_) => {
                while std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return;
            }
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')))
        .unwrap_or(true)
}
