//! Which addresses an agent may reach by name. A rule like `http://*.example.com` or
//! `http://sidecar:8099` is about names; what a name resolves to is decided by DNS, which an
//! agent's author may control. So every resolved address is checked before a connection is
//! made: loopback, private, link-local (where cloud metadata services live), carrier-grade NAT,
//! unique-local and other non-public addresses are reached only through a rule that names the
//! IP literal itself, and the host's own listener (its admin API) only through a rule that
//! names its IP literal and exact port.

use crate::config::HttpRule;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why `ip` is not an address an agent reaches by a host name, or `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique-local (private)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else {
                None
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata services live here)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("broadcast or multicast")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT (private)")
    } else if a == 198 && (18..20).contains(&b) {
        Some("benchmarking (private)")
    } else {
        None
    }
}

/// Whether `to` may be connected to, given the rules that allowed the request's URL (at least
/// one) and the host's own listen address. The error says why not and what would allow it.
pub fn check(
    rules: &[&HttpRule],
    to: SocketAddr,
    listen: Option<SocketAddr>,
) -> Result<(), String> {
    let ip = to.ip();
    let own = listen.is_some_and(|l| {
        l.port() == to.port()
            && (l.ip() == ip || (l.ip().is_unspecified() && non_public(ip).is_some()))
    });
    if own {
        if rules
            .iter()
            .any(|r| r.names_ip(ip) && r.names_port(to.port()))
        {
            return Ok(());
        }
        return Err(format!(
            "{to} is this host's own listener (its admin API): only a rule naming exactly http://{to} reaches it"
        ));
    }
    if let Some(kind) = non_public(ip)
        && !rules.iter().any(|r| r.names_ip(ip))
    {
        return Err(format!(
            "{to} is a {kind} address: a rule must name the IP literal itself (e.g. http://{to}) to reach it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> HttpRule {
        HttpRule::parse(s).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(non_public(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(non_public(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }

    #[test]
    fn a_name_resolving_to_a_private_address_is_refused_unless_a_rule_names_the_ip() {
        let by_name = rule("http://*.example.com");
        let err = check(&[&by_name], addr("169.254.169.254:80"), None).unwrap_err();
        assert!(
            err.contains("link-local") && err.contains("name the IP literal"),
            "{err}"
        );
        assert!(check(&[&by_name], addr("10.0.0.5:80"), None).is_err());
        assert!(check(&[&by_name], addr("93.184.216.34:80"), None).is_ok());
        let literal = rule("http://10.0.0.5:8099");
        assert!(check(&[&literal], addr("10.0.0.5:8099"), None).is_ok());
        assert!(check(&[&literal], addr("10.0.0.6:8099"), None).is_err());
        let v6 = rule("http://[::1]:*");
        assert!(check(&[&v6], addr("[::1]:9000"), None).is_ok());
    }

    #[test]
    fn the_hosts_own_listener_needs_its_exact_ip_and_port() {
        let listen = Some(addr("127.0.0.1:8080"));
        let sidecars = rule("http://127.0.0.1:*");
        let err = check(&[&sidecars], addr("127.0.0.1:8080"), listen).unwrap_err();
        assert!(err.contains("own listener"), "{err}");
        // Other loopback ports stay reachable through the IP literal.
        assert!(check(&[&sidecars], addr("127.0.0.1:8099"), listen).is_ok());
        let exact = rule("http://127.0.0.1:8080");
        assert!(check(&[&exact], addr("127.0.0.1:8080"), listen).is_ok());
        // A host listening on every address owns that port on each local one.
        let any = Some(addr("0.0.0.0:8080"));
        assert!(check(&[&rule("http://10.0.0.1:*")], addr("10.0.0.1:8080"), any).is_err());
    }
}
