//! HS256 JSON Web Tokens: issued by user-service at login, checked by the
//! gateway on every write and `/me` route.
//!
//! # Format
//! `base64url(header).base64url(claims).base64url(HMAC-SHA256(secret, header.claims))`
//! with header `{"alg":"HS256","typ":"JWT"}` and claims `{"sub":"<user id>",
//! "iat":<unix s>,"exp":<unix s>}` (RFC 7519; `sub` is a string as the RFC
//! asks). Only HS256 is accepted: a token whose header names another
//! algorithm (`none` included) is rejected before its signature is looked at.
//!
//! # Secret
//! [`JwtSettings::resolve_secret`] gives the key: the configured one (at
//! least [`MIN_SECRET_BYTES`] long), or a fixed development key in dev mode
//! only. Outside dev mode there is no usable default.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use common::config::ConfigError;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted outside dev mode (256 bits, the HMAC-SHA256 block strength).
pub const MIN_SECRET_BYTES: usize = 32;

/// The key used in dev mode (`SLUICE_DEV=true`) when none is configured.
pub const DEV_SECRET: &str = "sluice-dev-only-jwt-secret-do-not-use-in-production";

const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; // {"alg":"HS256","typ":"JWT"}

/// JWT settings shared by the issuer (user-service) and the checker (gateway).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtSettings {
    /// HMAC key. No default outside dev mode.
    #[serde(serialize_with = "common::config::ser_secret_opt")]
    pub secret: Option<SecretString>,
    /// Token lifetime, e.g. `"24h"`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            secret: None,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl JwtSettings {
    /// The signing key: the configured one, or [`DEV_SECRET`] in dev mode
    /// when none is configured. A configured secret is never replaced: one
    /// shorter than [`MIN_SECRET_BYTES`] is an error in every mode.
    pub fn resolve_secret(&self, dev: bool) -> Result<SecretString, ConfigError> {
        common::config::resolve_secret(
            self.secret.as_ref(),
            dev,
            "jwt.secret",
            "<PREFIX>_JWT__SECRET",
            MIN_SECRET_BYTES,
            DEV_SECRET,
        )
    }
}

/// The claims sluice puts in a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a decimal string.
    pub sub: String,
    /// Issued at, seconds since the epoch.
    #[serde(default)]
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

impl Claims {
    /// The user id of `sub`.
    pub fn user_id(&self) -> Result<u64, JwtError> {
        self.sub.parse().map_err(|_| JwtError::Malformed)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("invalid token signature")]
    Signature,
    #[error("token expired")]
    Expired,
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct JwtCodec {
    secret: SecretString,
    ttl: Duration,
}

impl std::fmt::Debug for JwtCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtCodec")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl JwtCodec {
    pub fn new(secret: SecretString, ttl: Duration) -> Self {
        Self { secret, ttl }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        HmacSha256::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("hmac accepts any key length")
    }

    /// A token for `user_id`, valid for the configured ttl from now.
    pub fn issue(&self, user_id: u64) -> String {
        let iat = now_secs();
        self.issue_claims(&Claims {
            sub: user_id.to_string(),
            iat,
            exp: iat.saturating_add(self.ttl.as_secs()),
        })
    }

    /// A token carrying exactly `claims` (tests use it for expired tokens).
    pub fn issue_claims(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{HEADER_B64}.{}", URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Checks algorithm, signature (constant time) and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        self.verify_at(token, now_secs())
    }

    /// [`verify`](Self::verify) against a given clock (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| JwtError::Malformed)?;
        let header: serde_json::Value =
            serde_json::from_slice(&header_json).map_err(|_| JwtError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(JwtError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| JwtError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signing_input(token).as_bytes());
        mac.verify_slice(&sig).map_err(|_| JwtError::Signature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| JwtError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
        claims.user_id()?;
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

/// `header.payload` of a token: everything before the last dot.
fn signing_input(token: &str) -> &str {
    token
        .rsplit_once('.')
        .map(|(head, _)| head)
        .unwrap_or(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(secret: &str) -> JwtCodec {
        JwtCodec::new(SecretString::from(secret), Duration::from_secs(60))
    }

    #[test]
    fn issued_token_verifies_and_names_the_user() {
        let c = codec(DEV_SECRET);
        let claims = c.verify(&c.issue(42)).unwrap();
        assert_eq!(claims.user_id().unwrap(), 42);
        assert!(claims.exp > claims.iat);
    }

    #[test]
    fn token_signed_with_another_secret_is_refused() {
        let token = codec("another-secret-another-secret-another").issue(1);
        assert_eq!(codec(DEV_SECRET).verify(&token), Err(JwtError::Signature));
    }

    #[test]
    fn expired_token_is_refused() {
        let c = codec(DEV_SECRET);
        let token = c.issue_claims(&Claims {
            sub: "7".into(),
            iat: 10,
            exp: 20,
        });
        assert_eq!(c.verify_at(&token, 20), Err(JwtError::Expired));
        assert!(c.verify_at(&token, 19).is_ok());
    }

    #[test]
    fn tampered_claims_are_refused() {
        let c = codec(DEV_SECRET);
        let token = c.issue(1);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"2","iat":0,"exp":99999999999}"#);
        parts[1] = &forged;
        assert_eq!(c.verify(&parts.join(".")), Err(JwtError::Signature));
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        let c = codec(DEV_SECRET);
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"1","exp":99999999999}"#);
        assert_eq!(
            c.verify(&format!("{none_header}.{payload}.")),
            Err(JwtError::Algorithm)
        );
        assert_eq!(c.verify("not-a-token"), Err(JwtError::Malformed));
        assert_eq!(c.verify("a.b.c.d"), Err(JwtError::Malformed));
        assert_eq!(c.verify(""), Err(JwtError::Malformed));
    }

    #[test]
    fn secret_has_no_default_outside_dev_mode() {
        let s = JwtSettings::default();
        assert!(s.resolve_secret(false).is_err());
        assert_eq!(s.resolve_secret(true).unwrap().expose_secret(), DEV_SECRET);
        let short = JwtSettings {
            secret: Some(SecretString::from("short")),
            ..Default::default()
        };
        assert!(short.resolve_secret(false).is_err());
    }

    #[test]
    fn dev_mode_never_replaces_a_configured_secret() {
        // Before: a short secret in dev mode was silently swapped for the
        // public DEV_SECRET, so tokens forged with it were accepted.
        let short = JwtSettings {
            secret: Some(SecretString::from("short")),
            ..Default::default()
        };
        let err = short.resolve_secret(true).unwrap_err().to_string();
        assert!(err.contains("at least 32 bytes"), "{err}");
        let own = "an-own-secret-of-at-least-32-bytes!!";
        let set = JwtSettings {
            secret: Some(SecretString::from(own)),
            ..Default::default()
        };
        assert_eq!(set.resolve_secret(true).unwrap().expose_secret(), own);
    }

    #[test]
    fn header_constant_matches_its_json() {
        let decoded = URL_SAFE_NO_PAD.decode(HEADER_B64).unwrap();
        assert_eq!(decoded, br#"{"alg":"HS256","typ":"JWT"}"#);
    }
}
