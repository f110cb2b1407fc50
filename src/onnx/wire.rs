//! A minimal protobuf wire-format reader, enough to walk an ONNX `ModelProto` without a
//! protobuf library and without reading the weights.
//!
//! It streams from any `BufRead + Seek`: fields that are not needed (initializer bytes can be
//! gigabytes) are skipped with a seek, and every length is checked against the end of the
//! enclosing message, so truncated or random bytes end in an error, never a panic or a huge
//! allocation. Only the wire types proto3 uses are accepted (varint, 64-bit, length-delimited,
//! 32-bit); groups are an error.

use std::io::{BufRead, ErrorKind, Seek};

/// Why the bytes are not a well-formed protobuf message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the protobuf ends in the middle of a field (at byte {at}); the file is truncated or not ONNX")]
    Truncated { at: u64 },
    #[error("invalid protobuf at byte {at}: {what}; the file is not ONNX or is damaged")]
    Invalid { at: u64, what: String },
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
}

/// The value of one field, as the wire gives it. A length-delimited value is not read: the
/// caller either descends into it (`Len` with its end offset) or asks for its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Varint(u64),
    Fixed,
    /// A length-delimited field: its bytes run from the current position to `end`.
    Len {
        end: u64,
    },
}

/// Longest string (name, metadata value) read into memory; longer ones are an error.
pub const MAX_STRING: u64 = 1 << 20;

pub struct Reader<R> {
    r: R,
    pos: u64,
}

impl<R: BufRead + Seek> Reader<R> {
    pub fn new(r: R) -> Self {
        Reader { r, pos: 0 }
    }

    fn byte(&mut self) -> Result<Option<u8>, WireError> {
        let buf = loop {
            match self.r.fill_buf() {
                Ok(b) => break b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.r.consume(1);
        self.pos += 1;
        Ok(Some(b))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?.ok_or(WireError::Truncated { at: self.pos })?;
            if shift == 63 && b > 1 {
                return Err(self.invalid("a varint longer than 64 bits"));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.invalid("a varint longer than 10 bytes"))
    }

    fn invalid(&self, what: &str) -> WireError {
        WireError::Invalid {
            at: self.pos,
            what: what.to_owned(),
        }
    }

    /// The next field of the message that ends at `end`: its number and value; `None` at `end`.
    pub fn next(&mut self, end: u64) -> Result<Option<(u32, Value)>, WireError> {
        if self.pos >= end {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|f| *f > 0)
            .ok_or_else(|| self.invalid("a field number out of range"))?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.skip_to(self.pos + 8, end)?;
                Value::Fixed
            }
            2 => {
                let len = self.varint()?;
                let field_end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= end)
                    .ok_or(WireError::Truncated { at: self.pos })?;
                Value::Len { end: field_end }
            }
            5 => {
                self.skip_to(self.pos + 4, end)?;
                Value::Fixed
            }
            t => return Err(self.invalid(&format!("wire type {t}, which ONNX never uses"))),
        };
        if self.pos > end {
            return Err(WireError::Truncated { at: self.pos });
        }
        Ok(Some((field, value)))
    }

    /// Moves to `to` (the end of a field being skipped), which must not pass `end`.
    pub fn skip_to(&mut self, to: u64, end: u64) -> Result<(), WireError> {
        if to > end {
            return Err(WireError::Truncated { at: self.pos });
        }
        let delta = i64::try_from(to - self.pos).map_err(|_| self.invalid("a field too long"))?;
        self.r.seek_relative(delta)?;
        self.pos = to;
        Ok(())
    }

    /// Skips `value` if it is length-delimited (the others are already consumed).
    pub fn skip(&mut self, value: Value, end: u64) -> Result<(), WireError> {
        match value {
            Value::Len { end: to } => self.skip_to(to, end),
            _ => Ok(()),
        }
    }

    /// Reads a length-delimited field ending at `to` as UTF-8 text (lossy).
    pub fn string(&mut self, to: u64) -> Result<String, WireError> {
        let len = to - self.pos;
        if len > MAX_STRING {
            return Err(self.invalid("a string field longer than 1 MiB"));
        }
        let mut buf = vec![0u8; len as usize];
        let mut got = 0;
        while got < buf.len() {
            let chunk = self.r.fill_buf()?;
            if chunk.is_empty() {
                return Err(WireError::Truncated { at: self.pos });
            }
            let n = chunk.len().min(buf.len() - got);
            buf[got..got + n].copy_from_slice(&chunk[..n]);
            self.r.consume(n);
            got += n;
            self.pos += n as u64;
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn reader(bytes: &[u8]) -> Reader<Cursor<&[u8]>> {
        Reader::new(Cursor::new(bytes))
    }

    #[test]
    fn reads_varints_strings_and_skips() {
        // field 1 varint 300, field 2 "hi", field 3 fixed32, field 4 varint 1
        let bytes = [
            0x08, 0xac, 0x02, 0x12, 2, b'h', b'i', 0x1d, 0, 0, 0, 0, 0x20, 1,
        ];
        let end = bytes.len() as u64;
        let mut r = reader(&bytes);
        assert_eq!(r.next(end).unwrap(), Some((1, Value::Varint(300))));
        let Some((2, Value::Len { end: to })) = r.next(end).unwrap() else {
            panic!("expected field 2")
        };
        assert_eq!(r.string(to).unwrap(), "hi");
        assert_eq!(r.next(end).unwrap(), Some((3, Value::Fixed)));
        assert_eq!(r.next(end).unwrap(), Some((4, Value::Varint(1))));
        assert_eq!(r.next(end).unwrap(), None);
    }

    #[test]
    fn truncated_and_garbage_bytes_are_errors() {
        // a length that runs past the end
        let bytes = [0x12, 10, b'h'];
        assert!(matches!(
            reader(&bytes).next(3),
            Err(WireError::Truncated { .. })
        ));
        // a group (wire type 3)
        assert!(matches!(
            reader(&[0x0b]).next(1),
            Err(WireError::Invalid { .. })
        ));
        // an endless varint
        let endless = [0xff; 12];
        assert!(reader(&endless).next(12).is_err());
    }
}
