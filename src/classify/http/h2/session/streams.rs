//! The streams an HTTP/2 session recorded, by id (see [`Streams`]).

use super::Stream;
use std::collections::BTreeMap;

/// The recorded streams, by id. New streams of the client and pushed ones must have
/// increasing ids (RFC 9113 §5.1.1): those go to a vector sorted by id (a binary search, the
/// newest first); the others (responses on streams opened before the capture, in any order) to
/// a map, so that no order of ids makes inserts quadratic. A BTreeMap for all of them cost
/// ~8M instructions on the 100 MB mesh bench file (a lookup per DATA frame and header block).
#[derive(Clone, Debug, Default)]
pub(super) struct Streams {
    sorted: Vec<(u32, Stream)>,
    other: BTreeMap<u32, Stream>,
}

impl Streams {
    pub(super) fn len(&self) -> usize {
        self.sorted.len() + self.other.len()
    }

    /// Where `id` is (or would go) in `sorted`.
    #[inline]
    fn find(&self, id: u32) -> Result<usize, usize> {
        match self.sorted.last() {
            Some(&(last, _)) if last == id => Ok(self.sorted.len() - 1),
            Some(&(last, _)) if last < id => Err(self.sorted.len()),
            None => Err(0),
            Some(_) => self.sorted.binary_search_by_key(&id, |&(k, _)| k),
        }
    }

    pub(super) fn get(&self, id: u32) -> Option<&Stream> {
        match self.find(id) {
            Ok(i) => Some(&self.sorted[i].1),
            Err(_) if self.other.is_empty() => None,
            Err(_) => self.other.get(&id),
        }
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Stream> {
        match self.find(id) {
            Ok(i) => Some(&mut self.sorted[i].1),
            Err(_) => self.other.get_mut(&id),
        }
    }

    pub(super) fn contains_key(&self, id: u32) -> bool {
        self.get(id).is_some()
    }

    /// Records stream `id`, not recorded yet.
    pub(super) fn insert_new(&mut self, id: u32, st: Stream) {
        if self.find(id) == Err(self.sorted.len()) {
            self.sorted.push((id, st));
        } else {
            self.other.insert(id, st);
        }
    }

    /// Stream `id`, recorded empty if it was not.
    pub(super) fn get_or_default(&mut self, id: u32) -> &mut Stream {
        match self.find(id) {
            Ok(i) => &mut self.sorted[i].1,
            Err(i) if i == self.sorted.len() && !self.other.contains_key(&id) => {
                self.sorted.push((id, Stream::default()));
                &mut self.sorted[i].1
            }
            Err(_) => self.other.entry(id).or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_found_whatever_the_order_of_their_ids() {
        // Increasing ids (new client or pushed streams) go to the sorted vector; lower ones
        // (responses on streams opened before the capture, here in decreasing order) to the map.
        let mut s = Streams::default();
        for id in [5, 7, 9, 3, 1, 8, 11] {
            s.insert_new(id, Stream { req: Some(id), ..Stream::default() });
        }
        assert_eq!(s.sorted.iter().map(|&(k, _)| k).collect::<Vec<_>>(), [5, 7, 9, 11]);
        assert_eq!(s.other.keys().copied().collect::<Vec<_>>(), [1, 3, 8]);
        assert_eq!(s.len(), 7);
        for id in [1, 3, 5, 7, 8, 9, 11] {
            assert_eq!(s.get(id).and_then(|st| st.req), Some(id), "{id}");
        }
        for id in [0, 2, 4, 6, 10, 12, u32::MAX] {
            assert!(!s.contains_key(id), "{id}");
        }
        // Found where it is, or added where a new id goes.
        s.get_or_default(8).resp = Some(80);
        s.get_or_default(9).resp = Some(90);
        s.get_or_default(13).resp = Some(130);
        s.get_or_default(2).resp = Some(20);
        assert_eq!(s.get_mut(8).map(|st| (st.req, st.resp)), Some((Some(8), Some(80))));
        assert_eq!(s.get(9).map(|st| (st.req, st.resp)), Some((Some(9), Some(90))));
        assert_eq!(s.sorted.last().map(|&(k, ref st)| (k, st.resp)), Some((13, Some(130))));
        assert_eq!(s.other.get(&2).map(|st| (st.req, st.resp)), Some((None, Some(20))));
        assert_eq!(s.len(), 9);
    }
}
