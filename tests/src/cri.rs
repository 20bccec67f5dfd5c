//! A CRI client for the tests: the calls kubelet makes to containerd's CRI plugin
//! (`runtime.v1` RuntimeService and ImageService, gRPC over the daemon's unix
//! socket), with the fields kubelet fills.
//!
//! [`Cri::connect`] opens one HTTP/2 channel to `<private containerd dir>/containerd.sock`;
//! every call blocks on a small tokio runtime of its own, so tests stay plain
//! synchronous code. [`pod_config`] and [`container_config`] build the configs
//! kubelet sends for a pod with `hostNetwork: true` (no CNI here) and a container
//! with no `command` (the image's Entrypoint/Cmd run). [`HANDLER`] is the
//! RuntimeClass handler the private daemon registers (`tests/src/containerd.rs`).
//!
//! Pods live in containerd's `k8s.io` namespace; the daemon's cleanup removes
//! whatever a failed test leaves there. The sandbox image has to exist locally
//! before RunPodSandbox: [`import_pause_image`].

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    security_profile, ContainerConfig, ContainerFilter, ContainerMetadata, ContainerStatus,
    CreateContainerRequest, ImageSpec, ImageStatusRequest, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    ListContainersRequest, ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxFilter, PodSandboxMetadata, PodSandboxStatus, PodSandboxStatusRequest,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, SecurityProfile,
    StartContainerRequest, StopContainerRequest, StopPodSandboxRequest, VersionRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::containerd::SANDBOX_IMAGE;
use crate::e2e::{Env, TestImage};
use crate::oci::ImageBuilder;

pub use k8s_cri::v1;

/// The RuntimeClass handler of micrun in the private daemon's CRI config.
pub const HANDLER: &str = "micrun";
/// containerd's namespace for everything the CRI plugin makes.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// How long one CRI call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A CRI failure: the gRPC status code and message.
pub type Status = tonic::Status;

/// A connection to a containerd's CRI plugin.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

impl std::fmt::Debug for Cri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cri").finish_non_exhaustive()
    }
}

impl Cri {
    /// Connects to the gRPC socket `socket` (e.g. `Containerd::address()`).
    pub fn connect(socket: &Path) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let path: PathBuf = socket.to_path_buf();
        let channel = rt
            .block_on(async move {
                // The URI is required by tonic but unused: the connector dials the socket.
                Endpoint::from_static("http://localhost")
                    .timeout(CALL_TIMEOUT)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(path).await?,
                            ))
                        }
                    }))
                    .await
            })
            .map_err(|e| format!("connect to the CRI socket {}: {e}", socket.display()))?;
        Ok(Cri { rt, channel })
    }

    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    /// `Version`: the runtime's name and version (`containerd`, `v1.6.20~ds1`).
    pub fn version(&self) -> Result<(String, String), Status> {
        let r = self.rt.block_on(self.runtime().version(VersionRequest {
            version: "v1".into(),
        }))?;
        let r = r.into_inner();
        Ok((r.runtime_name, r.runtime_version))
    }

    /// `ImageStatus`: whether the CRI plugin knows `image` (by reference).
    pub fn image_present(&self, image: &str) -> Result<bool, Status> {
        let r = self
            .rt
            .block_on(ImageServiceClient::new(self.channel.clone()).image_status(
                ImageStatusRequest {
                    image: Some(ImageSpec {
                        image: image.into(),
                        ..Default::default()
                    }),
                    verbose: false,
                },
            ))?
            .into_inner();
        Ok(r.image.is_some())
    }

    /// `RunPodSandbox` with `runtime_handler`; returns the sandbox id.
    pub fn run_pod(&self, config: &PodSandboxConfig, handler: &str) -> Result<String, Status> {
        let r = self
            .rt
            .block_on(self.runtime().run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }))?;
        Ok(r.into_inner().pod_sandbox_id)
    }

    /// `PodSandboxStatus`.
    pub fn pod_status(&self, pod: &str) -> Result<PodSandboxStatus, Status> {
        let r = self
            .rt
            .block_on(self.runtime().pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: pod.into(),
                verbose: false,
            }))?;
        r.into_inner()
            .status
            .ok_or_else(|| Status::internal("PodSandboxStatus without a status"))
    }

    /// `ListPodSandbox` ids (all, or the one `id`).
    pub fn list_pods(&self, id: Option<&str>) -> Result<Vec<String>, Status> {
        let r = self
            .rt
            .block_on(self.runtime().list_pod_sandbox(ListPodSandboxRequest {
                filter: id.map(|id| PodSandboxFilter {
                    id: id.into(),
                    ..Default::default()
                }),
            }))?;
        Ok(r.into_inner().items.into_iter().map(|p| p.id).collect())
    }

    /// `StopPodSandbox`.
    pub fn stop_pod(&self, pod: &str) -> Result<(), Status> {
        self.rt
            .block_on(self.runtime().stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.into(),
            }))?;
        Ok(())
    }

    /// `RemovePodSandbox`.
    pub fn remove_pod(&self, pod: &str) -> Result<(), Status> {
        self.rt
            .block_on(self.runtime().remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.into(),
            }))?;
        Ok(())
    }

    /// `CreateContainer` in `pod` (kubelet sends the pod's config along); returns
    /// the container id.
    pub fn create_container(
        &self,
        pod: &str,
        config: &ContainerConfig,
        pod_config: &PodSandboxConfig,
    ) -> Result<String, Status> {
        let r = self
            .rt
            .block_on(self.runtime().create_container(CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config.clone()),
                sandbox_config: Some(pod_config.clone()),
            }))?;
        Ok(r.into_inner().container_id)
    }

    /// `StartContainer`.
    pub fn start_container(&self, id: &str) -> Result<(), Status> {
        self.rt
            .block_on(self.runtime().start_container(StartContainerRequest {
                container_id: id.into(),
            }))?;
        Ok(())
    }

    /// `ContainerStatus`.
    pub fn container_status(&self, id: &str) -> Result<ContainerStatus, Status> {
        let r = self.rt.block_on(self.runtime().container_status(
            k8s_cri::v1::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            },
        ))?;
        r.into_inner()
            .status
            .ok_or_else(|| Status::internal("ContainerStatus without a status"))
    }

    /// `ContainerStats` (what `kubectl top` shows with CRI stats).
    pub fn container_stats(&self, id: &str) -> Result<v1::ContainerStats, Status> {
        let r = self
            .rt
            .block_on(self.runtime().container_stats(v1::ContainerStatsRequest {
                container_id: id.into(),
            }))?;
        r.into_inner()
            .stats
            .ok_or_else(|| Status::internal("ContainerStats without stats"))
    }

    /// `ListContainers` ids of `pod`.
    pub fn list_containers(&self, pod: &str) -> Result<Vec<String>, Status> {
        let r = self
            .rt
            .block_on(self.runtime().list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    pod_sandbox_id: pod.into(),
                    ..Default::default()
                }),
            }))?;
        Ok(r.into_inner()
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    /// `StopContainer` with a grace period of `timeout_s` seconds (kubelet's
    /// `terminationGracePeriodSeconds`).
    pub fn stop_container(&self, id: &str, timeout_s: i64) -> Result<(), Status> {
        self.rt
            .block_on(self.runtime().stop_container(StopContainerRequest {
                container_id: id.into(),
                timeout: timeout_s,
            }))?;
        Ok(())
    }

    /// `RemoveContainer`.
    pub fn remove_container(&self, id: &str) -> Result<(), Status> {
        self.rt
            .block_on(self.runtime().remove_container(RemoveContainerRequest {
                container_id: id.into(),
            }))?;
        Ok(())
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The namespaces kubelet asks for a `hostNetwork: true` pod (network of the node,
/// a pid namespace per container, IPC shared in the pod).
fn host_network_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// kubelet's seccomp default (no `seccompProfile` in the pod, `SeccompDefault` off).
fn unconfined() -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: security_profile::ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    })
}

/// The PodSandboxConfig kubelet sends for pod `name` (namespace `default`, uid
/// derived from the name) with `hostNetwork: true`: empty hostname (runc refuses a
/// hostname on a host-network pod), the kubelet labels, `annotations`, logs under
/// `log_dir`.
pub fn pod_config(name: &str, log_dir: &Path, annotations: &[(&str, &str)]) -> PodSandboxConfig {
    let uid = format!("uid-{name}");
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: String::new(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        labels: map(&[
            ("io.kubernetes.pod.name", name),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.pod.uid", &uid),
        ]),
        annotations: map(annotations),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: String::new(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(host_network_namespaces()),
                seccomp: unconfined(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ContainerConfig kubelet sends for container `name` of a pod: `image`, no
/// command or args (the image's Entrypoint/Cmd), log at `<name>/0.log` under the
/// pod's log directory, `annotations`.
pub fn container_config(name: &str, image: &str, annotations: &[(&str, &str)]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        log_path: format!("{name}/0.log"),
        labels: map(&[("io.kubernetes.container.name", name)]),
        annotations: map(annotations),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(host_network_namespaces()),
                seccomp: unconfined(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One line of a CRI container log: `<RFC 3339 nano time> <stream> <P|F> <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The timestamp as written.
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// `F` (full line) or `P` (partial: continued by the next line).
    pub tag: String,
    /// The text, without the newline.
    pub text: String,
}

impl LogLine {
    /// Parses one line; `None` if it is not in the CRI format.
    pub fn parse(line: &str) -> Option<LogLine> {
        let mut it = line.splitn(4, ' ');
        let (time, stream, tag) = (it.next()?, it.next()?, it.next()?);
        let text = it.next().unwrap_or("");
        let ok_time = time.len() >= 20
            && time.as_bytes()[4] == b'-'
            && time.as_bytes()[10] == b'T'
            && (time.ends_with('Z') || time.contains('+') || time[19..].contains('-'));
        if !ok_time || !matches!(stream, "stdout" | "stderr") || !matches!(tag, "P" | "F") {
            return None;
        }
        Some(LogLine {
            time: time.into(),
            stream: stream.into(),
            tag: tag.into(),
            text: text.into(),
        })
    }
}

/// The pause program (`tests/c/pause.c`, static), built once per process.
fn pause_binary() -> Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let out_dir = crate::repo_root().join("target/pause-for-tests");
            std::fs::create_dir_all(&out_dir).expect("create target/pause-for-tests");
            let out = out_dir.join(format!("pause-{}", std::process::id()));
            crate::cbuild::run(
                std::process::Command::new("gcc")
                    .args(["-static", "-Os", "-s", "-o"])
                    .arg(&out)
                    .arg(crate::repo_root().join("tests/c/pause.c")),
                "build the pause program",
            );
            let bytes = std::fs::read(&out).expect("read the pause program");
            let _ = std::fs::remove_file(&out);
            bytes
        })
        .clone()
}

/// The sandbox image [`SANDBOX_IMAGE`]: the static pause program as `/pause`,
/// Entrypoint `/pause`, platform linux/<host arch>.
pub fn pause_image() -> TestImage {
    let image = ImageBuilder::new(SANDBOX_IMAGE)
        .file("/pause", pause_binary(), 0o755)
        .entrypoint(["/pause"])
        .build()
        .and_then(|i| i.to_tar())
        .expect("build the pause image");
    TestImage {
        name: SANDBOX_IMAGE.into(),
        tar: std::sync::Arc::new(image),
        run_args: Vec::new(),
    }
}

/// Imports `image` into the `k8s.io` namespace of `env`'s daemon, where the CRI
/// plugin finds it. Once per daemon and image; imports are serialized (tests run in
/// parallel and share the daemon).
pub fn import_k8s(env: &Env, image: &TestImage) {
    static DONE: Mutex<BTreeSet<(PathBuf, String)>> = Mutex::new(BTreeSet::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let key = (env.dir().to_path_buf(), image.name.clone());
    if done.contains(&key) {
        return;
    }
    let file = image.name.replace(['/', ':'], "_") + ".k8s.tar";
    let path = env.dir().join(file);
    std::fs::write(&path, image.tar.as_slice()).expect("write the image tar");
    env.cd
        .ctr_ok(
            Some(K8S_NAMESPACE),
            &["images", "import", &path.to_string_lossy()],
        )
        .unwrap_or_else(|e| panic!("import {} into {K8S_NAMESPACE}: {e}", image.name));
    // The CRI plugin learns of the image from containerd's ImageCreate event, on
    // its own time: a CreateContainer right after the import may not find it yet.
    let cri = connect(env);
    let seen = crate::e2e::wait_until(Duration::from_secs(10), || {
        cri.image_present(&image.name).unwrap_or(false)
    });
    assert!(
        seen,
        "{} imported by ctr, but the CRI plugin does not see it{}",
        image.name,
        env.diag("cri")
    );
    done.insert(key);
}

/// Imports the sandbox image into `k8s.io` (needed before any RunPodSandbox).
pub fn import_pause_image(env: &Env) {
    import_k8s(env, &pause_image());
}

// ---- Fixtures shared by the CRI test files ----

/// A pod made through CRI; dropping it (also on a failed assertion) stops and
/// removes it, so the shared daemon keeps no pod of a failed test.
pub struct Pod<'a> {
    pub cri: &'a Cri,
    pub id: String,
    pub config: PodSandboxConfig,
    /// The pod's log directory: container `c`'s first log is `<log_dir>/c/0.log`.
    pub log_dir: PathBuf,
    /// Set once a test stopped and removed the pod itself.
    pub removed: bool,
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.cri.stop_pod(&self.id);
            let _ = self.cri.remove_pod(&self.id);
        }
    }
}

impl<'a> Pod<'a> {
    /// RunPodSandbox with `handler`, logs under the env's temp dir.
    pub fn run_with(
        env: &Env,
        cri: &'a Cri,
        tag: &str,
        annotations: &[(&str, &str)],
        handler: &str,
    ) -> Pod<'a> {
        let name = crate::e2e::unique_id(tag);
        let log_dir = env.dir().join("pods").join(&name);
        std::fs::create_dir_all(&log_dir).expect("create the pod's log dir");
        let config = pod_config(&name, &log_dir, annotations);
        let id = cri
            .run_pod(&config, handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e:?}{}", env.diag(&name)));
        Pod {
            cri,
            id,
            config,
            log_dir,
            removed: false,
        }
    }

    /// RunPodSandbox with handler [`HANDLER`].
    pub fn run(env: &Env, cri: &'a Cri, tag: &str, annotations: &[(&str, &str)]) -> Pod<'a> {
        Pod::run_with(env, cri, tag, annotations, HANDLER)
    }

    /// CreateContainer `config` in this pod; panics with the daemon's diagnostics.
    pub fn create(&self, env: &Env, config: &ContainerConfig) -> String {
        let name = config.metadata.as_ref().map_or("", |m| m.name.as_str());
        self.cri
            .create_container(&self.id, config, &self.config)
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e:?}{}", env.diag(&self.id)))
    }

    /// The CRI log file of container `name` (attempt 0).
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}/0.log"))
    }
}

/// The shared daemon of containerd `version` ("1.6", "2.1"), with the sandbox
/// image imported.
pub fn env(version: &str) -> std::sync::Arc<Env> {
    let env = Env::shared_release(version);
    import_pause_image(&env);
    env
}

/// A CRI connection to `env`'s daemon; panics with its diagnostics.
pub fn connect(env: &Env) -> Cri {
    Cri::connect(&env.cd.address()).unwrap_or_else(|e| panic!("{e}{}", env.diag("cri")))
}

/// The bundle directory of CRI container or pod `id`.
pub fn bundle(env: &Env, id: &str) -> PathBuf {
    env.cd.bundle_dir(K8S_NAMESPACE, id)
}

/// ContainerStatus of `id`; panics with the daemon's diagnostics.
pub fn status(env: &Env, cri: &Cri, id: &str) -> ContainerStatus {
    cri.container_status(id)
        .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e:?}{}", env.diag(id)))
}

/// `CONTAINER_RUNNING` etc. for a ContainerStatus `state`.
pub fn state_name(state: i32) -> String {
    v1::ContainerState::try_from(state)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| state.to_string())
}

/// Processes whose executable lies under `dir` (e.g. a pause program run from a
/// bundle's rootfs).
pub fn processes_running_from(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
            if exe.starts_with(dir) {
                out.push((pid, exe));
            }
        }
    }
    out
}

/// What is left of removed CRI container `id`: processes naming it, its bundle,
/// micrun state. Waits up to 10 s for it to go; empty when nothing is left.
pub fn leftovers(env: &Env, id: &str) -> Vec<String> {
    let left = || {
        let mut left = Vec::new();
        let procs = crate::e2e::processes_mentioning(id);
        if !procs.is_empty() {
            left.push(format!("processes {procs:?}"));
        }
        if bundle(env, id).exists() {
            left.push("bundle".to_string());
        }
        let state = crate::e2e::paths_mentioning(env.state_dir(), id);
        if !state.is_empty() {
            left.push(format!("micrun state {state:?}"));
        }
        left
    };
    crate::e2e::wait_until(Duration::from_secs(10), || left().is_empty());
    left()
}

// ---- Exec (`kubectl exec`, exec probes) ----

impl Cri {
    /// `ExecSync` (what exec probes and `kubectl exec` without a terminal
    /// amount to): `cmd` in container `id`, at most `timeout_s` seconds (0: none).
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<v1::ExecSyncResponse, Status> {
        let r = self
            .rt
            .block_on(self.runtime().exec_sync(v1::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: timeout_s,
            }))?;
        Ok(r.into_inner())
    }

    /// `Exec` (streaming, `kubectl exec`): the URL of the CRI plugin's streaming
    /// server that serves it.
    pub fn exec_url(&self, id: &str, cmd: &[&str], tty: bool) -> Result<String, Status> {
        let r = self.rt.block_on(self.runtime().exec(v1::ExecRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin: false,
            stdout: true,
            stderr: !tty,
        }))?;
        Ok(r.into_inner().url)
    }
}

// ---- Lifecycle calls (cri_lifecycle.rs): update, stats of many ----

impl Cri {
    /// `UpdateContainerResources` with `linux` resources (what kubelet sends for
    /// an in-place resize).
    pub fn update_container_resources(
        &self,
        id: &str,
        linux: v1::LinuxContainerResources,
    ) -> Result<(), Status> {
        self.rt.block_on(self.runtime().update_container_resources(
            v1::UpdateContainerResourcesRequest {
                container_id: id.into(),
                linux: Some(linux),
                ..Default::default()
            },
        ))?;
        Ok(())
    }

    /// `ListContainerStats` of the containers of `pod` (kubelet's
    /// `PodAndContainerStatsFromCRI` path).
    pub fn list_container_stats(&self, pod: &str) -> Result<Vec<v1::ContainerStats>, Status> {
        let r = self.rt.block_on(self.runtime().list_container_stats(
            v1::ListContainerStatsRequest {
                filter: Some(v1::ContainerStatsFilter {
                    pod_sandbox_id: pod.into(),
                    ..Default::default()
                }),
            },
        ))?;
        Ok(r.into_inner().stats)
    }
}

/// What kubelet adds to a ContainerConfig for the termination message: a host
/// file (`host_file`, which kubelet creates empty) mounted at `path`, and the
/// annotation naming the path.
pub fn with_termination_log(config: &mut ContainerConfig, host_file: &Path, path: &str) {
    config.mounts.push(v1::Mount {
        container_path: path.into(),
        host_path: host_file.to_string_lossy().into_owned(),
        ..Default::default()
    });
    config.annotations.insert(
        "io.kubernetes.container.terminationMessagePath".into(),
        path.into(),
    );
}

/// The CPU time (ns) and working set (bytes) of `stats`, 0 where missing.
pub fn cpu_and_memory(stats: &v1::ContainerStats) -> (u64, u64) {
    let cpu = stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref())
        .map_or(0, |v| v.value);
    let mem = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map_or(0, |v| v.value);
    (cpu, mem)
}

// ---- Streams: attach and exec (WebSocket channel protocol), log reopening ----

impl Cri {
    /// `Attach` (what kubelet sends for `kubectl attach`): the streaming URL of
    /// the CRI plugin's streaming server for container `id`.
    pub fn attach(
        &self,
        id: &str,
        stdin: bool,
        tty: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<String, Status> {
        let r = self.rt.block_on(self.runtime().attach(v1::AttachRequest {
            container_id: id.into(),
            stdin,
            tty,
            stdout,
            stderr,
        }))?;
        Ok(r.into_inner().url)
    }

    /// `Exec` as `kubectl exec [-t]` sends it, with stdin only if asked
    /// (`exec_url` has none); stderr unless `tty`.
    pub fn exec_stream_url(
        &self,
        id: &str,
        cmd: &[&str],
        stdin: bool,
        tty: bool,
    ) -> Result<String, Status> {
        let r = self.rt.block_on(self.runtime().exec(v1::ExecRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        }))?;
        Ok(r.into_inner().url)
    }

    /// `ReopenContainerLog` (what kubelet sends after rotating a container's log).
    pub fn reopen_container_log(&self, id: &str) -> Result<(), Status> {
        self.rt.block_on(
            self.runtime()
                .reopen_container_log(v1::ReopenContainerLogRequest {
                    container_id: id.into(),
                }),
        )?;
        Ok(())
    }
}

/// Channels of the Kubernetes WebSocket stream protocol (`channel.k8s.io`): the
/// first byte of every binary message.
pub mod channel {
    /// Client → container input.
    pub const STDIN: u8 = 0;
    /// Container stdout (with a TTY: the one output stream).
    pub const STDOUT: u8 = 1;
    /// Container stderr (no TTY only).
    pub const STDERR: u8 = 2;
    /// Server → client: the stream's final status (`v4.`: a JSON `Status`).
    pub const ERROR: u8 = 3;
    /// Client → server: terminal size, JSON `{"Width":w,"Height":h}`.
    pub const RESIZE: u8 = 4;
}

/// The subprotocols [`ChannelStream::connect`] offers, preferred first, as
/// kubectl does (the server takes the first it supports).
pub const CHANNEL_PROTOCOLS: [&str; 2] = ["v4.channel.k8s.io", "channel.k8s.io"];

/// A `kubectl attach` or `kubectl exec` session: a WebSocket to the streaming
/// URL the CRI plugin returned (Attach, Exec), speaking the channel protocol. Reads block at most until a
/// deadline; the socket is closed on drop.
pub struct ChannelStream {
    ws: tungstenite::WebSocket<std::net::TcpStream>,
    /// The subprotocol the server chose.
    pub protocol: String,
    /// Bytes received so far on each channel (index = channel byte).
    pub received: [Vec<u8>; 5],
    /// The server closed the connection.
    pub closed: bool,
}

impl std::fmt::Debug for ChannelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelStream")
            .field("protocol", &self.protocol)
            .field("closed", &self.closed)
            .field(
                "received",
                &self
                    .received
                    .iter()
                    .map(|b| String::from_utf8_lossy(b))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ChannelStream {
    /// Opens the WebSocket to `url` (`http://host:port/attach/<token>`) offering
    /// [`CHANNEL_PROTOCOLS`].
    pub fn connect(url: &str) -> Result<ChannelStream, String> {
        use tungstenite::client::IntoClientRequest;
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("streaming URL {url:?}: expected http://"))?;
        let host = rest.split('/').next().unwrap_or_default();
        let tcp = std::net::TcpStream::connect(host)
            .map_err(|e| format!("connect to the streaming server {host}: {e}"))?;
        let mut req = format!("ws://{rest}")
            .into_client_request()
            .map_err(|e| format!("request for {url:?}: {e}"))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            CHANNEL_PROTOCOLS
                .join(", ")
                .parse()
                .expect("a valid header value"),
        );
        let (ws, resp) = tungstenite::client::client(req, tcp)
            .map_err(|e| format!("WebSocket handshake with {url}: {e}"))?;
        let protocol = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(ChannelStream {
            ws,
            protocol,
            received: Default::default(),
            closed: false,
        })
    }

    /// Sends `data` on `channel`.
    pub fn send(&mut self, channel: u8, data: &[u8]) -> Result<(), String> {
        let mut msg = Vec::with_capacity(data.len() + 1);
        msg.push(channel);
        msg.extend_from_slice(data);
        self.ws
            .send(tungstenite::Message::Binary(msg.into()))
            .map_err(|e| format!("send on channel {channel}: {e}"))
    }

    /// Types `text` into the container's stdin.
    pub fn type_in(&mut self, text: &str) -> Result<(), String> {
        self.send(channel::STDIN, text.as_bytes())
    }

    /// A terminal resize (kubectl sends one when the user's terminal changes).
    pub fn resize(&mut self, width: u16, height: u16) -> Result<(), String> {
        let json = format!("{{\"Width\":{width},\"Height\":{height}}}");
        self.send(channel::RESIZE, json.as_bytes())
    }

    /// The text received on `channel` so far.
    pub fn text(&self, channel: u8) -> String {
        String::from_utf8_lossy(&self.received[channel as usize]).into_owned()
    }

    /// Receives messages until `done(self)` holds, the server closes, or
    /// `timeout` passes; true if `done` held.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&ChannelStream) -> bool,
    ) -> Result<bool, String> {
        let deadline = std::time::Instant::now() + timeout;
        while !done(self) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || self.closed {
                return Ok(false);
            }
            self.ws
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| format!("set_read_timeout: {e}"))?;
            match self.ws.read() {
                Ok(tungstenite::Message::Binary(b)) => {
                    if let Some((&ch, data)) = b.split_first() {
                        if let Some(buf) = self.received.get_mut(ch as usize) {
                            buf.extend_from_slice(data);
                        }
                    }
                }
                Ok(tungstenite::Message::Close(_)) => self.closed = true,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    self.closed = true
                }
                Err(e) => return Err(format!("WebSocket read: {e}")),
            }
        }
        Ok(true)
    }

    /// How the stream's command ended, from the status the server wrote on the
    /// error channel ([`channel::ERROR`]) before it closed: `Ok(0)` for a
    /// `v4.` `Success` status, `Ok(code)` for a `NonZeroExitCode` failure (the
    /// `ExitCode` cause, as kubectl reads it), `Err(text)` for anything else
    /// (another failure, no status, the older protocol's plain message).
    pub fn exit_status(&self) -> Result<i32, String> {
        let text = self.text(channel::ERROR);
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("status {text:?} on the error channel: {e}"))?;
        match v["status"].as_str() {
            Some("Success") => return Ok(0),
            Some("Failure") if v["reason"] == "NonZeroExitCode" => {}
            _ => return Err(format!("status {text}")),
        }
        v["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str()?.parse().ok())
            .ok_or_else(|| format!("no exit code in {text}"))
    }

    /// Closes the WebSocket (kubectl's detach) and reads until the server's
    /// close arrives, at most `timeout`.
    pub fn close(&mut self, timeout: Duration) -> Result<(), String> {
        if !self.closed {
            self.ws
                .close(None)
                .map_err(|e| format!("WebSocket close: {e}"))?;
        }
        self.read_until(timeout, |s| s.closed).map(|_| ())
    }
}

impl Drop for ChannelStream {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.ws.close(None);
            let _ = self.ws.flush();
        }
    }
}
