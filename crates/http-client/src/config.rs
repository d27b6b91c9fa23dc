//! The River arguments: `bearer_token`, `bearer_token_file`, `proxy_url`, `follow_redirects`, `enable_http2`
//! and the blocks `basic_auth`, `authorization`, `oauth2` and `tls_config`.
//!
//! Each nested block type implements [`Validate`], so `river::decode` reports its problems (conflicting
//! attributes, ...) on that block's header. Attribute types that can be wrong on their own ([`ProxyUrl`],
//! [`TlsVersion`]) reject bad values while decoding, so those errors point at the attribute itself. What is
//! left for the embedding component is the conflict between authentication methods, which
//! [`HttpClientConfig::validate`] reports with the reference message.

use river::decode::{Block, Validate};
use river::value::Secret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// The default of `follow_redirects`.
pub const DEFAULT_FOLLOW_REDIRECTS: bool = true;
/// The default of `enable_http2`.
pub const DEFAULT_ENABLE_HTTP2: bool = true;

/// serde default for `follow_redirects` and `enable_http2` in structs that embed the fields.
pub fn default_true() -> bool {
    true
}

/// `Some(text)` when `s` is set and not empty: the reference treats `""` as "not configured".
pub(crate) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `Some(secret)` when set and not empty.
pub(crate) fn non_empty_secret(s: &Option<Secret>) -> Option<&Secret> {
    s.as_ref().filter(|s| !s.expose().is_empty())
}

/// The HTTP client settings of `pyroscope.scrape` and of `pyroscope.write`'s `endpoint` blocks.
///
/// River decoding does not support `#[serde(flatten)]`, so a component embeds these fields in its own
/// arguments struct, with the same names, types and serde attributes, and converts with
/// [`http_client_config!`](crate::http_client_config) (see the crate documentation). The struct itself
/// decodes too, e.g. for a dedicated block or for tests.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpClientConfig {
    /// `basic_auth { ... }`
    pub basic_auth: Option<Block<BasicAuth>>,
    /// `authorization { ... }`
    pub authorization: Option<Block<Authorization>>,
    /// `oauth2 { ... }`
    pub oauth2: Option<Block<OAuth2Config>>,
    /// `bearer_token`: the same as `authorization { type = "Bearer", credentials = ... }`.
    pub bearer_token: Option<Secret>,
    /// `bearer_token_file`: the same as `authorization { type = "Bearer", credentials_file = ... }`.
    pub bearer_token_file: Option<String>,
    /// `proxy_url`: an HTTP(S) or SOCKS5 proxy for every request.
    pub proxy_url: Option<ProxyUrl>,
    /// `tls_config { ... }`
    pub tls_config: Option<Block<TlsConfig>>,
    /// `follow_redirects` (default true).
    pub follow_redirects: bool,
    /// `enable_http2` (default true): offer HTTP/2 through ALPN on TLS connections.
    pub enable_http2: bool,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: None,
            bearer_token_file: None,
            proxy_url: None,
            tls_config: None,
            follow_redirects: DEFAULT_FOLLOW_REDIRECTS,
            enable_http2: DEFAULT_ENABLE_HTTP2,
        }
    }
}

/// Builds an [`HttpClientConfig`] from any struct that embeds its fields (same names and types), e.g. a
/// component's arguments: `http_client::http_client_config!(args)`. The expression is borrowed and its fields
/// are cloned.
#[macro_export]
macro_rules! http_client_config {
    ($args:expr) => {{
        let a = &$args;
        $crate::HttpClientConfig {
            basic_auth: a.basic_auth.clone(),
            authorization: a.authorization.clone(),
            oauth2: a.oauth2.clone(),
            bearer_token: a.bearer_token.clone(),
            bearer_token_file: a.bearer_token_file.clone(),
            proxy_url: a.proxy_url.clone(),
            tls_config: a.tls_config.clone(),
            follow_redirects: a.follow_redirects,
            enable_http2: a.enable_http2,
        }
    }};
}

/// A problem with the settings, found by [`HttpClientConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// Where the problem is, from the component's body inwards: e.g. `["oauth2", "tls_config"]`, or `[]` for
    /// a conflict between top-level settings (report it on the component's block).
    pub path: Vec<&'static str>,
    /// The reference message, e.g. `at most one of ca_pem and ca_file must be configured`.
    pub message: String,
}

impl ConfigError {
    fn new(path: Vec<&'static str>, message: impl Into<String>) -> Self {
        ConfigError {
            path,
            message: message.into(),
        }
    }

    fn within(mut self, block: &'static str) -> Self {
        self.path.insert(0, block);
        self
    }
}

impl HttpClientConfig {
    /// Checks everything, nested blocks included, with the reference messages. When the config was decoded
    /// by `river::decode`, the nested blocks have already been checked (and reported on their own headers),
    /// so only the top-level conflicts remain: a component's `Validate` can simply return
    /// `http_client_config!(self).validate().map_err(|e| e.to_string())`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let configured = [
            self.basic_auth.is_some(),
            self.authorization.is_some(),
            self.oauth2.is_some(),
            non_empty_secret(&self.bearer_token).is_some(),
            non_empty(&self.bearer_token_file).is_some(),
        ];
        if configured.iter().filter(|c| **c).count() > 1 {
            return Err(ConfigError::new(
                Vec::new(),
                "at most one of basic_auth, authorization, oauth2, bearer_token & bearer_token_file must be configured",
            ));
        }
        if let Some(b) = &self.basic_auth {
            b.check().map_err(|e| e.within("basic_auth"))?;
        }
        if let Some(a) = &self.authorization {
            a.check().map_err(|e| e.within("authorization"))?;
        }
        if let Some(o) = &self.oauth2 {
            o.check().map_err(|e| e.within("oauth2"))?;
        }
        if let Some(t) = &self.tls_config {
            t.check().map_err(|e| e.within("tls_config"))?;
        }
        Ok(())
    }

    /// The proxy, when one is configured (an empty `proxy_url` means none).
    pub fn proxy(&self) -> Option<&url::Url> {
        self.proxy_url.as_ref().and_then(ProxyUrl::url)
    }
}

impl Validate for HttpClientConfig {
    fn validate(&self) -> Result<(), String> {
        HttpClientConfig::validate(self).map_err(|e| e.message)
    }
}

/// `basic_auth { username = "..." password = "..." }` (or `password_file`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct BasicAuth {
    /// The user name.
    pub username: Option<String>,
    /// The password.
    pub password: Option<Secret>,
    /// A file holding the password; re-read at each request (surrounding white space is trimmed).
    pub password_file: Option<String>,
}

impl BasicAuth {
    fn check(&self) -> Result<(), ConfigError> {
        if non_empty_secret(&self.password).is_some() && non_empty(&self.password_file).is_some() {
            return Err(ConfigError::new(
                Vec::new(),
                "at most one of basic_auth password & password_file must be configured",
            ));
        }
        Ok(())
    }
}

impl Validate for BasicAuth {
    fn validate(&self) -> Result<(), String> {
        self.check().map_err(|e| e.message)
    }
}

/// The default authorization type.
pub const DEFAULT_AUTHORIZATION_TYPE: &str = "Bearer";

/// `authorization { type = "Bearer" credentials = "..." }` (or `credentials_file`): sends
/// `Authorization: <type> <credentials>`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Authorization {
    /// The scheme, `Bearer` when empty.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// The credentials.
    pub credentials: Option<Secret>,
    /// A file holding the credentials; re-read at each request (surrounding white space is trimmed).
    pub credentials_file: Option<String>,
}

impl Authorization {
    /// The scheme sent: the configured type without surrounding white space, `Bearer` when empty.
    pub fn scheme(&self) -> &str {
        match self.type_.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => t,
            _ => DEFAULT_AUTHORIZATION_TYPE,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if non_empty_secret(&self.credentials).is_some()
            && non_empty(&self.credentials_file).is_some()
        {
            return Err(ConfigError::new(
                Vec::new(),
                "at most one of authorization credentials & credentials_file must be configured",
            ));
        }
        if self.scheme().eq_ignore_ascii_case("basic") {
            return Err(ConfigError::new(
                Vec::new(),
                r#"authorization type cannot be set to "basic", use "basic_auth" block instead"#,
            ));
        }
        Ok(())
    }
}

impl Validate for Authorization {
    fn validate(&self) -> Result<(), String> {
        self.check().map_err(|e| e.message)
    }
}

/// `oauth2 { ... }`: the OAuth 2.0 client-credentials flow.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct OAuth2Config {
    /// The client ID.
    pub client_id: Option<String>,
    /// The client secret.
    pub client_secret: Option<Secret>,
    /// A file holding the client secret; re-read when a token is needed.
    pub client_secret_file: Option<String>,
    /// Extra form parameters of the token request.
    pub endpoint_params: BTreeMap<String, String>,
    /// A proxy for the token requests.
    pub proxy_url: Option<ProxyUrl>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// Where tokens come from.
    pub token_url: Option<String>,
    /// TLS settings of the token requests.
    pub tls_config: Option<Block<TlsConfig>>,
}

impl OAuth2Config {
    fn check(&self) -> Result<(), ConfigError> {
        if non_empty(&self.client_id).is_none() {
            return Err(ConfigError::new(
                Vec::new(),
                "oauth2 client_id must be configured",
            ));
        }
        let secret = non_empty_secret(&self.client_secret).is_some();
        let file = non_empty(&self.client_secret_file).is_some();
        if secret && file {
            return Err(ConfigError::new(
                Vec::new(),
                "at most one of oauth2 client_secret & client_secret_file must be configured",
            ));
        }
        if !secret && !file {
            return Err(ConfigError::new(
                Vec::new(),
                "either oauth2 client_secret or client_secret_file must be configured",
            ));
        }
        match non_empty(&self.token_url) {
            None => {
                return Err(ConfigError::new(
                    Vec::new(),
                    "oauth2 token_url must be configured",
                ))
            }
            Some(u) => {
                let parsed = url::Url::parse(u).map_err(|e| {
                    ConfigError::new(vec!["token_url"], format!("invalid oauth2 token_url: {e}"))
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConfigError::new(
                        vec!["token_url"],
                        format!(
                            "invalid oauth2 token_url: unsupported scheme {:?}, expected http or https",
                            parsed.scheme()
                        ),
                    ));
                }
            }
        }
        if let Some(t) = &self.tls_config {
            t.check().map_err(|e| e.within("tls_config"))?;
        }
        Ok(())
    }

    /// The proxy for token requests, when one is configured.
    pub fn proxy(&self) -> Option<&url::Url> {
        self.proxy_url.as_ref().and_then(ProxyUrl::url)
    }
}

impl Validate for OAuth2Config {
    fn validate(&self) -> Result<(), String> {
        // Nested tls_config blocks were validated (and positioned) on their own.
        let mut shallow = self.clone();
        shallow.tls_config = None;
        shallow.check().map_err(|e| e.message)
    }
}

/// `tls_config { ... }`
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TlsConfig {
    /// CA certificates (PEM) to verify the server with, instead of the system's.
    pub ca_pem: Option<String>,
    /// A file of CA certificates (PEM); re-read when it changes.
    pub ca_file: Option<String>,
    /// The client certificate chain (PEM).
    pub cert_pem: Option<String>,
    /// A file holding the client certificate chain (PEM); re-read when it changes.
    pub cert_file: Option<String>,
    /// Skip verifying the server's certificate (the handshake signature is still checked).
    pub insecure_skip_verify: bool,
    /// A file holding the client key (PEM); re-read when it changes.
    pub key_file: Option<String>,
    /// The client key (PEM).
    pub key_pem: Option<Secret>,
    /// The lowest TLS version accepted. `TLS10` and `TLS11` are accepted and mean TLS 1.2: the TLS library
    /// implements only 1.2 and 1.3.
    pub min_version: Option<TlsVersion>,
    /// The name the server's certificate is verified against, instead of the URL's host.
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// Whether a client certificate is configured.
    pub fn has_client_cert(&self) -> bool {
        non_empty(&self.cert_pem).is_some() || non_empty(&self.cert_file).is_some()
    }

    /// Whether any file is configured (then the client watches it for changes).
    pub fn has_files(&self) -> bool {
        non_empty(&self.ca_file).is_some()
            || non_empty(&self.cert_file).is_some()
            || non_empty(&self.key_file).is_some()
    }

    fn check(&self) -> Result<(), ConfigError> {
        let pairs = [
            (
                non_empty(&self.ca_pem).is_some(),
                non_empty(&self.ca_file).is_some(),
                "ca_pem",
                "ca_file",
            ),
            (
                non_empty(&self.cert_pem).is_some(),
                non_empty(&self.cert_file).is_some(),
                "cert_pem",
                "cert_file",
            ),
            (
                non_empty_secret(&self.key_pem).is_some(),
                non_empty(&self.key_file).is_some(),
                "key_pem",
                "key_file",
            ),
        ];
        for (a, b, an, bn) in pairs {
            if a && b {
                return Err(ConfigError::new(
                    Vec::new(),
                    format!("at most one of {an} and {bn} must be configured"),
                ));
            }
        }
        let cert = self.has_client_cert();
        let key = non_empty_secret(&self.key_pem).is_some() || non_empty(&self.key_file).is_some();
        if cert && !key {
            return Err(ConfigError::new(
                Vec::new(),
                "exactly one of key_pem or key_file must be configured when a client certificate is configured",
            ));
        }
        if key && !cert {
            return Err(ConfigError::new(
                Vec::new(),
                "exactly one of cert_pem or cert_file must be configured when a client key is configured",
            ));
        }
        if let Some(name) = non_empty(&self.server_name) {
            if rustls_pki_types::ServerName::try_from(name).is_err() {
                return Err(ConfigError::new(
                    vec!["server_name"],
                    format!("invalid server_name {name:?}: not a DNS name or IP address"),
                ));
            }
        }
        Ok(())
    }
}

impl Validate for TlsConfig {
    fn validate(&self) -> Result<(), String> {
        self.check().map_err(|e| e.message)
    }
}

/// `min_version`: `TLS10`, `TLS11`, `TLS12` or `TLS13`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.0 (treated as TLS 1.2: older versions are not implemented).
    Tls10,
    /// TLS 1.1 (treated as TLS 1.2: older versions are not implemented).
    Tls11,
    /// TLS 1.2
    Tls12,
    /// TLS 1.3
    Tls13,
}

impl TlsVersion {
    /// The River spelling, e.g. `TLS12`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLS10",
            TlsVersion::Tls11 => "TLS11",
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }

    /// Parses the River spelling.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "TLS10" => Ok(TlsVersion::Tls10),
            "TLS11" => Ok(TlsVersion::Tls11),
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            other => Err(format!(
                "unknown TLS version: {other} (expected one of TLS10, TLS11, TLS12, TLS13)"
            )),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TlsVersion::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A `proxy_url`: empty (no proxy) or an `http`, `https`, `socks5` or `socks5h` URL. Its `Debug`,
/// `Display` and `Serialize` hide a password in the URL.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyUrl(Option<url::Url>);

impl ProxyUrl {
    /// Parses and checks a proxy URL; the empty string means no proxy.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(ProxyUrl(None));
        }
        // The parser's message never repeats the input, which may hold a password.
        let u = url::Url::parse(text).map_err(|e| format!("invalid proxy_url: {e}"))?;
        if !matches!(u.scheme(), "http" | "https" | "socks5" | "socks5h") {
            return Err(format!(
                "invalid proxy_url: unsupported scheme {:?}, expected http, https, socks5 or socks5h",
                u.scheme()
            ));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err("invalid proxy_url: missing host".into());
        }
        Ok(ProxyUrl(Some(u)))
    }

    /// The URL, unless empty.
    pub fn url(&self) -> Option<&url::Url> {
        self.0.as_ref()
    }

    /// The URL with its password replaced by `xxxxx`, for display.
    pub fn redacted(&self) -> String {
        match &self.0 {
            None => String::new(),
            Some(u) => {
                let mut u = u.clone();
                if u.password().is_some() {
                    let _ = u.set_password(Some("xxxxx"));
                }
                u.to_string()
            }
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ProxyUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for ProxyUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ProxyUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}
