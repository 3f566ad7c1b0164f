//! The one sort the worker uses for its short lists (trigger ids, names, latency samples).
//! `slice::sort*` is monomorphised per element type and comparator at about 4 KB of wasm each, and
//! a dozen of them cost the module ~4 KB gzip; a heap sort is a few hundred bytes per use, O(n log n)
//! and allocation-free. It is not stable: every caller sorts by a unique key or by whole values.

pub fn sort_by<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift_down(v, root, n, &mut less);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, &mut less);
    }
}

pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, |a, b| a < b);
}

fn sift_down<T>(v: &mut [T], mut root: usize, end: usize, less: &mut impl FnMut(&T, &T) -> bool) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(&v[child], &v[child + 1]) {
            child += 1;
        }
        if !less(&v[root], &v[child]) {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sorts_like_the_standard_library() {
        let mut seed = 7u64;
        for len in 0..200 {
            let v: Vec<u32> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 40) as u32 % 50
                })
                .collect();
            let (mut ours, mut std) = (v.clone(), v);
            super::sort(&mut ours);
            std.sort();
            assert_eq!(ours, std, "length {len}");
        }
        let mut f = vec![3.5, -1.0, f64::INFINITY, 0.0, 2.25];
        super::sort_by(&mut f, |a, b| a.total_cmp(b).is_lt());
        assert_eq!(f, vec![-1.0, 0.0, 2.25, 3.5, f64::INFINITY]);
    }
}
