//! The fingerprint of the ingress's `CLIENT_KEY_SECRET`
//! (`meta#client-key`: `fingerprint`, see
//! [`crate::rules::client_key::secret_fingerprint`]). The deployment writes
//! it beside the secret (Terraform, the local stack); the operators' tool
//! reads it before it keys an address, so a wrong secret is refused rather
//! than answered with keys nobody has.

use super::items::{get_s, s, SECRET_FINGERPRINT_PK};
use super::{StoreError, Table};

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
        let output = self
            .0
            .client()
            .get_item()
            .table_name(self.0.name())
            .key("pk", s(SECRET_FINGERPRINT_PK))
            .consistent_read(true)
            .send()
            .await?;
        Ok(output
            .item()
            .and_then(|item| get_s(item, "fingerprint"))
            .map(str::to_string))
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
