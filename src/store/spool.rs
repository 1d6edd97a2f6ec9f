//! The record writer's disk spool: while the database cannot be written,
//! the rows the writer takes are appended to a file here and written to the
//! database, in the order they came, once it is back.
//!
//! Format: one JSON value per line (`pending.jsonl` in the spool folder),
//! made durable with `fdatasync` after every append. The file is read from an
//! offset kept in memory; rows are written to the database again after a
//! restart in the middle of a replay, which the store's inserts ignore (they
//! are idempotent on each row's key), so nothing is written twice.
//!
//! Crash safety: a daemon killed in the middle of an append leaves a last
//! line without its newline; [`Spool::open`] cuts it off (that row's pass
//! was never acknowledged). A line that does not parse is moved to
//! `rejected.jsonl` beside it and logged, never dropped silently.
//!
//! All of this is blocking file I/O: the writer calls it through
//! `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// File of rows not yet written to the database.
pub const PENDING_FILE: &str = "pending.jsonl";
/// File of spooled lines that could not be read back (kept for an operator).
pub const REJECTED_FILE: &str = "rejected.jsonl";

/// An append-only queue of rows on disk.
#[derive(Debug)]
pub struct Spool<T> {
    dir: PathBuf,
    file: File,
    /// Bytes of the file already handed out by [`Spool::read`] and consumed.
    read_pos: u64,
    len: u64,
    /// Lines not yet consumed (rows left by an earlier run included).
    rows: u64,
    _rows: PhantomData<fn() -> T>,
}

/// What [`Spool::read`] returned: rows in order and where they end.
#[derive(Debug)]
pub struct Chunk<T> {
    pub rows: Vec<T>,
    /// Pass to [`Spool::consume`] once the rows are written.
    pub end: u64,
    /// Lines the chunk covers: `rows` and the rejected ones.
    pub lines: usize,
    /// Lines that did not parse (moved to the rejected file).
    pub rejected: usize,
}

impl<T: Serialize + DeserializeOwned> Spool<T> {
    /// Opens (creating) the spool in `dir`. Rows left by an earlier run are
    /// kept, to be read first; a torn last line is cut off.
    pub fn open(dir: &Path) -> io::Result<Spool<T>> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(PENDING_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut len = file.metadata()?.len();
        let whole = whole_lines_len(&mut file, len)?;
        if whole < len {
            tracing::warn!(path = %path.display(), bytes = len - whole,
                "spool ends in a torn line (the daemon stopped while appending); cut off");
            file.set_len(whole)?;
            file.sync_data()?;
            len = whole;
        }
        let rows = count_lines(&mut file, len)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            file,
            read_pos: 0,
            len,
            rows,
            _rows: PhantomData,
        })
    }

    /// The pending file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(PENDING_FILE)
    }

    /// Nothing is waiting to be written.
    pub fn is_empty(&self) -> bool {
        self.read_pos >= self.len
    }

    /// Bytes waiting to be written.
    pub fn pending_bytes(&self) -> u64 {
        self.len - self.read_pos
    }

    /// Rows waiting to be written (lines not yet consumed).
    pub fn pending_rows(&self) -> u64 {
        self.rows
    }

    /// Appends rows and makes them durable before returning.
    pub fn append<'a>(&mut self, rows: impl IntoIterator<Item = &'a T>) -> io::Result<usize>
    where
        T: 'a,
    {
        let mut buf = Vec::new();
        let mut n = 0usize;
        for row in rows {
            serde_json::to_writer(&mut buf, row).map_err(io::Error::other)?;
            buf.push(b'\n');
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
        {
            // Undo a partial append so the file stays whole lines.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.rows += n as u64;
        Ok(n)
    }

    /// Reads up to `max` rows from where the last consumed chunk ended.
    pub fn read(&mut self, max: usize) -> io::Result<Chunk<T>> {
        let mut reader = BufReader::new(File::open(self.path())?);
        reader.seek(SeekFrom::Start(self.read_pos))?;
        let mut chunk = Chunk {
            rows: Vec::new(),
            end: self.read_pos,
            lines: 0,
            rejected: 0,
        };
        let mut line = Vec::new();
        while chunk.rows.len() < max && chunk.end < self.len {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            chunk.end += n as u64;
            chunk.lines += 1;
            match serde_json::from_slice::<T>(&line) {
                Ok(row) => chunk.rows.push(row),
                Err(e) => {
                    chunk.rejected += 1;
                    self.reject(&line, &e)?;
                }
            }
        }
        Ok(chunk)
    }

    /// Marks a chunk written: its `end`, and how many lines it covered.
    /// Once everything is, the file is emptied.
    pub fn consume(&mut self, end: u64, lines: usize) -> io::Result<()> {
        self.read_pos = end.min(self.len);
        self.rows = self.rows.saturating_sub(lines as u64);
        if self.read_pos == self.len {
            self.file.set_len(0)?;
            self.file.sync_data()?;
            self.read_pos = 0;
            self.len = 0;
            self.rows = 0;
        }
        Ok(())
    }

    /// Keeps a row that cannot be written (it failed alone with an error
    /// that retrying cannot mend) in the rejected file.
    pub fn reject_row(&self, row: &T, error: &dyn std::fmt::Display) -> io::Result<()> {
        let line = serde_json::to_vec(row).map_err(io::Error::other)?;
        self.reject(&line, error)
    }

    fn reject(&self, line: &[u8], error: &dyn std::fmt::Display) -> io::Result<()> {
        let path = self.dir.join(REJECTED_FILE);
        let mut f = OpenOptions::new().append(true).create(true).open(&path)?;
        let mut line = line.to_vec();
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        f.write_all(&line)?;
        f.sync_data()?;
        tracing::error!(path = %path.display(), %error,
            "a spooled row cannot be written to the database; kept in the rejected file");
        Ok(())
    }
}

/// The newlines in the first `len` bytes of the file.
fn count_lines(file: &mut File, len: u64) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(io::Read::take(&mut *file, len));
    let mut n = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(n);
        }
        n += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let k = buf.len();
        reader.consume(k);
    }
}

/// The length of the file up to and including its last newline.
fn whole_lines_len(file: &mut File, len: u64) -> io::Result<u64> {
    const STEP: u64 = 4096;
    let mut end = len;
    let mut buf = vec![0u8; STEP as usize];
    while end > 0 {
        let start = end.saturating_sub(STEP);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        io::Read::read_exact(file, &mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct R {
        n: u32,
    }

    fn rows(ns: std::ops::Range<u32>) -> Vec<R> {
        ns.map(|n| R { n }).collect()
    }

    fn ns(chunk: &Chunk<R>) -> Vec<u32> {
        chunk.rows.iter().map(|r| r.n).collect()
    }

    #[test]
    fn rows_come_back_in_order_in_chunks_and_the_file_empties() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::<R>::open(dir.path()).unwrap();
        assert!(s.is_empty());
        s.append(&rows(0..5)).unwrap();
        s.append(&rows(5..7)).unwrap();
        assert_eq!(s.pending_rows(), 7);
        let a = s.read(4).unwrap();
        assert_eq!(ns(&a), [0, 1, 2, 3]);
        // Not consumed: read again from the same place.
        assert_eq!(ns(&s.read(4).unwrap()), [0, 1, 2, 3]);
        s.consume(a.end, a.lines).unwrap();
        // Appends while draining go after what is pending.
        s.append(&rows(7..8)).unwrap();
        let b = s.read(10).unwrap();
        assert_eq!(ns(&b), [4, 5, 6, 7]);
        s.consume(b.end, b.lines).unwrap();
        assert!(s.is_empty());
        assert_eq!(std::fs::metadata(s.path()).unwrap().len(), 0);
    }

    #[test]
    fn rows_left_by_an_earlier_run_are_read_and_a_torn_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::<R>::open(dir.path()).unwrap();
            s.append(&rows(0..3)).unwrap();
        }
        // A kill in the middle of an append.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(PENDING_FILE))
            .unwrap();
        f.write_all(b"{\"n\":").unwrap();
        drop(f);
        let mut s = Spool::<R>::open(dir.path()).unwrap();
        assert!(!s.is_empty());
        assert_eq!(s.pending_rows(), 3, "counted at open, the torn line not");
        let c = s.read(10).unwrap();
        assert_eq!(ns(&c), [0, 1, 2]);
        assert_eq!(c.rejected, 0);
        s.consume(c.end, c.lines).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn a_line_that_does_not_parse_is_kept_in_the_rejected_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PENDING_FILE),
            b"{\"n\":1}\nnot json\n{\"n\":2}\n",
        )
        .unwrap();
        let mut s = Spool::<R>::open(dir.path()).unwrap();
        let c = s.read(10).unwrap();
        assert_eq!(ns(&c), [1, 2]);
        assert_eq!(c.rejected, 1);
        s.consume(c.end, c.lines).unwrap();
        assert_eq!(s.pending_rows(), 0);
        let rejected = std::fs::read_to_string(dir.path().join(REJECTED_FILE)).unwrap();
        assert_eq!(rejected, "not json\n");
    }
}
