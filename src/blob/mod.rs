//! File bytes. Uploads stream into a temporary file beside their final place and are renamed
//! in when complete, so a reader never sees a partial blob and memory stays flat.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob {0} not found")]
    NotFound(String),
}

/// A local-directory blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

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

impl BlobStore {
    pub async fn local(root: &Path) -> Result<Self, BlobError> {
        tokio::fs::create_dir_all(root.join("tmp")).await?;
        tokio::fs::create_dir_all(root.join("objects")).await?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Where a blob lives on disk; keys are server-made ids, never user input.
    pub fn local_path(&self, key: &str) -> PathBuf {
        let shard: String = key.chars().rev().take(2).collect();
        self.root.join("objects").join(shard).join(key)
    }

    pub async fn writer(&self) -> Result<BlobWriter, BlobError> {
        let temp_path = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let file = tokio::fs::File::create(&temp_path).await?;
        Ok(BlobWriter {
            file,
            temp_path,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    pub async fn open(&self, key: &str) -> Result<tokio::fs::File, BlobError> {
        match tokio::fs::File::open(self.local_path(key)).await {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(key.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.local_path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Readiness: the store's directory is there and writable.
    pub async fn check(&self) -> Result<(), BlobError> {
        let probe = self.root.join("tmp").join(".ready");
        tokio::fs::write(&probe, b"ok").await?;
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

    /// Makes the blob visible under `key`.
    pub async fn finish(mut self, store: &BlobStore, key: &str) -> Result<StoredBlob, BlobError> {
        self.file.flush().await?;
        self.file.sync_data().await?;
        let target = store.local_path(key);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&self.temp_path, &target).await?;
        Ok(StoredBlob {
            size: self.size,
            sha256: hex::encode(std::mem::take(&mut self.hasher).finalize()),
        })
    }
}

impl Drop for BlobWriter {
    /// An upload that was abandoned (client gone, limit exceeded) leaves no temporary file;
    /// after `finish` the file was renamed away and this is a no-op.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp_path);
    }
}
