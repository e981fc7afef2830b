//! The guard against server-side request forgery: a webhook URL is chosen by whoever may create
//! a subscription, so without it any such caller could make the server POST to its own
//! loopback admin ports, to the cloud metadata service (169.254.169.254) or into the private
//! network behind it.
//!
//! Names are checked where they are resolved ([`GuardedResolver`], plugged into the HTTP
//! client), so that the address checked is the address connected to (a name that resolves to a
//! public address when checked and to a private one when used cannot slip through). URLs with
//! a literal IP never reach a resolver, so [`check_url`] checks them before sending.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` must not be reached from the server unless allow-listed: loopback, private
/// (RFC 1918, unique local), link-local, shared (carrier-grade NAT), unspecified, broadcast,
/// multicast and documentation ranges, and IPv4 addresses carried in IPv6.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_v4(v4);
            }
            is_forbidden_v6(v6)
        }
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        // 0.0.0.0/8 ("this network") reaches the local host on some systems.
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT): private in practice.
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24, IETF protocol assignments; 198.18.0.0/15, benchmarking.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7, unique local.
        || (first & 0xfe00) == 0xfc00
        // fe80::/10, link-local.
        || (first & 0xffc0) == 0xfe80
        // 64:ff9b::/96 NAT64 and ::/96 IPv4-compatible addresses embed an IPv4 address.
        || (ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            && is_forbidden_v4(embedded_v4(ip)))
        || (ip.segments()[..6] == [0, 0, 0, 0, 0, 0] && is_forbidden_v4(embedded_v4(ip)))
}

fn embedded_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let octets = ip.octets();
    Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15])
}

/// Why a delivery was refused before any connection was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The URL names (or its name resolves only to) addresses the server must not reach.
    #[error(
        "refused to connect to {address}: a private, loopback or link-local address \
         (start the server with --webhook-allow-private to allow it)"
    )]
    Forbidden {
        /// The address refused.
        address: IpAddr,
    },
}

/// Checks a URL whose host is a literal IP address; names are left to [`GuardedResolver`].
pub fn check_url(url: &url::Url) -> Result<(), GuardError> {
    let address = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) | None => return Ok(()),
    };
    if is_forbidden(address) {
        return Err(GuardError::Forbidden { address });
    }
    Ok(())
}

/// The system resolver, keeping only the addresses the server may reach; a name with none
/// left fails to resolve with [`GuardError::Forbidden`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the client puts the URL's port in.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|address| !is_forbidden(address.ip()))
                .collect();
            match (allowed.is_empty(), found.first()) {
                (true, Some(first)) => Err(Box::new(GuardError::Forbidden {
                    address: first.ip(),
                })
                    as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_forbidden() {
        for text in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_forbidden(ip(text)), "{text} must be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(ip(text)), "{text} must be allowed");
        }
    }

    #[test]
    fn literal_ip_urls_are_checked_and_names_left_to_the_resolver() {
        let refused = |text: &str| check_url(&url::Url::parse(text).expect("a URL")).is_err();
        assert!(refused("http://127.0.0.1:8080/hook"));
        assert!(refused("http://[::1]/hook"));
        assert!(refused("https://169.254.169.254/latest/meta-data"));
        // The URL parser normalises other spellings of an IPv4 address.
        assert!(refused("http://2130706433/hook"));
        assert!(refused("http://0x7f.1/hook"));
        assert!(!refused("https://8.8.8.8/hook"));
        assert!(!refused("https://localhost/hook"));
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_only_to_loopback() {
        let name: Name = "localhost".parse().expect("a name");
        let error = match GuardedResolver.resolve(name).await {
            Ok(addresses) => panic!("resolved to {:?}", addresses.collect::<Vec<_>>()),
            Err(error) => error,
        };
        assert!(error.to_string().contains("refused to connect"), "{error}");
    }
}
