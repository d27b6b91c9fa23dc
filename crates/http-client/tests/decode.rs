//! Decoding the settings from River, as an embedding component does: defaults, every attribute, and each
//! validation message with the position it is reported at.

use http_client::{
    Authorization, BasicAuth, HttpClientConfig, OAuth2Config, ProxyUrl, TlsConfig, TlsVersion,
};
use river::decode::{Block, Validate};
use river::Secret;
use serde::{Deserialize, Serialize};

/// A component's arguments embedding the settings field by field (as the crate docs show).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
struct Args {
    url: String,
    basic_auth: Option<Block<BasicAuth>>,
    authorization: Option<Block<Authorization>>,
    oauth2: Option<Block<OAuth2Config>>,
    bearer_token: Option<Secret>,
    bearer_token_file: Option<String>,
    proxy_url: Option<ProxyUrl>,
    tls_config: Option<Block<TlsConfig>>,
    follow_redirects: bool,
    enable_http2: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            url: String::new(),
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
}

impl Validate for Args {
    fn validate(&self) -> Result<(), String> {
        http_client::http_client_config!(self)
            .validate()
            .map_err(|e| e.to_string())
    }
}

/// Decodes `body` inside `c "x" { ... }`; errors as `line:col: message`.
fn decode(body: &str) -> Result<Args, Vec<String>> {
    let src = format!("c \"x\" {{\n{body}\n}}\n");
    let (file, diags) = river::parse(&src);
    assert!(diags.is_empty(), "{diags:?}");
    let Some(river::ast::Stmt::Block(block)) = file.top_level().first() else {
        panic!("no block");
    };
    let sf = river::SourceFile::new("t", src.as_str());
    river::decode::decode_block_body_validated::<Args>(
        block,
        &file,
        &river::eval::Scope::with_stdlib(),
    )
    .map_err(|d| {
        d.iter()
            .map(|d| sf.one_line(d).trim_start_matches("t:").to_string())
            .collect()
    })
}

fn err(body: &str) -> String {
    let e = decode(body).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].clone()
}

#[test]
fn defaults_follow_redirects_and_enable_http2() {
    let a = decode("").unwrap();
    let c = http_client::http_client_config!(a);
    assert_eq!(c, HttpClientConfig::default());
    assert!(c.follow_redirects && c.enable_http2);
    assert!(c.proxy().is_none());
}

#[test]
fn every_setting_decodes() {
    let a = decode(
        r#"
    bearer_token_file = "/t"
    proxy_url         = "http://proxy:3128"
    follow_redirects  = false
    enable_http2      = false
    tls_config {
        ca_file              = "/ca"
        cert_file            = "/c"
        key_file             = "/k"
        insecure_skip_verify = true
        min_version          = "TLS13"
        server_name          = "example.com"
    }"#,
    )
    .unwrap();
    assert_eq!(a.bearer_token_file.as_deref(), Some("/t"));
    assert_eq!(
        a.proxy_url
            .as_ref()
            .and_then(|p| p.url())
            .map(|u| u.as_str()),
        Some("http://proxy:3128/")
    );
    assert!(!a.follow_redirects && !a.enable_http2);
    let t = a.tls_config.unwrap().into_inner();
    assert_eq!(t.min_version, Some(TlsVersion::Tls13));
    assert!(t.insecure_skip_verify);
    assert_eq!(t.server_name.as_deref(), Some("example.com"));

    let a = decode(
        r#"
    oauth2 {
        client_id          = "id"
        client_secret_file = "/s"
        endpoint_params    = { audience = "a" }
        proxy_url          = "socks5://127.0.0.1:1080"
        scopes             = ["x", "y"]
        token_url          = "https://auth/token"
        tls_config { insecure_skip_verify = true }
    }"#,
    )
    .unwrap();
    let o = a.oauth2.unwrap().into_inner();
    assert_eq!(o.scopes, ["x", "y"]);
    assert_eq!(o.endpoint_params["audience"], "a");
    assert!(o.tls_config.as_ref().unwrap().insecure_skip_verify);
    assert_eq!(o.proxy().map(|u| u.scheme()), Some("socks5"));

    let a = decode("authorization {\n type = \"Token\"\n credentials = \"c\"\n}").unwrap();
    assert_eq!(a.authorization.unwrap().scheme(), "Token");
    let a = decode("authorization {\n credentials = \"c\"\n}").unwrap();
    assert_eq!(a.authorization.unwrap().scheme(), "Bearer");
}

const AUTH_CONFLICT: &str =
    "at most one of basic_auth, authorization, oauth2, bearer_token & bearer_token_file must be configured";

#[test]
fn authentication_methods_conflict_on_the_component_header() {
    let oauth =
        "oauth2 {\n client_id = \"i\"\n client_secret = \"s\"\n token_url = \"http://a/t\"\n}";
    for body in [
        "bearer_token = \"a\"\nbearer_token_file = \"/f\"".to_string(),
        "bearer_token = \"a\"\nbasic_auth { username = \"u\" }".to_string(),
        "basic_auth { username = \"u\" }\nauthorization { credentials = \"c\" }".to_string(),
        format!("bearer_token_file = \"/f\"\n{oauth}"),
        format!("authorization {{ credentials = \"c\" }}\n{oauth}"),
    ] {
        assert_eq!(err(&body), format!("1:1: {AUTH_CONFLICT}"), "{body}");
    }
    // Empty strings mean "not configured", as in the reference.
    decode("bearer_token = \"\"\nbearer_token_file = \"/f\"").unwrap();
}

#[test]
fn nested_conflicts_are_reported_on_their_block() {
    let cases = [
        (
            "basic_auth {\n password = \"p\"\n password_file = \"/p\"\n}",
            "2:1: at most one of basic_auth password & password_file must be configured",
        ),
        (
            "authorization {\n credentials = \"c\"\n credentials_file = \"/c\"\n}",
            "2:1: at most one of authorization credentials & credentials_file must be configured",
        ),
        (
            "authorization {\n type = \"Basic\"\n credentials = \"c\"\n}",
            r#"2:1: authorization type cannot be set to "basic", use "basic_auth" block instead"#,
        ),
        (
            "tls_config {\n ca_pem = \"x\"\n ca_file = \"/x\"\n}",
            "2:1: at most one of ca_pem and ca_file must be configured",
        ),
        (
            "tls_config {\n cert_pem = \"x\"\n cert_file = \"/x\"\n key_file = \"/k\"\n}",
            "2:1: at most one of cert_pem and cert_file must be configured",
        ),
        (
            "tls_config {\n cert_file = \"/x\"\n key_pem = \"k\"\n key_file = \"/k\"\n}",
            "2:1: at most one of key_pem and key_file must be configured",
        ),
        (
            "tls_config {\n cert_file = \"/x\"\n}",
            "2:1: exactly one of key_pem or key_file must be configured when a client certificate is configured",
        ),
        (
            "tls_config {\n key_file = \"/x\"\n}",
            "2:1: exactly one of cert_pem or cert_file must be configured when a client key is configured",
        ),
        (
            "oauth2 {\n client_id = \"i\"\n client_secret = \"s\"\n client_secret_file = \"/s\"\n token_url = \"http://a/t\"\n}",
            "2:1: at most one of oauth2 client_secret & client_secret_file must be configured",
        ),
        (
            "oauth2 {\n client_secret = \"s\"\n token_url = \"http://a/t\"\n}",
            "2:1: oauth2 client_id must be configured",
        ),
        (
            "oauth2 {\n client_id = \"i\"\n token_url = \"http://a/t\"\n}",
            "2:1: either oauth2 client_secret or client_secret_file must be configured",
        ),
        (
            "oauth2 {\n client_id = \"i\"\n client_secret = \"s\"\n}",
            "2:1: oauth2 token_url must be configured",
        ),
        (
            // The oauth2 block's own tls_config is positioned on that block.
            "oauth2 {\n client_id = \"i\"\n client_secret = \"s\"\n token_url = \"http://a/t\"\n tls_config {\n  ca_pem = \"x\"\n  ca_file = \"/x\"\n }\n}",
            "6:2: at most one of ca_pem and ca_file must be configured",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(err(body), want, "{body}");
    }
}

#[test]
fn bad_attribute_values_are_reported_on_the_attribute() {
    assert_eq!(
        err("tls_config {\n min_version = \"TLS14\"\n}"),
        r#"3:16: "TLS14" unknown TLS version: TLS14 (expected one of TLS10, TLS11, TLS12, TLS13)"#
    );
    let e = err("proxy_url = \"ftp://proxy\"");
    assert!(e.starts_with("2:13: "), "{e}");
    assert!(
        e.ends_with(r#"invalid proxy_url: unsupported scheme "ftp", expected http, https, socks5 or socks5h"#),
        "{e}"
    );
    let e = err("proxy_url = \"http://user:pw@[::1\"");
    assert!(e.contains("invalid proxy_url: invalid IPv6 address"), "{e}");
    // An empty proxy_url means no proxy.
    let a = decode("proxy_url = \"\"").unwrap();
    assert!(http_client::http_client_config!(a).proxy().is_none());
}

#[test]
fn validate_names_the_offending_block() {
    let mut c = HttpClientConfig {
        oauth2: Some(Block(OAuth2Config {
            client_id: Some("i".into()),
            client_secret: Some(Secret::new("s")),
            token_url: Some("http://a/t".into()),
            tls_config: Some(Block(TlsConfig {
                cert_pem: Some("c".into()),
                ..TlsConfig::default()
            })),
            ..OAuth2Config::default()
        })),
        ..HttpClientConfig::default()
    };
    let e = c.validate().unwrap_err();
    assert_eq!(e.path, ["oauth2", "tls_config"]);
    assert!(
        e.message.starts_with("exactly one of key_pem or key_file"),
        "{e}"
    );
    c.bearer_token = Some(Secret::new("t"));
    let e = c.validate().unwrap_err();
    assert!(e.path.is_empty());
    assert_eq!(e.message, AUTH_CONFLICT);
    // A client cannot be built from invalid settings.
    let err = http_client::HttpClient::new(&c).unwrap_err();
    assert_eq!(err.to_string(), AUTH_CONFLICT);
}

#[test]
fn proxy_passwords_are_redacted_when_shown() {
    let p = ProxyUrl::parse("http://user:pw@proxy:3128").unwrap();
    assert_eq!(p.to_string(), "http://user:xxxxx@proxy:3128/");
    assert_eq!(format!("{p:?}"), "\"http://user:xxxxx@proxy:3128/\"");
    assert_eq!(p.url().unwrap().password(), Some("pw"));
}
