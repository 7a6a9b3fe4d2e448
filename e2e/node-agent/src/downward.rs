//! The downward API: a pod's own fields as strings, for `env[].valueFrom.fieldRef` and
//! `downwardAPI` volume files.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unsupported fieldRef {0:?}")]
pub struct FieldError(pub String);

/// What the pod object does not know yet when its processes start: the agent assigns the
/// address itself and reports it in the same status update that says Running.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub pod_ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
}

/// The value of `path` for this pod, as the kubelet gives it.
pub fn field_value(pod: &Pod, path: &str, addresses: Addresses) -> Result<String, FieldError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(text(meta.labels.as_ref().and_then(|m| m.get(key))));
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(text(meta.annotations.as_ref().and_then(|m| m.get(key))));
    }
    Ok(match path {
        "metadata.name" => text(meta.name.as_ref()),
        "metadata.namespace" => text(meta.namespace.as_ref()),
        "metadata.uid" => text(meta.uid.as_ref()),
        // Whole maps are only valid in volume files, one `key="value"` a line.
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => text(spec.and_then(|s| s.node_name.as_ref())),
        "spec.serviceAccountName" => text(spec.and_then(|s| s.service_account_name.as_ref())),
        "status.podIP" | "status.podIPs" => addresses.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => addresses.host_ip.to_string(),
        _ => return Err(FieldError(path.to_string())),
    })
}

/// `key` of `prefix['key']`.
fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}\n"))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "w-1", "namespace": "jobs", "uid": "u-1",
                "labels": {"app": "spate", "role": "worker"},
                "annotations": {"a": "b"}
            },
            "spec": {
                "nodeName": "node-1", "serviceAccountName": "sa",
                "containers": [{"name": "main", "image": "spate"}]
            }
        }))
        .unwrap()
    }

    pub const ADDRESSES: Addresses = Addresses {
        pod_ip: Ipv4Addr::new(127, 1, 0, 9),
        host_ip: Ipv4Addr::new(127, 0, 0, 1),
    };

    #[test]
    fn resolves_the_kubelet_field_paths() {
        let pod = pod();
        let v = |p: &str| field_value(&pod, p, ADDRESSES).unwrap();
        assert_eq!(v("metadata.name"), "w-1");
        assert_eq!(v("metadata.namespace"), "jobs");
        assert_eq!(v("metadata.uid"), "u-1");
        assert_eq!(v("metadata.labels['role']"), "worker");
        assert_eq!(v("metadata.labels['absent']"), "");
        assert_eq!(v("metadata.annotations['a']"), "b");
        assert_eq!(v("metadata.labels"), "app=\"spate\"\nrole=\"worker\"\n");
        assert_eq!(v("spec.nodeName"), "node-1");
        assert_eq!(v("spec.serviceAccountName"), "sa");
        assert_eq!(v("status.podIP"), "127.1.0.9");
        assert_eq!(v("status.hostIP"), "127.0.0.1");
        assert_eq!(
            field_value(&pod, "metadata.generation", ADDRESSES),
            Err(FieldError("metadata.generation".into()))
        );
    }
}
