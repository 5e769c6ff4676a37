//! Clusters: their shape, and adding, editing and deleting them (the default
//! cluster `local` stays, and a cluster models enter through keeps its name).

use super::checks::{existing, name_free};
use super::{Outcome, Registry, Touched};
use crate::domain::entities::Cluster;
use crate::domain::error::{DomainError, FieldError};
use crate::domain::validate;

const WHAT: &str = "cluster";

/// A cluster's name, and its entry address: the base URL of its gateway.
pub fn validate(c: &Cluster) -> Vec<FieldError> {
    let mut out = Vec::new();
    validate::name("name", &c.name, &mut out);
    validate::base_url("entry_address", &c.entry_address, &mut out);
    if c.entry_address.trim_end_matches('/').ends_with("/v1") {
        out.push(FieldError::new(
            "entry_address",
            "must be the gateway's base address without /v1 (the access path adds it)",
        ));
    }
    out
}

impl Registry {
    pub(super) fn add_cluster(
        &mut self,
        c: Cluster,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        DomainError::check(validate(&c))?;
        name_free(&self.clusters, WHAT, &c.name)?;
        touched.clusters.insert(c.name.clone());
        self.clusters.insert(c.name.clone(), c);
        Ok(Outcome::Done)
    }

    /// Replace cluster `name`. Its models' access paths change with it, so
    /// they count as touched (gateways reload them).
    pub(super) fn update_cluster(
        &mut self,
        name: String,
        cluster: Cluster,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        DomainError::check(validate(&cluster))?;
        if *existing(&self.clusters, "name", WHAT, &name)? == cluster {
            return Ok(Outcome::Unchanged);
        }
        if cluster.name != name {
            if name == Cluster::DEFAULT {
                return Err(DomainError::refused(
                    "name",
                    "'local' is the default cluster; it cannot be renamed",
                ));
            }
            name_free(&self.clusters, WHAT, &cluster.name)?;
            let users = self.models_in_cluster(&name);
            if !users.is_empty() {
                return Err(DomainError::refused(
                    "name",
                    format!(
                        "models use cluster '{name}' ({}); it cannot be renamed",
                        users.join(", ")
                    ),
                ));
            }
        }
        self.clusters.remove(&name);
        touched.clusters.insert(name.clone());
        touched.clusters.insert(cluster.name.clone());
        for m in self.models_in_cluster(&cluster.name) {
            touched.models.insert(m);
        }
        self.clusters.insert(cluster.name.clone(), cluster);
        Ok(Outcome::Done)
    }

    pub(super) fn delete_cluster(
        &mut self,
        name: String,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        existing(&self.clusters, "name", WHAT, &name)?;
        if name == Cluster::DEFAULT {
            return Err(DomainError::refused(
                "name",
                "'local' is the default cluster; it cannot be deleted",
            ));
        }
        let users = self.models_in_cluster(&name);
        if !users.is_empty() {
            return Err(DomainError::refused(
                "name",
                format!(
                    "cluster '{name}' is the entry cluster of {}; move or delete them first",
                    users.join(", ")
                ),
            ));
        }
        self.clusters.remove(&name);
        touched.clusters.insert(name);
        Ok(Outcome::Done)
    }
}
