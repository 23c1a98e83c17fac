//! `swarm-exec`: run a command in any task of a Docker Swarm service.
//!
//! This binary is thin: it parses the command line ([`swarm_exec_cli`]), wires signals,
//! the timeout and cleanup around the library's [`swarm_exec::run`], and maps
//! every error to one line on stderr and its documented exit status.

mod output;
mod terminal;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use swarm_exec::context;
use swarm_exec::error::Signal;
use swarm_exec::exec::SIGNAL_GRACE;
use swarm_exec::sink::Terminal;
use swarm_exec::transport::helper::helpers;
use swarm_exec::{exit, session, target, Engine, Error, Session};
use tokio::signal::unix::{signal, SignalKind};

use swarm_exec_cli::args::{Action, AllConfig, Config, Format};
use swarm_exec_cli::{plugin, progress};

/// How long cleanup may take after the command ended or was interrupted.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);

fn main() -> ExitCode {
    let invocation = match plugin::command_line(std::env::args_os().collect()) {
        Ok(plugin::CommandLine::Run(invocation)) => invocation,
        Ok(plugin::CommandLine::Metadata) => {
            println!("{:#}", plugin::metadata());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            report(&e, false);
            return ExitCode::from(e.exit_code());
        }
    };
    let raw = match invocation.parse() {
        Ok(raw) => raw,
        Err(e) if !e.use_stderr() => {
            // --help: clap prints it to stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            report(&Error::usage("arguments", first), false);
            return ExitCode::from(exit::FAILURE);
        }
    };
    init_tracing(raw.verbose, raw.quiet);
    let quiet = raw.quiet;
    let docker = raw.docker.to_flags();
    let progress = progress::wanted(raw.quiet, raw.verbose);
    let action = match raw.resolve() {
        Ok(a) => a,
        Err(e) => {
            report(&e, quiet);
            return ExitCode::from(e.exit_code());
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("swarm-exec: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = runtime.block_on(async {
        match dispatch(action, &docker, progress).await {
            Ok(code) => code,
            Err(e) => {
                report(&e, quiet);
                e.exit_code()
            }
        }
    });
    // Do not wait for a stdin reader or a stale-object sweep still running.
    runtime.shutdown_background();
    ExitCode::from(code)
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        (false, _) => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}

/// One line on stderr: what happened and why, then what to do.
fn report(e: &Error, _quiet: bool) {
    if let Error::Output(io) = e {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader went away (`| head`): nothing more to say.
            return;
        }
    }
    let line = match e.hint() {
        Some(hint) => format!("swarm-exec: {e}; {hint}\n"),
        None => format!("swarm-exec: {e}\n"),
    };
    let _ = std::io::stderr().write_all(line.as_bytes());
}

async fn dispatch(
    action: Action,
    docker: &context::Flags,
    progress: bool,
) -> swarm_exec::Result<u8> {
    match action {
        Action::Version => {
            print_version();
            Ok(0)
        }
        Action::InstallPlugin(how) => {
            let dir = context::config_dir(docker.config_dir.as_deref(), &context::process_env)?;
            let path = plugin::install(how, &dir)?;
            eprintln!(
                "swarm-exec: installed {}; run it as docker {}",
                path.display(),
                plugin::NAME
            );
            Ok(0)
        }
        Action::Cleanup => {
            let engine = connect(docker).await?;
            let removed = session::remove_everything(&engine).await?;
            eprintln!(
                "swarm-exec: removed {} services, {} containers, {} secrets and {} configs",
                removed.services, removed.containers, removed.secrets, removed.configs
            );
            Ok(0)
        }
        Action::Exec(config) => exec(config, docker, progress).await,
        Action::All(config) => exec_all(config, docker, progress).await,
    }
}

fn print_version() {
    println!(
        "swarm-exec {} (git {})",
        env!("CARGO_PKG_VERSION"),
        env!("SWARM_EXEC_GIT_REV")
    );
    for h in helpers() {
        println!(
            "{} {} sha256:{} ({} bytes)",
            h.name,
            h.arch,
            h.sha256,
            h.data.len()
        );
    }
}

/// Connects to the engine the docker CLI would use with these flags.
async fn connect(docker: &context::Flags) -> swarm_exec::Result<Engine> {
    let endpoint = context::resolve(docker, &context::process_env)?;
    tracing::info!("engine {}", endpoint.describe());
    Engine::connect_to(&endpoint).await
}

/// Resolves when SIGINT, SIGTERM or SIGHUP arrives.
async fn interrupted() -> Signal {
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        // Without handlers the default actions stay; never resolve.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Signal::Interrupt,
        _ = term.recv() => Signal::Terminate,
        _ = hup.recv() => Signal::Hangup,
        _ = plugin::docker_gone() => Signal::Terminate,
    }
}

async fn exec(config: Config, docker: &context::Flags, progress: bool) -> swarm_exec::Result<u8> {
    // Handlers first: a Ctrl-C at any point ends the session cleanly.
    let signals = interrupted();
    tokio::pin!(signals);
    let spec = &config.spec;
    if spec.stdin && spec.tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(Error::usage(
            "-it",
            "the input device is not a TTY; use -i alone for piped input",
        ));
    }
    let session = Session::new();
    let spinner = progress::Spinner::start(progress, "connecting to the engine…");
    let work = async {
        let engine = connect(docker).await?;
        let task = target::resolve(&engine, &config.target, config.any).await?;
        Ok::<_, Error>((engine, task))
    };
    let (engine, task) = tokio::select! {
        r = work => r?,
        s = &mut signals => return Err(Error::Interrupted { signal: s }),
    };
    spinner.set_message(progress::waiting_for(&engine, &task, config.run.transport));
    // Collect what killed sessions left behind, alongside this one.
    let sweep = sweep_stale(&engine, &session);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    // Restored when dropped, before any message is printed.
    let raw = spec.tty.then(terminal::RawMode::enable);
    if spec.tty {
        terminal::forward_resizes(tx.clone());
    }
    if spec.stdin {
        terminal::forward_stdin(tx.clone());
    }
    let mut sink = progress::Erase::new(Terminal::new(), &spinner);
    let run = swarm_exec::run(
        &engine,
        &session,
        &task,
        spec,
        &config.run,
        &mut sink,
        Some(&mut rx),
    );
    tokio::pin!(run);
    let early = tokio::select! {
        r = &mut run => Ok(r),
        s = &mut signals => Err(Error::Interrupted { signal: s }),
        _ = timeout(config.run.timeout) => Err(Error::Timeout {
            seconds: config.run.timeout.map(|t| t.as_secs_f64()).unwrap_or_default(),
        }),
    };
    let result = match early {
        Ok(r) => r,
        Err(ended) => {
            // Ask the remote process to end (the helper transport ends it
            // when its service is removed), and give it a moment.
            let signal = match &ended {
                Error::Interrupted { signal } => signal.number(),
                _ => Signal::Terminate.number(),
            };
            let _ = tx.try_send(swarm_exec::exec::Control::Signal(signal));
            let _ = tokio::time::timeout(SIGNAL_GRACE, &mut run).await;
            Err(ended)
        }
    };
    spinner.stop();
    drop(raw);
    finish(&engine, &session, sweep, result.is_err()).await;
    match result {
        Ok(exit) => Ok(exit.status()),
        // A closed stdout (`| head`) is not a failure of the command.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e),
    }
}

/// `--all`: every running task of a service.
async fn exec_all(
    config: AllConfig,
    docker: &context::Flags,
    progress: bool,
) -> swarm_exec::Result<u8> {
    let signals = interrupted();
    tokio::pin!(signals);
    let session = Session::new();
    let spinner = progress::Spinner::start(
        progress && config.format == Format::Text,
        "connecting to the engine…",
    );
    let work = async {
        let engine = connect(docker).await?;
        let tasks = target::resolve_all(&engine, &config.service, &config.nodes).await?;
        Ok::<_, Error>((engine, tasks))
    };
    let (engine, tasks) = tokio::select! {
        r = work => r?,
        s = &mut signals => return Err(Error::Interrupted { signal: s }),
    };
    let sweep = sweep_stale(&engine, &session);
    spinner.set_message(progress::waiting_for_all(&tasks));
    let (endings, interrupted) = match config.format {
        Format::Text => {
            let printer = std::sync::Mutex::new(progress::EraseReporter::new(
                output::Text::new(&tasks, config.color),
                &spinner,
            ));
            run_all(&engine, &session, &tasks, &config, &printer, &mut signals).await
        }
        Format::Json => {
            let printer = std::sync::Mutex::new(output::Json);
            run_all(&engine, &session, &tasks, &config, &printer, &mut signals).await
        }
    };
    spinner.stop();
    finish(&engine, &session, sweep, interrupted.is_some()).await;
    if let Some(signal) = interrupted {
        return Err(Error::Interrupted { signal });
    }
    if !config.quiet {
        eprintln!("{}", output::summary(&tasks, &endings));
    }
    Ok(output::exit_status(&endings))
}

async fn run_all<R: swarm_exec::fanout::Reporter>(
    engine: &Engine,
    session: &Session,
    tasks: &[swarm_exec::Task],
    config: &AllConfig,
    printer: &std::sync::Mutex<R>,
    signals: &mut std::pin::Pin<&mut impl std::future::Future<Output = Signal>>,
) -> (Vec<swarm_exec::fanout::Ending>, Option<Signal>) {
    // `-i`: stdin is copied to every task.
    let input = config.spec.stdin.then(|| {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        terminal::forward_stdin(tx);
        rx
    });
    let (stop, stopped) = tokio::sync::watch::channel(None);
    let run = swarm_exec::fanout::run_all(
        engine,
        session,
        tasks,
        &config.spec,
        &config.opts,
        printer,
        input,
        stopped,
    );
    tokio::pin!(run);
    tokio::select! {
        endings = &mut run => (endings, None),
        s = signals.as_mut() => {
            // The commands still running get the signal; those on the
            // engine's node are waited for (a moment), the others end when
            // cleanup removes their helpers.
            let _ = stop.send(Some(s.number()));
            let _ = tokio::time::timeout(SIGNAL_GRACE, &mut run).await;
            (Vec::new(), Some(s))
        }
    }
}

/// Starts the background sweep of what killed sessions left behind.
fn sweep_stale(engine: &Engine, session: &Session) -> tokio::task::JoinHandle<()> {
    let engine = engine.clone();
    let current = session.id.clone();
    tokio::spawn(async move {
        // SWARM_EXEC_STALE_AFTER (seconds) shortens the wait, e.g. for tests.
        let after = std::env::var("SWARM_EXEC_STALE_AFTER")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(session::STALE_AFTER);
        if let Err(e) = session::collect_stale(&engine, &current, after).await {
            tracing::debug!("stale-object sweep: {e}");
        }
        if let Err(e) = session::collect_stale_containers(&engine, &current, after).await {
            tracing::debug!("stale-container sweep: {e}");
        }
        // After the services: a secret goes once no service uses it.
        if let Err(e) = session::collect_stale_secrets(&engine, &current, after).await {
            tracing::debug!("stale-secret sweep: {e}");
        }
    })
}

/// Removes the session's objects (bounded in time) and stops the sweep.
/// A failure is reported only when `quiet_failure` is false: after an
/// error, the error line is the one message (what is left is collected by
/// the next run, or by `swarm-exec --cleanup`).
async fn finish(
    engine: &Engine,
    session: &Session,
    sweep: tokio::task::JoinHandle<()>,
    quiet_failure: bool,
) {
    let cleaned = tokio::time::timeout(CLEANUP_TIMEOUT, session.cleanup(engine)).await;
    sweep.abort();
    let problem = match cleaned {
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "it did not finish in {} s",
            CLEANUP_TIMEOUT.as_secs()
        )),
        Ok(Ok(())) => None,
    };
    match problem {
        Some(why) if quiet_failure => tracing::debug!("cleanup: {why}"),
        Some(why) => tracing::warn!(
            "cleanup: {why}; the next run, or swarm-exec --cleanup, removes what is left"
        ),
        None => {}
    }
}

async fn timeout(limit: Option<Duration>) {
    match limit {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
