//! `rescue.report=`, `rescue.token=` and `rescue.net=`: where the JSON report goes over HTTP,
//! the key that signs it, and how the agent gets an address. Parsed here, used by
//! [`super::report_upload`]; without `rescue.report` no network driver is ever loaded.

use std::net::Ipv4Addr;

use serde::Serialize;

/// `http://HOST[:PORT]/PATH`: plain HTTP only (the image carries no TLS stack; the HMAC in
/// `rescue.token` is what makes a report trustworthy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportUrl {
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl ReportUrl {
    pub fn parse(text: &str) -> Result<ReportUrl, String> {
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "{scheme}:// is not supported (plain http:// only; sign with rescue.token)"
                ))
            }
            None => return Err("expected http://HOST[:PORT]/PATH".into()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("user@ in the URL is not supported".into());
        }
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port_text) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| "unclosed [ in the host".to_string())?;
                match after {
                    "" => (host, None),
                    _ => (host, Some(after.strip_prefix(':').ok_or("junk after ]")?)),
                }
            }
            None => match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let port = match port_text {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("bad port {p:?}"))?,
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !host_ok {
            return Err(format!("bad host {host:?}"));
        }
        if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err("the path has spaces or control characters".into());
        }
        Ok(ReportUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

impl std::fmt::Display for ReportUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// How the report's interface gets its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetConfig {
    /// DHCP on each interface with a link, in name order, until one gets a lease (the default).
    Dhcp,
    /// `static:ADDR/PREFIX[,GATEWAY[,DNS]]`, on the first interface with a link.
    Static {
        address: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
        dns: Option<Ipv4Addr>,
    },
}

impl NetConfig {
    pub fn parse(text: &str) -> Result<NetConfig, String> {
        let lower = text.trim().to_ascii_lowercase();
        if lower.is_empty() || lower == "dhcp" {
            return Ok(NetConfig::Dhcp);
        }
        let Some(spec) = lower.strip_prefix("static:") else {
            return Err("expected dhcp or static:ADDR/PREFIX[,GATEWAY[,DNS]]".into());
        };
        let mut parts = spec.split(',');
        let cidr = parts.next().unwrap_or_default();
        let (addr, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("{cidr:?}: expected ADDR/PREFIX"))?;
        let address = addr
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| format!("{prefix:?}: expected a prefix length 1..32"))?;
        let mut next_ip = |what: &str| -> Result<Option<Ipv4Addr>, String> {
            match parts.next() {
                None | Some("") => Ok(None),
                Some(s) => s
                    .parse::<Ipv4Addr>()
                    .map(Some)
                    .map_err(|_| format!("{what} {s:?} is not an IPv4 address")),
            }
        };
        let gateway = next_ip("gateway")?;
        let dns = next_ip("DNS server")?;
        if parts.next().is_some() {
            return Err("too many fields after static:".into());
        }
        Ok(NetConfig::Static {
            address,
            prefix,
            gateway,
            dns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_urls() {
        let u = ReportUrl::parse("http://10.0.2.2:8080/report").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("10.0.2.2", 8080, "/report")
        );
        let u = ReportUrl::parse("HTTP://reports.example.org").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("reports.example.org", 80, "/")
        );
        assert_eq!(u.to_string(), "http://reports.example.org:80/");
        let u = ReportUrl::parse("http://[fd00::1]:81/r/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("fd00::1", 81));
        for bad in [
            "https://x/report",
            "10.0.0.1/report",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://u@h/",
            "http://h/a b",
            "http://h;rm/",
        ] {
            assert!(ReportUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn net_configs() {
        assert_eq!(NetConfig::parse("dhcp"), Ok(NetConfig::Dhcp));
        assert_eq!(NetConfig::parse(""), Ok(NetConfig::Dhcp));
        assert_eq!(
            NetConfig::parse("static:10.1.2.3/24,10.1.2.1,10.1.2.53"),
            Ok(NetConfig::Static {
                address: Ipv4Addr::new(10, 1, 2, 3),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 1, 2, 1)),
                dns: Some(Ipv4Addr::new(10, 1, 2, 53)),
            })
        );
        assert_eq!(
            NetConfig::parse("static:192.168.0.9/16"),
            Ok(NetConfig::Static {
                address: Ipv4Addr::new(192, 168, 0, 9),
                prefix: 16,
                gateway: None,
                dns: None,
            })
        );
        for bad in [
            "bootp",
            "static:10.0.0.1",
            "static:10.0.0.1/33",
            "static:10.0.0/24",
            "static:10.0.0.1/24,gw",
            "static:10.0.0.1/24,1.1.1.1,2.2.2.2,3.3.3.3",
        ] {
            assert!(NetConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
