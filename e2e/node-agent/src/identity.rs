//! A pod's own identity towards the API server: service-account tokens bound to the pod
//! (TokenRequest, as the kubelet does), and a kubeconfig that `kube::Client::try_default()` in
//! the pod's process picks up through KUBECONFIG, so the process acts as the pod's service
//! account and RBAC applies to it.

use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use kube::config::Kubeconfig;

use crate::env::EnvVars;
use crate::volumes::TokenKey;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("kubeconfig has no current context with a cluster and a server")]
    NoCluster,
    #[error("API server URL {0:?} has no host")]
    BadServer(String),
    #[error("token for service account {namespace}/{account}: {source}")]
    Token {
        namespace: String,
        account: String,
        source: kube::Error,
    },
    #[error("token for service account {0}: the API server returned no token")]
    EmptyToken(String),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, #[source] std::io::Error),
}

/// How pods reach the API server: the agent's own cluster entry, without its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiServer {
    pub server: String,
    certificate_authority: Option<String>,
    certificate_authority_data: Option<String>,
    insecure_skip_tls_verify: bool,
    host: String,
    port: u16,
}

impl ApiServer {
    pub fn from_kubeconfig(config: &Kubeconfig) -> Result<Self, IdentityError> {
        let context = config
            .current_context
            .as_ref()
            .and_then(|name| config.contexts.iter().find(|c| &c.name == name))
            .and_then(|c| c.context.as_ref())
            .ok_or(IdentityError::NoCluster)?;
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.as_ref())
            .ok_or(IdentityError::NoCluster)?;
        let server = cluster.server.clone().ok_or(IdentityError::NoCluster)?;
        let (host, port) = host_port(&server)?;
        Ok(Self {
            certificate_authority: cluster.certificate_authority.clone(),
            certificate_authority_data: cluster.certificate_authority_data.clone(),
            insecure_skip_tls_verify: cluster.insecure_skip_tls_verify.unwrap_or(false),
            server,
            host,
            port,
        })
    }

    /// KUBERNETES_SERVICE_HOST and _PORT, as the kubelet sets them for the `kubernetes`
    /// Service; here they point at the API server itself.
    pub fn service_env(&self) -> EnvVars {
        EnvVars::from([
            ("KUBERNETES_SERVICE_HOST", self.host.clone()),
            ("KUBERNETES_SERVICE_PORT", self.port.to_string()),
            ("KUBERNETES_SERVICE_PORT_HTTPS", self.port.to_string()),
        ])
    }

    /// A kubeconfig for the pod's process: this server, its CA, the token in `token_file`
    /// (re-read by kube-rs when it changes, so refreshed tokens are picked up).
    pub fn pod_kubeconfig(&self, namespace: &str, token_file: &Path) -> serde_json::Value {
        let mut cluster = serde_json::json!({ "server": self.server });
        if let Some(data) = &self.certificate_authority_data {
            cluster["certificate-authority-data"] = data.clone().into();
        } else if let Some(path) = &self.certificate_authority {
            cluster["certificate-authority"] = path.clone().into();
        }
        if self.insecure_skip_tls_verify {
            cluster["insecure-skip-tls-verify"] = true.into();
        }
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "cluster", "cluster": cluster }],
            "users": [{ "name": "pod", "user": { "tokenFile": token_file } }],
            "contexts": [{
                "name": "pod",
                "context": { "cluster": "cluster", "user": "pod", "namespace": namespace }
            }],
            "current-context": "pod"
        })
    }
}

/// `https://host:port/...` → (host, port), the port defaulting by scheme.
fn host_port(server: &str) -> Result<(String, u16), IdentityError> {
    let bad = || IdentityError::BadServer(server.to_string());
    let (scheme, rest) = server.split_once("://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or_default();
    let default_port = if scheme == "http" { 80 } else { 443 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => default_port,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The pod's service account: `serviceAccountName`, or `default`.
pub fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// Asks the API server for a token of the pod's service account, bound to the pod so that it
/// stops working when the pod is deleted.
pub async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    key: &TokenKey,
) -> Result<String, IdentityError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let account = service_account(pod);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: key.audience.iter().cloned().collect(),
            expiration_seconds: Some(key.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    let response = accounts
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|source| IdentityError::Token {
            namespace: namespace.clone(),
            account: account.clone(),
            source,
        })?;
    response
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or(IdentityError::EmptyToken(account))
}

/// Writes `contents` to `path` through a rename, so that readers never see a partial file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| IdentityError::Write(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(cluster: serde_json::Value) -> Kubeconfig {
        serde_json::from_value(serde_json::json!({
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "contexts": [{"name": "admin", "context": {"cluster": "e2e", "user": "admin"}}],
            "current-context": "admin",
            "users": [{"name": "admin", "user": {"token": "secret"}}]
        }))
        .unwrap()
    }

    #[test]
    fn server_env_and_pod_kubeconfig_without_the_agents_credentials() {
        let api = ApiServer::from_kubeconfig(&kubeconfig(serde_json::json!({
            "server": "https://127.0.0.1:6443",
            "certificate-authority-data": "Q0E="
        })))
        .unwrap();
        let env = api.service_env();
        let env: Vec<(&str, &str)> = env.iter().collect();
        assert_eq!(
            env,
            [
                ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
                ("KUBERNETES_SERVICE_PORT", "6443"),
                ("KUBERNETES_SERVICE_PORT_HTTPS", "6443"),
            ]
        );
        let config = api.pod_kubeconfig("jobs", Path::new("/r/pods/u/kube/token"));
        let text = config.to_string();
        assert!(!text.contains("secret"), "{text}");
        // kube-rs reads it back as a kubeconfig with the pod's namespace and token file.
        let parsed: Kubeconfig = serde_json::from_value(config).unwrap();
        let context = parsed.contexts[0].context.as_ref().unwrap();
        assert_eq!(context.namespace.as_deref(), Some("jobs"));
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.token_file.as_deref(), Some("/r/pods/u/kube/token"));
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
    }

    #[test]
    fn host_and_port_of_server_urls() {
        let hp = |s: &str| host_port(s).map_err(|e| e.to_string());
        assert_eq!(
            hp("https://api.example:8443/x"),
            Ok(("api.example".into(), 8443))
        );
        assert_eq!(hp("https://10.0.0.1"), Ok(("10.0.0.1".into(), 443)));
        assert_eq!(hp("http://h"), Ok(("h".into(), 80)));
        assert_eq!(hp("https://[::1]:6443"), Ok(("::1".into(), 6443)));
        assert!(hp("127.0.0.1:6443").is_err());
        assert!(hp("https://:6443").is_err());
    }
}
