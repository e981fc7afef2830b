//! TLS to PostgreSQL, with rustls: which `sslmode`s mean what, where the trusted CAs come from,
//! and the connector tokio-postgres drives.
//!
//! The modes follow libpq's:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | when the server offers TLS | no (yes, chain only, when a CA file is given) |
//! | `require` | always, or the connection fails | no (yes, chain only, when a CA file is given) |
//! | `verify-ca` | always | the chain, against the CA file or the system's roots |
//! | `verify-full` | always | the chain, and that the certificate names the host connected to |
//!
//! `prefer` and `require` without a CA file encrypt but accept any certificate, as libpq does:
//! they protect against a passive listener, not against someone in the middle. A CA file
//! (`postgres_ca_cert`, or `sslrootcert` in the URL) makes every mode check the chain, again as
//! libpq does with its root certificate file.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, so `sslmode` and `sslrootcert`
//! are taken out of the URL here and the rest is handed to it.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::error::PostgresError;

/// The most bytes read from a CA file: a bundle of every public root is about 250 KiB.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The URL's `sslmode`, with the two verifying modes tokio-postgres does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            "allow" => Err(
                "sslmode=allow is not supported (it tries without TLS first): use prefer or disable"
                    .to_owned(),
            ),
            other => Err(format!(
                "sslmode must be disable, prefer, require, verify-ca or verify-full, not {other:?}"
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether TLS is tried, and whether it is a must.
    pub(crate) fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            Self::Disable => tokio_postgres::config::SslMode::Disable,
            Self::Prefer => tokio_postgres::config::SslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS settings a URL carries, and the URL without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlTls {
    /// The URL as tokio-postgres may parse it.
    pub(crate) rest: String,
    pub(crate) mode: SslMode,
    /// `sslrootcert`; `system` means the system's roots, as in libpq.
    pub(crate) root_cert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of a URL (`postgres://…?sslmode=…`) or a key/value
/// string (`host=… sslmode=…`). Without `sslmode` the mode is `prefer`, libpq's default.
pub(crate) fn split_url(url: &str) -> Result<UrlTls, String> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (rest, params) = if is_url {
        take_query_params(url)
    } else {
        take_key_values(url)
    };
    let mut mode = None;
    let mut root_cert = None;
    for (key, value) in params {
        match key.as_str() {
            "sslmode" => mode = Some(SslMode::parse(&value)?),
            _ => root_cert = Some(value),
        }
    }
    Ok(UrlTls {
        rest,
        mode: mode.unwrap_or(SslMode::Prefer),
        root_cert,
    })
}

const TLS_KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

fn take_query_params(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        if TLS_KEYS.contains(&key.as_str()) {
            taken.push((key, percent_decode(value)));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

/// Key/value strings: only unquoted `key=value` words are taken; everything else (quoted values
/// of other keys included) stays as written.
fn take_key_values(url: &str) -> (String, Vec<(String, String)>) {
    let mut rest = String::with_capacity(url.len());
    let mut taken = Vec::new();
    for word in url.split_inclusive(char::is_whitespace) {
        let trimmed = word.trim_end();
        match trimmed.split_once('=') {
            Some((key, value)) if TLS_KEYS.contains(&key) && !value.starts_with('\'') => {
                taken.push((key.to_owned(), value.to_owned()));
            }
            _ => rest.push_str(word),
        }
    }
    (rest, taken)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes
            .get(at + 1..at + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[at], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Where the trusted CAs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    File(PathBuf),
    System,
}

impl std::fmt::Display for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "the CA file {}", path.display()),
            Self::System => f.write_str("the system's trusted roots"),
        }
    }
}

/// How connections do TLS: one rustls configuration for every connection of a store. Cheap to
/// clone; it is what tokio-postgres and the pool take as their `MakeTlsConnect`.
#[derive(Clone)]
pub(crate) struct PostgresTls {
    mode: SslMode,
    /// What a failed check was checked against, for the message.
    checked_against: Option<Arc<str>>,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for PostgresTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTls")
            .field("mode", &self.mode)
            .field("checked_against", &self.checked_against)
            .finish_non_exhaustive()
    }
}

impl PostgresTls {
    /// The TLS of `mode`, trusting `ca_cert` (the setting) or `root_cert` (the URL's
    /// `sslrootcert`); both may be given only when they agree.
    pub(crate) fn new(
        mode: SslMode,
        ca_cert: Option<&Path>,
        root_cert: Option<&str>,
    ) -> Result<Self, PostgresError> {
        let invalid = |reason: String| PostgresError::Tls { reason };
        let from_url = root_cert.map(|value| match value {
            "system" => Roots::System,
            path => Roots::File(PathBuf::from(path)),
        });
        let given = match (ca_cert.map(|path| Roots::File(path.to_owned())), from_url) {
            (Some(setting), Some(url)) if setting != url => {
                return Err(invalid(format!(
                    "postgres_ca_cert ({setting}) and the URL's sslrootcert ({url}) disagree: give one"
                )));
            }
            (setting, url) => setting.or(url),
        };
        // tokio-postgres asks for a connector even when it will not use it (`disable`), so
        // there is one, which checks nothing and loads no CA.
        let roots = match (mode, given) {
            (SslMode::Disable, _) => None,
            (_, Some(roots)) => Some(roots),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => Some(Roots::System),
            (_, None) => None,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &roots {
            None => Arc::new(AnyCertificate {
                provider: Arc::clone(&provider),
            }),
            Some(roots) => {
                let store = Arc::new(load_roots(roots)?);
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(store, Arc::clone(&provider))
                        .build()
                        .map_err(|error| invalid(format!("cannot use {roots}: {error}")))?;
                if mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly { webpki })
                }
            }
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid(format!("building the TLS configuration: {error}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // PostgreSQL 17 servers taking direct TLS (`sslnegotiation=direct`) require this ALPN;
        // older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            mode,
            checked_against: roots.map(|roots| Arc::from(roots.to_string())),
            config: Arc::new(config),
        })
    }

    pub(crate) fn mode(&self) -> SslMode {
        self.mode
    }
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, PostgresError> {
    let invalid = |reason: String| PostgresError::Tls { reason };
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let pem = read_bounded(path)
                .map_err(|error| invalid(format!("cannot read {roots}: {error}")))?;
            let certificates = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| invalid(format!("{roots} is not valid PEM: {error}")))?;
            if certificates.is_empty() {
                return Err(invalid(format!("{roots} holds no certificate")));
            }
            for certificate in certificates {
                store
                    .add(certificate)
                    .map_err(|error| invalid(format!("{roots} holds an unusable CA: {error}")))?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            // Unparsable entries in a system bundle are common and harmless.
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(invalid(format!(
                    "no trusted roots found on this system ({}): give the CA that signed the \
                     server's certificate with postgres_ca_cert or sslrootcert",
                    if errors.is_empty() {
                        "the trust store is empty".to_owned()
                    } else {
                        errors.join("; ")
                    }
                )));
            }
        }
    }
    Ok(store)
}

fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(io::Error::other(format!(
            "larger than {MAX_CA_FILE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// `prefer` and `require` without a CA: any certificate is accepted, but the handshake's
/// signatures are still checked, so the session is with whoever holds that certificate's key.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the certificate is not
/// checked. webpki checks the chain before the name, so a name mismatch is the only error
/// that can be left over once the chain passed.
#[derive(Debug)]
struct ChainOnly {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Why a TLS session with the database could not be set up. Its text is what the error of a
/// failed connection ends with, so it says what to check.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("the host name {host:?} cannot be checked against a certificate: {reason}")]
    HostName { host: String, reason: String },

    #[error(
        "certificate verification failed for the PostgreSQL server at {host} \
         (sslmode={mode}, trusting {trusted}): {cause}"
    )]
    Untrusted {
        host: String,
        mode: SslMode,
        trusted: Arc<str>,
        cause: rustls::Error,
    },

    #[error("the TLS handshake with {host} failed: {cause}")]
    Failed { host: String, cause: io::Error },
}

impl<S> MakeTlsConnect<S> for PostgresTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = HandshakeError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, HandshakeError> {
        let config = Arc::clone(&self.config);
        let server_name = match ServerName::try_from(host.to_owned()) {
            Ok(name) => name,
            // Without a name to check, a mode that does not check names can still encrypt.
            Err(_) if self.mode != SslMode::VerifyFull => {
                ServerName::try_from("postgresql.invalid").map_err(|error| {
                    HandshakeError::HostName {
                        host: host.to_owned(),
                        reason: error.to_string(),
                    }
                })?
            }
            Err(error) => {
                return Err(HandshakeError::HostName {
                    host: host.to_owned(),
                    reason: error.to_string(),
                });
            }
        };
        Ok(RustlsConnect {
            config,
            server_name,
            host: host.to_owned(),
            mode: self.mode,
            checked_against: self.checked_against.clone(),
        })
    }
}

/// One connection's handshake, made by [`PostgresTls`].
#[derive(Debug)]
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    host: String,
    mode: SslMode,
    checked_against: Option<Arc<str>>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, HandshakeError>> + Send>>;

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = HandshakeError;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        Box::pin(async move {
            let connector = tokio_rustls::TlsConnector::from(self.config);
            match connector.connect(self.server_name, stream).await {
                Ok(stream) => Ok(RustlsStream(stream)),
                Err(error) => Err(handshake_error(
                    error,
                    self.host,
                    self.mode,
                    self.checked_against,
                )),
            }
        })
    }
}

/// Names a certificate that did not pass as such; any other failure keeps its own words.
fn handshake_error(
    error: io::Error,
    host: String,
    mode: SslMode,
    checked_against: Option<Arc<str>>,
) -> HandshakeError {
    let rejected = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .filter(|cause| matches!(cause, rustls::Error::InvalidCertificate(_)))
        .cloned();
    match (rejected, checked_against) {
        (Some(cause), Some(trusted)) => HandshakeError::Untrusted {
            host,
            mode,
            trusted,
            cause,
        },
        _ => HandshakeError::Failed { host, cause: error },
    }
}

/// A TLS session with the database.
#[derive(Debug)]
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// No channel binding is offered: SCRAM then runs without it, as with a client that
    /// does not support it (libpq's `channel_binding=prefer` accepts that).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S> AsyncRead for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_taken_out_of_urls_and_the_rest_is_kept() {
        let split = split_url(
            "postgres://u:pw@db:5432/runnel?sslmode=verify-full&options=-c%20a%3Db&sslrootcert=%2Fetc%2Fca.pem",
        )
        .expect("valid");
        assert_eq!(
            split.rest,
            "postgres://u:pw@db:5432/runnel?options=-c%20a%3Db"
        );
        assert_eq!(split.mode, SslMode::VerifyFull);
        assert_eq!(split.root_cert.as_deref(), Some("/etc/ca.pem"));

        let only = split_url("postgresql://db/runnel?sslmode=verify-ca").expect("valid");
        assert_eq!(only.rest, "postgresql://db/runnel");
        assert_eq!(only.mode, SslMode::VerifyCa);

        let plain = split_url("postgres://db/runnel").expect("valid");
        assert_eq!(plain.mode, SslMode::Prefer, "libpq's default");
        assert_eq!(plain.rest, "postgres://db/runnel");

        let pairs =
            split_url("host=db sslmode=require options='-c search_path=x' sslrootcert=/ca.pem")
                .expect("valid");
        assert_eq!(pairs.rest, "host=db options='-c search_path=x' ");
        assert_eq!(pairs.mode, SslMode::Require);
        assert_eq!(pairs.root_cert.as_deref(), Some("/ca.pem"));
    }

    #[test]
    fn unknown_and_unsupported_sslmodes_are_refused_by_name() {
        let unknown = split_url("postgres://db/x?sslmode=strict").expect_err("unknown");
        assert!(
            unknown.contains("verify-full") && unknown.contains("strict"),
            "{unknown}"
        );
        let allow = split_url("postgres://db/x?sslmode=allow").expect_err("unsupported");
        assert!(allow.contains("allow"), "{allow}");
    }

    #[test]
    fn a_ca_file_that_is_missing_empty_or_in_conflict_is_refused() {
        let missing = PostgresTls::new(
            SslMode::VerifyFull,
            Some(Path::new("/nonexistent/ca.pem")),
            None,
        )
        .expect_err("missing");
        assert!(
            missing.to_string().contains("/nonexistent/ca.pem"),
            "{missing}"
        );

        let dir = std::env::temp_dir().join(format!("runnel-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let error = PostgresTls::new(SslMode::Require, Some(&empty), None).expect_err("empty");
        assert!(error.to_string().contains("no certificate"), "{error}");

        let conflict = PostgresTls::new(SslMode::Require, Some(&empty), Some("/other.pem"))
            .expect_err("disagree");
        assert!(conflict.to_string().contains("sslrootcert"), "{conflict}");
        let _ = std::fs::remove_dir_all(&dir);

        let disabled = PostgresTls::new(SslMode::Disable, None, None).expect("disable");
        assert_eq!(disabled.mode(), SslMode::Disable);
        let unverified = PostgresTls::new(SslMode::Require, None, None).expect("require");
        assert!(unverified.checked_against.is_none());
    }
}
