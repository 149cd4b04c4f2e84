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
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A CRM account's credentials: named values (the names of the CRM's
/// credential form, `apiToken`, `refreshToken`, ...) under the tag of the CRM
/// they belong to. What the names mean is the CRM folder's business
/// (`crm::<kind>::kit`); here they are only kept, sealed and opened. Every
/// value is a secret: `Debug` shows the tag and the names only.
///
/// Stored as a JSON object, `{"kind": "<tag>", "<name>": "<value>", ...}`.
#[derive(Clone)]
pub struct Credentials {
    tag: String,
    values: BTreeMap<String, SecretString>,
}

impl Credentials {
    /// Empty credentials of the CRM whose tag is `tag`.
    pub fn new(tag: impl Into<String>) -> Self {
        Self {
            tag: tag.into(),
            values: BTreeMap::new(),
        }
    }

    /// These credentials with `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: SecretString) -> Self {
        self.values.insert(name.into(), value);
        self
    }

    /// These credentials with `name` set to `value` when there is one.
    pub fn with_optional(self, name: impl Into<String>, value: Option<SecretString>) -> Self {
        match value {
            Some(value) => self.with(name, value),
            None => self,
        }
    }

    /// The tag of the CRM they belong to (its kit's `tag`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The value named `name`, if set.
    pub fn secret(&self, name: &str) -> Option<&SecretString> {
        self.values.get(name)
    }

    /// The value named `name` as text, if set: for values that are not
    /// secret in themselves (a domain, a client id).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.expose_secret())
    }

    /// The names of the credentials that are set, as `credentialsSet` shows them.
    pub fn names_set(&self) -> Vec<&str> {
        self.values.keys().map(String::as_str).collect()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("tag", &self.tag)
            .field("set", &self.names_set())
            .finish()
    }
}

impl Serialize for Credentials {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.values.len() + 1))?;
        map.serialize_entry("kind", &self.tag)?;
        for (name, value) in &self.values {
            map.serialize_entry(name, value.expose_secret())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Credentials {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // A value left out was once stored as null: absent and null are the same.
        let raw = BTreeMap::<String, Option<String>>::deserialize(d)?;
        let mut tag = None;
        let mut values = BTreeMap::new();
        for (name, value) in raw {
            match (name.as_str(), value) {
                ("kind", Some(kind)) => tag = Some(kind),
                ("kind", None) => return Err(D::Error::custom("credentials without a kind")),
                (_, Some(value)) => {
                    values.insert(name, SecretString::from(value));
                }
                (_, None) => {}
            }
        }
        let tag = tag.ok_or_else(|| D::Error::missing_field("kind"))?;
        Ok(Self { tag, values })
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

    /// Encrypts the secret of a connector's real-time subscription (the
    /// password or token its CRM sends back) for that subscription only.
    pub fn seal_realtime_secret(
        &self,
        tenant_id: &str,
        subscription_id: &str,
        secret: &SecretString,
    ) -> Vec<u8> {
        self.seal_bytes(
            &realtime_associated_data(tenant_id, subscription_id),
            secret.expose_secret().as_bytes(),
        )
    }

    /// Decrypts what `seal_realtime_secret` made for the same tenant and
    /// subscription.
    pub fn open_realtime_secret(
        &self,
        tenant_id: &str,
        subscription_id: &str,
        sealed: &[u8],
    ) -> Result<SecretString, CryptoError> {
        let plaintext = self.open_bytes(
            &realtime_associated_data(tenant_id, subscription_id),
            sealed,
        )?;
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

/// Distinct from the others, so no ciphertext opens as another kind.
fn realtime_associated_data(tenant_id: &str, subscription_id: &str) -> Vec<u8> {
    format!("crmsync:realtime-secret:v1:{tenant_id}:{subscription_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Credentials {
        Credentials::new("crm")
            .with("apiToken", SecretString::from("tok-123"))
            .with("domain", SecretString::from("acme"))
    }

    #[test]
    fn sealed_credentials_open_for_the_same_connector_only() {
        let (key, _) = CredentialsKey::generate();
        let sealed = key.seal("t1", "c1", &token());
        let opened = key.open("t1", "c1", &sealed).unwrap();
        assert_eq!(opened.tag(), "crm");
        assert_eq!(opened.text("apiToken"), Some("tok-123"));
        assert_eq!(opened.text("domain"), Some("acme"));
        assert_eq!(opened.names_set(), ["apiToken", "domain"]);
        assert!(key.open("t2", "c1", &sealed).is_err(), "other tenant");
        assert!(key.open("t1", "c2", &sealed).is_err(), "other connector");
        let (other_key, _) = CredentialsKey::generate();
        assert!(other_key.open("t1", "c1", &sealed).is_err(), "other key");
    }

    #[test]
    fn secrets_never_show_in_debug_output_or_ciphertext() {
        let creds = token();
        assert!(!format!("{creds:?}").contains("tok-123"));
        let (key, _) = CredentialsKey::generate();
        let sealed = key.seal("t1", "c1", &creds);
        assert!(!sealed.windows(7).any(|w| w == b"tok-123"));
        assert!(!format!("{key:?}").contains(|c: char| c.is_ascii_digit()));
    }

    #[test]
    fn stored_credentials_read_back_with_nulls_as_unset() {
        let stored = r#"{"kind":"crm","clientId":"id-1","orgId":null}"#;
        let creds: Credentials = serde_json::from_str(stored).unwrap();
        assert_eq!(creds.tag(), "crm");
        assert_eq!(creds.names_set(), ["clientId"]);
        assert_eq!(
            serde_json::to_value(&creds).unwrap(),
            serde_json::json!({"kind": "crm", "clientId": "id-1"})
        );
        assert!(serde_json::from_str::<Credentials>(r#"{"clientId":"x"}"#).is_err());
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
