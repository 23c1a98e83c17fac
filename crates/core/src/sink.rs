//! Where a command's output goes. Output is a byte stream: it is written as
//! it arrives, never re-encoded and never added to.

use tokio::io::AsyncWriteExt;

/// The two output streams of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives a command's output, chunk by chunk.
pub trait Sink: Send {
    /// Writes one chunk and flushes it: the user sees output live.
    fn write(
        &mut self,
        stream: Stream,
        data: &[u8],
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// swarm-exec's own stdout and stderr.
pub struct Terminal {
    out: tokio::io::Stdout,
    err: tokio::io::Stderr,
}

impl Terminal {
    pub fn new() -> Terminal {
        Terminal {
            out: tokio::io::stdout(),
            err: tokio::io::stderr(),
        }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Terminal::new()
    }
}

impl Sink for Terminal {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        match stream {
            Stream::Stdout => {
                self.out.write_all(data).await?;
                self.out.flush().await
            }
            Stream::Stderr => {
                self.err.write_all(data).await?;
                self.err.flush().await
            }
        }
    }
}

/// Collects output in memory (for tests and for `--all`'s line splitting).
#[derive(Debug, Default)]
pub struct Buffer {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Sink for Buffer {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        match stream {
            Stream::Stdout => self.stdout.extend_from_slice(data),
            Stream::Stderr => self.stderr.extend_from_slice(data),
        }
        Ok(())
    }
}
