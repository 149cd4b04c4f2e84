//! Outbound URL safety: the one place that decides which addresses crmsync
//! may call on a tenant's behalf (webhooks, a connector's base URL, a CRM's
//! OAuth server and the API domain its token reply names).
//!
//! A tenant chooses these URLs, so without a rule they would turn the server
//! into a port scanner of its own network. Unless `CRMSYNC_ALLOW_LOCAL_TARGETS`
//! is true, loopback, private, link-local, unique-local, unspecified,
//! broadcast, multicast, shared (100.64.0.0/10), documentation and reserved
//! addresses are refused, in every form (IPv4-mapped, NAT64, 6to4 included):
//!
//! - a URL whose host is such an address, or `localhost`, is refused before
//!   any request ([`Egress::check_url`], [`HttpClient::request`], and at each
//!   redirect);
//! - a host name is resolved by our own resolver at each connection, every
//!   address it yields is checked, and the connection goes to the checked
//!   addresses only, so a name that turns local after it was accepted (DNS
//!   rebinding) is refused at the moment of the call.
//!
//! Every outbound HTTP client is an [`HttpClient`], made by [`Egress::client`];
//! there is no other way to build one.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The setting that lets crmsync call local and private addresses (demos,
/// tests, a CRM proxy on the same network).
pub const VARIABLE: &str = "CRMSYNC_ALLOW_LOCAL_TARGETS";

/// The most redirects a CRM call follows (each hop is checked).
const MAX_REDIRECTS: usize = 10;

/// Why a call was refused. The messages name [`VARIABLE`]; they never name a
/// resolved address (that would tell a tenant how internal names resolve).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The URL's host is an address of a refused kind.
    #[error(
        "{host} is a {kind} address: crmsync calls only public addresses unless {VARIABLE}=true"
    )]
    Address {
        /// The host as written.
        host: String,
        /// `loopback`, `private`, ...
        kind: &'static str,
    },
    /// The URL's host is `localhost` or a name under it.
    #[error(
        "{host} names this machine: crmsync calls only public addresses unless {VARIABLE}=true"
    )]
    Localhost {
        /// The host as written.
        host: String,
    },
    /// The host name resolved to an address of a refused kind.
    #[error(
        "{host} resolves to a {kind} address: crmsync calls only public addresses unless {VARIABLE}=true"
    )]
    Resolved {
        /// The host name.
        host: String,
        /// `loopback`, `private`, ...
        kind: &'static str,
    },
    /// Not an absolute http(s) URL with a host.
    #[error("not an absolute http(s) URL with a host")]
    NotHttp,
}

/// What kind of refused address `ip` is, or `None` for a public one.
pub fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => "broadcast",
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, 16..=31, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (100.64.0.0/10)",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    // Forms that carry an IPv4 address are as good as that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    Some(match s {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // IPv4-compatible (deprecated), ::a.b.c.d.
        [0, 0, 0, 0, 0, 0, hi, lo] => return refused_v4(embedded(hi, lo)).or(Some("reserved")),
        // NAT64's well-known prefix, 64:ff9b::a.b.c.d.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return refused_v4(embedded(hi, lo)),
        // 6to4, 2002:aabb:ccdd::.
        [0x2002, hi, lo, ..] => return refused_v4(embedded(hi, lo)),
        [x, ..] if x & 0xfe00 == 0xfc00 => "unique-local",
        [x, ..] if x & 0xffc0 == 0xfe80 => "link-local",
        // Site-local (deprecated): private in all but name.
        [x, ..] if x & 0xffc0 == 0xfec0 => "private",
        [x, ..] if x & 0xff00 == 0xff00 => "multicast",
        [0x2001, 0x0db8, ..] => "documentation",
        _ => return None,
    })
}

/// Resolves host names; the system's resolver unless a test brings its own.
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `host`.
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// Fixed answers for a few names (tests: a name that resolves to loopback
/// stands for a DNS rebinding); other names do not resolve.
#[derive(Debug, Clone, Default)]
pub struct StaticHosts(HashMap<String, Vec<IpAddr>>);

impl StaticHosts {
    /// Answers `ip` for `host`.
    pub fn with(mut self, host: &str, ip: IpAddr) -> Self {
        self.0
            .entry(host.to_ascii_lowercase())
            .or_default()
            .push(ip);
        self
    }
}

impl Lookup for StaticHosts {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let found = self.0.get(&host.to_ascii_lowercase()).cloned();
        Box::pin(async move {
            found.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host}: no address"))
            })
        })
    }
}

/// The outbound rule and the resolver it checks: cheap to clone, made once
/// from the configuration and handed to everything that calls out.
#[derive(Clone)]
pub struct Egress {
    allow_local: bool,
    lookup: Arc<dyn Lookup>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("allow_local", &self.allow_local)
            .finish_non_exhaustive()
    }
}

impl Default for Egress {
    /// Public addresses only (the default of [`VARIABLE`]).
    fn default() -> Self {
        Self::new(false)
    }
}

impl Egress {
    /// The rule; `allow_local_targets` is [`VARIABLE`].
    pub fn new(allow_local_targets: bool) -> Self {
        Self {
            allow_local: allow_local_targets,
            lookup: Arc::new(SystemLookup),
        }
    }

    /// Resolves names with `lookup` instead of the system's resolver.
    pub fn with_lookup(mut self, lookup: impl Lookup) -> Self {
        self.lookup = Arc::new(lookup);
        self
    }

    /// True when local and private addresses may be called.
    pub fn allows_local(&self) -> bool {
        self.allow_local
    }

    /// Refuses a URL whose host is, as written, an address of a refused kind
    /// or `localhost` (names are checked again when they are resolved).
    pub fn check_url(&self, url: &str) -> Result<(), EgressError> {
        let parsed = Url::parse(url).map_err(|_| EgressError::NotHttp)?;
        self.check_parsed(&parsed)
    }

    fn check_parsed(&self, url: &Url) -> Result<(), EgressError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::NotHttp);
        }
        // The URL parser has normalised the host: `0x7f.1` is `127.0.0.1`,
        // IPv6 addresses are in brackets, names in lower case.
        let host = url.host_str().ok_or(EgressError::NotHttp)?;
        if self.allow_local {
            return Ok(());
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return match refused_kind(ip) {
                Some(kind) => Err(EgressError::Address {
                    host: host.to_owned(),
                    kind,
                }),
                None => Ok(()),
            };
        }
        let name = host.trim_end_matches('.');
        if name == "localhost" || name.ends_with(".localhost") {
            return Err(EgressError::Localhost {
                host: host.to_owned(),
            });
        }
        Ok(())
    }

    /// An HTTP client that calls only what this rule allows.
    pub fn client(&self, options: HttpOptions) -> Result<HttpClient, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(options.user_agent)
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .dns_resolver(Arc::new(CheckingResolver(self.clone())));
        if !self.allow_local {
            // Through a proxy, the proxy resolves the name and we cannot
            // check where the call goes.
            builder = builder.no_proxy();
        }
        builder = builder.redirect(if options.follow_redirects {
            let rule = self.clone();
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if let Err(e) = rule.check_parsed(attempt.url()) {
                    attempt.error(e)
                } else {
                    attempt.follow()
                }
            })
        } else {
            reqwest::redirect::Policy::none()
        });
        Ok(HttpClient {
            inner: builder.build()?,
            egress: self.clone(),
        })
    }
}

/// How an [`HttpClient`] behaves beyond the rule.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The `User-Agent`.
    pub user_agent: &'static str,
    /// The longest wait for a connection.
    pub connect_timeout: Duration,
    /// The longest a whole call may take.
    pub timeout: Duration,
    /// Follow redirects (each hop checked); webhooks do not.
    pub follow_redirects: bool,
}

impl Default for HttpOptions {
    /// The CRM clients' options.
    fn default() -> Self {
        Self {
            user_agent: concat!("crmsync/", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            follow_redirects: true,
        }
    }
}

/// An HTTP client under the outbound rule: every request's URL is checked
/// as written, every name as resolved, every redirect hop as followed.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    egress: Egress,
}

impl HttpClient {
    /// A request to `url`, or the rule's refusal (nothing is sent).
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, EgressError> {
        let parsed = Url::parse(url).map_err(|_| EgressError::NotHttp)?;
        self.egress.check_parsed(&parsed)?;
        Ok(self.inner.request(method, parsed))
    }

    /// The rule this client follows.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }
}

/// The rule's refusal inside a failed request, if that is why it failed.
pub fn refusal(error: &reqwest::Error) -> Option<&EgressError> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<EgressError>() {
            return Some(refused);
        }
        cause = e.source();
    }
    None
}

/// Resolves with the rule's lookup and refuses names with a refused address:
/// the connection then goes only to the addresses checked here.
struct CheckingResolver(Egress);

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = egress.lookup.lookup(host.clone()).await?;
            if !egress.allow_local
                && let Some(kind) = ips.iter().find_map(|ip| refused_kind(*ip))
            {
                return Err(Box::new(EgressError::Resolved { host, kind }) as _);
            }
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_private_and_special_addresses_are_refused_in_every_form() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(refused_kind(ip).is_some(), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(refused_kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn urls_naming_local_hosts_are_refused_and_name_the_variable() {
        let egress = Egress::new(false);
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/x",
            "http://LOCALHOST./x",
            "http://api.localhost/x",
            "http://[::1]:80/",
            "http://[::ffff:7f00:1]/",
            "http://0x7f.1/",
            "http://2130706433/",
        ] {
            let e = egress.check_url(url).unwrap_err();
            assert!(e.to_string().contains(VARIABLE), "{url}: {e}");
        }
        assert!(egress.check_url("https://hooks.example.com/x").is_ok());
        assert!(egress.check_url("https://93.184.216.34/x").is_ok());
    }

    #[test]
    fn the_setting_allows_local_urls() {
        assert!(
            Egress::new(true)
                .check_url("http://127.0.0.1:9000/hook")
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_without_connecting() {
        let egress = Egress::new(false).with_lookup(
            StaticHosts::default().with("rebind.test", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        );
        let client = egress.client(HttpOptions::default()).unwrap();
        let error = client
            .request(reqwest::Method::GET, "http://rebind.test:9/")
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let refused = refusal(&error).expect("the rule refused it");
        assert!(
            matches!(
                refused,
                EgressError::Resolved {
                    kind: "loopback",
                    ..
                }
            ),
            "{refused}"
        );
    }
}
