//! What API Gateway and the WAF answer before the ingress runs, played as
//! `terraform/` sets them up, with the same answers
//! (`terraform/modules/settings/edge-answers.json`) and the same numbers
//! (the defaults of `terraform/modules/settings/variables.tf`, both read
//! here at build time):
//!
//! - a path no route has, or a method its path does not take: `404
//!   not-found` (API Gateway's `MISSING_AUTHENTICATION_TOKEN`);
//! - each route's throttle, a token bucket of its method (API Gateway
//!   throttles per method): `429 throttled`;
//! - the WAF's per-address rate rules, every route and `POST /trigger`,
//!   counted over their window: `429 rate-limited`; of AWS's
//!   known-bad-inputs rules, the Log4j and PROPFIND ones: `403 forbidden`;
//! - a body over the gateway's limit `413`, a failed invocation `502`.
//!
//! The throttles and the WAF can be switched off ([`Limits::off`]) for
//! tests that send more than a person would; the answers stay.
//! `tests/terraform_plan.rs` checks the answers and the numbers against
//! what Terraform renders.

use serde_json::{json, Map, Value};
use shared::rules::cors::CorsPolicy;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The answers, as Terraform reads them.
const ANSWERS: &str = include_str!("../../../terraform/modules/settings/edge-answers.json");
/// The settings module's variables: the edge's numbers are their defaults.
const SETTINGS: &str = include_str!("../../../terraform/modules/settings/variables.tf");

/// One route's throttle: a token bucket refilled at `rate` a second,
/// holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    pub rate: f64,
    pub burst: f64,
}

/// The WAF's per-address rate rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waf {
    pub window: Duration,
    /// Requests per address per window, every route.
    pub rate_limit: u64,
    /// `POST /trigger` requests per address per window.
    pub trigger_limit: u64,
}

/// The numbers of the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Throttle by Terraform's method path (`trigger/POST`, `*/*` for the
    /// rest); `None`: no throttle.
    pub throttles: Option<Vec<(String, Throttle)>>,
    /// `None`: no WAF.
    pub waf: Option<Waf>,
}

impl Limits {
    /// What Terraform deploys by default.
    pub fn terraform_defaults() -> Self {
        let body: hcl::Body = hcl::parse(SETTINGS).expect("the settings module parses");
        let number = |name: &str| -> f64 {
            let variable = body
                .blocks()
                .find(|b| b.identifier() == "variable" && b.labels()[0].as_str() == name)
                .unwrap_or_else(|| panic!("no variable {name} in the settings module"));
            let default = variable
                .body()
                .attributes()
                .find(|a| a.key() == "default")
                .unwrap_or_else(|| panic!("{name} has no default"));
            match default.expr() {
                hcl::Expression::Number(n) => n.as_f64().unwrap_or_default(),
                hcl::Expression::Bool(b) => f64::from(u8::from(*b)),
                other => panic!("{name}: a default that is not a number: {other}"),
            }
        };
        let throttle = |kind: &str| Throttle {
            rate: number(&format!("{kind}_throttle_rate_limit")),
            burst: number(&format!("{kind}_throttle_burst_limit")),
        };
        let (page, trigger, status) = (throttle("api"), throttle("trigger"), throttle("status"));
        let preflight = throttle("preflight");
        Self {
            // As modules/settings lists them (its output route_throttles).
            throttles: Some(vec![
                ("*/*".into(), page),
                ("trigger/POST".into(), trigger),
                ("triggers/{id}/GET".into(), status),
                ("pipelines/GET".into(), status),
                ("trigger/OPTIONS".into(), preflight),
                ("triggers/{id}/OPTIONS".into(), preflight),
                ("pipelines/OPTIONS".into(), preflight),
            ]),
            waf: (number("enable_waf") == 1.0).then(|| Waf {
                window: Duration::from_secs(number("waf_window_seconds") as u64),
                rate_limit: number("waf_rate_limit") as u64,
                trigger_limit: number("waf_trigger_rate_limit") as u64,
            }),
        }
    }

    /// No throttle and no WAF: the answers only.
    pub fn off() -> Self {
        Self {
            throttles: None,
            waf: None,
        }
    }

    /// The throttle of a method path, or the stage default's.
    fn throttle(&self, method_path: &str) -> Option<Throttle> {
        let throttles = self.throttles.as_ref()?;
        throttles
            .iter()
            .find(|(path, _)| path == method_path)
            .or_else(|| throttles.iter().find(|(path, _)| path == "*/*"))
            .map(|(_, throttle)| *throttle)
    }
}

/// An answer the edge gives instead of the ingress.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Who gives an answer: API Gateway (problem+json) or the WAF, which sets
/// its body's type itself (`APPLICATION_JSON`) and lets no rule set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Gateway,
    Waf,
}

/// The answers of `edge-answers.json`, rendered as Terraform renders them.
#[derive(Debug, Clone)]
pub struct Answers {
    file: Value,
    cors: CorsPolicy,
    window_s: u64,
}

impl Answers {
    /// `cors` is the API's `CORS_ALLOWED_ORIGINS`; `window_s` the WAF's.
    pub fn new(cors: CorsPolicy, window_s: u64) -> Self {
        Self {
            file: serde_json::from_str(ANSWERS).expect("edge-answers.json is JSON"),
            cors,
            window_s,
        }
    }

    /// Every slug the file answers with.
    pub fn slugs(&self) -> Vec<String> {
        self.file["answers"]
            .as_object()
            .map(|answers| answers.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The slug of a gateway response type (`THROTTLED`) or WAF rule (`rate`).
    pub fn slug_of(&self, kind: &str) -> &str {
        self.file["gateway"][kind]
            .as_str()
            .or_else(|| self.file["waf"][kind].as_str())
            .unwrap_or_else(|| panic!("edge-answers.json answers no {kind}"))
    }

    /// The Retry-After of an answer, if it has one.
    fn retry_after(answer: &Value, window_s: u64) -> Option<u64> {
        match &answer["retry_after"] {
            Value::String(s) if s == "waf_window_seconds" => Some(window_s),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The status (`None`: API Gateway's own), headers and body of `slug`,
    /// as modules/settings renders them (its output `edge`).
    pub fn rendered(&self, slug: &str) -> (Option<u16>, Vec<(String, String)>, Value) {
        let answer = &self.file["answers"][slug];
        assert!(answer.is_object(), "edge-answers.json has no answer {slug}");
        let status = answer["status"].as_u64().map(|s| s as u16);
        let retry_after = Self::retry_after(answer, self.window_s);
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("urn:pipeline-trigger:problem:{slug}")),
        );
        for field in ["title", "detail", "status", "scope"] {
            if !answer[field].is_null() {
                body.insert(field.into(), answer[field].clone());
            }
        }
        if let Some(seconds) = retry_after {
            body.insert("retry_after_seconds".into(), json!(seconds));
        }
        let mut headers = vec![
            ("Content-Type".into(), "application/problem+json".into()),
            ("Cache-Control".into(), "no-store".into()),
        ];
        if let Some(seconds) = retry_after {
            headers.push(("Retry-After".into(), seconds.to_string()));
        }
        headers.extend(self.cors_headers());
        (status, headers, Value::Object(body))
    }

    /// The CORS headers of an edge answer: its body is the same for
    /// everyone, so with several allowed origins it says `*`.
    fn cors_headers(&self) -> Vec<(String, String)> {
        let origin = match &self.cors {
            CorsPolicy::Off => return Vec::new(),
            CorsPolicy::Any => "*".to_string(),
            CorsPolicy::Origins(origins) if origins.len() == 1 => origins[0].clone(),
            CorsPolicy::Origins(_) => "*".to_string(),
        };
        let mut headers = vec![
            ("Access-Control-Allow-Origin".into(), origin.clone()),
            ("Access-Control-Expose-Headers".into(), "Retry-After".into()),
        ];
        if origin != "*" {
            headers.push(("Vary".into(), "Origin".into()));
        }
        headers
    }

    /// `slug` as `by` sends it; `status` where API Gateway's own applies.
    pub fn answer(&self, slug: &str, by: By, status: u16) -> Answer {
        let (fixed, mut headers, body) = self.rendered(slug);
        if by == By::Waf {
            for (name, value) in &mut headers {
                if name == "Content-Type" {
                    *value = "application/json".into();
                }
            }
        }
        Answer {
            status: fixed.unwrap_or(status),
            headers,
            body: body.to_string(),
        }
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The WAF's two rate rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    EveryRoute,
    PostTrigger,
}

/// Addresses the WAF keeps counts of before it forgets idle ones.
const MAX_COUNTED_ADDRESSES: usize = 100_000;

/// The edge of one API: its limits, answers, buckets and counts.
pub struct Edge {
    limits: Limits,
    answers: Answers,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Per rule and address, the times of its latest requests (at most the
    /// limit + 1: enough to know whether the window holds more).
    counts: Mutex<HashMap<(Rule, IpAddr), VecDeque<Instant>>>,
}

/// One request as the edge sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path inside the stage (`/trigger`).
    pub path: &'a str,
    /// The path as requested, query included (the WAF reads it whole).
    pub uri: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub source_ip: IpAddr,
}

impl Edge {
    pub fn new(limits: Limits, cors: CorsPolicy) -> Self {
        let window_s = limits.waf.as_ref().map_or(0, |w| w.window.as_secs());
        Self {
            limits,
            answers: Answers::new(cors, window_s),
            buckets: Mutex::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
        }
    }

    pub fn answers(&self) -> &Answers {
        &self.answers
    }

    /// The edge's answer to `request` at `now`, or `None`: the ingress
    /// answers. In AWS's order: the WAF, the route, its throttle, the
    /// method.
    pub fn answer(&self, request: &Request<'_>, now: Instant) -> Option<Answer> {
        if let Some(answer) = self.waf(request, now) {
            return Some(answer);
        }
        let (resource, _) = shared::rules::http::trigger_api::resource_of(request.path);
        let Some(methods) = shared::rules::http::trigger_api::ROUTES
            .iter()
            .find(|(path, _)| *path == resource)
            .map(|(_, methods)| *methods)
        else {
            let slug = self.answers.slug_of("MISSING_AUTHENTICATION_TOKEN");
            return Some(self.answers.answer(slug, By::Gateway, 404));
        };
        // A method the path does not take has no method to throttle: API
        // Gateway answers MISSING_AUTHENTICATION_TOKEN, as for a path.
        if !methods.split(", ").any(|m| m == request.method) {
            let slug = self.answers.slug_of("MISSING_AUTHENTICATION_TOKEN");
            return Some(self.answers.answer(slug, By::Gateway, 404));
        }
        let method_path = format!("{}/{}", resource.trim_start_matches('/'), request.method);
        if !self.take_token(&method_path, now) {
            let slug = self.answers.slug_of("THROTTLED");
            return Some(self.answers.answer(slug, By::Gateway, 429));
        }
        None
    }

    /// API Gateway's answer to a body over its limit.
    pub fn too_large(&self) -> Answer {
        let slug = self.answers.slug_of("REQUEST_TOO_LARGE");
        self.answers.answer(slug, By::Gateway, 413)
    }

    /// API Gateway's answer when the ingress failed the invocation.
    pub fn bad_gateway(&self) -> Answer {
        let slug = self.answers.slug_of("DEFAULT_5XX");
        self.answers.answer(slug, By::Gateway, 502)
    }

    /// A token of the method's bucket, if it has one left (always, with no
    /// throttle).
    fn take_token(&self, method_path: &str, now: Instant) -> bool {
        let Some(throttle) = self.limits.throttle(method_path) else {
            return true;
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(method_path.to_string()).or_insert(Bucket {
            tokens: throttle.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * throttle.rate).min(throttle.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The WAF's verdict, its rules in waf.tf's order: an address over a
    /// rate rule's limit in its window (every request counts, refused ones
    /// too), then a known-bad input.
    fn waf(&self, request: &Request<'_>, now: Instant) -> Option<Answer> {
        let waf = self.limits.waf.as_ref()?;
        // As waf.tf scopes it: the URI path (the stage included) ends with
        // /trigger, in any case.
        let uri_path = request.uri.split('?').next().unwrap_or_default();
        let post_trigger =
            request.method == "POST" && uri_path.to_ascii_lowercase().ends_with("/trigger");
        let mut over = self.count(Rule::EveryRoute, waf.rate_limit, waf.window, request, now);
        if post_trigger {
            over |= self.count(
                Rule::PostTrigger,
                waf.trigger_limit,
                waf.window,
                request,
                now,
            );
        }
        if over {
            return Some(
                self.answers
                    .answer(self.answers.slug_of("rate"), By::Waf, 429),
            );
        }
        known_bad(request).then(|| {
            let slug = self.answers.slug_of("WAF_FILTERED");
            self.answers.answer(slug, By::Gateway, 403)
        })
    }

    /// Counts a request of `rule`: is the address over `limit` in `window`?
    fn count(
        &self,
        rule: Rule,
        limit: u64,
        window: Duration,
        request: &Request<'_>,
        now: Instant,
    ) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= MAX_COUNTED_ADDRESSES {
            counts.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|last| now.saturating_duration_since(*last) < window)
            });
        }
        let times = counts.entry((rule, request.source_ip)).or_default();
        times.push_back(now);
        while times.len() as u64 > limit + 1 {
            times.pop_front();
        }
        times.len() as u64 > limit
            && times
                .front()
                .is_some_and(|first| now.saturating_duration_since(*first) < window)
    }
}

/// Of AWS's known-bad-inputs rules, those played here: Log4j lookups
/// (`${jndi:` in the path, query, headers or body, plain or
/// percent-encoded) and the PROPFIND method.
fn known_bad(request: &Request<'_>) -> bool {
    if request.method.eq_ignore_ascii_case("PROPFIND") {
        return true;
    }
    let log4j = |text: &str| {
        let lower = text.to_ascii_lowercase();
        lower.contains("${jndi:") || lower.contains("%24%7bjndi:")
    };
    log4j(request.uri)
        || request
            .headers
            .iter()
            .any(|(name, value)| log4j(name) || log4j(value))
        || log4j(&String::from_utf8_lossy(request.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));

    fn request<'a>(method: &'a str, path: &'a str, ip: IpAddr) -> Request<'a> {
        Request {
            method,
            path,
            uri: path,
            headers: &[],
            body: b"",
            source_ip: ip,
        }
    }

    fn body(answer: &Answer) -> Value {
        serde_json::from_str(&answer.body).unwrap()
    }

    #[test]
    fn the_defaults_are_terraforms() {
        let limits = Limits::terraform_defaults();
        assert_eq!(
            limits.throttle("trigger/POST"),
            Some(Throttle {
                rate: 20.0,
                burst: 40.0
            })
        );
        assert_eq!(limits.throttle("assets/{file}/GET"), limits.throttle("*/*"));
        let waf = limits.waf.unwrap();
        assert_eq!(
            (waf.window, waf.rate_limit, waf.trigger_limit),
            (Duration::from_secs(600), 200, 10)
        );
    }

    #[test]
    fn unknown_paths_and_methods_get_404_in_the_products_voice() {
        let edge = Edge::new(Limits::off(), CorsPolicy::Off);
        let now = Instant::now();
        for (method, path) in [
            ("GET", "/admin"),
            ("DELETE", "/trigger"),
            ("GET", "/trigger"),
        ] {
            let missing = edge.answer(&request(method, path, IP), now).unwrap();
            assert_eq!(missing.status, 404, "{method} {path}");
            assert_eq!(
                body(&missing)["type"],
                "urn:pipeline-trigger:problem:not-found"
            );
            assert_eq!(body(&missing)["status"], 404);
            assert_eq!(
                missing.header("Content-Type"),
                Some("application/problem+json")
            );
        }
        assert!(edge.answer(&request("POST", "/trigger", IP), now).is_none());
        assert!(edge
            .answer(&request("OPTIONS", "/trigger", IP), now)
            .is_none());
        assert!(edge
            .answer(&request("GET", "/triggers/01ABC", IP), now)
            .is_none());
    }

    #[test]
    fn a_routes_throttle_is_a_token_bucket_of_its_method() {
        let limits = Limits {
            throttles: Some(vec![
                (
                    "*/*".into(),
                    Throttle {
                        rate: 100.0,
                        burst: 100.0,
                    },
                ),
                (
                    "trigger/POST".into(),
                    Throttle {
                        rate: 2.0,
                        burst: 3.0,
                    },
                ),
            ]),
            waf: None,
        };
        let edge = Edge::new(limits, CorsPolicy::Off);
        let start = Instant::now();
        let post = request("POST", "/trigger", IP);
        for _ in 0..3 {
            assert!(edge.answer(&post, start).is_none());
        }
        let throttled = edge.answer(&post, start).unwrap();
        assert_eq!(throttled.status, 429);
        assert_eq!(throttled.header("Retry-After"), Some("10"));
        let problem = body(&throttled);
        assert_eq!(problem["type"], "urn:pipeline-trigger:problem:throttled");
        assert_eq!(problem["scope"], "service");
        // Another method has a bucket of its own.
        assert!(edge
            .answer(&request("GET", "/pipelines", IP), start)
            .is_none());
        // Half a second refills one token at 2 a second.
        let later = start + Duration::from_millis(500);
        assert!(edge.answer(&post, later).is_none());
        assert_eq!(edge.answer(&post, later).unwrap().status, 429);
    }

    #[test]
    fn the_waf_counts_each_address_over_its_window_and_answers_429_with_the_window() {
        let limits = Limits {
            throttles: None,
            waf: Some(Waf {
                window: Duration::from_secs(60),
                rate_limit: 5,
                trigger_limit: 2,
            }),
        };
        let edge = Edge::new(
            limits,
            CorsPolicy::Origins(vec!["https://a.example".into()]),
        );
        let start = Instant::now();
        let post = Request {
            uri: "/prod/trigger",
            ..request("POST", "/trigger", IP)
        };
        assert!(edge.answer(&post, start).is_none());
        assert!(edge.answer(&post, start).is_none());
        let limited = edge.answer(&post, start).unwrap();
        assert_eq!(limited.status, 429);
        assert_eq!(limited.header("Retry-After"), Some("60"));
        assert_eq!(limited.header("Content-Type"), Some("application/json"));
        assert_eq!(
            limited.header("Access-Control-Allow-Origin"),
            Some("https://a.example")
        );
        assert_eq!(
            body(&limited)["type"],
            "urn:pipeline-trigger:problem:rate-limited"
        );
        // Another address is untouched; this one's other routes too, until
        // its requests of every route pass 5.
        let other = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 10));
        assert!(edge
            .answer(&request("POST", "/trigger", other), start)
            .is_none());
        assert!(edge
            .answer(&request("GET", "/pipelines", IP), start)
            .is_none());
        assert!(edge
            .answer(&request("GET", "/pipelines", IP), start)
            .is_none());
        assert_eq!(
            edge.answer(&request("GET", "/pipelines", IP), start)
                .unwrap()
                .status,
            429
        );
        // A window later the address is free again.
        let later = start + Duration::from_secs(61);
        assert!(edge.answer(&post, later).is_none());
    }

    #[test]
    fn known_bad_inputs_are_forbidden_and_count_toward_the_rate_rules() {
        let limits = Limits {
            throttles: None,
            waf: Some(Waf {
                window: Duration::from_secs(60),
                rate_limit: 100,
                trigger_limit: 2,
            }),
        };
        let edge = Edge::new(limits, CorsPolicy::Any);
        let now = Instant::now();
        let mut log4j = request("POST", "/trigger", IP);
        log4j.body = br#"{"inputs": {"branch": "${jndi:ldap://x/a}"}}"#;
        let forbidden = edge.answer(&log4j, now).unwrap();
        assert_eq!(forbidden.status, 403);
        assert_eq!(forbidden.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(
            body(&forbidden)["type"],
            "urn:pipeline-trigger:problem:forbidden"
        );
        let encoded = Request {
            uri: "/trigger?x=%24%7Bjndi:dns://x",
            ..request("GET", "/trigger", IP)
        };
        assert_eq!(edge.answer(&encoded, now).unwrap().status, 403);
        assert_eq!(
            edge.answer(&request("PROPFIND", "/", IP), now)
                .unwrap()
                .status,
            403
        );
        // The rate rules come first, and counted the refused POST: one more
        // is the second, then the limit is passed.
        assert!(edge.answer(&request("POST", "/trigger", IP), now).is_none());
        let limited = edge.answer(&request("POST", "/trigger", IP), now).unwrap();
        assert_eq!(limited.status, 429);
    }
}
