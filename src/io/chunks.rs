//! Parallel reading of large CSV files: the file is cut into chunks at record boundaries and each
//! chunk is handed to a worker; results come back in file order, so output never depends on the
//! number of threads.
//!
//! A cut is only made at a newline outside quotes: the reader tracks the parity of `"` characters
//! from the start of the file (RFC 4180 escapes a quote as `""`, which keeps the parity right).

use std::io::Read;
use std::sync::mpsc;
use std::sync::Mutex;

/// Default chunk size: large enough to amortise thread hand-off and each chunk's result
/// vectors, small enough to bound memory. On the 10M-case year `settle` was no faster with 4, 8
/// or 16 MiB, and took more memory.
pub const CHUNK_BYTES: usize = 32 << 20;

/// Splits `buffer` (which starts outside quotes) at the last record boundary. Returns the length
/// of the complete part, or `None` when it holds no complete record.
fn last_boundary(buffer: &[u8]) -> Option<usize> {
    // Without quotes, the last newline.
    if memchr::memchr(b'"', buffer).is_none() {
        return memchr::memrchr(b'\n', buffer).map(|i| i + 1);
    }
    // Quotes before a position decide whether it is inside a quoted field. Count them all (a
    // loop the compiler vectorises), then walk back from the end to the last newline outside.
    let mut quotes_before = buffer.iter().filter(|&&b| b == b'"').count();
    for (i, &byte) in buffer.iter().enumerate().rev() {
        match byte {
            b'"' => quotes_before -= 1,
            b'\n' if quotes_before % 2 == 0 => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Reads `source` to the end in chunks of about `chunk_bytes` (each ending at a record boundary)
/// and runs `work(index, chunk)` on `threads` workers. Returns the results in chunk order.
/// Chunk buffers are recycled, so a long file costs a few buffers' worth of memory and no fresh
/// page faults per chunk. Given the source's length (`size_hint`), the last few chunks are cut a
/// quarter as long, so that the workers finish close together instead of one waiting on the
/// other's last full chunk; the results do not depend on where the cuts fall.
pub fn map_chunks<R, T, F>(source: R, threads: usize, chunk_bytes: usize, size_hint: Option<u64>, work: F) -> std::io::Result<Vec<T>>
where
    R: Read,
    T: Send,
    F: Fn(usize, &[u8]) -> T + Sync,
{
    let (results, _) = map_chunks_with(source, threads, chunk_bytes, size_hint, || (), |_, index, chunk| work(index, chunk))?;
    Ok(results)
}

/// [`map_chunks`] with a state per worker: `init` makes one for each worker thread, `work`
/// receives its worker's, and the states come back (in no particular order) with the results.
/// For sums whose order does not matter — exact decimal totals, counts — a worker adds into its
/// own state instead of each chunk carrying its own copy.
pub fn map_chunks_with<R, S, T, I, F>(
    mut source: R,
    threads: usize,
    chunk_bytes: usize,
    size_hint: Option<u64>,
    init: I,
    work: F,
) -> std::io::Result<(Vec<T>, Vec<S>)>
where
    R: Read,
    S: Send,
    T: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, usize, &[u8]) -> T + Sync,
{
    let threads = threads.max(1);
    let (sender, receiver) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
    let receiver = Mutex::new(receiver);
    let pool: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let results: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::new());
    let states: Mutex<Vec<S>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| -> std::io::Result<()> {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut state = init();
                loop {
                    let next = match receiver.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => break,
                    };
                    let Ok((index, mut chunk)) = next else { break };
                    let result = work(&mut state, index, &chunk);
                    chunk.clear();
                    if let Ok(mut free) = pool.lock() {
                        free.push(chunk);
                    }
                    if let Ok(mut all) = results.lock() {
                        all.push((index, result));
                    }
                }
                if let Ok(mut all) = states.lock() {
                    all.push(state);
                }
            });
        }
        let mut carry: Vec<u8> = Vec::new();
        let mut index = 0;
        let mut consumed = 0u64;
        loop {
            let remaining = size_hint.map_or(u64::MAX, |size| size.saturating_sub(consumed));
            let chunk_bytes = if remaining < (threads * 2 * chunk_bytes) as u64 { (chunk_bytes / 4).max(1) } else { chunk_bytes };
            let mut buffer = pool.lock().ok().and_then(|mut free| free.pop()).unwrap_or_default();
            buffer.extend_from_slice(&carry);
            carry.clear();
            let start = buffer.len();
            // Read straight into the spare capacity (no zero-filling first).
            buffer.reserve(chunk_bytes);
            let mut limited = source.by_ref().take(chunk_bytes as u64);
            limited.read_to_end(&mut buffer)?;
            let filled = buffer.len();
            consumed += (filled - start) as u64;
            let at_end = filled < start + chunk_bytes;
            if at_end {
                if !buffer.is_empty() {
                    let _ = sender.send((index, buffer));
                }
                break;
            }
            match last_boundary(&buffer) {
                Some(cut) => {
                    carry.extend_from_slice(&buffer[cut..]);
                    buffer.truncate(cut);
                    let _ = sender.send((index, buffer));
                    index += 1;
                }
                None => carry = buffer, // one record longer than a chunk: read on
            }
        }
        drop(sender);
        Ok(())
    })?;
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    Ok((results.into_iter().map(|(_, r)| r).collect(), states.into_inner().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_records_and_keep_order_whatever_the_threads() {
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("C{i},\"a\nquoted, field\",{i}\n"));
        }
        for threads in [1, 2, 4] {
            let chunks = map_chunks(text.as_bytes(), threads, 777, Some(text.len() as u64), |_, chunk| chunk.to_vec()).unwrap();
            let joined: Vec<u8> = chunks.concat();
            assert_eq!(joined, text.as_bytes());
            for chunk in &chunks {
                assert!(chunk.ends_with(b"\n"));
                let records = csv::ReaderBuilder::new().has_headers(false).from_reader(&chunk[..]).records().count();
                assert_eq!(chunk.iter().filter(|&&b| b == b'"').count() % 2, 0);
                assert!(records > 0);
            }
        }
    }

    #[test]
    fn a_file_without_final_newline_and_a_long_record() {
        let long = "x".repeat(5000);
        let text = format!("a,{long}\nb,c");
        let chunks = map_chunks(text.as_bytes(), 2, 100, None, |_, chunk| chunk.to_vec()).unwrap();
        assert_eq!(chunks.concat(), text.as_bytes());
    }
}
