//! List parameters kept in maps, so userspace can change them live
//! (`wasmfw map set|del`) and the next packet sees it: ports, address
//! prefixes, domain-name suffixes. The key formats are those of the eBPF
//! twins' maps (compare-ebpf/common), documented in docs/filter-abi.md
//! ("List maps"), so one command edits either engine's filter.

use crate::config::{Cidr, Error};
use crate::maps::{HashMap, Pod};
use crate::net::Addr;

/// Capacity of a port set (the eBPF twin's `MAX_PORTS`).
pub const MAX_PORTS: u32 = 1024;
/// Capacity of a prefix set (the eBPF twin's `MAX_CIDRS`).
pub const MAX_CIDRS: u32 = 64;
/// Capacity of a name set (the eBPF twin's `dns_names`).
pub const MAX_NAMES: u32 = 1024;
/// The value of every list entry (any value means "present").
const PRESENT: u8 = 1;
/// The one key of a `<set>_lens` map.
const LENS_KEY: u32 = 0;

/// Which key lengths a prefix or name set holds: bit `n` of the 256 is set
/// if some entry has length `n` (prefix bits, or name bytes). The map
/// `<set>_lens` holds it under key 0, so a packet looks up only lengths
/// that exist; `wasmfw map set|del` on the set recomputes it.
type Lens = [u64; 4];

fn declare_lens(name: &'static str) -> Result<HashMap<u32, Lens>, Error> {
    let lens = HashMap::declare(name, 1)?;
    if lens.insert(&LENS_KEY, &[0; 4]).is_err() {
        return Err(Error::Host { what: "map", name, code: crate::abi::E_FULL });
    }
    Ok(lens)
}

fn add_len(lens: &HashMap<u32, Lens>, len: u32) {
    let mut bits = lens.get(&LENS_KEY).unwrap_or([0; 4]);
    bits[(len as usize / 64) & 3] |= 1 << (len % 64);
    let _ = lens.insert(&LENS_KEY, &bits); // the key exists: cannot be full
}

fn insert_entry<K: Pod>(map: &HashMap<K, u8>, key: &K, param: &'static str) -> Result<(), Error> {
    map.insert(key, &PRESENT).map_err(|_| Error::param(param, "too many entries for its map"))
}

/// Destination or source ports: key the port as a little-endian `u16`,
/// value `1` (the eBPF twin's `HashMap<u16, u8>` on a little-endian CPU).
pub struct PortSet {
    ports: HashMap<u16, u8>,
}

impl PortSet {
    /// Declares the map `name` (init only) and fills it with `initial`.
    pub fn declare(name: &'static str, initial: &[u16]) -> Result<Self, Error> {
        let ports = HashMap::declare(name, MAX_PORTS)?;
        for p in initial {
            insert_entry(&ports, p, name)?;
        }
        Ok(PortSet { ports })
    }

    /// Out of line: the caller's body stays small (wasmi charges a
    /// function's whole body when it is entered).
    #[inline(never)]
    pub fn contains(&self, port: u16) -> bool {
        self.ports.get(&port).is_some()
    }
}

/// Key of a prefix set: the eBPF LPM trie key. The prefix length in bits
/// of the 16-byte address (IPv4 as `::ffff:a.b.c.d/(96 + len)`), then the
/// address with the bits after the prefix zeroed; as 4-byte words in memory
/// order so masking needs no byte swaps.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CidrKey {
    prefix_len: u32,
    addr: [u32; 4],
}

// SAFETY: five u32, no padding, every bit pattern valid.
unsafe impl Pod for CidrKey {}

/// The mask of the first `bits` (0..=32) bits of a 4-byte word in memory
/// order, as a little-endian `u32` (Wasm is little-endian): a table, as
/// computing it costs more fuel than a load.
const WORD_MASKS: [u32; 33] = {
    let mut masks = [0u32; 33];
    let mut bits = 1;
    while bits <= 32 {
        let (full, rem) = (bits / 8, bits % 8);
        let whole = ((1u64 << (8 * full)) - 1) as u32;
        let partial = if rem == 0 || full == 4 { 0 } else { ((0xff00u32 >> rem) & 0xff) << (8 * full) };
        masks[bits] = whole | partial;
        bits += 1;
    }
    masks
};

/// The mask of each prefix length 0..=128 over the address's four words:
/// building a key is then four loads and ands (2 KiB of data).
const PREFIX_MASKS: [[u32; 4]; 129] = {
    let mut masks = [[0u32; 4]; 129];
    let mut len: usize = 0;
    while len <= 128 {
        let mut i = 0;
        while i < 4 {
            let bits = len.saturating_sub(32 * i);
            masks[len][i] = WORD_MASKS[if bits > 32 { 32 } else { bits }];
            i += 1;
        }
        len += 1;
    }
    masks
};

#[cfg(test)]
fn word_mask(bits: u32) -> u32 {
    WORD_MASKS[bits.min(32) as usize]
}

impl CidrKey {
    /// The key of `addr`'s prefix of `prefix_len` bits (clamped to 128).
    #[inline(always)]
    fn new(addr: &Addr, prefix_len: u32) -> CidrKey {
        let a = &addr.0;
        let mask = &PREFIX_MASKS[prefix_len.min(128) as usize];
        let word = |i: usize| u32::from_le_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]) & mask[i];
        CidrKey { prefix_len, addr: [word(0), word(1), word(2), word(3)] }
    }
}

/// Address prefixes (`allow`): one hash map keyed like the eBPF twin's LPM
/// trie and its `<name>_lens` companion; a lookup tries each prefix length
/// present, so it costs one map lookup per distinct length.
pub struct CidrSet {
    cidrs: HashMap<CidrKey, u8>,
    lens: HashMap<u32, Lens>,
}

impl CidrSet {
    /// Declares the maps `name` and `lens_name` (init only) and fills them
    /// with `initial`.
    pub fn declare(name: &'static str, lens_name: &'static str, initial: &[Cidr]) -> Result<Self, Error> {
        let set = CidrSet { cidrs: HashMap::declare(name, MAX_CIDRS)?, lens: declare_lens(lens_name)? };
        for c in initial {
            let (network, len) = c.network_and_len();
            insert_entry(&set.cidrs, &CidrKey::new(&network, len), name)?;
            add_len(&set.lens, len);
        }
        Ok(set)
    }

    /// True if a prefix in the set contains `addr`. The shortest length
    /// present is tried without a loop (wasmi charges a loop body per
    /// iteration, and most lists use one or two lengths); the others, if
    /// any, in [`CidrSet::contains_longer`].
    #[inline(never)]
    pub fn contains(&self, addr: &Addr) -> bool {
        let Some(lens) = self.lens.get(&LENS_KEY) else { return false };
        // The first non-zero word of the three (lengths 0..=128).
        let word = usize::from(lens[0] == 0) + usize::from(lens[0] | lens[1] == 0);
        let bits = lens[word];
        if bits == 0 {
            return false;
        }
        if self.has_prefix(addr, 64 * word as u32 + bits.trailing_zeros()) {
            return true;
        }
        let rest = bits & (bits - 1);
        let later = if word == 0 {
            lens[1] | lens[2]
        } else if word == 1 {
            lens[2]
        } else {
            0
        };
        (rest | later) != 0 && self.contains_longer(addr, &lens, word, rest)
    }

    /// The lengths after the shortest: `rest` of word `word`, then the
    /// following words of `lens`.
    #[cold]
    #[inline(never)]
    fn contains_longer(&self, addr: &Addr, lens: &Lens, mut word: usize, mut bits: u64) -> bool {
        loop {
            if bits == 0 {
                word += 1;
                if word > 2 {
                    return false;
                }
                bits = lens[word];
                continue;
            }
            let len = 64 * word as u32 + bits.trailing_zeros();
            bits &= bits - 1;
            if self.has_prefix(addr, len) {
                return true;
            }
        }
    }

    #[inline(never)]
    fn has_prefix(&self, addr: &Addr, len: u32) -> bool {
        // A length above 128 (a bad edit) gives a key no valid entry has.
        self.cidrs.get(&CidrKey::new(addr, len)).is_some()
    }
}

/// Key of a name set: the polynomial hash (base [`NAME_HASH_BASE`],
/// wrapping, over the lowercased bytes) of a name in presentation form
/// (`ads.example.com`, no trailing dot) and its length. As
/// compare-ebpf/common's `NameKey` and `name_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameKey {
    pub hash: u64,
    pub len: u64,
}

// SAFETY: two u64, no padding, every bit pattern valid.
unsafe impl Pod for NameKey {}

/// The hash base of [`NameKey`] (compare-ebpf/common's `HASH_P`).
pub const NAME_HASH_BASE: u64 = 0x100_0000_01b3;

impl NameKey {
    /// The key of `name` (presentation form), ASCII case ignored.
    pub fn of(name: &[u8]) -> NameKey {
        let hash = name
            .iter()
            .fold(0u64, |h, &b| h.wrapping_mul(NAME_HASH_BASE).wrapping_add(u64::from(b.to_ascii_lowercase())));
        NameKey { hash, len: name.len() as u64 }
    }
}

/// Domain names (`block`): a hash map of [`NameKey`]s and its `<name>_lens`
/// companion (bit `n` set if some name is `n` bytes long).
pub struct NameSet {
    names: HashMap<NameKey, u8>,
    lens: HashMap<u32, Lens>,
}

impl NameSet {
    /// Declares the maps `name` and `lens_name` (init only) and fills them
    /// with `initial` (names of 1..=255 bytes).
    pub fn declare(name: &'static str, lens_name: &'static str, initial: &[&str]) -> Result<Self, Error> {
        let set = NameSet { names: HashMap::declare(name, MAX_NAMES)?, lens: declare_lens(lens_name)? };
        for n in initial {
            insert_entry(&set.names, &NameKey::of(n.as_bytes()), name)?;
            add_len(&set.lens, n.len() as u32);
        }
        Ok(set)
    }

    /// The lengths present (see [`Lens`]), read once per packet.
    #[inline]
    pub fn lens(&self) -> [u64; 4] {
        self.lens.get(&LENS_KEY).unwrap_or([0; 4])
    }

    /// True if the set holds the name with this hash and length.
    #[inline]
    pub fn contains_key(&self, key: &NameKey) -> bool {
        self.names.get(key).is_some()
    }
}

/// Bit `len` of a lengths mask.
#[inline(always)]
pub fn has_len(lens: &[u64; 4], len: usize) -> bool {
    len < 256 && lens[len / 64] >> (len % 64) & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn word_masks_are_memory_order_prefixes() {
        for bits in 0..=40u32 {
            // Byte i keeps its top `left` bits: 0xff00 >> left, low byte.
            let want: [u8; 4] = core::array::from_fn(|i| (0xff00u32 >> bits.saturating_sub(8 * i as u32).min(8)) as u8);
            assert_eq!(word_mask(bits).to_le_bytes(), want, "{bits}");
        }
    }

    #[test]
    fn cidr_set_matches_like_the_list() {
        testing::reset();
        let list: [Cidr; 3] = ["10.99.0.0/16", "192.0.2.7", "fd00::/8"].map(|s| Cidr::parse(s).unwrap());
        let set = CidrSet::declare("allow", "allow_lens", &list).unwrap();
        for (a, want) in [
            (Addr::from_v4([10, 99, 7, 7]), true),
            (Addr::from_v4([10, 98, 7, 7]), false),
            (Addr::from_v4([192, 0, 2, 7]), true),
            (Addr::from_v4([192, 0, 2, 8]), false),
            (Addr([0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), true),
            (Addr([0xfe, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), false),
        ] {
            assert_eq!(set.contains(&a), want, "{a}");
            assert_eq!(list.iter().any(|c| c.contains(&a)), want, "{a}");
        }
        // The key is the eBPF LPM key: u32 LE prefix length, masked address.
        let k = CidrKey::new(&Addr::from_v4([10, 99, 1, 2]), 112);
        let bytes = k.as_bytes();
        assert_eq!(&bytes[..4], &112u32.to_le_bytes());
        assert_eq!(&bytes[4..], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 99, 0, 0]);
        assert_eq!(testing::map_len("allow"), Some(3));
    }

    #[test]
    fn name_key_is_the_twins_hash() {
        // compare-ebpf/common: h = h * P + lower(b), from the first byte.
        let k = NameKey::of(b"Ab");
        assert_eq!(k, NameKey { hash: (b'a' as u64).wrapping_mul(NAME_HASH_BASE) + b'b' as u64, len: 2 });
        testing::reset();
        let set = NameSet::declare("dns_names", "dns_names_lens", &["ads.example.com", "x.test"]).unwrap();
        assert!(set.contains_key(&NameKey::of(b"ADS.example.com")));
        let lens = set.lens();
        assert!(has_len(&lens, 15) && has_len(&lens, 6) && !has_len(&lens, 7));
    }
}
