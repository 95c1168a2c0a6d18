//! Opaque, tamper-proof tokens: page cursors and download links carry an HMAC over their
//! content, the scope they were issued for and the project, so a forged or replayed token is
//! refused instead of reading another project's rows.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ApiError;
use crate::store::Cursor;

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    pub fn page_token(&self, scope: &str, project_id: &str, cursor: &Cursor) -> String {
        let payload = serde_json::to_vec(cursor).unwrap_or_default();
        let tag = self
            .mac(&[scope.as_bytes(), project_id.as_bytes(), &payload])
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&tag[..16])
        )
    }

    /// The cursor a list request continues from: none for the first page (no token, or an
    /// empty one, which some clients send), else the verified token's cursor.
    pub fn cursor_after(
        &self,
        scope: &str,
        project_id: &str,
        token: Option<&str>,
    ) -> Result<Option<Cursor>, ApiError> {
        token
            .filter(|t| !t.is_empty())
            .map(|t| self.read_page_token(scope, project_id, t))
            .transpose()
    }

    pub fn read_page_token(
        &self,
        scope: &str,
        project_id: &str,
        token: &str,
    ) -> Result<Cursor, ApiError> {
        let invalid = || {
            ApiError::BadRequest(
                "Invalid page_token: pass the next_page_token of a previous page unchanged".into(),
            )
        };
        let (payload, tag) = token.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        self.mac(&[scope.as_bytes(), project_id.as_bytes(), &payload])
            .verify_truncated_left(&tag)
            .map_err(|_| invalid())?;
        serde_json::from_slice(&payload).map_err(|_| invalid())
    }

    pub fn download_signature(&self, file_id: &str, expires: i64) -> String {
        let tag = self
            .mac(&[b"download", file_id.as_bytes(), &expires.to_be_bytes()])
            .finalize()
            .into_bytes();
        hex::encode(&tag[..16])
    }

    pub fn verify_download(&self, file_id: &str, expires: i64, signature: &str) -> bool {
        let Ok(tag) = hex::decode(signature) else {
            return false;
        };
        tag.len() == 16
            && self
                .mac(&[b"download", file_id.as_bytes(), &expires.to_be_bytes()])
                .verify_truncated_left(&tag)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SortKey;

    #[test]
    fn page_tokens_round_trip_and_refuse_forgeries() {
        let signer = Signer::new(b"secret");
        let cursor = Cursor {
            key: SortKey::Int(42),
            id: "cls-1".into(),
        };
        let token = signer.page_token("jobs", "prj-a", &cursor);
        assert_eq!(
            signer.read_page_token("jobs", "prj-a", &token).unwrap(),
            cursor
        );
        assert!(
            signer.read_page_token("jobs", "prj-b", &token).is_err(),
            "other project"
        );
        assert!(
            signer.read_page_token("files", "prj-a", &token).is_err(),
            "other scope"
        );
        let forged = format!("{}x", token);
        assert!(signer.read_page_token("jobs", "prj-a", &forged).is_err());
        assert!(signer.read_page_token("jobs", "prj-a", "garbage").is_err());
        assert!(signer.read_page_token("jobs", "prj-a", "").is_err());
    }

    #[test]
    fn download_signatures_bind_file_and_expiry() {
        let signer = Signer::new(b"secret");
        let signature = signer.download_signature("dfl-1", 100);
        assert!(signer.verify_download("dfl-1", 100, &signature));
        assert!(!signer.verify_download("dfl-2", 100, &signature));
        assert!(!signer.verify_download("dfl-1", 101, &signature));
        assert!(!signer.verify_download("dfl-1", 100, "zz"));
    }
}
