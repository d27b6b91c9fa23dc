//! The client against real HTTP(S) servers on loopback.

mod support;

use http_client::{describe_error, ClientOptions, HttpClient};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{config, respond, Ca, Server, ServerTls};

fn client(body: &str) -> HttpClient {
    HttpClient::new(&config(body)).unwrap()
}

/// A PEM as a River raw string.
fn raw(pem: &str) -> String {
    format!("`{pem}`")
}

async fn get(c: &HttpClient, url: &str) -> Result<reqwest::Response, String> {
    let rb = c.get(url).await.map_err(|e| e.to_string())?;
    rb.send().await.map_err(|e| describe_error(&e))
}

fn tmpfile(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_string()
}

async fn ok_server(ca: &Ca) -> Server {
    Server::https(ServerTls::new(ca.leaf(&["localhost", "127.0.0.1"])), |_| {
        respond(200, "ok")
    })
    .await
}

#[tokio::test]
async fn a_custom_ca_is_accepted_from_pem_and_from_file() {
    let ca = Ca::new("test ca");
    let srv = ok_server(&ca).await;
    let c = client(&format!("tls_config {{ ca_pem = {} }}", raw(&ca.pem)));
    let resp = get(&c, &srv.url("https", "/x")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");

    let dir = tempfile::tempdir().unwrap();
    let path = tmpfile(&dir, "ca.pem", &ca.pem);
    let c = client(&format!("tls_config {{ ca_file = {path:?} }}"));
    assert_eq!(
        get(&c, &srv.url("https", "/x")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn an_unknown_ca_is_rejected_with_a_clear_error() {
    let srv = ok_server(&Ca::new("server ca")).await;
    let other = Ca::new("other ca");
    let c = client(&format!("tls_config {{ ca_pem = {} }}", raw(&other.pem)));
    let err = get(&c, &srv.url("https", "/")).await.unwrap_err();
    assert!(
        err.contains("invalid peer certificate") && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(srv.seen().is_empty());
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() {
    let srv = ok_server(&Ca::new("server ca")).await;
    let other = Ca::new("other ca");
    let c = client(&format!(
        "tls_config {{\n ca_pem = {}\n insecure_skip_verify = true\n}}",
        raw(&other.pem)
    ));
    assert_eq!(get(&c, &srv.url("https", "/")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn server_name_overrides_the_verified_name() {
    let ca = Ca::new("ca");
    let srv = Server::https(ServerTls::new(ca.leaf(&["scrape.example"])), |_| {
        respond(200, "ok")
    })
    .await;
    let plain = client(&format!("tls_config {{ ca_pem = {} }}", raw(&ca.pem)));
    let err = get(&plain, &srv.url("https", "/")).await.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    let named = client(&format!(
        "tls_config {{\n ca_pem = {}\n server_name = \"scrape.example\"\n}}",
        raw(&ca.pem)
    ));
    assert_eq!(
        get(&named, &srv.url("https", "/")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn client_certificates_authenticate_to_an_mtls_server() {
    let ca = Ca::new("ca");
    let client_ca = Ca::new("client ca");
    let mut tls = ServerTls::new(ca.leaf(&["127.0.0.1"]));
    tls.client_ca = Some(client_ca.der.clone());
    let srv = Server::https(tls, |_| respond(200, "hello client")).await;

    let without = client(&format!("tls_config {{ ca_pem = {} }}", raw(&ca.pem)));
    let err = get(&without, &srv.url("https", "/")).await.unwrap_err();
    assert!(!err.is_empty());
    assert!(srv.seen().is_empty());

    let me = client_ca.leaf(&["scraper"]);
    let dir = tempfile::tempdir().unwrap();
    let cert = tmpfile(&dir, "c.pem", &me.cert_pem);
    let key = tmpfile(&dir, "k.pem", &me.key_pem);
    let with_files = client(&format!(
        "tls_config {{\n ca_pem = {}\n cert_file = {cert:?}\n key_file = {key:?}\n}}",
        raw(&ca.pem)
    ));
    let resp = get(&with_files, &srv.url("https", "/")).await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "hello client");

    let with_pem = client(&format!(
        "tls_config {{\n ca_pem = {}\n cert_pem = {}\n key_pem = {}\n}}",
        raw(&ca.pem),
        raw(&me.cert_pem),
        raw(&me.key_pem)
    ));
    assert_eq!(
        get(&with_pem, &srv.url("https", "/"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn min_version_tls13_refuses_a_tls12_only_server() {
    let ca = Ca::new("ca");
    let mut tls = ServerTls::new(ca.leaf(&["127.0.0.1"]));
    tls.tls12_only = true;
    let srv = Server::https(tls, |_| respond(200, "ok")).await;
    let strict = client(&format!(
        "tls_config {{\n ca_pem = {}\n min_version = \"TLS13\"\n}}",
        raw(&ca.pem)
    ));
    let err = get(&strict, &srv.url("https", "/")).await.unwrap_err();
    assert!(
        err.contains("ProtocolVersion") || err.contains("protocol version"),
        "{err}"
    );
    // TLS12, and TLS10/TLS11 (which mean TLS 1.2 here), connect.
    for v in ["TLS12", "TLS10", "TLS11"] {
        let c = client(&format!(
            "tls_config {{\n ca_pem = {}\n min_version = \"{v}\"\n}}",
            raw(&ca.pem)
        ));
        assert_eq!(
            get(&c, &srv.url("https", "/")).await.unwrap().status(),
            200,
            "{v}"
        );
    }
}

#[tokio::test]
async fn http2_is_negotiated_only_when_enabled() {
    let ca = Ca::new("ca");
    let srv = ok_server(&ca).await;
    let tls = format!("tls_config {{ ca_pem = {} }}", raw(&ca.pem));
    let h2 = client(&tls);
    get(&h2, &srv.url("https", "/")).await.unwrap();
    let h1 = client(&format!("{tls}\nenable_http2 = false"));
    get(&h1, &srv.url("https", "/")).await.unwrap();
    let versions: Vec<_> = srv.seen().iter().map(|s| s.version).collect();
    assert_eq!(versions, [hyper::Version::HTTP_2, hyper::Version::HTTP_11]);
}

#[tokio::test]
async fn redirects_are_followed_or_returned() {
    let srv = Server::http(|s| {
        if s.uri.path() == "/old" {
            let mut r = respond(302, "");
            r.headers_mut()
                .insert("location", hyper::header::HeaderValue::from_static("/new"));
            r
        } else {
            respond(200, "moved here")
        }
    })
    .await;
    let follow = client("");
    let resp = get(&follow, &srv.url("http", "/old")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "moved here");
    let stay = client("follow_redirects = false");
    let resp = get(&stay, &srv.url("http", "/old")).await.unwrap();
    assert_eq!(resp.status(), 302);
    let paths: Vec<_> = srv
        .seen()
        .iter()
        .map(|s| s.uri.path().to_string())
        .collect();
    assert_eq!(paths, ["/old", "/new", "/old"]);
}

#[tokio::test]
async fn requests_go_through_the_proxy() {
    // A forward proxy sees the absolute URL of a plain-HTTP request.
    let proxy = Server::http(|_| respond(200, "via proxy")).await;
    let c = client(&format!("proxy_url = \"http://{}\"", proxy.addr));
    let resp = get(&c, "http://target.invalid:1234/debug/pprof/allocs")
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "via proxy");
    assert_eq!(
        proxy.seen()[0].uri.to_string(),
        "http://target.invalid:1234/debug/pprof/allocs"
    );
}

#[tokio::test]
async fn credentials_are_sent_as_configured() {
    let srv = Server::http(|_| respond(200, "")).await;
    let url = srv.url("http", "/");
    let dir = tempfile::tempdir().unwrap();
    let pw = tmpfile(&dir, "pw", "file-pass\n");
    let cases = [
        (
            "basic_auth {\n username = \"u\"\n password = \"p\"\n}".to_string(),
            "Basic dTpw",
        ),
        (
            format!("basic_auth {{\n username = \"u\"\n password_file = {pw:?}\n}}"),
            // base64("u:file-pass"): the file's trailing newline is trimmed.
            "Basic dTpmaWxlLXBhc3M=",
        ),
        (r#"bearer_token = "tok""#.to_string(), "Bearer tok"),
        (
            r#"authorization { credentials = "c1" }"#.to_string(),
            "Bearer c1",
        ),
        (
            "authorization {\n type = \"Token\"\n credentials = \"c2\"\n}".to_string(),
            "Token c2",
        ),
    ];
    for (body, _) in &cases {
        get(&client(body), &url).await.unwrap();
    }
    get(&client(""), &url).await.unwrap();
    let seen = srv.seen();
    for (i, (body, want)) in cases.iter().enumerate() {
        assert_eq!(
            seen[i].header("authorization").as_deref(),
            Some(*want),
            "{body}"
        );
    }
    assert_eq!(seen[cases.len()].header("authorization"), None);
}

#[tokio::test]
async fn a_rotated_bearer_token_file_applies_without_rebuilding() {
    let srv = Server::http(|_| respond(200, "")).await;
    let dir = tempfile::tempdir().unwrap();
    let path = tmpfile(&dir, "token", "first\n");
    let c = client(&format!("bearer_token_file = {path:?}"));
    get(&c, &srv.url("http", "/")).await.unwrap();
    std::fs::write(&path, "second").unwrap();
    get(&c, &srv.url("http", "/")).await.unwrap();
    let auth: Vec<_> = srv
        .seen()
        .iter()
        .map(|s| s.header("authorization").unwrap())
        .collect();
    assert_eq!(auth, ["Bearer first", "Bearer second"]);

    // A missing file fails the request with a message naming it (and no request is sent).
    std::fs::remove_file(&path).unwrap();
    let err = c.get(srv.url("http", "/")).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("unable to read bearer token file {path}: ")),
        "{err}"
    );
    assert_eq!(srv.seen().len(), 2);
}

#[tokio::test]
async fn a_changed_ca_file_is_picked_up() {
    let ca = Ca::new("server ca");
    let srv = ok_server(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let path = tmpfile(&dir, "ca.pem", &Ca::new("stale ca").pem);
    let c = HttpClient::with_options(
        &config(&format!("tls_config {{ ca_file = {path:?} }}")),
        ClientOptions::default().tls_reload_interval(Duration::ZERO),
    )
    .unwrap();
    let err = get(&c, &srv.url("https", "/")).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    std::fs::write(&path, &ca.pem).unwrap();
    assert_eq!(get(&c, &srv.url("https", "/")).await.unwrap().status(), 200);
}

/// A token endpoint that hands out `tok-N` valid for `expires_in` seconds and counts its requests.
async fn token_server(expires_in: u64, reject_basic: bool) -> (Server, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    let srv = Server::http(move |s| {
        if reject_basic && s.header("authorization").is_some() {
            return respond(
                401,
                r#"{"error":"invalid_client","error_description":"use the form"}"#,
            );
        }
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let mut r = respond(
            200,
            &format!(
                r#"{{"access_token":"tok-{i}","token_type":"bearer","expires_in":{expires_in}}}"#
            ),
        );
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        r
    })
    .await;
    (srv, count)
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn oauth2_tokens_are_fetched_cached_and_refreshed() {
    // Valid for 12 s, renewed 10 s before expiry: cached for about 2 s.
    let (tokens, count) = token_server(12, false).await;
    let api = Server::http(|_| respond(200, "")).await;
    let c = client(&format!(
        r#"oauth2 {{
            client_id       = "my id"
            client_secret   = "s3cret"
            token_url       = "{}"
            scopes          = ["read", "write"]
            endpoint_params = {{ audience = "pyroscope" }}
        }}"#,
        tokens.url("http", "/token")
    ));
    get(&c, &api.url("http", "/a")).await.unwrap();
    get(&c, &api.url("http", "/b")).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1, "the token is cached");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    get(&c, &api.url("http", "/c")).await.unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "the token is refreshed before it expires"
    );

    let auth: Vec<_> = api
        .seen()
        .iter()
        .map(|s| s.header("authorization").unwrap())
        .collect();
    assert_eq!(auth, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);

    let req = &tokens.seen()[0];
    assert_eq!(req.method, hyper::Method::POST);
    assert_eq!(req.uri.path(), "/token");
    // Client credentials in the header, URL-encoded first ("my id" -> "my+id").
    assert_eq!(
        req.header("authorization").as_deref(),
        Some("Basic bXkraWQ6czNjcmV0")
    );
    assert_eq!(
        form(&req.body),
        [
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("scope".to_string(), "read write".to_string()),
            ("audience".to_string(), "pyroscope".to_string()),
        ]
    );
}

#[tokio::test]
async fn oauth2_falls_back_to_form_credentials_and_remembers() {
    let (tokens, count) = token_server(3600, true).await;
    let api = Server::http(|_| respond(200, "")).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = tmpfile(&dir, "secret", "from-file\n");
    let c = client(&format!(
        "oauth2 {{\n client_id = \"id\"\n client_secret_file = {secret:?}\n token_url = \"{}\"\n}}",
        tokens.url("http", "/token")
    ));
    get(&c, &api.url("http", "/")).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let seen = tokens.seen();
    assert_eq!(seen.len(), 2, "header style first, then form parameters");
    assert_eq!(
        form(&seen[1].body),
        [
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), "id".to_string()),
            ("client_secret".to_string(), "from-file".to_string()),
        ]
    );
    // A rotated secret invalidates the cached token; the working style is remembered.
    std::fs::write(&secret, "rotated").unwrap();
    get(&c, &api.url("http", "/")).await.unwrap();
    let seen = tokens.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].header("authorization"), None);
    assert!(form(&seen[2].body).contains(&("client_secret".into(), "rotated".into())));
    let auth: Vec<_> = api
        .seen()
        .iter()
        .map(|s| s.header("authorization").unwrap())
        .collect();
    assert_eq!(auth, ["Bearer tok-1", "Bearer tok-2"]);
}

#[tokio::test]
async fn oauth2_errors_say_what_the_server_said() {
    let tokens = Server::http(|_| {
        respond(
            400,
            r#"{"error":"invalid_scope","error_description":"no such scope"}"#,
        )
    })
    .await;
    let c = client(&format!(
        "oauth2 {{\n client_id = \"id\"\n client_secret = \"very-secret\"\n token_url = \"{}\"\n}}",
        tokens.url("http", "/token")
    ));
    let err = c.get("http://127.0.0.1:1/").await.unwrap_err().to_string();
    assert_eq!(
        err,
        "oauth2: cannot fetch token: server returned HTTP status 400 Bad Request: invalid_scope: no such scope"
    );
    assert!(!err.contains("very-secret"));
}

#[tokio::test]
async fn oauth2_uses_its_own_tls_config() {
    let ca = Ca::new("token ca");
    let srv = Server::https(ServerTls::new(ca.leaf(&["127.0.0.1"])), |_| {
        let mut r = respond(200, r#"{"access_token":"t"}"#);
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        r
    })
    .await;
    let api = Server::http(|_| respond(200, "")).await;
    let c = client(&format!(
        "oauth2 {{\n client_id = \"id\"\n client_secret = \"s\"\n token_url = \"{}\"\n tls_config {{ ca_pem = {} }}\n}}",
        srv.url("https", "/token"),
        raw(&ca.pem)
    ));
    get(&c, &api.url("http", "/")).await.unwrap();
    assert_eq!(
        api.seen()[0].header("authorization").as_deref(),
        Some("Bearer t")
    );
}

#[tokio::test]
async fn debug_output_shows_no_secret() {
    let cfg = config(
        r#"
        basic_auth {
            username = "u"
            password = "hunter2"
        }
        tls_config {
            key_pem  = "KEYMATERIAL"
            cert_pem = "CERT"
        }
        proxy_url = "http://user:proxypass@127.0.0.1:3128"
        "#,
    );
    let text = format!("{cfg:?}");
    for secret in ["hunter2", "KEYMATERIAL", "proxypass"] {
        assert!(!text.contains(secret), "{text}");
    }
    let json = river::riverjson::marshal_body(&cfg).unwrap().to_string();
    for secret in ["hunter2", "KEYMATERIAL", "proxypass"] {
        assert!(!json.contains(secret), "{json}");
    }
    let c = client(r#"bearer_token = "tok-hunter2""#);
    let text = format!("{c:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("(secret)"), "{text}");
}

/// A minimal SOCKS5 proxy (no authentication, CONNECT only) that records the requested destinations.
async fn socks5_proxy() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 2];
                c.read_exact(&mut head).await?;
                let mut methods = vec![0u8; head[1] as usize];
                c.read_exact(&mut methods).await?;
                c.write_all(&[5, 0]).await?;
                let mut req = [0u8; 4];
                c.read_exact(&mut req).await?;
                let host = match req[3] {
                    1 => {
                        let mut ip = [0u8; 4];
                        c.read_exact(&mut ip).await?;
                        std::net::Ipv4Addr::from(ip).to_string()
                    }
                    3 => {
                        let len = c.read_u8().await?;
                        let mut name = vec![0u8; len as usize];
                        c.read_exact(&mut name).await?;
                        String::from_utf8_lossy(&name).into_owned()
                    }
                    _ => return Ok::<_, std::io::Error>(()),
                };
                let port = c.read_u16().await?;
                seen.lock().unwrap().push(format!("{host}:{port}"));
                // Every destination is served by the loopback target on the same port.
                let mut up = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
                tokio::io::copy_bidirectional(&mut c, &mut up).await?;
                Ok(())
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn requests_go_through_a_socks5_proxy() {
    let target = Server::http(|_| respond(200, "via socks")).await;
    let (proxy, seen) = socks5_proxy().await;
    let port = target.addr.port();
    // socks5h: the proxy resolves the name.
    let c = client(&format!("proxy_url = \"socks5h://{proxy}\""));
    let resp = get(&c, &format!("http://app.invalid:{port}/x"))
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "via socks");
    assert_eq!(
        seen.lock().unwrap().clone(),
        [format!("app.invalid:{port}")]
    );
}

#[tokio::test]
async fn unusable_tls_material_fails_the_build_clearly() {
    let build = |body: &str| HttpClient::new(&config(body)).unwrap_err().to_string();
    assert_eq!(
        build("tls_config { ca_pem = \"not a certificate\" }"),
        "invalid TLS configuration: no CA certificate found in ca_pem/ca_file"
    );
    let err = build("tls_config { ca_file = \"/nonexistent/ca.pem\" }");
    assert!(
        err.starts_with("unable to read CA file /nonexistent/ca.pem: "),
        "{err}"
    );
    // A key that does not belong to the certificate.
    let ca = Ca::new("ca");
    let a = ca.leaf(&["a"]);
    let b = ca.leaf(&["b"]);
    let err = build(&format!(
        "tls_config {{\n cert_pem = {}\n key_pem = {}\n}}",
        raw(&a.cert_pem),
        raw(&b.key_pem)
    ));
    assert!(
        err.starts_with("invalid TLS configuration: unable to use client certificate and key"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    let err = build(&format!(
        "tls_config {{\n cert_pem = {}\n key_pem = \"garbage\"\n}}",
        raw(&a.cert_pem)
    ));
    assert!(
        err.starts_with("invalid TLS configuration: unable to parse client key"),
        "{err}"
    );
    assert!(!err.contains("garbage"), "{err}");
}

#[tokio::test]
async fn a_hanging_token_endpoint_is_bounded() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let cfg = config(&format!(
        "oauth2 {{\n client_id = \"id\"\n client_secret = \"s\"\n token_url = \"http://{addr}/token\"\n}}"
    ));
    let c = HttpClient::with_options(
        &cfg,
        ClientOptions::default().token_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let err = c.get("http://127.0.0.1:1/").await.unwrap_err().to_string();
    assert!(err.starts_with("oauth2: cannot fetch token: "), "{err}");
    assert!(
        err.contains("timed out") || err.contains("timeout"),
        "{err}"
    );
}
