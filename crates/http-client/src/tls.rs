//! Turning a [`TlsConfig`] into a rustls client configuration (ring provider only).

use crate::config::{non_empty, non_empty_secret, TlsConfig, TlsVersion};
use crate::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The crypto provider every client uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The PEM inputs of a TLS config, read from text or files. Its `Debug` hides the key.
#[derive(Clone, Default)]
pub(crate) struct TlsMaterial {
    ca: Option<Vec<u8>>,
    cert: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    /// A digest of the file contents, to notice changes.
    pub(crate) fingerprint: u64,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .field("cert", &self.cert.as_ref().map(Vec::len))
            .field("key", &self.key.as_ref().map(|_| "(secret)"))
            .finish()
    }
}

impl TlsMaterial {
    /// Reads the configured PEM text and files, blocking (used when a client is built).
    pub(crate) fn load_blocking(cfg: &TlsConfig) -> Result<TlsMaterial, Error> {
        let read = |what: &'static str, path: &str| {
            std::fs::read(path).map_err(|source| Error::ReadFile {
                what,
                path: path.into(),
                source,
            })
        };
        let ca = non_empty(&cfg.ca_file)
            .map(|f| read("CA file", f))
            .transpose()?;
        let cert = non_empty(&cfg.cert_file)
            .map(|f| read("client certificate file", f))
            .transpose()?;
        let key = non_empty(&cfg.key_file)
            .map(|f| read("client key file", f))
            .transpose()?;
        Ok(TlsMaterial::assemble(cfg, ca, cert, key))
    }

    /// Reads the configured PEM text and files without blocking the runtime.
    pub(crate) async fn load(cfg: &TlsConfig) -> Result<TlsMaterial, Error> {
        async fn read(what: &'static str, path: Option<&str>) -> Result<Option<Vec<u8>>, Error> {
            let Some(path) = path else { return Ok(None) };
            tokio::fs::read(path)
                .await
                .map(Some)
                .map_err(|source| Error::ReadFile {
                    what,
                    path: path.into(),
                    source,
                })
        }
        let ca = read("CA file", non_empty(&cfg.ca_file)).await?;
        let cert = read("client certificate file", non_empty(&cfg.cert_file)).await?;
        let key = read("client key file", non_empty(&cfg.key_file)).await?;
        Ok(TlsMaterial::assemble(cfg, ca, cert, key))
    }

    /// Inline PEM wins over (absent) files; validation rules out having both.
    fn assemble(
        cfg: &TlsConfig,
        ca_file: Option<Vec<u8>>,
        cert_file: Option<Vec<u8>>,
        key_file: Option<Vec<u8>>,
    ) -> TlsMaterial {
        let ca = non_empty(&cfg.ca_pem)
            .map(|p| p.as_bytes().to_vec())
            .or(ca_file);
        let cert = non_empty(&cfg.cert_pem)
            .map(|p| p.as_bytes().to_vec())
            .or(cert_file);
        let key = non_empty_secret(&cfg.key_pem)
            .map(|p| p.expose().as_bytes().to_vec())
            .or(key_file);
        let mut hasher = DefaultHasher::new();
        for part in [&ca, &cert, &key] {
            part.hash(&mut hasher);
        }
        TlsMaterial {
            ca,
            cert,
            key,
            fingerprint: hasher.finish(),
        }
    }
}

/// Builds the rustls configuration. `alpn` is what is offered (`h2`, `http/1.1`).
pub(crate) fn client_config(
    cfg: &TlsConfig,
    material: &TlsMaterial,
    alpn: Vec<Vec<u8>>,
) -> Result<rustls::ClientConfig, Error> {
    let provider = provider();
    let versions: &[&'static rustls::SupportedProtocolVersion] = match cfg.min_version {
        Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        // TLS 1.0 and 1.1 are not implemented: their minimum is effectively 1.2.
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let inner: Arc<dyn ServerCertVerifier> = match &material.ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            let mut count = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| Error::Tls(format!("unable to parse CA certificate: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("unable to use CA certificate: {e}")))?;
                count += 1;
            }
            if count == 0 {
                return Err(Error::Tls(
                    "no CA certificate found in ca_pem/ca_file".into(),
                ));
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::Tls(format!("unable to use the CA certificates: {e}")))?
        }
        None => Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
                Error::Tls(format!("unable to load the system CA certificates: {e}"))
            })?,
        ),
    };
    let name_override = server_name(cfg)?;
    let verifier = Arc::new(Verifier {
        inner,
        name_override,
        skip: cfg.insecure_skip_verify,
        provider: provider.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::Tls(format!("unsupported TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&material.cert, &material.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Tls(format!("unable to parse client certificate: {e}")))?;
            if chain.is_empty() {
                return Err(Error::Tls(
                    "no client certificate found in cert_pem/cert_file".into(),
                ));
            }
            // The parser's error never contains key material.
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| Error::Tls(format!("unable to parse client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Tls(format!("unable to use client certificate and key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn;
    Ok(config)
}

/// The configured `server_name`: the name to verify the server's certificate against and to send as the
/// TLS ServerName instead of the URL's host.
pub(crate) fn server_name(cfg: &TlsConfig) -> Result<Option<ServerName<'static>>, Error> {
    match non_empty(&cfg.server_name) {
        Some(n) => ServerName::try_from(n.to_owned())
            .map(Some)
            .map_err(|_| Error::Tls(format!("invalid server_name {n:?}"))),
        None => Ok(None),
    }
}

/// Verifies the server against the configured CAs, under the configured name, or not at all.
#[derive(Debug)]
struct Verifier {
    inner: Arc<dyn ServerCertVerifier>,
    name_override: Option<ServerName<'static>>,
    skip: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.skip {
            return Ok(ServerCertVerified::assertion());
        }
        let name = self.name_override.as_ref().unwrap_or(server_name);
        self.inner
            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
