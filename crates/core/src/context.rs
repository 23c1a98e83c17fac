//! Which Docker engine to talk to, decided the way the docker CLI decides it
//! (docker/cli `cli/command/cli.go`), so that `swarm-exec` and `docker
//! swarmexec` reach the engine `docker` itself would:
//!
//! 1. `-c/--context NAME`; `-H/--host` (with `--context`: an error);
//! 2. `DOCKER_HOST`: the default context;
//! 3. `DOCKER_CONTEXT`;
//! 4. `currentContext` in `config.json` (`docker context use`);
//! 5. the default context: `DOCKER_HOST` or `/var/run/docker.sock`, with the
//!    `--tls*` flags, `DOCKER_TLS`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`.
//!
//! The config directory is `--config`, `DOCKER_CONFIG` or `~/.docker`. A
//! context is `contexts/meta/<sha256(name)>/meta.json`, its TLS material
//! `contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem`.
//!
//! Everything here reads files and an environment given to it, and talks to
//! nothing, so it is tested without an engine.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The name of the context that is not stored: flags and environment.
pub const DEFAULT_CONTEXT: &str = "default";
/// The engine of the default context when nothing names one.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// The default context's engine with TLS on and no host given.
const DEFAULT_TLS_HOST: &str = "tcp://localhost:2376";

/// The docker CLI's global connection flags, as given (each `None`/`false`
/// when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `-c/--context`
    pub context: Option<String>,
    /// `-H/--host`
    pub host: Option<String>,
    /// `--config`: the config directory.
    pub config_dir: Option<PathBuf>,
    /// `--tls`
    pub tls: bool,
    /// `--tlsverify[=BOOL]`; given at all, it turns TLS on (as in docker).
    pub tls_verify: Option<bool>,
    /// `--tlscacert`, `--tlscert`, `--tlskey`
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// The endpoint to connect to, resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `default` or the name of a stored context.
    pub context: String,
    /// `unix://…`, `tcp://…` or `ssh://…`.
    pub host: String,
    /// TLS for a `tcp://` host; `None` is plain HTTP.
    pub tls: Option<Tls>,
    /// What chose the endpoint, for messages.
    pub source: Source,
}

/// What chose the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `-H/--host`
    HostFlag,
    /// `DOCKER_HOST`
    HostEnv,
    /// `-c/--context`
    ContextFlag,
    /// `DOCKER_CONTEXT`
    ContextEnv,
    /// `currentContext` in config.json
    ConfigFile,
    /// Nothing: the default socket.
    Default,
}

/// TLS material as PEM bytes, and whether to verify the engine's certificate.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    pub skip_verify: bool,
}

// Key material stays out of debug output (`-vv` logs, panics in tests).
impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .field("cert", &self.cert.as_ref().map(Vec::len))
            .field("key", &self.key.as_ref().map(|_| "…"))
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("context", &self.context)
            .field("host", &self.host)
            .field("tls", &self.tls)
            .field("source", &self.source)
            .finish()
    }
}

impl Endpoint {
    /// The endpoint for a bare host string (no context, no TLS).
    pub fn from_host(host: &str, source: Source) -> Endpoint {
        Endpoint {
            context: DEFAULT_CONTEXT.into(),
            host: host.to_owned(),
            tls: None,
            source,
        }
    }

    /// How the endpoint reads in a message: `tcp://h:2376 (context prod)`.
    pub fn describe(&self) -> String {
        match self.source {
            Source::ContextFlag | Source::ContextEnv | Source::ConfigFile => {
                format!("{} (context {})", self.host, self.context)
            }
            _ => self.host.clone(),
        }
    }
}

/// The environment resolution reads: a variable lookup. Empty values count
/// as unset, as in the docker CLI.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn var(env: Env, key: &str) -> Option<String> {
    env(key).filter(|v| !v.is_empty())
}

/// The process environment, for [`resolve`].
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The docker CLI's config directory: `--config`, `DOCKER_CONFIG`, or
/// `~/.docker`.
pub fn config_dir(flag: Option<&Path>, env: Env) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    env_config_dir(env)
}

/// `DOCKER_CONFIG` or `~/.docker`, ignoring `--config` (the docker CLI takes
/// its default `DOCKER_CERT_PATH` from this one).
fn env_config_dir(env: Env) -> Result<PathBuf> {
    if let Some(dir) = var(env, "DOCKER_CONFIG") {
        return Ok(PathBuf::from(dir));
    }
    match var(env, "HOME") {
        Some(home) => Ok(Path::new(&home).join(".docker")),
        None => Err(Error::Context {
            name: DEFAULT_CONTEXT.into(),
            why: "neither DOCKER_CONFIG nor HOME is set, so there is no config directory".into(),
        }),
    }
}

/// The directory of a stored context's files: the sha256 of its name, as
/// the docker CLI names it.
pub fn context_dir_name(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// Decides the endpoint from the flags and the environment.
pub fn resolve(flags: &Flags, env: Env) -> Result<Endpoint> {
    if flags.context.is_some() && flags.host.is_some() {
        return Err(Error::usage(
            "--host",
            "it cannot go with --context: a context names its own host",
        ));
    }
    let config = config_dir(flags.config_dir.as_deref(), env)?;
    let (name, source) = context_name(flags, env, &config);
    if name == DEFAULT_CONTEXT {
        return default_endpoint(flags, env, source);
    }
    stored_endpoint(&config, &name, source)
}

/// The context name and what chose it (docker/cli `resolveContextName`).
fn context_name(flags: &Flags, env: Env, config: &Path) -> (String, Source) {
    if let Some(name) = flags.context.as_deref().filter(|n| !n.is_empty()) {
        return (name.to_owned(), Source::ContextFlag);
    }
    if flags.host.is_some() {
        return (DEFAULT_CONTEXT.into(), Source::HostFlag);
    }
    if var(env, "DOCKER_HOST").is_some() {
        return (DEFAULT_CONTEXT.into(), Source::HostEnv);
    }
    if let Some(name) = var(env, "DOCKER_CONTEXT") {
        return (name, Source::ContextEnv);
    }
    if let Some(name) = current_context(config) {
        return (name, Source::ConfigFile);
    }
    (DEFAULT_CONTEXT.into(), Source::Default)
}

/// `currentContext` from `config.json`. Like the docker CLI, an unreadable
/// or invalid config file is warned about and then treated as empty.
fn current_context(config: &Path) -> Option<String> {
    let path = config.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", path.display());
            return None;
        }
    };
    #[derive(Deserialize)]
    struct ConfigFile {
        #[serde(rename = "currentContext", default)]
        current_context: String,
    }
    match serde_json::from_str::<ConfigFile>(&text) {
        Ok(c) if !c.current_context.is_empty() => Some(c.current_context),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", path.display());
            None
        }
    }
}

/// The default context: `-H` or `DOCKER_HOST` (or the default socket), with
/// TLS from the flags and environment (docker/cli `resolveDefaultDockerEndpoint`
/// and `ClientOptions.SetDefaultOptions`).
fn default_endpoint(flags: &Flags, env: Env, source: Source) -> Result<Endpoint> {
    let verify = flags
        .tls_verify
        .unwrap_or_else(|| var(env, "DOCKER_TLS_VERIFY").is_some());
    let tls_on =
        flags.tls || var(env, "DOCKER_TLS").is_some() || flags.tls_verify.is_some() || verify;
    let host = flags
        .host
        .clone()
        .or_else(|| var(env, "DOCKER_HOST"))
        .unwrap_or_else(|| {
            if tls_on {
                DEFAULT_TLS_HOST.into()
            } else {
                DEFAULT_HOST.into()
            }
        });
    let tls = if tls_on {
        let certs = match var(env, "DOCKER_CERT_PATH") {
            Some(dir) => PathBuf::from(dir),
            None => env_config_dir(env)?,
        };
        // The CA is always read (a missing ca.pem is an error, as in docker);
        // the client certificate and key only when given or present.
        let ca = flags.tls_ca.clone().unwrap_or_else(|| certs.join("ca.pem"));
        let optional = |flag: &Option<PathBuf>, file: &str| match flag {
            Some(path) => Some(path.clone()),
            None => Some(certs.join(file)).filter(|p| p.exists()),
        };
        let cert = optional(&flags.tls_cert, "cert.pem");
        let key = optional(&flags.tls_key, "key.pem");
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| Error::Tls {
                host: host.clone(),
                why: format!("reading {}: {e}", path.display()),
            })
        };
        Some(Tls {
            ca: Some(read(&ca)?),
            cert: cert.as_deref().map(read).transpose()?,
            key: key.as_deref().map(read).transpose()?,
            skip_verify: !verify,
        })
    } else {
        None
    };
    Ok(Endpoint {
        context: DEFAULT_CONTEXT.into(),
        host,
        tls,
        source,
    })
}

/// A stored context's `meta.json`: only the docker endpoint matters here.
#[derive(Debug, Deserialize)]
pub struct Meta {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Endpoints", default)]
    pub endpoints: BTreeMap<String, serde_json::Value>,
}

/// The `docker` endpoint of a context.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct DockerEndpointMeta {
    #[serde(rename = "Host", default)]
    pub host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    pub skip_tls_verify: bool,
}

impl Meta {
    /// Parses a `meta.json`.
    pub fn parse(text: &str) -> std::result::Result<Meta, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The docker endpoint; a context made for another tool has none.
    pub fn docker(&self) -> std::result::Result<DockerEndpointMeta, String> {
        let ep = self
            .endpoints
            .get("docker")
            .ok_or("it has no docker endpoint")?;
        DockerEndpointMeta::deserialize(ep).map_err(|e| format!("its docker endpoint: {e}"))
    }
}

/// A context from the store (docker/cli `resolveDockerEndpoint`).
fn stored_endpoint(config: &Path, name: &str, source: Source) -> Result<Endpoint> {
    let bad = |why: String| Error::Context {
        name: name.to_owned(),
        why,
    };
    let dir = context_dir_name(name);
    let meta_path = config.join("contexts/meta").join(&dir).join("meta.json");
    let text = match std::fs::read_to_string(&meta_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(format!(
                "it does not exist (no {})",
                meta_path.display()
            )))
        }
        Err(e) => return Err(bad(format!("reading {}: {e}", meta_path.display()))),
    };
    let meta = Meta::parse(&text).map_err(|e| bad(format!("{}: {e}", meta_path.display())))?;
    let docker = meta.docker().map_err(bad)?;
    // A context without a host means the client's default, the local socket.
    let host = if docker.host.is_empty() {
        DEFAULT_HOST.to_owned()
    } else {
        docker.host
    };
    let tls_dir = config.join("contexts/tls").join(&dir).join("docker");
    let read = |file: &str| -> Result<Option<Vec<u8>>> {
        match std::fs::read(tls_dir.join(file)) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(bad(format!(
                "reading {}: {e}",
                tls_dir.join(file).display()
            ))),
        }
    };
    let (ca, cert, key) = (read("ca.pem")?, read("cert.pem")?, read("key.pem")?);
    let has_files = ca.is_some() || cert.is_some() || key.is_some();
    // As in the docker CLI, a context speaks TLS when it has TLS files or
    // skips verification; otherwise a tcp:// host is plain HTTP.
    let tls = (has_files || docker.skip_tls_verify).then_some(Tls {
        ca,
        cert,
        key,
        skip_verify: docker.skip_tls_verify,
    });
    Ok(Endpoint {
        context: name.to_owned(),
        host,
        tls,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A temporary DOCKER_CONFIG and an environment that points at it.
    struct Fixture {
        dir: tempfile::TempDir,
        vars: HashMap<String, String>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let mut vars = HashMap::new();
            vars.insert("DOCKER_CONFIG".to_owned(), dir.path().display().to_string());
            vars.insert("HOME".to_owned(), "/nonexistent-home".to_owned());
            Fixture { dir, vars }
        }

        fn set(&mut self, k: &str, v: &str) -> &mut Self {
            self.vars.insert(k.into(), v.into());
            self
        }

        fn context(&self, name: &str, host: &str, tls: &[(&str, &str)]) {
            let d = self
                .dir
                .path()
                .join("contexts/meta")
                .join(context_dir_name(name));
            std::fs::create_dir_all(&d).unwrap();
            let meta = serde_json::json!({
                "Name": name,
                "Metadata": {"Description": ""},
                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
            });
            std::fs::write(d.join("meta.json"), meta.to_string()).unwrap();
            if !tls.is_empty() {
                let t = self
                    .dir
                    .path()
                    .join("contexts/tls")
                    .join(context_dir_name(name))
                    .join("docker");
                std::fs::create_dir_all(&t).unwrap();
                for (f, data) in tls {
                    std::fs::write(t.join(f), data).unwrap();
                }
            }
        }

        fn use_context(&self, name: &str) {
            std::fs::write(
                self.dir.path().join("config.json"),
                format!(r#"{{"auths":{{}},"currentContext":"{name}"}}"#),
            )
            .unwrap();
        }

        fn resolve(&self, flags: &Flags) -> Result<Endpoint> {
            let env = |k: &str| self.vars.get(k).cloned();
            resolve(flags, &env)
        }
    }

    fn flags_context(name: &str) -> Flags {
        Flags {
            context: Some(name.into()),
            ..Flags::default()
        }
    }

    #[test]
    fn directory_names_are_sha256_of_the_name() {
        // `docker context create prod` stores it under this directory.
        assert_eq!(
            context_dir_name("prod"),
            "6754af9632a2745e85c293e5aac0863370d9bd3330b9938c00cadfd215227d77"
        );
    }

    #[test]
    fn nothing_set_is_the_default_socket() {
        let f = Fixture::new();
        let ep = f.resolve(&Flags::default()).unwrap();
        assert_eq!(ep.host, DEFAULT_HOST);
        assert_eq!(ep.context, "default");
        assert_eq!(ep.source, Source::Default);
        assert!(ep.tls.is_none());
    }

    #[test]
    fn resolution_order() {
        let mut f = Fixture::new();
        f.context("flag", "tcp://flag:2375", &[]);
        f.context("env", "tcp://env:2375", &[]);
        f.context("used", "tcp://used:2375", &[]);
        f.use_context("used");

        // 4. config.json's currentContext.
        assert_eq!(
            f.resolve(&Flags::default()).unwrap().host,
            "tcp://used:2375"
        );
        // 3. DOCKER_CONTEXT beats it.
        f.set("DOCKER_CONTEXT", "env");
        let ep = f.resolve(&Flags::default()).unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.source),
            ("tcp://env:2375", Source::ContextEnv)
        );
        // 2. DOCKER_HOST beats both: the default context.
        f.set("DOCKER_HOST", "tcp://dockerhost:2375");
        let ep = f.resolve(&Flags::default()).unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.context.as_str()),
            ("tcp://dockerhost:2375", "default")
        );
        // 1. -H and --context beat everything.
        let ep = f
            .resolve(&Flags {
                host: Some("unix:///h.sock".into()),
                ..Flags::default()
            })
            .unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.source),
            ("unix:///h.sock", Source::HostFlag)
        );
        let ep = f.resolve(&flags_context("flag")).unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.source),
            ("tcp://flag:2375", Source::ContextFlag)
        );
        // `--context default` is DOCKER_HOST's endpoint.
        assert_eq!(
            f.resolve(&flags_context("default")).unwrap().host,
            "tcp://dockerhost:2375"
        );
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let mut f = Fixture::new();
        f.context("used", "tcp://used:2375", &[]);
        f.use_context("used");
        f.set("DOCKER_HOST", "").set("DOCKER_CONTEXT", "");
        assert_eq!(
            f.resolve(&Flags::default()).unwrap().host,
            "tcp://used:2375"
        );
    }

    #[test]
    fn host_and_context_conflict() {
        let f = Fixture::new();
        let err = f
            .resolve(&Flags {
                host: Some("tcp://a:1".into()),
                context: Some("b".into()),
                ..Flags::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("--context"), "{err}");
    }

    #[test]
    fn config_flag_beats_docker_config() {
        let f = Fixture::new();
        let other = tempfile::tempdir().unwrap();
        let d = other
            .path()
            .join("contexts/meta")
            .join(context_dir_name("x"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("meta.json"),
            r#"{"Name":"x","Endpoints":{"docker":{"Host":"ssh://me@x"}}}"#,
        )
        .unwrap();
        let ep = f
            .resolve(&Flags {
                context: Some("x".into()),
                config_dir: Some(other.path().to_owned()),
                ..Flags::default()
            })
            .unwrap();
        assert_eq!(ep.host, "ssh://me@x");
        // Without --config the same name is not found.
        assert!(matches!(
            f.resolve(&flags_context("x")),
            Err(Error::Context { .. })
        ));
    }

    #[test]
    fn home_docker_is_the_default_config_dir() {
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join(".docker");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("config.json"), r#"{"currentContext":"gone"}"#).unwrap();
        let vars: HashMap<&str, String> = [("HOME", home.path().display().to_string())].into();
        let env = |k: &str| vars.get(k).cloned();
        let err = resolve(&Flags::default(), &env).unwrap_err();
        assert!(
            matches!(&err, Error::Context { name, .. } if name == "gone"),
            "{err}"
        );
    }

    #[test]
    fn missing_and_broken_contexts() {
        let f = Fixture::new();
        let err = f.resolve(&flags_context("nope")).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");

        let d = f
            .dir
            .path()
            .join("contexts/meta")
            .join(context_dir_name("bad"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("meta.json"), "{not json").unwrap();
        assert!(matches!(
            f.resolve(&flags_context("bad")),
            Err(Error::Context { .. })
        ));

        std::fs::write(
            d.join("meta.json"),
            r#"{"Name":"bad","Endpoints":{"kubernetes":{}}}"#,
        )
        .unwrap();
        let err = f.resolve(&flags_context("bad")).unwrap_err();
        assert!(err.to_string().contains("no docker endpoint"), "{err}");
    }

    #[test]
    fn invalid_config_json_is_ignored() {
        let f = Fixture::new();
        std::fs::write(f.dir.path().join("config.json"), "{{{").unwrap();
        assert_eq!(f.resolve(&Flags::default()).unwrap().host, DEFAULT_HOST);
    }

    #[test]
    fn meta_json_as_docker_writes_it() {
        // `docker context create tb --docker host=tcp://10.0.0.1:2376,skip-tls-verify=true`
        let text = r#"{"Name":"tb","Metadata":{"Description":"lab"},"Endpoints":{"docker":{"Host":"tcp://10.0.0.1:2376","SkipTLSVerify":true}}}"#;
        let meta = Meta::parse(text).unwrap();
        assert_eq!(meta.name, "tb");
        assert_eq!(
            meta.docker().unwrap(),
            DockerEndpointMeta {
                host: "tcp://10.0.0.1:2376".into(),
                skip_tls_verify: true
            }
        );
        // Fields docker leaves out when empty.
        let meta = Meta::parse(
            r#"{"Name":"x","Metadata":null,"Endpoints":{"docker":{"SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        assert_eq!(meta.docker().unwrap().host, "");
    }

    #[test]
    fn context_tls_files() {
        let f = Fixture::new();
        f.context(
            "secure",
            "tcp://10.0.0.1:2376",
            &[("ca.pem", "CA"), ("cert.pem", "CERT"), ("key.pem", "KEY")],
        );
        let tls = f.resolve(&flags_context("secure")).unwrap().tls.unwrap();
        assert_eq!(tls.ca.as_deref(), Some(&b"CA"[..]));
        assert_eq!(tls.cert.as_deref(), Some(&b"CERT"[..]));
        assert_eq!(tls.key.as_deref(), Some(&b"KEY"[..]));
        assert!(!tls.skip_verify);

        // No TLS files and verification on: plain HTTP, as docker does it.
        f.context("plain", "tcp://10.0.0.1:2375", &[]);
        assert!(f.resolve(&flags_context("plain")).unwrap().tls.is_none());
        // DOCKER_TLS_VERIFY is for the default context only.
        let mut f2 = Fixture::new();
        f2.context("plain", "tcp://10.0.0.1:2375", &[]);
        f2.set("DOCKER_TLS_VERIFY", "1");
        assert!(f2.resolve(&flags_context("plain")).unwrap().tls.is_none());
    }

    #[test]
    fn default_context_tls_from_the_environment() {
        let mut f = Fixture::new();
        let certs = tempfile::tempdir().unwrap();
        std::fs::write(certs.path().join("ca.pem"), "CA").unwrap();
        std::fs::write(certs.path().join("cert.pem"), "CERT").unwrap();
        std::fs::write(certs.path().join("key.pem"), "KEY").unwrap();
        f.set("DOCKER_HOST", "tcp://10.0.0.1:2376")
            .set("DOCKER_TLS_VERIFY", "1")
            .set("DOCKER_CERT_PATH", &certs.path().display().to_string());
        let ep = f.resolve(&Flags::default()).unwrap();
        let tls = ep.tls.unwrap();
        assert_eq!(tls.ca.as_deref(), Some(&b"CA"[..]));
        assert_eq!(tls.key.as_deref(), Some(&b"KEY"[..]));
        assert!(!tls.skip_verify);

        // --tlsverify=false still means TLS, without verification.
        let ep = f
            .resolve(&Flags {
                tls_verify: Some(false),
                ..Flags::default()
            })
            .unwrap();
        assert!(ep.tls.unwrap().skip_verify);

        // Without a client certificate in DOCKER_CERT_PATH: TLS with the CA only.
        std::fs::remove_file(certs.path().join("cert.pem")).unwrap();
        std::fs::remove_file(certs.path().join("key.pem")).unwrap();
        let tls = f.resolve(&Flags::default()).unwrap().tls.unwrap();
        assert!(tls.cert.is_none() && tls.key.is_none());

        // A missing CA is an error, as in docker.
        std::fs::remove_file(certs.path().join("ca.pem")).unwrap();
        assert!(matches!(
            f.resolve(&Flags::default()),
            Err(Error::Tls { .. })
        ));
    }

    #[test]
    fn tls_without_a_host_is_localhost_2376() {
        let mut f = Fixture::new();
        std::fs::write(f.dir.path().join("ca.pem"), "CA").unwrap();
        f.set("DOCKER_TLS", "1");
        let ep = f.resolve(&Flags::default()).unwrap();
        assert_eq!(ep.host, "tcp://localhost:2376");
        // DOCKER_CERT_PATH defaults to the config directory.
        assert_eq!(ep.tls.unwrap().ca.as_deref(), Some(&b"CA"[..]));
    }

    #[test]
    fn tls_flags() {
        let f = Fixture::new();
        let certs = tempfile::tempdir().unwrap();
        let ca = certs.path().join("my-ca.pem");
        std::fs::write(&ca, "MYCA").unwrap();
        let ep = f
            .resolve(&Flags {
                host: Some("tcp://h:2376".into()),
                tls_verify: Some(true),
                tls_ca: Some(ca),
                ..Flags::default()
            })
            .unwrap();
        let tls = ep.tls.unwrap();
        assert_eq!(tls.ca.as_deref(), Some(&b"MYCA"[..]));
        assert!(tls.cert.is_none());
        // An explicit --tlscert that does not exist is an error.
        assert!(f
            .resolve(&Flags {
                tls: true,
                tls_ca: Some(certs.path().join("my-ca.pem")),
                tls_cert: Some(certs.path().join("none.pem")),
                ..Flags::default()
            })
            .is_err());
    }
}
