//! Service-to-service authentication: a gRPC service answers only calls
//! that prove they come from a member of the mesh (the gateway or another
//! sluice service), and takes the acting user from that proof, never from
//! the request body alone.
//!
//! # Proofs
//! Every member shares one secret (`mesh.secret`, at least
//! [`MIN_SECRET_BYTES`]; a fixed development key in dev mode only, which
//! also listens on loopback only). From it a caller derives:
//! - `sluice-service: <hex HMAC-SHA256(secret, "sluice-mesh-v1")>` on every
//!   call: membership. The secret itself never travels.
//! - `sluice-actor: <user id>.<expiry>.<hex HMAC(secret, "actor.<id>.<expiry>")>`
//!   on calls made for a user (the gateway sets it after verifying the
//!   user's JWT): who acts, valid for a minute.
//!
//! A service wraps its own gRPC service with [`MeshAuth::check`] (a tonic
//! interceptor): no or a wrong membership proof is `UNAUTHENTICATED`, a bad
//! or expired actor too. Handlers that act for a user call [`acting_user`]
//! and compare it with the body's user id (`PERMISSION_DENIED` when they
//! differ). Health and reflection are other services on the same port and
//! stay open.
//!
//! Like any bearer credential the proofs can be replayed by whoever reads
//! the traffic: run the mesh on a private network (compose does), or
//! behind mutual TLS where the network is shared.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tonic::metadata::MetadataValue;

use common::config::ConfigError;

type HmacSha256 = Hmac<Sha256>;

/// Metadata carrying the membership proof.
pub const SERVICE_METADATA: &str = "sluice-service";
/// Metadata carrying the acting user's assertion.
pub const ACTOR_METADATA: &str = "sluice-actor";
/// Shortest mesh secret accepted (256 bits).
pub const MIN_SECRET_BYTES: usize = 32;
/// The mesh key in dev mode (`SLUICE_DEV=true`) when none is configured.
pub const DEV_SECRET: &str = "sluice-dev-only-mesh-secret-do-not-use-in-production";
/// How long an actor assertion is valid.
const ACTOR_TTL_SECS: u64 = 60;
/// The membership proof's message.
const MEMBERSHIP: &[u8] = b"sluice-mesh-v1";

/// The mesh secret setting (`<PREFIX>_MESH__SECRET`), shared by the
/// gateway and every gRPC service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MeshSettings {
    #[serde(serialize_with = "common::config::ser_secret_opt")]
    pub secret: Option<SecretString>,
}

impl MeshSettings {
    /// The configured secret, or [`DEV_SECRET`] in dev mode when none is
    /// configured; a configured secret shorter than [`MIN_SECRET_BYTES`] is
    /// an error in every mode.
    pub fn resolve_secret(&self, dev: bool) -> Result<SecretString, ConfigError> {
        common::config::resolve_secret(
            self.secret.as_ref(),
            dev,
            "mesh.secret (shared by the gateway and every gRPC service)",
            "<PREFIX>_MESH__SECRET",
            MIN_SECRET_BYTES,
            DEV_SECRET,
        )
    }

    /// The signer and checker of this secret.
    pub fn auth(&self, dev: bool) -> Result<MeshAuth, ConfigError> {
        self.resolve_secret(dev).map(MeshAuth::new)
    }
}

/// The acting user a request proved (set by [`MeshAuth::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor(pub u64);

/// Signs calls and checks them with the mesh secret.
#[derive(Clone)]
pub struct MeshAuth {
    key: Arc<SecretString>,
    /// The membership proof, computed once.
    proof: Arc<str>,
}

impl std::fmt::Debug for MeshAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshAuth").finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl MeshAuth {
    pub fn new(secret: SecretString) -> Self {
        let key = Arc::new(secret);
        let proof = hex(&Self::mac_of(&key, MEMBERSHIP)).into();
        Self { key, proof }
    }

    fn mac(key: &SecretString) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        HmacSha256::new_from_slice(key.expose_secret().as_bytes())
            .expect("hmac accepts any key length")
    }

    fn mac_of(key: &SecretString, msg: &[u8]) -> Vec<u8> {
        let mut m = Self::mac(key);
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }

    fn verifies(&self, msg: &[u8], hex_tag: &str) -> bool {
        let Some(tag) = unhex(hex_tag) else {
            return false;
        };
        let mut m = Self::mac(&self.key);
        m.update(msg);
        m.verify_slice(&tag).is_ok()
    }

    /// The actor assertion for `user_id`, valid from `now` (seconds).
    fn actor_token(&self, user_id: u64, now: u64) -> String {
        let exp = now.saturating_add(ACTOR_TTL_SECS);
        let tag = Self::mac_of(&self.key, format!("actor.{user_id}.{exp}").as_bytes());
        format!("{user_id}.{exp}.{}", hex(&tag))
    }

    /// The mesh key of dev mode ([`DEV_SECRET`]): tests and dev tools.
    pub fn dev() -> Self {
        Self::new(SecretString::from(DEV_SECRET))
    }

    /// Adds the membership proof, and the acting user when there is one,
    /// to an outgoing request.
    pub fn sign<T>(&self, req: &mut tonic::Request<T>, actor: Option<u64>) {
        let md = req.metadata_mut();
        if let Ok(v) = MetadataValue::try_from(&*self.proof) {
            md.insert(SERVICE_METADATA, v);
        }
        if let Some(uid) = actor
            && let Ok(v) = MetadataValue::try_from(self.actor_token(uid, now_secs()))
        {
            md.insert(ACTOR_METADATA, v);
        }
    }

    /// A request for `msg` made for `user_id` (and a member's, as every
    /// call of a [`MeshClient`] channel is).
    pub fn acting<T>(&self, user_id: u64, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        self.sign(&mut req, Some(user_id));
        req
    }

    /// The client interceptor of a mesh member's channels.
    pub fn client(&self) -> MeshClient {
        MeshClient(self.clone())
    }

    /// The server interceptor of a mesh service.
    pub fn server(&self) -> MeshServer {
        MeshServer(self.clone())
    }

    /// The server side (a tonic interceptor): refuses a call without a
    /// valid membership proof, and records a valid actor assertion as an
    /// [`Actor`] extension.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        self.check_at(req, now_secs())
    }

    #[allow(clippy::result_large_err)]
    fn check_at(
        &self,
        mut req: tonic::Request<()>,
        now: u64,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let proof = req
            .metadata()
            .get(SERVICE_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !self.verifies(MEMBERSHIP, proof) {
            return Err(tonic::Status::unauthenticated(
                "this service answers members of the sluice mesh only (no valid sluice-service proof)",
            ));
        }
        let Some(assertion) = req.metadata().get(ACTOR_METADATA) else {
            return Ok(req);
        };
        let bad = || tonic::Status::unauthenticated("invalid or expired sluice-actor assertion");
        let text = assertion.to_str().map_err(|_| bad())?;
        let mut parts = text.splitn(3, '.');
        let (Some(uid), Some(exp), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let (Ok(user_id), Ok(expiry)) = (uid.parse::<u64>(), exp.parse::<u64>()) else {
            return Err(bad());
        };
        if expiry < now || !self.verifies(format!("actor.{user_id}.{expiry}").as_bytes(), tag) {
            return Err(bad());
        }
        req.extensions_mut().insert(Actor(user_id));
        Ok(req)
    }
}

/// A member's client interceptor: every call carries the membership proof
/// and, when tracing is on, the caller's trace context (`traceparent`), so
/// the service's span joins the caller's trace.
#[derive(Debug, Clone)]
pub struct MeshClient(MeshAuth);

impl tonic::service::Interceptor for MeshClient {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(tp) = common::telemetry::traceparent()
            && let Ok(v) = tp.parse()
        {
            req.metadata_mut().insert(common::telemetry::TRACEPARENT, v);
        }
        if !req.metadata().contains_key(SERVICE_METADATA)
            && let Ok(v) = MetadataValue::try_from(&*self.0.proof)
        {
            req.metadata_mut().insert(SERVICE_METADATA, v);
        }
        Ok(req)
    }
}

/// A channel whose calls carry the membership proof and the trace context.
pub type MeshChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshClient>;

/// A service's interceptor: [`MeshAuth::check`] on every call.
#[derive(Debug, Clone)]
pub struct MeshServer(MeshAuth);

impl tonic::service::Interceptor for MeshServer {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        self.0.check(req)
    }
}

/// The user a request acts for: the proven actor, which must be `claimed`
/// (the body's user id). No actor is `UNAUTHENTICATED`, another one
/// `PERMISSION_DENIED`.
#[allow(clippy::result_large_err)]
pub fn acting_user<T>(req: &tonic::Request<T>, claimed: u64) -> Result<u64, tonic::Status> {
    match req.extensions().get::<Actor>() {
        None => Err(tonic::Status::unauthenticated(
            "this call acts for a user: it needs the gateway's sluice-actor assertion",
        )),
        Some(Actor(id)) if *id == claimed => Ok(*id),
        Some(Actor(id)) => Err(tonic::Status::permission_denied(format!(
            "the request names user {claimed}, the caller acts for user {id}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &str) -> MeshAuth {
        MeshAuth::new(SecretString::from(secret.to_owned()))
    }

    fn signed(a: &MeshAuth, actor: Option<u64>) -> tonic::Request<()> {
        let mut req = tonic::Request::new(());
        a.sign(&mut req, actor);
        req
    }

    #[test]
    fn a_signed_call_passes_and_carries_its_actor() {
        let a = auth(DEV_SECRET);
        let req = a.check(signed(&a, Some(42))).unwrap();
        assert_eq!(acting_user(&req, 42).unwrap(), 42);
        assert_eq!(
            acting_user(&req, 43).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let req = a.check(signed(&a, None)).unwrap();
        assert_eq!(
            acting_user(&req, 42).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        // The secret never travels.
        let sent = signed(&a, Some(1));
        let text = format!("{:?}", sent.metadata());
        assert!(!text.contains(DEV_SECRET), "{text}");
    }

    #[test]
    fn unsigned_forged_and_expired_calls_are_refused() {
        let a = auth(DEV_SECRET);
        let code = |r: Result<tonic::Request<()>, tonic::Status>| r.unwrap_err().code();
        assert_eq!(
            code(a.check(tonic::Request::new(()))),
            tonic::Code::Unauthenticated
        );
        let other = auth("another-secret-another-secret-another!");
        assert_eq!(
            code(a.check(signed(&other, None))),
            tonic::Code::Unauthenticated
        );
        // A member's proof with an actor forged by another key.
        let mut req = signed(&a, None);
        let forged = other.actor_token(7, now_secs());
        req.metadata_mut()
            .insert(ACTOR_METADATA, forged.parse().unwrap());
        assert_eq!(code(a.check(req)), tonic::Code::Unauthenticated);
        // An actor assertion past its minute.
        let mut req = signed(&a, None);
        let old = a.actor_token(7, now_secs() - 2 * ACTOR_TTL_SECS);
        req.metadata_mut()
            .insert(ACTOR_METADATA, old.parse().unwrap());
        assert_eq!(code(a.check(req)), tonic::Code::Unauthenticated);
        // Changing the user id breaks the signature.
        let mut req = signed(&a, None);
        let token = a.actor_token(7, now_secs()).replacen('7', "8", 1);
        req.metadata_mut()
            .insert(ACTOR_METADATA, token.parse().unwrap());
        assert_eq!(code(a.check(req)), tonic::Code::Unauthenticated);
    }

    #[test]
    fn the_secret_has_no_default_outside_dev_mode_and_is_never_replaced() {
        assert!(MeshSettings::default().resolve_secret(false).is_err());
        assert_eq!(
            MeshSettings::default()
                .resolve_secret(true)
                .unwrap()
                .expose_secret(),
            DEV_SECRET
        );
        let short = MeshSettings {
            secret: Some(SecretString::from("short")),
        };
        assert!(short.resolve_secret(true).is_err());
    }
}
