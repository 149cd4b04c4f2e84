//! Connector credentials (C2) and their encryption at rest: AES-256-GCM with a
//! random nonce, the tenant id and connector id as associated data (a ciphertext
//! moved to another row does not decrypt). Webhook signing secrets (R5) are
//! sealed with the same key, bound to their tenant and webhook. Secrets live in `secrecy` types and
//! never reach `Debug` output, responses or logs.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};

/// A CRM account's credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Credentials {
    /// Pipedrive: an API token and the company domain.
    #[serde(rename_all = "camelCase")]
    Pipedrive {
        /// The API token.
        #[serde(serialize_with = "expose")]
        api_token: SecretString,
        /// `acme` for acme.pipedrive.com.
        company_domain: String,
    },
    /// Zoho: a self-client and the refresh token its grant code was exchanged for.
    #[serde(rename_all = "camelCase")]
    Zoho {
        /// Client id.
        client_id: String,
        /// Client secret.
        #[serde(serialize_with = "expose")]
        client_secret: SecretString,
        /// com, eu, in, com.au, jp, com.cn, ca, sa.
        data_center: String,
        /// Org id, when given.
        org_id: Option<String>,
        /// The refresh token (never expires).
        #[serde(serialize_with = "expose")]
        refresh_token: SecretString,
    },
}

fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

impl Credentials {
    /// The names of the credentials that are set, as `credentialsSet` shows them.
    pub fn names_set(&self) -> Vec<&'static str> {
        match self {
            Self::Pipedrive { .. } => vec!["apiToken", "companyDomain"],
            Self::Zoho { org_id, .. } => {
                let mut names = vec!["clientId", "clientSecret", "dataCenter", "refreshToken"];
                if org_id.is_some() {
                    names.push("orgId");
                }
                names
            }
        }
    }
}

/// Why credentials could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key is not 32 bytes of base64.
    #[error("must be 32 bytes, base64-encoded")]
    BadKey,
    /// Wrong key, tampered ciphertext, or a ciphertext from another row.
    #[error("credentials do not decrypt with this key for this connector")]
    Undecryptable,
}

/// The AES-256-GCM key for credentials (`CRMSYNC_CREDENTIALS_KEY`).
pub struct CredentialsKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for CredentialsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialsKey(<redacted>)")
    }
}

impl CredentialsKey {
    /// Decodes 32 bytes of standard base64.
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    /// A fresh random key and its base64 form (to be stored by the caller).
    pub fn generate() -> (Self, SecretString) {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        (
            Self(SecretBox::new(Box::new(key))),
            SecretString::from(encoded),
        )
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose_secret().into())
    }

    /// Encrypts for one connector: nonce (12 bytes) followed by the ciphertext.
    pub fn seal(&self, tenant_id: &str, connector_id: &str, credentials: &Credentials) -> Vec<u8> {
        let plaintext = SecretBox::new(Box::new(
            serde_json::to_vec(credentials).expect("credentials serialise"),
        ));
        self.seal_bytes(
            &associated_data(tenant_id, connector_id),
            plaintext.expose_secret(),
        )
    }

    /// Decrypts what `seal` made for the same tenant and connector.
    pub fn open(
        &self,
        tenant_id: &str,
        connector_id: &str,
        sealed: &[u8],
    ) -> Result<Credentials, CryptoError> {
        let plaintext = self.open_bytes(&associated_data(tenant_id, connector_id), sealed)?;
        serde_json::from_slice(plaintext.expose_secret()).map_err(|_| CryptoError::Undecryptable)
    }

    /// A keyed fingerprint (HMAC-SHA256, lower-case hex) of `data` for one
    /// `purpose`: equal data give equal fingerprints, and a stored one tells
    /// nothing about secrets in the data to a reader of the database who
    /// lacks the key. Each purpose has its own key derived from this one, so
    /// the AES key itself never keys a MAC.
    pub fn fingerprint(&self, purpose: &str, data: &[u8]) -> String {
        use hmac::{Hmac, Mac};
        type HmacSha256 = Hmac<sha2::Sha256>;
        let mut derive = <HmacSha256 as Mac>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes any key length");
        derive.update(b"crmsync fingerprint key: ");
        derive.update(purpose.as_bytes());
        let subkey = derive.finalize().into_bytes();
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&subkey).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Encrypts a webhook's signing secret for that webhook only (R5).
    pub fn seal_webhook_secret(
        &self,
        tenant_id: &str,
        webhook_id: &str,
        secret: &SecretString,
    ) -> Vec<u8> {
        self.seal_bytes(
            &webhook_associated_data(tenant_id, webhook_id),
            secret.expose_secret().as_bytes(),
        )
    }

    /// Decrypts what `seal_webhook_secret` made for the same tenant and webhook.
    pub fn open_webhook_secret(
        &self,
        tenant_id: &str,
        webhook_id: &str,
        sealed: &[u8],
    ) -> Result<SecretString, CryptoError> {
        let plaintext = self.open_bytes(&webhook_associated_data(tenant_id, webhook_id), sealed)?;
        let text = std::str::from_utf8(plaintext.expose_secret())
            .map_err(|_| CryptoError::Undecryptable)?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// Nonce (12 random bytes) followed by the ciphertext of `plaintext`
    /// bound to `aad`.
    fn seal_bytes(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption does not fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        out
    }

    fn open_bytes(&self, aad: &[u8], sealed: &[u8]) -> Result<SecretBox<Vec<u8>>, CryptoError> {
        if sealed.len() < 12 + 16 {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::Undecryptable)?;
        Ok(SecretBox::new(Box::new(
            self.cipher()
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: ciphertext,
                        aad,
                    },
                )
                .map_err(|_| CryptoError::Undecryptable)?,
        )))
    }
}

fn associated_data(tenant_id: &str, connector_id: &str) -> Vec<u8> {
    format!("crmsync:credentials:v1:{tenant_id}:{connector_id}").into_bytes()
}

/// Distinct from the credentials' associated data, so neither ciphertext
/// opens as the other.
fn webhook_associated_data(tenant_id: &str, webhook_id: &str) -> Vec<u8> {
    format!("crmsync:webhook-secret:v1:{tenant_id}:{webhook_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipedrive() -> Credentials {
        Credentials::Pipedrive {
            api_token: SecretString::from("tok-123"),
            company_domain: "acme".into(),
        }
    }

    #[test]
    fn sealed_credentials_open_for_the_same_connector_only() {
        let (key, _) = CredentialsKey::generate();
        let sealed = key.seal("t1", "c1", &pipedrive());
        match key.open("t1", "c1", &sealed).unwrap() {
            Credentials::Pipedrive {
                api_token,
                company_domain,
            } => {
                assert_eq!(api_token.expose_secret(), "tok-123");
                assert_eq!(company_domain, "acme");
            }
            other => panic!("{other:?}"),
        }
        assert!(key.open("t2", "c1", &sealed).is_err(), "other tenant");
        assert!(key.open("t1", "c2", &sealed).is_err(), "other connector");
        let (other_key, _) = CredentialsKey::generate();
        assert!(other_key.open("t1", "c1", &sealed).is_err(), "other key");
    }

    #[test]
    fn secrets_never_show_in_debug_output_or_ciphertext() {
        let creds = pipedrive();
        assert!(!format!("{creds:?}").contains("tok-123"));
        let (key, _) = CredentialsKey::generate();
        let sealed = key.seal("t1", "c1", &creds);
        assert!(!sealed.windows(7).any(|w| w == b"tok-123"));
        assert!(!format!("{key:?}").contains(|c: char| c.is_ascii_digit()));
    }

    #[test]
    fn webhook_secrets_open_for_the_same_webhook_only() {
        let (key, _) = CredentialsKey::generate();
        let secret = SecretString::from("whsec_abc");
        let sealed = key.seal_webhook_secret("t1", "w1", &secret);
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(
            key.open_webhook_secret("t1", "w1", &sealed)
                .unwrap()
                .expose_secret(),
            "whsec_abc"
        );
        assert!(key.open_webhook_secret("t2", "w1", &sealed).is_err());
        assert!(key.open_webhook_secret("t1", "w2", &sealed).is_err());
        assert!(key.open("t1", "w1", &sealed).is_err(), "not as credentials");
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(CredentialsKey::from_base64("c2hvcnQ=").is_err());
        assert!(CredentialsKey::from_base64("not base64!").is_err());
        let (_, encoded) = CredentialsKey::generate();
        assert!(CredentialsKey::from_base64(encoded.expose_secret()).is_ok());
    }
}
