//! Which shard worker follows a flow under `--threads`: a symmetric hash of the 4-tuple, and
//! the shares of flows (and of the flow table's limits) of the reading thread and the others.

use std::net::IpAddr;

/// A cheap, symmetric hash of a segment's 4-tuple, to pick its shard.
pub(super) fn shard_of(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, shards: u64) -> u64 {
    let fold = |ip: IpAddr| -> u64 {
        match ip {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64)
            }
        }
    };
    let a = fold(src).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(sport);
    let b = fold(dst).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(dport);
    // Symmetric in the two endpoints; then mixed (splitmix64 finaliser).
    let mut x = a.wrapping_add(b) ^ (a ^ b).rotate_left(29);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    // Shard 0 is followed by the thread that also reads and decodes every packet: it gets a
    // smaller share (READER_UNITS / SHARE_UNITS of the others'), so that the threads finish
    // together. x * units / 2^64 picks a unit (a multiplication, not a 64-bit division: 40
    // cycles per packet).
    let units = share_units(shards);
    let u = ((u128::from(x) * u128::from(units)) >> 64) as u64;
    if u < READER_UNITS {
        0
    } else {
        1 + (u - READER_UNITS) / SHARE_UNITS
    }
}

/// Shard 0's share of the flows relative to the others' (`READER_UNITS / SHARE_UNITS`):
/// 38% of the flows with two threads, so that the reading thread, which also reads and decodes
/// every packet, is about as busy as the others. The best share depends on how much work a flow
/// is: 30% before HTTP/2 was decoded, 40% on the benchmark with 12% h2c flows (bench/RESULTS.md,
/// "the reader's share").
pub(super) const READER_UNITS: u64 = 10;
pub(super) const SHARE_UNITS: u64 = 16;

/// The units all `shards` share out: shard 0 has [`READER_UNITS`], the others [`SHARE_UNITS`].
pub(super) fn share_units(shards: u64) -> u64 {
    READER_UNITS + SHARE_UNITS * (shards - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_of_a_flow_go_to_one_shard_and_the_reader_gets_its_share() {
        let mut rng = crate::wire::xorshift(7);
        let mut per = [0u64; 3];
        for _ in 0..30_000 {
            let (a, b) = (
                IpAddr::from((rng() as u32).to_be_bytes()),
                IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, rng() as u16]),
            );
            let (pa, pb) = (rng() as u16, 443);
            let s = shard_of(a, pa, b, pb, 3);
            assert_eq!(s, shard_of(b, pb, a, pa, 3));
            assert_eq!(shard_of(a, pa, b, pb, 1), 0);
            per[s as usize] += 1;
        }
        // Shard 0: 10 units of 42; the others 16 each.
        let expect = |units: u64| 30_000 * units / share_units(3);
        for (n, units) in per.into_iter().zip([READER_UNITS, SHARE_UNITS, SHARE_UNITS]) {
            assert!(n.abs_diff(expect(units)) < 500, "{per:?}");
        }
    }
}
