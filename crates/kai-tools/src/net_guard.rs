//! The egress guard: which addresses, hosts and URLs an outgoing request may reach.
//!
//! [`is_public`] classifies an address; everything that is not globally routable unicast is
//! refused (loopback, private, link-local and the cloud metadata address, CGNAT, ULA,
//! multicast, broadcast, documentation, benchmarking and reserved ranges). IPv6 forms that carry
//! an IPv4 address (IPv4-mapped and -compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
//! judged by the IPv4 address they embed, so `::ffff:127.0.0.1` is loopback.
//!
//! Names are checked before any lookup ([`check_host_name`]: `localhost` and `*.localhost` never
//! resolve), and against the agent's host allowlist ([`host_allowed`]). [`check_url`] applies
//! the scheme, credential and host rules to one URL; the fetch tool calls it on every redirect
//! hop and validates every resolved address with [`check_addr`] before it connects.
//!
//! This module does no I/O: resolution and connection pinning live in [`crate::http_fetch`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use url::{Host, Url};

use crate::ToolError;

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IPv4 ranges that are not public, with the reason shown to the user.
const V4_DENIED: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "a \"this network\" address (0.0.0.0/8)"),
    (v4(10, 0, 0, 0, 8), "a private address (10.0.0.0/8)"),
    (v4(100, 64, 0, 0, 10), "a carrier-grade NAT address (100.64.0.0/10)"),
    (v4(127, 0, 0, 0, 8), "a loopback address (127.0.0.0/8)"),
    (v4(169, 254, 0, 0, 16), "a link-local or cloud metadata address (169.254.0.0/16)"),
    (v4(172, 16, 0, 0, 12), "a private address (172.16.0.0/12)"),
    (v4(192, 0, 0, 0, 24), "an IETF protocol address (192.0.0.0/24)"),
    (v4(192, 0, 2, 0, 24), "a documentation address (192.0.2.0/24)"),
    (v4(192, 88, 99, 0, 24), "a 6to4 relay address (192.88.99.0/24)"),
    (v4(192, 168, 0, 0, 16), "a private address (192.168.0.0/16)"),
    (v4(198, 18, 0, 0, 15), "a benchmarking address (198.18.0.0/15)"),
    (v4(198, 51, 100, 0, 24), "a documentation address (198.51.100.0/24)"),
    (v4(203, 0, 113, 0, 24), "a documentation address (203.0.113.0/24)"),
    (v4(224, 0, 0, 0, 4), "a multicast address (224.0.0.0/4)"),
    (v4(240, 0, 0, 0, 4), "a reserved or broadcast address (240.0.0.0/4)"),
];

/// IPv6 ranges inside global unicast `2000::/3` that are not public anyway.
const V6_DENIED: &[(Ipv6Net, &str)] = &[
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "a documentation address (2001:db8::/32)"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), "an IETF protocol address (2001::/23, incl. Teredo)"),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "a documentation address (3fff::/20)"),
];

const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);
const NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const SIX_TO_FOUR: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

/// The IPv4 address an IPv6 address carries, for the forms that route to IPv4: mapped
/// `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::`.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(mapped) = ip.to_ipv4_mapped() {
        Some(mapped)
    } else if (s[..6] == [0; 6] && !matches!(ip, Ipv6Addr::UNSPECIFIED | Ipv6Addr::LOCALHOST))
        || NAT64.contains(&ip)
    {
        Some(low)
    } else if SIX_TO_FOUR.contains(&ip) {
        Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8))
    } else {
        None
    }
}

/// Why `ip` is not a public address, or `None` when it is.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => V4_DENIED.iter().find(|(net, _)| net.contains(&ip)).map(|(_, why)| *why),
        IpAddr::V6(ip) => {
            if let Some(inner) = embedded_v4(ip) {
                return non_public_reason(IpAddr::V4(inner));
            }
            if ip.is_unspecified() {
                return Some("the unspecified address (::)");
            }
            if ip.is_loopback() {
                return Some("a loopback address (::1)");
            }
            if !GLOBAL_UNICAST_V6.contains(&ip) {
                return Some(match ip.segments()[0] {
                    0xfc00..=0xfdff => "a unique local address (fc00::/7)",
                    0xfe80..=0xfebf => "a link-local address (fe80::/10)",
                    0xff00..=0xffff => "a multicast address (ff00::/8)",
                    _ => "not a global unicast address (outside 2000::/3)",
                });
            }
            V6_DENIED.iter().find(|(net, _)| net.contains(&ip)).map(|(_, why)| *why)
        }
    }
}

/// Whether `ip` is a globally routable unicast address that a fetch may connect to.
pub fn is_public(ip: IpAddr) -> bool {
    non_public_reason(ip).is_none()
}

/// Whether `ip` (or the IPv4 address it embeds) is in one of the explicitly allowed ranges.
fn explicitly_allowed(ip: IpAddr, allow_cidrs: &[IpNet]) -> bool {
    let embedded = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    allow_cidrs.iter().any(|net| net.contains(&ip) || embedded.is_some_and(|e| net.contains(&e)))
}

/// Accepts `ip` when it is public or explicitly allowed; the error explains the refusal.
pub fn check_addr(ip: IpAddr, allow_cidrs: &[IpNet]) -> Result<(), String> {
    refusal(ip, allow_cidrs).map_or(Ok(()), |why| Err(format!("{ip} is {why}; {ONLY_PUBLIC}")))
}

/// [`check_addr`] for an address that `name` resolved to; the error names both.
pub fn check_resolved(name: &str, ip: IpAddr, allow_cidrs: &[IpNet]) -> Result<(), String> {
    refusal(ip, allow_cidrs)
        .map_or(Ok(()), |why| Err(format!("{name} resolves to {ip}, {why}; {ONLY_PUBLIC}")))
}

const ONLY_PUBLIC: &str = "only public internet addresses may be fetched \
                           (an administrator can allow a private range in the fetch settings)";

fn refusal(ip: IpAddr, allow_cidrs: &[IpNet]) -> Option<&'static str> {
    non_public_reason(ip).filter(|_| !explicitly_allowed(ip, allow_cidrs))
}

/// Lower-cases `host` and drops one trailing dot (`Example.COM.` → `example.com`).
fn normalize(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// Refuses names that must never be resolved: `localhost` and anything under `.localhost`.
pub fn check_host_name(host: &str) -> Result<(), String> {
    let host = normalize(host);
    if host == "localhost" || host.ends_with(".localhost") {
        return Err(format!(
            "{host} names this machine; only public internet hosts may be fetched"
        ));
    }
    Ok(())
}

/// Whether `host` matches the agent's allowlist: empty allows any host; an entry matches
/// exactly, or `*.example.com` matches any name under `example.com` (not `example.com` itself).
pub fn host_allowed(host: &str, allowed_hosts: &[String]) -> bool {
    if allowed_hosts.is_empty() {
        return true;
    }
    let host = normalize(host);
    allowed_hosts.iter().any(|entry| {
        let entry = normalize(entry.trim());
        match entry.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
            None => host == entry,
        }
    })
}

/// Where a checked URL points: an address to validate directly, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(IpAddr),
    Name(String),
}

/// Applies the URL rules to one hop: http/https only, no embedded credentials, a host that is
/// not a local name, on the agent's allowlist, and (for address literals) a permitted address.
pub fn check_url(
    url: &Url,
    allowed_hosts: &[String],
    allow_cidrs: &[IpNet],
) -> Result<Target, ToolError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ToolError::Denied(format!(
            "the {}: scheme is not allowed; only http and https URLs can be fetched",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ToolError::InvalidArgs(
            "URLs with embedded credentials (user:password@) are not supported; \
             send an Authorization header instead"
                .into(),
        ));
    }
    let (target, display) = match url.host() {
        None => return Err(ToolError::InvalidArgs("the URL has no host".into())),
        Some(Host::Ipv4(ip)) => (Target::Addr(IpAddr::V4(ip)), ip.to_string()),
        Some(Host::Ipv6(ip)) => (Target::Addr(IpAddr::V6(ip)), ip.to_string()),
        Some(Host::Domain(name)) => {
            check_host_name(name).map_err(ToolError::Denied)?;
            (Target::Name(normalize(name)), normalize(name))
        }
    };
    if !host_allowed(&display, allowed_hosts) {
        return Err(ToolError::Denied(format!(
            "{display} is not on this agent's list of allowed hosts ({}); \
             add it to the agent's permissions to fetch it",
            allowed_hosts.join(", ")
        )));
    }
    if let Target::Addr(ip) = target {
        check_addr(ip, allow_cidrs).map_err(ToolError::Denied)?;
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        let table: &[(&str, bool)] = &[
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("93.184.216.34", true),
            ("100.63.255.255", true),
            ("100.128.0.0", true),
            ("172.15.255.255", true),
            ("172.32.0.0", true),
            ("192.0.1.1", true),
            ("198.17.255.255", true),
            ("198.20.0.0", true),
            ("223.255.255.255", true),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.0.0.1", false),
            ("10.255.255.255", false),
            ("100.64.0.1", false),
            ("100.100.100.200", false),
            ("127.0.0.1", false),
            ("127.255.255.254", false),
            ("169.254.169.254", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            ("2606:4700:4700::1111", true),
            ("2001:4860:4860::8888", true),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::808:808", true),
            ("2002:808:808::1", true),
            ("::", false),
            ("::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:7f00:1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:10.0.0.1", false),
            ("::127.0.0.1", false),
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("2002:7f00:1::", false),
            ("2002:c0a8:101::1", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
            ("2001::1", false),
            ("3fff::1", false),
            ("100::1", false),
            ("64:ff9b:1::1", false),
        ];
        for (ip, public) in table {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(is_public(addr), *public, "{ip}: {:?}", non_public_reason(addr));
        }
    }

    #[test]
    fn allowlist_covers_embedded_forms() {
        let allow: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(check_addr("127.0.0.1".parse().unwrap(), &allow).is_ok());
        assert!(check_addr("::ffff:127.0.0.1".parse().unwrap(), &allow).is_ok());
        assert!(check_addr("127.0.0.2".parse().unwrap(), &allow).is_err());
        let err = check_addr("169.254.169.254".parse().unwrap(), &[]).unwrap_err();
        assert!(err.contains("metadata"), "{err}");
        let err = check_resolved("db.test", "10.1.2.3".parse().unwrap(), &[]).unwrap_err();
        assert!(err.starts_with("db.test resolves to 10.1.2.3, a private address"), "{err}");
    }

    #[test]
    fn local_names_are_refused() {
        for name in ["localhost", "LOCALHOST", "localhost.", "foo.localhost", "a.b.LocalHost."] {
            assert!(check_host_name(name).is_err(), "{name}");
        }
        for name in ["localhost.example.com", "mylocalhost", "example.com"] {
            assert!(check_host_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn host_allowlist_matches_exact_and_suffix() {
        let allowed = vec!["example.com".to_string(), "*.docs.rs".to_string()];
        assert!(host_allowed("example.com", &allowed));
        assert!(host_allowed("EXAMPLE.com.", &allowed));
        assert!(host_allowed("a.docs.rs", &allowed));
        assert!(host_allowed("a.b.docs.rs", &allowed));
        assert!(!host_allowed("docs.rs", &allowed));
        assert!(!host_allowed("evildocs.rs", &allowed));
        assert!(!host_allowed("www.example.com", &allowed));
        assert!(!host_allowed("example.com.evil.net", &allowed));
        assert!(host_allowed("anything.net", &[]));
    }

    #[test]
    fn url_forms_of_loopback_are_denied() {
        for raw in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]/",
            "http://0/",
            "http://localhost/",
            "http://foo.localhost./",
        ] {
            let url = Url::parse(raw).unwrap();
            let err = check_url(&url, &[], &[]).unwrap_err();
            assert_eq!(err.code(), "denied", "{raw}: {err}");
        }
        for raw in ["file:///etc/passwd", "gopher://example.com/", "ftp://example.com/", "data:,x"]
        {
            let url = Url::parse(raw).unwrap();
            assert_eq!(check_url(&url, &[], &[]).unwrap_err().code(), "denied", "{raw}");
        }
        let url = Url::parse("https://user:pw@example.com/").unwrap();
        assert_eq!(check_url(&url, &[], &[]).unwrap_err().code(), "invalid_args");
        let url = Url::parse("https://Example.com/x").unwrap();
        assert_eq!(check_url(&url, &[], &[]).unwrap(), Target::Name("example.com".into()));
    }
}
