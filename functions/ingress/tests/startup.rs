//! A bad configuration stops the start with one message naming the variable,
//! reported to the Lambda Runtime API as an init error.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the ingress binary with only `env` against a one-shot Runtime API
/// that reads the init error until it names `missing`; returns the
/// binary's output and the request it sent.
fn start_without(env: &[(&str, &str)], missing: &'static str) -> (std::process::Output, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let runtime_api = std::thread::spawn(move || {
        // Bounded: a binary that never calls fails the test instead of hanging it.
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("the binary never called the Runtime API: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&request).contains(missing) {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        stream
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let output = Command::new(env!("CARGO_BIN_EXE_ingress"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .envs(env.iter().copied())
        .output()
        .expect("run the ingress binary");
    (output, runtime_api.join().unwrap())
}

#[test]
fn a_missing_variable_is_reported_as_an_init_error_naming_it() {
    let (output, request) = start_without(&[("TABLE_NAME", "t")], "CLIENT_KEY_SECRET");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CLIENT_KEY_SECRET is required"), "{stderr}");
    assert!(
        request.starts_with("POST /2018-06-01/runtime/init/error"),
        "{request}"
    );
    assert!(request.contains("Runtime.ConfigError"), "{request}");
    assert!(request.contains("CLIENT_KEY_SECRET"), "{request}");
}

/// Patterns are ASCII-only (`regex-lite`): a Unicode class such as `\p{L}`
/// is a configuration error that stops the start, naming the setting and
/// the input, rather than a pattern that means something else.
#[test]
fn a_pattern_with_a_unicode_class_stops_the_start_naming_the_input() {
    let settings = r#"{"app": {"inputs": {"build": {"type": "string", "pattern": "\\p{L}+"}}}}"#;
    let (output, request) = start_without(
        &[
            ("CLIENT_KEY_SECRET", "0123456789abcdef0123456789abcdef"),
            ("PIPELINES", "app"),
            ("TABLE_NAME", "t"),
            ("QUEUE_URL", "http://127.0.0.1:9/q"),
            ("PIPELINE_SETTINGS", settings),
        ],
        "does not compile",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(request.contains("Runtime.ConfigError"), "{request}");
    assert!(request.contains("PIPELINE_SETTINGS"), "{request}");
    assert!(
        request.contains("input build: \\\"pattern\\\" does not compile"),
        "{request}"
    );
}

/// The SDK settings come from the variables Lambda sets; a function started
/// without a region (or a key) stops at once naming it, instead of failing
/// every invocation later.
#[test]
fn a_start_without_the_lambda_region_says_so() {
    let (output, request) = start_without(
        &[
            ("CLIENT_KEY_SECRET", "0123456789abcdef0123456789abcdef"),
            ("PIPELINES", "app"),
            ("TABLE_NAME", "t"),
            ("QUEUE_URL", "http://127.0.0.1:9/q"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
        "AWS_REGION",
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AWS_REGION is required"), "{stderr}");
    assert!(request.contains("AWS_REGION"), "{request}");
}
