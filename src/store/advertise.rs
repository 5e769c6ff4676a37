//! The default cluster's entry address follows the gateway that serves it.
//!
//! Documented in `docs/gateway.md`, "Entry address". A gateway started
//! without `--cluster` serves every model, and
//! its listen address is the entry address of the default cluster `local`,
//! so the access path the console and `model list` show is the one callers
//! can actually use. An operator who has pointed `local` somewhere callers
//! reach it through (a load balancer, a DNS name: any host that is not
//! loopback) keeps that address; only a loopback entry (the seeded default
//! or one a previous run adopted) follows, and only when the gateway
//! listens on a concrete address (not `0.0.0.0`, which says nothing about
//! how callers reach it). When another gateway serving every model already
//! reports in (replicas started side by side), the first one keeps the
//! entry, so it does not flip with every start.

use std::net::SocketAddr;

use super::{Store, StoreError};
use crate::domain::{Change, Channel, Cluster, Origin, now_ms};

/// Whether `entry` (a cluster's entry address) names this machine's loopback.
fn is_loopback_entry(entry: &str) -> bool {
    let Ok(url) = url::Url::parse(entry) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Point the `local` cluster at `listen` (scheme from `tls`) when the rules
/// above allow it. Returns the new entry address when it changed.
pub fn adopt_local_entry(
    store: &dyn Store,
    listen: SocketAddr,
    tls: bool,
) -> Result<Option<String>, StoreError> {
    if listen.ip().is_unspecified() {
        return Ok(None);
    }
    let scheme = if tls { "https" } else { "http" };
    let wanted = format!("{scheme}://{listen}");
    let reg = store.load()?;
    let Some(local) = reg.clusters.get(Cluster::DEFAULT) else {
        return Ok(None);
    };
    if local.entry_address == wanted || !is_loopback_entry(&local.entry_address) {
        return Ok(None);
    }
    let now = now_ms();
    let listen_s = listen.to_string();
    if store
        .reports()?
        .iter()
        .any(|r| r.is_fresh(now) && r.cluster.is_none() && r.listen != listen_s)
    {
        return Ok(None);
    }
    let by = Origin::user(crate::paths::os_user(), Channel::Gateway);
    store.apply(
        vec![
            // Another writer may have re-pointed it meanwhile: then theirs stands.
            Change::ExpectRevision {
                revision: reg.revision,
            },
            Change::UpdateCluster {
                name: Cluster::DEFAULT.to_string(),
                cluster: Cluster {
                    name: Cluster::DEFAULT.to_string(),
                    entry_address: wanted.clone(),
                },
            },
        ],
        &by,
    )?;
    Ok(Some(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn entry(store: &SqliteStore) -> String {
        store.load().unwrap().clusters[Cluster::DEFAULT]
            .entry_address
            .clone()
    }

    fn set_entry(store: &SqliteStore, e: &str) {
        store
            .apply(
                vec![Change::UpdateCluster {
                    name: Cluster::DEFAULT.into(),
                    cluster: Cluster {
                        name: Cluster::DEFAULT.into(),
                        entry_address: e.into(),
                    },
                }],
                &Origin::user("test", Channel::Cli),
            )
            .unwrap();
    }

    #[test]
    fn a_loopback_entry_follows_the_gateway_and_an_operator_address_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let addr: SocketAddr = "127.0.0.1:18080".parse().unwrap();
        assert_eq!(
            adopt_local_entry(&store, addr, false).unwrap().as_deref(),
            Some("http://127.0.0.1:18080")
        );
        assert_eq!(entry(&store), "http://127.0.0.1:18080");
        // Same address again: nothing to do, the revision stays.
        let rev = store.revision().unwrap();
        assert_eq!(adopt_local_entry(&store, addr, false).unwrap(), None);
        assert_eq!(store.revision().unwrap(), rev);
        // TLS listener: https.
        adopt_local_entry(&store, addr, true).unwrap();
        assert_eq!(entry(&store), "https://127.0.0.1:18080");
        // localhost counts as loopback too.
        set_entry(&store, "http://localhost:8080");
        adopt_local_entry(&store, addr, false).unwrap();
        assert_eq!(entry(&store), "http://127.0.0.1:18080");
        // An address the operator set for callers is never overwritten.
        set_entry(&store, "https://gw.example.com");
        assert_eq!(adopt_local_entry(&store, addr, false).unwrap(), None);
        assert_eq!(entry(&store), "https://gw.example.com");
    }

    #[test]
    fn a_second_gateway_serving_every_model_leaves_the_first_ones_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let first: SocketAddr = "127.0.0.1:18080".parse().unwrap();
        adopt_local_entry(&store, first, false).unwrap();
        store
            .put_report(&crate::domain::GatewayReport {
                id: "a".into(),
                cluster: None,
                listen: first.to_string(),
                admin: None,
                applied_revision: 0,
                started_ms: now_ms(),
                heartbeat_ms: now_ms(),
                limiter: Default::default(),
                endpoints: vec![],
            })
            .unwrap();
        let second: SocketAddr = "127.0.0.1:18081".parse().unwrap();
        assert_eq!(adopt_local_entry(&store, second, false).unwrap(), None);
        assert_eq!(entry(&store), "http://127.0.0.1:18080");
    }

    #[test]
    fn a_wildcard_listener_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let before = entry(&store);
        let addr: SocketAddr = "0.0.0.0:18080".parse().unwrap();
        assert_eq!(adopt_local_entry(&store, addr, false).unwrap(), None);
        assert_eq!(entry(&store), before);
    }
}
