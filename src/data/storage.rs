//! Input and output in an object store: a path that is a URL (`s3://bucket/prefix`,
//! `gs://...`, `az://...`, `file:///...`) names objects through the `object_store` crate;
//! any other path is a file. The store is configured from the URL and the process's
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `GOOGLE_*`,
//! `AZURE_*`, ...), as `object_store::parse_url_opts` reads them.
//!
//! The engine's readers and writers are blocking; this module runs each store call on a
//! runtime of its own, so it may be called from any thread that is not itself inside an
//! async task (the engine calls it from blocking threads).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};

/// Bytes fetched per range request while reading an object.
const READ_CHUNK: u64 = 8 << 20;

/// True for a path that names objects in a store rather than a file.
pub fn is_url(path: &Path) -> bool {
    let s = path.to_string_lossy();
    ["s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "azure://", "file://"]
        .iter()
        .any(|scheme| s.starts_with(scheme))
}

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("mr-object-store")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Job(format!("cannot start the object store's runtime: {e}")))
}

/// Runs `future` to completion on the store's runtime. Inside an async context (where a
/// runtime cannot block), on a thread of its own.
fn block_on<F>(future: F) -> Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(rt.block_on(future));
    }
    std::thread::scope(|s| s.spawn(|| rt.block_on(future)).join())
        .map_err(|_| Error::Job("an object store call panicked".into()))
}

fn store_error(url: &str) -> impl FnOnce(object_store::Error) -> Error + '_ {
    move |e| Error::ObjectStore { url: url.to_string(), reason: e.to_string() }
}

/// A store and a path inside it, parsed from a URL.
#[derive(Clone)]
pub struct Object {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    url: String,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Object {
    /// Parses `url` and builds its store from the environment.
    pub fn parse(url: &str) -> Result<Object> {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::ObjectStore { url: url.to_string(), reason: format!("not a valid URL: {e}") })?;
        let options = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let (store, path) = object_store::parse_url_opts(&parsed, options).map_err(store_error(url))?;
        Ok(Object { store: Arc::from(store), path, url: url.trim_end_matches('/').to_string() })
    }

    /// The object `name` under this prefix.
    pub fn child(&self, name: &str) -> Object {
        Object { store: self.store.clone(), path: self.path.clone().join(name), url: format!("{}/{name}", self.url) }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The objects under this prefix (or this object itself), in key order, with their sizes,
    /// skipping names with a path segment below the prefix that starts with `_` or `.`
    /// ([`crate::layout::is_skipped_name`]).
    pub fn list(&self) -> Result<Vec<(Object, u64)>> {
        use futures_util::TryStreamExt;
        let base = self.url.clone();
        let listed: Vec<object_store::ObjectMeta> = block_on(async {
            let prefix = (!self.path.as_ref().is_empty()).then_some(&self.path);
            self.store.list(prefix).try_collect::<Vec<_>>().await
        })?
        .map_err(store_error(&base))?;
        let mut objects: Vec<(Object, u64)> = listed
            .into_iter()
            .filter(|m| {
                let rel = m.location.as_ref().strip_prefix(self.path.as_ref()).unwrap_or(m.location.as_ref());
                !rel.split('/').any(|segment| crate::layout::is_skipped_name(segment.as_bytes()))
            })
            .map(|m| {
                let rel = m.location.as_ref().strip_prefix(self.path.as_ref()).unwrap_or("").trim_start_matches('/');
                let url = if rel.is_empty() { base.clone() } else { format!("{base}/{rel}") };
                (Object { store: self.store.clone(), path: m.location, url }, m.size)
            })
            .collect();
        objects.sort_by(|a, b| a.0.path.as_ref().cmp(b.0.path.as_ref()));
        Ok(objects)
    }

    /// The object's size.
    pub fn size(&self) -> Result<u64> {
        let meta = block_on(self.store.head(&self.path))?.map_err(store_error(&self.url))?;
        Ok(meta.size)
    }

    /// Writes `bytes` as the whole object.
    pub fn put(&self, bytes: Vec<u8>) -> Result<()> {
        block_on(self.store.put(&self.path, bytes.into()))?.map_err(store_error(&self.url))?;
        Ok(())
    }

    /// Uploads the file `file` as the whole object, in parts for a large file. The object
    /// appears whole or not at all.
    pub fn upload(&self, file: &Path) -> Result<()> {
        let mut reader = std::fs::File::open(file).map_err(Error::io("cannot read", file))?;
        block_on(async {
            let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), self.path.clone());
            let mut buf = vec![0u8; 4 << 20];
            loop {
                let n = reader.read(&mut buf).map_err(Error::io("cannot read", file))?;
                if n == 0 {
                    break;
                }
                tokio::io::AsyncWriteExt::write_all(&mut writer, &buf[..n])
                    .await
                    .map_err(|e| Error::ObjectStore { url: self.url.clone(), reason: e.to_string() })?;
            }
            tokio::io::AsyncWriteExt::shutdown(&mut writer)
                .await
                .map_err(|e| Error::ObjectStore { url: self.url.clone(), reason: e.to_string() })
        })?
    }

    /// Deletes every object under this prefix, and what interrupted writes left there
    /// ([`Object::remove_partial_writes`]).
    pub fn delete_all(&self) -> Result<()> {
        for (object, _) in self.list_all()? {
            block_on(self.store.delete(&object.path))?.map_err(store_error(&object.url))?;
        }
        self.remove_partial_writes()
    }

    /// Removes what writes that were killed midway left under a `file://` prefix. The local
    /// store writes an object as `NAME#N` and renames it when it is whole, and its listings
    /// skip such names, so a writer killed midway leaves a file that no listing shows. In the
    /// other stores an unfinished write leaves no object.
    pub fn remove_partial_writes(&self) -> Result<()> {
        let Ok(url) = url::Url::parse(&self.url) else { return Ok(()) };
        if url.scheme() != "file" {
            return Ok(());
        }
        match url.to_file_path() {
            Ok(dir) => remove_staged_files(&dir),
            Err(()) => Ok(()),
        }
    }

    /// Every object under this prefix, hidden names included.
    fn list_all(&self) -> Result<Vec<(Object, u64)>> {
        use futures_util::TryStreamExt;
        let listed: Vec<object_store::ObjectMeta> =
            block_on(self.store.list(Some(&self.path)).try_collect::<Vec<_>>())?.map_err(store_error(&self.url))?;
        Ok(listed
            .into_iter()
            .map(|m| (Object { store: self.store.clone(), url: m.location.to_string(), path: m.location }, m.size))
            .collect())
    }

    /// True when no object lies under this prefix.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.list_all()?.is_empty())
    }

    fn get_range(&self, range: std::ops::Range<u64>) -> Result<bytes::Bytes> {
        block_on(self.store.get_range(&self.path, range))?.map_err(store_error(&self.url))
    }
}

/// Removes the files named `NAME#N` (N decimal digits) in `dir` and below it.
fn remove_staged_files(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(Error::io("cannot list", dir))?;
        let path = entry.path();
        if entry.file_type().map_err(Error::io("cannot list", &path))?.is_dir() {
            remove_staged_files(&path)?;
        } else if is_staged_name(entry.file_name().as_encoded_bytes()) {
            std::fs::remove_file(&path).map_err(Error::io("cannot remove", &path))?;
        }
    }
    Ok(())
}

/// True for the name of a file the local object store is still writing: `NAME#N`.
fn is_staged_name(name: &[u8]) -> bool {
    match name.iter().rposition(|&b| b == b'#') {
        Some(i) => i + 1 < name.len() && name[i + 1..].iter().all(u8::is_ascii_digit),
        None => false,
    }
}

/// Reads an object sequentially, fetching it in ranges of 8 MiB; seeking is cheap.
pub struct ObjectReader {
    object: Object,
    len: u64,
    pos: u64,
    chunk: bytes::Bytes,
    chunk_start: u64,
}

impl ObjectReader {
    /// Opens the object at `url`.
    pub fn open(url: &str) -> Result<ObjectReader> {
        let object = Object::parse(url)?;
        let len = object.size()?;
        Ok(ObjectReader { object, len, pos: 0, chunk: bytes::Bytes::new(), chunk_start: 0 })
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let in_chunk = self.pos >= self.chunk_start && self.pos < self.chunk_start + self.chunk.len() as u64;
        if !in_chunk {
            let end = (self.pos + READ_CHUNK).min(self.len);
            self.chunk = self.object.get_range(self.pos..end).map_err(std::io::Error::other)?;
            self.chunk_start = self.pos;
            if self.chunk.is_empty() {
                return Ok(0);
            }
        }
        let offset = (self.pos - self.chunk_start) as usize;
        let n = buf.len().min(self.chunk.len() - offset);
        buf[..n].copy_from_slice(&self.chunk[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}

/// A source of input bytes: a file or an object.
pub trait Source: Read + Seek + Send {}
impl<T: Read + Seek + Send> Source for T {}

/// Opens an input for reading: a file, or an object for a URL.
pub fn open(path: &Path) -> Result<Box<dyn Source>> {
    if is_url(path) {
        Ok(Box::new(ObjectReader::open(&path.to_string_lossy())?))
    } else {
        let file = std::fs::File::open(path).map_err(Error::io("cannot read input file", path))?;
        Ok(Box::new(file))
    }
}

/// The umask this process started with, while [`private_umask`] is in force; `u32::MAX`
/// before.
static OUTPUT_UMASK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// Makes every file and directory this process creates from now on private to its user (umask
/// 077): work directories, map outputs, spills, fetched partitions, logs and the journal.
/// The job's output files are given the permissions the umask it started with gives them
/// ([`follow_umask`]), as Hadoop's are.
pub fn private_umask() {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let _ = OUTPUT_UMASK.compare_exchange(
        u32::MAX,
        old.bits(),
        std::sync::atomic::Ordering::SeqCst,
        std::sync::atomic::Ordering::SeqCst,
    );
}

/// Puts back the umask this process started with, in a child about to exec (async-signal-safe:
/// an atomic load and `umask`).
pub fn restore_umask() {
    let mask = OUTPUT_UMASK.load(std::sync::atomic::Ordering::Relaxed);
    if mask != u32::MAX {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask as nix::libc::mode_t));
    }
}

/// Gives a file written into a local output directory the permissions that the umask this
/// process started with gives a new file (0644 under the usual 022).
pub fn follow_umask(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mask = OUTPUT_UMASK.load(std::sync::atomic::Ordering::Relaxed);
    if mask == u32::MAX || is_url(path) {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666 & !mask))
        .map_err(Error::io("cannot set the permissions of", path))
}

/// Moves a finished local file into place at `dest`: a rename for a file, an upload (then the
/// local file is removed) for an object. A file on another file system than `dest` is copied
/// into `dest`'s `_temporary` directory, synced, and renamed into place, so that `dest` appears
/// whole or not at all.
pub fn commit(local: &Path, dest: &Path) -> Result<()> {
    if is_url(dest) {
        Object::parse(&dest.to_string_lossy())?.upload(local)?;
        let _ = std::fs::remove_file(local);
        return Ok(());
    }
    // Its permissions first, so that it appears in OUT as it stays.
    follow_umask(local)?;
    match std::fs::rename(local, dest) {
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EXDEV as i32) => copy_into_place(local, dest),
        renamed => renamed.map_err(Error::io("cannot commit output to", dest)),
    }
}

/// Copies `local` to `dest` across file systems: through a file in `dest`'s `_temporary`, synced
/// before the rename; then removes `local`.
fn copy_into_place(local: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new(".")).join(crate::layout::TEMPORARY);
    std::fs::create_dir_all(&dir).map_err(Error::io("cannot create", &dir))?;
    let name = dest.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let staged = dir.join(format!("{name}.commit-{}", std::process::id()));
    let copied = std::fs::copy(local, &staged)
        .and_then(|_| std::fs::File::open(&staged))
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&staged, dest));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&staged);
        return Err(Error::io("cannot commit output to", dest)(e));
    }
    let _ = std::fs::remove_file(local);
    Ok(())
}

/// Writes a small file or object at `dest` (such as `_SUCCESS` or `_job.json`).
pub fn write(dest: &Path, bytes: Vec<u8>) -> Result<()> {
    if is_url(dest) {
        Object::parse(&dest.to_string_lossy())?.put(bytes)
    } else {
        std::fs::write(dest, bytes).map_err(Error::io("cannot write", dest))?;
        follow_umask(dest)
    }
}

/// `dir` joined with `name`, for a directory or an object prefix.
pub fn join(dir: &Path, name: &str) -> PathBuf {
    if is_url(dir) {
        PathBuf::from(format!("{}/{name}", dir.to_string_lossy().trim_end_matches('/')))
    } else {
        dir.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_names_are_a_hash_and_digits_at_the_end() {
        assert!(is_staged_name(b"part-r-00000#1"));
        assert!(is_staged_name(b"a#b#123"));
        assert!(!is_staged_name(b"part-r-00000"));
        assert!(!is_staged_name(b"part#"));
        assert!(!is_staged_name(b"part#1a"));
        assert!(!is_staged_name(b"notes#draft"));
    }

    #[test]
    fn deleting_a_file_prefix_removes_unfinished_writes_that_listings_skip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for name in ["part-r-00000", "part-r-00001#3", "sub/part-m-00000#12"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let prefix = Object::parse(&format!("file://{}", dir.path().display())).unwrap();
        assert_eq!(prefix.list().unwrap().len(), 1, "the local store's listing skips NAME#N");
        prefix.delete_all().unwrap();
        let left = walk(dir.path());
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_dir() {
                files.extend(walk(&entry.path()));
            } else {
                files.push(entry.path());
            }
        }
        files
    }
}
