//! The flow table's index, 4-tuple -> slot.
//!
//! IPv4 tuples (nearly every flow) have an open-addressing table of their own ([`V4Index`]):
//! 16-byte entries (12-byte key, slot as `u32`) probed linearly, so that a lookup reads one
//! cache line where `hashbrown` read two (its control bytes, then the bucket, in separate
//! arrays). Same minutes, default 1 GB bench file, `--threads 1`, 7 rounds each: wall 0.679 ->
//! 0.672 s, user 0.520 -> 0.511 s (callgrind: Ir -0.4%, cycles~ unchanged: its simulated last
//! level rarely misses here, the machine's TLB and shared L3 do). Prefetching the index line and
//! the slot 8 and 4 events ahead in a shard worker's batch gained nothing measurable (mesh 1 GB,
//! two threads: 0.550 -> 0.547 s) and was left out.
//! IPv6 tuples keep a `HashMap`.

use super::FlowKey;
use crate::wire::KeyedState;

/// Flow-keyed maps (see [`crate::wire::KeyedState`]).
type FlowMap<V> = crate::wire::KeyedMap<FlowKey, V>;

/// An IPv4 [`FlowKey`] in 12 bytes: both addresses, then the ports as in [`FlowKey::ports`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct V4Key(pub(super) [u32; 3]);

/// The index: IPv4 keys in a [`V4Index`], IPv6 ones in a map. Slots are `u32`: [`super::FlowTable`]
/// holds fewer than `u32::MAX` flows.
#[derive(Default)]
pub(super) struct FlowIndex {
    v4: V4Index,
    v6: FlowMap<u32>,
}

impl FlowIndex {
    /// The compact key of an IPv4 `key`.
    #[inline(always)]
    pub(super) fn v4(key: &FlowKey) -> Option<V4Key> {
        (key.ports >> 32 == 0).then(|| V4Key([key.lo[1] as u32, key.hi[1] as u32, key.ports as u32]))
    }

    #[inline(always)]
    pub(super) fn get(&self, key: &FlowKey) -> Option<usize> {
        let slot = match FlowIndex::v4(key) {
            Some(k) => self.v4.get(&k),
            None => self.v6.get(key).copied(),
        };
        slot.map(|i| i as usize)
    }

    /// [`FlowIndex::get`] of an IPv4 key (see [`FlowIndex::v4`]).
    #[inline(always)]
    pub(super) fn get_v4(&self, key: &V4Key) -> Option<usize> {
        self.v4.get(key).map(|i| i as usize)
    }

    /// `slot` is below `u32::MAX`: [`super::FlowTable`] holds fewer flows than that.
    pub(super) fn insert(&mut self, key: FlowKey, slot: usize) {
        let slot = u32::try_from(slot).ok().filter(|&s| s != EMPTY).expect("fewer than u32::MAX flows");
        match FlowIndex::v4(&key) {
            Some(k) => self.v4.insert(k, slot),
            None => {
                self.v6.insert(key, slot);
            }
        };
    }

    pub(super) fn remove(&mut self, key: &FlowKey) {
        match FlowIndex::v4(key) {
            Some(k) => self.v4.remove(&k),
            None => {
                self.v6.remove(key);
            }
        };
    }

    pub(super) fn len(&self) -> usize {
        self.v4.len + self.v6.len()
    }

    /// The keyed hasher (of the tombstones' hashes).
    pub(super) fn hasher(&self) -> &KeyedState {
        self.v6.hasher()
    }
}

/// An entry's `slot` when the entry is empty.
const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Entry {
    key: [u32; 3],
    slot: u32,
}

/// IPv4 keys -> slots: open addressing, linear probing, at most half full (so a probe ends at
/// an empty entry after ~1.5 entries on average), removal by backward shift (no tombstones).
/// The hash is keyed with a random seed ([`KeyedState`]): tuples come from the network, and a
/// fixed hash could be flooded with keys that share a probe sequence.
#[derive(Default)]
pub(super) struct V4Index {
    /// A power of two long (or empty), every entry initialised.
    entries: Vec<Entry>,
    len: usize,
    hasher: V4Hasher,
}

/// The index's keyed hash: one 64 x 64 -> 128-bit multiply of the key's two words, each
/// mixed with a random word, folded (foldhash's and wyhash's step). `ahash`'s `Hasher` took
/// three such multiplies and its rounds for the same two words (with the IPv4 lookup by the
/// compact key, `flow::v4_key_of`: Ir 404.3 -> 403.6 M, cycles~ 219.2 -> 218.9 M on the
/// default 100 MB bench file, mesh 292.3 -> 291.7 M).
#[derive(Clone, Copy)]
struct V4Hasher([u64; 2]);

impl Default for V4Hasher {
    fn default() -> V4Hasher {
        use std::hash::BuildHasher;
        let keyed = KeyedState::default();
        V4Hasher([keyed.hash_one(1u64), keyed.hash_one(2u64)])
    }
}

impl V4Hasher {
    #[inline(always)]
    fn hash(&self, k: &V4Key) -> u64 {
        let [lo, hi, ports] = k.0;
        let a = (u64::from(lo) << 32 | u64::from(hi)) ^ self.0[0];
        let b = u64::from(ports) ^ self.0[1];
        let p = u128::from(a) * u128::from(b);
        p as u64 ^ (p >> 64) as u64
    }
}

/// Entries of a new index's first allocation (1 KiB).
const FIRST_CAPACITY: usize = 64;

impl V4Index {
    #[inline(always)]
    fn home(&self, k: &V4Key) -> usize {
        self.hasher.hash(k) as usize & (self.entries.len().wrapping_sub(1))
    }

    /// The entry holding `k`, if any.
    #[inline(always)]
    fn find(&self, k: &V4Key) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut i = self.home(k);
        // Ends: at most half the entries are used.
        loop {
            let e = &self.entries[i];
            if e.slot == EMPTY {
                return None;
            }
            if e.key == k.0 {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline(always)]
    fn get(&self, k: &V4Key) -> Option<u32> {
        self.find(k).map(|i| self.entries[i].slot)
    }

    /// Sets `k`'s slot (`slot` is not [`EMPTY`]).
    fn insert(&mut self, k: V4Key, slot: u32) {
        if let Some(i) = self.find(&k) {
            self.entries[i].slot = slot;
            return;
        }
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        self.place(Entry { key: k.0, slot });
        self.len += 1;
    }

    /// Puts `e` (not in the index) at the first empty entry from its home.
    fn place(&mut self, e: Entry) {
        let mask = self.entries.len() - 1;
        let mut i = self.home(&V4Key(e.key));
        while self.entries[i].slot != EMPTY {
            i = (i + 1) & mask;
        }
        self.entries[i] = e;
    }

    fn grow(&mut self) {
        let size = (self.entries.len() * 2).max(FIRST_CAPACITY);
        let old = std::mem::replace(&mut self.entries, vec![Entry { key: [0; 3], slot: EMPTY }; size]);
        for e in old.into_iter().filter(|e| e.slot != EMPTY) {
            self.place(e);
        }
    }

    fn remove(&mut self, k: &V4Key) {
        let Some(mut hole) = self.find(k) else { return };
        let mask = self.entries.len() - 1;
        let mut j = hole;
        // Moves back each later entry of the run that may sit in the hole: one whose home is
        // not between the hole (exclusive) and where it is, going round.
        loop {
            j = (j + 1) & mask;
            let e = self.entries[j];
            if e.slot == EMPTY {
                break;
            }
            let home = self.home(&V4Key(e.key));
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole].slot = EMPTY;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::key_from;
    use super::*;
    use std::net::IpAddr;

    /// The index tells IPv4 tuples from IPv6 ones with the same low words (`::10.0.0.1`), keeps
    /// each tuple's slot, and forgets one without the other.
    #[test]
    fn index_keeps_v4_and_v6_apart() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (k4, lo4) = key_from(ip("10.0.0.2"), 443, ip("10.0.0.1"), 40000);
        let (k6, lo6) = key_from(ip("::10.0.0.1"), 40000, ip("::10.0.0.2"), 443);
        assert_eq!((lo4, lo6), (false, true));
        assert_eq!((k4.lo[1], k4.hi[1]), (k6.lo[1], k6.hi[1]));
        assert_eq!(FlowIndex::v4(&k4), Some(V4Key([0x0a00_0001, 0x0a00_0002, 40000 << 16 | 443])));
        assert_eq!(FlowIndex::v4(&k6), None);
        let mut ix = FlowIndex::default();
        ix.insert(k4, 7);
        ix.insert(k6, u32::MAX as usize - 1);
        assert_eq!((ix.get(&k4), ix.get(&k6), ix.len()), (Some(7), Some(u32::MAX as usize - 1), 2));
        ix.remove(&k4);
        assert_eq!((ix.get(&k4), ix.get(&k6), ix.len()), (None, Some(u32::MAX as usize - 1), 1));
    }

    /// The hash with known seeds: the 128-bit product's halves folded.
    #[test]
    fn v4_hash_is_the_folded_product() {
        let ones = V4Key([u32::MAX; 3]);
        // (2^64 - 1)(2^32 - 1): high half 2^32 - 2, low half 2^64 - 2^32 + 1.
        assert_eq!(V4Hasher([0, 0]).hash(&ones), u64::MAX);
        let k = V4Key([0x0a00_0001, 0x0a00_0002, 40000 << 16 | 443]);
        assert_eq!(V4Hasher([0x1234, 0x5678]).hash(&k), 0x405a_e64e_1fa4_ba4c);
        // Keyed: two indexes hash the same tuple differently.
        assert_ne!(V4Hasher::default().0, V4Hasher::default().0);
    }

    /// Random inserts, overwrites and removals agree with a `HashMap` at every step, through
    /// growth and with keys crowded into few homes (a tiny key space: long runs to shift back).
    #[test]
    fn v4_index_agrees_with_a_hash_map() {
        for space in [16u32, 300, 1 << 20] {
            let mut rng = crate::wire::xorshift(u64::from(space) + 1);
            let mut ix = V4Index::default();
            let mut model = std::collections::HashMap::new();
            for step in 0..40_000u32 {
                let r = rng();
                let k = V4Key([(r as u32) % space, 7, (r >> 32) as u32 % 3]);
                if r >> 62 == 0 {
                    ix.remove(&k);
                    model.remove(&k.0);
                } else {
                    ix.insert(k, step);
                    model.insert(k.0, step);
                }
                assert_eq!(ix.len, model.len());
                let probe = V4Key([(rng() as u32) % space, 7, step % 3]);
                assert_eq!(ix.get(&probe), model.get(&probe.0).copied());
            }
            for (k, v) in &model {
                assert_eq!(ix.get(&V4Key(*k)), Some(*v));
            }
            assert!(ix.entries.len() >= 2 * ix.len);
        }
    }
}
