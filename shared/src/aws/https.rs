//! The one HTTPS client of every SDK client: hyper with rustls (AWS-LC),
//! verifying each server's certificate against Mozilla's root store
//! compiled into the binary (`webpki-roots`). A cold start then reads and
//! parses no certificate file: the SDK's default client reads the system's
//! whole store (on Debian a bundle and some 150 files beside it) and parses
//! every certificate, most of a Lambda's init (docs/performance.md).
//!
//! Errors keep what they mean for a caller that must know whether a call
//! may have been carried out: a connection that could not be made is an
//! I/O error ([`crate::aws::describe`] says "connection failed"); one that
//! broke after the request went out is a transient "other" error, whose
//! outcome is unknown.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The HTTPS client every SDK client is built with.
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(Https::default())
}

/// Builds (and keeps) one connector per connect timeout.
#[derive(Debug, Default)]
struct Https {
    connectors: Mutex<Vec<(Option<Duration>, SharedHttpConnector)>>,
}

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeout = settings.connect_timeout();
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeout) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(Connector::new(timeout));
        connectors.push((timeout, connector.clone()));
        connector
    }
}

#[derive(Debug, Clone)]
struct Connector {
    client: Client<HttpsConnector<TcpConnector>, SdkBody>,
}

/// Mozilla's root store, compiled in: nothing to read or parse.
fn roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

impl Connector {
    fn new(connect_timeout: Option<Duration>) -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the AWS-LC provider supports the default TLS versions")
            .with_root_certificates(roots())
            .with_no_client_auth();
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect_timeout);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            // Emulators on loopback answer plain HTTP.
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        HttpConnectorFuture::new(async move {
            match sent.await {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// What a failed request means: never sent (I/O), timed out, or broken
/// after it went out (transient, outcome unknown).
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    if error.is_connect() {
        let timed_out = std::error::Error::source(&error)
            .and_then(|e| e.downcast_ref::<std::io::Error>())
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut);
        return if timed_out {
            ConnectorError::timeout(error.into())
        } else {
            ConnectorError::io(error.into())
        };
    }
    ConnectorError::other(error.into(), Some(ErrorKind::TransientError))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_store_holds_the_web_roots() {
        assert!(roots().len() > 100, "{} roots", roots().len());
    }
}
