//! The arguments of `pyroscope.scrape`, their defaults and validation.

use http_client::{Authorization, BasicAuth, OAuth2Config, ProxyUrl, TlsConfig};
use pyroscope::pprof::delta::DeltaKind;
use pyroscope::Receiver;
use river::decode::{Block, LabeledBlock, Validate};
use river::types::{Duration, TypedCapsule};
use river::value::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default `scrape_interval`: 15 s.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(15);
/// The default `scrape_timeout`: 15 s.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(15);
/// The shortest `scrape_interval` allowed with delta profiles (the target is asked for `interval - 1s`).
pub const MIN_DELTA_INTERVAL: Duration = Duration::from_secs(2);

fn default_interval() -> Duration {
    DEFAULT_SCRAPE_INTERVAL
}
fn default_timeout() -> Duration {
    DEFAULT_SCRAPE_TIMEOUT
}
fn default_scheme() -> String {
    "http".into()
}

/// The `pyroscope.scrape` block.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Arguments {
    /// The targets: label sets with at least `__address__`.
    pub targets: Vec<BTreeMap<String, String>>,
    /// Where profiles go.
    pub forward_to: Vec<TypedCapsule<Receiver>>,
    /// The `job` label; defaults to the component's ID.
    #[serde(default)]
    pub job_name: Option<String>,
    /// Query parameters of every request.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// How often each target is scraped.
    #[serde(default = "default_interval")]
    pub scrape_interval: Duration,
    /// How long one scrape may take (delta profiles get `scrape_interval - 1s` more).
    #[serde(default = "default_timeout")]
    pub scrape_timeout: Duration,
    /// `http` or `https`, unless a target sets `__scheme__`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    // ---- HTTP client settings (http_client::HttpClientConfig) ----
    /// `basic_auth { username, password | password_file }`.
    #[serde(default)]
    pub basic_auth: Option<Block<BasicAuth>>,
    /// `authorization { type, credentials | credentials_file }`.
    #[serde(default)]
    pub authorization: Option<Block<Authorization>>,
    /// `oauth2 { client_id, client_secret | client_secret_file, token_url, ... }`.
    #[serde(default)]
    pub oauth2: Option<Block<OAuth2Config>>,
    /// A bearer token.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// A file holding the bearer token, read at each request.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// An HTTP proxy.
    #[serde(default)]
    pub proxy_url: Option<ProxyUrl>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<Block<TlsConfig>>,
    /// Whether redirects are followed.
    #[serde(default = "http_client::default_true")]
    pub follow_redirects: bool,
    /// Whether HTTP/2 may be used.
    #[serde(default = "http_client::default_true")]
    pub enable_http2: bool,
    /// Which profiles are scraped, and where.
    #[serde(default)]
    pub profiling_config: Option<Block<ProfilingConfig>>,
    /// Share targets with the other cluster nodes.
    #[serde(default)]
    pub clustering: Option<Block<Clustering>>,
}

impl Arguments {
    /// Arguments with every default, for these targets and receivers.
    pub fn new(
        targets: Vec<BTreeMap<String, String>>,
        forward_to: Vec<TypedCapsule<Receiver>>,
    ) -> Self {
        Arguments {
            targets,
            forward_to,
            job_name: None,
            params: BTreeMap::new(),
            scrape_interval: DEFAULT_SCRAPE_INTERVAL,
            scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
            scheme: default_scheme(),
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: None,
            bearer_token_file: None,
            proxy_url: None,
            tls_config: None,
            follow_redirects: http_client::DEFAULT_FOLLOW_REDIRECTS,
            enable_http2: http_client::DEFAULT_ENABLE_HTTP2,
            profiling_config: None,
            clustering: None,
        }
    }

    /// The enabled profile types, resolved with their defaults, in a fixed order.
    pub fn profiles(&self) -> Vec<ProfileType> {
        let default_cfg = ProfilingConfig::default();
        let cfg = self.profiling_config.as_deref().unwrap_or(&default_cfg);
        cfg.profiles()
    }

    /// The HTTP client settings.
    pub fn http_client_config(&self) -> http_client::HttpClientConfig {
        http_client::http_client_config!(self)
    }

    /// Whether `clustering { enabled = true }`.
    pub fn clustering_enabled(&self) -> bool {
        self.clustering.as_ref().is_some_and(|c| c.enabled)
    }
}

impl Validate for Arguments {
    fn validate(&self) -> Result<(), String> {
        if self.scrape_timeout.as_nanos() <= 0 {
            return Err("scrape_timeout must be greater than 0".into());
        }
        if self.scrape_interval.as_nanos() <= 0 {
            return Err("scrape_interval must be greater than 0".into());
        }
        if self.scheme != "http" && self.scheme != "https" {
            return Err(format!(
                "invalid scheme {}: must be \"http\" or \"https\"",
                river::parser::go_quote(&self.scheme)
            ));
        }
        // Nested blocks were checked while decoding (errors on their headers); this reports conflicts
        // between authentication methods on the component's header.
        self.http_client_config()
            .validate()
            .map_err(|e| e.to_string())?;
        let any_delta = self
            .profiles()
            .iter()
            .any(|p| matches!(p.mode, Mode::ServerDelta));
        if any_delta && self.scrape_interval < MIN_DELTA_INTERVAL {
            return Err(
                "scrape_interval must be at least 2 seconds when using delta profiling".into(),
            );
        }
        Ok(())
    }
}

/// `clustering { enabled = ... }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Clustering {
    /// Whether this component shares its targets with the other cluster nodes.
    pub enabled: bool,
}
impl Validate for Clustering {}

/// `profiling_config { ... }`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ProfilingConfig {
    /// Put in front of every profile path.
    pub path_prefix: String,
    /// `profile.memory`.
    #[serde(rename = "profile.memory")]
    pub memory: Option<Block<ProfileSettings>>,
    /// `profile.block`.
    #[serde(rename = "profile.block")]
    pub block: Option<Block<ProfileSettings>>,
    /// `profile.goroutine`.
    #[serde(rename = "profile.goroutine")]
    pub goroutine: Option<Block<ProfileSettings>>,
    /// `profile.mutex`.
    #[serde(rename = "profile.mutex")]
    pub mutex: Option<Block<ProfileSettings>>,
    /// `profile.process_cpu`.
    #[serde(rename = "profile.process_cpu")]
    pub process_cpu: Option<Block<ProfileSettings>>,
    /// `profile.fgprof`.
    #[serde(rename = "profile.fgprof")]
    pub fgprof: Option<Block<ProfileSettings>>,
    /// `profile.godeltaprof_memory`.
    #[serde(rename = "profile.godeltaprof_memory")]
    pub godeltaprof_memory: Option<Block<GodeltaprofSettings>>,
    /// `profile.godeltaprof_mutex`.
    #[serde(rename = "profile.godeltaprof_mutex")]
    pub godeltaprof_mutex: Option<Block<GodeltaprofSettings>>,
    /// `profile.godeltaprof_block`.
    #[serde(rename = "profile.godeltaprof_block")]
    pub godeltaprof_block: Option<Block<GodeltaprofSettings>>,
    /// `profile.custom "NAME"` blocks.
    #[serde(rename = "profile.custom")]
    pub custom: Vec<LabeledBlock<CustomProfile>>,
}

/// The names of the built-in profile blocks (`profile.NAME`).
pub const BUILTIN_PROFILES: [&str; 9] = [
    "memory",
    "block",
    "goroutine",
    "mutex",
    "process_cpu",
    "fgprof",
    "godeltaprof_memory",
    "godeltaprof_mutex",
    "godeltaprof_block",
];

impl Validate for ProfilingConfig {
    fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.custom {
            if BUILTIN_PROFILES.contains(&c.label.as_str()) {
                return Err(format!(
                    "profile.custom {} has the name of a built-in profile type: configure profile.{} instead",
                    river::parser::go_quote(&c.label),
                    c.label
                ));
            }
            if !seen.insert(c.label.as_str()) {
                return Err(format!(
                    "profile.custom {} is defined more than once",
                    river::parser::go_quote(&c.label)
                ));
            }
        }
        Ok(())
    }
}

/// A built-in profile block: `enabled`, `path`, `delta` (defaults depend on the profile type).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ProfileSettings {
    /// Whether it is scraped.
    pub enabled: Option<bool>,
    /// Its path on the target.
    pub path: Option<String>,
    /// Whether the target computes the delta (`seconds` is sent).
    pub delta: Option<bool>,
}
impl Validate for ProfileSettings {}

/// A godeltaprof block: the target computes the delta itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct GodeltaprofSettings {
    /// Whether it is scraped.
    pub enabled: Option<bool>,
    /// Its path on the target.
    pub path: Option<String>,
}
impl Validate for GodeltaprofSettings {}

/// `profile.custom "NAME" { enabled = ..., path = ..., delta = ... }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct CustomProfile {
    /// Whether it is scraped.
    pub enabled: bool,
    /// Its path on the target.
    pub path: String,
    /// Whether the target computes the delta (`seconds` is sent).
    #[serde(default)]
    pub delta: bool,
}
impl Validate for CustomProfile {}

/// How a profile type's data becomes what is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Forwarded as received.
    Plain,
    /// The target computes the delta over `seconds` (CPU, fgprof, any profile with `delta = true`).
    ServerDelta,
    /// Cumulative: the scraper forwards the difference to the previous profile, `__delta__="false"`.
    ClientDelta(DeltaKind),
    /// godeltaprof: already a delta; forwarded with `__delta__="false"`.
    Godeltaprof,
}

/// One enabled profile type, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProfileType {
    /// The block name (`memory`, `godeltaprof_mutex`, or the custom label).
    pub block: String,
    /// The `__name__` label: the profile type (`godeltaprof_memory` is forwarded as `memory`).
    pub name: String,
    /// The path, with `path_prefix` applied.
    pub path: String,
    /// How the data is treated.
    pub mode: Mode,
}

/// (block, its settings, default enabled, default path, default delta, cumulative kind).
type BuiltinRow<'a> = (
    &'static str,
    &'a Option<Block<ProfileSettings>>,
    bool,
    &'static str,
    bool,
    Option<DeltaKind>,
);

impl ProfilingConfig {
    /// The enabled profile types in a fixed order: built-ins, then custom ones in config order.
    pub fn profiles(&self) -> Vec<ProfileType> {
        let mut out = Vec::new();
        let prefix = self.path_prefix.trim_end_matches('/');
        let join = |path: &str| {
            if prefix.is_empty() {
                path.to_string()
            } else if path.starts_with('/') {
                format!("{prefix}{path}")
            } else {
                format!("{prefix}/{path}")
            }
        };
        // (block, default enabled, default path, default delta, cumulative kind)
        let builtin: [BuiltinRow<'_>; 6] = [
            (
                "memory",
                &self.memory,
                true,
                "/debug/pprof/allocs",
                false,
                Some(DeltaKind::Memory),
            ),
            (
                "block",
                &self.block,
                true,
                "/debug/pprof/block",
                false,
                Some(DeltaKind::Contention),
            ),
            (
                "goroutine",
                &self.goroutine,
                true,
                "/debug/pprof/goroutine",
                false,
                None,
            ),
            (
                "mutex",
                &self.mutex,
                true,
                "/debug/pprof/mutex",
                false,
                Some(DeltaKind::Contention),
            ),
            (
                "process_cpu",
                &self.process_cpu,
                true,
                "/debug/pprof/profile",
                true,
                None,
            ),
            ("fgprof", &self.fgprof, false, "/debug/fgprof", true, None),
        ];
        for (name, settings, enabled, path, delta, kind) in builtin {
            let s = settings.as_deref().cloned().unwrap_or_default();
            if !s.enabled.unwrap_or(enabled) {
                continue;
            }
            let delta = s.delta.unwrap_or(delta);
            let mode = match (delta, kind) {
                (true, _) => Mode::ServerDelta,
                (false, Some(k)) => Mode::ClientDelta(k),
                (false, None) => Mode::Plain,
            };
            out.push(ProfileType {
                block: name.into(),
                name: name.into(),
                path: join(s.path.as_deref().unwrap_or(path)),
                mode,
            });
        }
        let godelta: [(&str, &str, &Option<Block<GodeltaprofSettings>>, &str); 3] = [
            (
                "godeltaprof_memory",
                "memory",
                &self.godeltaprof_memory,
                "/debug/pprof/delta_heap",
            ),
            (
                "godeltaprof_mutex",
                "mutex",
                &self.godeltaprof_mutex,
                "/debug/pprof/delta_mutex",
            ),
            (
                "godeltaprof_block",
                "block",
                &self.godeltaprof_block,
                "/debug/pprof/delta_block",
            ),
        ];
        for (block, name, settings, path) in godelta {
            let s = settings.as_deref().cloned().unwrap_or_default();
            if !s.enabled.unwrap_or(false) {
                continue;
            }
            out.push(ProfileType {
                block: block.into(),
                name: name.into(),
                path: join(s.path.as_deref().unwrap_or(path)),
                mode: Mode::Godeltaprof,
            });
        }
        for c in &self.custom {
            if !c.enabled {
                continue;
            }
            out.push(ProfileType {
                block: c.label.clone(),
                name: c.label.clone(),
                path: join(&c.path),
                mode: if c.delta {
                    Mode::ServerDelta
                } else {
                    Mode::Plain
                },
            });
        }
        out
    }
}
