//! swarm-exec: `docker exec` for the tasks of a Docker Swarm service, on
//! whichever node they run.
//!
//! The flow of one exec:
//! 1. [`engine::Engine::connect`] reaches a swarm manager;
//! 2. [`target::resolve`] turns TARGET into one running [`target::Task`];
//! 3. [`run`] picks a [`transport::Transport`]: [`transport::local`] when the
//!    task is on the engine's own node, [`transport::helper`] otherwise;
//! 4. the [`session::Session`] removes everything it created.

pub mod context;
pub mod dial;
pub mod engine;
pub mod error;
pub mod exec;
pub mod fanout;
pub mod session;
pub mod sink;
pub mod target;
pub mod transport;

pub use engine::Engine;
pub use error::{exit, Error, Result};
pub use exec::{ExecSpec, Exit};
pub use session::Session;
pub use target::Task;
pub use transport::Transport;

use sink::Sink;
use transport::helper::HelperOptions;

/// How to run one exec.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub transport: Transport,
    pub helper: HelperOptions,
    /// How the relay reaches the helper; the default when `None`.
    pub relay_link: Option<transport::relay::Link>,
    /// The command's time limit (`--timeout`; per task with `--all`). The
    /// caller enforces it; a helper also ends the command itself (SIGTERM)
    /// when it is reached, on its node, whatever becomes of the session.
    pub timeout: Option<std::time::Duration>,
}

/// Runs `spec` in `task`, on the transport the options and the task's node
/// call for, streaming the output into `sink`; `controls` carries stdin,
/// resizes and signals for interactive sessions.
pub async fn run(
    engine: &Engine,
    session: &Session,
    task: &Task,
    spec: &ExecSpec,
    opts: &RunOptions,
    sink: &mut impl Sink,
    mut controls: Option<&mut exec::Controls>,
) -> Result<Exit> {
    let local = task.node_id == engine.node_id;
    let interactive = spec.stdin || spec.tty;
    let transport = match opts.transport {
        Transport::Auto if local => Transport::Local,
        // `-d` needs no duplex path: the helper starts it and reports.
        Transport::Auto if spec.detach => Transport::Helper,
        Transport::Auto => Transport::Relay,
        Transport::Local if !local => {
            return Err(Error::Unsupported {
                what: format!("--transport local for {}", task.label()),
                why: format!(
                    "the task runs on {}, and the local transport reaches only tasks on the engine's own node",
                    task.node
                ),
            })
        }
        Transport::Helper if interactive => {
            return Err(Error::Unsupported {
                what: "-i and -t with --transport helper".into(),
                why: "the helper's output comes back through service logs, which carry no stdin".into(),
            })
        }
        t => t,
    };
    tracing::info!(
        "{} runs on {}{}: {transport} transport",
        task.label(),
        task.node,
        if local {
            " (the engine's own node)"
        } else {
            ""
        }
    );
    match transport {
        Transport::Local => {
            transport::local::run(engine, session, task, spec, sink, controls).await
        }
        Transport::Relay => {
            match transport::relay::run(
                engine,
                session,
                task,
                spec,
                opts.relay_link,
                sink,
                controls.as_deref_mut(),
            )
            .await
            {
                Err(Error::RelayUnavailable { why, .. })
                    if opts.transport == Transport::Auto && !interactive =>
                {
                    tracing::info!(
                        "the relay cannot be set up ({why}): falling back to the helper transport"
                    );
                    session.cleanup(engine).await?;
                    helper_run(engine, session, task, spec, opts, sink, controls).await
                }
                other => other,
            }
        }
        _ => helper_run(engine, session, task, spec, opts, sink, controls).await,
    }
}

/// The helper transport for one task. Its helper takes no controls: a
/// signal ends the wait at once, and the caller's cleanup removes the
/// helper's service, whose stop makes the helper end the command.
async fn helper_run(
    engine: &Engine,
    session: &Session,
    task: &Task,
    spec: &ExecSpec,
    opts: &RunOptions,
    sink: &mut impl Sink,
    mut controls: Option<&mut exec::Controls>,
) -> Result<Exit> {
    let run = transport::helper::run(engine, session, task, spec, opts, sink);
    tokio::pin!(run);
    loop {
        tokio::select! {
            r = &mut run => return r,
            ctl = exec::next_control(&mut controls) => {
                if let exec::Control::Signal(sig) = ctl {
                    return Ok(Exit { code: 128 + i64::from(sig) });
                }
            }
        }
    }
}
