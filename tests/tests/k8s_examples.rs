//! The node set-up examples of `docs/examples/` (containerd configs for 1.x and 2.x,
//! K3s templates, RuntimeClass, Pod, Deployment) checked against what micrun and
//! containerd actually read:
//!
//! | test | what |
//! |---|---|
//! | `every_example_parses` | every file in `docs/examples/` is YAML or TOML (K3s templates: `{{ template "base" . }}`, then TOML) and parses; a file of another kind fails the test, so no example goes unchecked |
//! | `handler_and_runtime_type_agree` | each containerd config registers exactly one runtime of type `io.containerd.mica.v2`, named as the RuntimeClass's `handler`; that type is the shim binary's `RUNTIME_ID` and names its binary (`containerd-shim-mica-v2`) |
//! | `annotation_globs_pass_every_key_the_shim_reads` | `pod_annotations`/`container_annotations` are globs (Go's `path.Match`, as containerd applies them) that match every `org.openeuler.micrun.*` key in `micrun_shim::annotations::KNOWN_KEYS`; the Go MicRun form `org.openeuler.micrun.` matches none |
//! | `pod_annotations_are_keys_the_shim_reads` | every annotation of the Pod and the Deployment's template is a key the shim reads (no warning from `Annotations::parse`), its value parses, and the configs' globs let it through |
//! | `pods_use_the_runtime_class` | Pod and Deployment name the RuntimeClass, use the node's network, give an image; the RuntimeClass has overhead and a node selector |
//! | `overhead_covers_the_measured_shim` | `overhead.podFixed.memory` is at least the shim memory of one RTOS pod that `docs/benchmarks.md` reports (Pss and VmRSS) |
//! | `v1_6::containerd_reads_the_example`, `v2_1::…` | the release's own `containerd --config <example> config dump` accepts the example (1.x file on 1.6, 2.x file on 2.1) and shows the `micrun` runtime with the example's type and annotation globs (a misspelt key is dropped by containerd, and fails here) |
//! | `v1_7::k3s_template_is_read`, `v2_1::…` | the K3s templates, with K3s's base reduced to its `version` line, read the same way (K3s ships containerd 1.7 with `config.toml.tmpl`, 2.x with `config-v3.toml.tmpl`) |
//! | `v2_1::shim_sandboxer_with_a_host_network_pod` | containerd 2.1.9 with `sandboxer = "shim"` for a micrun handler: RunPodSandbox of a host-network pod fails because the daemon itself dies (a nil spec dereferenced in `NewBundle`, fixed in containerd 2.3.0) before any shim runs; this fails once the packaged containerd behaves otherwise |
//! | `v1_6::harness_registers_the_same_runtime`, `v2_1::…` | the private containerd the CRI tests use (`tests/src/containerd.rs`) has the same `micrun` runtime entry as the example of its major version, so what `cri_pods.rs` shows holds for the documented config |
//!
//! Needs containerd 1.6 (system), and 1.7 and 2.1 from `.ci/fetch-newer` for the
//! `v1_7`/`v2_1` tests; the others need nothing but the files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use micrun_shim::annotations::{Annotations, KNOWN_KEYS, PREFIX};
use micrun_tests::containerd::{Containerd, ContainerdOpts, Release};
use micrun_tests::cri;
use micrun_tests::e2e::Env;
use serde_norway::Value as Yaml;
use toml::{Table, Value as Toml};

/// The CRI handler of the `sandboxer = "shim"` experiment.
const SHIM_SANDBOXER: &str = "micrun-shim-sandboxer";
/// The Go template line K3s's docs put first: K3s's own config, then ours.
const K3S_BASE: &str = r#"{{ template "base" . }}"#;
/// The containerd configs of the examples and the config version each is in.
const CONFIGS: [(&str, i64); 4] = [
    ("containerd-1.x.toml", 2),
    ("containerd-2.x.toml", 3),
    ("k3s/config.toml.tmpl", 2),
    ("k3s/config-v3.toml.tmpl", 3),
];

fn examples() -> PathBuf {
    micrun_tests::repo_root().join("docs/examples")
}

fn read(rel: &str) -> String {
    let p = examples().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Every file under `docs/examples/`, relative.
fn all_files() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read docs/examples") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&examples(), &examples(), &mut out);
    out.sort();
    out
}

/// The YAML documents of `rel`.
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let text = read(rel);
    serde_norway::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{rel}: bad YAML: {e}"))
        })
        .collect()
}

/// The one YAML document of kind `kind` among all examples.
fn manifest(kind: &str) -> (String, Yaml) {
    let mut found: Vec<(String, Yaml)> = all_files()
        .into_iter()
        .filter(|f| f.ends_with(".yaml"))
        .flat_map(|f| yaml_docs(&f).into_iter().map(move |d| (f.clone(), d)))
        .filter(|(_, d)| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "one {kind} in docs/examples");
    found.pop().unwrap()
}

/// The TOML of a containerd config example; a K3s template's first line must be
/// K3s's base template, replaced by `base` (a `version = N` line, or nothing).
fn config_text(rel: &str, base: &str) -> String {
    let text = read(rel);
    if !rel.ends_with(".tmpl") {
        return text;
    }
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    assert_eq!(first.trim(), K3S_BASE, "{rel}: K3s's base template first");
    let rest = text.replacen(K3S_BASE, base, 1);
    assert!(!rest.contains("{{"), "{rel}: no other template action");
    rest
}

fn parse_toml(rel: &str, text: &str) -> Table {
    text.parse::<Table>()
        .unwrap_or_else(|e| panic!("{rel}: bad TOML: {e}"))
}

fn table<'a>(t: &'a Table, path: &[&str]) -> Option<&'a Table> {
    let mut cur = t;
    for k in path {
        cur = cur.get(*k)?.as_table()?;
    }
    Some(cur)
}

/// The CRI runtimes table of a config of `version` (2: containerd 1.x, 3: 2.x).
fn runtimes(cfg: &Table, version: i64) -> &Table {
    let plugin = if version >= 3 {
        "io.containerd.cri.v1.runtime"
    } else {
        "io.containerd.grpc.v1.cri"
    };
    table(cfg, &["plugins", plugin, "containerd", "runtimes"])
        .unwrap_or_else(|| panic!("no plugins.{plugin}.containerd.runtimes in {cfg:#?}"))
}

/// The runtime entries whose type is micrun's: (name, entry).
fn micrun_runtimes(cfg: &Table, version: i64) -> Vec<(String, Table)> {
    runtimes(cfg, version)
        .iter()
        .filter_map(|(name, v)| {
            let t = v.as_table()?;
            (t.get("runtime_type")?.as_str()? == shim_runtime_type())
                .then(|| (name.clone(), t.clone()))
        })
        .collect()
}

fn strings(t: &Table, key: &str) -> Vec<String> {
    t.get(key)
        .and_then(Toml::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The runtime type the shim binary declares (`RUNTIME_ID` in its main file, named
/// after the type as containerd does: `io.containerd.<name>.<version>` →
/// `containerd-shim-<name>-<version>`).
fn shim_runtime_type() -> &'static str {
    const TYPE: &str = "io.containerd.mica.v2";
    let parts: Vec<&str> = TYPE.split('.').collect();
    let bin = format!(
        "containerd-shim-{}-{}",
        parts[parts.len() - 2],
        parts[parts.len() - 1]
    );
    let main = micrun_tests::repo_root().join(format!("micrun-shim/src/bin/{bin}.rs"));
    let src = std::fs::read_to_string(&main)
        .unwrap_or_else(|e| panic!("the shim binary {bin} ({}): {e}", main.display()));
    assert!(
        src.contains(&format!("const RUNTIME_ID: &str = \"{TYPE}\";")),
        "{} declares RUNTIME_ID = {TYPE:?}",
        main.display()
    );
    TYPE
}

/// Go's `path.Match` for the patterns containerd's configs use (`*` = any run of
/// characters other than `/`, `?` = one such character, the rest literal); a
/// character class is not supported here and fails the test.
fn glob_match(pattern: &str, name: &str) -> bool {
    assert!(
        !pattern.contains(['[', '\\']),
        "pattern {pattern:?}: classes and escapes are not checked here"
    );
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| m(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && n[0] != '/' && m(&p[1..], &n[1..]),
            Some(c) => n.first() == Some(c) && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

fn handler() -> String {
    let (file, rc) = manifest("RuntimeClass");
    assert_eq!(rc["apiVersion"].as_str(), Some("node.k8s.io/v1"), "{file}");
    rc["handler"]
        .as_str()
        .unwrap_or_else(|| panic!("{file}: no handler"))
        .to_owned()
}

#[test]
fn every_example_parses() {
    let files = all_files();
    assert!(files.len() >= 7, "examples: {files:?}");
    for f in &files {
        if f.ends_with(".yaml") {
            assert!(!yaml_docs(f).is_empty(), "{f}: no YAML document");
        } else if f.ends_with(".toml") || f.ends_with(".toml.tmpl") {
            parse_toml(f, &config_text(f, ""));
            assert!(
                CONFIGS.iter().any(|(c, _)| c == f),
                "{f}: a containerd config this test does not check (add it to CONFIGS)"
            );
        } else {
            panic!("{f}: neither YAML nor TOML: this test would not check it");
        }
    }
}

#[test]
fn handler_and_runtime_type_agree() {
    let handler = handler();
    for (f, version) in CONFIGS {
        let cfg = parse_toml(f, &config_text(f, ""));
        if !f.ends_with(".tmpl") {
            assert_eq!(
                cfg.get("version").and_then(Toml::as_integer),
                Some(version),
                "{f}"
            );
        }
        let names: Vec<String> = micrun_runtimes(&cfg, version)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            vec![handler.clone()],
            "{f}: one runtime of type {} named as the RuntimeClass's handler",
            shim_runtime_type()
        );
    }
}

#[test]
fn annotation_globs_pass_every_key_the_shim_reads() {
    // The matcher itself: containerd's behaviour measured on 1.6 and 2.1.
    assert!(glob_match(
        "org.openeuler.micrun.*",
        "org.openeuler.micrun.ped.pedestal"
    ));
    assert!(!glob_match(
        "org.openeuler.micrun.",
        "org.openeuler.micrun.ped.pedestal"
    ));
    assert!(!glob_match("org.openeuler.*", "org.openeuler/micrun"));
    let ours: Vec<&str> = KNOWN_KEYS
        .iter()
        .copied()
        .filter(|k| k.starts_with(PREFIX))
        .collect();
    assert!(ours.len() >= 20, "{ours:?}");
    for (f, version) in CONFIGS {
        let cfg = parse_toml(f, &config_text(f, ""));
        for (name, rt) in micrun_runtimes(&cfg, version) {
            for list in ["pod_annotations", "container_annotations"] {
                let globs = strings(&rt, list);
                for key in &ours {
                    assert!(
                        globs.iter().any(|g| glob_match(g, key)),
                        "{f}: runtime {name}: {list} {globs:?} do not pass {key}"
                    );
                }
            }
        }
    }
}

/// The annotations of a Pod-shaped object (`metadata.annotations`).
fn annotations_of(file: &str, meta: &Yaml) -> HashMap<String, String> {
    let map = meta["annotations"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{file}: no annotations"));
    map.iter()
        .map(|(k, v)| {
            let k = k.as_str().expect("key").to_owned();
            let v = v
                .as_str()
                .unwrap_or_else(|| {
                    panic!("{file}: {k}: annotation values are strings (quote them)")
                })
                .to_owned();
            (k, v)
        })
        .collect()
}

/// (file, pod metadata, pod spec) of the Pod and of the Deployment's template.
fn pods() -> Vec<(String, Yaml, Yaml)> {
    let (pf, pod) = manifest("Pod");
    let (df, dep) = manifest("Deployment");
    let tmpl = &dep["spec"]["template"];
    vec![
        (pf, pod["metadata"].clone(), pod["spec"].clone()),
        (df, tmpl["metadata"].clone(), tmpl["spec"].clone()),
    ]
}

#[test]
fn pod_annotations_are_keys_the_shim_reads() {
    let configs: Vec<(&str, Vec<String>)> = CONFIGS
        .iter()
        .flat_map(|(f, version)| {
            let cfg = parse_toml(f, &config_text(f, ""));
            micrun_runtimes(&cfg, *version)
                .into_iter()
                .map(move |(_, rt)| (*f, strings(&rt, "pod_annotations")))
        })
        .collect();
    for (file, meta, _) in pods() {
        let ann = annotations_of(&file, &meta);
        assert!(!ann.is_empty(), "{file}");
        for key in ann.keys() {
            assert!(
                KNOWN_KEYS.contains(&key.as_str()) && key.starts_with(PREFIX),
                "{file}: {key} is not an annotation micrun reads"
            );
            for (f, globs) in &configs {
                assert!(
                    globs.iter().any(|g| glob_match(g, key)),
                    "{f}: pod_annotations {globs:?} do not pass {key} of {file}"
                );
            }
        }
        let parsed = Annotations::parse(&ann)
            .unwrap_or_else(|e| panic!("{file}: the shim refuses its annotations: {e}"));
        assert_eq!(parsed.warnings, Vec::<String>::new(), "{file}");
        assert!(parsed.pedestal.is_some(), "{file}: names a pedestal");
    }
}

#[test]
fn pods_use_the_runtime_class() {
    let (rf, rc) = manifest("RuntimeClass");
    let name = rc["metadata"]["name"].as_str().expect("RuntimeClass name");
    let selector = rc["scheduling"]["nodeSelector"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{rf}: scheduling.nodeSelector"));
    assert!(!selector.is_empty(), "{rf}: a node label to select");
    for q in ["memory", "cpu"] {
        assert!(
            rc["overhead"]["podFixed"][q].as_str().is_some(),
            "{rf}: overhead.podFixed.{q}"
        );
    }
    for (file, _, spec) in pods() {
        assert_eq!(spec["runtimeClassName"].as_str(), Some(name), "{file}");
        assert_eq!(
            spec["hostNetwork"].as_bool(),
            Some(true),
            "{file}: an RTOS pod uses the node's network"
        );
        let containers = spec["containers"].as_sequence().expect("containers");
        assert!(!containers.is_empty(), "{file}");
        for c in containers {
            assert!(c["image"].as_str().is_some(), "{file}: an image");
        }
    }
}

/// A Kubernetes memory quantity in bytes (`4Mi`, `4M`, `4096Ki`, `4194304`).
fn quantity_bytes(q: &str) -> f64 {
    let units = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    for (u, f) in units {
        if let Some(n) = q.strip_suffix(u) {
            return n.parse::<f64>().expect("a number") * f;
        }
    }
    q.parse().expect("a memory quantity")
}

/// `<label> <number> MiB` in `text`, as a number of MiB.
fn mib_after(text: &str, label: &str) -> f64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("docs/benchmarks.md has no {label:?}"));
    let rest = text[at + label.len()..].trim_start();
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    assert!(
        rest[num.len()..].trim_start().starts_with("MiB"),
        "{label}: {rest:.40}"
    );
    num.parse().expect("a number")
}

#[test]
fn overhead_covers_the_measured_shim() {
    let (rf, rc) = manifest("RuntimeClass");
    let overhead = quantity_bytes(
        rc["overhead"]["podFixed"]["memory"]
            .as_str()
            .expect("memory"),
    );
    let bench = std::fs::read_to_string(micrun_tests::repo_root().join("docs/benchmarks.md"))
        .expect("docs/benchmarks.md");
    // The details line `micrun-bench` writes for the RTOS pod (row 7).
    let pss = mib_after(&bench, "RTOS pod shim Pss");
    let rss = mib_after(&bench, "RTOS pod shim VmRSS");
    for (what, mib) in [("Pss", pss), ("VmRSS", rss)] {
        assert!(
            overhead >= mib * 1024.0 * 1024.0,
            "{rf}: overhead.podFixed.memory ({overhead} B) is below the measured {what} of one RTOS pod's shim ({mib} MiB)"
        );
    }
}

/// `containerd --config <text> config dump` of `release`, parsed.
fn config_dump(release: &Release, name: &str, text: &str) -> Table {
    let dir = std::env::temp_dir().join(format!("k8s-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name.replace('/', "_"));
    std::fs::write(&path, text).expect("write the config");
    let out = Command::new(&release.containerd)
        .arg("--config")
        .arg(&path)
        .args(["config", "dump"])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", release.containerd.display()));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
    assert!(
        out.status.success(),
        "containerd {} refuses {name}: {}",
        release.version,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_toml(name, &String::from_utf8_lossy(&out.stdout))
}

/// The example's `micrun` runtime as containerd `release` reads it equals the
/// example's own entry (type, annotation globs).
fn assert_containerd_reads(release: &Release, rel: &str, version: i64) {
    let base = format!("version = {version}");
    let text = config_text(rel, &base);
    let mine = micrun_runtimes(&parse_toml(rel, &text), version);
    let dumped = config_dump(release, rel, &text);
    let theirs = micrun_runtimes(&dumped, release.config_version() as i64);
    assert_eq!(mine.len(), 1, "{rel}");
    assert_eq!(
        theirs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        vec![&mine[0].0],
        "containerd {} reads {rel}'s runtime",
        release.version
    );
    // containerd drops a key it does not know: every key of the example must come
    // back, with the same value.
    for (key, value) in &mine[0].1 {
        assert_eq!(
            theirs[0].1.get(key),
            Some(value),
            "containerd {} does not read `{key}` of {rel}'s runtime as written",
            release.version
        );
    }
    for key in ["pod_annotations", "container_annotations"] {
        assert!(
            !strings(&mine[0].1, key).is_empty(),
            "{rel}: the micrun runtime sets {key}"
        );
    }
}

fn containerd_reads_the_example(version: &str) {
    let release = Release::of(version);
    let rel = if release.major() >= 2 {
        "containerd-2.x.toml"
    } else {
        "containerd-1.x.toml"
    };
    assert_containerd_reads(&release, rel, release.config_version() as i64);
}

fn k3s_template_is_read(version: &str) {
    let release = Release::of(version);
    let rel = if release.major() >= 2 {
        "k3s/config-v3.toml.tmpl"
    } else {
        "k3s/config.toml.tmpl"
    };
    assert_containerd_reads(&release, rel, release.config_version() as i64);
}

fn harness_registers_the_same_runtime(version: &str) {
    let release = Release::of(version);
    let v = release.config_version() as i64;
    let rel = if v >= 3 {
        "containerd-2.x.toml"
    } else {
        "containerd-1.x.toml"
    };
    let example = micrun_runtimes(&parse_toml(rel, &read(rel)), v);
    let cd = Containerd::start_release(release, ContainerdOpts::default())
        .unwrap_or_else(|e| panic!("start containerd {version}: {e}"));
    let path = cd.config_path();
    let text = std::fs::read_to_string(&path).expect("the harness's config");
    let harness = micrun_runtimes(&parse_toml("the harness's config", &text), v);
    assert_eq!(
        harness, example,
        "tests/src/containerd.rs registers micrun as {rel} does"
    );
}

/// containerd 2.x's `sandboxer = "shim"` for a micrun handler, as docs/kubernetes.md
/// ("The sandbox API") describes it: on containerd 2.1.9 RunPodSandbox of a
/// host-network pod never reaches the shim. containerd's shim sandbox controller
/// makes the sandbox's bundle from a spec the CRI plugin never set and dereferences
/// it (`NewBundle`, fixed upstream in 2.3.0: "handle nil spec for hostNetwork
/// containers"): the daemon dies. When the packaged containerd no longer does this,
/// this test fails, and the doc (and micrun's sandbox service) are to be revisited.
fn shim_sandboxer_with_a_host_network_pod(version: &str) {
    let env = Env::start_release(Release::of(version), |_| {});
    let path = env.cd.config_path();
    let mut cfg = std::fs::read_to_string(&path).expect("the harness's config");
    cfg.push_str(&format!(
        "\n[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.{SHIM_SANDBOXER}]\n  \
         runtime_type = \"{}\"\n  sandboxer = \"shim\"\n  \
         pod_annotations = [\"org.openeuler.micrun.*\"]\n",
        shim_runtime_type()
    ));
    std::fs::write(&path, cfg).expect("write the config");
    env.cd.restart().expect("restart containerd");
    cri::import_pause_image(&env);
    let client = cri::connect(&env);
    let name = micrun_tests::e2e::unique_id("shim-sandboxer");
    let log_dir = env.dir().join("pods").join(&name);
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let config = cri::pod_config(
        &name,
        &log_dir,
        &[("org.openeuler.micrun.ped.pedestal", "sim")],
    );
    let r = client.run_pod(&config, SHIM_SANDBOXER);
    assert!(
        r.is_err(),
        "RunPodSandbox with sandboxer = \"shim\" succeeded: {r:?}"
    );
    let died =
        micrun_tests::e2e::wait_until(std::time::Duration::from_secs(5), || !env.cd.is_running());
    let log = env.cd.log_tail(400);
    assert!(
        died && log.contains("nil pointer dereference") && log.contains("v2.NewBundle"),
        "containerd {version} no longer dies in NewBundle on a shim-sandboxer pod: revisit \
         docs/kubernetes.md (The sandbox API). RunPodSandbox: {r:?}\n{log}"
    );
    // The shim was never started for the pod (the daemon is fresh: no other shims).
    assert_eq!(
        env.cd.shim_pids(),
        Vec::<u32>::new(),
        "a shim ran for the pod:\n{log}"
    );
}

macro_rules! daemon_tests {
    ($module:ident, $version:literal, [$($test:ident),*]) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test($version);
                }
            )*
        }
    };
}

daemon_tests!(
    v1_6,
    "1.6",
    [
        containerd_reads_the_example,
        harness_registers_the_same_runtime
    ]
);
daemon_tests!(v1_7, "1.7", [k3s_template_is_read]);
daemon_tests!(
    v2_1,
    "2.1",
    [
        containerd_reads_the_example,
        k3s_template_is_read,
        harness_registers_the_same_runtime,
        shim_sandboxer_with_a_host_network_pod
    ]
);
