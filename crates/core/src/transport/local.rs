//! The local path: the task runs on the engine's own node, so the exec goes
//! straight through the Engine API, as `docker exec` does.

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::exec::{ExecSpec, Exit};
use crate::sink::{Sink, Stream};
use crate::target::Task;

pub(crate) fn create_options(spec: &ExecSpec) -> CreateExecOptions<String> {
    CreateExecOptions {
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        cmd: Some(spec.cmd.clone()),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        user: spec.user.clone(),
        working_dir: spec.workdir.clone(),
        privileged: Some(spec.privileged),
        ..Default::default()
    }
}

/// Runs `spec` in the task's container and streams its output to `sink`.
pub async fn run(
    engine: &Engine,
    task: &Task,
    spec: &ExecSpec,
    sink: &mut impl Sink,
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
                detach: false,
                tty: false,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| Error::docker("starting the exec", e))?;
    let StartExecResults::Attached { mut output, input } = started else {
        return Err(Error::docker(
            "starting the exec",
            bollard::errors::Error::DockerStreamError {
                error: "the engine detached an attached exec".into(),
            },
        ));
    };
    while let Some(item) = output.next().await {
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
