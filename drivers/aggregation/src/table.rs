//! A fixed-capacity open-addressing hash map (linear probing, backward-shift
//! deletion) from address keys to small values: the per-frame lookups of
//! guest MACs and IPs, with no allocation and a bounded probe.

/// Keys the table can hold. `EMPTY` marks a free slot and is never a key.
pub trait Key: Copy + Eq {
    const EMPTY: Self;
    fn hash64(self) -> u64;
}

impl Key for u64 {
    const EMPTY: u64 = 0;
    #[inline]
    fn hash64(self) -> u64 {
        self
    }
}

impl Key for u128 {
    const EMPTY: u128 = 0;
    #[inline]
    fn hash64(self) -> u64 {
        (self as u64) ^ ((self >> 64) as u64).rotate_left(17)
    }
}

/// `N` must be a power of two and larger than the most keys ever inserted,
/// so a probe always ends at an empty slot.
#[derive(Clone)]
pub struct Table<K: Key, const N: usize> {
    keys: [K; N],
    vals: [u16; N],
    len: usize,
}

impl<K: Key, const N: usize> Table<K, N> {
    pub const fn new() -> Self {
        const { assert!(N.is_power_of_two()) };
        Table {
            keys: [K::EMPTY; N],
            vals: [0; N],
            len: 0,
        }
    }

    #[inline(always)]
    fn slot(k: K) -> usize {
        // Fibonacci hashing: the multiply spreads the address bits that vary
        // (the low bytes of MACs and IPs) over the top bits we keep.
        (k.hash64().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (N - 1)
    }

    #[inline(always)]
    pub fn get(&self, k: K) -> Option<u16> {
        if k == K::EMPTY {
            return None;
        }
        let mut i = Self::slot(k);
        for _ in 0..N {
            let cur = self.keys[i];
            if cur == k {
                return Some(self.vals[i]);
            }
            if cur == K::EMPTY {
                return None;
            }
            i = (i + 1) & (N - 1);
        }
        None
    }

    /// Insert or overwrite. Returns false if the key is `EMPTY` or the table
    /// is at its load limit (N/2).
    pub fn insert(&mut self, k: K, v: u16) -> bool {
        if k == K::EMPTY {
            return false;
        }
        let mut i = Self::slot(k);
        for _ in 0..N {
            if self.keys[i] == k {
                self.vals[i] = v;
                return true;
            }
            if self.keys[i] == K::EMPTY {
                if self.len >= N / 2 {
                    return false;
                }
                self.keys[i] = k;
                self.vals[i] = v;
                self.len += 1;
                return true;
            }
            i = (i + 1) & (N - 1);
        }
        false
    }

    pub fn remove(&mut self, k: K) -> Option<u16> {
        if k == K::EMPTY {
            return None;
        }
        let mut i = Self::slot(k);
        let mut found = None;
        for _ in 0..N {
            if self.keys[i] == k {
                found = Some(i);
                break;
            }
            if self.keys[i] == K::EMPTY {
                return None;
            }
            i = (i + 1) & (N - 1);
        }
        let mut hole = found?;
        let v = self.vals[hole];
        self.keys[hole] = K::EMPTY;
        self.len -= 1;
        // Backward-shift: pull later members of the probe run into the hole
        // when their home slot is not between the hole and them.
        let mut j = (hole + 1) & (N - 1);
        while self.keys[j] != K::EMPTY {
            let home = Self::slot(self.keys[j]);
            let dist_j = j.wrapping_sub(home) & (N - 1);
            let dist_hole = j.wrapping_sub(hole) & (N - 1);
            if dist_j >= dist_hole {
                self.keys[hole] = self.keys[j];
                self.vals[hole] = self.vals[j];
                self.keys[j] = K::EMPTY;
                hole = j;
            }
            j = (j + 1) & (N - 1);
        }
        Some(v)
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec((any::<bool>(), 1u64..40, any::<u16>()), 0..200)) {
            let mut t: Table<u64, 64> = Table::new();
            let mut m = HashMap::new();
            for (ins, k, v) in ops {
                if ins {
                    if m.len() < 32 || m.contains_key(&k) {
                        prop_assert!(t.insert(k, v));
                        m.insert(k, v);
                    }
                } else {
                    prop_assert_eq!(t.remove(k), m.remove(&k));
                }
                prop_assert_eq!(t.len(), m.len());
                for k in 1..40 {
                    prop_assert_eq!(t.get(k), m.get(&k).copied());
                }
            }
        }
    }
}
