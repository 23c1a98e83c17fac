//! The ways an exec reaches a task's container.

pub mod helper;
pub mod local;
pub mod relay;

use std::fmt;
use std::str::FromStr;

/// Which path an exec takes (`--transport`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// `local` for a task on the engine's own node; otherwise `relay`, or
    /// `helper` when the relay cannot be set up and the session is not
    /// interactive.
    #[default]
    Auto,
    /// Straight through the Engine API; only for tasks on the engine's node.
    Local,
    /// A one-shot helper task on the task's node; output through service logs.
    Helper,
    /// A helper task on the task's node and a relay container on the
    /// engine's node: duplex and encrypted (stdin, TTY).
    Relay,
}

impl FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Transport::Auto),
            "local" => Ok(Transport::Local),
            "helper" => Ok(Transport::Helper),
            "relay" => Ok(Transport::Relay),
            other => Err(format!(
                "unknown transport {other:?}: use auto, local, helper or relay"
            )),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Auto => "auto",
            Transport::Local => "local",
            Transport::Helper => "helper",
            Transport::Relay => "relay",
        })
    }
}
