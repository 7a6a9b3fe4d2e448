//! A container's environment and the `$(VAR)` expansion of its env values, command and args,
//! with the kubelet's rules.

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::downward::{self, Addresses, FieldError};
use crate::sources::{SourceError, Sources};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("env {name}: {source}")]
    Field { name: String, source: FieldError },
    #[error("env {0}: value of {1} is not UTF-8")]
    NotUtf8(String, String),
}

/// Ordered name → value pairs; a later definition of a name replaces the earlier one in place.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvVars(Vec<(String, String)>);

impl EnvVars {
    pub fn set(&mut self, name: &str, value: String) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn map_values(&mut self, f: impl Fn(&str) -> String) {
        for (_, value) in &mut self.0 {
            *value = f(value);
        }
    }
}

impl<const N: usize> From<[(&str, String); N]> for EnvVars {
    fn from(pairs: [(&str, String); N]) -> Self {
        let mut vars = EnvVars::default();
        for (name, value) in pairs {
            vars.set(name, value);
        }
        vars
    }
}

/// The container's environment: `base` (what the kubelet adds, like KUBERNETES_SERVICE_HOST),
/// then `envFrom` sources in order, then `env` entries, later ones overriding earlier ones.
/// Values of `env` expand `$(VAR)` against what is defined before them.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
    addresses: Addresses,
    base: EnvVars,
) -> Result<EnvVars, EnvError> {
    let mut vars = base;
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let entries = if let Some(r) = &from.config_map_ref {
            sources.config_map(&r.name, r.optional.unwrap_or(false))?
        } else if let Some(r) = &from.secret_ref {
            sources.secret(&r.name, r.optional.unwrap_or(false))?
        } else {
            None
        };
        // Every key is a valid variable name: keys are `[-._a-zA-Z0-9]+`, and names may be
        // any printable ASCII but `=` since Kubernetes 1.32.
        for (key, value) in entries.into_iter().flatten() {
            let name = format!("{prefix}{key}");
            vars.set(&name, utf8(&name, key, value)?);
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => expand(var.value.as_deref().unwrap_or(""), |n| vars.get(n)),
            Some(source) => {
                let resolved = if let Some(f) = &source.field_ref {
                    Some(
                        downward::field_value(pod, &f.field_path, addresses).map_err(|e| {
                            EnvError::Field {
                                name: var.name.clone(),
                                source: e,
                            }
                        })?,
                    )
                } else if let Some(r) = &source.config_map_key_ref {
                    sources
                        .config_map_key(&r.name, &r.key, r.optional.unwrap_or(false))?
                        .map(|v| utf8(&var.name, &r.key, v))
                        .transpose()?
                } else if let Some(r) = &source.secret_key_ref {
                    sources
                        .secret_key(&r.name, &r.key, r.optional.unwrap_or(false))?
                        .map(|v| utf8(&var.name, &r.key, v))
                        .transpose()?
                } else {
                    // resourceFieldRef (limits and requests): processes have no limits here.
                    Some(String::new())
                };
                // An optional reference that is missing leaves the variable undefined.
                match resolved {
                    Some(value) => value,
                    None => continue,
                }
            }
        };
        vars.set(&var.name, value);
    }
    Ok(vars)
}

fn utf8(name: &str, key: &str, value: &[u8]) -> Result<String, EnvError> {
    String::from_utf8(value.to_vec()).map_err(|_| EnvError::NotUtf8(name.into(), key.into()))
}

/// Kubernetes' `$(VAR)` expansion: a defined `$(VAR)` becomes its value, an undefined one stays
/// as written, `$$` is a literal `$` (so `$$(VAR)` gives `$(VAR)`), any other `$` is kept.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downward::tests::{ADDRESSES, pod};
    use crate::sources::tests::sources;

    fn lookup(name: &str) -> Option<&'static str> {
        match name {
            "A" => Some("1"),
            "EMPTY" => Some(""),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let cases = [
            ("$(A)", "1"),
            ("x$(A)y$(A)", "x1y1"),
            ("$(EMPTY)-", "-"),
            ("$(B)", "$(B)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$1"),
            ("$$", "$"),
            ("a$b", "a$b"),
            ("$", "$"),
            ("trailing $", "trailing $"),
            ("$(A", "$(A"),
            ("$()", "$()"),
            ("no vars", "no vars"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, lookup), want, "{input}");
        }
    }

    fn container(env: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({"name": "main", "image": "spate", "env": env}))
            .unwrap()
    }

    #[test]
    fn env_values_refs_and_order() {
        let mut c = container(serde_json::json!([
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "ADDR", "value": "$(IP):6123"},
            {"name": "LATER", "value": "$(DEFINED_AFTER)"},
            {"name": "DEFINED_AFTER", "value": "x"},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "job", "key": "LEVEL"}}},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "nope", "optional": true}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "AWS_ACCESS_KEY_ID", "value": "override"},
            {"name": "HOST", "value": "$(KUBERNETES_SERVICE_HOST)"}
        ]));
        c.env_from = serde_json::from_value(serde_json::json!([
            {"secretRef": {"name": "s3"}},
            {"configMapRef": {"name": "job"}, "prefix": "CM_"}
        ]))
        .unwrap();
        let base = EnvVars::from([("KUBERNETES_SERVICE_HOST", "127.0.0.1".to_string())]);
        let env = container_env(&pod(), &c, &sources(), ADDRESSES, base).unwrap();
        let got: Vec<(&str, &str)> = env.iter().collect();
        assert_eq!(
            got,
            [
                ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
                ("AWS_ACCESS_KEY_ID", "override"),
                ("dashed-key", "x"),
                ("CM_LEVEL", "debug"),
                ("CM_job.sql", "SELECT 1"),
                ("POD", "w-1"),
                ("IP", "127.1.0.9"),
                ("ADDR", "127.1.0.9:6123"),
                ("LATER", "$(DEFINED_AFTER)"),
                ("DEFINED_AFTER", "x"),
                ("LEVEL", "debug"),
                ("KEY", "minio"),
                ("CPU", ""),
                ("HOST", "127.0.0.1"),
            ]
        );
    }

    #[test]
    fn missing_required_refs_are_errors() {
        let c = container(serde_json::json!([
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}
        ]));
        let err = container_env(&pod(), &c, &sources(), ADDRESSES, EnvVars::default());
        assert_eq!(
            err.unwrap_err().to_string(),
            "configmap \"absent\" not found"
        );
        let c = container(serde_json::json!([
            {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}
        ]));
        let err = container_env(&pod(), &c, &sources(), ADDRESSES, EnvVars::default());
        assert_eq!(
            err.unwrap_err().to_string(),
            "env X: unsupported fieldRef \"spec.hostname\""
        );
    }
}
