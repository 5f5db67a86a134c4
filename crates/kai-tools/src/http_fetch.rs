//! The `http_fetch` tool: one http(s) request on an agent's behalf, guarded against SSRF.
//!
//! Every hop (the first request and each redirect, at most [`FetchConfig::max_redirects`]) goes
//! through the same steps: [`net_guard::check_url`] (scheme, credentials, local names, the
//! agent's host allowlist, address literals), resolution through a [`Resolver`], validation of
//! **every** resolved address, and a fresh client pinned to exactly those addresses
//! (`ClientBuilder::resolve_to_addrs`), so the connection goes to an address that was checked
//! and a second lookup (DNS rebinding) never happens. reqwest's own redirect handling and proxy
//! support are off, cookies are never stored, and the caller's headers are not forwarded to
//! another origin.
//!
//! The response body is read chunk by chunk and the call fails with `TooLarge` at
//! [`FetchConfig::max_bytes`]; one deadline ([`FetchConfig::timeout`]) covers all hops and the
//! body. Error messages name the origin only, never the path, headers or body.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::json;
use url::Url;

use crate::net_guard::{self, Target};
use crate::{Tool, ToolContext, ToolError, ToolSpec, parse_args};

/// Limits of the fetch tool.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Largest response body read, in bytes (default 10 MiB).
    pub max_bytes: usize,
    /// Deadline for the whole call: every hop and the body (default 30 s).
    pub timeout: Duration,
    /// Redirects followed before giving up (default 5).
    pub max_redirects: u8,
    /// Non-public ranges that may be fetched anyway (default none). Tests allow 127.0.0.1/32.
    pub allow_cidrs: Vec<IpNet>,
    pub user_agent: String,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_redirects: 5,
            allow_cidrs: Vec::new(),
            user_agent: concat!("kai/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

/// Turns a host name into addresses. The system resolver by default; tests inject their own.
#[async_trait::async_trait]
pub trait Resolver: Send + Sync {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo` through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl Resolver for SystemResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect())
    }
}

/// Headers a caller may not set: they belong to the connection or would confuse the server
/// about which host it is serving.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
];

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The `http_fetch` tool.
pub struct HttpFetch {
    config: FetchConfig,
    resolver: Arc<dyn Resolver>,
}

impl HttpFetch {
    pub fn new(config: FetchConfig) -> Self {
        Self { config, resolver: Arc::new(SystemResolver) }
    }

    /// Uses `resolver` instead of the system's (tests map names to chosen addresses).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Resolves the hop's host (unless it is an address) and validates every address.
    async fn pinned_addrs(&self, url: &Url, target: &Target) -> Result<Vec<SocketAddr>, ToolError> {
        let port = url.port_or_known_default().unwrap_or(80);
        let ips = match target {
            Target::Addr(ip) => vec![*ip],
            Target::Name(name) => {
                let ips = self.resolver.lookup(name).await.map_err(|e| {
                    ToolError::Failed(format!("could not resolve {name}: {e}; check the host name"))
                })?;
                if ips.is_empty() {
                    return Err(ToolError::Failed(format!("{name} has no addresses")));
                }
                for ip in &ips {
                    net_guard::check_resolved(name, *ip, &self.config.allow_cidrs)
                        .map_err(ToolError::Denied)?;
                }
                ips
            }
        };
        Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
    }

    /// A client that connects `target` only to `addrs`, follows no redirects and uses no proxy.
    fn pinned_client(
        &self,
        target: &Target,
        addrs: &[SocketAddr],
    ) -> Result<reqwest::Client, ToolError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(self.config.user_agent.clone())
            .connect_timeout(self.config.timeout);
        if let Target::Name(name) = target {
            builder = builder.resolve_to_addrs(name, addrs);
        }
        builder
            .build()
            .map_err(|e| ToolError::Failed(format!("could not set up the HTTP client: {e}")))
    }

    async fn fetch(
        &self,
        ctx: &ToolContext,
        args: FetchArgs,
    ) -> Result<serde_json::Value, ToolError> {
        let mut url = Url::parse(&args.url)
            .map_err(|e| ToolError::InvalidArgs(format!("url is not a valid URL: {e}")))?;
        let mut method = match args.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("GET") => Method::GET,
            Some("POST") => Method::POST,
            Some(other) => {
                return Err(ToolError::InvalidArgs(format!(
                    "method {other} is not supported; use GET or POST"
                )));
            }
        };
        if method == Method::GET && args.body.is_some() {
            return Err(ToolError::InvalidArgs("a body can only be sent with method POST".into()));
        }
        let caller_headers = caller_headers(&args.headers)?;
        let mut body = args.body;
        let first_origin = url.origin();

        let mut hop = 0u8;
        loop {
            let target = net_guard::check_url(&url, &ctx.allowed_hosts, &self.config.allow_cidrs)?;
            let addrs = self.pinned_addrs(&url, &target).await?;
            let origin = url.origin().ascii_serialization();
            tracing::debug!(%origin, hop, ?addrs, "http_fetch hop");
            let client = self.pinned_client(&target, &addrs)?;
            let mut request = client.request(method.clone(), url.clone());
            // Caller headers (possibly credentials) stay with the origin they were meant for.
            if url.origin() == first_origin {
                request = request.headers(caller_headers.clone());
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let response = request.send().await.map_err(|e| send_error(&origin, &e))?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(reqwest::header::LOCATION)
            {
                if hop == self.config.max_redirects {
                    return Err(ToolError::Failed(format!(
                        "{origin} redirected more than {} times; fetch the final URL directly",
                        self.config.max_redirects
                    )));
                }
                let location = location.to_str().map_err(|_| {
                    ToolError::Failed(format!(
                        "{origin} sent a redirect with an unreadable Location header"
                    ))
                })?;
                url = url.join(location).map_err(|e| {
                    ToolError::Failed(format!("{origin} redirected to an invalid URL: {e}"))
                })?;
                if status == StatusCode::SEE_OTHER
                    || (method == Method::POST && matches!(status.as_u16(), 301 | 302))
                {
                    method = Method::GET;
                    body = None;
                }
                hop += 1;
                continue;
            }
            return self.read_body(&origin, url, response).await;
        }
    }

    /// Reads the body chunk by chunk, failing as soon as it passes `max_bytes`.
    async fn read_body(
        &self,
        origin: &str,
        url: Url,
        mut response: reqwest::Response,
    ) -> Result<serde_json::Value, ToolError> {
        let max = self.config.max_bytes;
        let too_large = || {
            ToolError::TooLarge(format!(
                "the response from {origin} is larger than the {max}-byte limit"
            ))
        };
        if response.content_length().is_some_and(|len| len > max as u64) {
            return Err(too_large());
        }
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| send_error(origin, &e))? {
            if bytes.len() + chunk.len() > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(json!({
            "url": url.as_str(),
            "status": status,
            "content_type": content_type,
            "body": String::from_utf8_lossy(&bytes),
            "truncated": false,
            "bytes": bytes.len(),
        }))
    }
}

/// Validates the caller's headers; errors name the header, never its value.
fn caller_headers(headers: &BTreeMap<String, String>) -> Result<HeaderMap, ToolError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ToolError::InvalidArgs(format!("{name:?} is not a valid header name")))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(ToolError::InvalidArgs(format!(
                "the {header} header is set by the fetch tool and cannot be overridden"
            )));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            ToolError::InvalidArgs(format!("the value of header {header} is not valid"))
        })?;
        map.append(header, value);
    }
    Ok(map)
}

/// Describes a transport error by origin and root cause (reqwest's own text carries the URL).
fn send_error(origin: &str, err: &reqwest::Error) -> ToolError {
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if err.is_timeout() {
        ToolError::Timeout(format!("{origin} did not answer in time"))
    } else if err.is_connect() {
        ToolError::Failed(format!("could not connect to {origin}: {cause}"))
    } else {
        ToolError::Failed(format!("the request to {origin} failed: {cause}"))
    }
}

#[async_trait::async_trait]
impl Tool for HttpFetch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "http_fetch".into(),
            description: format!(
                "Fetch a public http(s) URL and return its status, content type and body as text \
                 (at most {} bytes, {:?}, {} redirects). Private and local addresses are refused.",
                self.config.max_bytes, self.config.timeout, self.config.max_redirects
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "http:// or https:// URL"},
                    "method": {"type": "string", "enum": ["GET", "POST"], "default": "GET"},
                    "body": {"type": "string", "description": "request body (POST only)"},
                    "headers": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "extra request headers, sent to the first origin only"
                    }
                },
                "required": ["url"],
                "additionalProperties": false
            })
            .into(),
            risky: true,
        }
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        let args: FetchArgs = parse_args("http_fetch", args)?;
        let origin = Url::parse(&args.url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| "the URL".into());
        tokio::time::timeout(self.config.timeout, self.fetch(ctx, args)).await.map_err(|_| {
            ToolError::Timeout(format!(
                "fetching {origin} took longer than the {:?} limit; the server may be slow or stalled",
                self.config.timeout
            ))
        })?
    }
}
