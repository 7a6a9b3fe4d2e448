//! What a process sees instead of a container's private filesystem and network.
//!
//! A process cannot mount volumes, so every mountPath that appears in an argument or an env
//! value is replaced by the volume's directory on the host (`/etc/spate/job.sql` →
//! `ROOT/pods/<uid>/volumes/job/job.sql`). Files inside volumes are not rewritten, nor are paths
//! a program builds itself: only text the pod spec passes.
//!
//! All pods share the host's network, so a process that binds `0.0.0.0:6123` would collide with
//! every other pod binding the same port; the wildcard address `0.0.0.0` is replaced by the
//! pod's own loopback address, which is what binding "all interfaces" means inside a pod.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MountError {
    #[error("volumeMount {mount_path}: no volume named {volume}")]
    NoSuchVolume { volume: String, mount_path: String },
    #[error("volumeMount {0}: subPath must be a relative path without '..'")]
    BadSubPath(String),
}

#[derive(Debug, Clone, Default)]
pub struct Rewriter {
    /// mountPath → host directory, longest mountPath first so `/a/b` wins over `/a`.
    mounts: Vec<(String, String)>,
    pod_ip: Option<String>,
}

impl Rewriter {
    /// `volumes` maps a volume name to its directory on the host; `pod_ip` is None when the
    /// wildcard address is to be kept.
    pub fn new(
        container: &Container,
        volumes: &BTreeMap<String, PathBuf>,
        pod_ip: Option<Ipv4Addr>,
    ) -> Result<Self, MountError> {
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let dir = volumes
                .get(&mount.name)
                .ok_or_else(|| MountError::NoSuchVolume {
                    volume: mount.name.clone(),
                    mount_path: mount.mount_path.clone(),
                })?;
            let host = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let sub = Path::new(sub);
                    if sub.is_absolute() || sub.components().any(|c| c.as_os_str() == "..") {
                        return Err(MountError::BadSubPath(mount.mount_path.clone()));
                    }
                    dir.join(sub)
                }
                None => dir.clone(),
            };
            let path = mount.mount_path.trim_end_matches('/');
            if !path.is_empty() {
                mounts.push((path.to_string(), host.to_string_lossy().into_owned()));
            }
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Ok(Self {
            mounts,
            pod_ip: pod_ip.map(|ip| ip.to_string()),
        })
    }

    /// Host directories to create for subPath mounts (the kubelet creates them too).
    pub fn host_dirs(&self) -> impl Iterator<Item = &Path> {
        self.mounts.iter().map(|(_, host)| Path::new(host.as_str()))
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = self.rewrite_paths(text);
        if let Some(ip) = &self.pod_ip {
            out = replace_bounded(&out, "0.0.0.0", ip, |c| c.is_ascii_digit() || c == '.');
        }
        out
    }

    fn rewrite_paths(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        'scan: while i < text.len() {
            if starts_path(text, i) {
                for (mount, host) in &self.mounts {
                    let end = i + mount.len();
                    if text[i..].starts_with(mount.as_str()) && ends_path(text, end) {
                        out.push_str(host);
                        i = end;
                        continue 'scan;
                    }
                }
            }
            let c = text[i..].chars().next().expect("i is on a char boundary");
            out.push(c);
            i += c.len_utf8();
        }
        out
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// A mount path can start at `i`: at the start of the text, after a separator (`=`, `,`, `:`,
/// a space, a quote), or as the path of a `file:///...` URL; not inside another path, so a mount
/// at `/data` leaves `/var/data` alone.
fn starts_path(text: &str, i: usize) -> bool {
    if !text[i..].starts_with('/') {
        return false;
    }
    let before = &text[..i];
    match before.chars().next_back() {
        None => true,
        Some(c) if !is_path_char(c) => true,
        Some(_) => before.ends_with("://"),
    }
}

/// A mount path ends at `end`: the text ends, or a `/` or a separator follows (`/data` is not a
/// prefix of `/database`).
fn ends_path(text: &str, end: usize) -> bool {
    match text[end..].chars().next() {
        None => true,
        Some(c) => c == '/' || !is_path_char(c),
    }
}

/// Replaces `from` where it is not part of a longer token (`in_token` chars on either side).
fn replace_bounded(text: &str, from: &str, to: &str, in_token: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back().or(previous);
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(&in_token) || after.is_some_and(&in_token) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        previous = from.chars().next_back();
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewriter(pod_ip: Option<Ipv4Addr>) -> Rewriter {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "main",
            "volumeMounts": [
                {"name": "job", "mountPath": "/etc/spate"},
                {"name": "data", "mountPath": "/data/"},
                {"name": "data", "mountPath": "/data/sub/dir", "subPath": "nested"},
                {"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
            ]
        }))
        .unwrap();
        let volumes = BTreeMap::from([
            ("job".to_string(), PathBuf::from("/r/v/job")),
            ("data".to_string(), PathBuf::from("/r/v/data")),
            ("token".to_string(), PathBuf::from("/r/v/token")),
        ]);
        Rewriter::new(&container, &volumes, pod_ip).unwrap()
    }

    #[test]
    fn rewrites_mount_paths_only_at_path_boundaries() {
        let r = rewriter(None);
        let cases = [
            ("/etc/spate/job.sql", "/r/v/job/job.sql"),
            ("/etc/spate", "/r/v/job"),
            ("--sql=/etc/spate/job.sql", "--sql=/r/v/job/job.sql"),
            ("a:/data,b:/data/x", "a:/r/v/data,b:/r/v/data/x"),
            ("file:///data/ckpt", "file:///r/v/data/ckpt"),
            ("/data/sub/dir/f", "/r/v/data/nested/f"),
            ("/var/data", "/var/data"),
            ("/database", "/database"),
            ("/etc/spatex", "/etc/spatex"),
            ("s3://bucket/data", "s3://bucket/data"),
            (
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                "/r/v/token/token",
            ),
            ("0.0.0.0:6123", "0.0.0.0:6123"),
        ];
        for (input, want) in cases {
            assert_eq!(r.apply(input), want, "{input}");
        }
    }

    #[test]
    fn rewrites_the_wildcard_address_to_the_pod_ip() {
        let r = rewriter(Some(Ipv4Addr::new(127, 1, 0, 7)));
        let cases = [
            ("0.0.0.0:6123", "127.1.0.7:6123"),
            ("--bind=0.0.0.0", "--bind=127.1.0.7"),
            ("10.0.0.0.0", "10.0.0.0.0"),
            ("0.0.0.0.1", "0.0.0.0.1"),
            ("0.0.0.0,0.0.0.0", "127.1.0.7,127.1.0.7"),
        ];
        for (input, want) in cases {
            assert_eq!(r.apply(input), want, "{input}");
        }
    }

    #[test]
    fn unknown_volume_and_escaping_sub_path_are_errors() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "main", "volumeMounts": [{"name": "x", "mountPath": "/x"}]
        }))
        .unwrap();
        assert_eq!(
            Rewriter::new(&c, &BTreeMap::new(), None).unwrap_err(),
            MountError::NoSuchVolume {
                volume: "x".into(),
                mount_path: "/x".into()
            }
        );
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "main", "volumeMounts": [{"name": "x", "mountPath": "/x", "subPath": "../y"}]
        }))
        .unwrap();
        let volumes = BTreeMap::from([("x".to_string(), PathBuf::from("/r"))]);
        assert_eq!(
            Rewriter::new(&c, &volumes, None).unwrap_err(),
            MountError::BadSubPath("/x".into())
        );
    }
}
