//! Writes the shell completions (bash, zsh, fish) and the man page of
//! swarm-exec, generated from its clap definition, into a directory:
//! `cargo run -p swarm-exec-cli --example gen-docs -- DIR` (what `cargo
//! xtask completions`, `cargo xtask man` and `cargo xtask release` run).
//!
//! An example rather than part of the binary or of xtask: clap_complete and
//! clap_mangen stay out of the shipped binary, and xtask, which drives the
//! shared lab, does not depend on the whole CLI.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use swarm_exec_cli::args::RawArgs;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen-docs DIR");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(dir.join("completions"))?;
    std::fs::create_dir_all(dir.join("man"))?;
    let mut cmd = RawArgs::command();
    cmd.build();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path =
            clap_complete::generate_to(shell, &mut cmd, "swarm-exec", dir.join("completions"))?;
        println!("{}", path.display());
    }
    let man = dir.join("man/swarm-exec.1");
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    std::fs::write(&man, page)?;
    println!("{}", man.display());
    Ok(())
}
