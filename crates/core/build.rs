//! Builds the static helper for every node architecture swarm-exec supports
//! and embeds it, with its sha256, into the library.
//!
//! The helper is built by a nested cargo with its own target directory (the
//! outer build holds the lock on the main one). `SWARM_EXEC_HELPER_<ARCH>`
//! (for example `SWARM_EXEC_HELPER_X86_64=/path/to/swarm-exec-helper`) embeds
//! a prebuilt binary instead, for packagers.

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
    for dir in [
        "crates/helper/src",
        "crates/proto/src",
        "crates/helper/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let mut code = String::from("/// The embedded helpers: (architecture, binary, sha256 hex).\n");
    code.push_str("pub static HELPERS: &[(&str, &[u8], &str)] = &[\n");
    for (arch, target) in TARGETS {
        let var = format!("SWARM_EXEC_HELPER_{}", arch.to_uppercase());
        println!("cargo:rerun-if-env-changed={var}");
        let bin = match std::env::var_os(&var) {
            Some(path) => PathBuf::from(path),
            None => match build(&root, &out, target) {
                Ok(bin) => bin,
                Err(e) => {
                    println!(
                        "cargo:warning=no {arch} helper embedded: {e} (rustup target add {target})"
                    );
                    continue;
                }
            },
        };
        let data = std::fs::read(&bin).unwrap_or_else(|e| panic!("reading {}: {e}", bin.display()));
        let hash = hex::encode(Sha256::digest(&data));
        let copy = out.join(format!("helper-{arch}"));
        std::fs::write(&copy, &data).unwrap();
        writeln!(
            code,
            "    ({arch:?}, include_bytes!({:?}), {hash:?}),",
            copy.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out.join("helpers.rs"), code).unwrap();
}

fn build(root: &Path, out: &Path, target: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = out.join("helper-target");
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--quiet", "--locked", "-p", "swarm-exec-helper"])
        .args(["--profile", "helper", "--target", target])
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags (coverage, sanitizers) are not for the helper.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build of the helper for {target} failed"));
    }
    Ok(target_dir.join(target).join("helper/swarm-exec-helper"))
}
