//! CORS, for sites that embed a trigger button (`CORS_ALLOWED_ORIGINS`).
//!
//! An allowed `Origin` gets `Access-Control-Allow-Origin` (the origin as
//! configured, or `*`) on every response, and its preflight (`OPTIONS`) a
//! `204` with the methods and headers it may use. Any other origin gets no
//! `Access-Control-*` header at all, so the browser keeps the answer from
//! the page that asked. The quota and everything else apply as to any
//! client: CORS only decides what a browser lets another site's script read.

use crate::rules::http::response::HttpResponse;

/// How long a browser may cache a preflight (seconds).
pub const PREFLIGHT_MAX_AGE_S: u64 = 600;

/// The response headers a page on an allowed origin may read.
pub const EXPOSED_HEADERS: &str = "Location, Retry-After, RateLimit, RateLimit-Policy";

/// Who may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsPolicy {
    /// No CORS: only the API's own origin (its page) reads the answers.
    #[default]
    Off,
    /// Any origin (`*`).
    Any,
    /// These origins exactly (`https://docs.example.com`).
    Origins(Vec<String>),
}

/// The most origins `CORS_ALLOWED_ORIGINS` may list.
pub const MAX_ORIGINS: usize = 50;

/// `scheme://host[:port]`, http or https, lower case, nothing after.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !host.starts_with(['.', '-'])
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `origin` is the API's own: `https://<host>`, or `http://<host>` when
/// the host is a loopback address (the local stack serves plain HTTP).
fn is_own_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host.map(str::to_ascii_lowercase) else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    if origin.strip_prefix("https://") == Some(host.as_str()) {
        return true;
    }
    let name = host
        .rsplit_once(':')
        .map_or(host.as_str(), |(name, _)| name);
    let loopback = name == "localhost"
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback());
    loopback && origin.strip_prefix("http://") == Some(host.as_str())
}

impl CorsPolicy {
    /// Reads `CORS_ALLOWED_ORIGINS`: empty (off), `*`, or comma-separated
    /// origins such as `https://docs.example.com,http://localhost:8080`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::Off);
        }
        if text == "*" {
            return Ok(Self::Any);
        }
        let origins: Vec<String> = text.split(',').map(|o| o.trim().to_string()).collect();
        if origins.len() > MAX_ORIGINS {
            return Err(format!("lists more than {MAX_ORIGINS} origins"));
        }
        for origin in &origins {
            if origin == "*" {
                return Err("\"*\" must stand alone".into());
            }
            if !is_origin(origin) {
                let shown: String = origin.chars().take(80).collect();
                return Err(format!(
                    "{shown:?} is not an origin: scheme://host[:port] in lower case, http or https, no path or trailing slash"
                ));
            }
        }
        Ok(Self::Origins(origins))
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`
    /// header, or `None`: no CORS headers for it.
    pub fn allow(&self, origin: Option<&str>) -> Option<String> {
        let origin = origin?;
        match self {
            Self::Off => None,
            Self::Any => Some("*".into()),
            Self::Origins(list) => list.iter().find(|o| o.as_str() == origin).cloned(),
        }
    }

    /// Whether a `POST /trigger` comes from another site's page: its
    /// `Origin` is neither the API's own (`https://` and `host`; `http://`
    /// too on a loopback host, the local stack) nor allowed, or the browser
    /// says `Sec-Fetch-Site: cross-site` and no allowed `Origin` came with
    /// it. Browsers send such a POST without a preflight, so CORS alone
    /// cannot stop it. Without either header (curl, scripts) it is not.
    pub fn refuses_trigger(
        &self,
        origin: Option<&str>,
        host: Option<&str>,
        fetch_site: Option<&str>,
    ) -> bool {
        let allowed = origin.is_some_and(|o| self.allow(Some(o)).is_some());
        let own = origin.is_some_and(|o| is_own_origin(o, host));
        match origin {
            Some(_) if !allowed && !own => true,
            _ => {
                fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) && !allowed && !own
            }
        }
    }

    /// Adds the CORS headers a response to `origin` carries.
    pub fn decorate(&self, response: &mut HttpResponse, origin: Option<&str>) {
        if let Self::Origins(_) = self {
            // The answer depends on the Origin: caches must key on it.
            response.header("Vary", "Origin");
        }
        if let Some(allowed) = self.allow(origin) {
            response.header("Access-Control-Allow-Origin", &allowed);
            response.header("Access-Control-Expose-Headers", EXPOSED_HEADERS);
        }
    }

    /// The answer to `OPTIONS` on a route that takes `methods`: `204` with
    /// `Allow`, and for an allowed origin what its preflight asks.
    pub fn preflight(&self, methods: &str, origin: Option<&str>) -> HttpResponse {
        let mut response = HttpResponse::empty(204);
        response.header("Allow", &format!("{methods}, OPTIONS"));
        if self.allow(origin).is_some() {
            response.header(
                "Access-Control-Allow-Methods",
                &format!("{methods}, OPTIONS"),
            );
            response.header("Access-Control-Allow-Headers", "content-type");
            response.header("Access-Control-Max-Age", &PREFLIGHT_MAX_AGE_S.to_string());
        }
        self.decorate(&mut response, origin);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SITE: &str = "https://docs.example.com";

    fn cors_headers(response: &HttpResponse) -> Vec<&str> {
        response
            .headers
            .keys()
            .map(String::as_str)
            .filter(|h| h.starts_with("Access-Control-"))
            .collect()
    }

    #[test]
    fn the_setting_reads_off_any_or_a_list() {
        assert_eq!(CorsPolicy::parse(""), Ok(CorsPolicy::Off));
        assert_eq!(CorsPolicy::parse(" * "), Ok(CorsPolicy::Any));
        assert_eq!(
            CorsPolicy::parse("https://docs.example.com, http://localhost:8080"),
            Ok(CorsPolicy::Origins(vec![
                SITE.into(),
                "http://localhost:8080".into()
            ]))
        );
        for bad in [
            "docs.example.com",
            "https://docs.example.com/",
            "https://docs.example.com/path",
            "https://Docs.Example.com",
            "ftp://example.com",
            "https://",
            "https://example.com:",
            "https://example.com:123456",
            "https://a.com,*",
            "https://a.com,",
            "https://exa mple.com",
            "https://example.com\r\nX-Evil: 1",
            "null",
        ] {
            assert!(CorsPolicy::parse(bad).is_err(), "{bad:?}");
        }
        let many = vec!["https://a.com"; MAX_ORIGINS + 1].join(",");
        assert!(CorsPolicy::parse(&many).is_err());
    }

    #[test]
    fn an_allowed_origin_gets_the_headers_and_others_none() {
        let policy = CorsPolicy::parse(SITE).unwrap();
        let mut allowed = HttpResponse::empty(200);
        policy.decorate(&mut allowed, Some(SITE));
        assert_eq!(allowed.headers["Access-Control-Allow-Origin"], SITE);
        assert_eq!(
            allowed.headers["Access-Control-Expose-Headers"],
            EXPOSED_HEADERS
        );
        assert_eq!(allowed.headers["Vary"], "Origin");

        for other in [
            Some("https://evil.example"),
            Some("https://docs.example.com.evil"),
            Some("null"),
            None,
        ] {
            let mut refused = HttpResponse::empty(200);
            policy.decorate(&mut refused, other);
            assert!(cors_headers(&refused).is_empty(), "{other:?}");
            assert_eq!(refused.headers["Vary"], "Origin");
        }
    }

    #[test]
    fn any_origin_is_a_star_and_off_is_nothing() {
        let mut any = HttpResponse::empty(200);
        CorsPolicy::Any.decorate(&mut any, Some("https://anyone.example"));
        assert_eq!(any.headers["Access-Control-Allow-Origin"], "*");
        let mut off = HttpResponse::empty(200);
        CorsPolicy::Off.decorate(&mut off, Some(SITE));
        assert!(cors_headers(&off).is_empty());
        assert!(!off.headers.contains_key("Vary"));
    }

    #[test]
    fn a_preflight_answers_204_with_what_it_may_send() {
        let policy = CorsPolicy::parse(SITE).unwrap();
        let yes = policy.preflight("POST", Some(SITE));
        assert_eq!(yes.status, 204);
        assert_eq!(yes.body, "");
        assert_eq!(yes.headers["Access-Control-Allow-Origin"], SITE);
        assert_eq!(yes.headers["Access-Control-Allow-Methods"], "POST, OPTIONS");
        assert_eq!(yes.headers["Access-Control-Allow-Headers"], "content-type");
        assert_eq!(yes.headers["Access-Control-Max-Age"], "600");
        let no = policy.preflight("POST", Some("https://evil.example"));
        assert_eq!(no.status, 204);
        assert_eq!(no.headers["Allow"], "POST, OPTIONS");
        assert!(cors_headers(&no).is_empty());
    }

    proptest! {
        /// Whatever the setting and the Origin, an allowed origin is echoed
        /// only as configured: never a request's own text, never a header
        /// break.
        #[test]
        fn only_configured_origins_are_ever_echoed(setting in ".{0,200}", origin in ".{0,200}") {
            if let Ok(policy) = CorsPolicy::parse(&setting) {
                if let Some(allowed) = policy.allow(Some(&origin)) {
                    prop_assert!(allowed == "*" || allowed == origin);
                    prop_assert!(!allowed.contains(['\r', '\n', ',']));
                    match &policy {
                        CorsPolicy::Origins(list) => prop_assert!(list.contains(&allowed)),
                        CorsPolicy::Any => prop_assert_eq!(allowed, "*"),
                        CorsPolicy::Off => prop_assert!(false, "off allows nothing"),
                    }
                }
            }
        }
    }

    #[test]
    fn a_trigger_from_another_sites_page_is_refused_and_scripts_are_not() {
        let off = CorsPolicy::Off;
        let docs = CorsPolicy::parse("https://docs.example.com").unwrap();
        let host = Some("api.example.com");
        let cross = Some("cross-site");
        for policy in [&off, &docs] {
            // curl and scripts: no Origin, no Sec-Fetch-Site.
            assert!(!policy.refuses_trigger(None, host, None));
            // The API's own page.
            assert!(!policy.refuses_trigger(
                Some("https://api.example.com"),
                host,
                Some("same-origin")
            ));
            assert!(!policy.refuses_trigger(Some("https://API.example.com"), host, None));
            // Another site, a sandboxed frame, a plain-http copy of the host.
            for origin in [
                "https://evil.example",
                "null",
                "http://api.example.com",
                "https://api.example.com.evil.example",
            ] {
                assert!(
                    policy.refuses_trigger(Some(origin), host, cross),
                    "{origin}"
                );
                assert!(policy.refuses_trigger(Some(origin), host, None), "{origin}");
            }
            // The browser says cross-site without an Origin.
            assert!(policy.refuses_trigger(None, host, cross));
            // Same-site and user-typed navigations are not cross-site.
            assert!(!policy.refuses_trigger(None, host, Some("same-site")));
            assert!(!policy.refuses_trigger(None, host, Some("none")));
        }
        // An allowed embedding site may trigger.
        assert!(!docs.refuses_trigger(Some("https://docs.example.com"), host, cross));
        assert!(off.refuses_trigger(Some("https://docs.example.com"), host, cross));
        // `*` allows every origin, by the operator's choice.
        assert!(!CorsPolicy::Any.refuses_trigger(Some("https://evil.example"), host, cross));
        // Plain http is the API's own only on a loopback host (the local stack).
        assert!(!off.refuses_trigger(Some("http://127.0.0.1:3000"), Some("127.0.0.1:3000"), None));
        assert!(off.refuses_trigger(Some("http://127.0.0.1:3001"), Some("127.0.0.1:3000"), None));
        // No Host: no origin is the API's own.
        assert!(off.refuses_trigger(Some("https://api.example.com"), None, None));
    }
}
