//! `micrun image pack` / `micrun image inspect` and the image convention
//! (docs/images.md), with the real tools: skopeo, umoci, buildah, podman, a private
//! containerd (`ctr`, and CRI on 1.6 and 2.1), the demo firmware on the `sim`
//! pedestal (a host process), `qemu` (`qemu-system-aarch64`) and `baremetal`
//! through the micad emulator.
//!
//! | tests | what |
//! |---|---|
//! | `skopeo_and_umoci_read_packed_images` | archive and layout dir: `skopeo inspect` shows the labels (tuples, sha256), `--raw` the index with one manifest per host platform sharing one layer; `skopeo copy` + `umoci unpack` give a rootfs with the index and the firmware, byte for byte; `podman load` takes it with its labels |
//! | `pack_is_reproducible` | twice, from files with other mtimes, archive and dir: the same digest and the same archive bytes |
//! | `pack_bad_input` | not an ELF, wrong `--arch`, missing file, duplicate tuple, unknown pedestal, a bad board name, an existing output dir: exit 1, a clear message, no output and no temp file left |
//! | `packed_image_runs_on_sim_and_qemu` | one image with firmware for qemu and sim, `ctr images import` + `ctr run` on each pedestal: each boots its own firmware, `exit 3` → 3 |
//! | `configured_board_picks_its_firmware` | `[board] name` in the micrun config: of two baremetal firmware the board's runs (micad emulator); an image without it is refused with the list of what it offers and what the host is |
//! | `plain_dockerfile_image_runs` | `FROM scratch` + `COPY firmware.elf /` built by `buildah bud` (vfs storage in a temp dir), pushed to an oci-archive, imported, runs; `podman load` of the same archive |
//! | `inspect_*` | on an archive, a layout dir and an image in containerd: the tuples and what this host picks |
//! | `packed_image_runs_under_containerd_1_7`, `…_2_1` | the same plain import + `ctr run` on sim under containerd 1.7 and 2.1 |
//! | `cri::v1_6::*`, `cri::v1_7::*`, `cri::v2_1::*` | a pod whose container has no command runs the packed image |
//! | `tampered_firmware_is_refused` | a packed image whose firmware was changed with skopeo + umoci (blob digests right, the index's sha256 stale): Create fails naming the file, both digests and the index; nothing left |

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use micrun_tests::containerd::Namespace;
use micrun_tests::e2e::{
    micrun_binary, qemu_firmware_bytes, sim_firmware_bytes, unique_id, Env, Ped, TestImage,
    ANN_PEDESTAL,
};
use micrun_tests::scenarios::{banner, expect_create_failure, strs, T_ACT, T_BOOT};
use micrun_tests::TempDir;

/// Runs `micrun ARGS` in `dir`.
fn micrun(dir: &Path, args: &[&str]) -> Output {
    Command::new(micrun_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("MICRUN_CONFIG")
        .output()
        .expect("run micrun")
}

/// `micrun image pack ARGS`, which must succeed; returns the image index digest.
fn pack(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["image", "pack"];
    all.extend_from_slice(args);
    let out = micrun(dir, &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "micrun {}: {}\n{stdout}{}",
        all.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in {stdout:?}"))
        .to_owned()
}

/// Runs a tool that must succeed; returns stdout. A tool that is not installed fails
/// the test with what to install (the tests never skip for a missing tool).
fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        let name = cmd.get_program().to_string_lossy().into_owned();
        if e.kind() == std::io::ErrorKind::NotFound {
            panic!(
                "{name} is not installed; the image tests need skopeo, umoci, buildah and \
                 podman: run .ci/setup (apt-get install {name})"
            )
        }
        panic!("run {cmd:?}: {e}")
    });
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A temp dir with the demo firmware: `qemu.elf` (aarch64 board) and `sim.elf`
/// (the host simulator).
fn firmware_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::write(dir.path().join("qemu.elf"), qemu_firmware_bytes(false)).unwrap();
    std::fs::write(dir.path().join("sim.elf"), sim_firmware_bytes()).unwrap();
    dir
}

/// The arguments packing `qemu.elf` for qemu and `sim.elf` for sim.
const TWO: [&str; 12] = [
    "--board",
    "qemu-virt",
    "--board",
    "sim",
    "--os",
    "demo",
    "--pedestal",
    "qemu",
    "--pedestal",
    "sim",
    "qemu.elf",
    "sim.elf",
];

fn host_arch_name() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64",
        _ => "x86_64",
    }
}

#[test]
fn skopeo_and_umoci_read_packed_images() {
    let dir = firmware_dir("img-skopeo");
    let d = dir.path();
    let mut args = TWO.to_vec();
    args.extend(["--tag", "localhost/micrun/two:1", "-o", "two.tar"]);
    let digest = pack(d, &args);
    let mut args = TWO.to_vec();
    args.extend(["--tag", "localhost/micrun/two:1", "-o", "two-dir"]);
    assert_eq!(
        pack(d, &args),
        digest,
        "archive and dir hold the same image"
    );

    let tuples = format!(
        "qemu-virt/demo/aarch64/qemu,sim/demo/{}/sim",
        host_arch_name()
    );
    for src in ["oci-archive:two.tar", "oci:two-dir:1"] {
        let info = json(&tool(
            Command::new("skopeo").args(["inspect", src]).current_dir(d),
        ));
        let labels = &info["Labels"];
        assert_eq!(
            labels["org.openeuler.micrun.image.tuples"],
            tuples.as_str(),
            "{info}"
        );
        let fw = json(
            labels["org.openeuler.micrun.image.firmware"]
                .as_str()
                .unwrap(),
        );
        assert_eq!(
            fw[0]["sha256"],
            micrun_tests::e2e::sha256_hex(&qemu_firmware_bytes(false)).as_str(),
            "{fw}"
        );
        assert_eq!(info["Layers"].as_array().unwrap().len(), 1, "{info}");
        // The index: one manifest per host platform (qemu runs from amd64 and arm64),
        // each sharing the one layer and carrying the labels as annotations.
        let raw = json(&tool(
            Command::new("skopeo")
                .args(["inspect", "--raw", src])
                .current_dir(d),
        ));
        let platforms: Vec<String> = raw["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap(),
                    m["platform"]["architecture"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{raw}");
        assert_eq!(
            raw["annotations"]["org.openeuler.micrun.image.tuples"],
            tuples.as_str()
        );
    }
    // An arm64 host gets the arm64 manifest, with the same labels.
    let arm = json(&tool(
        Command::new("skopeo")
            .args(["inspect", "--override-arch", "arm64", "oci-archive:two.tar"])
            .current_dir(d),
    ));
    assert_eq!(arm["Architecture"], "arm64", "{arm}");
    assert_eq!(
        arm["Labels"]["org.openeuler.micrun.image.tuples"],
        tuples.as_str()
    );

    // umoci reads one manifest: skopeo picks the host's out of the index.
    tool(
        Command::new("skopeo")
            .args(["copy", "oci-archive:two.tar", "oci:picked:1"])
            .current_dir(d),
    );
    tool(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image", "picked:1", "bundle"])
            .current_dir(d),
    );
    let rootfs = d.join("bundle/rootfs");
    let index = json(&std::fs::read_to_string(rootfs.join("micrun/firmware.json")).unwrap());
    assert_eq!(index["schemaVersion"], 1);
    let entries = index["firmware"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (e, want) in entries
        .iter()
        .zip([qemu_firmware_bytes(false), sim_firmware_bytes()])
    {
        let path = rootfs.join(e["path"].as_str().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), want, "{path:?}");
    }
    let config = json(&std::fs::read_to_string(d.join("bundle/config.json")).unwrap());
    assert_eq!(config["process"]["args"][0], "/micrun/firmware.json");

    // podman (storage of its own in the temp dir) loads the archive with its labels.
    let pd = TempDir::new("img-podman-packed");
    let podman = |args: &[&str]| {
        tool(
            Command::new("podman")
                .args(storage_args(pd.path()))
                .args(args)
                .current_dir(d),
        )
    };
    let out = podman(&["load", "-i", "two.tar"]);
    assert!(out.contains("localhost/micrun/two:1"), "{out}");
    let info = json(&podman(&["image", "inspect", "localhost/micrun/two:1"]));
    assert_eq!(
        info[0]["Labels"]["org.openeuler.micrun.image.tuples"],
        tuples.as_str(),
        "{info}"
    );
}

#[test]
fn pack_is_reproducible() {
    let dir = firmware_dir("img-repro");
    let d = dir.path();
    let mut args = TWO.to_vec();
    args.extend(["--tag", "localhost/micrun/r:1", "-o", "a.tar"]);
    let first = pack(d, &args);
    // Other mtimes and modes on the inputs: the image does not change.
    for f in ["qemu.elf", "sim.elf"] {
        use std::os::unix::fs::PermissionsExt;
        let p = d.join(f);
        let file = std::fs::File::options().write(true).open(&p).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_234_567))
            .unwrap();
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let mut args = TWO.to_vec();
    args.extend(["--tag", "localhost/micrun/r:1", "-o", "b.tar"]);
    assert_eq!(pack(d, &args), first);
    assert_eq!(
        std::fs::read(d.join("a.tar")).unwrap(),
        std::fs::read(d.join("b.tar")).unwrap(),
        "the same archive bytes"
    );
    // Another tag changes only the name in index.json, not the image digest.
    let mut args = TWO.to_vec();
    args.extend(["--tag", "localhost/micrun/other:2", "-o", "c.tar"]);
    assert_eq!(pack(d, &args), first);
}

/// Every file in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn pack_bad_input() {
    let dir = firmware_dir("img-bad");
    let d = dir.path();
    std::fs::write(d.join("notes.txt"), "not firmware\n").unwrap();
    std::fs::create_dir(d.join("exists")).unwrap();
    let before = listing(d);
    let base = [
        "--board",
        "qemu-virt",
        "--os",
        "demo",
        "--tag",
        "localhost/micrun/bad:1",
    ];
    let cases: &[(&[&str], &str, &[&str])] = &[
        (
            &["--pedestal", "qemu", "notes.txt"],
            "out.tar",
            &["notes.txt is not an ELF file", "firmware_kind"],
        ),
        (
            &["--pedestal", "qemu", "--arch", "riscv64", "qemu.elf"],
            "out.tar",
            &["qemu.elf is an ELF for aarch64", "riscv64"],
        ),
        (
            &["--pedestal", "qemu", "missing.elf"],
            "out.tar",
            &["missing.elf", "no such file"],
        ),
        (
            &["--pedestal", "qemu", "qemu.elf", "qemu.elf"],
            "out.tar",
            &["both for qemu-virt/demo/aarch64/qemu", "one firmware per"],
        ),
        (
            &["--pedestal", "kvm", "qemu.elf"],
            "out.tar",
            &["unknown pedestal", "\"kvm\"", "qemu, sim, xen, baremetal"],
        ),
        (
            &["--pedestal", "qemu", "--board", "../x", "qemu.elf"],
            "out.tar",
            &["--board", "give it once"],
        ),
        (
            &["--pedestal", "qemu", "qemu.elf"],
            "exists",
            &["exists", "remove it or choose another"],
        ),
        (
            &[
                "--pedestal",
                "qemu",
                "--annotation",
                "org.openeuler.micrun.ped.pedestal=sim",
                "qemu.elf",
            ],
            "out-dir",
            &["pack sets it"],
        ),
    ];
    for (extra, out, keywords) in cases {
        let mut args = vec!["image", "pack"];
        args.extend_from_slice(&base);
        args.extend_from_slice(extra);
        args.extend(["-o", out]);
        let o = micrun(d, &args);
        let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: output on stdout");
        for k in *keywords {
            assert!(
                err.contains(&k.to_lowercase()),
                "{args:?}: {err:?} lacks {k:?}"
            );
        }
        assert!(
            err.starts_with("micrun: ") && err.lines().count() == 1,
            "{err:?}"
        );
        assert_eq!(listing(d), before, "{args:?} left something behind");
    }
    // A bad board name alone (one --board): refused before anything is read.
    let o = micrun(
        d,
        &[
            "image",
            "pack",
            "--board",
            "../x",
            "--os",
            "demo",
            "--pedestal",
            "qemu",
            "--tag",
            "t",
            "-o",
            "o.tar",
            "qemu.elf",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--board \"../x\": use 1 to 128 letters"),
        "{err}"
    );
    assert_eq!(listing(d), before);
}

/// `ctr run --rm` of `image` on `p` in `ns`, typing `echo`, `exit 3`; returns stdout.
fn run_to_exit_3(
    env: &Env,
    ns: &Namespace<'_>,
    image: &TestImage,
    p: Ped,
    extra: &[String],
) -> String {
    let id = unique_id(&format!("img-{p}"));
    let mut args = vec!["run".to_string(), "--rm".into()];
    let mut more = vec![
        "--annotation".to_string(),
        format!("{ANN_PEDESTAL}={}", p.name()),
    ];
    more.extend(extra.iter().cloned());
    args.extend(env.run_args(image, &strs(&more)));
    args.push(image.name.clone());
    args.push(id.clone());
    let out = env.cd.ctr_with(
        Some(ns.name()),
        &strs(&args),
        Some(b"echo hello\rexit 3\r"),
        T_BOOT + T_ACT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let what = format!(
        "ctr {}: {}\nstdout: {stdout:?}\nstderr: {:?}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        env.diag(&id)
    );
    assert!(stdout.contains(&banner(p)), "no banner: {what}");
    assert_eq!(out.status.code(), Some(3), "exit status: {what}");
    let picked = env.log_lines(&id, 50);
    assert!(
        picked.contains("the image's firmware for this host"),
        "the shim did not use the index: {what}"
    );
    picked
}

/// A packed archive as a [`TestImage`] (no `--platform`: the host's is in the index).
fn packed_image(path: &Path, name: &str) -> TestImage {
    TestImage {
        name: name.to_owned(),
        tar: Arc::new(std::fs::read(path).unwrap()),
        run_args: Vec::new(),
    }
}

/// `ctr images import ARCHIVE` with no flags (as a user types it: only this host's
/// platform is fetched from the index, unlike [`Env::import`]'s `--all-platforms`).
fn import_plain(ns: &Namespace<'_>, archive: &Path) {
    ns.import_with(&archive.to_string_lossy(), &[])
        .unwrap_or_else(|e| panic!("ctr images import {}: {e}", archive.display()));
}

#[test]
fn packed_image_runs_on_sim_and_qemu() {
    let dir = firmware_dir("img-run");
    let d = dir.path();
    let name = "localhost/micrun/packed:run";
    let mut args = TWO.to_vec();
    args.extend(["--tag", name, "-o", "run.tar"]);
    pack(d, &args);
    let env = Env::shared();
    let ns = env.namespace("img-run");
    let image = packed_image(&d.join("run.tar"), name);
    import_plain(&ns, &d.join("run.tar"));
    let log = run_to_exit_3(&env, &ns, &image, Ped::Sim, &[]);
    assert!(
        log.contains(&format!("sim/demo/{}/sim", host_arch_name())),
        "{log}"
    );
    let log = run_to_exit_3(&env, &ns, &image, Ped::Qemu, &[]);
    assert!(log.contains("qemu-virt/demo/aarch64/qemu"), "{log}");
}

/// The same plain `ctr images import` + `ctr run` under containerd 1.7 and 2.1
/// (their `ctr` and import code differ from 1.6's), on sim.
fn packed_image_runs_under(version: &str) {
    let dir = firmware_dir(&format!("img-run-{version}"));
    let d = dir.path();
    let name = format!("localhost/micrun/packed:run-{}", version.replace('.', "-"));
    let mut args = TWO.to_vec();
    args.extend(["--tag", &name, "-o", "run.tar"]);
    pack(d, &args);
    let env = Env::shared_release(version);
    let ns = env.namespace("img-run-release");
    let image = packed_image(&d.join("run.tar"), &name);
    import_plain(&ns, &d.join("run.tar"));
    let log = run_to_exit_3(&env, &ns, &image, Ped::Sim, &[]);
    assert!(
        log.contains(&format!("sim/demo/{}/sim", host_arch_name())),
        "{log}"
    );
}

#[test]
fn packed_image_runs_under_containerd_1_7() {
    packed_image_runs_under("1.7");
}

#[test]
fn packed_image_runs_under_containerd_2_1() {
    packed_image_runs_under("2.1");
}

#[test]
fn configured_board_picks_its_firmware() {
    let dir = firmware_dir("img-board");
    let d = dir.path();
    // Two builds for two boards: the same program, the second with a trailing byte
    // (another sha256); board-b's is the one that must run.
    let mut other = sim_firmware_bytes();
    other.push(0);
    std::fs::write(d.join("a.elf"), &other).unwrap();
    std::fs::copy(d.join("sim.elf"), d.join("b.elf")).unwrap();
    let arch = host_arch_name();
    let name = "localhost/micrun/boards:1";
    let common = ["--os", "demo", "--pedestal", "baremetal", "--arch", arch];
    let mut args = vec!["--board", "board-a", "--board", "board-b"];
    args.extend(common);
    args.extend(["--tag", name, "-o", "boards.tar", "a.elf", "b.elf"]);
    pack(d, &args);
    let name_none = "localhost/micrun/boards:none";
    let mut args = vec!["--board", "board-a", "--board", "board-c"];
    args.extend(common);
    args.extend(["--tag", name_none, "-o", "none.tar", "a.elf", "sim.elf"]);
    pack(d, &args);

    let env = Env::start_with(|c| c.extra_toml += "\n[board]\nname = \"board-b\"\n");
    let ns = env.namespace("img-board");
    let image = packed_image(&d.join("boards.tar"), name);
    import_plain(&ns, &d.join("boards.tar"));
    let log = run_to_exit_3(&env, &ns, &image, Ped::Micad, &[]);
    assert!(
        log.contains(&format!("board-b/demo/{arch}/baremetal")),
        "{log}"
    );

    let none = packed_image(&d.join("none.tar"), name_none);
    import_plain(&ns, &d.join("none.tar"));
    let id = unique_id("img-noboard");
    let mut args = vec!["run".to_string(), "--rm".into()];
    args.extend(env.run_args(
        &none,
        &[
            "--annotation",
            "org.openeuler.micrun.ped.pedestal=baremetal",
        ],
    ));
    args.push(none.name.clone());
    args.push(id.clone());
    let out = env.cd.ctr_with(Some(ns.name()), &strs(&args), None, T_BOOT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ran: {err}");
    for k in [
        "no firmware in this image fits this host",
        &format!("offers board-a/demo/{arch}/baremetal, board-c/demo/{arch}/baremetal"),
        "board \"board-b\" ([board] name in",
    ] {
        assert!(err.contains(k), "{err:?} lacks {k:?}{}", env.diag(&id));
    }
    micrun_tests::scenarios::assert_nothing_left(&env, &ns, &id);
}

/// buildah and podman keep their storage in `dir` (vfs: no overlay mounts).
fn storage_args(dir: &Path) -> Vec<String> {
    vec![
        "--root".into(),
        dir.join("storage").to_string_lossy().into_owned(),
        "--runroot".into(),
        dir.join("run").to_string_lossy().into_owned(),
        "--storage-driver".into(),
        "vfs".into(),
    ]
}

#[test]
fn plain_dockerfile_image_runs() {
    let dir = firmware_dir("img-buildah");
    let d = dir.path();
    // As a linker leaves it: executable (the sim pedestal runs it as a host program).
    std::fs::copy(d.join("sim.elf"), d.join("firmware.elf")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.join("firmware.elf"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    // The two lines of the README, nothing else (no entrypoint: `ctr run` needs none).
    std::fs::write(d.join("Dockerfile"), "FROM scratch\nCOPY firmware.elf /\n").unwrap();
    let st = storage_args(d);
    let name = "localhost/micrun/dockerfile:1";
    let reg = d.join("registries.conf");
    std::fs::write(&reg, "unqualified-search-registries = []\n").unwrap();
    let buildah = |args: &[&str]| {
        tool(
            Command::new("buildah")
                .args(&st)
                .args(args)
                .env("CONTAINERS_REGISTRIES_CONF", &reg)
                .env("BUILDAH_ISOLATION", "chroot")
                .current_dir(d),
        )
    };
    buildah(&["bud", "--pull-never", "-t", name, "."]);
    let archive = d.join("dockerfile.tar");
    buildah(&[
        "push",
        name,
        &format!("oci-archive:{}:{name}", archive.display()),
    ]);
    let env = Env::shared();
    let ns = env.namespace("img-buildah");
    let image = packed_image(&archive, name);
    import_plain(&ns, &archive);
    let id = unique_id("img-buildah");
    let mut args = vec!["run".to_string(), "--rm".into()];
    args.extend(env.run_args(
        &image,
        &["--annotation", "org.openeuler.micrun.ped.pedestal=sim"],
    ));
    args.push(name.into());
    args.push(id.clone());
    let out = env.cd.ctr_with(
        Some(ns.name()),
        &strs(&args),
        Some(b"exit 3\r"),
        T_BOOT + T_ACT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let what = format!(
        "{stdout:?} {:?}{}",
        String::from_utf8_lossy(&out.stderr),
        env.diag(&id)
    );
    assert!(stdout.contains(&banner(Ped::Sim)), "{what}");
    assert_eq!(out.status.code(), Some(3), "{what}");

    // podman, rootful with a storage root of its own, loads the same archive.
    let pd = TempDir::new("img-podman");
    let out = tool(
        Command::new("podman")
            .args(storage_args(pd.path()))
            .args(["load", "-i"])
            .arg(&archive)
            .env("CONTAINERS_REGISTRIES_CONF", &reg),
    );
    assert!(out.contains("Loaded image"), "{out}");
}

/// A layout dir and an archive of the two-firmware image, packed in `d`.
fn two_images(d: &Path) {
    for out in ["two.tar", "two-dir"] {
        let mut args = TWO.to_vec();
        args.extend(["--tag", "localhost/micrun/inspect:1", "-o", out]);
        pack(d, &args);
    }
}

fn inspect_ok(d: &Path, args: &[&str]) -> String {
    let mut all = vec!["image", "inspect"];
    all.extend_from_slice(args);
    let o = micrun(d, &all);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{all:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn inspect_archive_and_dir() {
    let dir = firmware_dir("img-inspect");
    let d = dir.path();
    two_images(d);
    let cfg = d.join("sim.toml");
    std::fs::write(&cfg, "default_pedestal = \"sim\"\n[sim]\nenable = true\n").unwrap();
    let cfg = cfg.to_string_lossy().into_owned();
    for src in ["two.tar", "two-dir"] {
        let out = inspect_ok(d, &[src, "--config", &cfg]);
        assert!(out.contains("localhost/micrun/inspect:1"), "{out}");
        assert!(out.contains("platforms: linux/amd64, linux/arm64"), "{out}");
        assert!(out.contains("qemu-virt  demo  aarch64  qemu"), "{out}");
        assert!(
            out.contains(&format!("picks:     sim/demo/{}/sim", host_arch_name())),
            "{out}"
        );
        let out = inspect_ok(d, &[src, "--config", &cfg, "--pedestal", "qemu"]);
        assert!(
            out.contains("picks:     qemu-virt/demo/aarch64/qemu"),
            "{out}"
        );
        let out = inspect_ok(d, &[src, "--config", &cfg, "--pedestal", "xen"]);
        assert!(
            out.contains("picks:     nothing: no firmware in this image fits this host"),
            "{out}"
        );
    }
    let o = micrun(d, &["image", "inspect", "nothing.tar"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read nothing.tar"));
}

#[test]
fn inspect_image_in_containerd() {
    let dir = firmware_dir("img-inspect-cd");
    let d = dir.path();
    two_images(d);
    let env = Env::shared();
    let ns = env.namespace("img-inspect");
    import_plain(&ns, &d.join("two.tar"));
    let address = env.cd.address().to_string_lossy().into_owned();
    let ctr = env.cd.ctr_binary().to_string_lossy().into_owned();
    let cfg = env.config_path().to_string_lossy().into_owned();
    let out = inspect_ok(
        d,
        &[
            "localhost/micrun/inspect:1",
            "--address",
            &address,
            "--namespace",
            ns.name(),
            "--ctr",
            &ctr,
            "--config",
            &cfg,
        ],
    );
    assert!(out.contains("platforms: linux/amd64, linux/arm64"), "{out}");
    assert!(
        out.contains(&format!("picks:     sim/demo/{}/sim", host_arch_name())),
        "{out}"
    );
    // Imported for the other platform only: containerd lacks this host's manifest
    // (and its config); inspect reads the labels from the one it has.
    let other = if host_arch_name() == "aarch64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let ns_other = env.namespace("img-inspect-other");
    ns_other
        .import_with(&d.join("two.tar").to_string_lossy(), &["--platform", other])
        .unwrap_or_else(|e| panic!("ctr images import --platform {other}: {e}"));
    let out = inspect_ok(
        d,
        &[
            "localhost/micrun/inspect:1",
            "--address",
            &address,
            "--namespace",
            ns_other.name(),
            "--ctr",
            &ctr,
            "--config",
            &cfg,
        ],
    );
    assert!(out.contains("qemu-virt  demo  aarch64  qemu"), "{out}");
    let o = micrun(
        d,
        &[
            "image",
            "inspect",
            "localhost/micrun/absent:1",
            "--address",
            &address,
            "--namespace",
            ns.name(),
            "--ctr",
            &ctr,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not in containerd"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The packed image through CRI: a pod whose container has no command.
mod cri {
    use super::*;
    use micrun_tests::cri::{self as c, connect, state_name, status, Pod};

    pub fn packed_pod(version: &str) {
        let dir = firmware_dir(&format!("img-cri-{version}"));
        let d = dir.path();
        let name = format!("localhost/micrun/packed:cri-{}", version.replace('.', "-"));
        let mut args = TWO.to_vec();
        args.extend(["--tag", &name, "-o", "cri.tar"]);
        pack(d, &args);
        let env = c::env(version);
        let image = packed_image(&d.join("cri.tar"), &name);
        c::import_k8s(&env, &image);
        let cri = connect(&env);
        let pod = Pod::run(&env, &cri, "img-pod", &[(ANN_PEDESTAL, "sim")]);
        let config = c::container_config("rtos", &name, &[]);
        assert!(config.command.is_empty() && config.args.is_empty());
        let cid = pod.create(&env, &config);
        cri.start_container(&cid)
            .unwrap_or_else(|e| panic!("StartContainer: {e:?}{}", env.diag(&cid)));
        let log_path = pod.log_path("rtos");
        let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
        micrun_tests::e2e::wait_until(Duration::from_secs(10), || {
            read().contains(&banner(Ped::Sim))
        });
        assert!(
            read().contains(&banner(Ped::Sim)),
            "{:?}{}",
            read(),
            env.diag(&cid)
        );
        cri.stop_container(&cid, 10).expect("StopContainer");
        let st = status(&env, &cri, &cid);
        assert_eq!(state_name(st.state), "CONTAINER_EXITED", "{st:?}");
        assert_eq!(st.exit_code, 0, "{st:?}");
        cri.remove_container(&cid).expect("RemoveContainer");
    }

    macro_rules! cri_tests {
        ($module:ident, $version:literal) => {
            mod $module {
                #[test]
                fn packed_pod() {
                    super::packed_pod($version);
                }
            }
        };
    }
    cri_tests!(v1_6, "1.6");
    cri_tests!(v1_7, "1.7");
    cri_tests!(v2_1, "2.1");
}

/// An image changed after packing: its firmware's bytes are no longer the ones whose
/// sha256 the index recorded. Made the way a user would change an image with the
/// standard tools (`skopeo copy` to a layout, `umoci unpack`, a byte of the firmware
/// flipped, `umoci repack`, `skopeo copy` to an archive), so every blob digest is
/// right and containerd imports it: only the index can tell. (Changed bytes with
/// stale blob digests never reach the shim: the import refuses them.) Create
/// refuses it naming the file, both digests and the index; nothing is left.
#[test]
fn tampered_firmware_is_refused() {
    let dir = firmware_dir("img-tamper");
    let d = dir.path();
    let name = "localhost/micrun/tampered:1";
    pack(
        d,
        &[
            "--board",
            "qemu-virt",
            "--os",
            "demo",
            "--pedestal",
            "qemu",
            "--tag",
            name,
            "-o",
            "packed.tar",
            "qemu.elf",
        ],
    );
    let run = |program: &str, args: &[&str]| {
        tool(Command::new(program).args(args).current_dir(d));
    };
    run(
        "skopeo",
        &["copy", "oci-archive:packed.tar", "oci:layout:t"],
    );
    run(
        "umoci",
        &["unpack", "--rootless", "--image", "layout:t", "bundle"],
    );
    let rootfs = d.join("bundle/rootfs");
    let index = json(&std::fs::read_to_string(rootfs.join("micrun/firmware.json")).unwrap());
    let entry = &index["firmware"][0];
    let rel = entry["path"].as_str().unwrap().to_owned();
    let packed_sha = entry["sha256"].as_str().unwrap().to_owned();
    let fw = rootfs.join(&rel);
    let mut bytes = std::fs::read(&fw).unwrap();
    assert_eq!(micrun_tests::e2e::sha256_hex(&bytes), packed_sha);
    // A byte inside the program, not in the ELF headers the pedestal checks first.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&fw, &bytes).unwrap();
    let changed_sha = micrun_tests::e2e::sha256_hex(&bytes);
    run("umoci", &["repack", "--image", "layout:t", "bundle"]);
    let archive = d.join("tampered.tar");
    run(
        "skopeo",
        &[
            "copy",
            "oci:layout:t",
            &format!("oci-archive:{}:{name}", archive.display()),
        ],
    );

    let env = Env::shared();
    let ns = env.namespace("img-tamper");
    import_plain(&ns, &archive);
    let image = packed_image(&archive, name);
    let id = unique_id("img-tamper");
    let mut args = vec!["run".to_string(), "--rm".into()];
    args.extend(env.run_args(&image, &["--annotation", &Ped::Qemu.annotation()]));
    args.push(name.into());
    args.push(id.clone());
    expect_create_failure(
        &env,
        &ns,
        &id,
        &args,
        &[
            &rel,
            &packed_sha,
            &changed_sha,
            "micrun/firmware.json",
            "changed after packing",
        ],
    );
}
