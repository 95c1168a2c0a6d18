//! File bytes: a local directory (default) or an S3-compatible bucket (`CLASSIFYD_BLOB_URL=
//! s3://bucket/prefix`, through `object_store`), so replicas on different machines share one
//! store. Uploads always stream into a local temporary file first (hashed and counted as they
//! arrive, memory flat) and are then renamed in, or uploaded in parts, when complete, so a
//! reader never sees a partial blob. The parser needs a file on disk: remote blobs are
//! downloaded to a temporary copy for the length of one task.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("blob store error: {0}")]
    Remote(#[from] object_store::Error),
    #[error("CLASSIFYD_BLOB_URL: {0}")]
    Config(String),
}

/// Where blobs live; cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    /// Local objects (when there is no remote) and temporary files (always).
    root: PathBuf,
    remote: Option<Arc<dyn ObjectStore>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("root", &self.root)
            .field("remote", &self.remote.as_ref().map(|r| r.to_string()))
            .finish()
    }
}

/// The bytes of a blob, streamed.
pub type BlobStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// An upload in progress: bytes are hashed and counted as they arrive.
pub struct BlobWriter {
    file: tokio::fs::File,
    temp_path: PathBuf,
    hasher: Sha256,
    size: u64,
}

/// What a finished upload produced.
pub struct StoredBlob {
    pub size: u64,
    pub sha256: String,
}

/// A blob as a file on disk, for the parser; a downloaded copy is removed when dropped.
pub struct LocalBlob {
    path: PathBuf,
    temporary: bool,
}

impl LocalBlob {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalBlob {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl BlobStore {
    pub async fn local(root: &Path) -> Result<Self, BlobError> {
        tokio::fs::create_dir_all(root.join("tmp")).await?;
        tokio::fs::create_dir_all(root.join("objects")).await?;
        Ok(Self {
            root: root.to_path_buf(),
            remote: None,
        })
    }

    /// The store a setting names: empty or absent → the local directory `root`;
    /// `s3://bucket[/prefix]` → that bucket, configured by the usual `AWS_*` variables
    /// (`AWS_ENDPOINT_URL` for S3-compatible servers, `AWS_ALLOW_HTTP=true` for plain HTTP).
    /// `root` still holds temporary files.
    pub async fn from_url(url: Option<&str>, root: &Path) -> Result<Self, BlobError> {
        let mut store = Self::local(root).await?;
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(store);
        };
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(BlobError::Config(format!(
                "{url:?} is not an s3://bucket/prefix URL (leave it empty for local files)"
            )));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::Config(format!("{url:?} names no bucket")));
        }
        let s3: Arc<dyn ObjectStore> = Arc::new(
            AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| BlobError::Config(e.to_string()))?,
        );
        let prefix = prefix.trim_matches('/');
        store.remote = Some(if prefix.is_empty() {
            s3
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        });
        Ok(store)
    }

    /// Where a local blob lives on disk; keys are server-made ids, never user input.
    fn local_path(&self, key: &str) -> PathBuf {
        let shard: String = key.chars().rev().take(2).collect();
        self.root.join("objects").join(shard).join(key)
    }

    fn temp_path(&self) -> PathBuf {
        self.root.join("tmp").join(uuid::Uuid::new_v4().to_string())
    }

    pub async fn writer(&self) -> Result<BlobWriter, BlobError> {
        let temp_path = self.temp_path();
        let file = tokio::fs::File::create(&temp_path).await?;
        Ok(BlobWriter {
            file,
            temp_path,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// The blob's bytes as a stream (downloads).
    pub async fn open(&self, key: &str) -> Result<BlobStream, BlobError> {
        match &self.remote {
            None => match tokio::fs::File::open(self.local_path(key)).await {
                Ok(file) => Ok(ReaderStream::new(file).boxed()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(BlobError::NotFound(key.to_string()))
                }
                Err(e) => Err(e.into()),
            },
            Some(remote) => match remote.get(&ObjectPath::from(key)).await {
                Ok(result) => Ok(result.into_stream().map_err(std::io::Error::other).boxed()),
                Err(object_store::Error::NotFound { .. }) => {
                    Err(BlobError::NotFound(key.to_string()))
                }
                Err(e) => Err(e.into()),
            },
        }
    }

    /// The blob as a file on disk: the object itself when local, else a downloaded copy.
    pub async fn fetch(&self, key: &str) -> Result<LocalBlob, BlobError> {
        if self.remote.is_none() {
            let path = self.local_path(key);
            if !tokio::fs::try_exists(&path).await? {
                return Err(BlobError::NotFound(key.to_string()));
            }
            return Ok(LocalBlob {
                path,
                temporary: false,
            });
        }
        let copy = LocalBlob {
            path: self.temp_path(),
            temporary: true,
        };
        let mut stream = self.open(key).await?;
        let mut file = tokio::fs::File::create(copy.path()).await?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?).await?;
        }
        file.flush().await?;
        Ok(copy)
    }

    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match &self.remote {
            None => match tokio::fs::remove_file(self.local_path(key)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Some(remote) => match remote.delete(&ObjectPath::from(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Readiness: a probe can be written (the directory, or the bucket with these credentials).
    pub async fn check(&self) -> Result<(), BlobError> {
        tokio::fs::write(self.root.join("tmp").join(".ready"), b"ok").await?;
        if let Some(remote) = &self.remote {
            remote
                .put(&ObjectPath::from(".ready"), PutPayload::from_static(b"ok"))
                .await?;
        }
        Ok(())
    }
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).await?;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the blob visible under `key`: renamed into place, or uploaded (in parts when
    /// large) and the temporary file dropped.
    pub async fn finish(mut self, store: &BlobStore, key: &str) -> Result<StoredBlob, BlobError> {
        self.file.flush().await?;
        match &store.remote {
            None => {
                self.file.sync_data().await?;
                let target = store.local_path(key);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                tokio::fs::rename(&self.temp_path, &target).await?;
            }
            Some(remote) => {
                let mut source = tokio::fs::File::open(&self.temp_path).await?;
                let mut upload = BufWriter::new(remote.clone(), ObjectPath::from(key));
                tokio::io::copy(&mut source, &mut upload).await?;
                upload.shutdown().await?;
            }
        }
        Ok(StoredBlob {
            size: self.size,
            sha256: hex::encode(std::mem::take(&mut self.hasher).finalize()),
        })
    }
}

impl Drop for BlobWriter {
    /// An upload that was abandoned (client gone, limit exceeded) or sent to a remote store
    /// leaves no temporary file; after a local `finish` the file was renamed away.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp_path);
    }
}
