//! The file layer: everything storage does to files goes through [`Fs`], so that tests can put
//! a fault-injecting file system underneath the real storage code.
//!
//! The operations are the few a log and a snapshot store need, with the durability semantics
//! of POSIX spelled out, because the fault-injecting implementation must model exactly them:
//!
//! | operation | durable when |
//! |---|---|
//! | [`FsFile::write_all`] (append) | after [`FsFile::sync_data`] on that file returns `Ok` |
//! | [`FsFile::write_at`] (overwrite in place, or grow) | after [`FsFile::sync_data`] on that file returns `Ok`; until then a crash may keep any part of it |
//! | [`FsFile::set_len`] (truncate) | after [`FsFile::sync_data`] on that file returns `Ok` |
//! | [`Fs::create`] a new file | after [`Fs::sync_dir`] on its directory returns `Ok` |
//! | [`Fs::rename`], [`Fs::remove`] | after [`Fs::sync_dir`] on the directory returns `Ok` |
//!
//! An `Err` from `sync_data` means the data may or may not be on disk, and the kernel may have
//! dropped the dirty pages already: it must never be retried as if nothing happened
//! ("fsyncgate", PostgreSQL 2018). Storage treats it as fatal.

use std::io;
use std::path::{Path, PathBuf};

/// An open file, positioned at its end for appending.
pub trait FsFile: Send {
    /// Appends `data`.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Writes `data` at byte `offset` (`pwrite`), over what is there; the file grows if the
    /// write ends past its length (a gap before `offset` reads as zeros). It does not move the
    /// position [`FsFile::write_all`] appends at, which stays the end of the file.
    ///
    /// An overwrite of bytes that were already written and synced, in a file whose length is
    /// durable, needs no metadata change on most file systems (ext4, XFS), so the
    /// `fdatasync` after it is only a data write: the log preallocates its segments for this.
    /// (A copy-on-write file system, btrfs or ZFS, allocates even then, and may refuse an
    /// overwrite with `ENOSPC`.)
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes everything written (and the length) durable: `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes; later appends go after it.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// The current length in bytes.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file system, as storage uses it.
pub trait Fs: Send + Sync {
    /// An open file.
    type File: FsFile;

    /// Creates a directory and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new, empty file (failing if it exists), open for appending.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Reads a whole file that nobody writes while the result lives, as shared bytes.
    /// Recovery reads segments this way; the real file system maps them, so that a large log
    /// costs neither a copy nor zeroed memory.
    fn read_shared(&self, path: &Path) -> io::Result<bytes::Bytes> {
        self.read(path).map(bytes::Bytes::from)
    }
    /// Reads `len` bytes at `offset` (fewer at the end of the file).
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The length of a file.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A file of the real file system.
#[derive(Debug)]
pub struct RealFile {
    file: std::fs::File,
    len: u64,
}

impl FsFile for RealFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.file, data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let result = std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset);
        if result.is_err() {
            // A failed write may have stored a prefix that grew the file: ask the kernel.
            if let Ok(metadata) = self.file.metadata() {
                self.len = metadata.len();
            }
            return result;
        }
        self.len = self.len.max(offset + data.len() as u64);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        io::Seek::seek(&mut self.file, io::SeekFrom::Start(len))?;
        self.len = len;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl Fs for RealFs {
    type File = RealFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<RealFile> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(RealFile { file, len: 0 })
    }

    fn open_append(&self, path: &Path) -> io::Result<RealFile> {
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        let len = io::Seek::seek(&mut file, io::SeekFrom::End(0))?;
        Ok(RealFile { file, len })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_shared(&self, path: &Path) -> io::Result<bytes::Bytes> {
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(bytes::Bytes::new());
        }
        // SAFETY: the map is read-only, and nothing rewrites the bytes it covers while it
        // lives: the log only appends past them, and the one truncation (cutting a torn tail at
        // recovery) removes bytes after every frame decoded from the map, which is all that
        // slices of it point at. Another process writing the data directory is refused by the
        // server's lock on it. The remaining hazard is outside this process: an I/O error on a
        // mapped page, or a truncation by someone else, raises SIGBUS instead of an error.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(bytes::Bytes::from_owner(map))
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek};
        let mut file = std::fs::File::open(path)?;
        file.seek(io::SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// `dir/name`.
pub fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
