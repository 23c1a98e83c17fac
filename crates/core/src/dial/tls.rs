//! TLS to a `tcp://` engine, with the docker CLI's semantics
//! (docker/cli `cli/context/docker/load.go`): trust only the given CA (the
//! system's CAs when there is none), present the client certificate when
//! both it and its key are there, and skip verification when told to.
//!
//! rustls with the ring provider: ring builds for both release targets
//! (x86_64 with musl-gcc, aarch64 with clang, see `.cargo/config.toml`).

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::context::Tls;

/// Opens TLS connections to one `host:port`.
#[derive(Clone)]
pub struct TlsDialer {
    addr: String,
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsDialer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl TlsDialer {
    /// A dialer for `addr` (`host:port`) with the given material. The error
    /// says what is wrong with it.
    pub fn new(addr: &str, tls: &Tls) -> Result<TlsDialer, String> {
        let host = server_host(addr);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host:?} is not a host name or address: {e}"))?;
        Ok(TlsDialer {
            addr: addr.to_owned(),
            name,
            config: Arc::new(client_config(tls)?),
        })
    }

    pub(crate) async fn dial(&self) -> io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        TlsConnector::from(self.config.clone())
            .connect(self.name.clone(), tcp)
            .await
    }
}

/// The host part of `host:port` or `[v6]:port`.
fn server_host(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// rustls's ring provider. rustls 0.23.48 deprecates it for lacking
/// post-quantum key exchange in favour of aws-lc-rs, but aws-lc needs a C
/// sysroot for the aarch64 musl build, which this toolchain does not have;
/// ring's C builds without one. Docker engines accept X25519 and P-256.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for the material.
pub fn client_config(tls: &Tls) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if tls.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        builder.with_root_certificates(roots(tls.ca.as_deref())?)
    };
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cert.pem: {e}"))?;
            if chain.is_empty() {
                return Err("cert.pem holds no certificate".into());
            }
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
                format!("key.pem: {e} (encrypted keys are not supported, as in docker)")
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate and key: {e}"))
        }
        // As in docker, a certificate without its key (or the reverse) is
        // not presented at all.
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Only the CA when there is one (docker's `--tlscacert`: "trust certs
/// signed only by this CA"), else the system's.
fn roots(ca: Option<&[u8]>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("ca.pem: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err("ca.pem holds no usable certificate".into());
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err("there is no CA certificate and the system has none".into());
            }
        }
    }
    Ok(roots)
}

/// `SkipTLSVerify` / `--tls` without `--tlsverify`: any server certificate
/// is accepted, but the handshake signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hosts() {
        assert_eq!(server_host("10.0.0.1:2376"), "10.0.0.1");
        assert_eq!(server_host("[::1]:2376"), "::1");
        assert_eq!(server_host("engine.example:2376"), "engine.example");
    }

    #[test]
    fn bad_material_is_reported() {
        let tls = Tls {
            ca: Some(b"not a certificate".to_vec()),
            ..Tls::default()
        };
        assert!(client_config(&tls).unwrap_err().contains("ca.pem"));
        // Skipping verification needs no CA at all.
        let tls = Tls {
            skip_verify: true,
            ..Tls::default()
        };
        assert!(client_config(&tls).is_ok());
    }
}
