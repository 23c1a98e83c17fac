//! The local path: the task runs on the engine's own node, so the exec goes
//! straight through the Engine API, as `docker exec` does.

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::ResizeExecOptions;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::exec::{next_control, Control, Controls, ExecSpec, Exit};
use crate::session::Session;
use crate::sink::{Sink, Stream};
use crate::target::Task;

pub(crate) fn create_options(spec: &ExecSpec) -> CreateExecOptions<String> {
    CreateExecOptions {
        attach_stdin: Some(spec.stdin && !spec.detach),
        attach_stdout: Some(!spec.detach),
        attach_stderr: Some(!spec.detach),
        tty: Some(spec.tty),
        cmd: Some(spec.cmd.clone()),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        user: spec.user.clone(),
        working_dir: spec.workdir.clone(),
        privileged: Some(spec.privileged),
        ..Default::default()
    }
}

/// Runs `spec` in the task's container and streams its output to `sink`;
/// `controls` carries stdin, resizes and signals for `-i`/`-t`.
pub async fn run(
    engine: &Engine,
    session: &Session,
    task: &Task,
    spec: &ExecSpec,
    sink: &mut impl Sink,
    mut controls: Option<&mut Controls>,
) -> Result<Exit> {
    let docker = &engine.docker;
    let exec = docker
        .create_exec(&task.container_id, create_options(spec))
        .await
        .map_err(|e| Error::NotRunning {
            target: task.label(),
            why: crate::error::docker_message(&e),
        })?;
    let started = docker
        .start_exec(
            &exec.id,
            Some(StartExecOptions {
                detach: spec.detach,
                tty: spec.tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| Error::docker("starting the exec", e))?;
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    else {
        // `-d`: started; `docker exec -d` reports success here.
        return Ok(Exit { code: 0 });
    };
    let mut stdin_open = spec.stdin;
    loop {
        tokio::select! {
            item = output.next() => {
                let Some(item) = item else { break };
                let item = item.map_err(|e| Error::docker("reading the exec output", e))?;
                let (stream, data) = match item {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (Stream::Stdout, message)
                    }
                    LogOutput::StdErr { message } => (Stream::Stderr, message),
                    LogOutput::StdIn { .. } => continue,
                };
                sink.write(stream, &data).await.map_err(Error::Output)?;
            }
            ctl = next_control(&mut controls) => match ctl {
                // The command may have closed its stdin: keep reading output.
                Control::Stdin(data) if stdin_open => {
                    stdin_open = input.write_all(&data).await.is_ok();
                }
                Control::StdinEof if stdin_open => {
                    stdin_open = false;
                    let _ = input.shutdown().await;
                }
                Control::Resize { rows, cols } if spec.tty => {
                    let _ = docker
                        .resize_exec(&exec.id, ResizeExecOptions { h: rows.into(), w: cols.into() })
                        .await;
                }
                Control::Signal(sig) => {
                    crate::transport::relay::signal_local(engine, session, &exec.id, sig).await?;
                }
                _ => {}
            },
        }
    }
    drop(input);
    exit_code(engine, &exec.id).await
}

/// The exec's exit code, read from the engine's inspect result (never
/// guessed from error text). The engine can report the exec as running for
/// a moment after its output closed; a few quick re-reads cover that.
pub(crate) async fn exit_code(engine: &Engine, exec_id: &str) -> Result<Exit> {
    let mut delay = std::time::Duration::from_millis(2);
    for _ in 0..12 {
        let inspect = engine
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| Error::docker("inspecting the exec", e))?;
        if inspect.running != Some(true) {
            if let Some(code) = inspect.exit_code {
                return Ok(Exit { code });
            }
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    Err(Error::Docker {
        action: "reading the exit code".into(),
        why: "the engine still reports the exec as running after its output ended".into(),
    })
}
