//! The lab's TLS material: a CA, a server certificate for the engine that
//! serves the Engine API over TLS on TCP, and a client certificate, made
//! with rcgen at `lab up` (no openssl involved).
//!
//! The client directory holds `ca.pem`, `cert.pem` and `key.pem`: it is a
//! `DOCKER_CERT_PATH` as is, and the files `docker context create --docker
//! ca=…,cert=…,key=…` takes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};

/// The engine port for TLS, as the docker CLI defaults it.
pub const PORT: u16 = 2376;

/// Where the TLS listener is and its files.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabTls {
    /// The node whose engine listens with TLS.
    pub node: String,
    /// `tcp://ADDR:2376`
    pub host: String,
    /// `ca.pem`, `cert.pem`, `key.pem` for clients.
    pub client_dir: PathBuf,
    /// `ca.pem`, `cert.pem`, `key.pem` for the engine.
    pub server_dir: PathBuf,
}

/// Makes a CA, a server certificate for `node` at `addr` (IP and name in
/// its subject alternative names) and a client certificate, under `dir`.
pub fn generate(dir: &Path, node: &str, addr: &str) -> Result<LabTls> {
    let client_dir = dir.join("client");
    let server_dir = dir.join("server");
    for d in [&client_dir, &server_dir] {
        std::fs::create_dir_all(d)?;
    }
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "swarm-exec lab CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let leaf = |names: Vec<String>,
                usage: ExtendedKeyUsagePurpose,
                cn: &str|
     -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(names)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![usage];
        Ok((p.signed_by(&key, &issuer)?.pem(), key.serialize_pem()))
    };
    // rcgen makes the address an IP SAN, which clients check it against.
    let names = vec![node.to_owned(), "localhost".to_owned(), addr.to_owned()];
    let (server_cert, server_key) = leaf(names, ExtendedKeyUsagePurpose::ServerAuth, node)?;
    let (client_cert, client_key) = leaf(
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
        "swarm-exec lab client",
    )?;
    for (d, cert, key) in [
        (&server_dir, &server_cert, &server_key),
        (&client_dir, &client_cert, &client_key),
    ] {
        write(&d.join("ca.pem"), &ca_pem)?;
        write(&d.join("cert.pem"), cert)?;
        write(&d.join("key.pem"), key)?;
    }
    Ok(LabTls {
        node: node.to_owned(),
        host: format!("tcp://{addr}:{PORT}"),
        client_dir,
        server_dir,
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
