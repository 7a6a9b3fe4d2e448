//! Which local executable stands in for a container's image.
//!
//! There is no container runtime: an image is only a name, mapped on the command line to a
//! binary built on this machine (`--image spate=/path/to/spate`). A few host commands (`sleep`,
//! `sh`) may be allowed by name for tests that need a process that is not Spate.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BinaryError {
    #[error("image {image} has no local binary (mapped images: {known})")]
    UnmappedImage { image: String, known: String },
    #[error("command {command:?} of image {image} has no local binary")]
    UnknownCommand { image: String, command: String },
    #[error("host command {0:?} is not on PATH")]
    NotOnPath(String),
    #[error("{0:?} is not REPOSITORY=BINARY")]
    BadMapping(String),
}

/// One `--image REPOSITORY=BINARY` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMapping {
    repository: String,
    binary: PathBuf,
}

impl std::str::FromStr for ImageMapping {
    type Err = BinaryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((repository, binary)) if !repository.is_empty() && !binary.is_empty() => {
                Ok(Self {
                    repository: repository.to_string(),
                    binary: PathBuf::from(binary),
                })
            }
            _ => Err(BinaryError::BadMapping(s.to_string())),
        }
    }
}

impl ImageMapping {
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }
}

/// A container's process: the program and its argv after argv[0].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub path: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Binaries {
    images: Vec<ImageMapping>,
    host_commands: Vec<String>,
    /// Where host commands are looked up (the agent's PATH).
    search_path: Vec<PathBuf>,
}

impl Binaries {
    pub fn new(images: Vec<ImageMapping>, host_commands: Vec<String>) -> Self {
        let search_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        Self {
            images,
            host_commands,
            search_path,
        }
    }

    /// The program for a container with this image, `command` (the entrypoint override) and
    /// `args`, both already expanded.
    ///
    /// A command naming a mapped binary (`spate`, `/usr/local/bin/spate`) runs that binary
    /// whatever the image; without a command the image's own binary runs with `args`, as an
    /// image's ENTRYPOINT would.
    pub fn resolve(
        &self,
        image: &str,
        command: &[String],
        args: &[String],
    ) -> Result<Program, BinaryError> {
        let Some((first, rest)) = command.split_first() else {
            let mapping = self
                .image(image)
                .ok_or_else(|| BinaryError::UnmappedImage {
                    image: image.to_string(),
                    known: self.known(),
                })?;
            return Ok(Program {
                path: mapping.binary.clone(),
                args: args.to_vec(),
            });
        };
        let name = Path::new(first)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(first);
        let args: Vec<String> = rest.iter().chain(args).cloned().collect();
        if let Some(mapping) = self.images.iter().find(|m| {
            m.repository == name || m.binary.file_name().and_then(|n| n.to_str()) == Some(name)
        }) {
            return Ok(Program {
                path: mapping.binary.clone(),
                args,
            });
        }
        if self.host_commands.iter().any(|c| c == name) {
            let path = self
                .search_path
                .iter()
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| BinaryError::NotOnPath(name.to_string()))?;
            return Ok(Program { path, args });
        }
        Err(BinaryError::UnknownCommand {
            image: image.to_string(),
            command: first.clone(),
        })
    }

    fn image(&self, image: &str) -> Option<&ImageMapping> {
        let repository = repository(image);
        self.images.iter().find(|m| {
            repository == m.repository
                || repository
                    .strip_suffix(m.repository.as_str())
                    .is_some_and(|prefix| prefix.ends_with('/'))
        })
    }

    fn known(&self) -> String {
        let names: Vec<&str> = self.images.iter().map(|m| m.repository.as_str()).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// An image reference without its digest and tag: `reg:5000/a/spate:1.0@sha256:..` →
/// `reg:5000/a/spate` (a colon before the last slash is a registry port, not a tag).
fn repository(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].find(':') {
        Some(colon) => &image[..last_slash + colon],
        None => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binaries() -> Binaries {
        Binaries {
            images: vec!["spate=/opt/bin/spate".parse().unwrap()],
            host_commands: vec!["true".into()],
            search_path: vec!["/bin".into(), "/usr/bin".into()],
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn repository_drops_tag_and_digest_but_not_registry_port() {
        assert_eq!(repository("spate"), "spate");
        assert_eq!(repository("spate:0.1"), "spate");
        assert_eq!(
            repository("reg:5000/a/spate:1.0@sha256:ab"),
            "reg:5000/a/spate"
        );
        assert_eq!(repository("reg:5000/a/spate"), "reg:5000/a/spate");
    }

    #[test]
    fn image_maps_by_repository_suffix() {
        let b = binaries();
        for image in ["spate", "spate:dev", "ghcr.io/x/spate:0.1"] {
            let p = b.resolve(image, &[], &strings(&["run"])).unwrap();
            assert_eq!(p.path, PathBuf::from("/opt/bin/spate"), "{image}");
            assert_eq!(p.args, strings(&["run"]));
        }
        let err = b.resolve("ghcr.io/x/notspate", &[], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image ghcr.io/x/notspate has no local binary (mapped images: spate)"
        );
    }

    #[test]
    fn command_naming_a_mapped_binary_runs_it_whatever_the_image() {
        let b = binaries();
        let p = b
            .resolve(
                "other",
                &strings(&["/usr/local/bin/spate", "jobmaster"]),
                &strings(&["--bind", "x"]),
            )
            .unwrap();
        assert_eq!(p.path, PathBuf::from("/opt/bin/spate"));
        assert_eq!(p.args, strings(&["jobmaster", "--bind", "x"]));
    }

    #[test]
    fn host_commands_only_when_allowed() {
        let b = binaries();
        let p = b.resolve("busybox", &strings(&["true"]), &[]).unwrap();
        assert!(p.path.ends_with("true"));
        assert_eq!(
            b.resolve("busybox", &strings(&["sh", "-c", "x"]), &[]),
            Err(BinaryError::UnknownCommand {
                image: "busybox".into(),
                command: "sh".into()
            })
        );
    }

    #[test]
    fn mapping_flag_must_have_both_sides() {
        assert!("spate=".parse::<ImageMapping>().is_err());
        assert!("=/bin/x".parse::<ImageMapping>().is_err());
        assert!("spate".parse::<ImageMapping>().is_err());
    }
}
