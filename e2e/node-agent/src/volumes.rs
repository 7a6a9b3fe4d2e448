//! Volumes as directories under `ROOT/pods/<uid>/volumes/<name>`: what a volume holds is
//! computed from the fetched ConfigMaps, Secrets and tokens (pure), then written out.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, Pod, PodSpec, ServiceAccountTokenProjection, Volume,
};

use crate::downward::{self, Addresses, FieldError};
use crate::sources::{Entries, SourceError, Sources};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume}: {source}")]
    Source { volume: String, source: SourceError },
    #[error("volume {volume}: {source}")]
    Field { volume: String, source: FieldError },
    #[error("volume {volume}: path {path:?} must be relative, without '..'")]
    BadPath { volume: String, path: String },
    #[error("volume {0}: no token was requested for it")]
    MissingToken(String),
    #[error(
        "volume {0}: unsupported volume type (this node runs configMap, secret, emptyDir, hostPath, projected and downwardAPI)"
    )]
    Unsupported(String),
    #[error("volume {0}: cannot write {1}: {2}")]
    Write(String, PathBuf, #[source] std::io::Error),
}

/// A service-account token as a projected volume asks for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenKey {
    /// None: the API server's own audience.
    pub audience: Option<String>,
    pub expiration_seconds: i64,
}

/// The kubelet's default token lifetime for projected tokens.
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;

impl TokenKey {
    fn of(projection: &ServiceAccountTokenProjection) -> Self {
        Self {
            audience: projection.audience.clone().filter(|a| !a.is_empty()),
            expiration_seconds: projection
                .expiration_seconds
                .unwrap_or(DEFAULT_TOKEN_SECONDS),
        }
    }
}

/// The tokens the pod's projected volumes need.
pub fn token_requests(spec: &PodSpec) -> BTreeSet<TokenKey> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref())
        .map(TokenKey::of)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    /// Relative to the volume's directory.
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Files(Vec<VolumeFile>),
    /// Created empty once and never rewritten: the pod owns what is in it.
    EmptyDir,
    /// The host's own directory, used in place.
    HostPath(PathBuf),
}

/// What the pod needs to fill its volumes.
pub struct Inputs<'a> {
    pub pod: &'a Pod,
    pub sources: &'a Sources,
    pub tokens: &'a BTreeMap<TokenKey, String>,
    pub addresses: Addresses,
}

const DEFAULT_MODE: i32 = 0o644;

pub fn content<'a>(volume: &'a Volume, inputs: &Inputs<'a>) -> Result<Content, VolumeError> {
    let name = &volume.name;
    let source_err = |source| VolumeError::Source {
        volume: name.clone(),
        source,
    };
    let namespace = inputs.sources.namespace.as_str();
    let config_map = |name: &'a str, optional: Option<bool>, items: &'a Option<Vec<KeyToPath>>| {
        Ok::<_, VolumeError>(KeySource {
            kind: "ConfigMap",
            name,
            entries: inputs
                .sources
                .config_map(name, optional.unwrap_or(false))
                .map_err(source_err)?,
            items: items.as_deref(),
        })
    };
    let secret = |name: &'a str, optional: Option<bool>, items: &'a Option<Vec<KeyToPath>>| {
        Ok::<_, VolumeError>(KeySource {
            kind: "Secret",
            name,
            entries: inputs
                .sources
                .secret(name, optional.unwrap_or(false))
                .map_err(source_err)?,
            items: items.as_deref(),
        })
    };
    let mut files = Vec::new();
    if let Some(cm) = &volume.config_map {
        let source = config_map(&cm.name, cm.optional, &cm.items)?;
        let mode = cm.default_mode.unwrap_or(DEFAULT_MODE);
        key_files(name, source, mode, namespace, &mut files)?;
    } else if let Some(s) = &volume.secret {
        let source = secret(s.secret_name.as_deref().unwrap_or(""), s.optional, &s.items)?;
        let mode = s.default_mode.unwrap_or(DEFAULT_MODE);
        key_files(name, source, mode, namespace, &mut files)?;
    } else if volume.empty_dir.is_some() {
        return Ok(Content::EmptyDir);
    } else if let Some(host) = &volume.host_path {
        return Ok(Content::HostPath(PathBuf::from(&host.path)));
    } else if let Some(downward) = &volume.downward_api {
        let mode = downward.default_mode.unwrap_or(DEFAULT_MODE);
        downward_files(
            name,
            downward.items.iter().flatten(),
            mode,
            inputs,
            &mut files,
        )?;
    } else if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.unwrap_or(DEFAULT_MODE);
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                let source = config_map(&cm.name, cm.optional, &cm.items)?;
                key_files(name, source, mode, namespace, &mut files)?;
            } else if let Some(s) = &source.secret {
                let source = secret(&s.name, s.optional, &s.items)?;
                key_files(name, source, mode, namespace, &mut files)?;
            } else if let Some(downward) = &source.downward_api {
                downward_files(
                    name,
                    downward.items.iter().flatten(),
                    mode,
                    inputs,
                    &mut files,
                )?;
            } else if let Some(token) = &source.service_account_token {
                let value = inputs
                    .tokens
                    .get(&TokenKey::of(token))
                    .ok_or_else(|| VolumeError::MissingToken(name.clone()))?;
                files.push(VolumeFile {
                    path: relative(name, &token.path)?,
                    data: value.clone().into_bytes(),
                    mode: mode as u32,
                });
            } else {
                return Err(VolumeError::Unsupported(name.clone()));
            }
        }
    } else {
        return Err(VolumeError::Unsupported(name.clone()));
    }
    Ok(Content::Files(files))
}

/// A ConfigMap's or Secret's entries as a volume (or a projected volume's source) uses them.
struct KeySource<'a> {
    kind: &'static str,
    name: &'a str,
    /// None: the object is absent and optional.
    entries: Option<&'a Entries>,
    items: Option<&'a [KeyToPath]>,
}

/// Every key as a file named after it, or only the listed `items` at their paths.
fn key_files(
    volume: &str,
    source: KeySource,
    default_mode: i32,
    namespace: &str,
    out: &mut Vec<VolumeFile>,
) -> Result<(), VolumeError> {
    let Some(entries) = source.entries else {
        return Ok(());
    };
    match source.items {
        None => {
            for (key, data) in entries {
                out.push(VolumeFile {
                    path: relative(volume, key)?,
                    data: data.clone(),
                    mode: default_mode as u32,
                });
            }
        }
        Some(items) => {
            for item in items {
                let data = entries.get(&item.key).ok_or_else(|| VolumeError::Source {
                    volume: volume.to_string(),
                    source: SourceError::KeyNotFound {
                        kind: source.kind,
                        namespace: namespace.to_string(),
                        name: source.name.to_string(),
                        key: item.key.clone(),
                    },
                })?;
                out.push(VolumeFile {
                    path: relative(volume, &item.path)?,
                    data: data.clone(),
                    mode: item.mode.unwrap_or(default_mode) as u32,
                });
            }
        }
    }
    Ok(())
}

fn downward_files<'a>(
    volume: &str,
    items: impl Iterator<Item = &'a DownwardAPIVolumeFile>,
    default_mode: i32,
    inputs: &Inputs,
    out: &mut Vec<VolumeFile>,
) -> Result<(), VolumeError> {
    for item in items {
        // resourceFieldRef (limits, requests) is written empty: processes have no limits here.
        let value = match &item.field_ref {
            Some(f) => downward::field_value(inputs.pod, &f.field_path, inputs.addresses).map_err(
                |source| VolumeError::Field {
                    volume: volume.to_string(),
                    source,
                },
            )?,
            None => String::new(),
        };
        out.push(VolumeFile {
            path: relative(volume, &item.path)?,
            data: value.into_bytes(),
            mode: item.mode.unwrap_or(default_mode) as u32,
        });
    }
    Ok(())
}

fn relative(volume: &str, path: &str) -> Result<PathBuf, VolumeError> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(VolumeError::BadPath {
            volume: volume.to_string(),
            path: path.to_string(),
        })
    }
}

/// Writes `content` under `dir` and returns the directory the volume is at on the host.
/// Files are replaced by rename, so a process reading one while tokens are refreshed never
/// sees half a file.
pub fn write(volume: &str, dir: &Path, content: &Content) -> Result<PathBuf, VolumeError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e| VolumeError::Write(volume.to_string(), path, e)
    };
    match content {
        Content::HostPath(path) => Ok(path.clone()),
        Content::EmptyDir => {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            Ok(dir.to_path_buf())
        }
        Content::Files(files) => {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            for file in files {
                let target = dir.join(&file.path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                let tmp = target.with_file_name(format!(
                    ".{}.tmp",
                    target.file_name().unwrap_or_default().to_string_lossy()
                ));
                std::fs::write(&tmp, &file.data).map_err(io_err(&tmp))?;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file.mode))
                    .map_err(io_err(&tmp))?;
                std::fs::rename(&tmp, &target).map_err(io_err(&target))?;
            }
            Ok(dir.to_path_buf())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downward::tests::{ADDRESSES, pod};
    use crate::sources::tests::sources;

    fn volume(json: serde_json::Value) -> Volume {
        serde_json::from_value(json).unwrap()
    }

    fn files_of(c: Content) -> Vec<(String, String, u32)> {
        let Content::Files(files) = c else {
            panic!("{c:?}")
        };
        files
            .into_iter()
            .map(|f| {
                (
                    f.path.to_string_lossy().into_owned(),
                    String::from_utf8(f.data).unwrap(),
                    f.mode,
                )
            })
            .collect()
    }

    fn with_inputs<T>(f: impl FnOnce(&Inputs) -> T) -> T {
        let pod = pod();
        let sources = sources();
        let tokens = BTreeMap::from([(
            TokenKey {
                audience: None,
                expiration_seconds: 3607,
            },
            "tok".to_string(),
        )]);
        f(&Inputs {
            pod: &pod,
            sources: &sources,
            tokens: &tokens,
            addresses: ADDRESSES,
        })
    }

    #[test]
    fn config_map_all_keys_or_items() {
        with_inputs(|inputs| {
            let all = content(
                &volume(serde_json::json!({"name": "job", "configMap": {"name": "job"}})),
                inputs,
            )
            .unwrap();
            assert_eq!(
                files_of(all),
                [
                    ("LEVEL".into(), "debug".into(), 0o644),
                    ("job.sql".into(), "SELECT 1".into(), 0o644)
                ]
            );
            let items = content(
                &volume(serde_json::json!({"name": "job", "configMap": {
                    "name": "job", "defaultMode": 0o600,
                    "items": [{"key": "job.sql", "path": "sql/q.sql"}, {"key": "LEVEL", "path": "l", "mode": 0o400}]
                }})),
                inputs,
            )
            .unwrap();
            assert_eq!(
                files_of(items),
                [
                    ("sql/q.sql".into(), "SELECT 1".into(), 0o600),
                    ("l".into(), "debug".into(), 0o400)
                ]
            );
            let err = content(
                &volume(serde_json::json!({"name": "job", "configMap": {
                    "name": "job", "items": [{"key": "nope", "path": "x"}]
                }})),
                inputs,
            )
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                "volume job: couldn't find key nope in ConfigMap jobs/job"
            );
            let err = content(
                &volume(serde_json::json!({"name": "job", "configMap": {
                    "name": "job", "items": [{"key": "LEVEL", "path": "../x"}]
                }})),
                inputs,
            )
            .unwrap_err();
            assert!(matches!(err, VolumeError::BadPath { .. }), "{err}");
        });
    }

    #[test]
    fn secrets_missing_optional_and_unsupported() {
        with_inputs(|inputs| {
            let s = content(
                &volume(
                    serde_json::json!({"name": "s", "secret": {"secretName": "s3",
                    "items": [{"key": "AWS_ACCESS_KEY_ID", "path": "id"}]}}),
                ),
                inputs,
            )
            .unwrap();
            assert_eq!(files_of(s), [("id".into(), "minio".into(), 0o644)]);
            let missing =
                volume(serde_json::json!({"name": "s", "secret": {"secretName": "gone"}}));
            assert_eq!(
                content(&missing, inputs).unwrap_err().to_string(),
                "volume s: secret \"gone\" not found"
            );
            let optional = volume(
                serde_json::json!({"name": "s", "secret": {"secretName": "gone", "optional": true}}),
            );
            assert_eq!(content(&optional, inputs).unwrap(), Content::Files(vec![]));
            let nfs = volume(serde_json::json!({"name": "n", "nfs": {"server": "x", "path": "/"}}));
            assert!(matches!(
                content(&nfs, inputs),
                Err(VolumeError::Unsupported(_))
            ));
            let empty = volume(serde_json::json!({"name": "e", "emptyDir": {}}));
            assert_eq!(content(&empty, inputs).unwrap(), Content::EmptyDir);
        });
    }

    /// The volume the ServiceAccount admission plugin adds to every pod.
    fn api_access() -> Volume {
        volume(
            serde_json::json!({"name": "kube-api-access-x", "projected": {
                "defaultMode": 0o644,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "job", "items": [{"key": "LEVEL", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]
            }}),
        )
    }

    #[test]
    fn projected_service_account_volume() {
        with_inputs(|inputs| {
            assert_eq!(
                files_of(content(&api_access(), inputs).unwrap()),
                [
                    ("token".into(), "tok".into(), 0o644),
                    ("ca.crt".into(), "debug".into(), 0o644),
                    ("namespace".into(), "jobs".into(), 0o644)
                ]
            );
        });
        let spec = PodSpec {
            volumes: Some(vec![api_access()]),
            ..PodSpec::default()
        };
        assert_eq!(
            token_requests(&spec).into_iter().collect::<Vec<_>>(),
            [TokenKey {
                audience: None,
                expiration_seconds: 3607
            }]
        );
    }

    #[test]
    fn write_creates_files_with_modes_and_keeps_empty_dirs() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("v");
        let files = Content::Files(vec![VolumeFile {
            path: "a/b.txt".into(),
            data: b"one".to_vec(),
            mode: 0o600,
        }]);
        assert_eq!(write("v", &dir, &files).unwrap(), dir);
        let written = dir.join("a/b.txt");
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "one");
        let mode = std::fs::metadata(&written).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let empty = root.path().join("e");
        write("e", &empty, &Content::EmptyDir).unwrap();
        std::fs::write(empty.join("kept"), "x").unwrap();
        write("e", &empty, &Content::EmptyDir).unwrap();
        assert!(empty.join("kept").exists());

        let host = Content::HostPath("/tmp".into());
        assert_eq!(
            write("h", &root.path().join("h"), &host).unwrap(),
            PathBuf::from("/tmp")
        );
    }
}
