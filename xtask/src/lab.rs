//! The lab swarm: a real multi-node Docker Swarm on one Linux machine.
//!
//! Every node is its own `dockerd` in its own network namespace (with one
//! address on the `sxlab0` bridge), its own UTS namespace (hostname), its own
//! mount namespace with a private `/run` (so `/var/run/docker.sock` inside a
//! node is that node's engine, as on a real host) and its own data root. A
//! `docker-registry` on the bridge address serves the lab's images.
//!
//! Everything the lab makes is recorded under one directory (`lab.json`), so
//! that tests can drive the lab and `down` can remove all of it, also after
//! a crashed or killed run.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::image;
use crate::tls::{self, LabTls};

/// Where the lab lives unless `SWARM_EXEC_LAB` says otherwise. Not under
/// `/run`: every node mounts its own tmpfs over `/run`, and the node sockets
/// must be reachable from the host.
pub const DEFAULT_DIR: &str = "/var/lib/swarm-exec-lab";
const BRIDGE: &str = "sxlab0";
const NETNS_PREFIX: &str = "sxlab-";
const BRIDGE_ADDR: &str = "10.211.0.1";
/// The lab registry listens on the bridge address, in the host namespace.
pub const REGISTRY: &str = "10.211.0.1:5000";
const IPTABLES_COMMENT: &str = "swarm-exec-lab";
const CGROUP_ROOT: &str = "sxlab";
pub const MAX_WORKERS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Worker,
    /// An engine that is not part of the swarm, for the "not a manager" tests.
    Standalone,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    /// Also the node's hostname and its swarm node name.
    pub name: String,
    pub role: Role,
    /// Small number that picks the node's addresses and pools.
    pub index: u8,
    pub addr: String,
    /// The node's own engine socket, reachable from the host.
    pub socket: PathBuf,
}

impl Node {
    /// The `DOCKER_HOST` value for this node's own engine.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn netns(&self) -> String {
        format!("{NETNS_PREFIX}{}", self.name)
    }

    /// The host-side end of the node's veth pair.
    fn veth(&self) -> String {
        format!("{NETNS_PREFIX}{}", self.name)
    }
}

/// The images the lab builds and pushes, by short name, each a digest-pinned
/// reference (`name:tag@sha256:…`) as swarm uses in production.
pub type Images = BTreeMap<String, String>;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lab {
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
    pub registry: String,
    pub images: Images,
    pub storage_driver: String,
    /// The manager's Engine API over TLS on TCP (`tcp://ADDR:2376`), for
    /// the connection tests; absent in a lab from before it existed.
    #[serde(default)]
    pub tls: Option<LabTls>,
}

#[derive(Clone, Debug)]
pub struct UpOptions {
    pub workers: usize,
    /// 1, or 2 for high-availability tests.
    pub managers: usize,
    pub dir: PathBuf,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            workers: 2,
            managers: 1,
            dir: lab_dir(),
        }
    }
}

/// The lab directory: `$SWARM_EXEC_LAB` or [`DEFAULT_DIR`].
pub fn lab_dir() -> PathBuf {
    std::env::var_os("SWARM_EXEC_LAB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

/// Per-node objects counted by [`Lab::leftovers`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Leftovers {
    pub containers: Vec<String>,
    pub services: Vec<String>,
    pub configs: Vec<String>,
    pub secrets: Vec<String>,
    pub networks: Vec<String>,
    pub images: Vec<String>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.services.is_empty()
            && self.configs.is_empty()
            && self.secrets.is_empty()
            && self.networks.is_empty()
            && self.images.is_empty()
    }
}

impl Lab {
    /// Brings the lab up from nothing, clearing what a previous run left.
    pub fn up(opts: &UpOptions) -> Result<Lab> {
        if opts.workers > MAX_WORKERS {
            bail!("at most {MAX_WORKERS} workers, not {}", opts.workers);
        }
        if !(1..=2).contains(&opts.managers) {
            bail!("the lab has 1 or 2 managers, not {}", opts.managers);
        }
        check_root()?;
        down(&opts.dir).context("clearing a previous lab")?;
        fs::create_dir_all(opts.dir.join("nodes"))?;

        let mut nodes = Vec::new();
        for m in 1..=opts.managers {
            nodes.push(new_node(
                &opts.dir,
                format!("m{m}"),
                Role::Manager,
                10 + m as u8,
            ));
        }
        for w in 1..=opts.workers {
            nodes.push(new_node(
                &opts.dir,
                format!("w{w}"),
                Role::Worker,
                20 + w as u8,
            ));
        }
        nodes.push(new_node(&opts.dir, "s1".into(), Role::Standalone, 31));
        let storage_driver =
            std::env::var("SWARM_EXEC_LAB_STORAGE_DRIVER").unwrap_or_else(|_| "overlay2".into());
        let tls = tls::generate(&opts.dir.join("tls"), &nodes[0].name, &nodes[0].addr)
            .context("making the lab's TLS certificates")?;
        let lab = Lab {
            dir: opts.dir.clone(),
            nodes,
            registry: REGISTRY.into(),
            images: Images::new(),
            storage_driver,
            tls: Some(tls),
        };

        make_bridge()?;
        for node in &lab.nodes {
            make_netns(node)?;
        }
        lab.start_registry()?;
        // The engines start while the images are built and pushed.
        let images = std::thread::scope(|s| -> Result<Images> {
            let lab = &lab;
            let builder = s.spawn(|| image::build_and_push(REGISTRY));
            let starts: Vec<_> = lab
                .nodes
                .iter()
                .map(|n| s.spawn(move || lab.start_engine(&n.name)))
                .collect();
            for start in starts {
                start.join().expect("engine start thread")?;
            }
            builder.join().expect("image thread")
        })?;
        let mut lab = lab;
        lab.images = images;
        lab.save()?;
        lab.form_swarm()?;
        lab.pull_images()?;
        lab.wait_nodes_ready()?;
        Ok(lab)
    }

    /// Loads the running lab described in `$SWARM_EXEC_LAB/lab.json`.
    pub fn load() -> Result<Lab> {
        Self::load_from(&lab_dir())
    }

    pub fn load_from(dir: &Path) -> Result<Lab> {
        let path = dir.join("lab.json");
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "no lab is running ({} is missing); start one with `cargo xtask lab up`",
                path.display()
            )
        })?;
        Ok(serde_json::from_str(&text)?)
    }

    fn save(&self) -> Result<()> {
        let tmp = self.dir.join("lab.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        fs::rename(tmp, self.dir.join("lab.json"))?;
        Ok(())
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("the lab has no node {name:?}"))
    }

    pub fn manager(&self) -> &Node {
        &self.nodes[0]
    }

    pub fn workers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Worker)
    }

    /// The nodes that are part of the swarm.
    pub fn swarm_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role != Role::Standalone)
    }

    /// The engine that is not part of the swarm.
    pub fn standalone(&self) -> &Node {
        self.node("s1")
    }

    /// The manager's `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        self.manager().docker_host()
    }

    /// The digest-pinned reference of a lab image: `busybox`, `nonroot` or `noshell`.
    pub fn image(&self, name: &str) -> &str {
        self.images
            .get(name)
            .unwrap_or_else(|| panic!("the lab has no image {name:?}"))
    }

    /// Runs the docker CLI against a node's own engine and returns stdout.
    pub fn docker(&self, node: &str, args: &[&str]) -> Result<String> {
        docker(&self.node(node).socket, args)
    }

    fn start_registry(&self) -> Result<()> {
        let dir = self.dir.join("registry");
        fs::create_dir_all(&dir)?;
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {REGISTRY}\n",
                dir.join("data").display()
            ),
        )?;
        let log = fs::File::create(self.dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting docker-registry (apt-get install docker-registry)")?;
        fs::write(self.dir.join("registry.pid"), child.id().to_string())?;
        // The registry has no readiness signal of its own; a connect is the
        // cheapest proof that it listens, and it is up within milliseconds.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(REGISTRY).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "the lab registry did not listen on {REGISTRY} within 10 s; see {}",
                    self.dir.join("registry.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Stops the lab registry (for the fault suite).
    pub fn stop_registry(&self) -> Result<()> {
        kill_pidfile(&self.dir.join("registry.pid"), "docker-registry")
    }

    pub fn start_registry_again(&self) -> Result<()> {
        self.start_registry()
    }

    /// Starts one node's engine and returns once its API serves, as told by
    /// dockerd's own `sd_notify(READY=1)`.
    pub fn start_engine(&self, name: &str) -> Result<()> {
        let node = self.node(name);
        let ndir = self.dir.join("nodes").join(&node.name);
        fs::create_dir_all(&ndir)?;
        let config = self.dir.join("daemon.json");
        // An explicit empty config: the host's /etc/docker/daemon.json is not ours.
        fs::write(&config, "{}\n")?;
        let notify_path = self.dir.join(format!("{}.notify", node.name));
        let _ = fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path)?;
        notify.set_read_timeout(Some(Duration::from_secs(60)))?;
        let _ = fs::remove_file(&node.socket);

        let cgroup = cgroup_dir(&node.name);
        fs::create_dir_all(cgroup.join("engine"))?;
        let i = node.index;
        let mut dockerd = vec![
            "exec dockerd".to_string(),
            format!("--config-file {}", config.display()),
            format!("--data-root {}", ndir.join("data").display()),
            "--exec-root /run/docker --pidfile /run/docker.pid".into(),
            "-H unix:///run/docker.sock".into(),
            format!("-H unix://{}", node.socket.display()),
            format!("--bip 10.220.{i}.1/24"),
            format!("--default-address-pool base=10.{}.0.0/16,size=24", 100 + i),
            format!("--insecure-registry {REGISTRY}"),
            format!("--cgroup-parent /{CGROUP_ROOT}/{}/docker", node.name),
            format!("--storage-driver {}", self.storage_driver),
            "--log-level warn --userland-proxy=false".into(),
        ];
        if let Some(t) = self.tls.as_ref().filter(|t| t.node == node.name) {
            let f = |name: &str| t.server_dir.join(name).display().to_string();
            dockerd.push(format!(
                "-H tcp://{}:{} --tlsverify --tlscacert {} --tlscert {} --tlskey {}",
                node.addr,
                tls::PORT,
                f("ca.pem"),
                f("cert.pem"),
                f("key.pem")
            ));
        }
        let dockerd = dockerd.join(" ");
        // `ip netns exec` would remount /sys and hide the cgroup mounts, so
        // the namespaces are entered by hand. The shell first moves itself
        // into the node's cgroup, so that every process the engine starts,
        // shims included (they daemonize away from dockerd), can be found
        // and killed by cgroup.
        let script = format!(
            "echo $$ > {procs} && mount -t tmpfs -o mode=755 tmpfs /run && hostname {name} && {dockerd}",
            procs = cgroup.join("engine/cgroup.procs").display(),
            name = node.name,
        );
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", node.name)))?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", node.netns()))
            .args(["unshare", "--mount", "--uts", "--propagation", "private"])
            .args(["sh", "-c", &script])
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting dockerd (apt-get install docker.io)")?;
        fs::write(ndir.join("dockerd.pid"), child.id().to_string())?;

        let mut buf = [0u8; 512];
        loop {
            match notify.recv(&mut buf) {
                Ok(n) if buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") => break,
                Ok(_) => continue,
                Err(e) => bail!(
                    "the engine of {} did not become ready ({e}); see {}",
                    node.name,
                    self.dir.join(format!("{}.log", node.name)).display()
                ),
            }
        }
        let _ = fs::remove_file(&notify_path);
        Ok(())
    }

    /// The pid of a node's dockerd: its namespaces are the node's network,
    /// mount (private `/run`) and UTS namespaces.
    pub fn engine_pid(&self, name: &str) -> Result<u32> {
        let path = self.dir.join("nodes").join(name).join("dockerd.pid");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().parse()?)
    }

    /// A command that runs inside a node, as a process of that host would:
    /// its network, its `/run` (so `/var/run/docker.sock` is its engine) and
    /// its hostname.
    pub fn in_node(&self, name: &str, program: &str) -> Result<Command> {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.engine_pid(name)?.to_string())
            .args(["--net", "--mount", "--uts", "--"])
            .arg(program);
        Ok(cmd)
    }

    /// Kills one node's engine and everything it runs, as if the host died.
    pub fn stop_engine(&self, name: &str) -> Result<()> {
        kill_cgroup(&cgroup_dir(name))
    }

    /// Stops an engine the polite way (SIGTERM, containers stopped), then
    /// starts it again: the node keeps its swarm state and rejoins.
    pub fn restart_engine(&self, name: &str) -> Result<()> {
        let pidfile = self.dir.join("nodes").join(name).join("dockerd.pid");
        kill_pidfile(&pidfile, "dockerd")?;
        kill_cgroup(&cgroup_dir(name))?;
        self.start_engine(name)
    }

    /// Cuts a node off the lab network (its bridge port goes down).
    pub fn partition(&self, name: &str) -> Result<()> {
        run(Command::new("ip").args(["link", "set", &self.node(name).veth(), "down"]))?;
        Ok(())
    }

    pub fn heal(&self, name: &str) -> Result<()> {
        let node = self.node(name);
        run(Command::new("ip").args(["link", "set", &node.veth(), "up"]))?;
        // While cut off, the node's ARP requests (and everyone's for it) went
        // unanswered: those neighbour entries sit INCOMPLETE or FAILED, and
        // the kernel's next probe can be a second away, so the first packets
        // after healing would wait for it. Forget them; the next packet then
        // resolves at once over the healed link.
        run(Command::new("ip").args(["-n", &node.netns(), "neigh", "flush", "all"]))?;
        run(Command::new("ip").args(["neigh", "flush", "to", &node.addr]))?;
        for other in self.nodes.iter().filter(|n| n.name != name) {
            run(Command::new("ip").args([
                "-n",
                &other.netns(),
                "neigh",
                "flush",
                "to",
                &node.addr,
            ]))?;
        }
        Ok(())
    }

    /// Stops this machine (where the CLI and the tests run) from opening TCP
    /// connections to a node, as a firewall between an operator's machine
    /// and the workers does: the attempts go unanswered. The nodes still
    /// reach each other, and the engines' sockets are unaffected.
    pub fn wall_off(&self, name: &str) -> Result<()> {
        run(Command::new("iptables").args(wall_rule("-I", &self.node(name).addr)))?;
        Ok(())
    }

    /// Undoes [`Lab::wall_off`].
    pub fn unwall(&self, name: &str) -> Result<()> {
        run(Command::new("iptables").args(wall_rule("-D", &self.node(name).addr)))?;
        Ok(())
    }

    /// Sets a node's availability (`active`, `pause` or `drain`) through the manager.
    pub fn set_availability(&self, name: &str, availability: &str) -> Result<()> {
        self.docker(
            &self.manager().name,
            &["node", "update", "--availability", availability, name],
        )?;
        Ok(())
    }

    pub fn drain(&self, name: &str) -> Result<()> {
        self.set_availability(name, "drain")
    }

    /// What carries a label key (e.g. `swarm-exec.session`) on each node.
    /// Services, configs and secrets are cluster objects: they are counted
    /// on the managers.
    pub fn leftovers(&self, label: &str) -> Result<BTreeMap<String, Leftovers>> {
        let filter = format!("label={label}");
        let mut all = BTreeMap::new();
        for node in &self.nodes {
            let list = |args: &[&str]| -> Result<Vec<String>> {
                let out = docker(&node.socket, args)?;
                Ok(out.lines().map(str::to_owned).collect())
            };
            let f = filter.as_str();
            let mut left = Leftovers {
                containers: list(&["ps", "-a", "--filter", f, "--format", "{{.Names}}"])?,
                networks: list(&["network", "ls", "--filter", f, "--format", "{{.Name}}"])?,
                images: list(&[
                    "images",
                    "--filter",
                    f,
                    "--format",
                    "{{.Repository}}:{{.Tag}}",
                ])?,
                ..Leftovers::default()
            };
            if node.role == Role::Manager {
                left.services = list(&["service", "ls", "--filter", f, "--format", "{{.Name}}"])?;
                left.configs = list(&["config", "ls", "--filter", f, "--format", "{{.Name}}"])?;
                left.secrets = list(&["secret", "ls", "--filter", f, "--format", "{{.Name}}"])?;
            }
            all.insert(node.name.clone(), left);
        }
        Ok(all)
    }

    fn form_swarm(&self) -> Result<()> {
        let m1 = self.manager();
        self.docker(
            &m1.name,
            &[
                "swarm",
                "init",
                "--advertise-addr",
                &m1.addr,
                "--listen-addr",
                &format!("{}:2377", m1.addr),
                "--default-addr-pool",
                "10.240.0.0/16",
            ],
        )?;
        let token = |role: &str| -> Result<String> {
            Ok(self
                .docker(&m1.name, &["swarm", "join-token", "-q", role])?
                .trim()
                .to_owned())
        };
        let (worker_token, manager_token) = (token("worker")?, token("manager")?);
        let join = format!("{}:2377", m1.addr);
        std::thread::scope(|s| -> Result<()> {
            let joins: Vec<_> = self
                .swarm_nodes()
                .skip(1)
                .map(|n| {
                    let token = match n.role {
                        Role::Manager => &manager_token,
                        _ => &worker_token,
                    };
                    let join = &join;
                    s.spawn(move || {
                        self.docker(
                            &n.name,
                            &[
                                "swarm",
                                "join",
                                "--token",
                                token,
                                "--advertise-addr",
                                &n.addr,
                                join,
                            ],
                        )
                    })
                })
                .collect();
            for j in joins {
                j.join().expect("join thread")?;
            }
            Ok(())
        })?;
        // A label per node lets tests spread replicas with
        // `--placement-pref spread=node.labels.lab.node`. The node is named by
        // its ID: the manager creates the node object before `swarm join`
        // returns, but learns the hostname only when the node's first
        // session reports it, a moment later.
        for n in self.swarm_nodes() {
            let id = self.docker(&n.name, &["info", "--format", "{{.Swarm.NodeID}}"])?;
            self.docker(
                &m1.name,
                &[
                    "node",
                    "update",
                    "--label-add",
                    &format!("lab.node={}", n.name),
                    id.trim(),
                ],
            )?;
        }
        Ok(())
    }

    /// Waits until the manager sees every swarm node `Ready`. There is no
    /// node event for it in API 1.41, so this polls (lab code only).
    pub fn wait_nodes_ready(&self) -> Result<()> {
        let want = self.swarm_nodes().count();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.docker(
                &self.manager().name,
                &["node", "ls", "--format", "{{.Status}}"],
            )?;
            let ready = out.lines().filter(|l| l.trim() == "Ready").count();
            if ready == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{ready} of {want} nodes are Ready after 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Puts every lab image on every node, so that no test waits for a pull.
    fn pull_images(&self) -> Result<()> {
        std::thread::scope(|s| -> Result<()> {
            let pulls: Vec<_> = self
                .swarm_nodes()
                .flat_map(|n| self.images.values().map(move |r| (n, r)))
                .map(|(n, r)| s.spawn(move || self.docker(&n.name, &["pull", "-q", r])))
                .collect();
            for p in pulls {
                p.join().expect("pull thread")?;
            }
            Ok(())
        })
    }
}

fn new_node(dir: &Path, name: String, role: Role, index: u8) -> Node {
    Node {
        socket: dir.join(format!("{name}.sock")),
        addr: format!("10.211.0.{index}"),
        name,
        role,
        index,
    }
}

fn check_root() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status")?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("");
    if uid != "0" {
        bail!("the lab needs root (it makes namespaces, bridges and engines); run it with sudo");
    }
    Ok(())
}

fn make_bridge() -> Result<()> {
    run(Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]))?;
    run(Command::new("ip").args(["addr", "add", &format!("{BRIDGE_ADDR}/24"), "dev", BRIDGE]))?;
    run(Command::new("ip").args(["link", "set", BRIDGE, "up"]))?;
    // A host dockerd sets the FORWARD policy to DROP; bridged node-to-node
    // traffic then needs an explicit accept.
    run(Command::new("iptables").args(iptables_rule("-I")))?;
    Ok(())
}

fn iptables_rule(op: &str) -> Vec<&str> {
    vec![
        op,
        "FORWARD",
        "-i",
        BRIDGE,
        "-o",
        BRIDGE,
        "-m",
        "comment",
        "--comment",
        IPTABLES_COMMENT,
        "-j",
        "ACCEPT",
    ]
}

fn wall_rule<'a>(op: &'a str, addr: &'a str) -> Vec<&'a str> {
    vec![
        op,
        "OUTPUT",
        "-d",
        addr,
        "-p",
        "tcp",
        "--syn",
        "-m",
        "comment",
        "--comment",
        IPTABLES_COMMENT,
        "-j",
        "DROP",
    ]
}

/// The lab's rules in the OUTPUT chain, as `iptables -S` prints them.
fn wall_rules() -> Vec<String> {
    output(Command::new("iptables").args(["-S", "OUTPUT"]))
        .map(|rules| {
            rules
                .lines()
                .filter(|r| r.contains(IPTABLES_COMMENT))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn make_netns(node: &Node) -> Result<()> {
    let ns = node.netns();
    let veth = node.veth();
    run(Command::new("ip").args(["netns", "add", &ns]))?;
    run(Command::new("ip").args([
        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ]))?;
    run(Command::new("ip").args(["link", "set", &veth, "master", BRIDGE, "up"]))?;
    let addr = format!("{}/24", node.addr);
    for args in [
        vec!["addr", "add", addr.as_str(), "dev", "eth0"],
        vec!["link", "set", "eth0", "up"],
        vec!["link", "set", "lo", "up"],
        vec!["route", "add", "default", "via", BRIDGE_ADDR],
    ] {
        run(Command::new("ip").args(["-n", &ns]).args(args))?;
    }
    Ok(())
}

/// The pids-controller cgroup that holds everything of one node.
fn cgroup_dir(node: &str) -> PathBuf {
    cgroup_base().join(node)
}

fn cgroup_base() -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        root.join(CGROUP_ROOT)
    } else {
        root.join("pids").join(CGROUP_ROOT)
    }
}

/// Every pid in a cgroup tree, children first.
fn cgroup_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                cgroup_pids(&e.path(), out);
            }
        }
    }
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
}

/// SIGKILLs every process of a cgroup tree and removes the tree.
fn kill_cgroup(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut pids = Vec::new();
        cgroup_pids(dir, &mut pids);
        if pids.is_empty() {
            break;
        }
        for pid in &pids {
            signal(&pid.to_string(), "-KILL");
        }
        if Instant::now() > deadline {
            bail!("processes {pids:?} of {} survived SIGKILL", dir.display());
        }
        // Killed processes leave the cgroup as soon as they are reaped.
        std::thread::sleep(Duration::from_millis(20));
    }
    remove_cgroup_tree(dir);
    Ok(())
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Sends SIGTERM to the process in a pid file, if it is still `expect`, and
/// waits for it to go.
fn kill_pidfile(pidfile: &Path, expect: &str) -> Result<()> {
    let Ok(text) = fs::read_to_string(pidfile) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return Ok(());
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let is_it = || {
        let mut cmdline = String::new();
        fs::File::open(proc_dir.join("cmdline"))
            .and_then(|mut f| f.read_to_string(&mut cmdline))
            .is_ok()
            && cmdline.contains(expect)
    };
    if !is_it() {
        return Ok(());
    }
    signal(&pid.to_string(), "-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while is_it() && !is_zombie(pid) {
        if Instant::now() > deadline {
            signal(&pid.to_string(), "-KILL");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = fs::remove_file(pidfile);
    Ok(())
}

/// Sends a signal; a process that is already gone is fine.
fn signal(pid: &str, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, pid])
        .stderr(Stdio::null())
        .status();
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// What `down` found still present after it ran; empty when clean.
#[derive(Debug, Default, Serialize)]
pub struct DownReport {
    pub leftovers: Vec<String>,
}

/// Removes everything a lab made: processes, namespaces, the bridge, the
/// iptables rule, mounts, cgroups and the lab directory. Safe to run when
/// nothing, or only part of a lab, exists.
pub fn down(dir: &Path) -> Result<DownReport> {
    // Engines and everything they started, by cgroup.
    let base = cgroup_base();
    if let Ok(entries) = fs::read_dir(&base) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                kill_cgroup(&e.path())?;
            }
        }
    }
    let _ = fs::remove_dir(&base);
    kill_pidfile(&dir.join("registry.pid"), "docker-registry")?;

    for ns in lab_netns() {
        // Anything still in the namespace (an engine started by hand).
        if let Ok(out) = output(Command::new("ip").args(["netns", "pids", &ns])) {
            for pid in out.split_whitespace() {
                signal(pid, "-KILL");
            }
        }
        let _ = run(Command::new("ip").args(["netns", "del", &ns]));
    }
    // A namespace is freed asynchronously once its last process is gone;
    // deleting the veths now keeps an immediate `up` from colliding.
    for link in lab_links() {
        let _ = run(Command::new("ip").args(["link", "del", &link]));
    }
    while run(Command::new("iptables").args(iptables_rule("-D"))).is_ok() {}
    for rule in wall_rules() {
        // `-A OUTPUT …` as printed becomes `-D OUTPUT …`. The comment is one
        // word, so splitting on whitespace keeps the rule intact.
        if let Some(rest) = rule.strip_prefix("-A ") {
            let mut args = vec!["-D"];
            args.extend(rest.split_whitespace().map(|a| a.trim_matches('"')));
            let _ = run(Command::new("iptables").args(&args));
        }
    }

    // The engines' mounts live in their own mount namespaces and vanish with
    // them; anything under the lab dir in ours is unexpected but unmounted.
    for m in mounts_under(dir) {
        let _ = run(Command::new("umount").args(["-l", &m]));
    }
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(DownReport {
        leftovers: survey(dir),
    })
}

/// Lists what of a lab exists on this machine.
pub fn survey(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    found.extend(
        lab_netns()
            .into_iter()
            .map(|n| format!("network namespace {n}")),
    );
    found.extend(lab_links().into_iter().map(|l| format!("link {l}")));
    if let Ok(rules) = output(Command::new("iptables").args(["-S", "FORWARD"])) {
        if rules.contains(IPTABLES_COMMENT) {
            found.push("iptables FORWARD rule".into());
        }
    }
    found.extend(
        wall_rules()
            .into_iter()
            .map(|r| format!("iptables OUTPUT rule {r}")),
    );
    found.extend(mounts_under(dir).into_iter().map(|m| format!("mount {m}")));
    if dir.exists() {
        found.push(format!("directory {}", dir.display()));
    }
    if cgroup_base().exists() {
        found.push(format!("cgroup {}", cgroup_base().display()));
    }
    if let Ok(out) = output(Command::new("pgrep").args(["-f", "docker-registry serve"])) {
        found.extend(out.lines().map(|p| format!("docker-registry process {p}")));
    }
    found
}

fn lab_netns() -> Vec<String> {
    fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(NETNS_PREFIX))
                .collect()
        })
        .unwrap_or_default()
}

/// The bridge and the host ends of the veths.
fn lab_links() -> Vec<String> {
    fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(NETNS_PREFIX) || n == BRIDGE)
                .collect()
        })
        .unwrap_or_default()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

/// Runs the docker CLI against one engine socket and returns its stdout.
pub fn docker(socket: &Path, args: &[&str]) -> Result<String> {
    output(
        Command::new(docker_cli())
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(args),
    )
}

/// The docker CLI: `$DOCKER_CLI`, or `docker` on the PATH.
pub fn docker_cli() -> String {
    std::env::var("DOCKER_CLI").unwrap_or_else(|_| "docker".into())
}

fn run(cmd: &mut Command) -> Result<()> {
    output(cmd).map(drop)
}

/// Runs `cmd` (stdin closed) and returns its stdout; a failure carries its
/// stderr.
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
