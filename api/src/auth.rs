//! Authentication (T2): JWTs (HS256 or RS256, one algorithm per validator) and
//! partner API keys, both as `Authorization: Bearer …`.
//!
//! API keys look like `csk_<tenant id>_<secret>`: the prefix tells them from
//! JWTs, the tenant id lets the key be looked up through the tenant-scoped
//! finder, and only the SHA-256 of the whole key is stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crmsync_entity::enums::Role;
use crmsync_entity::models::{api_key, tenant};
use crmsync_entity::{TenantId, TenantScoped};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The key JWTs are verified with.
pub enum JwtKey {
    /// A shared secret (HS256).
    Hs256(SecretString),
    /// An RSA public key in PEM (RS256).
    Rs256PublicPem(String),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hs256(_) => f.write_str("Hs256(<redacted>)"),
            Self::Rs256PublicPem(_) => f.write_str("Rs256PublicPem(..)"),
        }
    }
}

/// How JWTs are validated.
#[derive(Debug)]
pub struct JwtSettings {
    /// The verification key; its kind fixes the one accepted algorithm.
    pub key: JwtKey,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
}

/// Why the authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An empty HS256 secret would accept tokens anyone can mint.
    #[error("the JWT secret is empty")]
    EmptySecret,
    /// The RS256 key is not an RSA public key in PEM.
    #[error("the JWT public key is not an RSA public key in PEM ({0})")]
    BadPublicKey(String),
}

/// The leeway on `exp`, `nbf` and `iat`, in seconds (at most 30 s, T2): the
/// clock skew tolerated between the token's issuer and us.
pub const LEEWAY_SECS: u64 = 30;

/// The prefix of API keys.
pub const API_KEY_PREFIX: &str = "csk_";

/// The claims we issue and require.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Who: a user or service id.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience: one, or several of which ours must be one (RFC 7519, 4.1.3).
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// `operator`, `admin` or `viewer`.
    pub role: String,
    /// The tenant's slug; absent for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// A token's `aud`: RFC 7519 allows one string or an array of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "crmsync"`.
    One(String),
    /// `"aud": ["crmsync", "other-api"]`.
    Many(Vec<String>),
}

impl Audience {
    /// True when `audience` is (one of) the token's.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(aud) => aud == audience,
            Self::Many(auds) => auds.iter().any(|a| a == audience),
        }
    }
}

/// Verifies JWTs with one key and one algorithm.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator accepting only the algorithm of `settings.key`.
    pub fn new(settings: JwtSettings) -> Result<Self, AuthError> {
        let (key, algorithm) = match &settings.key {
            JwtKey::Hs256(secret) => {
                if secret.expose_secret().is_empty() {
                    return Err(AuthError::EmptySecret);
                }
                (
                    DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                    Algorithm::HS256,
                )
            }
            JwtKey::Rs256PublicPem(pem) => (
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| AuthError::BadPublicKey(e.to_string()))?,
                Algorithm::RS256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        // A token is refused before its `nbf` (beyond the leeway) as after its `exp`.
        validation.validate_nbf = true;
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Ok(Self { key, validation })
    }

    /// The verified claims of a token, or why it is refused (in words safe to show).
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => {
                        "the token is not valid yet: its nbf (not before) is in the future"
                    }
                    ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                    ErrorKind::InvalidAudience => "the token's audience is not accepted",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                    ErrorKind::InvalidSignature => "the token's signature does not verify",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                    _ => "the token is not valid",
                };
                ApiError::Unauthenticated(why.into())
            })?;
        // jsonwebtoken does not check `iat`: a token issued in the future comes
        // from a wrong clock or a forger planning ahead, and would outlive its
        // intended lifetime.
        if claims.iat > unix_now() + LEEWAY_SECS {
            return Err(ApiError::Unauthenticated(
                "the token's iat (issued at) is in the future".into(),
            ));
        }
        Ok(claims)
    }
}

/// Mints an HS256 token (for `crmsync token`, the demo and tests).
pub fn mint_hs256(
    secret: &SecretString,
    issuer: &str,
    audience: &str,
    subject: &str,
    role: Role,
    tenant_slug: Option<&str>,
    ttl: Duration,
) -> String {
    let now = unix_now();
    let claims = Claims {
        sub: subject.to_owned(),
        iss: issuer.to_owned(),
        aud: Audience::One(audience.to_owned()),
        exp: now + ttl.as_secs(),
        iat: now,
        role: role.as_str().to_lowercase(),
        tenant: tenant_slug.map(str::to_owned),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .expect("HS256 encoding does not fail")
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who is calling, as established from the `Authorization` header or the
/// WebSocket's `connection_init`.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The token's subject, or `apikey:<id>`.
    pub(crate) subject: String,
    /// The role.
    pub(crate) role: Role,
    /// The tenant; `None` for operators.
    pub(crate) tenant: Option<tenant::Model>,
    /// When the credential expires (seconds since the epoch); API keys do not.
    pub(crate) expires_at: Option<u64>,
}

impl Principal {
    /// The tenant id, for tenant roles.
    pub(crate) fn tenant_id(&self) -> Option<TenantId> {
        self.tenant.as_ref().map(|t| TenantId::new(t.id.clone()))
    }
}

/// SHA-256 of an API key, in lower-case hex: what `api_keys.key_hash` holds.
pub(crate) fn hash_api_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh API key for a tenant: `csk_<tenant id>_<64 hex characters>`.
pub(crate) fn generate_api_key(tenant: &TenantId) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{API_KEY_PREFIX}{}_{secret}",
        tenant.as_str().to_lowercase()
    )
}

/// Establishes the principal from an `Authorization` header value (or the
/// `Authorization` entry of a WebSocket init payload). `None` when there is none.
pub(crate) async fn authenticate(
    db: &DatabaseConnection,
    authenticator: &Authenticator,
    header: Option<&str>,
) -> Result<Option<Principal>, ApiError> {
    let Some(header) = header else {
        return Ok(None);
    };
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::Unauthenticated("expected `Authorization: Bearer <token>`".into())
        })?;
    if token.starts_with(API_KEY_PREFIX) {
        return authenticate_api_key(db, token).await.map(Some);
    }
    let claims = authenticator.verify(token)?;
    let role = Role::parse(&claims.role.to_uppercase())
        .ok_or_else(|| ApiError::Unauthenticated("the token's role is unknown".into()))?;
    let tenant =
        match (role, claims.tenant.as_deref()) {
            (Role::Operator, _) => None,
            (_, None) => {
                return Err(ApiError::Unauthenticated(
                    "the token names no tenant".into(),
                ));
            }
            (_, Some(slug)) => Some(crate::tenants::find_by_slug(db, slug).await?.ok_or_else(
                || ApiError::Unauthenticated("the token's tenant is unknown".into()),
            )?),
        };
    Ok(Some(Principal {
        subject: claims.sub,
        role,
        tenant,
        expires_at: Some(claims.exp),
    }))
}

async fn authenticate_api_key(db: &DatabaseConnection, key: &str) -> Result<Principal, ApiError> {
    let refused = || ApiError::Unauthenticated("the API key is not valid".into());
    let rest = key.strip_prefix(API_KEY_PREFIX).ok_or_else(refused)?;
    let (tenant_part, _) = rest.split_once('_').ok_or_else(refused)?;
    let tenant = tenant::Entity::find_by_id(tenant_part.to_uppercase())
        .one(db)
        .await?
        .ok_or_else(refused)?;
    let tenant_id = TenantId::new(tenant.id.clone());
    let row = api_key::Entity::for_tenant(&tenant_id)
        .filter(api_key::Column::KeyHash.eq(hash_api_key(key)))
        .one(db)
        .await?
        .ok_or_else(refused)?;
    if row.revoked_at.is_some() {
        return Err(ApiError::Unauthenticated("the API key is revoked".into()));
    }
    Ok(Principal {
        subject: format!("apikey:{}", row.id),
        role: row.role,
        tenant: Some(tenant),
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: &str) -> JwtSettings {
        JwtSettings {
            key: JwtKey::Hs256(SecretString::from(secret)),
            issuer: "crmsync".into(),
            audience: "crmsync-api".into(),
        }
    }

    #[test]
    fn a_minted_token_encodes_and_decodes() {
        let secret = SecretString::from("s3cret");
        let token = mint_hs256(
            &secret,
            "crmsync",
            "crmsync-api",
            "alice",
            Role::Admin,
            Some("acme"),
            Duration::from_secs(60),
        );
        let claims = Authenticator::new(settings("s3cret"))
            .unwrap()
            .verify(&token)
            .unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.role, "admin");
        assert_eq!(claims.tenant.as_deref(), Some("acme"));
        assert!(
            Authenticator::new(settings("other"))
                .unwrap()
                .verify(&token)
                .is_err()
        );
    }

    #[test]
    fn api_keys_hash_to_hex_and_carry_their_prefix() {
        let key = generate_api_key(&TenantId::new("01ABC"));
        assert!(key.starts_with("csk_01abc_"));
        assert_eq!(hash_api_key(&key).len(), 64);
    }
}
