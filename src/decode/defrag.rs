//! IPv4 fragment reassembly, bounded in datagrams, bytes and time (RFC 791, RFC 815 holes).
//!
//! Fragments are rare in TCP captures but do appear (tunnels, small MTUs). Only the TCP payload
//! of completed datagrams leaves this module. Overlapping fragments: the first copy of a byte
//! wins (as most stacks do). Limits: [`MAX_PENDING`] datagrams, 65,535 bytes each,
//! [`FRAGMENT_TIMEOUT_SECS`] of capture time; what exceeds them is dropped and counted.

use super::Ipv4Fragment;
use crate::wire::Timestamp;
use std::collections::HashMap;

/// Datagrams being reassembled at once.
pub(crate) const MAX_PENDING: usize = 1024;
/// Seconds of capture time a datagram may wait for its fragments.
pub(crate) const FRAGMENT_TIMEOUT_SECS: i64 = 30;
const MAX_DATAGRAM: usize = 65_535;

type Key = ([u8; 4], [u8; 4], u16, u8);

struct Pending {
    data: Vec<u8>,
    /// Covered byte ranges, sorted and merged.
    have: Vec<(usize, usize)>,
    total: Option<usize>,
    first_ts: Timestamp,
}

/// Pool of datagrams being reassembled.
#[derive(Default)]
pub struct Defragmenter {
    pending: HashMap<Key, Pending>,
    /// Datagrams dropped (timeout, pool full, too big).
    pub(crate) dropped: u64,
    /// Datagrams completed.
    pub(crate) completed: u64,
}

/// A reassembled datagram.
pub struct Datagram {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Transport protocol.
    pub proto: u8,
    /// Transport header and payload.
    pub payload: Vec<u8>,
}

impl Defragmenter {
    /// Adds a fragment; returns the datagram when it is complete.
    pub fn push(&mut self, f: &Ipv4Fragment<'_>, ts: Timestamp) -> Option<Datagram> {
        let end = f.offset.checked_add(f.payload.len())?;
        if end > MAX_DATAGRAM {
            self.dropped += 1;
            return None;
        }
        if self.pending.len() >= MAX_PENDING {
            self.expire(ts);
        }
        let key = (f.src, f.dst, f.id, f.proto);
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING {
            self.dropped += 1;
            return None;
        }
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            data: Vec::new(),
            have: Vec::new(),
            total: None,
            first_ts: ts,
        });
        if !f.more {
            p.total = Some(end);
        }
        if p.data.len() < end {
            p.data.resize(end, 0);
        }
        // Copy only the bytes not yet covered (first copy wins).
        let mut pos = f.offset;
        for &(s, e) in p.have.iter() {
            if e <= pos || pos >= end {
                continue;
            }
            if s > pos {
                let stop = s.min(end);
                p.data[pos..stop].copy_from_slice(&f.payload[pos - f.offset..stop - f.offset]);
            }
            pos = pos.max(e);
        }
        if pos < end {
            p.data[pos..end].copy_from_slice(&f.payload[pos - f.offset..]);
        }
        insert_range(&mut p.have, f.offset, end);
        if let Some(total) = p.total {
            if p.have.len() == 1 && p.have[0] == (0, total) {
                let mut p = self.pending.remove(&key)?;
                p.data.truncate(total);
                self.completed += 1;
                return Some(Datagram { src: f.src, dst: f.dst, proto: f.proto, payload: p.data });
            }
        }
        None
    }

    /// Drops datagrams older than the timeout at capture time `now`.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        let before = self.pending.len();
        self.pending.retain(|_, p| now.secs - p.first_ts.secs <= FRAGMENT_TIMEOUT_SECS);
        self.dropped += (before - self.pending.len()) as u64;
    }

    /// Datagrams still incomplete (counted as dropped at the end).
    pub(crate) fn incomplete(&self) -> usize {
        self.pending.len()
    }
}

fn insert_range(v: &mut Vec<(usize, usize)>, s: usize, e: usize) {
    if s >= e {
        return;
    }
    v.push((s, e));
    v.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(v.len());
    for &(a, b) in v.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *v = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(offset: usize, more: bool, payload: &[u8]) -> Ipv4Fragment<'_> {
        Ipv4Fragment { src: [1, 1, 1, 1], dst: [2, 2, 2, 2], id: 7, proto: 6, offset, more, payload }
    }

    #[test]
    fn reassembles_out_of_order_with_overlap() {
        let mut d = Defragmenter::default();
        let ts = Timestamp::default();
        assert!(d.push(&frag(16, false, b"QRSTUVWX"), ts).is_none());
        let out = d.push(&frag(0, true, b"ABCDEFGHIJKLMNOP"), ts).unwrap();
        assert_eq!(out.payload, b"ABCDEFGHIJKLMNOPQRSTUVWX");
        assert_eq!((out.src, out.proto), ([1, 1, 1, 1], 6));
    }

    #[test]
    fn completes_and_first_copy_wins() {
        let mut d = Defragmenter::default();
        let ts = Timestamp::default();
        assert!(d.push(&frag(8, true, b"IJKLMNOP"), ts).is_none());
        assert!(d.push(&frag(16, false, b"QRST"), ts).is_none());
        let out = d.push(&frag(0, true, b"ABCDEFGHzzzz"), ts).unwrap();
        assert_eq!(out.payload, b"ABCDEFGHIJKLMNOPQRST");
        assert_eq!(d.incomplete(), 0);
    }

    #[test]
    fn times_out() {
        let mut d = Defragmenter::default();
        d.push(&frag(0, true, b"ABCDEFGH"), Timestamp::new(0, 0));
        d.expire(Timestamp::new(100, 0));
        assert_eq!((d.incomplete(), d.dropped), (0, 1));
    }
}
