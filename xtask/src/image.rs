//! The lab's test images, built `FROM scratch` in memory and pushed to the
//! lab registry through the registry HTTP API. Nothing is pulled from
//! anywhere: the layers hold Debian's static busybox and the project's own
//! `sxtest` program.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::lab::Images;

const BUSYBOX: &str = "/bin/busybox";
const TESTBIN_TARGET: &str = "x86_64-unknown-linux-musl";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
app:x:1000:1000:app:/home/app:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n";

/// Builds the lab images and pushes them; returns their digest-pinned references.
pub fn build_and_push(registry: &str) -> Result<Images> {
    let sxtest = fs_read(&build_testbin()?)?;
    let busybox = fs_read(Path::new(BUSYBOX))
        .context("reading /bin/busybox (apt-get install busybox-static)")?;
    let applets = String::from_utf8(
        Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .context("listing busybox applets")?
            .stdout,
    )?;

    let mut rootfs = Layer::default();
    for d in ["bin", "usr", "usr/bin", "etc", "root", "proc", "sys", "dev"] {
        rootfs.dir(d, 0o755, 0);
    }
    rootfs.dir("tmp", 0o1777, 0);
    rootfs.dir("home", 0o755, 0);
    rootfs.dir("home/app", 0o755, 1000);
    rootfs.file("bin/busybox", 0o755, &busybox);
    for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        rootfs.symlink(&format!("bin/{applet}"), "busybox");
    }
    rootfs.file("usr/bin/sxtest", 0o755, &sxtest);
    rootfs.file("etc/passwd", 0o644, PASSWD.as_bytes());
    rootfs.file("etc/group", 0o644, GROUP.as_bytes());
    let rootfs = rootfs.finish()?;

    let mut bare = Layer::default();
    bare.file("sxtest", 0o755, &sxtest);
    let bare = bare.finish()?;

    let serve = json!(["/usr/bin/sxtest", "serve"]);
    let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let images = [
        ("busybox", &rootfs, json!({"Env": [path], "Cmd": serve})),
        (
            "nonroot",
            &rootfs,
            json!({"Env": [path, "APP_MODE=lab"], "Cmd": serve, "User": "app", "WorkingDir": "/home/app"}),
        ),
        (
            "noshell",
            &bare,
            json!({"Env": [path], "Entrypoint": ["/sxtest"], "Cmd": ["serve"]}),
        ),
    ];
    let mut refs = Images::new();
    for (name, layer, config) in images {
        let digest = push(registry, &format!("sx/{name}"), "lab", layer, config)?;
        refs.insert(name.into(), format!("{registry}/sx/{name}:lab@{digest}"));
    }
    Ok(refs)
}

fn fs_read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Builds `sxtest` static, so that it runs in an image with nothing else.
fn build_testbin() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", "swarm-exec-testbin"])
        .args(["--target", TESTBIN_TARGET])
        .status()
        .context("building sxtest")?;
    if !status.success() {
        bail!("building sxtest failed (is the {TESTBIN_TARGET} target installed? rustup target add {TESTBIN_TARGET})");
    }
    Ok(crate::target_dir()
        .join(TESTBIN_TARGET)
        .join("release/sxtest"))
}

/// An uncompressed layer tarball, built in memory with fixed times and
/// owners so that the same inputs give the same digest.
struct Layer {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer {
            tar: tar::Builder::new(Vec::new()),
        }
    }
}

/// A finished layer: the gzip blob and the digest of the uncompressed tar.
struct Blob {
    gz: Vec<u8>,
    diff_id: String,
}

impl Layer {
    fn header(path: &str, mode: u32, owner: u64, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).expect("lab paths are short");
        h.set_mode(mode);
        h.set_uid(owner);
        h.set_gid(owner);
        h.set_mtime(0);
        h.set_entry_type(kind);
        h.set_size(0);
        h
    }

    fn dir(&mut self, path: &str, mode: u32, owner: u64) {
        let mut h = Self::header(&format!("{path}/"), mode, owner, tar::EntryType::Directory);
        h.set_cksum();
        self.tar
            .append(&h, std::io::empty())
            .expect("in-memory tar");
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        let mut h = Self::header(path, mode, 0, tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.tar.append(&h, data).expect("in-memory tar");
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let mut h = Self::header(path, 0o777, 0, tar::EntryType::Symlink);
        h.set_link_name(target).expect("short link");
        h.set_cksum();
        self.tar
            .append(&h, std::io::empty())
            .expect("in-memory tar");
    }

    fn finish(self) -> Result<Blob> {
        let tar = self.into_tar()?;
        let diff_id = sha256(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar)?;
        Ok(Blob {
            gz: gz.finish()?,
            diff_id,
        })
    }
}

impl Layer {
    fn into_tar(self) -> Result<Vec<u8>> {
        Ok(self.tar.into_inner()?)
    }
}

/// The image of the tool itself, as a `docker load` tarball: `FROM
/// scratch` with the static binary as `/swarm-exec`, its entrypoint, so
/// that `docker run -v /var/run/docker.sock:/var/run/docker.sock IMAGE
/// TARGET COMMAND…` works as the old tool did. Built in memory: nothing is
/// pulled.
pub fn tool_image(binary: &[u8], tag: &str) -> Result<Vec<u8>> {
    let mut layer = Layer::default();
    layer.file("swarm-exec", 0o755, binary);
    // Somewhere to write for tools that need it; scratch has nothing.
    layer.dir("tmp", 0o1777, 0);
    let layer = layer.into_tar()?;
    let diff_id = sha256(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/swarm-exec"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {
                "org.opencontainers.image.title": "swarm-exec",
                "org.opencontainers.image.version": crate::release::version(),
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "cargo xtask image"}],
    }))?;
    let config_name = format!("{}.json", &sha256(&config)["sha256:".len()..]);
    let layer_name = format!("{}/layer.tar", &diff_id["sha256:".len()..]);
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": [layer_name],
    }]))?;
    // The `docker save` layout, which every engine's `docker load` reads.
    let mut archive = Layer::default();
    archive.file(&config_name, 0o644, &config);
    archive.file(&layer_name, 0o644, &layer);
    archive.file("manifest.json", 0o644, &manifest);
    archive.into_tar()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Pushes one single-layer image (schema 2 manifest) and returns its digest.
fn push(
    registry: &str,
    repo: &str,
    tag: &str,
    layer: &Blob,
    config: serde_json::Value,
) -> Result<String> {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created_by": "swarm-exec lab"}],
    }))?;
    let layer_digest = upload_blob(registry, repo, &layer.gz)?;
    let config_digest = upload_blob(registry, repo, &config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config.len(),
            "digest": config_digest,
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": layer.gz.len(),
            "digest": layer_digest,
        }],
    }))?;
    ureq::put(&format!("http://{registry}/v2/{repo}/manifests/{tag}"))
        .set(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send_bytes(&manifest)
        .with_context(|| format!("pushing the manifest of {repo}:{tag}"))?;
    Ok(sha256(&manifest))
}

fn upload_blob(registry: &str, repo: &str, data: &[u8]) -> Result<String> {
    let digest = sha256(data);
    let start = ureq::post(&format!("http://{registry}/v2/{repo}/blobs/uploads/"))
        .call()
        .with_context(|| format!("starting a blob upload to {registry}"))?;
    let location = start
        .header("Location")
        .context("the registry gave no upload location")?
        .to_owned();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("http://{registry}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    ureq::put(&format!("{url}{sep}digest={digest}"))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(data)
        .with_context(|| format!("uploading blob {digest}"))?;
    Ok(digest)
}
