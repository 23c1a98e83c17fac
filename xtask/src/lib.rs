//! Developer tasks for swarm-exec. The library half is what the integration
//! tests use to drive the lab swarm; `main.rs` is the `cargo xtask` command.

pub mod bench;
pub mod fixture;
pub mod image;
pub mod lab;
pub mod release;
pub mod tls;

use std::path::PathBuf;

/// The workspace root (this crate lives in `<root>/xtask`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target directory for this workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}
