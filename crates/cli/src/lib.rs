//! The command line of swarm-exec. The binary (`main.rs`) wires it to the
//! library; `examples/gen-docs.rs` renders the shell completions and the
//! man page from the same clap definition ([`args::RawArgs`]).

pub mod args;
pub mod docker_flags;
pub mod plugin;
pub mod progress;
