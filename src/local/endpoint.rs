//! The emulator's address: always plain HTTP on the loopback interface.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use super::Error;

/// `http://127.0.0.1:<port>`. The server binds 127.0.0.1 only, so an endpoint
/// naming another host cannot be one barkctl starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub port: u16,
}

impl Endpoint {
    pub fn loopback(port: u16) -> Self {
        Endpoint { port }
    }

    /// Accepts `http://127.0.0.1:4566`, `http://localhost:4566/` and the like;
    /// rejects https, other hosts and a missing or zero port.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = || Error::NotLocalEndpoint {
            endpoint: url.to_string(),
        };
        let rest = url.trim().strip_prefix("http://").ok_or_else(bad)?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        if !matches!(host, "127.0.0.1" | "localhost") {
            return Err(bad());
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(bad)?;
        Ok(Endpoint { port })
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_parse_to_their_port() {
        for url in [
            "http://127.0.0.1:4566",
            "http://127.0.0.1:4566/",
            "http://localhost:5000/x",
        ] {
            let e = Endpoint::parse(url).expect(url);
            assert!(e.port == 4566 || e.port == 5000, "{url}");
        }
        assert_eq!(
            Endpoint::parse("http://localhost:5000")
                .map(|e| e.url())
                .ok(),
            Some("http://127.0.0.1:5000".to_string())
        );
    }

    #[test]
    fn remote_tls_or_portless_endpoints_are_refused() {
        for url in [
            "https://127.0.0.1:4566",
            "http://10.0.0.5:4566",
            "http://127.0.0.1",
            "http://127.0.0.1:0",
            "http://127.0.0.1:70000",
            "127.0.0.1:4566",
        ] {
            assert!(
                matches!(Endpoint::parse(url), Err(Error::NotLocalEndpoint { .. })),
                "{url} should be refused"
            );
        }
    }
}
