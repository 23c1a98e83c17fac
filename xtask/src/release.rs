//! Release builds: static swarm-exec binaries for every supported
//! architecture with their sha256 sums, the shell completions and the man
//! page, all in `dist/`; and the container image of the tool.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// (architecture, Rust target) of the release binaries: static musl builds.
pub const TARGETS: &[(&str, &str)] = &[
    ("x86_64", "x86_64-unknown-linux-musl"),
    ("aarch64", "aarch64-unknown-linux-musl"),
];

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The version in the workspace manifest.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Builds the static swarm-exec binary for a Rust target, with the release
/// profile, and returns its path.
pub fn build_static(target: &str) -> Result<PathBuf> {
    let status = cargo()
        .current_dir(crate::workspace_root())
        .args(["build", "--quiet", "--locked", "--release"])
        .args(["-p", "swarm-exec-cli", "--bin", "swarm-exec"])
        .args(["--target", target])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!(
            "building swarm-exec for {target} failed (rustup target add {target}; the aarch64 \
             build needs clang: apt-get install clang)"
        );
    }
    Ok(crate::target_dir().join(target).join("release/swarm-exec"))
}

/// Writes the completions (`completions/`) and the man page (`man/`)
/// generated from the CLI definition into `dir`.
pub fn docs(dir: &Path) -> Result<()> {
    let status = cargo()
        .current_dir(crate::workspace_root())
        .args(["run", "--quiet", "--locked", "-p", "swarm-exec-cli"])
        .args(["--example", "gen-docs", "--"])
        .arg(dir)
        .status()
        .context("running the gen-docs example")?;
    if !status.success() {
        bail!("generating the completions and the man page failed");
    }
    Ok(())
}

/// `--version` of a built binary, run natively or, for aarch64 on another
/// machine, under qemu-user.
pub fn smoke_test(arch: &str, binary: &Path) -> Result<String> {
    let native = std::env::consts::ARCH == arch;
    let mut cmd = if native {
        Command::new(binary)
    } else {
        let mut c = Command::new(format!("qemu-{arch}"));
        c.arg(binary);
        c
    };
    let out = cmd
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !text.starts_with("swarm-exec ") {
        bail!(
            "{} --version failed ({}): {}{}",
            binary.display(),
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A binary without its embedded helpers reaches no other node: the
    // core build script only warns when it cannot build them.
    for helper_arch in TARGETS.iter().map(|(a, _)| a) {
        if !text.contains(&format!(" {helper_arch} sha256:")) {
            bail!(
                "{} embeds no {helper_arch} helper (see the build's warnings):\n{text}",
                binary.display()
            );
        }
    }
    Ok(text)
}

/// Builds everything into `dist` and returns the files made.
pub fn release(dist: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dist)?;
    let mut made = Vec::new();
    let mut sums = String::new();
    for (arch, target) in TARGETS {
        let bin = build_static(target)?;
        let name = format!("swarm-exec-{}-{target}", version());
        let dest = dist.join(&name);
        std::fs::copy(&bin, &dest).with_context(|| format!("copying to {}", dest.display()))?;
        let first = smoke_test(arch, &dest)?;
        eprintln!("{name}: {}", first.lines().next().unwrap_or_default());
        let hash = hex::encode(Sha256::digest(std::fs::read(&dest)?));
        // The format `sha256sum -c SHA256SUMS` checks.
        writeln!(sums, "{hash}  {name}")?;
        made.push(dest);
    }
    let sums_path = dist.join("SHA256SUMS");
    std::fs::write(&sums_path, sums)?;
    made.push(sums_path);
    docs(dist)?;
    made.push(dist.join("completions"));
    made.push(dist.join("man"));
    Ok(made)
}
