use crate::error::{Error, Result};

/// A bounds-checked cursor over received bytes.
///
/// Every read names the field it wants, so a short message fails with
/// [`Error::MissingData`] naming exactly what was cut off.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Takes the next `n` bytes, or fails naming `what`.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.left() < n {
            return Err(Error::MissingData(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Returns the next `n` bytes without consuming them, or fails naming `what`.
    pub fn peek(&self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        self.buf
            .get(self.pos..self.pos + n)
            .ok_or(Error::MissingData(what))
    }

    /// Takes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// How many bytes are left.
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub fn expect_empty(&self, what: &'static str) -> Result<()> {
        match self.left() {
            0 => Ok(()),
            len => Err(Error::TrailingData { what, len }),
        }
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads a string of `len` bytes that must be UTF-8.
    pub fn string(&mut self, len: usize, what: &'static str) -> Result<String> {
        let b = self.take(len, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::InvalidUtf8(what))
    }

    /// Reads a string prefixed by its `u32` length.
    pub fn string32(&mut self, what: &'static str) -> Result<String> {
        let len = self.u32(what)? as usize;
        self.string(len, what)
    }
}

/// A wire type: encodes itself to bytes and decodes from a [`Reader`].
pub trait Codec: Sized {
    /// Appends the wire form to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value from `r`, leaving any following bytes.
    fn read(r: &mut Reader<'_>) -> Result<Self>;

    /// The wire form as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// Decodes a value that must fill `bytes` exactly.
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.expect_empty(std::any::type_name::<Self>())?;
        Ok(v)
    }
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Strings on the wire are bounded by the 32-bit length fields, and names are far shorter.
pub(crate) fn put_string32(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_names_missing_field() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.u16("a").unwrap(), 1);
        match r.u32("request.length") {
            Err(Error::MissingData(w)) => assert_eq!(w, "request.length"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.expect_empty("x"),
            Err(Error::TrailingData { len: 1, .. })
        ));
    }

    #[test]
    fn reader_rejects_bad_utf8() {
        let mut r = Reader::new(&[0, 0, 0, 1, 0xff]);
        assert!(matches!(
            r.string32("name"),
            Err(Error::InvalidUtf8("name"))
        ));
    }
}
