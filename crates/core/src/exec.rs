//! What to run: the command and the `docker exec` options that go with it.

/// A command to run in a task's container, with `docker exec`'s options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// COMMAND and its arguments, passed through untouched.
    pub cmd: Vec<String>,
    /// `KEY=VAL` pairs, in order; later ones win, as in `docker exec`.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub privileged: bool,
    /// `-i`: the command's stdin is the user's.
    pub stdin: bool,
    /// `-t`: a TTY for the command.
    pub tty: bool,
    /// `-d`: start the command and return.
    pub detach: bool,
}

/// What the user's side sends into a running exec (`-i`, `-t`, signals).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    Stdin(Vec<u8>),
    StdinEof,
    Resize {
        rows: u16,
        cols: u16,
    },
    /// A signal for the command's process (SIGINT or SIGTERM without `-t`).
    Signal(i32),
}

/// How long a signalled command may take to end before swarm-exec stops
/// waiting for it (after Ctrl-C, SIGTERM or `--timeout`).
pub const SIGNAL_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The receiving end of the user's [`Control`]s.
pub type Controls = tokio::sync::mpsc::Receiver<Control>;

/// Waits for the next control, or forever when there is no control channel
/// (or it closed): a `select!` arm that never fires.
pub async fn next_control(controls: &mut Option<&mut Controls>) -> Control {
    match controls {
        Some(c) => match c.recv().await {
            Some(ctl) => ctl,
            None => {
                *controls = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// The result of one exec: the command's own exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
}

impl Exit {
    /// The status swarm-exec exits with: the engine's code, as `docker exec`
    /// would return it. The engine reports 0–255 (128+N for signal N); any
    /// other value is kept in range the way a shell would truncate it.
    pub fn status(self) -> u8 {
        (self.code & 0xff) as u8
    }
}

/// How one target of a multi-target helper ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(Exit),
    /// The helper could not run the command there (e.g. the container is gone).
    Failed(String),
    /// The per-task `--timeout` expired.
    TimedOut,
}

/// Checks one `-e KEY=VAL`. Unlike `docker exec -e KEY`, a bare KEY is
/// refused: silently importing (or dropping) a local variable into a
/// remote container is a surprise on a production cluster.
pub fn parse_env_arg(arg: &str) -> Result<String, String> {
    match arg.split_once('=') {
        Some((key, _)) if valid_key(key) => Ok(arg.to_owned()),
        Some((key, _)) => Err(format!("{key:?} is not a valid variable name")),
        None => Err(format!("{arg:?} has no '=': use -e KEY=VAL")),
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.chars().any(|c| c.is_whitespace() || c == '\0')
}

/// Parses an `--env-file` the way `docker exec --env-file` does: one
/// `KEY=VAL` per line taken verbatim, `#` comments and blank lines skipped,
/// and a bare `KEY` taken from `lookup` (dropped when unset).
pub fn parse_env_file(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map_or(line, |(k, _)| k);
        if !valid_key(key) {
            return Err(format!(
                "line {}: {key:?} is not a valid variable name",
                n + 1
            ));
        }
        if line.contains('=') {
            vars.push(line.to_owned());
        } else if let Some(val) = lookup(key) {
            vars.push(format!("{key}={val}"));
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_args() {
        assert_eq!(parse_env_arg("A=1").unwrap(), "A=1");
        assert_eq!(parse_env_arg("A=").unwrap(), "A=");
        assert_eq!(parse_env_arg("A=b=c").unwrap(), "A=b=c");
        assert!(parse_env_arg("A").is_err());
        assert!(parse_env_arg("=1").is_err());
        assert!(parse_env_arg("A B=1").is_err());
    }

    #[test]
    fn env_files() {
        let text = "# comment\n\nA=1\n  B=2 \nHOME\nMISSING\nC=x=y\n";
        let vars = parse_env_file(text, |k| (k == "HOME").then(|| "/root".into())).unwrap();
        assert_eq!(vars, ["A=1", "B=2 ", "HOME=/root", "C=x=y"]);
        assert!(parse_env_file("=oops\n", |_| None).is_err());
        assert!(parse_env_file("A B=1\n", |_| None).is_err());
    }

    #[test]
    fn exit_status() {
        assert_eq!(Exit { code: 42 }.status(), 42);
        assert_eq!(Exit { code: 137 }.status(), 137);
        assert_eq!(Exit { code: 256 }.status(), 0);
    }
}
