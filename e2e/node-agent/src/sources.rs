//! The ConfigMaps and Secrets a pod reads (through env, envFrom and volumes), fetched once per
//! container start or volume refresh so that resolving them stays a pure function.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use kube::Api;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    // The kubelet's wording, so that the messages read the same as on a real node.
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
}

/// A ConfigMap's or Secret's entries as bytes.
pub type Entries = BTreeMap<String, Vec<u8>>;

#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub namespace: String,
    pub config_maps: BTreeMap<String, Entries>,
    pub secrets: BTreeMap<String, Entries>,
}

impl Sources {
    /// All entries of a ConfigMap; None when it is absent and `optional`.
    pub fn config_map(&self, name: &str, optional: bool) -> Result<Option<&Entries>, SourceError> {
        match self.config_maps.get(name) {
            Some(entries) => Ok(Some(entries)),
            None if optional => Ok(None),
            None => Err(SourceError::ConfigMapNotFound(name.to_string())),
        }
    }

    pub fn secret(&self, name: &str, optional: bool) -> Result<Option<&Entries>, SourceError> {
        match self.secrets.get(name) {
            Some(entries) => Ok(Some(entries)),
            None if optional => Ok(None),
            None => Err(SourceError::SecretNotFound(name.to_string())),
        }
    }

    /// One key; None when the object or the key is missing and `optional`.
    pub fn config_map_key(
        &self,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<&[u8]>, SourceError> {
        let entries = self.config_map(name, optional)?;
        self.key("ConfigMap", name, entries, key, optional)
    }

    pub fn secret_key(
        &self,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<&[u8]>, SourceError> {
        let entries = self.secret(name, optional)?;
        self.key("Secret", name, entries, key, optional)
    }

    fn key<'a>(
        &self,
        kind: &'static str,
        name: &str,
        entries: Option<&'a Entries>,
        key: &str,
        optional: bool,
    ) -> Result<Option<&'a [u8]>, SourceError> {
        let Some(entries) = entries else {
            return Ok(None);
        };
        match entries.get(key) {
            Some(value) => Ok(Some(value)),
            None if optional => Ok(None),
            None => Err(SourceError::KeyNotFound {
                kind,
                namespace: self.namespace.clone(),
                name: name.to_string(),
                key: key.to_string(),
            }),
        }
    }

    /// Fetches every ConfigMap and Secret the pod spec names; missing ones are left out (their
    /// users decide whether that is an error).
    pub async fn fetch(
        client: &kube::Client,
        namespace: &str,
        spec: &PodSpec,
    ) -> Result<Self, kube::Error> {
        let (config_map_names, secret_names) = referenced(spec);
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let mut sources = Sources {
            namespace: namespace.to_string(),
            ..Sources::default()
        };
        for name in config_map_names {
            if let Some(cm) = config_maps.get_opt(&name).await? {
                sources.config_maps.insert(name, config_map_entries(cm));
            }
        }
        for name in secret_names {
            if let Some(secret) = secrets.get_opt(&name).await? {
                sources.secrets.insert(name, secret_entries(secret));
            }
        }
        Ok(sources)
    }
}

fn config_map_entries(cm: ConfigMap) -> Entries {
    let text = cm
        .data
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.into_bytes()));
    let binary = cm.binary_data.into_iter().flatten().map(|(k, v)| (k, v.0));
    text.chain(binary).collect()
}

fn secret_entries(secret: Secret) -> Entries {
    // `data` arrives base64-decoded (ByteString); `stringData` is write-only and never stored.
    secret
        .data
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// Names of the ConfigMaps and of the Secrets the spec refers to.
pub fn referenced(spec: &PodSpec) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for container in containers {
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                config_maps.insert(r.name.clone());
            }
            if let Some(r) = &from.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
        for source in container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref())
        {
            if let Some(r) = &source.config_map_key_ref {
                config_maps.insert(r.name.clone());
            }
            if let Some(r) = &source.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            config_maps.insert(cm.name.clone());
        }
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(name);
        }
        let projections = volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten());
        for projection in projections {
            if let Some(cm) = &projection.config_map {
                config_maps.insert(cm.name.clone());
            }
            if let Some(secret) = &projection.secret {
                secrets.insert(secret.name.clone());
            }
        }
    }
    (config_maps, secrets)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sources() -> Sources {
        Sources {
            namespace: "jobs".into(),
            config_maps: BTreeMap::from([(
                "job".into(),
                BTreeMap::from([
                    ("job.sql".into(), b"SELECT 1".to_vec()),
                    ("LEVEL".into(), b"debug".to_vec()),
                ]),
            )]),
            secrets: BTreeMap::from([(
                "s3".into(),
                BTreeMap::from([
                    ("AWS_ACCESS_KEY_ID".into(), b"minio".to_vec()),
                    ("dashed-key".into(), b"x".to_vec()),
                ]),
            )]),
        }
    }

    #[test]
    fn lookups_follow_optional() {
        let s = sources();
        assert_eq!(
            s.config_map_key("job", "LEVEL", false).unwrap(),
            Some(&b"debug"[..])
        );
        assert_eq!(s.config_map_key("job", "nope", true).unwrap(), None);
        assert_eq!(s.secret_key("gone", "k", true).unwrap(), None);
        assert_eq!(
            s.config_map_key("job", "nope", false)
                .unwrap_err()
                .to_string(),
            "couldn't find key nope in ConfigMap jobs/job"
        );
        assert_eq!(
            s.secret("gone", false).unwrap_err().to_string(),
            "secret \"gone\" not found"
        );
    }

    #[test]
    fn referenced_collects_env_and_volume_sources() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{
                "name": "main",
                "envFrom": [{"secretRef": {"name": "s3"}}],
                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-a", "key": "k"}}}]
            }],
            "volumes": [
                {"name": "job", "configMap": {"name": "job"}},
                {"name": "tls", "secret": {"secretName": "tls"}},
                {"name": "api", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}}
            ]
        }))
        .unwrap();
        let (cms, secrets) = referenced(&spec);
        assert_eq!(
            cms.into_iter().collect::<Vec<_>>(),
            ["cm-a", "job", "kube-root-ca.crt"]
        );
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["s3", "tls"]);
    }
}
