//! Windows maps nothing: [`map_read`] checks the file and hands it back to be read.

use std::fs::File;
use std::path::Path;

use super::{Changed, Mapping};
use crate::sys::error::IoError;

/// A mapped view, which Windows never makes (no value of this type exists).
pub enum MappedFile {}

/// Hands `file` back unmapped, once it is known to be a regular file.
pub fn map_read(file: File, path: &Path) -> Result<Mapping, IoError> {
    super::regular_file(&file, path)?;
    Ok(Mapping::Unmapped(file))
}

impl MappedFile {
    pub fn len(&self) -> u64 {
        match *self {}
    }

    pub fn is_empty(&self) -> bool {
        match *self {}
    }

    pub fn for_each_chunk(&self, _chunk: usize, _each: impl FnMut(&[u8])) {
        match *self {}
    }

    pub fn finish(self) -> Result<(), Changed> {
        match self {}
    }
}
