//! HTTPS: the rustls configuration built from PEM files, and its reload when the files change,
//! so a certificate can be rotated without a restart.
//!
//! The files are re-read every `tls_reload_interval_ms` and compared with what was last loaded
//! (their contents, not their times: a copy that keeps the modification time, or a clock step,
//! must not hide a change). A change builds a whole new configuration; new connections get it,
//! open ones keep theirs. A change that does not load (a half-written file, a key that does not
//! match the certificate) is logged and the previous configuration stays in use: the next change
//! is tried again. Writing the key and then the certificate therefore passes through one bad
//! state, logged, and ends in the new pair.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// The PEM files of a TLS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate that chains to one of these CAs (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// Why TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} file {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the {what} file {path} is not valid PEM: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    #[error("the {what} file {path} holds no {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },

    #[error("the certificate {cert} and the key {key} cannot be used together: {source}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },

    #[error("the client CA file {path} cannot be used: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// The crypto provider of every TLS configuration here: aws-lc-rs, named explicitly so that no
/// process-wide default is needed (and two linked providers cannot make rustls panic).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Makes aws-lc-rs the process-wide rustls provider, for libraries (the HTTP client) that use
/// the default. Harmless when one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The files' contents as last read, to notice a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Contents {
    fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        Ok(Self {
            cert: read(&files.cert, "certificate")?,
            key: read(&files.key, "key")?,
            client_ca: files
                .client_ca
                .as_deref()
                .map(|path| read(path, "client CA"))
                .transpose()?,
        })
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The TLS configuration in use, swapped when the files change. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TlsReloader {
    files: TlsFiles,
    /// What the configuration in use was built from.
    loaded: Contents,
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsReloader {
    /// Loads the files; any problem is an error here, at start, where it is best seen.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let contents = Contents::read(files)?;
        let config = build(files, &contents)?;
        Ok(Self {
            files: files.clone(),
            loaded: contents,
            current: Arc::new(RwLock::new(Arc::new(config))),
        })
    }

    /// An acceptor with the configuration in use now.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(config) => Arc::clone(&config),
            // A writer never panics while holding the lock (it only swaps an `Arc`).
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        TlsAcceptor::from(config)
    }

    fn replace(&self, config: rustls::ServerConfig) {
        let config = Arc::new(config);
        match self.current.write() {
            Ok(mut current) => *current = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    /// Re-reads the files every `interval`, forever; run it as a task and abort it to stop.
    pub(crate) async fn watch(self, interval: Duration) {
        let mut loaded = self.loaded.clone();
        // The last contents that failed, so one bad state is logged once, not every interval.
        let mut failed: Option<Contents> = None;
        let mut unreadable = false;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let files = self.files.clone();
            let contents = match tokio::task::spawn_blocking(move || Contents::read(&files)).await {
                Ok(Ok(contents)) => contents,
                Ok(Err(error)) => {
                    // A file missing for a moment during a rename is normal: say it once.
                    if !unreadable {
                        tracing::warn!(error = %error, "cannot re-read the TLS files; still serving the previous certificate");
                        unreadable = true;
                    }
                    continue;
                }
                Err(_) => continue,
            };
            unreadable = false;
            if contents == loaded || failed.as_ref() == Some(&contents) {
                continue;
            }
            match build(&self.files, &contents) {
                Ok(config) => {
                    self.replace(config);
                    tracing::info!(cert = %self.files.cert.display(), "reloaded the TLS files: new connections use them");
                    loaded = contents;
                    failed = None;
                }
                Err(error) => {
                    tracing::error!(error = %error, "the TLS files changed but cannot be used; still serving the previous certificate");
                    failed = Some(contents);
                }
            }
        }
    }
}

/// A rustls server configuration from the files' contents: TLS 1.2 and 1.3, HTTP/1.1 by ALPN,
/// client certificates required when a client CA is configured.
fn build(files: &TlsFiles, contents: &Contents) -> Result<rustls::ServerConfig, TlsError> {
    let chain = certificates(&contents.cert, &files.cert, "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            what: "key",
            path: files.key.clone(),
            expected: "private key",
        },
        other => TlsError::Pem {
            what: "key",
            path: files.key.clone(),
            reason: other.to_string(),
        },
    })?;
    let provider = crypto_provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    let builder = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates(pem, path, "client CA")? {
                roots.add(certificate).map_err(|error| TlsError::ClientCa {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| TlsError::ClientCa {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn certificates(
    pem: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            what,
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_owned(),
            expected: "certificate",
        });
    }
    Ok(chain)
}
