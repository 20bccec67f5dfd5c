//! The containerd task service: a thin ttrpc adapter over the engine.
//!
//! Each RPC turns its request into an engine call ([`crate::spec`],
//! [`crate::instance`], [`crate::state`]) and the result into a response; errors
//! become ttrpc statuses through [`crate::error::Error::code`] only. Events go out
//! in containerd's order: TaskCreate → TaskStart → TaskExit → TaskDelete, and
//! TaskPaused / TaskResumed; for an exec TaskExecAdded → TaskExecStarted →
//! TaskExit (its id the exec id). Calls with an `exec_id` act on the task's
//! [`ExecProcess`] ([`crate::exec`]).
//!
//! One shim serves every container of a pod (same `io.kubernetes.cri.sandbox-id`);
//! the pod's sandbox container runs no RTOS: it is a placeholder that lives until
//! it is killed.

use std::collections::HashMap;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use containerd_shim::api;
use containerd_shim::protos::cgroups::metrics::Metrics;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskPaused, TaskResumed,
    TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::{self, Client};
use containerd_shim::protos::EventsClient;
use containerd_shim::{Context, ExitSignal, TtrpcContext, TtrpcResult};

use crate::config::Config;
use crate::error::{quote, Error};
use crate::exec::ExecProcess;
use crate::instance::{lock, ExitInfo, Instance, IoPaths, Status};
use crate::pedestal::detect::Chosen;
use crate::state::{self, TaskRecord};

/// A message sent to containerd inside a protobuf `Any`, with its `type_url`: the
/// message's protobuf full name, bare (no `type.googleapis.com/`), as containerd's
/// typeurl registry and containerd-shim's `convert_to_any` write it.
///
/// The name is stated here rather than read from the message's descriptor
/// (`descriptor_dyn().full_name()`), because the first reflection call builds
/// rust-protobuf's whole descriptor pool: about 500 KiB of shim RSS. A test checks
/// each name against the descriptor.
pub trait TypeUrl: Message {
    /// The protobuf full name, e.g. `containerd.events.TaskCreate`.
    const TYPE_URL: &'static str;

    /// The message packed into an `Any`.
    fn to_any(&self) -> Result<Any, Error> {
        Ok(Any {
            type_url: Self::TYPE_URL.to_owned(),
            value: self
                .write_to_bytes()
                .map_err(|e| Error::Internal(format!("encode {}: {e}", Self::TYPE_URL)))?,
            ..Default::default()
        })
    }
}

/// A task event, and the topic it is published on.
pub trait Event: TypeUrl {
    /// The containerd topic, e.g. `/tasks/create`.
    const TOPIC: &'static str;
}

/// Every message micrun packs into an `Any`: `type => full name` or
/// `type => full name, topic` for events. Each name is stated once, here.
macro_rules! type_urls {
    ($($ty:ty => $url:literal $(, $topic:expr)?;)*) => {
        $(
            impl TypeUrl for $ty {
                const TYPE_URL: &'static str = $url;
            }
            $(impl Event for $ty {
                const TOPIC: &'static str = $topic;
            })?
        )*
        /// `(type_url, descriptor full name)` of every [`TypeUrl`] above.
        #[cfg(test)]
        fn declared_type_urls() -> Vec<(&'static str, String)> {
            use containerd_shim::protos::protobuf::MessageFull;
            vec![$((<$ty as TypeUrl>::TYPE_URL, <$ty>::descriptor().full_name().to_owned())),*]
        }
    };
}

type_urls! {
    TaskCreate => "containerd.events.TaskCreate", topics::TASK_CREATE_EVENT_TOPIC;
    TaskStart => "containerd.events.TaskStart", topics::TASK_START_EVENT_TOPIC;
    TaskExit => "containerd.events.TaskExit", topics::TASK_EXIT_EVENT_TOPIC;
    TaskDelete => "containerd.events.TaskDelete", topics::TASK_DELETE_EVENT_TOPIC;
    TaskPaused => "containerd.events.TaskPaused", topics::TASK_PAUSED_EVENT_TOPIC;
    TaskResumed => "containerd.events.TaskResumed", topics::TASK_RESUMED_EVENT_TOPIC;
    TaskExecAdded => "containerd.events.TaskExecAdded", topics::TASK_EXEC_ADDED_EVENT_TOPIC;
    TaskExecStarted => "containerd.events.TaskExecStarted", topics::TASK_EXEC_STARTED_EVENT_TOPIC;
    Metrics => "io.containerd.cgroups.v1.Metrics";
}

/// Connects to containerd's ttrpc address (`unix://` prefix optional), as
/// containerd-shim's `RemotePublisher` does.
fn connect_events(address: &str) -> Result<EventsClient, String> {
    let fd = containerd_shim::util::connect(address).map_err(|e| e.to_string())?;
    // Client::new takes ownership of the descriptor.
    let client = Client::new(fd).map_err(|e| e.to_string())?;
    Ok(EventsClient::new(client))
}

/// Publishes events, or drops them (with a debug line) where there is no
/// publisher, as when iSulad starts the shim. A publish that fails (containerd
/// restarted and the connection broke) reconnects once and retries.
///
/// Events go straight to containerd's ttrpc `Events.Forward`, not through
/// containerd-shim's `RemotePublisher`, which names each event by reflection
/// (see [`TypeUrl`]).
#[derive(Clone)]
pub struct Events {
    address: Option<String>,
    publisher: Arc<Mutex<Option<EventsClient>>>,
    namespace: String,
}

impl Events {
    /// `address` is containerd's ttrpc address (`TTRPC_ADDRESS`), if any.
    pub fn new(address: Option<String>, namespace: &str) -> Events {
        let publisher = address.as_ref().and_then(|a| match connect_events(a) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!("cannot connect to {a} to publish events: {e}");
                None
            }
        });
        Events {
            address,
            publisher: Arc::new(Mutex::new(publisher)),
            namespace: namespace.to_string(),
        }
    }

    /// The forward request of `event`: its envelope, stamped now.
    fn request<E: Event>(&self, event: &E) -> Result<ForwardRequest, Error> {
        Ok(ForwardRequest {
            envelope: MessageField::some(Envelope {
                timestamp: MessageField::some(timestamp(SystemTime::now())),
                namespace: self.namespace.clone(),
                topic: E::TOPIC.to_owned(),
                event: MessageField::some(event.to_any()?),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn send<E: Event>(&self, event: E) {
        let topic = E::TOPIC;
        let Some(address) = &self.address else {
            log::debug!("no event publisher; dropped {topic}");
            return;
        };
        let req = match self.request(&event) {
            Ok(req) => req,
            Err(e) => {
                log::warn!("event {topic} dropped: {e}");
                return;
            }
        };
        let mut publisher = lock(&self.publisher);
        for attempt in 0..2 {
            if publisher.is_none() {
                *publisher = connect_events(address).ok();
            }
            let Some(p) = publisher.as_ref() else { break };
            match p.forward(Context::default(), &req) {
                Ok(_) => return,
                Err(e) => {
                    log::warn!("publish {topic} (attempt {}): {e}", attempt + 1);
                    *publisher = None;
                }
            }
        }
        log::warn!("event {topic} could not be delivered to {address}");
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

/// A sandbox (pause) container of a pod: no RTOS, alive until killed.
struct Placeholder {
    state: Mutex<(Status, Option<ExitInfo>)>,
    cond: Condvar,
}

impl Placeholder {
    fn new() -> Placeholder {
        Placeholder {
            state: Mutex::new((Status::Created, None)),
            cond: Condvar::new(),
        }
    }
    fn set(&self, status: Status, exit: Option<ExitInfo>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.1.is_none() {
            *s = (status, exit);
        }
        self.cond.notify_all();
    }
    fn get(&self) -> (Status, Option<ExitInfo>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn wait(&self) -> ExitInfo {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(e) = s.1 {
                return e;
            }
            s = self.cond.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

enum Workload {
    Rtos(Arc<Instance>),
    Sandbox(Arc<Placeholder>),
}

struct Task {
    id: String,
    bundle: PathBuf,
    io: IoPaths,
    terminal: bool,
    workload: Workload,
    dir: PathBuf,
    record: TaskRecord,
    /// The config file named by the runtime options, if any (else the shim's).
    config_path: Option<PathBuf>,
    /// The pedestal and how it was chosen, for error messages.
    chosen: Option<Chosen>,
    /// Its execs, by exec id, from Exec until Delete.
    execs: Mutex<HashMap<String, Arc<ExecProcess>>>,
}

impl Task {
    fn status(&self) -> (Status, Option<ExitInfo>) {
        match &self.workload {
            Workload::Rtos(i) => (i.status(), i.exit()),
            Workload::Sandbox(p) => p.get(),
        }
    }
    fn pid(&self) -> u32 {
        match &self.workload {
            Workload::Rtos(i) => i.pid().unwrap_or_else(std::process::id),
            Workload::Sandbox(_) => std::process::id(),
        }
    }
}

/// How long a shim left without a task (its last Delete, or a failed Create)
/// waits for containerd's Shutdown before it exits by itself (see
/// `Service::exit_if_still_empty`).
pub const ORPHAN_SHIM_EXIT: Duration = Duration::from_secs(5);

/// The task service of one shim process.
#[derive(Clone)]
pub struct Service {
    namespace: String,
    tasks: Arc<Mutex<HashMap<String, Arc<Task>>>>,
    events: Events,
    exit: Arc<ExitSignal>,
}

/// Where an exec's events stand between Start and its exit.
enum ExecOrder {
    /// Start has not published TaskExecStarted yet.
    Starting,
    /// It ended before that: its TaskExit, sent right after TaskExecStarted.
    ExitFirst(Box<TaskExit>),
    Started,
}

impl Service {
    /// After a failed Create or the last Delete: containerd shuts a shim without
    /// tasks down at once; if it does not within [`ORPHAN_SHIM_EXIT`] (it was
    /// killed while the Create ran and reconnected, it was killed between the
    /// Delete and the Shutdown, its Shutdown failed or timed out, or the client
    /// sends none), the shim exits by itself while it still holds no task, so
    /// it is not left running unlisted and unremovable (`ctr task rm` finds no
    /// task in it), holding containerd's end of its log FIFO.
    fn exit_if_still_empty(&self) {
        if !lock(&self.tasks).is_empty() {
            return;
        }
        let tasks = Arc::clone(&self.tasks);
        let exit = Arc::clone(&self.exit);
        let _ = std::thread::Builder::new()
            .name("orphan-exit".into())
            .spawn(move || {
                std::thread::sleep(ORPHAN_SHIM_EXIT);
                if lock(&tasks).is_empty() {
                    log::info!(
                        "no task and no Shutdown {ORPHAN_SHIM_EXIT:?} after a failed Create \
                         or the last Delete; the shim exits"
                    );
                    exit.signal();
                }
            });
    }

    pub fn new(namespace: &str, events: Events, exit: Arc<ExitSignal>) -> Service {
        let svc = Service {
            namespace: namespace.to_string(),
            tasks: Arc::new(Mutex::new(HashMap::new())),
            events,
            exit,
        };
        svc.watch_exits();
        svc
    }

    /// Forwards the reaper's process exits to the instance they belong to.
    fn watch_exits(&self) {
        use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};
        let Ok(sub) = monitor_subscribe(Topic::Pid) else {
            log::warn!("cannot subscribe to process exits");
            return;
        };
        let tasks = self.tasks.clone();
        std::thread::spawn(move || {
            while let Ok(ev) = sub.rx.recv() {
                let Subject::Pid(pid) = ev.subject else {
                    continue;
                };
                crate::stdio::child_exited(pid, ev.exit_code);
                let found = lock(&tasks).values().find_map(|t| match &t.workload {
                    Workload::Rtos(i) if i.pid() == Some(pid as u32) => Some(i.clone()),
                    _ => None,
                });
                if let Some(inst) = found {
                    inst.process_exited(ev.exit_code);
                }
            }
        });
    }

    fn get(&self, id: &str) -> Result<Arc<Task>, Error> {
        lock(&self.tasks)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// Create; `chosen` receives the pedestal and how it was chosen once known,
    /// for the error message.
    fn do_create(
        &self,
        req: &api::CreateTaskRequest,
        chosen: &mut Option<Chosen>,
    ) -> Result<u32, Error> {
        let id = req.id.clone();
        if lock(&self.tasks).contains_key(&id) {
            return Err(Error::AlreadyExists(id));
        }
        let io = IoPaths {
            stdin: Some(PathBuf::from(&req.stdin)).filter(|p| !p.as_os_str().is_empty()),
            stdout: Some(PathBuf::from(&req.stdout)).filter(|p| !p.as_os_str().is_empty()),
            stderr: Some(PathBuf::from(&req.stderr)).filter(|p| !p.as_os_str().is_empty()),
        };
        // Before anything is made: a bad log URI leaves nothing behind.
        crate::stdio::check(&io)
            .map_err(|e| Error::InvalidArgument(format!("create {id}: {e}")))?;
        let config_path =
            crate::config::options_config_path(&req.options.type_url, &req.options.value)
                .map_err(|e| Error::InvalidArgument(format!("create {id}: {e}")))?;
        let config = Config::load_for(config_path.as_deref())?;
        let bundle = PathBuf::from(&req.bundle);
        // For the `delete` action, which runs in the bundle without the options.
        match &config_path {
            Some(p) => std::fs::write(bundle.join(CONFIG_PATH_FILE), p.as_os_str().as_bytes())
                .map_err(|e| {
                    Error::Internal(format!(
                        "write {}: {e}",
                        bundle.join(CONFIG_PATH_FILE).display()
                    ))
                })?,
            None => {
                let _ = std::fs::remove_file(bundle.join(CONFIG_PATH_FILE));
            }
        }
        let rootfs = bundle.join("rootfs");
        let mut mounted = None;
        for m in &req.rootfs {
            let options: Vec<String> = m.options.to_vec();
            containerd_shim::mount::mount_rootfs(
                Some(m.type_.as_str()).filter(|t| !t.is_empty()),
                Some(m.source.as_str()).filter(|s| !s.is_empty()),
                &options,
                &rootfs,
            )
            .map_err(|e| {
                Error::Internal(format!("mount the rootfs on {}: {e}", rootfs.display()))
            })?;
            mounted = Some(rootfs.clone());
        }
        let undo_mount = |mounted: &Option<PathBuf>| {
            if let Some(r) = mounted {
                if let Err(e) = state::unmount(r) {
                    log::warn!("{e}");
                }
            }
        };
        let dir = state::task_dir(&config.state_dir, &self.namespace, &id);

        let built = crate::spec::build_noting(&id, &self.namespace, &bundle, &config, chosen);
        let (spec, ped) = match built {
            Ok(x) => x,
            Err(e) => {
                undo_mount(&mounted);
                return Err(e.into());
            }
        };
        let mut record = TaskRecord {
            id: id.clone(),
            namespace: self.namespace.clone(),
            bundle: bundle.clone(),
            mounted_rootfs: mounted.clone(),
            pedestal: spec.pedestal.name().to_string(),
            leftovers: Default::default(),
        };
        let fail = |e: Error, dir: &Path, mounted: &Option<PathBuf>| {
            let _ = std::fs::remove_dir_all(dir);
            undo_mount(mounted);
            e
        };
        state::create_dir(&dir).map_err(|e| {
            fail(
                Error::Internal(format!("create {}: {e}", dir.display())),
                &dir,
                &mounted,
            )
        })?;
        // Recorded before the partition exists too: a shim killed inside the
        // pedestal's create leaves a record (the mount, the directory) for the
        // `delete` action, and a full state dir fails here, before anything runs.
        state::write(&dir, &record).map_err(|e| {
            fail(
                Error::Internal(format!("write the state of {id} in {}: {e}", dir.display())),
                &dir,
                &mounted,
            )
        })?;
        let workload = if spec.sandbox {
            Workload::Sandbox(Arc::new(Placeholder::new()))
        } else {
            let partition = ped
                .create(&spec, &dir)
                .map_err(|e| fail(Error::Spec(e.into()), &dir, &mounted))?;
            record.leftovers = partition.leftovers();
            let inst = Instance::new(spec, partition, io.clone(), config.lifecycle.clone())
                .map_err(|e| fail(e.into(), &dir, &mounted))?;
            Workload::Rtos(Arc::new(inst))
        };
        if let Err(e) = state::write(&dir, &record) {
            if let Workload::Rtos(i) = &workload {
                i.destroy();
            }
            return Err(fail(
                Error::Internal(format!("write the state of {id} in {}: {e}", dir.display())),
                &dir,
                &mounted,
            ));
        }
        let task = Arc::new(Task {
            id: id.clone(),
            bundle,
            io,
            terminal: req.terminal,
            workload,
            dir,
            record,
            config_path,
            chosen: chosen.clone(),
            execs: Mutex::new(HashMap::new()),
        });
        let pid = task.pid();
        if let Workload::Rtos(inst) = &task.workload {
            let events = self.events.clone();
            let tid = id.clone();
            inst.set_exit_hook(move |e: &ExitInfo| {
                events.send(TaskExit {
                    container_id: tid.clone(),
                    id: tid.clone(),
                    pid,
                    exit_status: e.code,
                    exited_at: MessageField::some(timestamp(e.at)),
                    ..Default::default()
                })
            });
        }
        lock(&self.tasks).insert(id.clone(), task);
        self.events.send(TaskCreate {
            container_id: id,
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(containerd_shim::protos::events::task::TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            pid,
            ..Default::default()
        });
        Ok(pid)
    }

    /// The exec `exec_id` of task `id`.
    fn get_exec(&self, id: &str, exec_id: &str) -> Result<(Arc<Task>, Arc<ExecProcess>), Error> {
        let task = self.get(id)?;
        let exec = lock(&task.execs)
            .get(exec_id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("{id}: exec {}", quote(exec_id))))?;
        Ok((task, exec))
    }

    fn do_exec(&self, req: &api::ExecProcessRequest) -> Result<(), Error> {
        let task = self.get(&req.id)?;
        let Workload::Rtos(inst) = &task.workload else {
            return Err(Error::Instance(
                crate::instance::InstanceError::Precondition(format!(
                    "exec in {}: the pod's sandbox container runs nothing; exec into one of \
                     its RTOS containers",
                    req.id
                )),
            ));
        };
        if lock(&task.execs).contains_key(&req.exec_id) {
            return Err(Error::AlreadyExists(format!(
                "{}: exec {}",
                req.id,
                quote(&req.exec_id)
            )));
        }
        let io = IoPaths {
            // An RTOS command takes no input, but its stdin FIFO is held open
            // until it ends (see crate::exec).
            stdin: Some(PathBuf::from(&req.stdin)).filter(|p| !p.as_os_str().is_empty()),
            stdout: Some(PathBuf::from(&req.stdout)).filter(|p| !p.as_os_str().is_empty()),
            stderr: Some(PathBuf::from(&req.stderr)).filter(|p| !p.as_os_str().is_empty()),
        };
        crate::stdio::check(&io)
            .map_err(|e| Error::InvalidArgument(format!("exec {}: {e}", quote(&req.exec_id))))?;
        let exec = ExecProcess::new(&req.id, &req.exec_id, &req.spec.value, io, req.terminal)?;
        inst.exec_ready()?;
        lock(&task.execs).insert(req.exec_id.clone(), Arc::new(exec));
        self.events.send(TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        });
        Ok(())
    }

    /// The exec's TaskExit, sent by the I/O loop when it ends. A command can
    /// end before Start has published TaskExecStarted: its exit then waits in
    /// `order` until [`Service::start_exec`] has, so that the events keep
    /// containerd's order (added, started, exit).
    fn exec_exit_hook(
        &self,
        task: &Task,
        exec_id: &str,
        order: Arc<Mutex<ExecOrder>>,
    ) -> impl Fn(&ExitInfo) + Send + 'static {
        let events = self.events.clone();
        let (cid, eid, pid) = (task.id.clone(), exec_id.to_string(), task.pid());
        move |e: &ExitInfo| {
            let exit = TaskExit {
                container_id: cid.clone(),
                id: eid.clone(),
                pid,
                exit_status: e.code,
                exited_at: MessageField::some(timestamp(e.at)),
                ..Default::default()
            };
            let mut order = lock(&order);
            match *order {
                ExecOrder::Started => events.send(exit),
                _ => *order = ExecOrder::ExitFirst(Box::new(exit)),
            }
        }
    }

    fn start_exec(&self, id: &str, exec_id: &str) -> Result<u32, Error> {
        let (task, exec) = self.get_exec(id, exec_id)?;
        let Workload::Rtos(inst) = &task.workload else {
            return Err(Error::NotFound(format!("{id}: exec {}", quote(exec_id))));
        };
        let order = Arc::new(Mutex::new(ExecOrder::Starting));
        exec.start(
            inst,
            &self.namespace,
            self.exec_exit_hook(&task, exec_id, order.clone()),
        )?;
        let pid = task.pid();
        let mut order = lock(&order);
        self.events.send(TaskExecStarted {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            pid,
            ..Default::default()
        });
        if let ExecOrder::ExitFirst(exit) = std::mem::replace(&mut *order, ExecOrder::Started) {
            self.events.send(*exit);
        }
        Ok(pid)
    }

    fn kill_exec(&self, id: &str, exec_id: &str, signal: u32) -> Result<(), Error> {
        let (task, exec) = self.get_exec(id, exec_id)?;
        let Workload::Rtos(inst) = &task.workload else {
            return Ok(());
        };
        if signal == 0 || exec.status().1.is_some() {
            // Signal 0 is a liveness check; a finished exec has nothing to kill.
            return Ok(());
        }
        if let Some(info) = exec.kill(inst, signal) {
            self.exec_exit_hook(&task, exec_id, Arc::new(Mutex::new(ExecOrder::Started)))(&info);
        }
        Ok(())
    }

    fn delete_exec(&self, id: &str, exec_id: &str) -> Result<api::DeleteResponse, Error> {
        let (task, exec) = self.get_exec(id, exec_id)?;
        let (status, exit) = exec.status();
        if status == Status::Running {
            return Err(Error::Instance(
                crate::instance::InstanceError::Precondition(format!(
                    "exec {} in container {id} is still running; kill it first",
                    quote(exec_id)
                )),
            ));
        }
        // Never started: it ends here, so that a Wait on it returns.
        exec.abandon();
        exec.close_stdio();
        lock(&task.execs).remove(exec_id);
        let exit = exit.or(exec.status().1).unwrap_or(ExitInfo {
            code: 0,
            at: SystemTime::now(),
        });
        Ok(api::DeleteResponse {
            pid: task.pid(),
            exit_status: exit.code,
            exited_at: MessageField::some(timestamp(exit.at)),
            ..Default::default()
        })
    }

    fn do_delete(&self, id: &str) -> Result<api::DeleteResponse, Error> {
        let task = self.get(id)?;
        match &task.workload {
            Workload::Rtos(i) => {
                i.destroy();
                // Never hang: a destroyed partition ends promptly; give it a bound.
                if i.wait_timeout(Duration::from_secs(10)).is_none() {
                    log::warn!("{id}: no exit seen 10 s after destroy; releasing anyway");
                }
                i.close_stdio();
                // The instance's end ended every exec it ran; one never
                // started ends now, so that no Wait on it outlives the task.
                for (_, e) in lock(&task.execs).drain() {
                    e.abandon();
                    e.close_stdio();
                }
            }
            Workload::Sandbox(p) => p.set(
                Status::Stopped,
                Some(ExitInfo {
                    code: 137,
                    at: SystemTime::now(),
                }),
            ),
        }
        let (_, exit) = task.status();
        let exit = exit.unwrap_or(ExitInfo {
            code: 137,
            at: SystemTime::now(),
        });
        for p in state::release(&task.dir, &task.record) {
            log::warn!("{id}: {p}");
        }
        lock(&self.tasks).remove(id);
        self.exit_if_still_empty();
        let pid = task.pid();
        self.events.send(TaskDelete {
            container_id: id.to_string(),
            id: id.to_string(),
            pid,
            exit_status: exit.code,
            exited_at: MessageField::some(timestamp(exit.at)),
            ..Default::default()
        });
        Ok(api::DeleteResponse {
            pid,
            exit_status: exit.code,
            exited_at: MessageField::some(timestamp(exit.at)),
            ..Default::default()
        })
    }
}

/// Update: maps OCI `linux.resources` onto the partition (the task service and
/// the OCI runtime's `update`).
pub fn update_resources(
    inst: &Instance,
    res: &crate::oci::LinuxResources,
    config: &Config,
) -> Result<(), Error> {
    if inst.spec.annotations.static_resource {
        return Err(Error::Instance(
            crate::instance::InstanceError::Precondition(format!(
                "container {} has org.openeuler.micrun.runtime.static_resource set: its \
                 resources cannot be updated",
                inst.spec.id
            )),
        ));
    }
    let mapped = crate::resources::map_resources(
        Some(res),
        &inst.spec.annotations,
        &crate::spec::host_cpus(),
        &config.resources,
    )
    .map_err(|e| Error::Spec(e.into()))?;
    inst.update(&mapped).map_err(Error::from)
}

fn status_enum(s: Status) -> api::Status {
    match s {
        Status::Created => api::Status::CREATED,
        Status::Running => api::Status::RUNNING,
        Status::Paused => api::Status::PAUSED,
        Status::Stopped => api::Status::STOPPED,
    }
}

fn ttrpc<T>(r: Result<T, Error>) -> TtrpcResult<T> {
    r.map_err(|e| {
        log::warn!("{e}");
        e.to_ttrpc()
    })
}

/// A Create or Start error as a ttrpc error: `e`'s code, and its message followed
/// by the pedestal and how it was chosen (or that none was chosen yet).
fn on_pedestal(what: &str, id: &str, e: &Error, chosen: Option<&Chosen>) -> ttrpc::Error {
    let message = match chosen {
        Some(c) => format!("{what} {id}: {e} [{c}]"),
        None => format!("{what} {id}: {e} [no pedestal chosen yet]"),
    };
    log::warn!("{message}");
    ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), message))
}

/// The answer to signal 0 (iSulad's liveness check) for a task in `status`:
/// success while it exists and has not ended; once it has, NOT_FOUND "process
/// already finished", as containerd's runc shim answers.
fn signal_zero(id: &str, status: Status, exit: Option<ExitInfo>) -> TtrpcResult<api::Empty> {
    match status {
        Status::Stopped => Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
            ttrpc::Code::NOT_FOUND,
            format!(
                "container {id}: process already finished (exit status {})",
                exit.map_or(0, |e| e.code)
            ),
        ))),
        _ => Ok(api::Empty::new()),
    }
}

/// A partition's resource use as cgroup v1 `Metrics`, the form containerd and
/// iSulad read: CPU time, memory (the partition's size as the limit; what the
/// RTOS says it uses, else what its host process uses), and for a partition with
/// a host process (`pid`) its count, RSS, page faults and storage I/O. What a
/// partition never has (kernel memory, page cache, swap: its memory is one fixed
/// reservation) stays 0; docs/c-api.md lists them.
fn partition_metrics(
    ped: &crate::pedestal::PartitionStats,
    rtos_used: Option<u64>,
    pid: Option<u32>,
) -> Metrics {
    use containerd_shim::protos::cgroups::metrics::{
        BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, MemoryEntry, MemoryStat, PidsStat,
    };
    let mut metrics = Metrics::new();
    let mut usage = CPUUsage::new();
    usage.total = ped.cpu_ns;
    let mut cpu = CPUStat::new();
    cpu.usage = MessageField::some(usage);
    metrics.cpu = MessageField::some(cpu);
    let mut entry = MemoryEntry::new();
    entry.limit = ped.memory_limit_bytes;
    entry.usage = rtos_used.unwrap_or(ped.memory_used_bytes);
    let mut mem = MemoryStat::new();
    mem.usage = MessageField::some(entry);
    mem.rss = ped.memory_used_bytes;
    mem.total_rss = ped.memory_used_bytes;
    let stat = pid.and_then(crate::pedestal::proc_stat);
    if let Some(st) = &stat {
        mem.pg_fault = st.minor_faults + st.major_faults;
        mem.total_pg_fault = mem.pg_fault;
        mem.pg_maj_fault = st.major_faults;
        mem.total_pg_maj_fault = st.major_faults;
    }
    metrics.memory = MessageField::some(mem);
    let mut pids = PidsStat::new();
    pids.current = u64::from(stat.is_some_and(|s| !s.ended()));
    metrics.pids = MessageField::some(pids);
    if let Some((read, write)) = pid.and_then(crate::pedestal::proc_io) {
        let mut blkio = BlkIOStat::new();
        for (op, value) in [("Read", read), ("Write", write)] {
            let mut e = BlkIOEntry::new();
            e.op = op.to_owned();
            e.value = value;
            blkio.io_service_bytes_recursive.push(e);
        }
        metrics.blkio = MessageField::some(blkio);
    }
    metrics
}

/// Sends the shim's log to `log` in the working directory (the bundle), as
/// containerd and iSulad expect: containerd makes it a FIFO it reads; iSulad
/// creates it (a FIFO or a file) and reads it after the fact. The level is
/// `RUST_LOG`, else info (debug with `-debug`).
///
/// Never blocks and never truncates: a FIFO with a reader is written as it is; a
/// FIFO nobody reads yet is held open read-write, so its lines wait in the pipe
/// (and, once the pipe is full, new lines are dropped rather than stopping the
/// shim); a regular file is appended to. `Err` when there is no `log` (the shim
/// then logs nowhere).
pub fn init_bundle_log(debug: bool) -> Result<(), String> {
    use std::fs::OpenOptions;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let path = Path::new("log");
    let meta = std::fs::metadata(path).map_err(|e| format!("log: {e}"))?;
    let file = if meta.file_type().is_fifo() {
        let nonblocking = nix::fcntl::OFlag::O_NONBLOCK.bits();
        match OpenOptions::new()
            .write(true)
            .custom_flags(nonblocking)
            .open(path)
        {
            Ok(f) => {
                // A reader is there (containerd): write as a blocking pipe.
                let fd = std::os::fd::AsFd::as_fd(&f);
                let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)
                    .map_err(|e| format!("log: {e}"))?;
                let flags =
                    nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags))
                    .map_err(|e| format!("log: {e}"))?;
                f
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(nonblocking)
                .open(path)
                .map_err(|e| format!("log: {e}"))?,
            Err(e) => return Err(format!("log: {e}")),
        }
    } else {
        OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("log: {e}"))?
    };
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| l.parse::<log::LevelFilter>().ok())
        .unwrap_or(log::LevelFilter::Info);
    let level = if debug {
        level.max(log::LevelFilter::Debug)
    } else {
        level
    };
    log::set_boxed_logger(Box::new(containerd_shim::logger::FifoLogger::with_file(
        file,
    )))
    .map_err(|e| e.to_string())?;
    log::set_max_level(level);
    Ok(())
}

/// Where a task whose runtime options named a config file records that path,
/// in its bundle.
pub const CONFIG_PATH_FILE: &str = "micrun-config-path";

/// containerd's `delete` action after a lost shim: release what the state file
/// names and report 137. `bundle` is the task's bundle (the action's working
/// directory), where [`CONFIG_PATH_FILE`] may name the task's config.
pub fn cleanup_lost_task(namespace: &str, id: &str, bundle: &Path) -> api::DeleteResponse {
    let config_path = std::fs::read(bundle.join(CONFIG_PATH_FILE))
        .ok()
        .map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)));
    match Config::load_for(config_path.as_deref()) {
        Ok(config) => {
            let dir = state::task_dir(&config.state_dir, namespace, id);
            match state::read(&dir) {
                Ok(record) => {
                    for p in state::release(&dir, &record) {
                        log::warn!("{id}: {p}");
                    }
                }
                Err(e) => {
                    log::debug!("{id}: no state to clean up in {}: {e}", dir.display());
                    // A directory without a readable record was being made when
                    // the shim died: nothing of it names a partition yet.
                    if dir.exists() {
                        if let Err(e) = std::fs::remove_dir_all(&dir) {
                            log::warn!("{id}: remove {}: {e}", dir.display());
                        }
                    }
                }
            }
        }
        Err(e) => log::warn!("{id}: cannot read the micrun config to clean up: {e}"),
    }
    api::DeleteResponse {
        pid: 0,
        exit_status: 137,
        exited_at: MessageField::some(timestamp(SystemTime::now())),
        ..Default::default()
    }
}

impl containerd_shim::Task for Service {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        log::info!("create {} (bundle {})", req.id, req.bundle);
        let mut chosen = None;
        let pid = self.do_create(&req, &mut chosen).map_err(|e| {
            self.exit_if_still_empty();
            on_pedestal("create", &req.id, &e, chosen.as_ref())
        })?;
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        if !req.exec_id.is_empty() {
            log::info!("start exec {} in {}", req.exec_id, req.id);
            let pid = ttrpc(self.start_exec(&req.id, &req.exec_id))?;
            return Ok(api::StartResponse {
                pid,
                ..Default::default()
            });
        }
        let task = ttrpc(self.get(&req.id))?;
        match &task.workload {
            Workload::Rtos(i) => {
                if let Err(e) = i.start() {
                    // A task whose start failed ends here (TaskExit, status
                    // STOPPED), so that Delete is allowed: containerd's client
                    // (`ctr run --rm`) deletes only a stopped task after a
                    // failed Start, and would otherwise leave it CREATED with
                    // this shim alive.
                    i.destroy();
                    return Err(on_pedestal(
                        "start",
                        &req.id,
                        &Error::from(e),
                        task.chosen.as_ref(),
                    ));
                }
            }
            Workload::Sandbox(p) => p.set(Status::Running, None),
        }
        let pid = task.pid();
        self.events.send(TaskStart {
            container_id: req.id.clone(),
            pid,
            ..Default::default()
        });
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        if !req.exec_id.is_empty() {
            let (task, exec) = ttrpc(self.get_exec(&req.id, &req.exec_id))?;
            let (status, exit) = exec.status();
            let path = |p: &Option<PathBuf>| {
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            };
            return Ok(api::StateResponse {
                id: exec.id.clone(),
                bundle: task.bundle.display().to_string(),
                pid: task.pid(),
                status: status_enum(status).into(),
                stdout: path(&exec.io.stdout),
                stderr: path(&exec.io.stderr),
                terminal: exec.terminal,
                exit_status: exit.map_or(0, |e| e.code),
                exited_at: exit.map(|e| timestamp(e.at)).into(),
                exec_id: exec.id.clone(),
                ..Default::default()
            });
        }
        let task = ttrpc(self.get(&req.id))?;
        let (status, exit) = task.status();
        Ok(api::StateResponse {
            id: task.id.clone(),
            bundle: task.bundle.display().to_string(),
            pid: task.pid(),
            status: status_enum(status).into(),
            stdin: task
                .io
                .stdin
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            stdout: task
                .io
                .stdout
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            stderr: task
                .io
                .stderr
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            terminal: task.terminal,
            exit_status: exit.map_or(0, |e| e.code),
            exited_at: exit.map(|e| timestamp(e.at)).into(),
            ..Default::default()
        })
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        if !req.exec_id.is_empty() {
            let (_, exec) = ttrpc(self.get_exec(&req.id, &req.exec_id))?;
            let e = exec.wait();
            return Ok(api::WaitResponse {
                exit_status: e.code,
                exited_at: MessageField::some(timestamp(e.at)),
                ..Default::default()
            });
        }
        let task = ttrpc(self.get(&req.id))?;
        let e = match &task.workload {
            Workload::Rtos(i) => i.wait(),
            Workload::Sandbox(p) => p.wait(),
        };
        Ok(api::WaitResponse {
            exit_status: e.code,
            exited_at: MessageField::some(timestamp(e.at)),
            ..Default::default()
        })
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        log::info!("kill {} signal {}", req.id, req.signal);
        if !req.exec_id.is_empty() {
            ttrpc(self.kill_exec(&req.id, &req.exec_id, req.signal))?;
            return Ok(api::Empty::new());
        }
        let task = ttrpc(self.get(&req.id))?;
        if req.signal == 0 {
            let (status, exit) = task.status();
            return signal_zero(&req.id, status, exit);
        }
        match &task.workload {
            Workload::Rtos(i) => ttrpc(i.kill(req.signal).map_err(Error::from))?,
            Workload::Sandbox(p) => {
                let exit = ExitInfo {
                    code: 128 + req.signal,
                    at: SystemTime::now(),
                };
                p.set(Status::Stopped, Some(exit));
                self.events.send(TaskExit {
                    container_id: req.id.clone(),
                    id: req.id.clone(),
                    pid: task.pid(),
                    exit_status: exit.code,
                    exited_at: MessageField::some(timestamp(exit.at)),
                    ..Default::default()
                });
            }
        }
        Ok(api::Empty::new())
    }

    fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        log::info!("delete {} {}", req.id, req.exec_id);
        if !req.exec_id.is_empty() {
            return ttrpc(self.delete_exec(&req.id, &req.exec_id));
        }
        ttrpc(self.do_delete(&req.id))
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let task = ttrpc(self.get(&req.id))?;
        Ok(api::PidsResponse {
            processes: vec![containerd_shim::protos::types::task::ProcessInfo {
                pid: task.pid(),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        let task = ttrpc(self.get(&req.id))?;
        if let Workload::Rtos(i) = &task.workload {
            ttrpc(i.pause().map_err(Error::from))?;
        }
        self.events.send(TaskPaused {
            container_id: req.id,
            ..Default::default()
        });
        Ok(api::Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        let task = ttrpc(self.get(&req.id))?;
        if let Workload::Rtos(i) = &task.workload {
            ttrpc(i.resume().map_err(Error::from))?;
        }
        self.events.send(TaskResumed {
            container_id: req.id,
            ..Default::default()
        });
        Ok(api::Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        let task = ttrpc(self.get(&req.id))?;
        let Workload::Rtos(inst) = &task.workload else {
            return Ok(api::Empty::new());
        };
        let res: crate::oci::LinuxResources =
            ttrpc(serde_json::from_slice(&req.resources.value).map_err(|e| {
                Error::InvalidArgument(format!(
                    "update {}: resources are not OCI JSON: {e}",
                    req.id
                ))
            }))?;
        let config = ttrpc(Config::load_for(task.config_path.as_deref()).map_err(Error::from))?;
        ttrpc(update_resources(inst, &res, &config))?;
        Ok(api::Empty::new())
    }

    fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let task = ttrpc(self.get(&req.id))?;
        let mut metrics = Metrics::new();
        if let Workload::Rtos(inst) = &task.workload {
            let (ped, agent) = ttrpc(inst.stats().map_err(Error::from))?;
            // Prefer what the RTOS reports about itself.
            let used = agent.map(|a| u64::from(a.mem_used_kib) << 10);
            metrics = partition_metrics(&ped, used, inst.pid());
        }
        let any = ttrpc(metrics.to_any())?;
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        if !req.exec_id.is_empty() {
            // An exec's output is not a terminal; nothing to resize.
            ttrpc(self.get_exec(&req.id, &req.exec_id))?;
            return Ok(api::Empty::new());
        }
        let task = ttrpc(self.get(&req.id))?;
        if let Workload::Rtos(i) = &task.workload {
            i.resize(
                req.height.min(u16::MAX as u32) as u16,
                req.width.min(u16::MAX as u32) as u16,
            );
        }
        Ok(api::Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        if !req.exec_id.is_empty() {
            let (_, exec) = ttrpc(self.get_exec(&req.id, &req.exec_id))?;
            exec.close_stdin();
            return Ok(api::Empty::new());
        }
        let task = ttrpc(self.get(&req.id))?;
        if let Workload::Rtos(i) = &task.workload {
            i.close_stdin();
        }
        Ok(api::Empty::new())
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self.get(&req.id).map(|t| t.pid()).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        if lock(&self.tasks).is_empty() {
            self.exit.signal();
        }
        Ok(api::Empty::new())
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        log::info!("exec {} in {}", req.exec_id, req.id);
        ttrpc(self.do_exec(&req))?;
        Ok(api::Empty::new())
    }

    fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        req: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        Err(Error::Unimplemented(format!(
            "checkpoint of container {}: RTOS partitions cannot be checkpointed",
            req.id
        ))
        .to_ttrpc())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::thread::JoinHandle;

    use containerd_shim::protos::protobuf::well_known_types::empty::Empty;
    use containerd_shim::protos::ttrpc::proto::{MESSAGE_HEADER_LENGTH, MESSAGE_TYPE_REQUEST};
    use containerd_shim::protos::ttrpc::{self, MessageHeader};

    use super::*;

    #[test]
    fn type_urls_are_the_descriptors_full_names() {
        let declared = declared_type_urls();
        assert_eq!(declared.len(), 9);
        for (type_url, full_name) in declared {
            assert_eq!(type_url, full_name);
        }
        // The ones containerd's typeurl registry knows these messages by.
        assert_eq!(TaskCreate::TYPE_URL, "containerd.events.TaskCreate");
        assert_eq!(Metrics::TYPE_URL, "io.containerd.cgroups.v1.Metrics");
    }

    #[test]
    fn to_any_matches_containerd_shims_convert_to_any() {
        let create = TaskCreate {
            container_id: "c1".into(),
            bundle: "/b".into(),
            pid: 7,
            ..Default::default()
        };
        let mut metrics = Metrics::new();
        metrics.memory = MessageField::some(Default::default());
        metrics.memory.mut_or_insert_default().rss = 4096;
        let pairs = [
            (create.to_any(), Box::new(create.clone()) as Box<_>),
            (metrics.to_any(), Box::new(metrics.clone()) as Box<_>),
        ];
        for (ours, message) in pairs {
            let reference = containerd_shim::util::convert_to_any(message).unwrap();
            assert_eq!(ours.unwrap(), reference);
        }
        let any = create.to_any().unwrap();
        assert_eq!(TaskCreate::parse_from_bytes(&any.value).unwrap(), create);
    }

    /// containerd's events endpoint, by hand on a Unix socket, so that the test (not
    /// a server library) decides when the connection breaks: accepts one connection,
    /// answers one ttrpc `Events.Forward` with OK, and hands back the request and the
    /// still open connection.
    fn containerd(listener: &UnixListener) -> JoinHandle<(UnixStream, ForwardRequest)> {
        let listener = listener.try_clone().unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = [0u8; MESSAGE_HEADER_LENGTH];
            conn.read_exact(&mut head).unwrap();
            let head = MessageHeader::from(head);
            assert_eq!(head.type_, MESSAGE_TYPE_REQUEST);
            let mut body = vec![0u8; head.length as usize];
            conn.read_exact(&mut body).unwrap();
            let req = ttrpc::Request::parse_from_bytes(&body).unwrap();
            assert_eq!(
                (req.service.as_str(), req.method.as_str()),
                ("containerd.services.events.ttrpc.v1.Events", "Forward")
            );
            let forward = ForwardRequest::parse_from_bytes(&req.payload).unwrap();
            let reply = ttrpc::Response {
                payload: Empty::new().write_to_bytes().unwrap(),
                ..Default::default()
            }
            .write_to_bytes()
            .unwrap();
            let mut out: Vec<u8> =
                MessageHeader::new_response(head.stream_id, reply.len() as u32).into();
            out.extend_from_slice(&reply);
            conn.write_all(&out).unwrap();
            (conn, forward)
        })
    }

    /// The envelope of a forwarded request, with its event decoded as `E`.
    fn opened<E: Event>(req: ForwardRequest) -> (Envelope, E) {
        let envelope = req.envelope.into_option().expect("an envelope");
        let any = envelope.event.as_ref().expect("an event");
        assert_eq!(any.type_url, E::TYPE_URL);
        let event = E::parse_from_bytes(&any.value).unwrap();
        (envelope, event)
    }

    #[test]
    fn events_reach_containerd_and_survive_its_restart() {
        let dir = std::env::temp_dir().join(format!("micrun-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("containerd.sock.ttrpc");
        let address = format!("unix://{}", socket.display());

        let listener = UnixListener::bind(&socket).unwrap();
        let served = containerd(&listener);
        let events = Events::new(Some(address.clone()), "ns1");
        let before = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let start = TaskStart {
            container_id: "c1".into(),
            pid: 42,
            ..Default::default()
        };
        events.send(start.clone());
        let (conn, req) = served.join().unwrap();
        let (envelope, got) = opened::<TaskStart>(req);
        assert_eq!(got, start);
        assert_eq!(envelope.topic, "/tasks/start");
        assert_eq!(envelope.namespace, "ns1");
        assert!(envelope.timestamp.seconds >= before, "{envelope:?}");

        // containerd restarts: the old connection is gone; the next event fails on
        // it, reconnects and is delivered on the new connection.
        drop((conn, listener));
        std::fs::remove_file(&socket).unwrap();
        let listener = UnixListener::bind(&socket).unwrap();
        let served = containerd(&listener);
        let exit = TaskExit {
            container_id: "c1".into(),
            id: "c1".into(),
            pid: 42,
            exit_status: 3,
            ..Default::default()
        };
        events.send(exit.clone());
        let (conn, req) = served.join().unwrap();
        let (envelope, got) = opened::<TaskExit>(req);
        assert_eq!(got, exit);
        assert_eq!(envelope.topic, "/tasks/exit");

        // containerd gone for good: both attempts fail, the event is dropped and
        // send returns.
        drop((conn, listener));
        events.send(TaskPaused {
            container_id: "c1".into(),
            ..Default::default()
        });
        assert!(lock(&events.publisher).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_an_address_events_are_dropped() {
        let events = Events::new(None, "ns1");
        events.send(TaskResumed {
            container_id: "c1".into(),
            ..Default::default()
        });
        assert!(lock(&events.publisher).is_none());
    }

    #[test]
    fn signal_zero_is_a_liveness_check() {
        for status in [Status::Created, Status::Running, Status::Paused] {
            assert!(signal_zero("c1", status, None).is_ok(), "{status:?}");
        }
        let exit = ExitInfo {
            code: 137,
            at: SystemTime::now(),
        };
        let Err(ttrpc::Error::RpcStatus(st)) = signal_zero("c1", Status::Stopped, Some(exit))
        else {
            panic!("a stopped task is not alive");
        };
        assert_eq!(st.code(), ttrpc::Code::NOT_FOUND);
        assert_eq!(
            st.message,
            "container c1: process already finished (exit status 137)"
        );
    }

    #[test]
    fn metrics_of_a_partition_with_a_host_process() {
        use crate::pedestal::PartitionStats;
        let ped = PartitionStats {
            cpu_ns: 5,
            memory_limit_bytes: 64 << 20,
            memory_used_bytes: 3 << 20,
        };
        // This test process stands in for the partition's host process.
        let m = partition_metrics(&ped, Some(1 << 20), Some(std::process::id()));
        assert_eq!(m.cpu.usage.total, 5);
        assert_eq!(m.memory.usage.limit, 64 << 20);
        assert_eq!(m.memory.usage.usage, 1 << 20, "the RTOS's own figure wins");
        assert_eq!(m.memory.rss, 3 << 20);
        assert_eq!(m.pids.current, 1);
        assert!(m.memory.pg_fault > 0, "{:?}", m.memory);
        assert_eq!(m.blkio.io_service_bytes_recursive.len(), 2);
        // A hardware partition: no host process, no process figures.
        let m = partition_metrics(&ped, None, None);
        assert_eq!(m.memory.usage.usage, 3 << 20);
        assert_eq!((m.pids.current, m.memory.pg_fault), (0, 0));
        assert!(m.blkio.is_none());
    }
}
