//! `ssh://[user@]host[:port][/socket]` endpoints, the way the docker CLI
//! reaches them (docker/cli `cli/connhelper`): every connection is one
//! `ssh -l USER -p PORT -o ConnectTimeout=30 -T -- HOST docker system
//! dial-stdio`, whose stdin and stdout carry the Engine API. ssh itself
//! supplies keys, agents, known hosts and `~/.ssh/config`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// A checked `ssh://` endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The engine socket on the remote host, when not the default.
    pub path: Option<String>,
}

impl SshSpec {
    /// Parses `ssh://[user@]host[:port][/path]` with the docker CLI's rules:
    /// no password, no query, no fragment.
    pub fn parse(url: &str) -> Result<SshSpec, String> {
        let rest = url.strip_prefix("ssh://").ok_or("expected ssh://")?;
        if rest.contains('?') {
            return Err("query parameters are not allowed".into());
        }
        if rest.contains('#') {
            return Err("fragments are not allowed".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hp)) => {
                if user.contains(':') {
                    return Err("a plain-text password is not supported".into());
                }
                if user.is_empty() {
                    return Err("the user name is empty".into());
                }
                (Some(user.to_owned()), hp)
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("the host name is empty".into());
        }
        // ssh would take a leading '-' as an option; spaces and controls
        // are never part of a host or user name.
        let plain = |s: &str| {
            !s.starts_with('-') && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if !plain(host) || !user.as_deref().is_none_or(plain) {
            return Err("the host or user name has characters ssh cannot take".into());
        }
        let port = match port {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("{p:?} is not a port"))?,
            ),
        };
        let path = path
            .filter(|p| !p.trim_matches('/').is_empty())
            .map(str::to_owned);
        Ok(SshSpec {
            user,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// ssh's arguments, as docker/cli `connhelper` builds them.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(user) = &self.user {
            args.extend(["-l".to_owned(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        args.extend(["-o", "ConnectTimeout=30", "-T", "--"].map(String::from));
        args.push(self.host.clone());
        let mut remote = vec!["docker".to_owned()];
        if let Some(path) = &self.path {
            remote.push(format!("--host=unix://{path}"));
        }
        remote.extend(["system".to_owned(), "dial-stdio".to_owned()]);
        // ssh hands the remote command to the remote user's shell.
        args.push(
            remote
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        );
        args
    }
}

/// POSIX-shell quoting: as is when harmless, else in single quotes.
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Opens connections by running ssh.
#[derive(Clone, Debug)]
pub struct SshDialer {
    args: Arc<Vec<String>>,
}

impl SshDialer {
    pub fn new(spec: &SshSpec) -> SshDialer {
        SshDialer {
            args: Arc::new(spec.args()),
        }
    }

    pub(crate) async fn dial(&self) -> io::Result<CommandStream> {
        tracing::debug!("ssh {}", self.args.join(" "));
        let mut cmd = Command::new("ssh");
        cmd.args(self.args.iter())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // In a session of its own, as the docker CLI runs it: Ctrl-C at the
        // terminal reaches swarm-exec only, which still needs the connection
        // to clean up; and ssh cannot stop the run waiting on a terminal
        // prompt (without a terminal it fails, or uses SSH_ASKPASS).
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of
        // the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run ssh ({e}); ssh:// endpoints need the OpenSSH client"),
            )
        })?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(io::Error::other("ssh started without its pipes"));
        };
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        });
        Ok(CommandStream {
            stdin,
            stdout,
            stderr: Some(stderr),
            got_data: false,
            _child: child,
        })
    }
}

/// A running `ssh … dial-stdio`: its stdout read, its stdin written.
pub struct CommandStream {
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// ssh's stderr, complete once ssh has exited.
    stderr: Option<JoinHandle<String>>,
    got_data: bool,
    /// Killed when the connection is dropped.
    _child: Child,
}

/// ssh's last words, for an error message.
fn last_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(2)..];
    if tail.is_empty() {
        "ssh ended without a word".into()
    } else {
        tail.join("; ")
    }
}

impl AsyncRead for CommandStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stdout).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.got_data = true;
            return Poll::Ready(Ok(()));
        }
        if this.got_data {
            return Poll::Ready(Ok(()));
        }
        // ssh ended before the engine said a word: its stderr says why
        // (refused, host key, authentication, no docker on the host…).
        let Some(stderr) = this.stderr.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let text = ready!(Pin::new(stderr).poll(cx)).unwrap_or_default();
        this.stderr = None;
        let why = last_lines(&text);
        let why = if why.starts_with("ssh:") {
            why
        } else {
            format!("ssh: {why}")
        };
        Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)))
    }
}

impl AsyncWrite for CommandStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stdin).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> SshSpec {
        SshSpec::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn urls() {
        assert_eq!(
            spec("ssh://root@10.211.0.21:2222"),
            SshSpec {
                user: Some("root".into()),
                host: "10.211.0.21".into(),
                port: Some(2222),
                path: None
            }
        );
        assert_eq!(spec("ssh://node").user, None);
        assert_eq!(spec("ssh://[::1]:22").host, "::1");
        assert_eq!(spec("ssh://me@h/").path, None);
        assert_eq!(
            spec("ssh://me@h/run/user/1000/docker.sock").path.as_deref(),
            Some("/run/user/1000/docker.sock")
        );
        for bad in [
            "ssh://",
            "ssh://me:secret@h",
            "ssh://h?x=1",
            "ssh://h#f",
            "ssh://h:port",
            "ssh://-oProxyCommand=x",
            "ssh://@h",
        ] {
            assert!(SshSpec::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn args_as_docker_builds_them() {
        assert_eq!(
            spec("ssh://root@w1:2222").args(),
            [
                "-l",
                "root",
                "-p",
                "2222",
                "-o",
                "ConnectTimeout=30",
                "-T",
                "--",
                "w1",
                "docker system dial-stdio"
            ]
        );
        assert_eq!(
            spec("ssh://w1/run/my docker.sock").args().last().unwrap(),
            "docker '--host=unix:///run/my docker.sock' system dial-stdio"
        );
    }

    #[test]
    fn ssh_failures_keep_their_last_lines() {
        assert_eq!(
            last_lines("Warning: added key\nroot@w1: Permission denied (publickey).\n"),
            "Warning: added key; root@w1: Permission denied (publickey)."
        );
        assert_eq!(last_lines(""), "ssh ended without a word");
    }
}
