//! Engine connections bollard has no transport for: TLS as the docker CLI
//! does it ([`tls`]) and `ssh://` through `ssh … docker system dial-stdio`
//! ([`ssh`]).
//!
//! Both plug into bollard as a custom transport: a hyper-util client (the
//! client bollard uses for its own transports) over a connector that opens
//! one of these byte streams. The exec start is an HTTP upgrade (hijack);
//! hyper-util's client serves upgrades on any connection it made, so
//! `docker exec`'s stream works over both the same as over a unix socket.

pub mod ssh;
pub mod tls;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bollard::{BollardRequest, ClientVersion, Docker};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

/// The address bollard puts in request URIs; the connector ignores it and
/// dials the real endpoint, as the docker CLI's connection helpers do.
const PLACEHOLDER_URL: &str = "http://docker.example.com";

/// Opens connections to one engine.
#[derive(Clone)]
pub enum Dialer {
    Tls(tls::TlsDialer),
    Ssh(ssh::SshDialer),
}

impl Dialer {
    async fn dial(self) -> io::Result<Conn> {
        let io: Box<dyn Io> = match self {
            Dialer::Tls(d) => Box::new(d.dial().await?),
            Dialer::Ssh(d) => Box::new(d.dial().await?),
        };
        Ok(Conn(TokioIo::new(io)))
    }

    /// A bollard client that sends every request over this dialer's
    /// connections.
    pub fn into_docker(self, timeout: u64, version: &ClientVersion) -> Result<Docker, String> {
        let client: Client<Dialer, _> = Client::builder(TokioExecutor::new()).build(self);
        let transport = move |req: BollardRequest| {
            let client = client.clone();
            async move {
                client
                    .request(req)
                    .await
                    .map_err(|e| bollard::errors::Error::from(io::Error::other(chain(&e))))
            }
        };
        Docker::connect_with_custom_transport(transport, Some(PLACEHOLDER_URL), timeout, version)
            .map_err(|e| e.to_string())
    }
}

impl tower_service::Service<Uri> for Dialer {
    type Response = Conn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        Box::pin(self.clone().dial())
    }
}

/// What went wrong, in the words of the deepest cause: hyper's own layers
/// ("client error (SendRequest)", "connection error") say nothing the cause
/// does not, and the cause is ssh's, rustls's or the socket's own message.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = e;
    while let Some(source) = deepest.source() {
        deepest = source;
    }
    deepest.to_string()
}

/// A byte stream to an engine.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One connection, as hyper-util's client wants it.
pub struct Conn(TokioIo<Box<dyn Io>>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
