//! Builds the static helpers (`swarm-exec-helper` for the logs transport,
//! `swarm-exec-relay` for the relay transport) for every node architecture
//! swarm-exec supports and embeds them, with their sha256, into the library.
//!
//! The helper is built by a nested cargo with its own target directory (the
//! outer build holds the lock on the main one). `SWARM_EXEC_HELPER_<ARCH>`
//! and `SWARM_EXEC_RELAY_<ARCH>` (for example
//! `SWARM_EXEC_HELPER_X86_64=/path/to/swarm-exec-helper`) embed prebuilt
//! binaries instead, for packagers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// (swarm architecture name, rust target)
const TARGETS: &[(&str, &str)] = &[
    ("x86_64", "x86_64-unknown-linux-musl"),
    ("aarch64", "aarch64-unknown-linux-musl"),
];

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Everything the nested build reads: the helper's crates and the
    // workspace manifest, which holds the `helper` profile.
    for dir in [
        "crates/helper/src",
        "crates/helper/Cargo.toml",
        "crates/proto/src",
        "crates/proto/Cargo.toml",
        "crates/channel/src",
        "crates/channel/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let mut code =
        String::from("/// The embedded binaries: (name, architecture, binary, sha256 hex).\n");
    code.push_str("pub static BINARIES: &[(&str, &str, &[u8], &str)] = &[\n");
    for (arch, target) in TARGETS {
        // Without the target's standard library the CLI is built without
        // that architecture's helpers (and says so at run time); with it, a
        // helper that does not compile fails the build.
        let built = if target_installed(target) {
            match build(&root, &out, target) {
                Ok(dir) => Some(dir),
                Err(e) => panic!("{e}"),
            }
        } else {
            println!(
                "cargo:warning=no {arch} helpers embedded: the {target} target is not installed (rustup target add {target})"
            );
            None
        };
        for name in ["swarm-exec-helper", "swarm-exec-relay"] {
            let var = format!(
                "{}_{}",
                name.to_uppercase().replace('-', "_"),
                arch.to_uppercase()
            );
            println!("cargo:rerun-if-env-changed={var}");
            let bin = match (std::env::var_os(&var), &built) {
                (Some(path), _) => PathBuf::from(path),
                (None, Some(dir)) => dir.join(name),
                (None, None) => continue,
            };
            let data =
                std::fs::read(&bin).unwrap_or_else(|e| panic!("reading {}: {e}", bin.display()));
            let hash = hex::encode(Sha256::digest(&data));
            let copy = out.join(format!("{name}-{arch}"));
            std::fs::write(&copy, &data).unwrap();
            writeln!(
                code,
                "    ({name:?}, {arch:?}, include_bytes!({:?}), {hash:?}),",
                copy.display().to_string()
            )
            .unwrap();
        }
    }
    code.push_str("];\n");
    std::fs::write(out.join("helpers.rs"), code).unwrap();
}

/// Whether the toolchain has the standard library for `target`.
fn target_installed(target: &str) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let sysroot = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(target)
                .join("lib")
                .is_dir()
        })
        .unwrap_or(false)
}

fn build(root: &Path, out: &Path, target: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = out.join("helper-target");
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "swarm-exec-helper",
            "--bins",
        ])
        .args(["--profile", "helper", "--target", target])
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags (coverage, sanitizers) are not for the
        // helper, which must stay under 500 KB. The ChaCha20 backend is the
        // one every CPU of the architecture has (SSE2 on x86_64, NEON on
        // aarch64), without runtime detection, and Poly1305 is portable:
        // together 16 KB smaller than the detected AVX2 pair (which would
        // not fit), and still 790 MiB/s on the lab machine (the portable
        // ChaCha20 does 490).
        .env_remove("RUSTFLAGS")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "--cfg",
                "chacha20_backend=\"sse2\"",
                "--cfg",
                "poly1305_backend=\"soft\"",
                // A static (non-PIE) executable carries no relocations.
                "-Crelocation-model=static",
                // rust-lld, shipped with the toolchain, for both
                // architectures (aarch64 has no other): on x86_64 it links
                // 8 KB less than the system linker. No `--icf=all`: folding
                // musl's address-compared stubs breaks the aarch64 binary.
                "-Clinker=rust-lld",
            ]
            .join("\x1f"),
        )
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build of the helper for {target} failed"));
    }
    Ok(target_dir.join(target).join("helper"))
}
