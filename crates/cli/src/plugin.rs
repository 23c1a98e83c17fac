//! swarm-exec as a Docker CLI plugin: installed as `docker-swarmexec` in a
//! `cli-plugins` directory, it runs as `docker swarmexec …`.
//!
//! The docker CLI finds plugins by file name, asks each for its metadata
//! (`docker-swarmexec docker-cli-plugin-metadata`), and runs one with its own
//! complete command line: `docker-swarmexec [DOCKER OPTIONS] swarmexec
//! [OPTIONS] TARGET COMMAND…` (docker/cli `cli-plugins/manager`). The same
//! binary under any other name is plain `swarm-exec`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser};
use swarm_exec::{Error, Result};

use crate::args::RawArgs;
use crate::docker_flags::DockerFlags;

/// The plugin's name: `docker swarmexec`. The docker CLI takes only names
/// matching `^[a-z][a-z0-9]*$`.
pub const NAME: &str = "swarmexec";
/// How it is run.
pub const COMMAND: &str = "docker swarmexec";
/// Its file name in a `cli-plugins` directory.
pub const FILE_NAME: &str = "docker-swarmexec";
/// The subcommand the docker CLI runs to list a plugin.
pub const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";

/// What the docker CLI shows for the plugin (`docker info`, `docker --help`).
pub fn metadata() -> serde_json::Value {
    serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "swarm-exec",
        "Version": env!("CARGO_PKG_VERSION"),
        "ShortDescription": "Run a command in a task of a swarm service, on any node",
        "URL": env!("CARGO_PKG_REPOSITORY"),
    })
}

/// How the binary was invoked.
#[derive(Debug, PartialEq)]
pub enum CommandLine {
    /// `docker-swarmexec docker-cli-plugin-metadata`
    Metadata,
    Run(Invocation),
}

/// A command line to run.
#[derive(Debug, PartialEq)]
pub struct Invocation {
    /// swarm-exec's own arguments, the program name first.
    pub args: Vec<OsString>,
    /// The docker CLI's flags given in front of the plugin's name.
    pub docker: DockerFlags,
    /// `docker -D`/`--debug` or `--log-level debug`.
    pub debug: bool,
    /// Run as `docker swarmexec`.
    pub plugin: bool,
}

/// The docker CLI's global options as a plugin receives them.
#[derive(Debug, Parser)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct DockerGlobals {
    #[command(flatten)]
    docker: DockerFlags,
    #[arg(short = 'D', long)]
    debug: bool,
    #[arg(short = 'l', long = "log-level")]
    log_level: Option<String>,
}

/// The docker CLI's global options that take a value (the others are
/// switches), to find where they end and the plugin's name begins.
const VALUE_LONG: &[&str] = &[
    "--config",
    "--context",
    "--host",
    "--log-level",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
];
const VALUE_SHORT: &[char] = &['c', 'H', 'l'];

/// Reads the process's command line: plugin or standalone.
pub fn command_line(argv: Vec<OsString>) -> Result<CommandLine> {
    let program = argv.first().map(Path::new).and_then(Path::file_name);
    if program != Some(OsStr::new(FILE_NAME)) {
        return Ok(CommandLine::Run(Invocation {
            args: argv,
            docker: DockerFlags::default(),
            debug: false,
            plugin: false,
        }));
    }
    if argv.get(1).map(OsString::as_os_str) == Some(OsStr::new(METADATA_COMMAND)) {
        return Ok(CommandLine::Metadata);
    }
    let rest = &argv[1..];
    let Some(at) = plugin_name_at(rest) else {
        return Err(Error::usage(
            "arguments",
            format!(
                "{FILE_NAME} is a Docker CLI plugin: run it as `docker {NAME} …`, or as swarm-exec"
            ),
        ));
    };
    let globals = DockerGlobals::try_parse_from(&rest[..at]).map_err(|e| {
        let msg = e.to_string();
        let first = msg
            .lines()
            .next()
            .unwrap_or("invalid docker options")
            .to_owned();
        Error::usage(
            "docker options",
            first.strip_prefix("error: ").unwrap_or(&first).to_owned(),
        )
    })?;
    let mut args = vec![OsString::from(COMMAND)];
    args.extend_from_slice(&rest[at + 1..]);
    Ok(CommandLine::Run(Invocation {
        args,
        docker: globals.docker,
        debug: globals.debug || globals.log_level.as_deref() == Some("debug"),
        plugin: true,
    }))
}

/// Where the plugin's name stands among the docker CLI's arguments: the
/// first word that is neither an option nor an option's value.
fn plugin_name_at(args: &[OsString]) -> Option<usize> {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_string_lossy();
        if arg == "--" {
            return None;
        }
        let takes_value = if let Some(long) = arg.strip_prefix("--") {
            !long.contains('=') && VALUE_LONG.contains(&arg.as_ref())
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            // `-Dc prod`: switches, then one option whose value is the rest
            // of the word or, when that is empty, the next word.
            match shorts.char_indices().find(|(_, c)| VALUE_SHORT.contains(c)) {
                Some((pos, c)) => pos + c.len_utf8() == shorts.len(),
                None => false,
            }
        } else {
            return (arg == NAME).then_some(i);
        };
        i += if takes_value { 2 } else { 1 };
    }
    None
}

impl Invocation {
    /// Parses swarm-exec's own arguments, as `docker swarmexec` in help and
    /// errors when run as the plugin. Options after the plugin's name win
    /// over the docker options in front of it.
    pub fn parse(self) -> std::result::Result<RawArgs, clap::Error> {
        let mut cmd = RawArgs::command();
        if self.plugin {
            cmd = cmd.name(COMMAND).bin_name(COMMAND).override_usage(
                "docker [DOCKER OPTIONS] swarmexec [OPTIONS] TARGET COMMAND [ARG...]\n       \
                     docker [DOCKER OPTIONS] swarmexec --cleanup",
            );
        }
        let matches = cmd.try_get_matches_from(self.args)?;
        let mut raw = RawArgs::from_arg_matches(&matches)?;
        raw.docker = raw.docker.or(self.docker);
        if self.debug {
            raw.verbose = raw.verbose.max(2);
        }
        Ok(raw)
    }
}

/// How `--install-plugin` puts the binary in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// A copy: stays when this binary is moved or removed.
    Copy,
    /// A symbolic link to this binary: follows its upgrades.
    Link,
}

impl std::str::FromStr for Install {
    type Err = Error;

    fn from_str(s: &str) -> Result<Install> {
        match s {
            "copy" => Ok(Install::Copy),
            "link" => Ok(Install::Link),
            other => Err(Error::usage(
                "--install-plugin",
                format!("unknown way {other:?}: use copy or link"),
            )),
        }
    }
}

/// Installs the running binary as `<config dir>/cli-plugins/docker-swarmexec`
/// and returns that path. The file is replaced atomically, so a `docker
/// swarmexec` running meanwhile is not disturbed.
pub fn install(how: Install, config_dir: &Path) -> Result<PathBuf> {
    let dir = config_dir.join("cli-plugins");
    let dest = dir.join(FILE_NAME);
    let fail = |why: String| Error::Install {
        path: dest.clone(),
        why,
    };
    let exe = std::env::current_exe().map_err(|e| fail(format!("cannot find this binary: {e}")))?;
    std::fs::create_dir_all(&dir).map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let placed = match how {
        Install::Copy => std::fs::copy(&exe, &tmp).and_then(|_| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        }),
        Install::Link => std::os::unix::fs::symlink(&exe, &tmp),
    };
    let placed = placed.and_then(|()| std::fs::rename(&tmp, &dest));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e.to_string()));
    }
    Ok(dest)
}

/// Resolves when the docker CLI that ran this plugin asks it to end.
///
/// The docker CLI passes a socket in `DOCKER_CLI_PLUGIN_SOCKET`; when it is
/// interrupted while its output is not a terminal (so the signal reached
/// only docker), it closes the socket instead of signalling the plugin.
/// Without the variable (standalone, older docker) this never resolves.
pub async fn docker_gone() {
    use tokio::io::AsyncReadExt;
    let Some(addr) = std::env::var_os("DOCKER_CLI_PLUGIN_SOCKET") else {
        return std::future::pending().await;
    };
    let Ok(mut stream) = connect_socket(&addr) else {
        return std::future::pending().await;
    };
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte).await {
            Ok(0) => return,
            Ok(_) => continue,
            Err(_) => return std::future::pending().await,
        }
    }
}

/// Connects to the docker CLI's socket: `@name` is an abstract socket
/// (docker on Linux), anything else a path.
fn connect_socket(addr: &OsStr) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = addr.as_bytes();
    let std_stream = match bytes.strip_prefix(b"@") {
        Some(name) => {
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            std::os::unix::net::UnixStream::connect_addr(&addr)?
        }
        None => std::os::unix::net::UnixStream::connect(addr)?,
    };
    std_stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(std_stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn run(args: &[&str]) -> Invocation {
        match command_line(os(args)).unwrap() {
            CommandLine::Run(inv) => inv,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plugin_names_are_valid_for_docker() {
        let mut chars = NAME.chars();
        assert!(chars.next().unwrap().is_ascii_lowercase());
        assert!(chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(FILE_NAME, format!("docker-{NAME}"));
        assert_eq!(COMMAND, format!("docker {NAME}"));
    }

    #[test]
    fn metadata_subcommand() {
        assert_eq!(
            command_line(os(&["/p/cli-plugins/docker-swarmexec", METADATA_COMMAND])).unwrap(),
            CommandLine::Metadata
        );
        let m = metadata();
        assert_eq!(m["SchemaVersion"], "0.1.0");
        for key in ["Vendor", "Version", "ShortDescription", "URL"] {
            assert!(m[key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
        }
    }

    #[test]
    fn standalone_is_left_alone() {
        let inv = run(&["/usr/bin/swarm-exec", "-c", "prod", "web.1", "true"]);
        assert!(!inv.plugin);
        assert_eq!(
            inv.args,
            os(&["/usr/bin/swarm-exec", "-c", "prod", "web.1", "true"])
        );
    }

    #[test]
    fn docker_options_in_front_of_the_plugin_name() {
        let inv = run(&[
            "docker-swarmexec",
            "-c",
            "prod",
            "--tlsverify",
            "-D",
            "swarmexec",
            "-e",
            "A=1",
            "web.1",
            "swarmexec",
        ]);
        assert!(inv.plugin && inv.debug);
        assert_eq!(inv.docker.context.as_deref(), Some("prod"));
        assert_eq!(inv.docker.tls_verify, Some(true));
        assert_eq!(
            inv.args,
            os(&["docker swarmexec", "-e", "A=1", "web.1", "swarmexec"])
        );
    }

    #[test]
    fn option_values_are_not_the_plugin_name() {
        // A context named like the plugin, attached and combined forms.
        let inv = run(&[
            "docker-swarmexec",
            "--context",
            "swarmexec",
            "swarmexec",
            "w",
            "x",
        ]);
        assert_eq!(inv.docker.context.as_deref(), Some("swarmexec"));
        assert_eq!(inv.args, os(&["docker swarmexec", "w", "x"]));
        let inv = run(&[
            "docker-swarmexec",
            "-Dc",
            "swarmexec",
            "swarmexec",
            "w",
            "x",
        ]);
        assert_eq!(inv.docker.context.as_deref(), Some("swarmexec"));
        assert!(inv.debug);
        let inv = run(&[
            "docker-swarmexec",
            "-cprod",
            "--host=unix:///x",
            "swarmexec",
        ]);
        assert_eq!(inv.docker.context.as_deref(), Some("prod"));
        assert_eq!(inv.docker.host.as_deref(), Some("unix:///x"));
        let inv = run(&[
            "docker-swarmexec",
            "-l",
            "debug",
            "--config",
            "/c",
            "swarmexec",
        ]);
        assert!(inv.debug);
        assert_eq!(inv.docker.config.as_deref(), Some(Path::new("/c")));
    }

    #[test]
    fn plugin_flags_after_the_name_win() {
        let inv = run(&[
            "docker-swarmexec",
            "-H",
            "unix:///outer.sock",
            "--config",
            "/cfg",
            "swarmexec",
            "-H",
            "unix:///inner.sock",
            "web",
            "true",
        ]);
        let raw = inv.parse().unwrap();
        assert_eq!(raw.docker.host.as_deref(), Some("unix:///inner.sock"));
        assert_eq!(raw.docker.config.as_deref(), Some(Path::new("/cfg")));
    }

    #[test]
    fn bad_plugin_command_lines() {
        assert!(command_line(os(&["docker-swarmexec"])).is_err());
        assert!(command_line(os(&["docker-swarmexec", "web.1", "true"])).is_err());
        assert!(command_line(os(&["docker-swarmexec", "--bogus", "swarmexec", "w", "x"])).is_err());
    }

    #[test]
    fn help_names_the_plugin() {
        let err = run(&["docker-swarmexec", "swarmexec", "--help"])
            .parse()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("docker [DOCKER OPTIONS] swarmexec"),
            "{err}"
        );
    }

    #[test]
    fn install_copy_and_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(Install::Copy, dir.path()).unwrap();
        assert_eq!(path, dir.path().join("cli-plugins/docker-swarmexec"));
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        // Linking replaces the copy.
        install(Install::Link, dir.path()).unwrap();
        let target = std::fs::read_link(&path).unwrap();
        assert_eq!(target, std::env::current_exe().unwrap());
        assert_eq!(
            std::fs::read_dir(dir.path().join("cli-plugins"))
                .unwrap()
                .count(),
            1
        );
    }
}
