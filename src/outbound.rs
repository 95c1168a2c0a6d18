//! Outbound HTTP for user-supplied URLs (document URLs, webhooks). Every hop is resolved and
//! checked before it is contacted, and the connection is pinned to the checked address, so a
//! URL cannot reach loopback, private or link-local networks (SSRF) unless a setting allows it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("the URL {0:?} is not a valid http(s) URL")]
    InvalidUrl(String),
    #[error("the URL's host {0} resolves to a private, loopback or link-local address, which is not allowed (CLASSIFYD_ALLOW_PRIVATE_URLS)")]
    PrivateAddress(String),
    #[error("the host {0} could not be resolved")]
    Unresolvable(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("the response is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the request timed out after {0} s")]
    Timeout(u64),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error("the request failed: {0}")]
    Transport(String),
}

/// Policy and limits for outbound requests.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub allow_private: bool,
    pub timeout: Duration,
    pub max_redirects: usize,
}

/// A fetched document.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// From `Content-Disposition`, else the last path segment of the final URL.
    pub file_name: String,
}

impl Outbound {
    /// Parses the URL and checks its host now; used to refuse bad URLs at request time.
    pub async fn vet(&self, raw: &str) -> Result<(Url, SocketAddr), OutboundError> {
        let url = Url::parse(raw).map_err(|_| OutboundError::InvalidUrl(raw.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(OutboundError::InvalidUrl(raw.to_string()));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let lookup_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((lookup_host.as_str(), port))
            .await
            .map_err(|_| OutboundError::Unresolvable(host.clone()))?
            .collect();
        let first = *addresses
            .first()
            .ok_or_else(|| OutboundError::Unresolvable(host.clone()))?;
        if !self.allow_private && addresses.iter().any(|a| !is_public(a.ip())) {
            return Err(OutboundError::PrivateAddress(host));
        }
        Ok((url, first))
    }

    /// A client whose only route to the URL's host is the vetted address.
    fn pinned_client(
        &self,
        url: &Url,
        address: SocketAddr,
    ) -> Result<reqwest::Client, OutboundError> {
        let host = url.host_str().unwrap_or_default();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .resolve(host, address)
            .build()
            .map_err(|e| OutboundError::Transport(e.to_string()))
    }

    /// Sends one request (no redirects followed) to a vetted URL.
    pub async fn send(
        &self,
        method: Method,
        raw_url: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, OutboundError> {
        let (url, address) = self.vet(raw_url).await?;
        let client = self.pinned_client(&url, address)?;
        let mut request = client.request(method, url).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        request.send().await.map_err(|e| self.transport(e))
    }

    /// GETs a document, following at most `max_redirects` redirects (each hop vetted) and
    /// reading at most `max_bytes`.
    pub async fn fetch(&self, raw_url: &str, max_bytes: u64) -> Result<Fetched, OutboundError> {
        let mut current = raw_url.to_string();
        for _ in 0..=self.max_redirects {
            let response = self
                .send(Method::GET, &current, HeaderMap::new(), None)
                .await?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or(OutboundError::Status(response.status().as_u16()))?;
                current = response
                    .url()
                    .join(location)
                    .map_err(|_| OutboundError::InvalidUrl(location.to_string()))?
                    .to_string();
                continue;
            }
            if !response.status().is_success() {
                return Err(OutboundError::Status(response.status().as_u16()));
            }
            if response.content_length().is_some_and(|n| n > max_bytes) {
                return Err(OutboundError::TooLarge(max_bytes));
            }
            let file_name = file_name(&response);
            let mut bytes = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.transport(e))?;
                if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
                    return Err(OutboundError::TooLarge(max_bytes));
                }
                bytes.extend_from_slice(&chunk);
            }
            return Ok(Fetched { bytes, file_name });
        }
        Err(OutboundError::TooManyRedirects(self.max_redirects))
    }

    fn transport(&self, error: reqwest::Error) -> OutboundError {
        if error.is_timeout() {
            OutboundError::Timeout(self.timeout.as_secs())
        } else {
            OutboundError::Transport(error.without_url().to_string())
        }
    }
}

fn file_name(response: &reqwest::Response) -> String {
    let from_header = response
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("filename=").nth(1))
        .map(|name| {
            name.trim_matches(|c| c == '"' || c == ';' || c == ' ')
                .to_string()
        })
        .filter(|name| !name.is_empty());
    from_header
        .or_else(|| {
            response
                .url()
                .path_segments()
                .and_then(|mut segments| segments.next_back().map(str::to_string))
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "document".to_string())
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_unless_allowed() {
        let strict = Outbound {
            allow_private: false,
            timeout: Duration::from_secs(2),
            max_redirects: 3,
        };
        assert!(matches!(
            strict.vet("http://127.0.0.1:9/x").await,
            Err(OutboundError::PrivateAddress(_))
        ));
        assert!(matches!(
            strict.vet("http://localhost:9/x").await,
            Err(OutboundError::PrivateAddress(_))
        ));
        assert!(matches!(
            strict.vet("http://[::1]:9/x").await,
            Err(OutboundError::PrivateAddress(_))
        ));
        assert!(matches!(
            strict.vet("file:///etc/passwd").await,
            Err(OutboundError::InvalidUrl(_))
        ));
        assert!(matches!(
            strict.vet("not a url").await,
            Err(OutboundError::InvalidUrl(_))
        ));
        let open = Outbound {
            allow_private: true,
            ..strict
        };
        assert!(open.vet("http://127.0.0.1:9/x").await.is_ok());
    }
}
