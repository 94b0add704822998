//! The fingerprint of the ingress's `CLIENT_KEY_SECRET`
//! (`meta#client-key`: `fingerprint`, see
//! [`crate::rules::client_key::secret_fingerprint`]), and of a rotation's
//! (`generation`; during the overlap `previous_fingerprint` and
//! `previous_until`, RFC 3339). The deployment writes it beside the secret
//! (Terraform, the local stack); the operators' tool reads it before it keys
//! an address, so a wrong secret is refused rather than answered with keys
//! nobody has, and before it plans a rotation.

use super::items::{get_n, get_s, s, SECRET_FINGERPRINT_PK};
use super::{StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::time_format::parse_rfc3339;

/// What the deployment wrote of its secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretState {
    /// The current secret's; `None`: nothing written.
    pub fingerprint: Option<String>,
    /// How many rotations (0 before the first).
    pub generation: u64,
    /// The previous secret's, during a rotation's overlap.
    pub previous_fingerprint: Option<String>,
    /// Until when the previous secret counts.
    pub previous_until: Option<EpochMillis>,
}

/// The secret's fingerprint in the table.
pub struct Secret<'a>(&'a Table);

impl Table {
    pub fn secret(&self) -> Secret<'_> {
        Secret(self)
    }
}

impl Secret<'_> {
    /// The fingerprint the deployment wrote, if any.
    pub async fn fingerprint(&self) -> Result<Option<String>, StoreError> {
        Ok(self.state().await?.fingerprint)
    }

    /// Everything the deployment wrote of its secrets.
    pub async fn state(&self) -> Result<SecretState, StoreError> {
        let output = self
            .0
            .client()
            .get_item()
            .table_name(self.0.name())
            .key("pk", s(SECRET_FINGERPRINT_PK))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = output.item() else {
            return Ok(SecretState::default());
        };
        let text = |name: &str| get_s(item, name).map(str::to_string);
        Ok(SecretState {
            fingerprint: text("fingerprint"),
            generation: get_n(item, "generation").unwrap_or(0),
            previous_fingerprint: text("previous_fingerprint"),
            previous_until: get_s(item, "previous_until").and_then(parse_rfc3339),
        })
    }

    /// Writes the fingerprint (the local stack does; Terraform writes the
    /// same item in a deployment).
    pub async fn put_fingerprint(&self, fingerprint: &str) -> Result<(), StoreError> {
        self.0
            .client()
            .put_item()
            .table_name(self.0.name())
            .item("pk", s(SECRET_FINGERPRINT_PK))
            .item("fingerprint", s(fingerprint))
            .send()
            .await?;
        Ok(())
    }
}
