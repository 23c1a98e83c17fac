//! `swarm-exec-relay`: the two ends of the relay transport. `serve` runs on
//! the target's node (one exec over an encrypted channel); `relay` runs in a
//! container on the engine's node and pipes that channel to the CLI.

use swarm_exec_helper::{kill, parse_args, print, relay, serve, usage_error, Command, USAGE};

fn real_main() -> i32 {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(_) => return usage_error("arguments must be valid UTF-8"),
        }
    }
    match parse_args(args) {
        Ok(Command::Serve(cfg)) => serve::run(&cfg),
        Ok(Command::Relay(addr)) => relay::run(addr.as_deref()),
        Ok(Command::Kill(sig, pid)) => kill::kill_command(&sig, &pid),
        // PID 1 of the relay container: the container is force-removed.
        Ok(Command::Hold) => loop {
            std::thread::park();
        },
        Ok(Command::Version) => {
            print(
                std::io::stdout(),
                &["swarm-exec-relay ", env!("CARGO_PKG_VERSION"), "\n"],
            );
            0
        }
        Ok(Command::Help) => {
            print(std::io::stdout(), &[USAGE]);
            0
        }
        Ok(Command::Exec(_)) => usage_error("exec is swarm-exec-helper's command"),
        Err(msg) => usage_error(&msg),
    }
}

fn main() {
    std::process::exit(real_main());
}
