//! The user's terminal for `-i` and `-t`: raw mode (always restored),
//! stdin and window sizes turned into [`Control`]s for the session.

use std::io::IsTerminal;

use swarm_exec::exec::Control;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::Sender;

/// Raw mode while alive: keys go to the remote program as they are typed
/// (Ctrl-C included, as with `docker exec -it`). Dropping it restores the
/// terminal, on every path out: success, error, signal.
pub struct RawMode(bool);

impl RawMode {
    pub fn enable() -> RawMode {
        let on = std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok();
        RawMode(on)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// The terminal's size as (rows, cols), when there is one.
fn size() -> Option<(u16, u16)> {
    crossterm::terminal::size()
        .ok()
        .filter(|&(cols, rows)| cols > 0 && rows > 0)
        .map(|(cols, rows)| (rows, cols))
}

/// Sends the current size now and after every SIGWINCH.
pub fn forward_resizes(tx: Sender<Control>) {
    tokio::spawn(async move {
        if let Some((rows, cols)) = size() {
            if tx.send(Control::Resize { rows, cols }).await.is_err() {
                return;
            }
        }
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some((rows, cols)) = size() {
                if tx.send(Control::Resize { rows, cols }).await.is_err() {
                    return;
                }
            }
        }
    });
}

/// Streams stdin into the session, then its end.
pub fn forward_stdin(tx: Sender<Control>) {
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Control::Stdin(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Control::StdinEof).await;
    });
}
