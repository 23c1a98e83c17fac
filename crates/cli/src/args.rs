//! The command line, in two stages: [`RawArgs`] is what clap parses, and
//! [`Config`] is the checked, resolved form the rest of the program uses.
//! Every check happens here, before anything talks to the engine, so that
//! bad input never creates an object.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use swarm_exec::exec::{parse_env_arg, parse_env_file};
use swarm_exec::fanout::AllOptions;
use swarm_exec::transport::helper::HelperOptions;
use swarm_exec::{Error, ExecSpec, Result, RunOptions, Transport};

use crate::docker_flags::DockerFlags;
use crate::plugin::Install;

/// Run a command in a task of a Docker Swarm service, on whichever node it
/// runs: `docker exec` for swarm services.
#[derive(Debug, Parser)]
#[command(
    name = "swarm-exec",
    override_usage = "swarm-exec [OPTIONS] TARGET COMMAND [ARG...]\n       swarm-exec --cleanup",
    disable_version_flag = true,
    after_help = "TARGET is a task ID or unique prefix, SERVICE.SLOT, SERVICE.NODE (global \
                  services) or SERVICE (its one running task).\n\nExit status: the command's own; \
                  124 when --timeout expires; 125 when swarm-exec itself fails."
)]
pub struct RawArgs {
    /// Keep stdin open and pass it to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Allocate a TTY for the command.
    #[arg(short = 't', long)]
    pub tty: bool,

    /// Start the command and return at once.
    #[arg(short = 'd', long)]
    pub detach: bool,

    /// Set an environment variable (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,

    /// Read environment variables from a file.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Run as this user: name or UID, with an optional group.
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,

    /// Run in this directory inside the container.
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// Give the command extended privileges.
    #[arg(long)]
    pub privileged: bool,

    /// Give up after this many seconds (exit 124).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub timeout: Option<String>,

    /// How to reach the task: auto, local, relay or helper.
    #[arg(long, value_name = "TRANSPORT", default_value = "auto")]
    pub transport: String,

    /// How the session reaches a task on another node: `direct` (this
    /// machine dials a port the helper publishes on that node), `host` (a
    /// relay container on the engine's node dials it) or `overlay` (a relay
    /// container and the helper on an attachable overlay network). Default:
    /// direct when this machine reaches the node, host otherwise.
    #[arg(long, value_name = "LINK")]
    pub relay_link: Option<String>,

    /// An image that already holds the helper at /.swarm-exec-helper, for
    /// nodes where the target's own image cannot run it.
    #[arg(long, value_name = "IMAGE")]
    pub helper_image: Option<String>,

    /// When SERVICE has several running tasks, pick one (preferring the
    /// engine's own node) instead of failing.
    #[arg(long)]
    pub any: bool,

    /// Print nothing of swarm-exec's own but errors.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Explain each step on stderr (-vv for more).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Run in every running task of the service TARGET names.
    #[arg(long, help_heading = "Every task")]
    pub all: bool,

    /// With --all: only the tasks on this node (ID, ID prefix or hostname; repeatable).
    #[arg(long = "node", value_name = "NODE", help_heading = "Every task")]
    pub nodes: Vec<String>,

    /// With --all: run at most N tasks at once (default: all).
    #[arg(long, value_name = "N", help_heading = "Every task")]
    pub parallel: Option<String>,

    /// With --all: one task at a time, in slot order, stopping at the first failure.
    #[arg(long, help_heading = "Every task")]
    pub rolling: bool,

    /// With --all: `text` (prefixed lines) or `json` (JSON Lines).
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "text",
        help_heading = "Every task"
    )]
    pub format: String,

    /// With --all: no colours in the prefixes (also NO_COLOR).
    #[arg(long, help_heading = "Every task")]
    pub no_color: bool,

    /// Remove every object swarm-exec created in the swarm, and exit.
    #[arg(long)]
    pub cleanup: bool,

    /// Install this binary as the docker CLI plugin `docker swarmexec`, in
    /// the config directory's cli-plugins: `copy` (the default) or `link`.
    #[arg(long, value_name = "HOW", num_args = 0..=1, default_missing_value = "copy")]
    pub install_plugin: Option<String>,

    /// Print the version, the git revision and the helper hashes.
    #[arg(short = 'V', long)]
    pub version: bool,

    /// TARGET, then COMMAND and its arguments, passed through untouched.
    #[arg(
        value_name = "TARGET COMMAND",
        trailing_var_arg = true,
        num_args = 0..
    )]
    pub rest: Vec<OsString>,

    #[command(flatten)]
    pub docker: DockerFlags,
}

/// What to do, checked.
#[derive(Debug)]
pub enum Action {
    Version,
    Cleanup,
    InstallPlugin(Install),
    Exec(Config),
    All(AllConfig),
}

/// `--all`'s output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug)]
pub struct AllConfig {
    pub service: String,
    pub nodes: Vec<String>,
    pub spec: ExecSpec,
    pub opts: AllOptions,
    pub format: Format,
    pub color: bool,
    pub quiet: bool,
}

#[derive(Debug)]
pub struct Config {
    pub target: String,
    pub spec: ExecSpec,
    pub run: RunOptions,
    pub any: bool,
}

/// Parses `--timeout`: a positive number of seconds.
pub fn parse_timeout(s: &str) -> Result<Duration> {
    let bad = |why: &str| Error::usage(format!("--timeout {s}"), why);
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| bad("not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(bad("it must be more than 0 seconds"));
    }
    if secs > 1e9 {
        return Err(bad("it is too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn utf8(arg: OsString, what: &str) -> Result<String> {
    arg.into_string().map_err(|a| {
        Error::usage(
            what,
            format!("{a:?} is not valid UTF-8, which the Engine API cannot carry"),
        )
    })
}

impl RawArgs {
    /// Checks everything and resolves files and defaults.
    pub fn resolve(self) -> Result<Action> {
        if self.version {
            return Ok(Action::Version);
        }
        let transport: Transport = self
            .transport
            .parse()
            .map_err(|why: String| Error::usage("--transport", why))?;
        let timeout = self.timeout.as_deref().map(parse_timeout).transpose()?;
        if self.cleanup {
            if !self.rest.is_empty() {
                return Err(Error::usage("--cleanup", "it takes no TARGET or COMMAND"));
            }
            return Ok(Action::Cleanup);
        }
        if let Some(how) = self.install_plugin {
            if !self.rest.is_empty() {
                return Err(Error::usage(
                    "--install-plugin",
                    "it takes no TARGET or COMMAND",
                ));
            }
            return Ok(Action::InstallPlugin(how.parse()?));
        }
        let mut rest = self.rest.into_iter();
        let target = match rest.next() {
            Some(t) => utf8(t, "TARGET")?,
            None => return Err(Error::usage("arguments", "TARGET and COMMAND are missing")),
        };
        swarm_exec::target::parse(&target)?;
        let cmd = rest
            .map(|a| utf8(a, "COMMAND"))
            .collect::<Result<Vec<_>>>()?;
        if cmd.is_empty() {
            return Err(Error::usage("arguments", "COMMAND is missing after TARGET"));
        }
        let mut env = Vec::new();
        for file in &self.env_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Error::usage(format!("--env-file {}", file.display()), e.to_string())
            })?;
            let vars = parse_env_file(&text, |k| std::env::var(k).ok())
                .map_err(|why| Error::usage(format!("--env-file {}", file.display()), why))?;
            env.extend(vars);
        }
        for e in &self.env {
            env.push(parse_env_arg(e).map_err(|why| Error::usage("-e", why))?);
        }
        let nonempty = |what: &str, v: Option<String>| -> Result<Option<String>> {
            match v {
                Some(s) if s.is_empty() => Err(Error::usage(what, "it is empty")),
                v => Ok(v),
            }
        };
        let spec = ExecSpec {
            cmd,
            env,
            user: nonempty("--user", self.user)?,
            workdir: nonempty("--workdir", self.workdir)?,
            privileged: self.privileged,
            stdin: self.interactive,
            tty: self.tty,
            detach: self.detach,
        };
        if self.detach && (self.interactive || self.tty) {
            return Err(Error::usage(
                "-d",
                "a detached command has no stdin or TTY to attach",
            ));
        }
        let relay_link = self
            .relay_link
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|why: String| Error::usage("--relay-link", why))?;
        let run = RunOptions {
            relay_link,
            transport,
            helper: HelperOptions {
                helper_image: nonempty("--helper-image", self.helper_image)?,
            },
            timeout,
        };
        let format = match self.format.as_str() {
            "text" => Format::Text,
            "json" => Format::Json,
            other => {
                return Err(Error::usage(
                    "--format",
                    format!("unknown format {other:?}: use text or json"),
                ))
            }
        };
        let parallel = match self.parallel.as_deref() {
            None => None,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(Error::usage(
                        format!("--parallel {n}"),
                        "it must be a whole number above 0",
                    ))
                }
            },
        };
        if !self.all {
            let only_all = [
                ("--node", !self.nodes.is_empty()),
                ("--parallel", parallel.is_some()),
                ("--rolling", self.rolling),
                ("--format", format != Format::Text),
            ];
            if let Some((flag, _)) = only_all.iter().find(|(_, set)| *set) {
                return Err(Error::usage(*flag, "it goes with --all"));
            }
            return Ok(Action::Exec(Config {
                target,
                spec,
                run,
                any: self.any,
            }));
        }
        if self.any {
            return Err(Error::usage("--any", "--all already runs in every task"));
        }
        if self.tty || self.detach {
            return Err(Error::usage(
                "--all",
                "-t and -d go with one task; --all runs in every task at once (-i copies stdin to each)",
            ));
        }
        if self.rolling && parallel.is_some() {
            return Err(Error::usage(
                "--parallel",
                "--rolling runs one task at a time",
            ));
        }
        Ok(Action::All(AllConfig {
            service: target,
            nodes: self.nodes,
            spec,
            opts: AllOptions {
                parallel,
                rolling: self.rolling,
                run,
            },
            format,
            color: !self.no_color
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::IsTerminal::is_terminal(&std::io::stdout()),
            quiet: self.quiet,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Action> {
        let raw =
            RawArgs::try_parse_from(std::iter::once("swarm-exec").chain(args.iter().copied()))
                .map_err(|e| Error::usage("arguments", e.to_string()))?;
        raw.resolve()
    }

    fn config(args: &[&str]) -> Config {
        match parse(args).unwrap() {
            Action::Exec(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_stop_at_target() {
        let c = config(&[
            "-e",
            "A=1",
            "-u",
            "65534",
            "web.2",
            "sh",
            "-c",
            "echo -e x",
            "-e",
            "B=2",
        ]);
        assert_eq!(c.target, "web.2");
        assert_eq!(c.spec.cmd, ["sh", "-c", "echo -e x", "-e", "B=2"]);
        assert_eq!(c.spec.env, ["A=1"]);
        assert_eq!(c.spec.user.as_deref(), Some("65534"));
    }

    #[test]
    fn command_flags_pass_through() {
        let c = config(&["web", "ls", "-la", "--", "--help"]);
        assert_eq!(c.spec.cmd, ["ls", "-la", "--", "--help"]);
    }

    #[test]
    fn bad_input() {
        for args in [
            &["web"][..],
            &[][..],
            &["", "true"][..],
            &["-e", "NOEQUALS", "web", "true"][..],
            &["--transport", "carrier-pigeon", "web", "true"][..],
            &["--timeout", "0", "web", "true"][..],
            &["--timeout", "-1", "web", "true"][..],
            &["--timeout", "soon", "web", "true"][..],
            &["--env-file", "/nonexistent/env", "web", "true"][..],
            &["--cleanup", "web"][..],
            &["--install-plugin", "web", "true"][..],
            &["--install-plugin=move"][..],
            &["--node", "w1", "web", "true"][..],
            &["--all", "--parallel", "0", "web", "true"][..],
            &["--all", "--rolling", "--parallel", "2", "web", "true"][..],
            &["--all", "--format", "yaml", "web", "true"][..],
        ] {
            let err = parse(args).expect_err(&format!("{args:?} was accepted"));
            assert_eq!(err.exit_code(), 125, "{args:?}");
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_timeout("NaN").is_err());
        assert!(parse_timeout("inf").is_err());
    }
}
