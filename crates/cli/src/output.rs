//! `--all`'s output: prefixed lines (`web.2@w1 | …`, like `docker service
//! logs`) or JSON Lines, and the summary.

use std::collections::HashMap;
use std::io::Write;

use swarm_exec::fanout::{Ending, Reporter, TaskEnd};
use swarm_exec::sink::Stream;
use swarm_exec::Task;

/// Colours for the prefixes, as `docker compose` cycles them.
const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// Prefixed text: whole lines only, so that lines from different tasks
/// never interleave mid-line.
pub struct Text {
    width: usize,
    color: bool,
    colors: HashMap<String, &'static str>,
    partial: HashMap<(String, bool), Vec<u8>>,
}

impl Text {
    pub fn new(tasks: &[Task], color: bool) -> Text {
        Text {
            width: tasks.iter().map(|t| t.label().len()).max().unwrap_or(0),
            color,
            colors: tasks
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.clone(), COLORS[i % COLORS.len()]))
                .collect(),
            partial: HashMap::new(),
        }
    }

    fn prefix(&self, task: &Task) -> String {
        let label = format!("{:<width$} | ", task.label(), width = self.width);
        match (self.color, self.colors.get(&task.id)) {
            (true, Some(c)) => format!("\x1b[{c}m{label}\x1b[0m"),
            _ => label,
        }
    }

    fn emit(&self, task: &Task, stream: Stream, lines: &[u8]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let prefix = self.prefix(task);
        let mut buf = Vec::with_capacity(lines.len() + 64);
        for line in lines.split_inclusive(|&b| b == b'\n') {
            buf.extend_from_slice(prefix.as_bytes());
            buf.extend_from_slice(line);
        }
        if buf.last() != Some(&b'\n') {
            buf.push(b'\n');
        }
        // One write per batch of whole lines, under the stream's lock.
        match stream {
            Stream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&buf)?;
                out.flush()
            }
            Stream::Stderr => {
                let mut err = std::io::stderr().lock();
                err.write_all(&buf)?;
                err.flush()
            }
        }
    }
}

impl Reporter for Text {
    fn output(&mut self, task: &Task, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let key = (task.id.clone(), stream == Stream::Stdout);
        let buf = self.partial.entry(key).or_default();
        buf.extend_from_slice(data);
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let whole: Vec<u8> = buf.drain(..=last_nl).collect();
        self.emit(task, stream, &whole)
    }

    fn finished(&mut self, task: &Task, _end: &TaskEnd) -> std::io::Result<()> {
        // A last line without a newline is still printed whole.
        for stream in [Stream::Stdout, Stream::Stderr] {
            let key = (task.id.clone(), stream == Stream::Stdout);
            if let Some(rest) = self.partial.remove(&key) {
                self.emit(task, stream, &rest)?;
            }
        }
        Ok(())
    }
}

/// JSON Lines on stdout: one object per output chunk, one per task at the end.
pub struct Json;

fn base(task: &Task) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("task".into(), task.id.clone().into());
    m.insert("target".into(), task.name().into());
    m.insert("node".into(), task.node.clone().into());
    m
}

fn print_json(m: serde_json::Map<String, serde_json::Value>) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&serde_json::Value::Object(m))?;
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line)?;
    out.flush()
}

impl Reporter for Json {
    fn output(&mut self, task: &Task, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let mut m = base(task);
        let name = if stream == Stream::Stdout {
            "stdout"
        } else {
            "stderr"
        };
        m.insert("stream".into(), name.into());
        match std::str::from_utf8(data) {
            Ok(text) => m.insert("data".into(), text.into()),
            Err(_) => m.insert(
                "data_base64".into(),
                swarm_exec_proto::base64::encode(data).into(),
            ),
        };
        print_json(m)
    }

    fn finished(&mut self, task: &Task, end: &TaskEnd) -> std::io::Result<()> {
        let mut m = base(task);
        match &end.ending {
            Ending::Exited(exit) => {
                m.insert("exit_code".into(), exit.code.into());
            }
            other => {
                m.insert("error".into(), describe(other).into());
            }
        }
        m.insert(
            "duration_ms".into(),
            (end.duration.as_millis() as u64).into(),
        );
        print_json(m)
    }
}

/// A task's ending in words.
pub fn describe(ending: &Ending) -> String {
    match ending {
        Ending::Exited(e) => format!("exit {}", e.code),
        Ending::TimedOut => "timed out".into(),
        Ending::Failed(why) => why.clone(),
        Ending::Skipped => "skipped: an earlier task failed (--rolling)".into(),
    }
}

/// swarm-exec's exit status for a fan-out: 0 when every task exited 0; 125
/// when swarm-exec failed for any task; otherwise the largest status seen
/// (124 for a timeout).
pub fn exit_status(endings: &[Ending]) -> u8 {
    if endings.iter().any(|e| matches!(e, Ending::Failed(_))) {
        return swarm_exec::exit::FAILURE;
    }
    endings
        .iter()
        .map(|e| match e {
            Ending::Exited(exit) => exit.status(),
            Ending::TimedOut => swarm_exec::exit::TIMEOUT,
            Ending::Failed(_) | Ending::Skipped => 0,
        })
        .max()
        .unwrap_or(0)
}

/// `9 tasks: 8 ok, 1 failed (web.4@w2: exit 3)`.
pub fn summary(tasks: &[Task], endings: &[Ending]) -> String {
    let ok = endings
        .iter()
        .filter(|e| matches!(e, Ending::Exited(x) if x.code == 0))
        .count();
    let skipped = endings.iter().filter(|e| **e == Ending::Skipped).count();
    let failed: Vec<String> = tasks
        .iter()
        .zip(endings)
        .filter(|(_, e)| {
            !matches!(e, Ending::Skipped) && !matches!(e, Ending::Exited(x) if x.code == 0)
        })
        .map(|(t, e)| format!("{}: {}", t.label(), describe(e)))
        .collect();
    let mut s = format!("{} tasks: {ok} ok", tasks.len());
    if !failed.is_empty() {
        let shown: Vec<&str> = failed.iter().take(5).map(String::as_str).collect();
        let more = if failed.len() > 5 {
            format!(", and {} more", failed.len() - 5)
        } else {
            String::new()
        };
        s.push_str(&format!(
            ", {} failed ({}{more})",
            failed.len(),
            shown.join(", ")
        ));
    }
    if skipped > 0 {
        s.push_str(&format!(", {skipped} skipped"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_exec::Exit;

    #[test]
    fn exit_statuses() {
        let x = |c| Ending::Exited(Exit { code: c });
        assert_eq!(exit_status(&[x(0), x(0)]), 0);
        assert_eq!(exit_status(&[x(0), x(3), x(1)]), 3);
        assert_eq!(exit_status(&[x(137), Ending::Failed("gone".into())]), 125);
        assert_eq!(exit_status(&[x(0), Ending::TimedOut]), 124);
        assert_eq!(exit_status(&[x(3), Ending::Skipped]), 3);
    }
}
