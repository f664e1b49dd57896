//! Who may talk to the server from where: the `Host` check
//! ([`HostPolicy`], `ROSTER_ALLOWED_HOSTS`, against DNS rebinding), the
//! cross-origin check (`ROSTER_CORS_ORIGINS`, against cross-site writes),
//! the `Content-Type` rule of `POST /graphql`, and the security headers on
//! every answer.

use std::net::SocketAddr;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::ServerError;

/// The `Host` names a request may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    /// `None`: any host (`ROSTER_ALLOWED_HOSTS=*`).
    hosts: Option<Vec<Authority>>,
}

/// A host name (lowercase, IPv6 without brackets) and maybe a port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?.parse().ok()?),
            };
            (host, port)
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port.parse().ok()?)),
                None => (text, None),
            }
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        if host.is_empty() || !host.chars().all(valid) {
            return None;
        }
        Some(Self { host, port })
    }
}

impl HostPolicy {
    /// Any `Host` is accepted.
    pub fn any() -> Self {
        Self { hosts: None }
    }

    /// The hosts in `entries` (`example.org`, `example.org:8443`,
    /// `10.0.0.5`, `[::1]`; `*` for any): an entry without a port allows
    /// every port. An entry that does not parse is an error naming
    /// `ROSTER_ALLOWED_HOSTS`.
    pub fn list<S: AsRef<str>>(entries: &[S]) -> Result<Self, ServerError> {
        if entries.iter().any(|e| e.as_ref().trim() == "*") {
            return Ok(Self::any());
        }
        let hosts = entries
            .iter()
            .map(|entry| {
                Authority::parse(entry.as_ref()).ok_or_else(|| ServerError::Config {
                    var: "ROSTER_ALLOWED_HOSTS",
                    value: entry.as_ref().to_owned(),
                    expected: "host names such as example.org or example.org:8443, or *",
                    source: "not a host name".into(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { hosts: Some(hosts) })
    }

    /// The default for a server listening on `listen`: its address and
    /// `localhost`, plus the loopback addresses when it listens on a
    /// loopback or unspecified address; any port.
    pub fn default_for(listen: SocketAddr) -> Self {
        let mut hosts = vec![listen.ip().to_string(), "localhost".to_owned()];
        if listen.ip().is_loopback() || listen.ip().is_unspecified() {
            hosts.extend(["127.0.0.1".to_owned(), "::1".to_owned()]);
        }
        hosts.dedup();
        let hosts = hosts
            .into_iter()
            .map(|host| Authority { host, port: None })
            .collect();
        Self { hosts: Some(hosts) }
    }

    /// Whether a request with `Host: host` is served.
    pub fn allows(&self, host: &str) -> bool {
        let Some(hosts) = &self.hosts else {
            return true;
        };
        let Some(asked) = Authority::parse(host) else {
            return false;
        };
        hosts
            .iter()
            .any(|a| a.host == asked.host && (a.port.is_none() || a.port == asked.port))
    }
}

/// Checks one `ROSTER_CORS_ORIGINS` entry: `http(s)://host[:port]`, no path.
pub(crate) fn check_origin(origin: &str) -> Result<(), ServerError> {
    let bad = |why: &str| ServerError::Config {
        var: "ROSTER_CORS_ORIGINS",
        value: origin.to_owned(),
        expected: "origins such as https://app.example.org (scheme, host, optional port; no * or path)",
        source: why.to_owned().into(),
    };
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| bad("not http:// or https://"))?;
    if rest.contains('/') || Authority::parse(rest).is_none() {
        return Err(bad("not scheme://host[:port]"));
    }
    Ok(())
}

/// Whether a request's `Origin` is the server's own (`Host`), comparing
/// host and port (a missing port is the scheme's default).
pub(crate) fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host.and_then(Authority::parse) else {
        return false;
    };
    let (default_port, rest) = match origin.split_once("://") {
        Some(("http", rest)) => (80, rest),
        Some(("https", rest)) => (443, rest),
        _ => return false,
    };
    let Some(origin) = Authority::parse(rest) else {
        return false;
    };
    origin.host == host.host
        && origin.port.unwrap_or(default_port) == host.port.unwrap_or(default_port)
}

/// Whether a request's `Content-Type` is `application/json` (parameters
/// allowed, a `charset` only if UTF-8), the one body `POST /graphql`
/// accepts. A browser cannot send it cross-origin without a CORS preflight,
/// which is what keeps other sites' pages from writing.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|param| match param.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => true,
        })
}

/// `application/graphql-response+json`, the GraphQL-over-HTTP media type.
pub(crate) const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// Whether the client's `Accept` asks for
/// [`GRAPHQL_RESPONSE_JSON`] (else answers are `application/json`).
pub(crate) fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let essence = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim() == "q" && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            });
            essence.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON) && !refused
        })
}

/// The Content Security Policy of every answer but the GraphiQL page: load
/// nothing, be framed by no one.
pub(crate) const CSP_NONE: &str = "default-src 'none'; frame-ancestors 'none'";

/// The headers every answer carries (a handler's own
/// `Content-Security-Policy` is kept).
pub(crate) fn security_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP_NONE),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_name_and_optional_port() {
        let policy =
            HostPolicy::list(&["Example.org", "api.example.org:8443", "[::1]"]).expect("valid");
        assert!(policy.allows("example.org"));
        assert!(policy.allows("EXAMPLE.ORG.:80"));
        assert!(policy.allows("api.example.org:8443"));
        assert!(!policy.allows("api.example.org:8444"));
        assert!(!policy.allows("api.example.org"));
        assert!(policy.allows("[::1]:8000"));
        assert!(!policy.allows("evil.example"));
        assert!(!policy.allows("example.org.evil.example"));
        assert!(!policy.allows("example.org:x"));
        assert!(!policy.allows(""));
        assert!(HostPolicy::list(&["*"]).expect("any").allows("anything"));
        assert!(HostPolicy::list(&["exa mple"]).is_err());

        let default = HostPolicy::default_for("127.0.0.1:8000".parse().expect("address"));
        for host in [
            "127.0.0.1:8000",
            "localhost:8000",
            "localhost",
            "[::1]:8000",
        ] {
            assert!(default.allows(host), "{host}");
        }
        assert!(!default.allows("rebound.example:8000"));
    }

    #[test]
    fn same_origin_compares_host_and_port() {
        assert!(same_origin("http://127.0.0.1:8000", Some("127.0.0.1:8000")));
        assert!(same_origin("https://example.org", Some("example.org")));
        assert!(same_origin("http://example.org:80", Some("example.org")));
        assert!(!same_origin(
            "http://127.0.0.1:9000",
            Some("127.0.0.1:8000")
        ));
        assert!(!same_origin(
            "http://localhost:8000",
            Some("127.0.0.1:8000")
        ));
        assert!(!same_origin("null", Some("127.0.0.1:8000")));
        assert!(!same_origin("http://127.0.0.1:8000", None));
    }

    #[test]
    fn only_json_bodies_are_graphql_requests() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(value).expect("ascii"),
            );
            headers
        };
        assert!(is_json(&with("application/json")));
        assert!(is_json(&with("Application/JSON; charset=UTF-8")));
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "application/jsonx",
            "application/graphql",
        ] {
            assert!(!is_json(&with(refused)), "{refused}");
        }
        assert!(!is_json(&HeaderMap::new()));
        assert!(check_origin("https://app.example.org").is_ok());
        assert!(check_origin("http://localhost:3000").is_ok());
        for bad in ["*", "null", "app.example.org", "https://a.example/path"] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }
}
