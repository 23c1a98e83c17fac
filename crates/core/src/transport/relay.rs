//! The relay path: a duplex, encrypted session with a task on another node.
//!
//! The CLI can stream only to containers on its engine's own node, so:
//! 1. a per-session 32-byte key becomes a swarm **secret** (it travels over
//!    swarm's mutual-TLS control plane, never in arguments, environment,
//!    labels or logs);
//! 2. the helper (`swarm-exec-relay serve`, from a config, in the target's
//!    own image, the key mounted as a secret) is placed on the target's node,
//!    listens, and announces its address through the service logs;
//! 3. a short-lived **relay container** on the engine's own node (from a tiny
//!    image the CLI loads through `POST /images/load`) pipes one TCP
//!    connection to the helper to its stdin/stdout;
//! 4. the CLI attaches to the relay and runs the `swarm-exec-channel`
//!    handshake and `proto::frame` frames end to end with the helper: the
//!    relay and the network see only ciphertext.
//!
//! The two ends meet over a host-mode port published on the target's node,
//! dialled by the relay on the host network, or over an attachable overlay
//! network (`swarm-exec`, `--relay-link overlay`). When the CLI itself
//! reaches the target's node (it runs on a manager, say), it dials the
//! published port directly and no relay container is needed: same key,
//! same handshake, same frames (see [`Link`]).

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, EndpointPortConfig, EndpointPortConfigProtocolEnum,
    EndpointPortConfigPublishModeEnum, EndpointSpec, HostConfig, NetworkAttachmentConfig,
    NetworkCreateRequest, NodeSpecAvailabilityEnum, SecretSpec, ServiceSpec,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets,
};
use bollard::query_parameters::{CreateContainerOptions, ImportImageOptions, WaitContainerOptions};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use sha2::{Digest, Sha256};
use swarm_exec_channel::{ClientHandshake, Key};
use swarm_exec_proto::frame;
use swarm_exec_proto::line::{Decoded, Kind as LineKind, LineDecoder};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::engine::Engine;
use crate::error::{docker_message, docker_status, Error, Result, Signal};
use crate::exec::{next_control, Control, Controls, ExecSpec, Exit, SIGNAL_GRACE};
use crate::session::{Session, SHARED_LABEL};
use crate::sink::{Sink, Stream};
use crate::target::Task;
use crate::transport::helper::{self, binary_for, ensure_config, RELAY};

/// The attachable overlay network shared by all sessions.
pub const NETWORK: &str = "swarm-exec";
/// The port the helper listens on inside its container.
pub const PORT: u16 = 7070;
/// Where the key is mounted in the helper's container.
const KEY_FILE: &str = "/run/secrets/swarm-exec-key";
/// How long the helper may stay silent (it sends a heartbeat every 2 s).
const SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// How the CLI's end of the session reaches the helper. Without a choice
/// (`None` wherever a `Link` is optional), the helper publishes a host-mode
/// port; the CLI dials it itself when it reaches the node's swarm gossip
/// port, and goes through a relay container on the host network otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// A relay container and the helper, both on the `swarm-exec` overlay
    /// network.
    Overlay,
    /// The helper publishes its port on its node; a relay container on the
    /// engine's node, on the host network, dials it.
    HostPort,
    /// The helper publishes its port on its node; the CLI dials it.
    Direct,
}

/// The swarm port every node listens on (gossip): whether the CLI reaches
/// a node at all, before the helper's own port exists.
const GOSSIP_PORT: u16 = 7946;
/// How long the CLI tries to reach a node directly before it uses a relay
/// container instead.
const DIRECT_TIMEOUT: Duration = Duration::from_millis(300);

/// The relay image for the engine's own node: loaded once, reused
/// (`swarm-exec-relay:<sha256[..16]>`, labelled `swarm-exec.shared=image`).
pub async fn ensure_image(engine: &Engine, arch: &str) -> Result<String> {
    let bin = binary_for(RELAY, arch)?;
    let name = format!("swarm-exec-relay:{}", &bin.sha256[..16]);
    if engine.docker.inspect_image(&name).await.is_ok() {
        return Ok(name);
    }
    let tarball = image_tarball(&name, bin.data, arch).map_err(|e| Error::Docker {
        action: "building the relay image".into(),
        why: e.to_string(),
    })?;
    let mut load = engine.docker.import_image(
        ImportImageOptions {
            quiet: true,
            ..Default::default()
        },
        bollard::body_full(Bytes::from(tarball)),
        None,
    );
    while let Some(item) = load.next().await {
        let info = item.map_err(|e| Error::docker("loading the relay image", e))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(Error::Docker {
                action: "loading the relay image".into(),
                why: err,
            });
        }
    }
    Ok(name)
}

/// A `docker save` tarball of a one-layer image holding the relay binary.
fn image_tarball(name: &str, binary: &[u8], arch: &str) -> std::io::Result<Vec<u8>> {
    fn entry(
        tar: &mut tar::Builder<Vec<u8>>,
        path: &str,
        mode: u32,
        data: &[u8],
    ) -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        tar.append(&h, data)
    }
    let mut layer = tar::Builder::new(Vec::new());
    entry(&mut layer, "swarm-exec-relay", 0o755, binary)?;
    let layer = layer.into_inner()?;
    let layer_sha = hex(&Sha256::digest(&layer));
    let docker_arch = if arch == "aarch64" { "arm64" } else { "amd64" };
    let config = format!(
        r#"{{"architecture":"{docker_arch}","os":"linux","config":{{"Entrypoint":["/swarm-exec-relay"],"Labels":{{"{SHARED_LABEL}":"image"}}}},"rootfs":{{"type":"layers","diff_ids":["sha256:{layer_sha}"]}}}}"#
    );
    let config_sha = hex(&Sha256::digest(config.as_bytes()));
    let manifest = format!(
        r#"[{{"Config":"{config_sha}.json","RepoTags":["{name}"],"Layers":["{layer_sha}/layer.tar"]}}]"#
    );
    let mut tarball = tar::Builder::new(Vec::new());
    entry(
        &mut tarball,
        &format!("{layer_sha}/layer.tar"),
        0o644,
        &layer,
    )?;
    entry(
        &mut tarball,
        &format!("{config_sha}.json"),
        0o644,
        config.as_bytes(),
    )?;
    entry(&mut tarball, "manifest.json", 0o644, manifest.as_bytes())?;
    tarball.into_inner()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The attachable overlay network, created on first use.
pub async fn ensure_network(engine: &Engine) -> Result<String> {
    let docker = &engine.docker;
    if let Ok(n) = docker.inspect_network(NETWORK, None).await {
        return Ok(n.id.unwrap_or_default());
    }
    let request = NetworkCreateRequest {
        name: NETWORK.into(),
        driver: Some("overlay".into()),
        attachable: Some(true),
        labels: Some(HashMap::from([(
            SHARED_LABEL.to_owned(),
            "network".to_owned(),
        )])),
        ..Default::default()
    };
    match docker.create_network(request).await {
        Ok(created) => Ok(created.id),
        Err(e) if docker_status(&e) == Some(409) => docker
            .inspect_network(NETWORK, None)
            .await
            .map(|n| n.id.unwrap_or_default())
            .map_err(|e| Error::docker("reading the relay network", e)),
        Err(e) => Err(Error::docker("creating the relay network", e)),
    }
}

/// Checks the link wanted (`None`: the default) and returns the engine
/// node's architecture.
///
/// The default publishes a port in host mode on the target's node. It needs
/// no overlay attachment on either node, which costs about 0.7 s per
/// session (measured on the lab), and it is what a drained manager, the
/// usual production setup, needs anyway: a drained node cannot attach a
/// container to an overlay network. The overlay link serves clusters whose
/// nodes reach each other only on the swarm ports.
pub async fn plan(engine: &Engine, wanted: Option<Link>) -> Result<String> {
    let node = engine
        .docker
        .inspect_node(&engine.node_id)
        .await
        .map_err(|e| Error::docker("inspecting the engine's node", e))?;
    let drained = node.spec.and_then(|s| s.availability) == Some(NodeSpecAvailabilityEnum::DRAIN);
    let arch = node
        .description
        .and_then(|d| d.platform)
        .and_then(|p| p.architecture)
        .unwrap_or_default();
    if wanted == Some(Link::Overlay) && drained {
        return Err(Error::RelayUnavailable {
            node: "the engine's node".into(),
            why: "it is drained, and a drained node cannot attach containers to an overlay network; use --relay-link host".into(),
        });
    }
    Ok(arch)
}

impl std::str::FromStr for Link {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Link, String> {
        match s {
            "host" => Ok(Link::HostPort),
            "overlay" => Ok(Link::Overlay),
            "direct" => Ok(Link::Direct),
            other => Err(format!(
                "unknown relay link {other:?}: use direct, host or overlay"
            )),
        }
    }
}

/// Sends `signal` to an exec on the engine's own node, through a sibling
/// container in the host PID namespace (the Engine API cannot signal an
/// exec): the relay image runs `swarm-exec-relay kill SIGNAL PID`.
pub async fn signal_local(
    engine: &Engine,
    session: &Session,
    exec_id: &str,
    signal: i32,
) -> Result<()> {
    let docker = &engine.docker;
    let exec = docker
        .inspect_exec(exec_id)
        .await
        .map_err(|e| Error::docker("inspecting the exec", e))?;
    // An ended exec keeps its old PID in the inspect result, and that PID
    // may be another process's by now.
    let pid = exec.pid.filter(|&p| p > 0 && exec.running == Some(true));
    let Some(pid) = pid else {
        return Ok(()); // It has already ended.
    };
    let arch = plan(engine, None).await?;
    let image = ensure_image(engine, &arch).await?;
    let config = ContainerCreateBody {
        image: Some(image),
        cmd: Some(vec!["kill".into(), signal.to_string(), pid.to_string()]),
        user: Some("0".into()),
        labels: Some(session.labels()),
        host_config: Some(HostConfig {
            pid_mode: Some("host".into()),
            network_mode: Some("none".into()),
            auto_remove: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = session.object_name();
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name),
                ..Default::default()
            }),
            config,
        )
        .await
        .map_err(|e| Error::docker("creating the signal container", e))?;
    session.track_container(&created.id);
    docker
        .start_container(&created.id, None)
        .await
        .map_err(|e| Error::docker("starting the signal container", e))?;
    let mut wait = docker.wait_container(
        &created.id,
        Some(WaitContainerOptions {
            condition: "removed".into(),
        }),
    );
    let _ = wait.next().await;
    Ok(())
}

/// A session's setup, up to the helper's service spec.
struct Prepared {
    /// The key the helper accepts; it reaches the helper as a secret.
    key: Key,
    service: ServiceSpec,
    /// The relay image on the engine's node.
    image: String,
    /// The overlay network's ID, for `--relay-link overlay`.
    network: Option<String>,
    /// The target node's address, when the helper publishes a port there.
    node_ip: Option<String>,
}

/// Makes the session's key, secret and config (and the relay image and
/// network), and the helper's service spec.
async fn prepare(
    engine: &Engine,
    session: &Session,
    task: &Task,
    spec: &ExecSpec,
    link: Option<Link>,
) -> Result<Prepared> {
    let docker = &engine.docker;
    let key = Key::generate().map_err(|e| Error::Docker {
        action: "generating the session key".into(),
        why: e.to_string(),
    })?;
    let local_arch = plan(engine, link).await?;
    let relay_bin = binary_for(RELAY, &task.arch)?;
    let secret_name = session.object_name();
    let secret = SecretSpec {
        name: Some(secret_name.clone()),
        labels: Some(session.labels()),
        data: Some(swarm_exec_proto::base64::encode(key.as_bytes())),
        ..Default::default()
    };
    // Independent setup steps run together.
    let (secret, image, network, config) = tokio::join!(
        docker.create_secret(secret),
        ensure_image(engine, &local_arch),
        async {
            match link {
                Some(Link::Overlay) => ensure_network(engine).await.map(Some),
                _ => Ok(None),
            }
        },
        ensure_config(engine, &relay_bin),
    );
    let secret_id = secret
        .map_err(|e| Error::docker("creating the session key secret", e))?
        .id;
    session.track_secret(&secret_id);
    let unavailable = |e: Error| Error::RelayUnavailable {
        node: task.node.clone(),
        why: e.to_string(),
    };
    let (image, network, config_id) = (
        image.map_err(unavailable)?,
        network.map_err(unavailable)?,
        config?,
    );

    let mut args = vec!["serve".to_owned(), "--port".into(), PORT.to_string()];
    args.extend(["--key-file".into(), KEY_FILE.into()]);
    if network.is_some() {
        args.extend(["--network".into(), NETWORK.into()]);
    }
    if spec.stdin {
        args.push("--interactive".into());
    }
    if spec.tty {
        args.push("--tty".into());
    }
    // The rest is `exec`'s own command line: session, container, env, user,
    // … CMD. The relay signals in-band, so the helper gets no time limit.
    args.extend(
        helper::helper_args(session, &[&task.container_id], spec, None, None)
            .into_iter()
            .skip(1),
    );
    let mut service = helper::service_spec(
        session,
        &task.node_id,
        &task.image,
        Some((&config_id, &relay_bin.config_name())),
        args,
    );
    let template = service
        .task_template
        .as_mut()
        .expect("service_spec sets a template");
    if let Some(c) = template.container_spec.as_mut() {
        c.secrets = Some(vec![TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some("swarm-exec-key".into()),
                uid: Some("0".into()),
                gid: Some("0".into()),
                mode: Some(0o400),
            }),
            secret_id: Some(secret_id.clone()),
            secret_name: Some(secret_name),
        }]);
    }
    match &network {
        Some(id) => {
            template.networks = Some(vec![NetworkAttachmentConfig {
                target: Some(id.clone()),
                ..Default::default()
            }])
        }
        None => {
            service.endpoint_spec = Some(EndpointSpec {
                ports: Some(vec![EndpointPortConfig {
                    protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                    target_port: Some(PORT.into()),
                    publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                    ..Default::default()
                }]),
                ..Default::default()
            })
        }
    }
    // With a published port, the node's own address (as the manager sees
    // it) is where the relay, or the CLI itself, dials.
    let node_ip = match network {
        Some(_) => None,
        None => Some(node_addr(engine, &task.node_id).await?),
    };
    Ok(Prepared {
        key,
        service,
        image,
        network,
        node_ip,
    })
}

/// Starts the helper's service and returns where it listens (`IP:PORT`).
async fn launch(
    engine: &Engine,
    session: &Session,
    task: &Task,
    service: ServiceSpec,
    node_ip: Option<&str>,
) -> Result<String> {
    let service_id = helper::create_service(engine, session, service).await?;
    let announced = listening_address(engine, &service_id, &task.node).await?;
    match (announced.strip_prefix(':'), node_ip) {
        (Some(port), Some(ip)) => Ok(join_host_port(ip, port)),
        _ => Ok(announced),
    }
}

/// Starts a helper for `spec` in `task` with a published port and returns
/// where it listens and the key it accepts, without connecting: for tests
/// that play its peer (a wrong key, a second connection).
#[doc(hidden)]
pub async fn listening_helper(
    engine: &Engine,
    session: &Session,
    task: &Task,
    spec: &ExecSpec,
) -> Result<(String, Key)> {
    let p = prepare(engine, session, task, spec, Some(Link::Direct)).await?;
    let addr = launch(engine, session, task, p.service, p.node_ip.as_deref()).await?;
    Ok((addr, p.key))
}

/// Runs `spec` in `task` (on another node) over the relay.
pub async fn run(
    engine: &Engine,
    session: &Session,
    task: &Task,
    spec: &ExecSpec,
    link: Option<Link>,
    sink: &mut impl Sink,
    mut controls: Option<&mut Controls>,
) -> Result<Exit> {
    let start = Instant::now();
    let Prepared {
        key,
        service,
        image,
        network,
        node_ip,
    } = prepare(engine, session, task, spec, link).await?;
    tracing::debug!("relay setup in {:?}", start.elapsed());
    // The helper and the CLI's end start at the same time: the helper takes
    // about half a second, the relay container about a fifth, and the relay
    // learns the helper's address on its stdin once the helper announces
    // it. Whether the CLI can skip the relay (it reaches the node) is found
    // out meanwhile.
    let helper_side = launch(engine, session, task, service, node_ip.as_deref());
    let relay_side = async {
        let direct = match (link, &node_ip) {
            (Some(Link::Direct), _) => true,
            (None, Some(ip)) => reaches(ip, GOSSIP_PORT).await,
            _ => false,
        };
        if direct {
            return Ok(None);
        }
        if link.is_none() {
            tracing::info!(
                "this machine does not reach {} ({}) directly: a relay container on the engine's node carries the session",
                task.node,
                node_ip.as_deref().unwrap_or_default()
            );
        }
        start_relay(engine, session, task, image.clone(), network.is_some())
            .await
            .map(Some)
    };
    let (addr, relay) = tokio::join!(helper_side, relay_side);
    let (addr, relay) = (addr?, relay?);
    tracing::debug!("helper listens on {addr} after {:?}", start.elapsed());
    let relay_err = |why: String| Error::Helper {
        node: task.node.clone(),
        why,
    };
    let (mut output, mut input) = match relay {
        Some(streams) => through_relay(streams, &addr).await.map_err(relay_err)?,
        None => match connect_direct(&addr).await {
            Ok(streams) => {
                tracing::info!(
                    "this machine reaches the helper on {} at {addr} directly: no relay container",
                    task.node
                );
                streams
            }
            Err(e) if link.is_none() => {
                tracing::info!(
                    "the helper on {} at {addr} does not answer here ({e}): a relay container on the engine's node carries the session",
                    task.node
                );
                let streams = start_relay(engine, session, task, image, network.is_some()).await?;
                through_relay(streams, &addr).await.map_err(relay_err)?
            }
            Err(e) => {
                return Err(Error::RelayUnavailable {
                    node: task.node.clone(),
                    why: format!(
                        "this machine cannot connect to the helper at {addr} ({e}); use --relay-link host"
                    ),
                })
            }
        },
    };

    // The handshake, through the relay.
    let mut handshake = ClientHandshake::new(&key).map_err(|e| relay_err(e.to_string()))?;
    let mut relay_stderr = Vec::new();
    let mut wire = Vec::new();
    let (mut channel, mut records) = loop {
        let Some(item) = output.next().await else {
            let why = String::from_utf8_lossy(&relay_stderr).trim().to_owned();
            return Err(Error::RelayUnavailable {
                node: task.node.clone(),
                why: format!("the relay closed before the handshake: {why}"),
            });
        };
        match item.map_err(|e| Error::docker("reading the relay", e))? {
            LogOutput::StdOut { message } => {
                wire.clear();
                let done = handshake
                    .push(&message, &mut wire)
                    .map_err(|e| relay_err(format!("the helper did not authenticate: {e}")))?;
                if !wire.is_empty() {
                    input
                        .write_all(&wire)
                        .await
                        .map_err(|e| relay_err(e.to_string()))?;
                    input.flush().await.map_err(|e| relay_err(e.to_string()))?;
                }
                if let Some(established) = done {
                    break established;
                }
            }
            LogOutput::StdErr { message } => relay_stderr.extend_from_slice(&message),
            _ => {}
        }
    };
    tracing::debug!("session established after {:?}", start.elapsed());

    let mut decoder = frame::Decoder::new();
    let mut pending = Pending::default();
    let mut plain = Vec::new();
    let mut sealed = Vec::new();
    let mut stdin_open = spec.stdin;
    let mut signalled: Option<Instant> = None;
    // The helper sends a heartbeat every 2 s; silence means its node or the
    // link is gone (a dead node sends no reset).
    let mut last_heard = Instant::now();
    let mut liveness = tokio::time::interval(Duration::from_secs(1));
    let mut signal_sent: Option<Signal> = None;
    loop {
        let grace = async {
            match signalled {
                Some(at) => tokio::time::sleep_until(at + SIGNAL_GRACE).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            item = output.next() => {
                // Take whatever else the relay has already delivered, up to
                // a batch: one sink write per batch and stream, not per
                // chunk, is what keeps up with a fast command.
                let mut item = item;
                let mut ended = false;
                loop {
                    match item {
                        None => {
                            ended = true;
                            break;
                        }
                        Some(it) => match it.map_err(|e| Error::docker("reading the relay", e))? {
                            LogOutput::StdOut { message } => records.push(&message),
                            LogOutput::StdErr { message } => relay_stderr.extend_from_slice(&message),
                            _ => {}
                        },
                    }
                    if records.buffered() >= BATCH {
                        break;
                    }
                    match output.next().now_or_never() {
                        Some(next) => item = next,
                        None => break,
                    }
                }
                last_heard = Instant::now();
                let broke = |e: swarm_exec_channel::Error| relay_err(format!("the session stream broke: {e}"));
                while let Some(record) = records.next() {
                    let data = channel.open(&record.map_err(broke)?).map_err(broke)?;
                    let mut input_bytes: &[u8] = &data;
                    while let Some(f) = decoder.decode(&mut input_bytes) {
                        let f = f.map_err(|e| relay_err(format!("bad frame: {e}")))?;
                        match f.kind {
                            frame::Kind::Stdout => pending.push(Stream::Stdout, &f.payload, sink).await?,
                            frame::Kind::Stderr => pending.push(Stream::Stderr, &f.payload, sink).await?,
                            frame::Kind::Exit => {
                                pending.flush(sink).await?;
                                let code = f.exit_code().unwrap_or(-1);
                                let _ = input.shutdown().await;
                                if let Some(signal) = signal_sent {
                                    return Err(Error::Interrupted { signal });
                                }
                                return Ok(Exit { code: code.into() });
                            }
                            frame::Kind::Failure => {
                                pending.flush(sink).await?;
                                return Err(relay_err(f.failure_message().unwrap_or_default()));
                            }
                            _ => {}
                        }
                    }
                }
                pending.flush(sink).await?;
                if ended {
                    return Err(relay_err("the connection to the helper closed before the exit code arrived".into()));
                }
            }
            ctl = next_control(&mut controls) => {
                plain.clear();
                match ctl {
                    Control::Stdin(data) if stdin_open => {
                        let _ = frame::encode_data(frame::Kind::Stdin, 0, &data, &mut plain);
                    }
                    Control::StdinEof if stdin_open => {
                        stdin_open = false;
                        frame::encode_stdin_eof(0, &mut plain);
                    }
                    Control::Resize { rows, cols } if spec.tty => frame::encode_resize(0, rows, cols, &mut plain),
                    Control::Signal(sig) => {
                        frame::encode_signal(0, sig as u8, &mut plain);
                        signalled.get_or_insert_with(Instant::now);
                        signal_sent = Some(Signal::from_number(sig));
                    }
                    _ => continue,
                }
                sealed.clear();
                channel.seal(&plain, &mut sealed);
                input.write_all(&sealed).await.map_err(|e| relay_err(e.to_string()))?;
                input.flush().await.map_err(|e| relay_err(e.to_string()))?;
            }
            _ = liveness.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    return Err(relay_err(format!(
                        "no word from it for {} s; the node or the network between the nodes is down",
                        SILENCE_LIMIT.as_secs()
                    )));
                }
            }
            _ = grace => {
                return Err(Error::Interrupted { signal: signal_sent.unwrap_or(Signal::Interrupt) });
            }
        }
    }
}

/// How much received output is gathered before it is written out.
const BATCH: usize = 256 * 1024;

/// Output gathered for the sink: consecutive pieces of one stream become
/// one write.
#[derive(Default)]
struct Pending {
    stream: Option<Stream>,
    data: Vec<u8>,
}

impl Pending {
    async fn push(&mut self, stream: Stream, piece: &[u8], sink: &mut impl Sink) -> Result<()> {
        if self.stream != Some(stream) {
            self.flush(sink).await?;
            self.stream = Some(stream);
        }
        self.data.extend_from_slice(piece);
        Ok(())
    }

    async fn flush(&mut self, sink: &mut impl Sink) -> Result<()> {
        if let Some(stream) = self.stream.take() {
            if !self.data.is_empty() {
                sink.write(stream, &self.data)
                    .await
                    .map_err(Error::Output)?;
            }
            self.data.clear();
        }
        Ok(())
    }
}

type RelayStreams = (
    std::pin::Pin<
        Box<
            dyn futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>>
                + Send,
        >,
    >,
    std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
);

/// `IP:PORT`, with an IPv6 address in brackets as `SocketAddr` parses it.
fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Whether this machine opens a TCP connection to `ip:port` in time.
async fn reaches(ip: &str, port: u16) -> bool {
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    matches!(
        tokio::time::timeout(DIRECT_TIMEOUT, tokio::net::TcpStream::connect((ip, port))).await,
        Ok(Ok(_))
    )
}

/// The session's streams over a TCP connection from the CLI itself to the
/// helper: what the relay container's exec streams would carry.
async fn connect_direct(addr: &str) -> std::io::Result<RelayStreams> {
    use tokio::io::AsyncReadExt;
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not IP:PORT"))?;
    let conn = tokio::time::timeout(DIRECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))??;
    conn.set_nodelay(true)?;
    let (read, write) = conn.into_split();
    let output = futures_util::stream::unfold(read, |mut read| async move {
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        match read.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((
                Ok(LogOutput::StdOut {
                    message: buf.freeze(),
                }),
                read,
            )),
            Err(err) => Some((Err(bollard::errors::Error::IOError { err }), read)),
        }
    });
    Ok((Box::pin(output), Box::pin(write)))
}

/// Tells the relay where the helper is (its first line of stdin).
async fn through_relay(
    (output, mut input): RelayStreams,
    addr: &str,
) -> std::result::Result<RelayStreams, String> {
    input
        .write_all(format!("{addr}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    Ok((output, input))
}

/// Starts the relay container on the engine's node and execs the pipe in
/// it. The container itself only holds the network namespace; the pipe
/// runs as an exec because its stream is the engine's exec stream, which
/// carries large outputs to this client reliably (a container attach
/// stream stalled here after about 8 MiB on engine 20.10).
async fn start_relay(
    engine: &Engine,
    session: &Session,
    task: &Task,
    image: String,
    overlay: bool,
) -> Result<RelayStreams> {
    let docker = &engine.docker;
    let relay = ContainerCreateBody {
        image: Some(image),
        cmd: Some(vec!["hold".into()]),
        labels: Some(session.labels()),
        host_config: Some(HostConfig {
            network_mode: Some(if overlay {
                NETWORK.into()
            } else {
                "host".into()
            }),
            auto_remove: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let relay_id = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(session.object_name()),
                ..Default::default()
            }),
            relay,
        )
        .await
        .map_err(|e| Error::docker("creating the relay container", e))?
        .id;
    session.track_container(&relay_id);
    docker
        .start_container(&relay_id, None)
        .await
        .map_err(|e| Error::RelayUnavailable {
            node: task.node.clone(),
            why: format!(
                "starting the relay on the engine's node: {}",
                docker_message(&e)
            ),
        })?;
    let exec = docker
        .create_exec(
            &relay_id,
            bollard::exec::CreateExecOptions::<String> {
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(false),
                cmd: Some(vec!["/swarm-exec-relay".into(), "relay".into()]),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| Error::docker("starting the relay pipe", e))?;
    match docker
        .start_exec(&exec.id, None)
        .await
        .map_err(|e| Error::docker("starting the relay pipe", e))?
    {
        bollard::exec::StartExecResults::Attached { output, input } => Ok((output, input)),
        bollard::exec::StartExecResults::Detached => Err(Error::Docker {
            action: "starting the relay pipe".into(),
            why: "the engine detached it".into(),
        }),
    }
}

/// Follows the helper's logs until it announces where it listens.
async fn listening_address(engine: &Engine, service: &str, node: &str) -> Result<String> {
    let logs = helper::follow_logs(engine, service);
    tokio::pin!(logs);
    let mut decoder = LineDecoder::new();
    let mut stderr = Vec::new();
    let started = Instant::now();
    let mut watch = tokio::time::interval(Duration::from_millis(250));
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let fail = |why: String| Error::Helper {
        node: node.to_owned(),
        why,
    };
    loop {
        tokio::select! {
            item = logs.next() => {
                let Some(item) = item else {
                    return Err(fail("its logs ended before it listened".into()));
                };
                match item.map_err(|e| Error::docker("following the helper's output", e))? {
                    LogOutput::StdOut { message } => decoder.push(&message),
                    LogOutput::StdErr { message } => {
                        stderr.extend_from_slice(&message);
                        continue;
                    }
                    _ => continue,
                }
                while let Some(d) = decoder.next() {
                    match d {
                        Ok(Decoded::Frame(f)) if f.kind == LineKind::Listening => {
                            return Ok(String::from_utf8_lossy(&f.payload).into_owned());
                        }
                        Ok(Decoded::Frame(f)) if f.kind == LineKind::Failure => {
                            return Err(fail(f.failure_message().unwrap_or_default()));
                        }
                        _ => {}
                    }
                }
            }
            _ = watch.tick() => {
                if let Some(why) = helper::start_failure(engine, service).await? {
                    let detail = String::from_utf8_lossy(&stderr).trim().to_owned();
                    return Err(fail(if detail.is_empty() { why } else { format!("{why}: {detail}") }));
                }
                if started.elapsed() > helper::START_TIMEOUT {
                    return Err(fail(format!(
                        "it did not start within {} s; is the node up? (docker node ls)",
                        helper::START_TIMEOUT.as_secs()
                    )));
                }
            }
        }
    }
}

/// A node's own address, as the manager sees it.
async fn node_addr(engine: &Engine, node_id: &str) -> Result<String> {
    engine
        .docker
        .inspect_node(node_id)
        .await
        .map_err(|e| Error::docker("inspecting the task's node", e))?
        .status
        .and_then(|s| s.addr)
        .filter(|a| !a.is_empty() && a != "0.0.0.0")
        .ok_or_else(|| Error::Docker {
            action: "finding the task's node address".into(),
            why: "the manager reports none".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_socket_addresses() {
        for (ip, want) in [
            ("10.0.0.5", "10.0.0.5:30001"),
            ("fd00::5", "[fd00::5]:30001"),
        ] {
            let joined = join_host_port(ip, "30001");
            assert_eq!(joined, want);
            assert!(joined.parse::<std::net::SocketAddr>().is_ok());
        }
    }

    #[test]
    fn tarball_has_a_manifest() {
        let t = image_tarball("swarm-exec-relay:test", b"\x7fELF", "x86_64").unwrap();
        let mut archive = tar::Archive::new(&t[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names.len(), 3);
        assert!(names.contains(&"manifest.json".to_owned()));
    }
}
