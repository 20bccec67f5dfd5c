//! The test side of `fake-xl` (the stand-in for Xen's `xl` and `xenstore-read`,
//! `src/bin/fake-xl.rs`): a state directory, the wrapper scripts micrun's config
//! points at, the knobs, and cleanup.
//!
//! ```text
//! <dir>/bin/xl              #!/bin/sh: FAKE_XEN_STATE=<dir>/state exec fake-xl "$@"
//! <dir>/bin/xenstore-read   #!/bin/sh: FAKE_XEN_STATE=<dir>/state exec fake-xl xenstore-read "$@"
//! <dir>/proc-xen            the Xen marker (`[xen] detect`)
//! <dir>/state/              the fake's files (see fake-xl's doc)
//! ```
//!
//! [`FakeXen::config_toml`] is the `[xen]` section that makes micrun use them.
//! Dropping a [`FakeXen`] kills every domain runner and firmware process the fake
//! recorded (by pid, after checking the pid is still one of them), reaps those
//! that are children of the test process (it is one's parent if it made itself a
//! child subreaper, see [`adopt_orphans`]) and removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::TempDir;

/// One call the fake recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `xl` or `xenstore-read`.
    pub tool: String,
    pub argv: Vec<String>,
}

/// A fake Xen host in a temp dir.
#[derive(Debug)]
pub struct FakeXen {
    dir: TempDir,
    fake: PathBuf,
    sim: PathBuf,
    sim_args: Vec<String>,
    fail: Vec<(String, String, usize)>,
    console_delay_ms: u64,
}

impl FakeXen {
    /// A fake host whose domains run `sim` (with `sim_args`) as their firmware;
    /// `fake` is the `fake-xl` binary (`env!("CARGO_BIN_EXE_fake-xl")`).
    pub fn new(fake: &Path, sim: &Path, sim_args: &[&str]) -> FakeXen {
        let dir = TempDir::new("fake-xen");
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin dir");
        std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
        std::fs::write(dir.path().join("proc-xen"), "").expect("the Xen marker");
        let x = FakeXen {
            dir,
            fake: fake.to_path_buf(),
            sim: sim.to_path_buf(),
            sim_args: sim_args.iter().map(|s| (*s).to_owned()).collect(),
            fail: Vec::new(),
            console_delay_ms: 0,
        };
        x.write_config();
        let state = x.state();
        x.wrapper("xl", &format!("exec {} \"$@\"", sh_quote(&x.fake)), &state);
        x.wrapper(
            "xenstore-read",
            &format!("exec {} xenstore-read \"$@\"", sh_quote(&x.fake)),
            &state,
        );
        x
    }

    /// Writes an executable wrapper. The file is written by a child process: an
    /// executable this process had open for writing could be inherited by a
    /// concurrent fork in another test thread and make its exec fail with ETXTBSY.
    fn wrapper(&self, name: &str, exec_line: &str, state: &Path) {
        let text = format!(
            "#!/bin/sh\nFAKE_XEN_STATE={}\nexport FAKE_XEN_STATE\n{exec_line}\n",
            sh_quote(state)
        );
        let path = self.bin().join(name);
        let status = Command::new("/bin/sh")
            .args([
                "-c",
                "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"",
                "sh",
            ])
            .arg(&text)
            .arg(&path)
            .status()
            .expect("run sh to write a wrapper");
        assert!(status.success(), "writing {}", path.display());
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    pub fn xl(&self) -> PathBuf {
        self.bin().join("xl")
    }

    pub fn xenstore_read(&self) -> PathBuf {
        self.bin().join("xenstore-read")
    }

    /// The Xen marker (`[xen] detect`).
    pub fn marker(&self) -> PathBuf {
        self.dir.path().join("proc-xen")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The `[xen]` section of a micrun config that drives this fake directly.
    pub fn config_toml(&self) -> String {
        format!(
            "[xen]\ndriver = \"direct\"\nxl = {:?}\nxenstore_read = {:?}\ndetect = {:?}\n",
            self.xl().display().to_string(),
            self.xenstore_read().display().to_string(),
            self.marker().display().to_string(),
        )
    }

    fn write_config(&self) {
        let mut fail = serde_json::Map::new();
        let mut fail_from = serde_json::Map::new();
        for (command, stderr, from) in &self.fail {
            fail.insert(command.clone(), stderr.clone().into());
            fail_from.insert(command.clone(), (*from).into());
        }
        let config = serde_json::json!({
            "sim": self.sim,
            "sim_args": self.sim_args,
            "fail": fail,
            "fail_from": fail_from,
            "console_delay_ms": self.console_delay_ms,
        });
        std::fs::write(
            self.state().join("config.json"),
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("write the fake's config");
    }

    /// Makes `command` (an xl subcommand, or `xenstore-read`) fail with `stderr`
    /// and exit status 1, once `after` more calls of it have succeeded.
    pub fn fail(&mut self, command: &str, stderr: &str, after: usize) {
        let made = self
            .calls()
            .iter()
            .filter(|c| match command {
                "xenstore-read" => c.tool == command,
                _ => c.tool == "xl" && c.argv.first().is_some_and(|a| a == command),
            })
            .count();
        self.fail.retain(|(c, _, _)| c != command);
        self.fail
            .push((command.to_owned(), stderr.to_owned(), made + after + 1));
        self.write_config();
    }

    pub fn clear_failures(&mut self) {
        self.fail.clear();
        self.write_config();
    }

    /// Makes the console appear in xenstore `ms` after the domain.
    pub fn set_console_delay(&mut self, ms: u64) {
        self.console_delay_ms = ms;
        self.write_config();
    }

    /// Runs the `xl` wrapper.
    pub fn run_xl(&self, args: &[&str]) -> Output {
        Command::new(self.xl()).args(args).output().expect("run xl")
    }

    /// Runs the `xenstore-read` wrapper.
    pub fn run_xenstore_read(&self, args: &[&str]) -> Output {
        Command::new(self.xenstore_read())
            .args(args)
            .output()
            .expect("run xenstore-read")
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let text = std::fs::read_to_string(self.state().join("calls.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON call line");
                Call {
                    tool: v["tool"].as_str().expect("tool").to_owned(),
                    argv: v["argv"]
                        .as_array()
                        .expect("argv")
                        .iter()
                        .map(|a| a.as_str().expect("a string argument").to_owned())
                        .collect(),
                }
            })
            .collect()
    }

    /// The `xl` calls so far, each joined with spaces.
    pub fn xl_calls(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.tool == "xl")
            .map(|c| c.argv.join(" "))
            .collect()
    }

    /// The fake's record of domain `name`.
    pub fn domain(&self, name: &str) -> Option<serde_json::Value> {
        let bytes =
            std::fs::read(self.state().join("domains").join(format!("{name}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A xenstore value, if set.
    pub fn xenstore(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(
            self.state()
                .join("xenstore")
                .join(key.trim_start_matches('/')),
        )
        .ok()
    }

    /// Every process the fake started: (`runner` or `sim`, pid, domain name).
    pub fn processes(&self) -> Vec<(String, u32, String)> {
        let text = std::fs::read_to_string(self.state().join("pids")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                Some((
                    f.next()?.to_owned(),
                    f.next()?.parse().ok()?,
                    f.next()?.to_owned(),
                ))
            })
            .collect()
    }

    /// The pids of the fake's processes of `kind` for domain `name`.
    pub fn pids(&self, kind: &str, name: &str) -> Vec<u32> {
        self.processes()
            .into_iter()
            .filter(|(k, _, n)| k == kind && n == name)
            .map(|(_, pid, _)| pid)
            .collect()
    }
}

impl Drop for FakeXen {
    fn drop(&mut self) {
        let pids: Vec<u32> = self.processes().into_iter().map(|(_, p, _)| p).collect();
        for &pid in &pids {
            if alive(pid) && is_ours(pid, &self.fake, &self.sim) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for &pid in &pids {
            reap(pid, Duration::from_secs(5));
        }
    }
}

/// Whether `pid` runs the fake or the sim (a recycled pid is left alone).
fn is_ours(pid: u32, fake: &Path, sim: &Path) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    exe.is_some_and(|e| e == fake || e == sim || fake.canonicalize().is_ok_and(|f| f == e))
}

/// Whether process `pid` exists and has not ended (a zombie has ended).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X")
    })
}

/// The state letter of process `pid` (`T` when stopped).
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Reaps `pid` if it is a child of this process, waiting up to `timeout` for it
/// to end; true when it was reaped here.
pub fn reap(pid: u32, timeout: Duration) -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = Instant::now() + timeout;
    loop {
        match waitpid(
            nix::unistd::Pid::from_raw(pid as i32),
            Some(WaitPidFlag::WNOHANG),
        ) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => return true,
            // Not our child (PID 1 or a subreaper reaps it).
            Err(_) => return false,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Makes this process the reaper of orphaned descendants (the fake's domain
/// runners outlive the `xl` that started them), as the shim is.
pub fn adopt_orphans() {
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
}

/// `path` in single quotes for sh.
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}
