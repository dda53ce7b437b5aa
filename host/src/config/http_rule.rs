//! Rules of `capabilities.http`: `scheme://host[:port]`, with `*` wildcards in the host and
//! `*` as "any port". A rule without a port allows only its scheme's default port.

use serde::{Deserialize, Deserializer};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpRule {
    text: String,
    scheme: String,
    /// Lower-cased; `*` matches any run of characters.
    host: String,
    port: RulePort,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum RulePort {
    Any,
    Exactly(u16),
}

impl HttpRule {
    pub fn parse(rule: &str) -> Result<Self, String> {
        let (scheme, rest) = rule
            .split_once("://")
            .ok_or_else(|| format!("{rule:?} is invalid: expected scheme://host[:port]"))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("{rule:?}: scheme must be http or https")),
        };
        // An IPv6 literal keeps its brackets, as in a URL: `http://[::1]:8080`.
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => (h, Some(p)),
            _ => (rest, None),
        };
        if host.is_empty() || host.contains(['/', '@', '?', '#']) {
            return Err(format!(
                "{rule:?}: expected scheme://host[:port] with no path, query or user"
            ));
        }
        // `10.0.*` would also match the name `10.0.attacker.net`: addresses are named one by
        // one, and a wildcard belongs in host names only.
        if host.contains('*')
            && (host.starts_with('[')
                || (host.split('.').any(|label| label != "*")
                    && host
                        .split('.')
                        .all(|label| label == "*" || label.bytes().all(|b| b.is_ascii_digit()))))
        {
            return Err(format!(
                "{rule:?}: `*` inside an IP address is not allowed (it would also match host names like 10.0.attacker.net); list each address"
            ));
        }
        let port = match port {
            None => RulePort::Exactly(default_port),
            Some("*") => RulePort::Any,
            Some(p) => RulePort::Exactly(
                p.parse::<u16>()
                    .map_err(|_| format!("{rule:?}: port {p:?} is not a number or '*'"))?,
            ),
        };
        Ok(Self {
            text: rule.to_owned(),
            scheme: scheme.to_owned(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this rule. `host` is compared
    /// as written in the URL (case-insensitively): a rule naming a host name does not allow
    /// the address it resolves to, nor the other way round.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        scheme == self.scheme
            && match self.port {
                RulePort::Any => true,
                RulePort::Exactly(p) => p == port,
            }
            && super::pattern::wildcard_match(
                self.host.as_bytes(),
                host.to_ascii_lowercase().as_bytes(),
            )
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the rule's host is the IP literal `ip` (not a name, not a wildcard): only such
    /// a rule reaches a loopback, private or link-local address.
    pub fn names_ip(&self, ip: std::net::IpAddr) -> bool {
        let literal = self.host.trim_start_matches('[').trim_end_matches(']');
        literal
            .parse::<std::net::IpAddr>()
            .is_ok_and(|own| own == ip)
    }

    /// Whether the rule names exactly `port` (not `*`).
    pub fn names_port(&self, port: u16) -> bool {
        self.port == RulePort::Exactly(port)
    }
}

impl fmt::Display for HttpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HttpRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> HttpRule {
        HttpRule::parse(s).unwrap()
    }

    #[test]
    fn a_rule_allows_its_scheme_host_and_port_only() {
        let rule = r("http://127.0.0.1:8099");
        assert!(rule.allows("http", "127.0.0.1", 8099));
        assert!(!rule.allows("http", "127.0.0.1", 8098));
        assert!(!rule.allows("https", "127.0.0.1", 8099));
        assert!(!rule.allows("http", "localhost", 8099));
        assert!(!rule.allows("http", "127.0.0.2", 8099));
    }

    #[test]
    fn no_port_means_the_default_port_and_star_means_any() {
        assert!(r("https://api.example.com").allows("https", "API.example.com", 443));
        assert!(!r("https://api.example.com").allows("https", "api.example.com", 8443));
        assert!(r("http://api.example.com:*").allows("http", "api.example.com", 8443));
    }

    #[test]
    fn host_wildcards_match_subdomains_not_lookalikes() {
        let rule = r("https://*.example.com");
        assert!(rule.allows("https", "a.b.example.com", 443));
        assert!(!rule.allows("https", "example.com.evil.org", 443));
        assert!(!rule.allows("https", "evilexample.org", 443));
    }

    #[test]
    fn only_ip_literals_name_an_address() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(r("http://127.0.0.1:*").names_ip(ip("127.0.0.1")));
        assert!(r("http://[::1]:80").names_ip(ip("::1")));
        assert!(!r("http://localhost:*").names_ip(ip("127.0.0.1")));
        assert!(!r("http://*.example.com").names_ip(ip("10.0.0.1")));
        assert!(r("http://127.0.0.1:8080").names_port(8080));
        assert!(!r("http://127.0.0.1:*").names_port(8080));
        // Wildcards still work in names that merely start with digits.
        assert!(r("https://*.1password.com").allows("https", "my.1password.com", 443));
    }

    #[test]
    fn ipv6_literals_keep_their_brackets() {
        assert!(r("http://[::1]:8080").allows("http", "[::1]", 8080));
        assert!(r("http://[::1]").allows("http", "[::1]", 80));
    }

    #[test]
    fn good_rules_parse() {
        for ok in [
            "http://127.0.0.1:8099",
            "https://*.example.com",
            "http://host:*",
            "https://[::1]:443",
        ] {
            assert!(HttpRule::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for bad in [
            "127.0.0.1",
            "http://",
            "http://h/path",
            "http://h:port",
            "file:///x",
        ] {
            assert!(HttpRule::parse(bad).is_err(), "{bad}");
        }
        for (rule, says) in [
            ("example.com", "expected scheme://host"),
            ("ftp://example.com", "scheme must be http or https"),
            ("http://example.com/path", "no path"),
            ("http://user@example.com", "no path, query or user"),
            ("http://example.com:http", "not a number"),
            ("http://:80", "expected scheme://host"),
            ("http://10.0.*", "`*` inside an IP address"),
            ("http://10.*.*.*:8080", "`*` inside an IP address"),
            ("http://[fd00::*]", "`*` inside an IP address"),
        ] {
            let err = HttpRule::parse(rule).unwrap_err();
            assert!(err.contains(says), "{rule}: {err}");
        }
    }
}
