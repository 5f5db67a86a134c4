//! The fetch tool against real loopback servers: the SSRF matrix (no connection ever reaches
//! the canary listener), DNS rebinding, and the redirect, size and time limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use kai_tools::http_fetch::Resolver;
use kai_tools::{FetchConfig, HttpFetch, Tool, ToolContext, ToolError};
use serde_json::{Value, json};
use tokio::net::TcpListener;

fn ctx(allowed_hosts: &[&str]) -> ToolContext {
    ToolContext {
        task_id: None,
        step_id: None,
        agent: "kExecutor:executor".into(),
        workspace: std::env::temp_dir(),
        allowed_hosts: allowed_hosts.iter().map(|h| (*h).to_string()).collect(),
    }
}

fn config(allow: &[&str]) -> FetchConfig {
    FetchConfig {
        timeout: Duration::from_secs(3),
        allow_cidrs: allow.iter().map(|c| c.parse().unwrap()).collect(),
        ..FetchConfig::default()
    }
}

/// A listener that only counts the connections it accepts.
struct Canary {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Canary {
    async fn bind(addr: SocketAddr) -> Canary {
        let listener = TcpListener::bind(addr).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Canary { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn redirect(Query(q): Query<HashMap<String, String>>) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, q.get("to").cloned().unwrap_or_default())])
        .into_response()
}

async fn chain(Path(n): Path<u32>) -> Response {
    if n == 0 {
        return "done".into_response();
    }
    (StatusCode::FOUND, [(header::LOCATION, format!("/chain/{}", n - 1))]).into_response()
}

async fn show_headers(headers: HeaderMap) -> String {
    let get =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("none").to_string();
    format!("auth={} x-test={} cookie={}", get("authorization"), get("x-test"), get("cookie"))
}

async fn echo(method: axum::http::Method, body: String) -> String {
    format!("{method} {body}")
}

/// 20 MiB in 1 MiB chunks, without a Content-Length.
async fn huge() -> Body {
    let chunks = (0..20).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1024 * 1024]));
    Body::from_stream(futures::stream::iter(chunks))
}

/// Headers and one chunk, then nothing, forever.
async fn stall_body() -> Body {
    let first = futures::stream::iter([Ok::<_, std::io::Error>(b"partial".to_vec())]);
    Body::from_stream(futures::StreamExt::chain(first, futures::stream::pending()))
}

async fn stall_headers() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

/// The test server, on `ip` port `port` (0 for any).
async fn server(ip: &str, port: u16) -> SocketAddr {
    let app = Router::new()
        .route("/ok", get(|| async { "hello" }))
        .route("/redirect", get(redirect))
        .route("/chain/{n}", get(chain))
        .route("/headers", get(show_headers))
        .route("/echo", any(echo))
        .route("/huge", get(huge))
        .route("/stall-body", get(stall_body))
        .route("/stall-headers", get(stall_headers));
    let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Maps names to fixed addresses; unknown names fail like NXDOMAIN.
struct MapResolver(HashMap<String, Vec<IpAddr>>);

#[async_trait::async_trait]
impl Resolver for MapResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        self.0
            .get(host)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))
    }
}

fn map_resolver(entries: &[(&str, &[&str])]) -> Arc<MapResolver> {
    let map = entries
        .iter()
        .map(|(name, ips)| (name.to_string(), ips.iter().map(|ip| ip.parse().unwrap()).collect()))
        .collect();
    Arc::new(MapResolver(map))
}

async fn fetch(tool: &HttpFetch, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
    tool.call(ctx, args).await
}

#[tokio::test]
async fn ssrf_matrix_never_reaches_the_canary() {
    // Dual-stack: catches 127.0.0.0/8, 0.0.0.0, ::1 and the mapped forms on one port.
    let canary = Canary::bind("[::]:0".parse().unwrap()).await;
    let p = canary.port;
    // The one server the fetcher may reach: 127.0.0.2, allowed explicitly.
    let allowed = server("127.0.0.2", 0).await;
    let resolver = map_resolver(&[
        ("internal.test", &["127.0.0.1"]),
        ("v6.test", &["::1"]),
        ("mixed.test", &["93.184.216.34", "127.0.0.1"]),
        ("mapped.test", &["::ffff:127.0.0.1"]),
        ("meta.test", &["169.254.169.254"]),
        ("private.test", &["10.1.2.3"]),
        ("good.test", &["127.0.0.2"]),
        ("other.test", &["127.0.0.2"]),
    ]);
    let tool = HttpFetch::new(config(&["127.0.0.2/32"])).with_resolver(resolver);
    let open = ctx(&[]);

    // The allowed server works, directly and through a redirect, so the cases below are real.
    let ok = fetch(&tool, &open, json!({"url": format!("http://{allowed}/ok")})).await.unwrap();
    assert_eq!(ok["body"], "hello");
    let via = format!("http://{allowed}/redirect?to=http://{allowed}/ok");
    let ok = fetch(&tool, &open, json!({"url": via})).await.unwrap();
    assert_eq!(ok["url"], format!("http://{allowed}/ok"));

    let direct = [
        format!("http://127.0.0.1:{p}/"),
        format!("http://127.0.0.3:{p}/"),
        format!("http://[::1]:{p}/"),
        format!("http://0.0.0.0:{p}/"),
        format!("http://0:{p}/"),
        format!("http://[::]:{p}/"),
        format!("http://localhost:{p}/"),
        format!("http://LOCALHOST:{p}/"),
        format!("http://localhost.:{p}/"),
        format!("http://foo.localhost:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://[::ffff:7f00:1]:{p}/"),
        format!("http://[::127.0.0.1]:{p}/"),
        format!("http://[64:ff9b::7f00:1]:{p}/"),
        format!("http://[2002:7f00:1::]:{p}/"),
        format!("http://2130706433:{p}/"),
        format!("http://0x7f.1:{p}/"),
        format!("http://0x7f000001:{p}/"),
        format!("http://0177.0.0.1:{p}/"),
        format!("http://017700000001:{p}/"),
        format!("http://127.1:{p}/"),
        format!("https://127.0.0.1:{p}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://10.0.0.1:{p}/"),
        format!("http://172.16.0.1:{p}/"),
        format!("http://192.168.1.1:{p}/"),
        format!("http://100.100.100.200:{p}/"),
        format!("http://[fc00::1]:{p}/"),
        format!("http://[fe80::1]:{p}/"),
        format!("http://224.0.0.1:{p}/"),
        format!("http://255.255.255.255:{p}/"),
        "file:///etc/passwd".to_string(),
        format!("gopher://127.0.0.1:{p}/_x"),
        format!("ftp://127.0.0.1:{p}/"),
        "data:text/plain,hi".to_string(),
        format!("http://internal.test:{p}/"),
        format!("http://v6.test:{p}/"),
        format!("http://mixed.test:{p}/"),
        format!("http://mapped.test:{p}/"),
        "http://meta.test/".to_string(),
        format!("http://private.test:{p}/"),
    ];
    let hops = [
        format!("http://127.0.0.1:{p}/"),
        format!("http://[::1]:{p}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://localhost:{p}/"),
        format!("http://foo.localhost:{p}/"),
        format!("http://2130706433:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://internal.test:{p}/"),
        "file:///etc/passwd".to_string(),
        format!("gopher://127.0.0.1:{p}/"),
        // A relative hop back to the same server, which then sends us to the canary.
        format!("/redirect?to=http://127.0.0.1:{p}/"),
    ];
    let redirects = hops.iter().map(|to| format!("http://{allowed}/redirect?to={to}"));
    let mut cases = 0;
    for url in direct.iter().cloned().chain(redirects) {
        let err = fetch(&tool, &open, json!({"url": url})).await.unwrap_err();
        assert_eq!(err.code(), "denied", "{url}: {err}");
        cases += 1;
    }
    let creds = format!("http://user:pw@127.0.0.1:{p}/");
    let err = fetch(&tool, &open, json!({"url": creds})).await.unwrap_err();
    assert_eq!(err.code(), "invalid_args", "{err}");
    cases += 1;

    // The agent's host allowlist is checked on every hop too.
    let listed = ctx(&["good.test"]);
    let port = allowed.port();
    let ok = fetch(&tool, &listed, json!({"url": format!("http://good.test:{port}/ok")})).await;
    assert_eq!(ok.unwrap()["body"], "hello");
    for url in [
        format!("http://good.test:{port}/redirect?to=http://other.test:{port}/ok"),
        format!("http://other.test:{port}/ok"),
        format!("http://127.0.0.1:{p}/"),
    ] {
        let err = fetch(&tool, &listed, json!({"url": url})).await.unwrap_err();
        assert_eq!(err.code(), "denied", "{url}: {err}");
        cases += 1;
    }

    assert!(cases >= 40, "only {cases} cases");
    assert_eq!(canary.hits(), 0, "a connection reached the loopback canary");

    // Control: the canary does count, once its address is explicitly allowed.
    let control = HttpFetch::new(config(&["127.0.0.1/32"]));
    let _ = fetch(&control, &open, json!({"url": format!("http://127.0.0.1:{p}/")})).await;
    assert_eq!(canary.hits(), 1);
}

/// Public (here: allowed) on the first lookup, private on every later one.
struct Rebinding {
    calls: AtomicUsize,
    first: IpAddr,
    then: IpAddr,
}

#[async_trait::async_trait]
impl Resolver for Rebinding {
    async fn lookup(&self, _host: &str) -> std::io::Result<Vec<IpAddr>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec![if n == 0 { self.first } else { self.then }])
    }
}

#[tokio::test]
async fn dns_rebinding_connects_to_the_validated_address_only() {
    let server_addr = server("127.0.0.2", 0).await;
    let port = server_addr.port();
    // The rebinding target: the same port on 127.0.0.1.
    let canary = Canary::bind(SocketAddr::new("127.0.0.1".parse().unwrap(), port)).await;
    let resolver = || {
        Arc::new(Rebinding {
            calls: AtomicUsize::new(0),
            first: "127.0.0.2".parse().unwrap(),
            then: "127.0.0.1".parse().unwrap(),
        })
    };

    // One lookup per hop; the connection goes to the address that lookup returned and checked.
    let r = resolver();
    let tool = HttpFetch::new(config(&["127.0.0.2/32"])).with_resolver(r.clone());
    let url = format!("http://rebind.test:{port}/ok");
    let ok = fetch(&tool, &ctx(&[]), json!({"url": url})).await.unwrap();
    assert_eq!(ok["body"], "hello");
    assert_eq!(r.calls.load(Ordering::SeqCst), 1);

    // A redirect to the same name resolves again, gets the private answer and is refused.
    let r = resolver();
    let tool = HttpFetch::new(config(&["127.0.0.2/32"])).with_resolver(r.clone());
    let url = format!("http://rebind.test:{port}/redirect?to=/ok");
    let err = fetch(&tool, &ctx(&[]), json!({"url": url})).await.unwrap_err();
    assert_eq!(err.code(), "denied", "{err}");
    assert_eq!(r.calls.load(Ordering::SeqCst), 2);
    assert_eq!(canary.hits(), 0);
}

#[tokio::test]
async fn allowed_fetches_work_and_carry_method_body_and_headers() {
    let addr = server("127.0.0.1", 0).await;
    let other = server("127.0.0.2", 0).await;
    let tool = HttpFetch::new(config(&["127.0.0.1/32", "127.0.0.2/32"]));
    let c = ctx(&[]);

    let ok = fetch(&tool, &c, json!({"url": format!("http://{addr}/ok")})).await.unwrap();
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["body"], "hello");
    assert_eq!(ok["bytes"], 5);
    assert_eq!(ok["truncated"], false);
    assert_eq!(ok["content_type"], "text/plain; charset=utf-8");

    let args = json!({"url": format!("http://{addr}/echo"), "method": "POST", "body": "ping"});
    assert_eq!(fetch(&tool, &c, args).await.unwrap()["body"], "POST ping");

    let headers = json!({"authorization": "Bearer s3cret", "x-test": "1"});
    let args = json!({"url": format!("http://{addr}/headers"), "headers": headers});
    let seen = fetch(&tool, &c, args).await.unwrap();
    assert_eq!(seen["body"], "auth=Bearer s3cret x-test=1 cookie=none");

    // Across origins the caller's headers stay behind.
    let url = format!("http://{addr}/redirect?to=http://{other}/headers");
    let seen = fetch(&tool, &c, json!({"url": url, "headers": headers})).await.unwrap();
    assert_eq!(seen["body"], "auth=none x-test=none cookie=none");

    let missing = fetch(&tool, &c, json!({"url": format!("http://{addr}/nope")})).await.unwrap();
    assert_eq!(missing["status"], 404);

    for bad in [
        json!({"url": "not a url"}),
        json!({"url": format!("http://{addr}/ok"), "method": "DELETE"}),
        json!({"url": format!("http://{addr}/ok"), "body": "x"}),
        json!({"url": format!("http://{addr}/ok"), "headers": {"host": "evil"}}),
        json!({"url": format!("http://{addr}/ok"), "headers": {"bad name": "x"}}),
        json!({"url": format!("http://{addr}/ok"), "extra": 1}),
        json!({}),
    ] {
        let err = fetch(&tool, &c, bad.clone()).await.unwrap_err();
        assert_eq!(err.code(), "invalid_args", "{bad}: {err}");
    }
}

#[tokio::test]
async fn redirects_stop_after_five() {
    let addr = server("127.0.0.1", 0).await;
    let tool = HttpFetch::new(config(&["127.0.0.1/32"]));
    let five =
        fetch(&tool, &ctx(&[]), json!({"url": format!("http://{addr}/chain/5")})).await.unwrap();
    assert_eq!(five["body"], "done");
    assert_eq!(five["url"], format!("http://{addr}/chain/0"));
    let err = fetch(&tool, &ctx(&[]), json!({"url": format!("http://{addr}/chain/6")}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "failed", "{err}");
    assert!(err.to_string().contains("more than 5"), "{err}");
}

#[tokio::test]
async fn a_20_mib_body_stops_at_the_cap() {
    let addr = server("127.0.0.1", 0).await;
    let tool = HttpFetch::new(config(&["127.0.0.1/32"]));
    let err =
        fetch(&tool, &ctx(&[]), json!({"url": format!("http://{addr}/huge")})).await.unwrap_err();
    assert_eq!(err.code(), "too_large", "{err}");
    assert!(!err.to_string().contains("/huge"), "errors name the origin only: {err}");

    let small = HttpFetch::new(FetchConfig { max_bytes: 4, ..config(&["127.0.0.1/32"]) });
    let err =
        fetch(&small, &ctx(&[]), json!({"url": format!("http://{addr}/ok")})).await.unwrap_err();
    assert_eq!(err.code(), "too_large", "{err}");
}

#[tokio::test]
async fn stalled_servers_time_out() {
    let addr = server("127.0.0.1", 0).await;
    let tool = HttpFetch::new(FetchConfig {
        timeout: Duration::from_millis(500),
        ..config(&["127.0.0.1/32"])
    });
    for path in ["stall-headers", "stall-body"] {
        let started = Instant::now();
        let err = fetch(&tool, &ctx(&[]), json!({"url": format!("http://{addr}/{path}")}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "timeout", "{path}: {err}");
        assert!(started.elapsed() < Duration::from_secs(3), "{path} took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn connection_errors_are_failed_and_name_the_origin_only() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let tool = HttpFetch::new(config(&["127.0.0.1/32"]));
    let url = format!("http://127.0.0.1:{port}/secret-path?token=abc");
    let err = fetch(&tool, &ctx(&[]), json!({"url": url})).await.unwrap_err();
    assert_eq!(err.code(), "failed", "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")) && !msg.contains("token"), "{msg}");
}
