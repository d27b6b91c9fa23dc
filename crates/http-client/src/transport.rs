//! A reqwest client built from the connection settings, rebuilt when TLS files change.

use crate::config::{TlsConfig, TlsVersion};
use crate::h1::Pool;
use crate::tls::{self, TlsMaterial};
use crate::{ClientOptions, Error};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// The settings that shape connections (not authentication).
#[derive(Clone, Debug)]
pub(crate) struct ConnectionSettings {
    pub(crate) tls: TlsConfig,
    pub(crate) proxy: Option<url::Url>,
    pub(crate) follow_redirects: bool,
    pub(crate) enable_http2: bool,
}

/// The current reqwest client and the TLS inputs it was built from.
#[derive(Debug)]
pub(crate) struct Transport {
    settings: ConnectionSettings,
    options: ClientOptions,
    current: RwLock<Current>,
    /// When the TLS files are checked next.
    next_check: Mutex<Instant>,
}

#[derive(Debug)]
struct Current {
    client: reqwest::Client,
    /// The lean HTTP/1.1 path, when the settings allow it (see `h1`).
    lean: Option<Arc<Pool>>,
    fingerprint: u64,
}

/// The clients to use for one request.
pub(crate) struct Clients {
    pub(crate) reqwest: reqwest::Client,
    pub(crate) lean: Option<Arc<Pool>>,
}

impl Transport {
    pub(crate) fn new(
        settings: ConnectionSettings,
        options: ClientOptions,
    ) -> Result<Transport, Error> {
        if matches!(
            settings.tls.min_version,
            Some(TlsVersion::Tls10 | TlsVersion::Tls11)
        ) {
            tracing::debug!(
                min_version = %settings.tls.min_version.map(|v| v.as_str()).unwrap_or_default(),
                "TLS 1.0 and 1.1 are not supported; the minimum TLS version is 1.2"
            );
        }
        let material = TlsMaterial::load_blocking(&settings.tls)?;
        let (client, lean) = build(&settings, &options, &material)?;
        Ok(Transport {
            next_check: Mutex::new(Instant::now() + options.tls_reload_interval),
            current: RwLock::new(Current {
                client,
                lean,
                fingerprint: material.fingerprint,
            }),
            settings,
            options,
        })
    }

    /// The client to use now. Every `tls_reload_interval` the TLS files are read again and the client is
    /// rebuilt if they changed (connections made with the old files are dropped with the old client).
    pub(crate) async fn client(&self) -> Result<reqwest::Client, Error> {
        Ok(self.clients().await?.reqwest)
    }

    /// [`client`](Self::client) and the lean path that goes with it.
    pub(crate) async fn clients(&self) -> Result<Clients, Error> {
        if !self.settings.tls.has_files() || !self.check_due() {
            return Ok(self.current_clients());
        }
        let material = TlsMaterial::load(&self.settings.tls).await?;
        let unchanged = self
            .current
            .read()
            .map(|c| c.fingerprint == material.fingerprint)
            .unwrap_or(false);
        if !unchanged {
            let (client, lean) = build(&self.settings, &self.options, &material)?;
            tracing::info!("TLS files changed; rebuilt the HTTP client");
            if let Ok(mut c) = self.current.write() {
                *c = Current {
                    client,
                    lean,
                    fingerprint: material.fingerprint,
                };
            }
        }
        // Only a successful check postpones the next one: while files are broken every request says so.
        if let Ok(mut next) = self.next_check.lock() {
            *next = Instant::now() + self.options.tls_reload_interval;
        }
        Ok(self.current_clients())
    }

    fn check_due(&self) -> bool {
        self.next_check
            .lock()
            .map(|n| Instant::now() >= *n)
            .unwrap_or(true)
    }

    fn current_clients(&self) -> Clients {
        let c = self.current.read().unwrap_or_else(|e| e.into_inner());
        Clients {
            reqwest: c.client.clone(),
            lean: c.lean.clone(),
        }
    }
}

fn build(
    settings: &ConnectionSettings,
    options: &ClientOptions,
    material: &TlsMaterial,
) -> Result<(reqwest::Client, Option<Arc<Pool>>), Error> {
    let alpn = if settings.enable_http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let tls = tls::client_config(&settings.tls, material, alpn)?;
    let sni = tls::server_name(&settings.tls)?;
    // The lean path: no proxy; https only when ALPN cannot pick h2, or when `server_name` must be sent as
    // the TLS ServerName (reqwest always sends the URL's host), over HTTP/1.1.
    let lean = (options.lean_http1 && settings.proxy.is_none()).then(|| {
        let lean_tls = (!settings.enable_http2 || sni.is_some()).then(|| {
            let mut lean_tls = tls.clone();
            lean_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            lean_tls
        });
        Arc::new(Pool::new(lean_tls, sni, options, settings.follow_redirects))
    });
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(if settings.follow_redirects {
            // Go's http.Client follows at most 10 redirects.
            reqwest::redirect::Policy::limited(crate::MAX_REDIRECTS)
        } else {
            reqwest::redirect::Policy::none()
        });
    if !settings.enable_http2 {
        b = b.http1_only();
    }
    b = match &settings.proxy {
        Some(url) => b.proxy(
            reqwest::Proxy::all(url.as_str())
                .map_err(|e| Error::Build(format!("invalid proxy_url: {e}")))?,
        ),
        // The environment's proxy variables are not used, as in the reference.
        None => b.no_proxy(),
    };
    if let Some(ua) = &options.user_agent {
        b = b.user_agent(ua.as_str());
    }
    if let Some(t) = options.connect_timeout {
        b = b.connect_timeout(t);
    }
    if let Some(n) = options.max_connections_per_host {
        b = b.pool_max_idle_per_host(n);
    }
    let client = b
        .build()
        .map_err(|e| Error::Build(crate::describe_error(&e)))?;
    Ok((client, lean))
}
