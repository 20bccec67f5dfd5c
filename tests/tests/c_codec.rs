//! libmicrun's protocol codec, seen from C the way a C tool uses it.
//!
//! Each test builds `micrun-ffi` (once per process, into `target/ffi-for-tests`,
//! so it never waits for the lock of the `cargo test` running us), installs it
//! with `micrun-ffi/install.sh` into a private temporary prefix, and compiles the
//! programs under `tests/c/` with gcc (`-Wall -Wextra -Werror -std=c11`) against
//! the installed header, using the flags `pkg-config` gives for `micrun.pc`:
//!
//! - `codec_vectors.c`: every golden vector of `tests/vectors/messages.txt`
//!   through the framer, the frame parser, the message decoder and back through
//!   the encoders, byte-exact both ways;
//! - `codec_garbage.c`: NULL pointers, short buffers, bad fields, truncated
//!   vectors, random bytes and streams, bit flips: error codes and readable
//!   messages, never a crash.
//!
//! Both run linked against `libmicrun.so` and against `libmicrun.a`, plain, under
//! AddressSanitizer + UndefinedBehaviorSanitizer, and under valgrind (skipped with
//! a message when valgrind is not installed). The shared library is also checked
//! for its SONAME and for exporting `micrun_*` symbols only, exactly the
//! functions the headers declare.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use micrun_tests::cbuild::{ffi_build_dir, run};
use micrun_tests::{repo_root, TempDir};

const CFLAGS: &[&str] = &[
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wpedantic",
    "-std=c11",
    "-g",
];
const SANITIZE: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
];
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// libmicrun installed by `install.sh` into a private prefix, removed on drop.
struct Installed {
    dir: TempDir,
}

impl Installed {
    fn new(tag: &str) -> Installed {
        let build = ffi_build_dir();
        let dir = TempDir::new(tag);
        let prefix = dir.path().join("prefix");
        run(
            Command::new("sh")
                .arg(repo_root().join("micrun-ffi/install.sh"))
                .arg(&prefix)
                .arg(&build),
            "install.sh",
        );
        Installed { dir }
    }

    fn prefix(&self) -> PathBuf {
        self.dir.path().join("prefix")
    }

    fn libdir(&self) -> PathBuf {
        self.prefix().join("lib")
    }

    /// `pkg-config ARGS micrun` against this prefix only; the output split into words.
    fn pkg_config(&self, args: &[&str]) -> Vec<String> {
        let out = run(
            Command::new("pkg-config")
                .env("PKG_CONFIG_PATH", self.libdir().join("pkgconfig"))
                .env("PKG_CONFIG_LIBDIR", self.libdir().join("pkgconfig"))
                .args(args)
                .arg("micrun"),
            "pkg-config",
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Compiles `tests/c/<name>.c` into this temp dir, linked against the shared
    /// or the static library, optionally with the sanitizers.
    fn compile(&self, name: &str, link: Link, sanitize: bool) -> PathBuf {
        let src = repo_root().join("tests/c").join(format!("{name}.c"));
        let exe = self.dir.path().join(format!(
            "{name}-{}{}",
            match link {
                Link::Shared => "so",
                Link::Static => "a",
            },
            if sanitize { "-asan" } else { "" }
        ));
        let mut cmd = Command::new("gcc");
        cmd.args(CFLAGS);
        if sanitize {
            cmd.args(SANITIZE);
        }
        cmd.arg(&src).arg("-o").arg(&exe);
        cmd.args(self.pkg_config(&["--cflags"]));
        match link {
            Link::Shared => {
                cmd.args(self.pkg_config(&["--libs"]));
                cmd.arg(format!("-Wl,-rpath,{}", self.libdir().display()));
            }
            Link::Static => {
                // The archive itself, then what it needs from the system
                // (Libs.private), so that -lmicrun cannot pick the .so.
                cmd.arg(self.libdir().join("libmicrun.a"));
                let private = self.pkg_config(&["--static", "--libs"]);
                cmd.args(
                    private
                        .iter()
                        .filter(|w| *w != "-lmicrun" && !w.starts_with("-L")),
                );
            }
        }
        run(&mut cmd, &format!("gcc {name}.c ({link:?})"));
        let needed = dynamic_needs(&exe);
        match link {
            Link::Shared => assert!(
                needed.contains(&"libmicrun.so.0".to_string()),
                "{exe:?} should load libmicrun.so.0 (the SONAME), needs {needed:?}"
            ),
            Link::Static => assert!(
                !needed.iter().any(|n| n.starts_with("libmicrun")),
                "{exe:?} should not need libmicrun at run time, needs {needed:?}"
            ),
        }
        exe
    }
}

#[derive(Debug, Clone, Copy)]
enum Link {
    Shared,
    Static,
}

/// The DT_NEEDED entries of an ELF file.
fn dynamic_needs(elf: &Path) -> Vec<String> {
    let out = run(Command::new("readelf").arg("-d").arg(elf), "readelf -d");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

fn vectors_file() -> PathBuf {
    repo_root().join("tests/vectors/messages.txt")
}

fn vector_count() -> usize {
    std::fs::read_to_string(vectors_file())
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the vector program `exe` (optionally under a wrapper such as valgrind) and
/// checks that it saw every vector of the library this test built.
fn run_vectors(wrapper: &[&str], exe: &Path, env: &[(&str, &str)]) {
    let mut cmd = wrapper_cmd(wrapper, exe);
    cmd.arg(vectors_file()).envs(env.iter().copied());
    let out = stdout_of(&run(&mut cmd, &format!("{exe:?}")));
    assert!(
        out.contains(&format!("libmicrun {VERSION}\n")),
        "{exe:?}: {out}"
    );
    assert!(
        out.contains(&format!("{} vectors ok", vector_count())),
        "{exe:?} did not check every vector: {out}"
    );
}

fn run_garbage(wrapper: &[&str], exe: &Path, rounds: u32, env: &[(&str, &str)]) {
    let mut cmd = wrapper_cmd(wrapper, exe);
    cmd.arg(vectors_file())
        .arg(rounds.to_string())
        .envs(env.iter().copied());
    let out = stdout_of(&run(&mut cmd, &format!("{exe:?}")));
    assert!(out.contains("checks ok"), "{exe:?}: {out}");
}

fn wrapper_cmd(wrapper: &[&str], exe: &Path) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

#[test]
fn shared_library_has_a_soname_and_exports_only_the_header_functions() {
    let inst = Installed::new("ffi-symbols");
    let lib = inst.libdir();
    let target = |link: &str| std::fs::read_link(lib.join(link)).unwrap();
    assert_eq!(target("libmicrun.so"), Path::new("libmicrun.so.0"));
    assert_eq!(
        target("libmicrun.so.0"),
        PathBuf::from(format!("libmicrun.so.{VERSION}"))
    );
    let so = lib.join(format!("libmicrun.so.{VERSION}"));

    let dynamic = run(Command::new("readelf").arg("-d").arg(&so), "readelf -d");
    let dynamic = stdout_of(&dynamic);
    assert!(
        dynamic.contains("Library soname: [libmicrun.so.0]"),
        "no SONAME libmicrun.so.0:\n{dynamic}"
    );

    let nm = run(
        Command::new("nm").args(["-D", "--defined-only"]).arg(&so),
        "nm -D",
    );
    let exported: BTreeSet<String> = stdout_of(&nm)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    let foreign: Vec<_> = exported
        .iter()
        .filter(|s| !s.starts_with("micrun_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "exported symbols without the micrun_ prefix: {foreign:?}"
    );

    // Every function the installed header declares, and nothing else.
    let header = ["micrun_codec.h", "micrun.h"]
        .map(|h| std::fs::read_to_string(inst.prefix().join("include").join(h)).unwrap())
        .concat();
    let mut declared = BTreeSet::new();
    for (i, _) in header.match_indices("micrun_") {
        let rest = &header[i..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if rest[end..].starts_with('(') {
            declared.insert(rest[..end].to_owned());
        }
    }
    assert!(declared.len() >= 14, "few functions found: {declared:?}");
    assert_eq!(exported, declared, "exports differ from the header");
}

#[test]
fn pkg_config_describes_the_installed_library() {
    let inst = Installed::new("ffi-pc");
    assert_eq!(inst.pkg_config(&["--modversion"]), [VERSION]);
    let cflags = inst.pkg_config(&["--cflags"]);
    assert_eq!(
        cflags,
        [format!("-I{}", inst.prefix().join("include").display())]
    );
    let libs = inst.pkg_config(&["--libs"]);
    assert_eq!(
        libs,
        [format!("-L{}", inst.libdir().display()), "-lmicrun".into()]
    );
    // The codec header and the RTOS agent's header can be used together.
    let tu = inst.dir.path().join("both.c");
    std::fs::write(
        &tu,
        "#include <micrun_agent.h>\n#include <micrun_codec.h>\nint main(void) { return MICRUN_OK; }\n",
    )
    .unwrap();
    run(
        Command::new("gcc")
            .args(CFLAGS)
            .arg("-fsyntax-only")
            .arg("-I")
            .arg(repo_root().join("include"))
            .args(cflags)
            .arg(&tu),
        "both headers in one translation unit",
    );
}

#[test]
fn golden_vectors_round_trip_byte_exact_in_c() {
    let inst = Installed::new("ffi-vectors");
    for link in [Link::Shared, Link::Static] {
        let exe = inst.compile("codec_vectors", link, false);
        run_vectors(&[], &exe, &[]);
    }
}

#[test]
fn garbage_input_gives_errors_not_crashes_in_c() {
    let inst = Installed::new("ffi-garbage");
    for link in [Link::Shared, Link::Static] {
        let exe = inst.compile("codec_garbage", link, false);
        run_garbage(&[], &exe, 20_000, &[]);
    }
}

#[test]
fn sanitizers_find_nothing() {
    let inst = Installed::new("ffi-asan");
    let env = [
        (
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:abort_on_error=0",
        ),
        ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
    ];
    for link in [Link::Shared, Link::Static] {
        let exe = inst.compile("codec_vectors", link, true);
        run_vectors(&[], &exe, &env);
        let exe = inst.compile("codec_garbage", link, true);
        run_garbage(&[], &exe, 20_000, &env);
    }
}

#[test]
fn valgrind_finds_nothing() {
    if Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!(
            "SKIPPED valgrind_finds_nothing: valgrind is not installed (apt-get install valgrind)"
        );
        return;
    }
    let inst = Installed::new("ffi-valgrind");
    let valgrind = [
        "valgrind",
        "-q",
        "--error-exitcode=1",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--show-leak-kinds=definite,indirect,possible",
    ];
    for link in [Link::Shared, Link::Static] {
        let exe = inst.compile("codec_vectors", link, false);
        run_vectors(&valgrind, &exe, &[]);
        let exe = inst.compile("codec_garbage", link, false);
        run_garbage(&valgrind, &exe, 5_000, &[]);
    }
}
