//! The public page (`GET /`) and its files (`GET /assets/page.js`,
//! `page.css`, `icon.svg`), served by the ingress from the API's own origin:
//! no third-party request, no inline script, no build step. The files are
//! in `shared/page/`, compiled into the binary.
//!
//! The page links its files and calls the API under the base path the
//! request came through (a REST API stage such as `/prod`), so it works
//! wherever the API is mounted.

use crate::rules::http::response::{ApiError, HttpResponse};
use sha2::{Digest, Sha256};

const INDEX: &str = include_str!("../../page/index.html");
const SCRIPT: &str = include_str!("../../page/page.js");
const STYLE: &str = include_str!("../../page/page.css");
const ICON: &str = include_str!("../../page/icon.svg");

/// What the page may load and connect to: its own origin, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The page's files, by name: (content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    ("page.js", "text/javascript; charset=utf-8", SCRIPT),
    ("page.css", "text/css; charset=utf-8", STYLE),
    ("icon.svg", "image/svg+xml", ICON),
];

/// The most the page and its files weigh together (bytes).
pub const MAX_PAGE_BYTES: usize = 30 * 1024;

/// A short digest of a file: its URL changes whenever it does.
fn version(body: &str) -> String {
    Sha256::digest(body.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Text fit for a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn secure(mut response: HttpResponse) -> HttpResponse {
    response.header("Content-Security-Policy", CONTENT_SECURITY_POLICY);
    response.header("Referrer-Policy", "no-referrer");
    response
}

/// `GET /`, for a request that came through `base_path`.
pub fn page_response(base_path: &str) -> HttpResponse {
    let html = INDEX
        .replace("{{BASE}}", &attribute(base_path))
        .replace("{{JS_VERSION}}", &version(SCRIPT))
        .replace("{{CSS_VERSION}}", &version(STYLE))
        .replace("{{ICON_VERSION}}", &version(ICON));
    secure(HttpResponse::text(200, "text/html; charset=utf-8", html))
}

/// `GET /assets/<name>`: the page's script or style sheet. Their URLs carry
/// a digest of their content, so browsers may keep them for a day.
pub fn asset_response(name: &str) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or(ApiError::NotFound)?;
    let mut response = HttpResponse::text(200, content_type, body.to_string());
    response.header("Cache-Control", "public, max-age=86400");
    Ok(secure(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_its_files_under_the_base_path_with_their_versions() {
        for base in ["", "/prod", "/api/v1"] {
            let page = page_response(base);
            assert_eq!(page.status, 200);
            assert_eq!(page.headers["Content-Type"], "text/html; charset=utf-8");
            assert_eq!(
                page.headers["Content-Security-Policy"],
                CONTENT_SECURITY_POLICY
            );
            assert!(page.body.contains(&format!("data-api-base=\"{base}\"")));
            assert!(page.body.contains(&format!(
                "src=\"{base}/assets/page.js?v={}\"",
                version(SCRIPT)
            )));
            assert!(page.body.contains(&format!(
                "href=\"{base}/assets/page.css?v={}\"",
                version(STYLE)
            )));
            assert!(!page.body.contains("{{"), "every placeholder filled");
        }
    }

    #[test]
    fn a_hostile_base_path_cannot_leave_its_attribute() {
        let page = page_response("/x\"><script>alert(1)</script>'");
        assert!(!page.body.contains("<script>alert"));
        assert!(page.body.contains("/x&quot;&gt;&lt;script&gt;"));
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_nothing_from_elsewhere() {
        let directives: Vec<&str> = CONTENT_SECURITY_POLICY.split("; ").collect();
        assert!(directives.contains(&"default-src 'none'"));
        assert!(directives.contains(&"script-src 'self'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert!(!CONTENT_SECURITY_POLICY.contains("http"));
        // The page itself holds no inline script, style or handler.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("<style"));
        let handlers = INDEX.split(" on").skip(1).filter(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert_eq!(handlers.count(), 0, "no inline event handler");
        assert!(!INDEX.contains("style=\""));
    }

    #[test]
    fn the_files_are_served_and_nothing_else() {
        let js = asset_response("page.js").unwrap();
        assert_eq!(js.headers["Content-Type"], "text/javascript; charset=utf-8");
        assert_eq!(js.body, SCRIPT);
        let css = asset_response("page.css").unwrap();
        assert_eq!(css.body, STYLE);
        for other in ["index.html", "../Cargo.toml", "page.js.map", ""] {
            assert_eq!(
                asset_response(other).unwrap_err(),
                ApiError::NotFound,
                "{other}"
            );
        }
    }

    #[test]
    fn the_page_weighs_under_30_kb_in_all() {
        let total = page_response("/prod").body.len() + SCRIPT.len() + STYLE.len() + ICON.len();
        assert!(total < MAX_PAGE_BYTES, "{total} bytes");
    }

    #[test]
    fn the_script_sets_api_strings_as_text_never_as_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(sink), "page.js uses {sink}");
        }
        // It reaches only its own origin, under the base path.
        assert!(!SCRIPT.contains("http://") && !SCRIPT.contains("https://"));
    }
}
