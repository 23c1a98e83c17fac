//! The docker CLI's global connection flags. `swarm-exec` takes them as
//! its own options; `docker swarmexec` also receives them in front of the
//! plugin's name (`docker -c prod swarmexec …`, see [`crate::plugin`]).

use std::path::PathBuf;

use swarm_exec::context::Flags;

#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct DockerFlags {
    /// The docker context to use (overrides DOCKER_HOST, DOCKER_CONTEXT and `docker context use`).
    #[arg(
        short = 'c',
        long,
        value_name = "NAME",
        help_heading = "Docker connection"
    )]
    pub context: Option<String>,

    /// The engine: unix://PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT] (default: DOCKER_HOST).
    #[arg(
        short = 'H',
        long,
        value_name = "HOST",
        help_heading = "Docker connection"
    )]
    pub host: Option<String>,

    /// The docker CLI's config directory (default: DOCKER_CONFIG or ~/.docker).
    #[arg(
        long = "config",
        value_name = "DIR",
        help_heading = "Docker connection"
    )]
    pub config: Option<PathBuf>,

    /// Use TLS; implied by --tlsverify (also DOCKER_TLS).
    #[arg(long, help_heading = "Docker connection")]
    pub tls: bool,

    /// Use TLS and verify the engine (also DOCKER_TLS_VERIFY).
    #[arg(
        long = "tlsverify",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        help_heading = "Docker connection"
    )]
    pub tls_verify: Option<bool>,

    /// Trust certificates signed only by this CA (default: DOCKER_CERT_PATH/ca.pem).
    #[arg(
        long = "tlscacert",
        value_name = "FILE",
        help_heading = "Docker connection"
    )]
    pub tls_ca: Option<PathBuf>,

    /// The TLS client certificate (default: DOCKER_CERT_PATH/cert.pem).
    #[arg(
        long = "tlscert",
        value_name = "FILE",
        help_heading = "Docker connection"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The TLS client key (default: DOCKER_CERT_PATH/key.pem).
    #[arg(
        long = "tlskey",
        value_name = "FILE",
        help_heading = "Docker connection"
    )]
    pub tls_key: Option<PathBuf>,
}

impl DockerFlags {
    /// These flags, with each one not given here taken from `outer` (the
    /// flags `docker` received in front of the plugin's name).
    pub fn or(self, outer: DockerFlags) -> DockerFlags {
        DockerFlags {
            context: self.context.or(outer.context),
            host: self.host.or(outer.host),
            config: self.config.or(outer.config),
            tls: self.tls || outer.tls,
            tls_verify: self.tls_verify.or(outer.tls_verify),
            tls_ca: self.tls_ca.or(outer.tls_ca),
            tls_cert: self.tls_cert.or(outer.tls_cert),
            tls_key: self.tls_key.or(outer.tls_key),
        }
    }

    /// The flags as the library's endpoint resolution takes them.
    pub fn to_flags(&self) -> Flags {
        Flags {
            context: self.context.clone(),
            host: self.host.clone(),
            config_dir: self.config.clone(),
            tls: self.tls,
            tls_verify: self.tls_verify,
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
        }
    }
}
