//! Work split over the cores: [`map`] runs a fallible function over a slice on up to
//! [`MAX_THREADS`] scoped threads, in order. For batches of small, independent system calls (a
//! sweep's `lstat` + `unlink` of thousands of blobs), where the kernel's per-file work (freeing
//! an inode and its pages) runs in parallel even when the directory update does not.

/// No more threads than this, whatever the machine.
pub const MAX_THREADS: usize = 4;

/// `items.iter().map(f).collect()`, on several threads when there are at least `min_batch`
/// items per thread; the first error (in item order) wins, after every thread has finished its
/// part (the work of the others is done, not undone). A panic in `f` is resumed here.
pub fn map<T: Sync, R: Send, E: Send>(
    items: &[T],
    min_batch: usize,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores
        .min(MAX_THREADS)
        .min(items.len() / min_batch.max(1))
        .max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    let parts: Vec<Result<Vec<R>, E>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Result<Vec<R>, E>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_whatever_the_split() {
        let items: Vec<u32> = (0..1000).collect();
        for min_batch in [1, 7, 100, 2000] {
            let out: Vec<u32> = map(&items, min_batch, |i| Ok::<_, ()>(i * 2)).unwrap();
            assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_first_error_in_item_order_is_returned() {
        let items: Vec<u32> = (0..1000).collect();
        let r = map(
            &items,
            1,
            |i| if *i % 300 == 299 { Err(*i) } else { Ok(*i) },
        );
        assert_eq!(r, Err(299));
    }
}
