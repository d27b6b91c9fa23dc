//! The arguments of `pyroscope.write`.

use http_client::{Authorization, BasicAuth, OAuth2Config, ProxyUrl, TlsConfig};
use pyroscope::ByteSize;
use river::decode::{Block, Validate};
use river::types::{Duration, OptionalSecret};
use river::value::Secret;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// Default `remote_timeout`.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `min_backoff_period`.
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Default `max_backoff_period`.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Default `max_backoff_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 10;
/// Default `queue_max_profiles`: profiles waiting per endpoint.
pub const DEFAULT_QUEUE_PROFILES: usize = 10_000;
/// Default `queue_max_bytes`: bytes of profiles waiting per endpoint.
pub const DEFAULT_QUEUE_BYTES: ByteSize = ByteSize::mib(64);
/// Default `parallelism`: requests in flight per endpoint.
pub const DEFAULT_PARALLELISM: usize = 4;

/// The `pyroscope.write` block.
///
/// ```river
/// pyroscope.write "default" {
///   external_labels = {"env" = "prod"}
///   endpoint {
///     url     = "https://profiles.example.com"
///     headers = {"X-Scope-OrgID" = "tenant-1"}
///   }
/// }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Arguments {
    /// Labels added to every profile, replacing same-named ones.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Where profiles are pushed. Each profile goes to every endpoint.
    #[serde(default, serialize_with = "serialize_blocks")]
    pub endpoint: Vec<Block<EndpointOptions>>,
}

fn serialize_blocks<S: Serializer, T: Serialize>(v: &[Block<T>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|b| &b.0))
}

impl Validate for Arguments {
    fn validate(&self) -> Result<(), String> {
        for name in self.external_labels.keys() {
            if !valid_label_name(name) {
                return Err(format!("invalid external label name {name:?}"));
            }
        }
        Ok(())
    }
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn default_remote_timeout() -> Duration {
    DEFAULT_REMOTE_TIMEOUT
}
fn default_min_backoff() -> Duration {
    DEFAULT_MIN_BACKOFF
}
fn default_max_backoff() -> Duration {
    DEFAULT_MAX_BACKOFF
}
fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}
fn default_queue_profiles() -> usize {
    DEFAULT_QUEUE_PROFILES
}
fn default_queue_bytes() -> ByteSize {
    DEFAULT_QUEUE_BYTES
}
fn default_parallelism() -> usize {
    DEFAULT_PARALLELISM
}

/// One `endpoint` block.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct EndpointOptions {
    /// A name for metrics and debug info (default: the URL).
    #[serde(default)]
    pub name: String,
    /// The server's base URL; the Push path is appended.
    pub url: String,
    /// How long one request may take.
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: Duration,
    /// Extra request headers (e.g. `X-Scope-OrgID`). Values may be secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, OptionalSecret>,
    /// The first retry delay.
    #[serde(default = "default_min_backoff")]
    pub min_backoff_period: Duration,
    /// The longest retry delay.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_period: Duration,
    /// Retries after the first attempt before a batch is dropped; 0 retries forever.
    #[serde(default = "default_max_retries")]
    pub max_backoff_retries: u32,
    /// Rill: profiles that may wait for this endpoint before new ones are dropped.
    #[serde(default = "default_queue_profiles")]
    pub queue_max_profiles: usize,
    /// Rill: bytes of profiles that may wait for this endpoint before new ones are dropped.
    #[serde(default = "default_queue_bytes")]
    pub queue_max_bytes: ByteSize,
    /// Rill: requests in flight at once to this endpoint.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    // ---- HTTP client settings (http_client::HttpClientConfig), shared with pyroscope.scrape ----
    /// Basic authentication.
    #[serde(default)]
    pub basic_auth: Option<Block<BasicAuth>>,
    /// A generic `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Block<Authorization>>,
    /// OAuth 2.0 client credentials.
    #[serde(default)]
    pub oauth2: Option<Block<OAuth2Config>>,
    /// A bearer token.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// A file holding a bearer token (read at each request).
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// A proxy to send requests through.
    #[serde(default)]
    pub proxy_url: Option<ProxyUrl>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<Block<TlsConfig>>,
    /// Whether redirects are followed.
    #[serde(default = "http_client::default_true")]
    pub follow_redirects: bool,
    /// Whether HTTP/2 is offered on TLS connections.
    #[serde(default = "http_client::default_true")]
    pub enable_http2: bool,
}

impl EndpointOptions {
    /// Options for `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        EndpointOptions {
            name: String::new(),
            url: url.into(),
            remote_timeout: DEFAULT_REMOTE_TIMEOUT,
            headers: BTreeMap::new(),
            min_backoff_period: DEFAULT_MIN_BACKOFF,
            max_backoff_period: DEFAULT_MAX_BACKOFF,
            max_backoff_retries: DEFAULT_MAX_RETRIES,
            queue_max_profiles: DEFAULT_QUEUE_PROFILES,
            queue_max_bytes: DEFAULT_QUEUE_BYTES,
            parallelism: DEFAULT_PARALLELISM,
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: None,
            bearer_token_file: None,
            proxy_url: None,
            tls_config: None,
            follow_redirects: http_client::DEFAULT_FOLLOW_REDIRECTS,
            enable_http2: http_client::DEFAULT_ENABLE_HTTP2,
        }
    }

    /// The HTTP client settings of this endpoint.
    pub fn http_client_config(&self) -> http_client::HttpClientConfig {
        http_client::http_client_config!(self)
    }

    /// The full Push URL.
    pub fn push_url(&self) -> String {
        format!(
            "{}{}",
            self.url.trim_end_matches('/'),
            pyroscope::push::PUSH_PATH
        )
    }
}

impl Validate for EndpointOptions {
    fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("invalid endpoint url {:?}: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "invalid endpoint url {:?}: scheme must be http or https",
                self.url
            ));
        }
        if self.remote_timeout.as_nanos() <= 0 {
            return Err("remote_timeout must be greater than 0".into());
        }
        if self.min_backoff_period.as_nanos() <= 0 {
            return Err("min_backoff_period must be greater than 0".into());
        }
        if self.max_backoff_period < self.min_backoff_period {
            return Err("max_backoff_period must not be less than min_backoff_period".into());
        }
        if self.queue_max_profiles == 0 || self.queue_max_bytes.as_u64() == 0 {
            return Err("queue_max_profiles and queue_max_bytes must be greater than 0".into());
        }
        if self.parallelism == 0 || self.parallelism > 64 {
            return Err("parallelism must be between 1 and 64".into());
        }
        self.http_client_config()
            .validate()
            .map_err(|e| e.to_string())?;
        for (name, value) in &self.headers {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            // Never echo the value: it may be a secret.
            http::HeaderValue::from_str(value.expose())
                .map_err(|_| format!("invalid value for header {name:?}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<Arguments, String> {
        let src = format!("pyroscope.write \"a\" {{\n{body}\n}}\n");
        river::decode::decode_first_block_validated::<Arguments>(&src).map_err(|d| {
            d.iter()
                .map(|d| d.message.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    #[test]
    fn defaults_and_repeated_endpoints() {
        let a = decode(
            r#"external_labels = {"env" = "prod"}
               endpoint { url = "http://a:4040" }
               endpoint {
                 name = "b"
                 url = "https://b"
                 remote_timeout = "3s"
                 headers = {"X-Scope-OrgID" = "t1"}
                 min_backoff_period = "1s"
                 max_backoff_period = "10s"
                 max_backoff_retries = 0
               }"#,
        )
        .unwrap();
        assert_eq!(a.external_labels["env"], "prod");
        assert_eq!(a.endpoint.len(), 2);
        assert_eq!(a.endpoint[0].0, EndpointOptions::new("http://a:4040"));
        let b = &a.endpoint[1];
        assert_eq!(b.name, "b");
        assert_eq!(b.remote_timeout, Duration::from_secs(3));
        assert_eq!(b.headers["X-Scope-OrgID"].expose(), "t1");
        assert_eq!(b.max_backoff_retries, 0);
        assert_eq!(b.push_url(), "https://b/push.v1.PusherService/Push");
        assert_eq!(decode("").unwrap(), Arguments::default());
    }

    #[test]
    fn bad_endpoints_are_rejected_with_a_reason() {
        let err = |body: &str| decode(&format!("endpoint {{\n{body}\n}}")).unwrap_err();
        assert!(err("name = \"x\"").contains("url"));
        assert!(err("url = \"ftp://x\"").contains("scheme must be http or https"));
        assert!(err("url = \"not a url\"").contains("invalid endpoint url"));
        assert!(err("url = \"http://x\"\nremote_timeout = \"0s\"")
            .contains("remote_timeout must be greater than 0"));
        assert!(err(
            "url = \"http://x\"\nmin_backoff_period = \"2s\"\nmax_backoff_period = \"1s\""
        )
        .contains("max_backoff_period must not be less than min_backoff_period"));
        let e = err("url = \"http://x\"\nheaders = {\"Auth\" = \"bad\\nvalue-secret\"}");
        assert!(
            e.contains("invalid value for header \"Auth\"") && !e.contains("secret"),
            "{e}"
        );
        assert_eq!(
            err("url = \"http://x\"\nbearer_token = \"t\"\nbasic_auth { username = \"u\" }"),
            "at most one of basic_auth, authorization, oauth2, bearer_token & bearer_token_file must be configured"
        );
        assert!(decode("external_labels = {\"a-b\" = \"x\"}")
            .unwrap_err()
            .contains("invalid external label name \"a-b\""));
    }
}
