//! A bad configuration stops the start with one message naming the variable,
//! reported to the Lambda Runtime API as an init error.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_missing_variable_is_reported_as_an_init_error_naming_it() {
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
        while !String::from_utf8_lossy(&request).contains("CLIENT_KEY_SECRET") {
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
        .env("TABLE_NAME", "t")
        .output()
        .expect("run the ingress binary");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CLIENT_KEY_SECRET is required"), "{stderr}");
    let request = runtime_api.join().unwrap();
    assert!(
        request.starts_with("POST /2018-06-01/runtime/init/error"),
        "{request}"
    );
    assert!(request.contains("Runtime.ConfigError"), "{request}");
    assert!(request.contains("CLIENT_KEY_SECRET"), "{request}");
}

#[test]
fn a_malformed_variable_is_named_without_a_runtime_api() {
    let output = Command::new(env!("CARGO_BIN_EXE_ingress"))
        .env_clear()
        .env("TABLE_NAME", "t")
        .env("QUEUE_URL", "http://127.0.0.1:1/q")
        .env("PIPELINES", "app")
        .env("CLIENT_KEY_SECRET", "0123456789abcdef")
        .env("QUOTA_LIMIT", "lots")
        .output()
        .expect("run the ingress binary");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("QUOTA_LIMIT is malformed"), "{stderr}");
}
