//! The engine against scripted sources: what it does with answers that lie, and with threads that
//! panic.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Result};
use osm_nbd::Stream;
use osm_sync::{Digest, Hasher};

use super::prescan::Taken;
use super::source::{Event, Source, SourceStream};
use super::target::{Layout, Target};
use super::{Engine, SyncOptions};

const CS: u64 = 64 << 10;
const SEED: u64 = 0x0123_4567_89ab_cdef;

/// How a scripted connection misbehaves.
#[derive(Clone, Copy)]
enum Script {
    /// Answers honestly with the given content.
    Honest,
    /// Claims a digest for chunk 1 that its data does not have.
    LiesAbout1,
    /// Panics on the first answer.
    Panics,
    /// Answers a chunk nobody asked about.
    Stray,
    /// Patches the chunks that differ, block by block.
    Patches,
    /// Patches only the first differing block of chunk 2 (and the others honestly), while
    /// claiming the source's digest for it.
    PatchesTooLittle,
}

struct Scripted {
    data: Vec<u8>,
    streams: Mutex<Vec<Box<dyn SourceStream>>>,
}

struct ScriptedStream {
    data: Vec<u8>,
    script: Script,
    ready: VecDeque<Event<'static>>,
}

impl Source for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn free_bytes(&self) -> u64 {
        0
    }
    fn compression(&self) -> bool {
        false
    }
    fn take_streams(&self) -> Vec<Box<dyn SourceStream>> {
        std::mem::take(&mut *self.streams.lock().unwrap())
    }
    fn wire_bytes(&self) -> u64 {
        0
    }
}

impl SourceStream for ScriptedStream {
    fn compare(&mut self, first: u64, digests: &[Digest]) -> Result<()> {
        let h = Hasher::new(SEED);
        let zeros = h.zeros(CS, self.data.len() as u64);
        for (i, dst) in digests.iter().enumerate() {
            let chunk = first + i as u64;
            let start = (chunk * CS) as usize;
            let bytes = self.data[start..(start + CS as usize).min(self.data.len())].to_vec();
            let mut digest = h.digest(&bytes);
            if bytes.iter().all(|&b| b == 0) {
                digest = zeros.of(chunk);
            }
            if matches!(self.script, Script::LiesAbout1) && chunk == 1 {
                digest = h.digest(b"something else");
            }
            let patching = matches!(self.script, Script::Patches | Script::PatchesTooLittle);
            if *dst == digest {
                self.ready.push_back(Event::Same { chunk });
            } else if patching && *dst != zeros.of(chunk) {
                self.ready.push_back(Event::Differs { chunk });
            } else {
                self.ready.push_back(Event::Data {
                    chunk,
                    offset: 0,
                    bytes: bytes.into(),
                    wire: 0,
                });
                self.ready.push_back(Event::ChunkEnd { chunk, digest });
            }
        }
        if matches!(self.script, Script::Stray) {
            self.ready.push_back(Event::Same { chunk: 1_000_000 });
        }
        Ok(())
    }

    fn blocks(&mut self, chunk: u64, sums: &[u64]) -> Result<()> {
        if !matches!(self.script, Script::Patches | Script::PatchesTooLittle) {
            bail!("no block sums expected (chunk {chunk})")
        }
        let h = Hasher::new(SEED);
        let start = (chunk * CS) as usize;
        let bytes = &self.data[start..(start + CS as usize).min(self.data.len())];
        let mine = h.block_sums(bytes, 4096);
        let differing = (0..mine.len()).filter(|&b| mine[b] != sums[b]);
        let blocks: Vec<usize> = if matches!(self.script, Script::PatchesTooLittle) && chunk == 2 {
            differing.take(1).collect()
        } else {
            differing.collect()
        };
        for b in blocks {
            let piece = &bytes[b * 4096..((b + 1) * 4096).min(bytes.len())];
            self.ready.push_back(Event::Data {
                chunk,
                offset: (b * 4096) as u32,
                bytes: piece.to_vec().into(),
                wire: 0,
            });
        }
        let digest = h.digest(bytes);
        self.ready.push_back(Event::ChunkEnd { chunk, digest });
        Ok(())
    }

    fn next(&mut self) -> Result<Event<'_>> {
        if matches!(self.script, Script::Panics) {
            panic!("scripted panic");
        }
        match self.ready.pop_front() {
            Some(e) => Ok(e),
            None => bail!("nothing to answer"),
        }
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    fn shutdown_handle(&self) -> Option<Stream> {
        None
    }
}

/// The scripted source's content.
fn source_data() -> Vec<u8> {
    let mut data: Vec<u8> = (0..(40 * CS + 100)).map(|i| (i % 251) as u8).collect();
    data[(5 * CS) as usize..(9 * CS) as usize].fill(0);
    data
}

fn run(script: Script, connections: usize) -> (Result<()>, Vec<u8>) {
    let (r, out, _) = run_into(
        script,
        connections,
        &vec![0xeeu8; source_data().len()],
        false,
    );
    (r, out)
}

/// Syncs from the scripted source into a destination holding `old`, from a scan of it made
/// ahead when `prescanned`; the result, the destination's bytes, and the bytes the sync read
/// from it.
fn run_into(
    script: Script,
    connections: usize,
    old: &[u8],
    prescanned: bool,
) -> (Result<()>, Vec<u8>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dst.img");
    let data = source_data();
    std::fs::write(&path, old).unwrap();
    let scan = dir.path().join("dst.scan");
    if prescanned {
        super::prescan::run(&super::prescan::ScanOptions {
            device: path.clone(),
            out: scan.clone(),
            chunk_size: CS as u32,
            seed: SEED,
        })
        .unwrap();
    }
    let streams: Vec<Box<dyn SourceStream>> = (0..connections)
        .map(|_| {
            Box::new(ScriptedStream {
                data: data.clone(),
                script,
                ready: VecDeque::new(),
            }) as Box<dyn SourceStream>
        })
        .collect();
    let source = Scripted {
        data: data.clone(),
        streams: Mutex::new(streams),
    };
    let opts = SyncOptions {
        from: vec!["scripted".into()],
        to: path.clone(),
        manifest: None,
        scanned: Some(scan.clone()),
        chunk_size: CS as u32,
        block_size: 4096,
        compression: false,
        verify: true,
        seed: SEED,
        connections,
        progress_interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
    };
    let target = Target::open(&path, data.len() as u64).unwrap();
    let layout = Layout::new(Hasher::new(SEED), CS, data.len() as u64);
    let prescan = match super::prescan::take(&scan, &target, &layout).unwrap() {
        Taken::Used(p) => Some(p),
        Taken::Missing => None,
        Taken::Ignored(why) => panic!("the scan was ignored: {why}"),
    };
    assert_eq!(prescan.is_some(), prescanned);
    let engine = Engine::new(&target, data.len() as u64, &opts, prescan);
    let streams = source.take_streams();
    let r = engine
        .run(&source, streams, opts.progress_interval)
        .and_then(|(src, dst)| {
            let diff = src.differences(&dst, 4);
            if diff.is_empty() {
                Ok(())
            } else {
                bail!("differs at {diff:?}")
            }
        });
    let read = engine.stats.bytes_read.load(Ordering::SeqCst);
    (r, std::fs::read(&path).unwrap(), read)
}

#[test]
fn an_honest_source_is_copied_and_proven() {
    let (r, out) = run(Script::Honest, 3);
    r.unwrap();
    let want: Vec<u8> = {
        let mut d: Vec<u8> = (0..(40 * CS + 100)).map(|i| (i % 251) as u8).collect();
        d[(5 * CS) as usize..(9 * CS) as usize].fill(0);
        d
    };
    assert!(out == want);
}

#[test]
fn patched_chunks_are_proven() {
    let (r, out) = run(Script::Patches, 2);
    r.unwrap();
    let (_, want) = run(Script::Honest, 1);
    assert!(out == want);
}

#[test]
fn a_destination_scanned_ahead_is_patched_and_proven_without_reading_it_again() {
    // What a warm cutover finds: the destination holds the last round's data, and a few blocks
    // of the source changed since.
    let want = source_data();
    let mut old = want.clone();
    for chunk in [0u64, 3, 17, 39] {
        let at = (chunk * CS + 3 * 4096 + 7) as usize;
        old[at..at + 100].fill(0x5a);
    }
    let (r, out, read_plain) = run_into(Script::Patches, 2, &old, false);
    r.unwrap();
    assert!(out == want);
    let (r, out, read) = run_into(Script::Patches, 2, &old, true);
    r.unwrap();
    assert!(
        out == want,
        "the patched destination differs from the source"
    );
    // Without the scan, every chunk holding data is read; with it, only the patched leaves are
    // read back for the proof.
    assert!(read_plain >= 36 * CS, "{read_plain}");
    assert_eq!(
        read,
        4 * 4096,
        "the destination was read again despite the scan"
    );
}

#[test]
fn a_patch_that_leaves_old_blocks_fails_the_proof() {
    let (r, _) = run(Script::PatchesTooLittle, 2);
    let e = format!("{:#}", r.unwrap_err());
    assert!(e.contains(&format!("[{}]", 2 * CS)), "{e}");
}

#[test]
fn a_digest_the_data_does_not_have_fails_the_proof_naming_the_offset() {
    let (r, _) = run(Script::LiesAbout1, 2);
    let e = format!("{:#}", r.unwrap_err());
    assert!(e.contains(&format!("[{CS}]")), "{e}");
}

#[test]
fn a_panicking_connection_fails_the_sync_instead_of_hanging() {
    static DONE: AtomicU64 = AtomicU64::new(0);
    let t = std::thread::spawn(|| {
        let (r, _) = run(Script::Panics, 2);
        DONE.store(1, Ordering::SeqCst);
        r
    });
    for _ in 0..200 {
        if DONE.load(Ordering::SeqCst) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        DONE.load(Ordering::SeqCst),
        1,
        "the sync hangs after a panic"
    );
    let e = format!("{:#}", t.join().unwrap().unwrap_err());
    assert!(e.contains("panicked: scripted panic"), "{e}");
}

#[test]
fn an_answer_for_a_chunk_not_asked_is_an_error() {
    let (r, _) = run(Script::Stray, 1);
    let e = format!("{:#}", r.unwrap_err());
    assert!(e.contains("not asked"), "{e}");
}

/// The sync's end must not wait out a poll: the waiter wakes when the bell rings, long before
/// its timeout (an hour here, so a bell that never rang would hang the test, not pass it).
#[test]
fn the_bell_wakes_its_waiter_when_the_awaited_thing_happens() {
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    let bell = super::Bell::default();
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            done.store(true, Ordering::SeqCst);
            bell.ring();
        });
        assert!(bell.wait(Duration::from_secs(3600), || done.load(Ordering::SeqCst)));
    });
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(!bell.wait(Duration::from_millis(1), || false));
}
