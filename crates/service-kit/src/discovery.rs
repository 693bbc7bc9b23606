//! Service discovery through etcd: each gRPC service instance registers its
//! address under a lease, the gateway watches the registry and balances
//! over the live instances (issue #18; the original system registered its
//! services in etcd too).
//!
//! # Registry layout
//! `<prefix><service>/<address>` → `<address>`, e.g.
//! `/sluice/services/user-service/http://127.0.0.1:8080`, each key attached
//! to its instance's lease. The prefix is configurable (tests use one of
//! their own).
//!
//! # Registration ([`spawn_registration`])
//! Once the instance is ready (its MySQL answers), it grants a lease of
//! `lease_ttl` (2 s by default, etcd's smallest), puts its key and keeps the
//! lease alive every third of the TTL. A killed instance's key goes when the
//! lease expires; a stopped one revokes its lease first, so the gateway
//! stops sending to it before it drains. etcd being down never stops the
//! service: registration is retried with backoff, and a lost lease (etcd
//! restarted, keep-alives failing for longer than the TTL) is granted anew.
//!
//! # Watching ([`spawn_watch`])
//! Lists the service's keys, then watches them from the next revision: a
//! put inserts the instance into the caller's [`Pool`], a delete removes it.
//! A broken watch is listed and watched again; meanwhile the last known
//! instances stay in use (etcd down does not take the services away). The
//! pool itself leaves out an instance whose connection fails, at once, and
//! sends the calls it refused to another (see [`crate::pool`]).

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::pool::Pool;

/// Where services register (`<PREFIX>_DISCOVERY__…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoverySettings {
    /// etcd endpoints, comma-separated (`http://127.0.0.1:2379`); empty:
    /// no registration, and the gateway uses its static addresses.
    pub etcd: String,
    /// Key prefix of the registry.
    pub prefix: String,
    /// The address other processes reach this instance at; default
    /// `http://<the bound gRPC address>`.
    pub advertise: Option<String>,
    /// Lease time to live: how long a killed instance stays registered.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        Self {
            etcd: String::new(),
            prefix: "/sluice/services/".into(),
            advertise: None,
            lease_ttl: Duration::from_secs(2),
        }
    }
}

impl DiscoverySettings {
    /// The etcd endpoints; empty when discovery is off.
    pub fn endpoints(&self) -> Vec<String> {
        self.etcd
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn enabled(&self) -> bool {
        !self.endpoints().is_empty()
    }

    /// The registry prefix of `service`'s instances (`…/user-service/`).
    pub fn service_prefix(&self, service: &str) -> String {
        let base = self.prefix.trim_end_matches('/');
        format!("{base}/{service}/")
    }

    /// Checks the lease TTL (whole seconds, at least 2: etcd's floor with
    /// its default election timeout) and the prefix.
    pub fn validate(&self) -> Result<(), common::config::ConfigError> {
        let invalid = |m: String| Err(common::config::ConfigError::Invalid(m));
        if self.lease_ttl < Duration::from_secs(2) || self.lease_ttl.subsec_nanos() != 0 {
            return invalid(format!(
                "discovery.lease_ttl must be whole seconds, 2 s or more (etcd's smallest lease), not {:?}",
                self.lease_ttl
            ));
        }
        if !self.prefix.starts_with('/') {
            return invalid(format!(
                "discovery.prefix must start with '/', not {:?}",
                self.prefix
            ));
        }
        if let Some(a) = &self.advertise
            && !(a.starts_with("http://") || a.starts_with("https://"))
        {
            return invalid(format!(
                "discovery.advertise must be an http:// or https:// address, not {a:?}"
            ));
        }
        Ok(())
    }
}

/// Connects to etcd with short timeouts (a dead etcd is noticed quickly).
async fn connect(endpoints: &[String]) -> Result<Client, etcd_client::Error> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    Client::connect(endpoints, Some(options)).await
}

/// Registers `address` as an instance of `service` once `ready` holds,
/// keeps it registered until `stop` resolves, then revokes the lease
/// (withdraws) and returns. Runs in its own task; errors are logged and
/// retried, never returned.
pub fn spawn_registration(
    settings: DiscoverySettings,
    service: &'static str,
    address: String,
    ready: common::admin::Readiness,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let endpoints = settings.endpoints();
        let key = format!("{}{address}", settings.service_prefix(service));
        tokio::pin!(stop);
        // Ready first: a registered instance gets traffic at once.
        loop {
            if ready.get() {
                break;
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let mut pause = Duration::from_millis(200);
        loop {
            let held = hold(&endpoints, &key, &address, settings.lease_ttl);
            tokio::select! {
                Err(e) = held => {
                    tracing::warn!(error = %e, %key, retry_in = ?pause, "etcd registration lost; registering again");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                _ = &mut stop => {
                    withdraw(&endpoints, &key).await;
                    return;
                }
            }
        }
    })
}

/// Grants a lease, puts the instance's key under it and keeps the lease
/// alive; returns only when that fails (etcd gone, the lease expired).
async fn hold(
    endpoints: &[String],
    key: &str,
    address: &str,
    ttl: Duration,
) -> Result<std::convert::Infallible, etcd_client::Error> {
    let mut client = connect(endpoints).await?;
    let lease = client.lease_grant(ttl.as_secs() as i64, None).await?.id();
    client
        .put(key, address, Some(PutOptions::new().with_lease(lease)))
        .await?;
    tracing::info!(%key, lease, "registered in etcd");
    let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
    loop {
        tokio::time::sleep(ttl / 3).await;
        keeper.keep_alive().await?;
        match answers.message().await? {
            Some(a) if a.ttl() > 0 => {}
            _ => {
                return Err(etcd_client::Error::LeaseKeepAliveError(
                    "the lease expired".into(),
                ));
            }
        }
    }
}

/// Removes the instance's key (and with it what the gateway sends to it);
/// its lease then expires on its own.
async fn withdraw(endpoints: &[String], key: &str) {
    let res = async {
        let mut client = connect(endpoints).await?;
        client.delete(key, None).await?;
        Ok::<(), etcd_client::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(2), res).await {
        Ok(Ok(())) => tracing::info!(%key, "withdrawn from etcd"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %key, "cannot withdraw from etcd; the lease expires on its own")
        }
        Err(_) => {
            tracing::warn!(%key, "withdrawing from etcd timed out; the lease expires on its own")
        }
    }
}

/// Keeps `pool` equal to `service`'s registered instances for as long as
/// the process runs: the current ones, then every registration and
/// withdrawal. `channel` turns an address into the instance's channel
/// (timeouts as for a static address); `None` leaves an invalid address out.
pub fn spawn_watch(
    settings: DiscoverySettings,
    service: &'static str,
    pool: Pool,
    channel: impl Fn(&str) -> Option<Channel> + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let endpoints = settings.endpoints();
        let prefix = settings.service_prefix(service);
        let mut live: BTreeSet<String> = BTreeSet::new();
        let mut pause = Duration::from_millis(200);
        loop {
            if let Err(e) = watch_instances(&endpoints, &prefix, &mut live, &pool, &channel).await {
                tracing::warn!(error = %e, service, retry_in = ?pause, "etcd watch broken; keeping the {} known instance(s)", live.len());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    })
}

/// One list-then-watch round (see the module doc); returns when the watch
/// breaks.
async fn watch_instances(
    endpoints: &[String],
    prefix: &str,
    live: &mut BTreeSet<String>,
    pool: &Pool,
    channel: &(impl Fn(&str) -> Option<Channel> + Send + Sync),
) -> Result<(), etcd_client::Error> {
    let mut client = connect(endpoints).await?;
    let listed = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = listed.header().map_or(0, |h| h.revision());
    let mut now = BTreeSet::new();
    for kv in listed.kvs() {
        if let (Ok(key), Ok(address)) = (kv.key_str(), kv.value_str()) {
            now.insert(key.to_owned());
            if !live.contains(key) {
                insert(pool, channel, key, address);
            }
        }
    }
    for gone in live.difference(&now) {
        pool.remove(gone);
    }
    *live = now;
    tracing::info!(prefix, instances = live.len(), "watching etcd");
    let mut stream = client
        .watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    while let Some(resp) = stream.message().await? {
        if resp.canceled() {
            // Compacted past our revision, or cancelled by the server:
            // list and watch again.
            return Err(etcd_client::Error::WatchError("watch cancelled".into()));
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            match event.event_type() {
                EventType::Put => {
                    if let Ok(address) = kv.value_str() {
                        live.insert(key.to_owned());
                        insert(pool, channel, key, address);
                    }
                }
                EventType::Delete => {
                    if live.remove(key) {
                        tracing::info!(%key, "instance gone");
                        pool.remove(key);
                    }
                }
            }
        }
    }
    Err(etcd_client::Error::WatchError("watch stream ended".into()))
}

fn insert(
    pool: &Pool,
    channel: &(impl Fn(&str) -> Option<Channel> + Send + Sync),
    key: &str,
    address: &str,
) {
    match channel(address) {
        Some(c) => {
            tracing::info!(%key, address, "instance registered");
            pool.insert(key, c);
        }
        None => tracing::warn!(%key, address, "ignoring an instance with an invalid address"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_and_prefixes_end_with_the_service() {
        let s = DiscoverySettings {
            etcd: " http://a:2379, http://b:2379 ,".into(),
            ..DiscoverySettings::default()
        };
        assert_eq!(s.endpoints(), ["http://a:2379", "http://b:2379"]);
        assert!(s.enabled());
        assert_eq!(
            s.service_prefix("user-service"),
            "/sluice/services/user-service/"
        );
        assert!(!DiscoverySettings::default().enabled());
    }

    #[test]
    fn a_lease_below_two_seconds_or_a_relative_prefix_is_refused() {
        let mut s = DiscoverySettings {
            lease_ttl: Duration::from_millis(1500),
            ..DiscoverySettings::default()
        };
        assert!(s.validate().is_err());
        s.lease_ttl = Duration::from_secs(3);
        assert!(s.validate().is_ok());
        s.prefix = "sluice".into();
        assert!(s.validate().is_err());
        s.prefix = "/x/".into();
        s.advertise = Some("127.0.0.1:8080".into());
        assert!(s.validate().is_err());
    }
}
