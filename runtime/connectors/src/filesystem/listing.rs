//! Which files under a path hold the table's data.

use std::io;
use std::path::{Path, PathBuf};

/// The data files under `path`, sorted by path: `path` itself if it is a file, else the visible
/// files of the directory and of its visible subdirectories (Flink's partition directories).
/// Paths are returned as strings because they become split ids.
pub(super) fn data_files(path: &Path) -> io::Result<Vec<String>> {
    let mut files = Vec::new();
    if std::fs::metadata(path)?.is_dir() {
        collect(path, &mut files)?;
    } else {
        files.push(path.to_path_buf());
    }
    files.sort();
    files
        .into_iter()
        .map(|file| {
            file.into_os_string().into_string().map_err(|name| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("file name {name:?} is not UTF-8"),
                )
            })
        })
        .collect()
}

fn collect(directory: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        if !is_visible(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        // `fs::metadata` follows symbolic links, so a linked file or directory is read too.
        if std::fs::metadata(&path)?.is_dir() {
            collect(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Hidden names (`.x`, `_x`) are how writers mark what is not (yet) data: in-progress part files,
/// `_SUCCESS` markers, editors' temporary files. `.inprogress` is refused even when not hidden.
fn is_visible(name: &str) -> bool {
    !(name.starts_with('.') || name.starts_with('_') || name.ends_with(".inprogress"))
}
