//! `swarm-exec-helper`: runs a command in containers of its node and streams
//! the output as `line` frames for the logs transport (see the library docs).

use swarm_exec_helper::sink::Sink;
use swarm_exec_helper::{
    exit_status, kill, parse_args, print, run_all, terminate_on_sigterm, usage_error, Command,
    USAGE,
};

fn real_main() -> i32 {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(_) => {
                return usage_error("arguments must be valid UTF-8");
            }
        }
    }
    match parse_args(args) {
        Ok(Command::Version) => {
            print(
                std::io::stdout(),
                &["swarm-exec-helper ", env!("CARGO_PKG_VERSION"), "\n"],
            );
            0
        }
        Ok(Command::Help) => {
            print(std::io::stdout(), &[USAGE]);
            0
        }
        Ok(Command::Exec(cfg)) => {
            let sink = Sink::new(std::io::stdout());
            terminate_on_sigterm(cfg.socket.clone(), cfg.session.clone());
            exit_status(&run_all(&cfg, &sink))
        }
        Ok(Command::Serve(_) | Command::Relay(_) | Command::Hold) => {
            usage_error("serve and relay are swarm-exec-relay's commands")
        }
        Ok(Command::Kill(sig, pid)) => kill::kill_command(&sig, &pid),
        Err(msg) => usage_error(&msg),
    }
}

fn main() {
    std::process::exit(real_main());
}
