//! The one error type of the library, and the exit codes it maps to.

use std::fmt;

/// swarm-exec's documented exit statuses. The command's own status (0–255)
/// is passed through as it is; these are the ones swarm-exec itself picks.
pub mod exit {
    /// `--timeout` expired before the command ended.
    pub const TIMEOUT: u8 = 124;
    /// swarm-exec itself failed: bad input, no engine, no such task, …
    pub const FAILURE: u8 = 125;
    /// Interrupted by SIGINT (128 + 2), as a shell reports it.
    pub const INTERRUPTED: u8 = 130;
    /// Ended by SIGTERM (128 + 15).
    pub const TERMINATED: u8 = 143;
}

/// Everything that can go wrong in swarm-exec itself. Each error renders as
/// one line: what happened and why; [`Error::hint`] adds what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {what}: {why}")]
    Usage { what: String, why: String },

    #[error("{host:?} is not a Docker endpoint: {why}")]
    BadHost { host: String, why: String },

    #[error("cannot use docker context {name:?}: {why}")]
    Context { name: String, why: String },

    #[error("cannot set up TLS for {host}: {why}")]
    Tls { host: String, why: String },

    #[error("cannot install the docker plugin as {}: {why}", path.display())]
    Install {
        path: std::path::PathBuf,
        why: String,
    },

    #[error("cannot reach the Docker engine at {host}: {why}")]
    Unreachable { host: String, why: String },

    #[error("the engine at {host} is not a swarm manager: {why}")]
    NotManager { host: String, why: String },

    #[error("no service or task matches {target:?}")]
    NoSuchTarget { target: String },

    #[error("{target:?} is ambiguous: it matches {matches}")]
    Ambiguous { target: String, matches: String },

    #[error("{target} is not running: {why}")]
    NotRunning { target: String, why: String },

    #[error("{what} is not supported: {why}")]
    Unsupported { what: String, why: String },

    #[error("the helper task on {node} failed: {why}")]
    Helper { node: String, why: String },

    #[error("the relay to {node} cannot be set up: {why}")]
    RelayUnavailable { node: String, why: String },

    #[error("the output of the helper task on {node} is incomplete: {why}")]
    OutputLost { node: String, why: String },

    #[error("{action} failed: {why}")]
    Docker { action: String, why: String },

    #[error("timed out after {seconds} s")]
    Timeout { seconds: f64 },

    #[error("interrupted by {signal}")]
    Interrupted { signal: Signal },

    #[error("writing the output failed: {0}")]
    Output(#[source] std::io::Error),
}

/// The signals that end a session early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    Hangup,
}

impl Signal {
    /// The signal for a number: SIGTERM and SIGHUP by name, anything else
    /// counts as an interrupt.
    pub fn from_number(n: i32) -> Signal {
        match n {
            15 => Signal::Terminate,
            1 => Signal::Hangup,
            _ => Signal::Interrupt,
        }
    }

    /// The signal's number.
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
            Signal::Hangup => 1,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        })
    }
}

impl Error {
    /// The exit status for this error: the single place that decides it.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Timeout { .. } => exit::TIMEOUT,
            Error::Interrupted {
                signal: Signal::Interrupt,
            } => exit::INTERRUPTED,
            Error::Interrupted {
                signal: Signal::Terminate,
            } => exit::TERMINATED,
            Error::Interrupted {
                signal: Signal::Hangup,
            } => 129,
            _ => exit::FAILURE,
        }
    }

    /// What the user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::Usage { .. } => "see swarm-exec --help",
            Error::BadHost { .. } => {
                "use unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]"
            }
            Error::Context { .. } => "docker context ls lists the contexts",
            Error::Install { .. } => {
                "use --config DIR or DOCKER_CONFIG for another directory, or install by hand"
            }
            Error::Tls { .. } => {
                "check the ca.pem, cert.pem and key.pem of the context or of DOCKER_CERT_PATH"
            }
            Error::Unreachable { .. } => {
                "check the endpoint (-H, DOCKER_HOST or the docker context) and that dockerd runs there"
            }
            Error::NotManager { .. } => {
                "point DOCKER_HOST at a manager node (docker node ls shows them)"
            }
            Error::NoSuchTarget { .. } => {
                "use a task ID, SERVICE.SLOT, SERVICE.NODE or SERVICE (docker service ps SERVICE)"
            }
            Error::Ambiguous { .. } => "name one task: SERVICE.SLOT, or pass --any",
            Error::NotRunning { .. } => "docker service ps SERVICE shows the task states",
            Error::Helper { .. } => {
                "swarm-exec -v shows each step; --helper-image IMAGE uses another image"
            }
            Error::RelayUnavailable { .. } => {
                "the relay needs an attachable overlay network (or a host port) between the nodes; try --transport helper"
            }
            Error::OutputLost { .. } => {
                "rerun the command; the node's log driver may be dropping lines"
            }
            Error::Unsupported { .. } => return None,
            Error::Docker { .. } => return None,
            Error::Timeout { .. } | Error::Interrupted { .. } | Error::Output(_) => return None,
        })
    }

    /// Wraps an Engine API error with what swarm-exec was doing.
    pub fn docker(action: impl Into<String>, err: bollard::errors::Error) -> Error {
        Error::Docker {
            action: action.into(),
            why: docker_message(&err),
        }
    }

    pub fn usage(what: impl Into<String>, why: impl Into<String>) -> Error {
        Error::Usage {
            what: what.into(),
            why: why.into(),
        }
    }
}

/// The engine's own message for an API error, without bollard's wrapping.
pub fn docker_message(err: &bollard::errors::Error) -> String {
    match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            message.trim().to_owned()
        }
        other => other.to_string(),
    }
}

/// The HTTP status of an Engine API error, when the engine answered.
pub fn docker_status(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
