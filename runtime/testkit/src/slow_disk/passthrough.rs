//! The filesystem behind a [`super::SlowDisk`]: every request is passed to a backing directory
//! with the same system call, after a delay for the ones that make data durable (writes,
//! fsync). Each inode the kernel knows is held as an `O_PATH` descriptor of the backing file,
//! so renames and unlinks never leave a stale path behind; files are reopened through
//! `/proc/self/fd`. Locks are the kernel's own (the filesystem does not ask for them).
//!
//! The `unsafe` blocks are libc calls on descriptors this module owns (or the kernel handed
//! it as file handles) and on C strings it built.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// How long the kernel may cache names and attributes: every change goes through this
/// filesystem, so the kernel's cache stays true.
const TTL: Duration = Duration::from_secs(1);

type Result<T> = std::result::Result<T, Errno>;

/// A directory's entries: backing inode, kind, name.
type Entries = Vec<(u64, FileType, OsString)>;

/// A backing file the kernel holds a reference to, `lookups` times.
struct Node {
    fd: Arc<OwnedFd>,
    key: (u64, u64),
    lookups: u64,
}

struct Nodes {
    by_ino: HashMap<u64, Node>,
    /// The backing (device, inode) of each node: a hard link is one node.
    by_key: HashMap<(u64, u64), u64>,
    next: u64,
}

pub(super) struct Passthrough {
    nodes: Mutex<Nodes>,
    /// An open directory's entries, read at `opendir`, by handle.
    dirs: Mutex<HashMap<u64, Entries>>,
    next_dir: AtomicU64,
    /// Microseconds each write and sync waits first.
    delay_micros: Arc<AtomicU64>,
}

impl Passthrough {
    pub(super) fn new(backing: &Path, delay_micros: Arc<AtomicU64>) -> Result<Self> {
        let root = open_path(libc::AT_FDCWD, &c_name(backing.as_os_str())?)?;
        let st = fstat(root.as_raw_fd())?;
        let key = (st.st_dev, st.st_ino);
        let node = Node {
            fd: Arc::new(root),
            key,
            // The root is never forgotten.
            lookups: u64::MAX / 2,
        };
        let nodes = Nodes {
            by_ino: HashMap::from([(INodeNo::ROOT.0, node)]),
            by_key: HashMap::from([(key, INodeNo::ROOT.0)]),
            next: INodeNo::ROOT.0 + 1,
        };
        Ok(Passthrough {
            nodes: Mutex::new(nodes),
            dirs: Mutex::new(HashMap::new()),
            next_dir: AtomicU64::new(1),
            delay_micros,
        })
    }

    /// What a slow disk does before each write and sync.
    fn wait(&self) {
        let micros = self.delay_micros.load(Ordering::Relaxed);
        if micros > 0 {
            std::thread::sleep(Duration::from_micros(micros));
        }
    }

    fn fd(&self, ino: INodeNo) -> Result<Arc<OwnedFd>> {
        let nodes = self.nodes.lock().expect("nodes lock");
        nodes
            .by_ino
            .get(&ino.0)
            .map(|node| node.fd.clone())
            .ok_or(Errno::ESTALE)
    }

    /// Looks `name` up in `parent` and counts the kernel's new reference.
    fn entry(&self, parent: RawFd, name: &CString) -> Result<FileAttr> {
        let fd = open_path(parent, name)?;
        let st = fstat(fd.as_raw_fd())?;
        let key = (st.st_dev, st.st_ino);
        let mut nodes = self.nodes.lock().expect("nodes lock");
        let ino = match nodes.by_key.get(&key).copied() {
            Some(ino) => {
                nodes.by_ino.get_mut(&ino).expect("a keyed node").lookups += 1;
                ino
            }
            None => {
                let ino = nodes.next;
                nodes.next += 1;
                nodes.by_key.insert(key, ino);
                let node = Node {
                    fd: Arc::new(fd),
                    key,
                    lookups: 1,
                };
                nodes.by_ino.insert(ino, node);
                ino
            }
        };
        Ok(attr(ino, &st))
    }

    fn getattr_of(&self, ino: INodeNo) -> Result<FileAttr> {
        let fd = self.fd(ino)?;
        Ok(attr(ino.0, &fstat(fd.as_raw_fd())?))
    }

    #[allow(clippy::too_many_arguments)]
    fn set(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> Result<FileAttr> {
        let fd = self.fd(ino)?;
        let path = proc_path(fd.as_raw_fd());
        if let Some(mode) = mode {
            check(unsafe { libc::chmod(path.as_ptr(), mode) })?;
        }
        if uid.is_some() || gid.is_some() {
            let (uid, gid) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX));
            let flags = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW;
            check(unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, flags) })?;
        }
        if let Some(size) = size {
            let size = size as libc::off_t;
            match fh {
                Some(fh) => check(unsafe { libc::ftruncate(fh.0 as RawFd, size) })?,
                None => check(unsafe { libc::truncate(path.as_ptr(), size) })?,
            };
        }
        if atime.is_some() || mtime.is_some() {
            let times = [timespec(atime), timespec(mtime)];
            check(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) })?;
        }
        self.getattr_of(ino)
    }

    fn read_dir(&self, ino: INodeNo) -> Result<Entries> {
        let fd = self.fd(ino)?;
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let mut entries = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (ino.0, FileType::Directory, OsString::from("..")),
        ];
        for entry in std::fs::read_dir(path).map_err(Errno::from)? {
            let entry = entry.map_err(Errno::from)?;
            let kind = entry.file_type().map_err(Errno::from)?;
            let kind = FileType::from_std(kind).unwrap_or(FileType::RegularFile);
            use std::os::unix::fs::DirEntryExt;
            entries.push((entry.ino(), kind, entry.file_name()));
        }
        Ok(entries)
    }
}

impl Filesystem for Passthrough {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self
            .fd(parent)
            .and_then(|p| self.entry(p.as_raw_fd(), &c_name(name)?));
        match found {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut nodes = self.nodes.lock().expect("nodes lock");
        let Some(node) = nodes.by_ino.get_mut(&ino.0) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(nlookup);
        if node.lookups == 0 {
            let key = node.key;
            nodes.by_ino.remove(&ino.0);
            nodes.by_key.remove(&key);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.getattr_of(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.set(ino, mode, uid, gid, size, atime, mtime, fh) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let read = self.fd(ino).and_then(|fd| {
            let mut buf = vec![0u8; libc::PATH_MAX as usize];
            let n = unsafe {
                libc::readlinkat(
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            buf.truncate(check_size(n)?);
            Ok(buf)
        });
        match read {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let made = self.fd(parent).and_then(|p| {
            let name = c_name(name)?;
            let mode = mode & !umask;
            check(unsafe { libc::mknodat(p.as_raw_fd(), name.as_ptr(), mode, rdev.into()) })?;
            self.entry(p.as_raw_fd(), &name)
        });
        reply_entry(reply, made);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let made = self.fd(parent).and_then(|p| {
            let name = c_name(name)?;
            check(unsafe { libc::mkdirat(p.as_raw_fd(), name.as_ptr(), mode & !umask) })?;
            self.entry(p.as_raw_fd(), &name)
        });
        reply_entry(reply, made);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let removed = self.fd(parent).and_then(|p| {
            let name = c_name(name)?;
            check(unsafe { libc::unlinkat(p.as_raw_fd(), name.as_ptr(), 0) })
        });
        reply_empty(reply, removed);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let removed = self.fd(parent).and_then(|p| {
            let name = c_name(name)?;
            check(unsafe { libc::unlinkat(p.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
        });
        reply_empty(reply, removed);
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let made = self.fd(parent).and_then(|p| {
            let (name, target) = (c_name(link_name)?, c_name(target.as_os_str())?);
            check(unsafe { libc::symlinkat(target.as_ptr(), p.as_raw_fd(), name.as_ptr()) })?;
            self.entry(p.as_raw_fd(), &name)
        });
        reply_entry(reply, made);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let renamed = (|| {
            let (from, to) = (self.fd(parent)?, self.fd(newparent)?);
            let (name, newname) = (c_name(name)?, c_name(newname)?);
            check(unsafe {
                libc::renameat2(
                    from.as_raw_fd(),
                    name.as_ptr(),
                    to.as_raw_fd(),
                    newname.as_ptr(),
                    flags.bits(),
                )
            })
        })();
        reply_empty(reply, renamed);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let linked = (|| {
            let (fd, to) = (self.fd(ino)?, self.fd(newparent)?);
            let (source, newname) = (proc_path(fd.as_raw_fd()), c_name(newname)?);
            check(unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    source.as_ptr(),
                    to.as_raw_fd(),
                    newname.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            })?;
            self.entry(to.as_raw_fd(), &newname)
        })();
        reply_entry(reply, linked);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let opened = self.fd(ino).and_then(|fd| {
            let flags =
                (flags.0 & !(libc::O_NOFOLLOW | libc::O_CREAT | libc::O_EXCL)) | libc::O_CLOEXEC;
            let path = proc_path(fd.as_raw_fd());
            check(unsafe { libc::open(path.as_ptr(), flags) })
        });
        match opened {
            Ok(fd) => reply.opened(FileHandle(fd as u64), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let created = self.fd(parent).and_then(|p| {
            let name = c_name(name)?;
            let flags = (flags | libc::O_CREAT | libc::O_CLOEXEC) & !libc::O_NOFOLLOW;
            let fd =
                check(unsafe { libc::openat(p.as_raw_fd(), name.as_ptr(), flags, mode & !umask) })?;
            match self.entry(p.as_raw_fd(), &name) {
                Ok(attr) => Ok((fd, attr)),
                Err(e) => {
                    unsafe { libc::close(fd) };
                    Err(e)
                }
            }
        });
        match created {
            Ok((fd, attr)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fd as u64),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut buf = vec![0u8; size as usize];
        let n = unsafe {
            libc::pread(
                fh.0 as RawFd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                offset as libc::off_t,
            )
        };
        match check_size(n) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.wait();
        let n = unsafe {
            libc::pwrite(
                fh.0 as RawFd,
                data.as_ptr().cast(),
                data.len(),
                offset as libc::off_t,
            )
        };
        match check_size(n) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // The handle is the descriptor `open` or `create` returned; this is its one close.
        drop(unsafe { OwnedFd::from_raw_fd(fh.0 as RawFd) });
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.wait();
        let fd = fh.0 as RawFd;
        let synced = check(unsafe {
            if datasync {
                libc::fdatasync(fd)
            } else {
                libc::fsync(fd)
            }
        });
        reply_empty(reply, synced);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.read_dir(ino) {
            Ok(entries) => {
                let handle = self.next_dir.fetch_add(1, Ordering::Relaxed);
                self.dirs.lock().expect("dirs lock").insert(handle, entries);
                reply.opened(FileHandle(handle), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dirs = self.dirs.lock().expect("dirs lock");
        let Some(entries) = dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            // The offset given with an entry is where the next read starts.
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().expect("dirs lock").remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.wait();
        let synced = self.fd(ino).and_then(|fd| {
            let path = proc_path(fd.as_raw_fd());
            let dir =
                check(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
            let dir = unsafe { OwnedFd::from_raw_fd(dir) };
            check(unsafe { libc::fsync(dir.as_raw_fd()) })
        });
        reply_empty(reply, synced);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let stat = self.fd(INodeNo::ROOT).and_then(|fd| {
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) })?;
            Ok(st)
        });
        match stat {
            Ok(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                st.f_namemax as u32,
                st.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let allocated = check(unsafe {
            libc::fallocate(
                fh.0 as RawFd,
                mode,
                offset as libc::off_t,
                length as libc::off_t,
            )
        });
        reply_empty(reply, allocated);
    }
}

fn reply_entry(reply: ReplyEntry, entry: Result<FileAttr>) {
    match entry {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(reply: ReplyEmpty, done: Result<libc::c_int>) {
    match done {
        Ok(_) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

/// A system call's result, or its errno.
fn check(ret: libc::c_int) -> Result<libc::c_int> {
    if ret < 0 {
        Err(Errno::from(std::io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

fn check_size(ret: libc::ssize_t) -> Result<usize> {
    usize::try_from(ret).map_err(|_| Errno::from(std::io::Error::last_os_error()))
}

fn c_name(name: &OsStr) -> Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)
}

/// The path that reopens the file an `O_PATH` descriptor refers to.
fn proc_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number")
}

fn open_path(dir: RawFd, name: &CString) -> Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = check(unsafe { libc::openat(dir, name.as_ptr(), flags) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: RawFd) -> Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let flags = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW;
    check(unsafe { libc::fstatat(fd, c"".as_ptr(), &mut st, flags) })?;
    Ok(st)
}

fn timespec(time: Option<TimeOrNow>) -> libc::timespec {
    let (tv_sec, tv_nsec) = match time {
        None => (0, libc::UTIME_OMIT),
        Some(TimeOrNow::Now) => (0, libc::UTIME_NOW),
        Some(TimeOrNow::SpecificTime(at)) => {
            let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
            (
                since.as_secs() as libc::time_t,
                i64::from(since.subsec_nanos()),
            )
        }
    };
    libc::timespec { tv_sec, tv_nsec }
}

fn system_time(secs: i64, nanos: i64) -> SystemTime {
    u64::try_from(secs).map_or(UNIX_EPOCH, |secs| {
        UNIX_EPOCH + Duration::new(secs, nanos.clamp(0, 999_999_999) as u32)
    })
}

fn attr(ino: u64, st: &libc::stat) -> FileAttr {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    };
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: system_time(st.st_atime, st.st_atime_nsec),
        mtime: system_time(st.st_mtime, st.st_mtime_nsec),
        ctime: system_time(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind,
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}
