//! The connection to the Docker engine that swarm-exec talks to, and the
//! check that it is a swarm manager.

use bollard::models::LocalNodeState;
use bollard::Docker;

use crate::context;
use crate::dial::{self, ssh::SshSpec};
use crate::error::{Error, Result};

/// Where the engine is when nothing says otherwise.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Seconds bollard waits for the response headers of one API request.
/// Streams (exec output, logs) are not bounded by it.
const REQUEST_TIMEOUT: u64 = 60;

/// A connected swarm manager.
#[derive(Clone, Debug)]
pub struct Engine {
    pub docker: Docker,
    /// The endpoint as the user gave it, for messages.
    pub host: String,
    /// The swarm node ID of the engine's own node: tasks there are exec'd directly.
    pub node_id: String,
    /// The negotiated API version, e.g. (1, 41).
    pub api: (usize, usize),
}

/// A checked endpoint: what kind, and the address bollard needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(String),
    Tcp(String),
    Ssh(SshSpec),
}

impl Endpoint {
    /// Parses a host: `DOCKER_HOST`, `-H` or a context's.
    pub fn parse(host: &str) -> Result<Endpoint> {
        let bad = |why: &str| Error::BadHost {
            host: host.to_owned(),
            why: why.to_owned(),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad("a unix socket needs an absolute path"));
            }
            return Ok(Endpoint::Unix(path.to_owned()));
        }
        if let Some(addr) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            let addr = addr.trim_end_matches('/');
            let valid = match addr.rsplit_once(':') {
                Some((h, port)) => !h.is_empty() && port.parse::<u16>().is_ok(),
                None => !addr.is_empty() && !addr.contains('/'),
            };
            if !valid {
                return Err(bad("expected tcp://HOST:PORT"));
            }
            // The engine's plain-HTTP port is 2375 when none is given.
            let addr = if addr.contains(':') {
                addr.to_owned()
            } else {
                format!("{addr}:2375")
            };
            return Ok(Endpoint::Tcp(addr));
        }
        if host.starts_with("ssh://") {
            return SshSpec::parse(host)
                .map(Endpoint::Ssh)
                .map_err(|why| bad(&why));
        }
        Err(bad("unknown scheme"))
    }
}

impl Engine {
    /// Connects to `host` (or [`DEFAULT_HOST`]), negotiates the API version
    /// and checks that the engine is a swarm manager.
    pub async fn connect(host: Option<&str>) -> Result<Engine> {
        let host = host.filter(|h| !h.is_empty()).unwrap_or(DEFAULT_HOST);
        Self::connect_to(&context::Endpoint::from_host(
            host,
            context::Source::HostEnv,
        ))
        .await
    }

    /// Connects to a resolved endpoint ([`context::resolve`]): a unix
    /// socket, plain or TLS TCP, or ssh.
    pub async fn connect_to(endpoint: &context::Endpoint) -> Result<Engine> {
        let host = endpoint.describe();
        let host = host.as_str();
        let version = bollard::API_DEFAULT_VERSION;
        let unreachable = |why: String| Error::Unreachable {
            host: host.to_owned(),
            why,
        };
        let docker = match Endpoint::parse(&endpoint.host)? {
            Endpoint::Unix(path) => Docker::connect_with_unix(&path, REQUEST_TIMEOUT, version)
                .map_err(|e| e.to_string()),
            Endpoint::Tcp(addr) => match &endpoint.tls {
                None => Docker::connect_with_http(&addr, REQUEST_TIMEOUT, version)
                    .map_err(|e| e.to_string()),
                Some(tls) => {
                    let dialer =
                        dial::tls::TlsDialer::new(&addr, tls).map_err(|why| Error::Tls {
                            host: host.to_owned(),
                            why,
                        })?;
                    dial::Dialer::Tls(dialer).into_docker(REQUEST_TIMEOUT, version)
                }
            },
            Endpoint::Ssh(spec) => dial::Dialer::Ssh(dial::ssh::SshDialer::new(&spec))
                .into_docker(REQUEST_TIMEOUT, version),
        }
        .map_err(unreachable)?;
        // An old engine refuses a newer client's API version; negotiation
        // costs one request and keeps swarm-exec working across versions.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(crate::error::docker_message(&e)))?;
        let info = docker
            .info()
            .await
            .map_err(|e| unreachable(crate::error::docker_message(&e)))?;
        let swarm = info.swarm.unwrap_or_default();
        let not_manager = |why: &str| Error::NotManager {
            host: host.to_owned(),
            why: why.to_owned(),
        };
        match swarm.local_node_state {
            Some(LocalNodeState::ACTIVE) => {}
            Some(LocalNodeState::LOCKED) => return Err(not_manager("the swarm is locked")),
            _ => return Err(not_manager("it is not part of a swarm")),
        }
        if swarm.control_available != Some(true) {
            return Err(not_manager(
                "it is a worker, and only managers can list tasks",
            ));
        }
        let version = docker.client_version();
        Ok(Engine {
            host: host.to_owned(),
            node_id: swarm.node_id.unwrap_or_default(),
            api: (version.major_version, version.minor_version),
            docker,
        })
    }

    /// Whether the engine speaks at least API `major.minor`.
    pub fn api_at_least(&self, major: usize, minor: usize) -> bool {
        self.api >= (major, minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("unix:///run/d.sock").unwrap(),
            Endpoint::Unix("/run/d.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.1:2376").unwrap(),
            Endpoint::Tcp("10.0.0.1:2376".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://manager").unwrap(),
            Endpoint::Tcp("manager:2375".into())
        );
        for bad in [
            "",
            "unix://rel",
            "tcp://",
            "tcp://:12",
            "tcp://h:notaport",
            "foo://x",
            "/var/run/docker.sock",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Error::BadHost { .. })),
                "{bad:?} was accepted"
            );
        }
        assert!(matches!(
            Endpoint::parse("ssh://me@host"),
            Ok(Endpoint::Ssh(SshSpec { .. }))
        ));
        assert!(matches!(
            Endpoint::parse("ssh://me:pw@host"),
            Err(Error::BadHost { .. })
        ));
    }
}
