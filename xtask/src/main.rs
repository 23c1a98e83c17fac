//! `cargo xtask`: the lab swarm, the demo, the whole test run, the benchmark
//! and release builds. See the README for the commands.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use xtask::lab::{self, Lab, UpOptions};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "swarm-exec developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Manage the lab swarm (run as root).
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Build swarm-exec, bring a throwaway lab up, run swarm-exec into a task
    /// on a worker node, and tear the lab down.
    Demo {
        /// Leave the lab running afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Bring the lab up, run the whole test suite against it, and tear it
    /// down, also when the tests fail.
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the static release binaries (x86_64, aarch64) with their
    /// SHA256SUMS, the shell completions and the man page into dist/.
    Release {
        #[arg(long, default_value = "dist")]
        dist: PathBuf,
    },
    /// Build the tool's own container image (FROM scratch, entrypoint
    /// swarm-exec) as a `docker load` tarball, and load it.
    Image {
        #[arg(long, default_value_t = format!("swarm-exec:{}", xtask::release::version()))]
        tag: String,
        /// Where to write the tarball.
        #[arg(long, default_value = "dist/swarm-exec-image.tar")]
        output: PathBuf,
        /// Also `docker load` it into the engine the docker CLI uses.
        #[arg(long)]
        load: bool,
    },
    /// Measure swarm-exec against docker exec and the old design on the
    /// running lab (medians of interleaved runs; asserts nothing).
    Bench {
        /// Measured runs per figure, after one warm-up (at least 5).
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Where to write the JSON (default bench-results/latest.json; the
        /// table goes next to it as .md).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only these rows (repeatable): local, remote, throughput, fan-out,
        /// interactive, cost. Default: all.
        #[arg(long, value_name = "ROWS")]
        only: Vec<xtask::bench::Rows>,
    },
    /// Write the bash, zsh and fish completions into DIR.
    Completions {
        #[arg(long, default_value = "dist")]
        dir: PathBuf,
    },
    /// Write the man page into DIR.
    Man {
        #[arg(long, default_value = "dist")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum LabCommand {
    /// Start a registry, the managers and the workers (clearing stale state first).
    Up {
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Add a second manager, for high-availability tests.
        #[arg(long)]
        ha: bool,
    },
    /// Remove everything the lab made.
    Down,
    /// Show the nodes and how to reach them.
    Status,
    /// Print `export DOCKER_HOST=…` for the manager.
    Env,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Task::Lab { command } => lab_command(command).map(|()| ExitCode::SUCCESS),
        Task::Demo { keep } => demo(keep).map(|()| ExitCode::SUCCESS),
        Task::Test { args } => test(&args),
        Task::Release { dist } => {
            for path in xtask::release::release(&dist)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Task::Image { tag, output, load } => image(&tag, &output, load).map(|()| ExitCode::SUCCESS),
        Task::Bench { runs, json, only } => {
            xtask::bench::run(runs, json.as_deref(), &only).map(|()| ExitCode::SUCCESS)
        }
        // One generator writes both; each command names what it is for.
        Task::Completions { dir } | Task::Man { dir } => {
            xtask::release::docs(&dir).map(|()| ExitCode::SUCCESS)
        }
    }
}

fn image(tag: &str, output: &std::path::Path, load: bool) -> Result<()> {
    let bin = xtask::release::build_static("x86_64-unknown-linux-musl")?;
    let tar = xtask::image::tool_image(&std::fs::read(&bin)?, tag)?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(output, tar)?;
    println!("{}", output.display());
    if load {
        let status = Command::new(lab::docker_cli())
            .arg("load")
            .arg("-i")
            .arg(output)
            .status()?;
        if !status.success() {
            bail!("docker load failed");
        }
    }
    Ok(())
}

fn lab_command(command: LabCommand) -> Result<()> {
    match command {
        LabCommand::Up { workers, ha } => {
            up(&UpOptions {
                workers,
                managers: if ha { 2 } else { 1 },
                ..UpOptions::default()
            })?;
        }
        LabCommand::Down => down()?,
        LabCommand::Status => {
            let lab = Lab::load()?;
            println!("registry  {}", lab.registry);
            for n in &lab.nodes {
                println!(
                    "{:<4} {:<8?} {:<12} {}",
                    n.name,
                    n.role,
                    n.addr,
                    n.docker_host()
                );
            }
            for (name, r) in &lab.images {
                println!("image {name:<8} {r}");
            }
            print!("{}", lab.docker(&lab.manager().name, &["node", "ls"])?);
        }
        LabCommand::Env => println!("export DOCKER_HOST={}", Lab::load()?.docker_host()),
    }
    Ok(())
}

fn up(opts: &UpOptions) -> Result<Lab> {
    let t = Instant::now();
    let lab = Lab::up(opts)?;
    eprintln!(
        "lab up in {:.1} s: {} nodes, manager at {}",
        t.elapsed().as_secs_f64(),
        lab.nodes.len(),
        lab.docker_host()
    );
    Ok(lab)
}

fn down() -> Result<()> {
    let t = Instant::now();
    let report = lab::down(&lab::lab_dir())?;
    if report.leftovers.is_empty() {
        eprintln!(
            "lab down in {:.1} s; nothing left",
            t.elapsed().as_secs_f64()
        );
        Ok(())
    } else {
        bail!("lab down left: {}", report.leftovers.join(", "))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn test(args: &[String]) -> Result<ExitCode> {
    // Build everything first, so that a compile error costs no lab.
    let status = cargo()
        .args(["test", "--workspace", "--no-run", "--quiet"])
        .status()?;
    if !status.success() {
        bail!("the tests do not build");
    }
    let result = up(&UpOptions::default()).and_then(|lab| {
        cargo()
            .args(["test", "--workspace"])
            .args(args)
            .env("SWARM_EXEC_LAB", &lab.dir)
            .status()
            .context("running cargo test")
    });
    let torn = down();
    let status = result?;
    torn?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn demo(keep: bool) -> Result<()> {
    let status = cargo()
        .args(["build", "--quiet", "--release", "-p", "swarm-exec-cli"])
        .status()?;
    if !status.success() {
        bail!("building swarm-exec failed");
    }
    let bin = xtask::target_dir().join("release/swarm-exec");
    let lab = up(&UpOptions::default())?;
    let result = (|| -> Result<()> {
        let m = lab.manager().name.clone();
        lab.docker(
            &m,
            &[
                "service",
                "create",
                "--detach",
                "--quiet",
                "--name",
                "demo",
                "--replicas",
                "1",
                "--constraint",
                "node.role==worker",
                lab.image("busybox"),
            ],
        )?;
        let task = xtask::fixture::wait_running(&lab, "demo", 1)?.remove(0);
        let show = |args: &[&str]| -> Result<()> {
            println!("\n$ swarm-exec {}", args.join(" "));
            let status = Command::new(&bin)
                .args(args)
                .env("DOCKER_HOST", lab.docker_host())
                .status()?;
            println!("(exit status {})", status.code().unwrap_or(-1));
            Ok(())
        };
        println!("demo.1 runs on worker {} (the manager is {m})", task.node);
        show(&["demo", "hostname"])?;
        show(&[
            "demo.1",
            "sh",
            "-c",
            "echo to stdout; echo to stderr >&2; exit 3",
        ])?;
        show(&[&task.id[..12], "sxtest", "id"])?;
        Ok(())
    })();
    if !keep {
        down()?;
    }
    result
}
