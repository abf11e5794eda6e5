//! TLS between nodes, and for the gRPC clients of a node.
//!
//! One cluster CA signs a certificate for every node (`backwaters certs` makes them; `up
//! --tls` makes them for its local nodes). With a `[tls]` section in the cluster config:
//! - each node's gRPC port (the public API and the internal Raft service) speaks only TLS,
//!   with the node's certificate. Nodes dial each other with their own certificate as client
//!   identity and trust nothing but the cluster CA. Other gRPC clients (the shell, grpcurl)
//!   only need to trust the CA: a client certificate is optional on that port, because the
//!   internal service also asks every call for the cluster secret;
//! - actor-cluster (ractor_cluster) sessions are mutual TLS: both ends must show a
//!   certificate signed by the cluster CA before the cookie handshake starts.
//!
//! A certificate must name the host of the address other nodes use for the node
//! (`advertised_grpc` or `grpc`, and `actors`): an IP address SAN for an IP, a DNS SAN for
//! a name.

use backwaters_actors::node::membership::SessionTls;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The Kafka principal of a client certificate, as Kafka's default principal builder makes
/// it: `User:` and the subject name in RFC 2253 form, most specific part first
/// (`User:CN=reader,O=Security`).
pub fn principal_of(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut rdns: Vec<String> = Vec::new();
    for rdn in parsed.subject().iter_rdn() {
        let mut parts = Vec::new();
        for atv in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(atv.attr_type(), registry).map(str::to_string).unwrap_or_else(|_| atv.attr_type().to_id_string());
            let value: String = atv.as_str().ok()?.chars().flat_map(|c| if ",+\"\\<>;".contains(c) { vec!['\\', c] } else { vec![c] }).collect();
            parts.push(format!("{key}={value}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    (!rdns.is_empty()).then(|| format!("User:{}", rdns.join(",")))
}

/// A node's TLS material: the cluster CA and the node's certificate chain and key (PEM).
#[derive(Clone)]
pub struct NodeTls {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
    /// gRPC clients must show a certificate from the CA (`[tls] grpc_client_auth`).
    pub grpc_client_auth: bool,
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{field}: cannot read {}: {e} (`backwaters certs` makes a CA and node certificates)", path.display()))
}

fn certs(field: &str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| format!("{field}: {} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{field}: {} holds no certificate", path.display()));
    }
    Ok(certs)
}

fn key(field: &str, path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("{field}: {} holds no PEM private key: {e}", path.display()))
}

/// Where a node's TLS files are, with the config field each came from (for errors).
pub struct TlsPaths<'a> {
    pub ca: (&'a str, &'a Path),
    pub cert: (&'a str, &'a Path),
    pub key: (&'a str, &'a Path),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl NodeTls {
    /// Reads and checks the files: each must parse, and the key must match the certificate.
    pub fn load(p: TlsPaths) -> Result<NodeTls, String> {
        let t = NodeTls { ca: read(p.ca.0, p.ca.1)?, cert: read(p.cert.0, p.cert.1)?, key: read(p.key.0, p.key.1)?, grpc_client_auth: false };
        certs(p.ca.0, p.ca.1, &t.ca)?;
        let chain = certs(p.cert.0, p.cert.1, &t.cert)?;
        let key = key(p.key.0, p.key.1, &t.key)?;
        server_config(chain, key, None).map_err(|e| format!("{}: {} does not go with the certificate {}: {e}", p.key.0, p.key.1.display(), p.cert.1.display()))?;
        Ok(t)
    }

    /// The gRPC server side: the node's certificate; client certificates from the cluster
    /// CA are checked when offered (nodes offer theirs), and required with
    /// `grpc_client_auth` (then the shell and every API client need one too).
    pub fn grpc_server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key)).client_ca_root(Certificate::from_pem(&self.ca)).client_auth_optional(!self.grpc_client_auth)
    }

    /// The gRPC client side of a node: trusts the cluster CA, shows the node's certificate.
    pub fn grpc_client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca)).identity(Identity::from_pem(&self.cert, &self.key))
    }

    /// Checks that the node's certificate is signed by the cluster CA and names each host
    /// (`(field, host)`: the config field the host comes from), as a peer will check it.
    pub fn check_names(&self, cert_field: &str, hosts: &[(String, String)]) -> Result<(), String> {
        use rustls::client::danger::ServerCertVerifier;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(self.roots()?, provider()).build().map_err(|e| format!("tls.ca: {e}"))?;
        let chain = self.chain()?;
        let (end, intermediates) = chain.split_first().ok_or(format!("{cert_field}: no certificate"))?;
        for (field, host) in hosts {
            let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("{field}: {host} is no TLS server name: {e}"))?;
            verifier.verify_server_cert(end, intermediates, &name, &[], rustls::pki_types::UnixTime::now()).map_err(|e| match e {
                // Another CA with the same name fails on the signature instead.
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature) => format!("{cert_field}: the certificate is not signed by the cluster CA (tls.ca)"),
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName) | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. }) => {
                    format!("{cert_field}: the certificate does not name {host} (the host of {field}); peers would refuse it (`backwaters certs --node NAME={host}`)")
                }
                e => format!("{cert_field}: {e}"),
            })?;
        }
        Ok(())
    }

    fn roots(&self) -> Result<Arc<rustls::RootCertStore>, String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&self.ca) {
            roots.add(c.map_err(|e| e.to_string())?).map_err(|e| format!("cluster CA: {e}"))?;
        }
        Ok(Arc::new(roots))
    }

    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        CertificateDer::pem_slice_iter(&self.cert).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, String> {
        PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| e.to_string())
    }

    /// A TLS server with the node's certificate; `client_certs`: every client must show a
    /// certificate signed by the cluster CA.
    fn server(&self, client_certs: bool) -> Result<tokio_rustls::TlsAcceptor, String> {
        let roots = if client_certs { Some(self.roots()?) } else { None };
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server_config(self.chain()?, self.private_key()?, roots)?)))
    }

    /// Both ends of mutual-TLS actor-cluster sessions.
    pub fn sessions(&self) -> Result<SessionTls, String> {
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain()?, self.private_key()?)
            .map_err(|e| e.to_string())?;
        Ok(SessionTls { acceptor: self.server(true)?, connector: tokio_rustls::TlsConnector::from(Arc::new(client)) })
    }

    /// The Kafka listener's side (Kafka's SSL listener; `client_certs` is Kafka's
    /// `ssl.client.auth=required`).
    pub fn kafka(&self, client_certs: bool) -> Result<tokio_rustls::TlsAcceptor, String> {
        self.server(client_certs)
    }
}

/// A rustls server with `chain` and `key`; with `client_roots`, every client must show a
/// certificate signed by one of them.
fn server_config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>, client_roots: Option<Arc<rustls::RootCertStore>>) -> Result<rustls::ServerConfig, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(|e| e.to_string())?;
    let builder = match client_roots {
        Some(roots) => builder.with_client_cert_verifier(rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider()).build().map_err(|e| format!("cluster CA: {e}"))?),
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(chain, key).map_err(|e| e.to_string())
}

/// A TLS server from a certificate and a key file (`(field, path)`): the syslog-tls
/// listeners. With `client_ca` (RFC 5425's mutual authentication), every sender must show a
/// certificate that CA signed; its subject is the sender's principal for the ACLs.
pub fn acceptor_from_files(cert: (&str, &Path), key_file: (&str, &Path), client_ca: Option<(&str, &Path)>) -> Result<tokio_rustls::TlsAcceptor, String> {
    let chain = certs(cert.0, cert.1, &read(cert.0, cert.1)?)?;
    let key = key(key_file.0, key_file.1, &read(key_file.0, key_file.1)?)?;
    let roots = match client_ca {
        Some((field, path)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(field, path, &read(field, path)?)? {
                roots.add(c).map_err(|e| format!("{field} {}: {e}", path.display()))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let config = server_config(chain, key, roots).map_err(|e| format!("{}/{}: {e}", cert.0, key_file.0))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A gRPC client trusting only `ca` (PEM file): the shell's `--ca`.
pub fn client_trusting(ca: &Path) -> Result<ClientTlsConfig, String> {
    let pem = read("--ca", ca)?;
    certs("--ca", ca, &pem)?;
    Ok(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
}

/// As [`client_trusting`], showing a client certificate (`--cert`, `--key`), for clusters
/// with `grpc_client_auth`.
pub fn client_with_identity(ca: &Path, cert: &Path, key_file: &Path) -> Result<ClientTlsConfig, String> {
    let (cert_pem, key_pem) = (read("--cert", cert)?, read("--key", key_file)?);
    certs("--cert", cert, &cert_pem)?;
    key("--key", key_file, &key_pem)?;
    Ok(client_trusting(ca)?.identity(Identity::from_pem(cert_pem, key_pem)))
}

/// The endpoint of a node's gRPC address (HOST:PORT): https with `tls`, else http.
pub fn endpoint(addr: &str, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let e = Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(|e| format!("gRPC address {addr}: {e}"))?;
    match tls {
        Some(t) => e.tls_config(t.clone()).map_err(|e| format!("TLS for {addr}: {e}")),
        None => Ok(e),
    }
}

/// Files written by [`generate`].
pub struct Generated {
    pub ca: PathBuf,
    /// Per node name: certificate and key.
    pub nodes: Vec<(String, PathBuf, PathBuf)>,
}

/// Writes a certificate and key for each `(name, hosts)` into `dir` (`NAME.pem`,
/// `NAME.key`), signed by the CA in `dir` (`ca.pem`, `ca.key`), which is made first if it
/// is not there. A node file that exists is kept, so running it again on the same folder
/// changes nothing. Keys are written readable by their owner only.
pub fn generate(dir: &Path, nodes: &[(String, Vec<String>)]) -> Result<Generated, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let issuer = if ca_pem.exists() && ca_key.exists() {
        let key = KeyPair::from_pem(&String::from_utf8_lossy(&read("CA key", &ca_key)?)).map_err(|e| format!("{}: {e}", ca_key.display()))?;
        Issuer::from_ca_cert_pem(&String::from_utf8_lossy(&read("CA certificate", &ca_pem)?), key).map_err(|e| format!("{}: {e}", ca_pem.display()))?
    } else {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, "Backwaters cluster CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        write(&ca_key, key.serialize_pem().as_bytes(), true)?;
        write(&ca_pem, cert.pem().as_bytes(), false)?;
        Issuer::new(params, key)
    };
    let mut out = Generated { ca: ca_pem, nodes: vec![] };
    for (name, hosts) in nodes {
        let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        if !(cert_path.exists() && key_path.exists()) {
            let mut params = CertificateParams::new(hosts.clone()).map_err(|e| format!("node {name}: hosts {hosts:?}: {e}"))?;
            params.distinguished_name.push(DnType::CommonName, name.as_str());
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            let key = KeyPair::generate().map_err(|e| e.to_string())?;
            let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
            write(&key_path, key.serialize_pem().as_bytes(), true)?;
            write(&cert_path, cert.pem().as_bytes(), false)?;
        }
        out.nodes.push((name.clone(), cert_path, key_path));
    }
    Ok(out)
}

fn write(path: &Path, bytes: &[u8], private: bool) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(if private { 0o600 } else { 0o644 }).open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_subjects_become_kafka_principals() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["reader.local".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Security, Inc");
        params.distinguished_name.push(rcgen::DnType::CommonName, "reader");
        let cert = params.self_signed(&key).unwrap();
        // Kafka's RFC 2253 form: most specific first, specials escaped.
        assert_eq!(principal_of(cert.der()).as_deref(), Some("User:CN=reader,O=Security\\, Inc"));
        assert_eq!(principal_of(&CertificateDer::from(vec![1, 2, 3])), None);
    }

    #[test]
    fn generated_files_load_and_a_rerun_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path(), &[("node-1".into(), vec!["127.0.0.1".into(), "localhost".into()])]).unwrap();
        let (_, cert, key) = &g.nodes[0];
        let t = NodeTls::load(TlsPaths { ca: ("tls.ca", &g.ca), cert: ("tls.cert", cert), key: ("tls.key", key) }).unwrap();
        t.sessions().unwrap();
        let before = std::fs::read(cert).unwrap();
        let g2 = generate(dir.path(), &[("node-1".into(), vec![]), ("node-2".into(), vec!["10.0.0.2".into()])]).unwrap();
        assert_eq!(std::fs::read(cert).unwrap(), before, "an existing node certificate is kept");
        // node-2 is signed by the same CA as node-1.
        assert_eq!(std::fs::read(&g2.ca).unwrap(), std::fs::read(&g.ca).unwrap());
        let (_, c2, k2) = &g2.nodes[1];
        NodeTls::load(TlsPaths { ca: ("tls.ca", &g2.ca), cert: ("tls.cert", c2), key: ("tls.key", k2) }).unwrap();
    }

    #[test]
    fn a_certificate_must_come_from_the_ca_and_name_the_hosts() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ga = generate(a.path(), &[("n".into(), vec!["127.0.0.1".into(), "node1.internal".into()])]).unwrap();
        let gb = generate(b.path(), &[("n".into(), vec!["127.0.0.1".into()])]).unwrap();
        let load = |ca: &Path, g: &Generated| NodeTls::load(TlsPaths { ca: ("tls.ca", ca), cert: ("tls.cert", &g.nodes[0].1), key: ("tls.key", &g.nodes[0].2) }).unwrap();
        let hosts = |h: &[&str]| h.iter().map(|h| ("nodes[0].grpc".to_string(), h.to_string())).collect::<Vec<_>>();
        load(&ga.ca, &ga).check_names("tls.cert", &hosts(&["127.0.0.1", "node1.internal"])).unwrap();
        let e = load(&ga.ca, &ga).check_names("tls.cert", &hosts(&["10.0.0.7"])).unwrap_err();
        assert!(e.starts_with("tls.cert: the certificate does not name 10.0.0.7 (the host of nodes[0].grpc)"), "{e}");
        let e = load(&ga.ca, &gb).check_names("tls.cert", &hosts(&["127.0.0.1"])).unwrap_err();
        assert!(e.contains("not signed by the cluster CA"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path(), &[("a".into(), vec!["127.0.0.1".into()]), ("b".into(), vec!["127.0.0.1".into()])]).unwrap();
        let e = NodeTls::load(TlsPaths { ca: ("tls.ca", &g.ca), cert: ("tls.cert", &g.nodes[0].1), key: ("nodes[0].tls_key", &g.nodes[1].2) }).err().unwrap();
        assert!(e.starts_with("nodes[0].tls_key:"), "{e}");
        let e = NodeTls::load(TlsPaths { ca: ("tls.ca", &g.nodes[0].2), cert: ("tls.cert", &g.nodes[0].1), key: ("tls.key", &g.nodes[0].2) }).err().unwrap();
        assert!(e.starts_with("tls.ca:"), "{e}");
        let e = NodeTls::load(TlsPaths { ca: ("tls.ca", &dir.path().join("nope.pem")), cert: ("tls.cert", &g.nodes[0].1), key: ("tls.key", &g.nodes[0].2) }).err().unwrap();
        assert!(e.starts_with("tls.ca: cannot read"), "{e}");
    }
}
