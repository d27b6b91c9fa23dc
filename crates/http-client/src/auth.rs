//! Credentials applied to each request: basic auth, an `Authorization` header, OAuth2 client credentials.

use crate::config::{non_empty, non_empty_secret, HttpClientConfig, OAuth2Config};
use crate::transport::{ConnectionSettings, Transport};
use crate::{ClientOptions, Error};
use river::value::Secret;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// A secret given inline or in a file that is read each time it is needed.
#[derive(Clone, Debug)]
pub(crate) enum SecretSource {
    /// Not configured: the empty string.
    None,
    Inline(Secret),
    File {
        path: String,
        what: &'static str,
    },
}

impl SecretSource {
    fn of(inline: &Option<Secret>, file: &Option<String>, what: &'static str) -> SecretSource {
        if let Some(s) = non_empty_secret(inline) {
            SecretSource::Inline(s.clone())
        } else if let Some(f) = non_empty(file) {
            SecretSource::File {
                path: f.to_owned(),
                what,
            }
        } else {
            SecretSource::None
        }
    }

    /// The current value; files are trimmed of surrounding white space, as in the reference.
    pub(crate) async fn read(&self) -> Result<Secret, Error> {
        match self {
            SecretSource::None => Ok(Secret::new("")),
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::File { path, what } => {
                let text =
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|source| Error::ReadFile {
                            what,
                            path: path.clone(),
                            source,
                        })?;
                Ok(Secret::new(text.trim()))
            }
        }
    }
}

/// How requests are authenticated.
#[derive(Debug)]
pub(crate) enum Auth {
    None,
    Basic {
        username: String,
        password: SecretSource,
    },
    /// `Authorization: <scheme> <credentials>`
    Header {
        scheme: String,
        credentials: SecretSource,
    },
    OAuth2(Box<OAuth2Source>),
}

impl Auth {
    pub(crate) fn new(cfg: &HttpClientConfig, options: &ClientOptions) -> Result<Auth, Error> {
        if let Some(b) = &cfg.basic_auth {
            return Ok(Auth::Basic {
                username: b.username.clone().unwrap_or_default(),
                password: SecretSource::of(
                    &b.password,
                    &b.password_file,
                    "basic auth password file",
                ),
            });
        }
        if let Some(a) = &cfg.authorization {
            return Ok(Auth::Header {
                scheme: a.scheme().to_owned(),
                credentials: SecretSource::of(
                    &a.credentials,
                    &a.credentials_file,
                    "authorization credentials file",
                ),
            });
        }
        if let Some(o) = &cfg.oauth2 {
            return Ok(Auth::OAuth2(Box::new(OAuth2Source::new(o, options)?)));
        }
        let bearer = SecretSource::of(
            &cfg.bearer_token,
            &cfg.bearer_token_file,
            "bearer token file",
        );
        if matches!(bearer, SecretSource::None) {
            return Ok(Auth::None);
        }
        Ok(Auth::Header {
            scheme: crate::config::DEFAULT_AUTHORIZATION_TYPE.to_owned(),
            credentials: bearer,
        })
    }

    pub(crate) async fn apply(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Error> {
        Ok(match self.header().await? {
            Some(v) => rb.header(reqwest::header::AUTHORIZATION, v),
            None => rb,
        })
    }

    /// The `Authorization` header to send now (marked sensitive), if any.
    pub(crate) async fn header(&self) -> Result<Option<reqwest::header::HeaderValue>, Error> {
        Ok(Some(match self {
            Auth::None => return Ok(None),
            Auth::Basic { username, password } => {
                // As reqwest's `basic_auth`: base64 of `user:password`.
                use base64::Engine;
                let password = password.read().await?;
                let mut raw = String::with_capacity(username.len() + 1 + password.expose().len());
                raw.push_str(username);
                raw.push(':');
                raw.push_str(password.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
                sensitive_header(&format!("Basic {encoded}"))?
            }
            Auth::Header {
                scheme,
                credentials,
            } => {
                let credentials = credentials.read().await?;
                sensitive_header(&format!("{scheme} {}", credentials.expose()))?
            }
            Auth::OAuth2(o) => {
                let (scheme, token) = o.token().await?;
                sensitive_header(&format!("{scheme} {}", token.expose()))?
            }
        }))
    }
}

fn sensitive_header(text: &str) -> Result<reqwest::header::HeaderValue, Error> {
    let mut v = reqwest::header::HeaderValue::from_str(text).map_err(|_| {
        Error::Auth("credentials contain characters not allowed in an HTTP header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Tokens are renewed this long before they expire (as golang.org/x/oauth2 does).
const EXPIRY_DELTA: Duration = Duration::from_secs(10);

const STYLE_UNKNOWN: u8 = 0;
const STYLE_HEADER: u8 = 1;
const STYLE_PARAMS: u8 = 2;

/// OAuth2 client credentials: fetches and caches tokens.
pub(crate) struct OAuth2Source {
    client_id: String,
    secret: SecretSource,
    token_url: String,
    scopes: Vec<String>,
    endpoint_params: Vec<(String, String)>,
    transport: Transport,
    timeout: Duration,
    /// How the client authenticates to the token endpoint, once known (header first, then form
    /// parameters, as golang.org/x/oauth2's auto-detection).
    style: AtomicU8,
    cache: tokio::sync::Mutex<Option<CachedToken>>,
}

impl fmt::Debug for OAuth2Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Source")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

struct CachedToken {
    scheme: String,
    token: Secret,
    expires_at: Option<Instant>,
    /// The client secret the token was obtained with: a rotated secret invalidates it.
    secret: Secret,
}

impl OAuth2Source {
    fn new(cfg: &OAuth2Config, options: &ClientOptions) -> Result<OAuth2Source, Error> {
        let settings = ConnectionSettings {
            tls: cfg.tls_config.as_deref().cloned().unwrap_or_default(),
            proxy: cfg.proxy().cloned(),
            follow_redirects: true,
            enable_http2: true,
        };
        let token_url = non_empty(&cfg.token_url)
            .ok_or_else(|| {
                Error::Config(crate::ConfigError {
                    path: vec!["oauth2"],
                    message: "oauth2 token_url must be configured".into(),
                })
            })?
            .to_owned();
        Ok(OAuth2Source {
            client_id: cfg.client_id.clone().unwrap_or_default(),
            secret: SecretSource::of(
                &cfg.client_secret,
                &cfg.client_secret_file,
                "oauth2 client secret file",
            ),
            token_url,
            scopes: cfg.scopes.clone(),
            endpoint_params: cfg
                .endpoint_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            transport: Transport::new(settings, options.clone())?,
            timeout: options.token_timeout,
            style: AtomicU8::new(STYLE_UNKNOWN),
            cache: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid token: the cached one, or a new one. Concurrent callers wait for one fetch.
    pub(crate) async fn token(&self) -> Result<(String, Secret), Error> {
        let secret = self.secret.read().await?;
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            let fresh = c
                .expires_at
                .is_none_or(|at| Instant::now() + EXPIRY_DELTA < at);
            if fresh && c.secret == secret {
                return Ok((c.scheme.clone(), c.token.clone()));
            }
        }
        let token = self.fetch(&secret).await?;
        let out = (token.scheme.clone(), token.token.clone());
        *cache = Some(token);
        Ok(out)
    }

    async fn fetch(&self, secret: &Secret) -> Result<CachedToken, Error> {
        let style = self.style.load(Ordering::Relaxed);
        if style != STYLE_UNKNOWN {
            return self.fetch_with(secret, style).await.map_err(|f| f.error);
        }
        match self.fetch_with(secret, STYLE_HEADER).await {
            Ok(t) => {
                self.style.store(STYLE_HEADER, Ordering::Relaxed);
                Ok(t)
            }
            // Only a refusal by the server says the other style might work; a transport error or timeout
            // would just repeat.
            Err(first) if first.refused => match self.fetch_with(secret, STYLE_PARAMS).await {
                Ok(t) => {
                    self.style.store(STYLE_PARAMS, Ordering::Relaxed);
                    Ok(t)
                }
                // The first error is the more telling one, as in golang.org/x/oauth2.
                Err(_) => Err(first.error),
            },
            Err(first) => Err(first.error),
        }
    }

    async fn fetch_with(&self, secret: &Secret, style: u8) -> Result<CachedToken, FetchError> {
        let mut params: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = self.scopes.join(" ");
        if !self.scopes.is_empty() {
            params.push(("scope", &scope));
        }
        for (k, v) in &self.endpoint_params {
            match params.iter_mut().find(|(pk, _)| *pk == k.as_str()) {
                // grant_type may be overridden, for servers that want another one (as in the reference).
                Some(p) if k == "grant_type" => p.1 = v,
                Some(_) => {
                    return Err(FetchError::other(Error::OAuth2(format!(
                        "cannot overwrite parameter {k:?}"
                    ))))
                }
                None => params.push((k, v)),
            }
        }
        if style == STYLE_PARAMS {
            params.push(("client_id", &self.client_id));
            if !secret.expose().is_empty() {
                params.push(("client_secret", secret.expose()));
            }
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let client = self.transport.client().await.map_err(FetchError::other)?;
        let mut rb = client
            .post(&self.token_url)
            .timeout(self.timeout)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        if style == STYLE_HEADER {
            let id: String =
                url::form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect();
            let pw: String =
                url::form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect();
            rb = rb.basic_auth(id, Some(pw));
        }
        let resp = rb.send().await.map_err(|e| {
            FetchError::other(Error::OAuth2(format!(
                "cannot fetch token: {}",
                crate::describe_error(&e)
            )))
        })?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let bytes = resp.bytes().await.map_err(|e| {
            FetchError::other(Error::OAuth2(format!(
                "cannot fetch token: {}",
                crate::describe_error(&e)
            )))
        })?;
        if !status.is_success() {
            return Err(FetchError {
                error: Error::OAuth2(format!(
                    "cannot fetch token: server returned HTTP status {status}{}",
                    error_detail(&bytes)
                )),
                refused: true,
            });
        }
        parse_token(&content_type, &bytes, secret).map_err(|error| FetchError {
            error,
            refused: true,
        })
    }
}

/// A failed token request, and whether the server answered it (with an error status or an unusable body).
struct FetchError {
    error: Error,
    refused: bool,
}

impl FetchError {
    fn other(error: Error) -> Self {
        FetchError {
            error,
            refused: false,
        }
    }
}

/// The `error` / `error_description` of a token error response, if it has them.
fn error_detail(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    match (field("error"), field("error_description")) {
        (Some(e), Some(d)) => format!(": {e}: {}", truncate(&d, 200)),
        (Some(e), None) => format!(": {e}"),
        _ => String::new(),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse_token(content_type: &str, body: &[u8], secret: &Secret) -> Result<CachedToken, Error> {
    let (token, token_type, expires_in) = if content_type
        .starts_with("application/x-www-form-urlencoded")
        || content_type.starts_with("text/plain")
    {
        let mut token = None;
        let mut token_type = None;
        let mut expires_in = None;
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "access_token" => token = Some(v.into_owned()),
                "token_type" => token_type = Some(v.into_owned()),
                "expires_in" => expires_in = v.parse::<i64>().ok(),
                _ => {}
            }
        }
        (token, token_type, expires_in)
    } else {
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Error::OAuth2(format!("cannot parse token response: {e}")))?;
        let token = v
            .get("access_token")
            .and_then(|x| x.as_str())
            .map(str::to_owned);
        let token_type = v
            .get("token_type")
            .and_then(|x| x.as_str())
            .map(str::to_owned);
        // Some servers send expires_in as a string.
        let expires_in = v.get("expires_in").and_then(|x| {
            x.as_i64()
                .or_else(|| x.as_f64().map(|f| f as i64))
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
        });
        (token, token_type, expires_in)
    };
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::OAuth2("server response missing access_token".into()))?;
    Ok(CachedToken {
        scheme: token_scheme(token_type.as_deref()),
        token: Secret::new(token),
        expires_at: expires_in
            .filter(|s| *s > 0)
            .map(|s| Instant::now() + Duration::from_secs(s as u64)),
        secret: secret.clone(),
    })
}

/// The `Authorization` scheme for a token type, normalized as golang.org/x/oauth2 does.
fn token_scheme(token_type: Option<&str>) -> String {
    match token_type {
        None | Some("") => "Bearer".into(),
        Some(t) if t.eq_ignore_ascii_case("bearer") => "Bearer".into(),
        Some(t) if t.eq_ignore_ascii_case("mac") => "MAC".into(),
        Some(t) if t.eq_ignore_ascii_case("basic") => "Basic".into(),
        Some(t) => t.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_types_are_normalized() {
        assert_eq!(token_scheme(None), "Bearer");
        assert_eq!(token_scheme(Some("bearer")), "Bearer");
        assert_eq!(token_scheme(Some("MAC")), "MAC");
        assert_eq!(token_scheme(Some("DPoP")), "DPoP");
    }

    #[test]
    fn token_responses_parse_as_json_or_form() {
        let s = Secret::new("x");
        let t = parse_token(
            "application/json",
            br#"{"access_token":"abc","token_type":"bearer","expires_in":"60"}"#,
            &s,
        )
        .unwrap();
        assert_eq!(t.token.expose(), "abc");
        assert_eq!(t.scheme, "Bearer");
        assert!(t.expires_at.is_some());
        let t = parse_token(
            "application/x-www-form-urlencoded; charset=utf-8",
            b"access_token=a%20b&expires_in=0",
            &s,
        )
        .unwrap();
        assert_eq!(t.token.expose(), "a b");
        assert!(t.expires_at.is_none());
        let err = parse_token("application/json", br#"{"token_type":"x"}"#, &s)
            .err()
            .unwrap();
        assert!(err.to_string().contains("missing access_token"), "{err}");
    }
}
