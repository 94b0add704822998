//! The public page, in headless Chromium.

use crate::harness::*;
use local_stack::edge::{Limits, Throttle, Waf};

/// The public page in headless Chromium (tests/end_to_end/browser/page.cjs), against
/// the stack served under a REST API stage: trigger with inputs and see
/// `succeeded` with the stages, a failing pipeline `failed`, the quota
/// refusal, an invalid input at its field, the link again after a reload
/// (selecting the followed trigger's pipeline and inputs); on a second stack
/// whose queue is down, "unavailable"; on a third with `max_pending` 2 and
/// 6-second runs, the place in line, a refused trigger and the end estimate,
/// and that a site the API allows triggers from its page while another
/// site's page is refused (`403 cross-site`); on two stacks with the edge's
/// throttle and WAF on (small numbers), what a busy service, an address
/// over the WAF's rule and a value the WAF refuses look like.
/// Screenshots of each state land in `target/screenshots/page/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_headless_chromium_triggers_and_follows_runs() {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = tests.parent().expect("the workspace").to_path_buf();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node_modules = root.join("tools/node/node_modules");
    assert!(
        std::path::Path::new(&chromium).exists() && node_modules.join("playwright-core").exists(),
        "the page test needs Debian's chromium ({chromium}) and playwright-core in tools/node/node_modules: run scripts/test, which installs both"
    );
    let harness = Harness::start_with(
        &unique("page"),
        &[
            ("QUOTA_LIMIT", "2"),
            ("PIPELINE_SETTINGS", local_stack::DEFAULT_PIPELINE_SETTINGS),
        ],
        None,
        Duration::from_secs(1),
        Some("prod"),
    )
    .await;
    let down = Harness::start_with(
        &unique("page-down"),
        &[("PIPELINE_SETTINGS", local_stack::DEFAULT_PIPELINE_SETTINGS)],
        Some(local_stack::Fault::QueueUnreachable),
        Duration::from_secs(1),
        Some("prod"),
    )
    .await;
    // Two other sites' origins: one the API allows (CORS_ALLOWED_ORIGINS), one not.
    let (allowed_port, other_port) = (free_port(), free_port());
    let allowed_origin = format!("http://127.0.0.1:{allowed_port}");
    let busy = Harness::start_with(
        &unique("page-busy"),
        &[
            ("QUOTA_LIMIT", "5"),
            ("PIPELINE_SETTINGS", BUSY_SETTINGS),
            ("CORS_ALLOWED_ORIGINS", &allowed_origin),
        ],
        None,
        Duration::from_secs(6),
        Some("prod"),
    )
    .await;
    // The edge as deployed, with numbers a page meets in a few clicks: a
    // route throttle of one POST, and a WAF rule of two per address.
    let throttled = Harness::start_with_edge(
        &unique("page-throttled"),
        &[("PIPELINE_SETTINGS", local_stack::DEFAULT_PIPELINE_SETTINGS)],
        None,
        Duration::from_secs(1),
        Some("prod"),
        edge_limits(
            Some(Throttle {
                rate: 1.0 / 600.0,
                burst: 1.0,
            }),
            None,
        ),
    )
    .await;
    let firewalled = Harness::start_with_edge(
        &unique("page-waf"),
        &[("PIPELINE_SETTINGS", local_stack::DEFAULT_PIPELINE_SETTINGS)],
        None,
        Duration::from_secs(1),
        Some("prod"),
        edge_limits(
            None,
            Some(Waf {
                window: Duration::from_secs(600),
                rate_limit: 1000,
                trigger_limit: 2,
            }),
        ),
    )
    .await;
    let shots = root.join("target/screenshots/page");
    let output = tokio::process::Command::new("node")
        .arg(tests.join("end_to_end/browser/page.cjs"))
        .arg(harness.url("/prod"))
        .arg(&shots)
        .arg(down.url("/prod"))
        .arg(busy.url("/prod"))
        .arg(allowed_port.to_string())
        .arg(other_port.to_string())
        .arg(throttled.url("/prod"))
        .arg(firewalled.url("/prod"))
        .env("NODE_PATH", &node_modules)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node runs (Debian package nodejs)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{said}\nthe stack printed:\n{}\nthe busy stack printed:\n{}",
        harness.printed(),
        busy.printed()
    );
    assert!(said.contains("every step passed"), "{said}");
    // The steps and the page's weight, for `cargo test -- --nocapture`.
    println!("{said}");
    for state in [
        "invalid-input",
        "succeeded",
        "failed",
        "refused",
        "reloaded",
        "reloaded-other-pipeline",
        "unavailable",
        "queued",
        "queue-full",
        "running-estimate",
        "embedding-allowed",
        "embedding-refused",
        "throttled",
        "forbidden",
        "rate-limited",
    ] {
        assert!(shots.join(format!("{state}.png")).exists(), "{state}");
    }
    harness.stack.stop().await;
    down.stack.stop().await;
    busy.stack.stop().await;
    throttled.stack.stop().await;
    firewalled.stack.stop().await;
}

/// A POST /trigger throttle and a WAF, the other routes generous.
fn edge_limits(trigger: Option<Throttle>, waf: Option<Waf>) -> Limits {
    let generous = Throttle {
        rate: 100.0,
        burst: 200.0,
    };
    Limits {
        throttles: Some(vec![
            ("*/*".into(), generous),
            ("trigger/POST".into(), trigger.unwrap_or(generous)),
        ]),
        waf,
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Two pending runs at most, and one input, for the queue's steps.
// Three pending runs, one of them reserved for keyed triggers: a page
// (anonymous) fills the queue with two.
const BUSY_SETTINGS: &str = r#"{
  "app": {"max_pending": 3, "inputs": {
    "branch": {"type": "string", "pattern": "[a-z0-9-]{1,40}", "default": "main",
               "hint": "lowercase letters, digits and dashes"}}},
  "broken": {}
}"#;
